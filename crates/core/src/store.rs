//! Where an archive lives: a URL resolved to an object store and a path prefix.
//!
//! One code path for every backend: `file:///dir` or a plain directory (the local disk),
//! `s3://bucket/prefix`, `gs://bucket/prefix` and `az://container/prefix`, through
//! `object_store`'s URL support. A cloud store takes its settings first from the
//! provider's usual environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`, as
//! object_store's `from_env` reads them), then from the options given here, which win.
//! An option key the backend does not know is refused, not ignored. The `Debug` form of
//! a [`Location`] shows only its URL, never credentials.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, PutResult};
use url::Url;

use crate::{Error, Result};

/// A resolved storage location.
#[derive(Clone)]
pub struct Location {
    /// The location as a URL (`file:///abs/dir`, `s3://bucket/prefix`, ...).
    pub url: Url,
    /// The store that holds it.
    pub store: Arc<dyn ObjectStore>,
    /// The path of the location inside `store`.
    pub prefix: Path,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The store's own Debug may include credentials: never print it.
        f.debug_struct("Location")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl Location {
    /// `prefix/relative` as a store path.
    pub fn child(&self, relative: &str) -> Path {
        let mut p = self.prefix.clone();
        for part in relative.split('/').filter(|s| !s.is_empty()) {
            p = p.join(part);
        }
        p
    }

    /// Creates the object `relative` with `bytes`, never overwriting: if it exists, the
    /// store answers `AlreadyExists` (on S3, `If-None-Match: *`). Every archive file and
    /// manifest is written this way, at a name no other writer picks.
    pub async fn create(
        &self,
        relative: &str,
        bytes: impl Into<PutPayload>,
    ) -> object_store::Result<PutResult> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        self.store
            .put_opts(&self.child(relative), bytes.into(), options)
            .await
    }

    /// The URL of the store's root (`file:///`, `s3://bucket`), for registering the store
    /// with a query engine.
    pub fn store_root_url(&self) -> String {
        format!("{}://{}", self.url.scheme(), self.url.authority())
    }
}

/// Turns a URL or a plain path into a URL. A plain path (relative or absolute) becomes a
/// `file://` URL of its absolute form; a URL is kept as written.
pub fn resolve_url(location: &str) -> Result<Url> {
    let bad = |message: String| Error::Location {
        location: location.to_string(),
        message,
    };
    if location.trim().is_empty() {
        return Err(bad(
            "it is empty; give a directory or a URL such as s3://bucket/prefix".into(),
        ));
    }
    let looks_like_url = location.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+')
    });
    if looks_like_url {
        return Url::parse(location).map_err(|e| bad(format!("{e}")));
    }
    let abs = std::path::absolute(location).map_err(|e| bad(format!("{e}")))?;
    Url::from_directory_path(&abs).map_err(|()| bad("not an absolute directory path".into()))
}

/// How long one request to a cloud store is retried by default (`archive.retry-timeout`).
pub const DEFAULT_RETRY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// Opens the location `location` with backend `options` (for example `aws_endpoint`,
/// `aws_allow_http`), retrying a cloud store's requests for [`DEFAULT_RETRY_TIMEOUT`].
/// A local directory is created if missing.
pub fn open<I, K, V>(location: &str, options: I) -> Result<Location>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: Into<String>,
{
    open_with_retry(location, options, DEFAULT_RETRY_TIMEOUT)
}

/// [`open`], retrying each request to a cloud store for up to `retry_timeout` (with
/// backoff, up to 15 s between attempts) while the store is unreachable or answers with
/// a server error; every failed attempt is logged as a warning. The local disk is not
/// retried: its errors (a full disk, a permission) do not go away by waiting.
pub fn open_with_retry<I, K, V>(
    location: &str,
    options: I,
    retry_timeout: std::time::Duration,
) -> Result<Location>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: Into<String>,
{
    let url = resolve_url(location)?;
    if url.scheme() == "file" {
        let dir = url.to_file_path().map_err(|()| Error::Location {
            location: location.to_string(),
            message: "a file:// URL must name an absolute local path".into(),
        })?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::Location {
            location: location.to_string(),
            message: format!("cannot create directory {}: {e}", dir.display()),
        })?;
    }
    let (store, prefix) = build(location, &url, options, retry_timeout)?;
    Ok(Location { url, store, prefix })
}

/// Builds the store for `url`: environment first, then `options`.
fn build<I, K, V>(
    location: &str,
    url: &Url,
    options: I,
    retry_timeout: std::time::Duration,
) -> Result<(Arc<dyn ObjectStore>, Path)>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: Into<String>,
{
    use object_store::ObjectStoreScheme as Scheme;
    let store_err = |source| Error::Store {
        location: location.to_string(),
        source,
    };
    let (scheme, prefix) = Scheme::parse(url).map_err(|e| store_err(e.into()))?;
    let options: Vec<(String, String)> = options
        .into_iter()
        .map(|(k, v)| (k.as_ref().to_ascii_lowercase(), v.into()))
        .collect();
    let unknown = |key: &str, examples: &str| Error::Location {
        location: location.to_string(),
        message: format!(
            "unknown archive option `{key}` for {}://; options of this store are, for example, {examples}",
            url.scheme()
        ),
    };
    macro_rules! configure {
        ($builder:expr, $key:ty, $examples:expr) => {{
            let retry = object_store::RetryConfig {
                // Bounded by time, not by count: an outage is waited out for as long as
                // `retry_timeout`, however many attempts that takes.
                max_retries: 100_000,
                retry_timeout,
                backoff: object_store::BackoffConfig::default(),
            };
            let mut builder = $builder
                .with_url(url.as_str())
                .with_retry(retry)
                .with_http_connector(WarnConnector);
            for (key, value) in options {
                let parsed: $key = key.parse().map_err(|_| unknown(&key, $examples))?;
                builder = builder.with_config(parsed, value);
            }
            Arc::new(builder.build().map_err(store_err)?) as Arc<dyn ObjectStore>
        }};
    }
    let store = match scheme {
        Scheme::Local | Scheme::Memory if !options.is_empty() => {
            return Err(Error::Location {
                location: location.to_string(),
                message: "archive options apply to cloud stores (s3://, gs://, az://) only; remove [archive.options] for a local archive".into(),
            });
        }
        Scheme::Local => {
            Arc::new(object_store::local::LocalFileSystem::new()) as Arc<dyn ObjectStore>
        }
        Scheme::Memory => Arc::new(object_store::memory::InMemory::new()),
        Scheme::AmazonS3 => configure!(
            object_store::aws::AmazonS3Builder::from_env(),
            object_store::aws::AmazonS3ConfigKey,
            "aws_endpoint, aws_region, aws_allow_http, aws_virtual_hosted_style_request"
        ),
        Scheme::GoogleCloudStorage => configure!(
            object_store::gcp::GoogleCloudStorageBuilder::from_env(),
            object_store::gcp::GoogleConfigKey,
            "google_service_account, google_bucket"
        ),
        Scheme::MicrosoftAzure => configure!(
            object_store::azure::MicrosoftAzureBuilder::from_env(),
            object_store::azure::AzureConfigKey,
            "azure_storage_account_name, azure_storage_use_emulator"
        ),
        _ => {
            return Err(Error::Location {
                location: location.to_string(),
                message:
                    "not a supported archive store; use a directory, file://, s3://, gs:// or az://"
                        .into(),
            });
        }
    };
    Ok((store, prefix))
}

/// The store's HTTP connections, warning of every failed request: object_store retries
/// them (see [`open_with_retry`]) but says so only at `info`.
#[derive(Debug)]
struct WarnConnector;

impl object_store::client::HttpConnector for WarnConnector {
    fn connect(
        &self,
        options: &object_store::ClientOptions,
    ) -> object_store::Result<object_store::client::HttpClient> {
        let inner = object_store::client::ReqwestConnector::default().connect(options)?;
        Ok(object_store::client::HttpClient::new(WarnService { inner }))
    }
}

#[derive(Debug)]
struct WarnService {
    inner: object_store::client::HttpClient,
}

type HttpResult =
    std::result::Result<object_store::client::HttpResponse, object_store::client::HttpError>;

impl object_store::client::HttpService for WarnService {
    fn call<'a, 'b>(
        &'a self,
        req: object_store::client::HttpRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = HttpResult> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move {
            let (method, path) = (req.method().clone(), req.uri().path().to_string());
            let result = self.inner.execute(req).await;
            match &result {
                Err(e) => tracing::warn!(
                    %method,
                    %path,
                    error = %error_chain(e),
                    "archive store request failed; retrying with backoff for up to archive.retry-timeout"
                ),
                Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                    tracing::warn!(
                        %method,
                        %path,
                        status = %r.status(),
                        "archive store answered with an error; retrying with backoff for up to archive.retry-timeout"
                    );
                }
                Ok(_) => {}
            }
            result
        })
    }
}

/// `e` and its causes, `: `-separated ("error sending request: ...: Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_become_absolute_file_urls() {
        let u = resolve_url("archive").unwrap();
        assert_eq!(u.scheme(), "file");
        assert!(u.path().ends_with("/archive/"), "{u}");
        assert_eq!(resolve_url("/tmp/x").unwrap().as_str(), "file:///tmp/x/");
    }

    #[test]
    fn urls_are_kept() {
        assert_eq!(resolve_url("s3://b/p").unwrap().as_str(), "s3://b/p");
        assert_eq!(
            resolve_url("file:///tmp/a").unwrap().as_str(),
            "file:///tmp/a"
        );
    }

    #[test]
    fn empty_and_unknown_schemes_are_refused() {
        assert!(resolve_url("  ").is_err());
        let err = open("nosuch://x/y", Vec::<(String, String)>::new()).unwrap_err();
        assert!(err.to_string().contains("nosuch://x/y"), "{err}");
    }

    #[test]
    fn unknown_options_are_refused_and_debug_hides_the_store() {
        let err = open("s3://bucket/p", [("aws_endpointt", "http://x")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown archive option `aws_endpointt`") && err.contains("aws_endpoint,"),
            "{err}"
        );
        let err = open("/tmp/rampart-core-opts", [("aws_region", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cloud stores"), "{err}");
        let loc = open(
            "s3://bucket/p",
            [
                ("aws_region", "us-east-1"),
                ("aws_access_key_id", "AKIDEXAMPLE"),
                ("aws_secret_access_key", "very-secret-key"),
            ],
        )
        .unwrap();
        let debug = format!("{loc:?}");
        assert!(
            debug.contains("s3://bucket/p") && !debug.contains("very-secret-key"),
            "{debug}"
        );
        assert_eq!(loc.prefix.as_ref(), "p");
    }

    #[test]
    fn local_location_is_created_and_children_join() {
        let dir = std::env::temp_dir().join(format!("rampart-core-store-{}", std::process::id()));
        let loc = open(dir.to_str().unwrap(), Vec::<(String, String)>::new()).unwrap();
        assert!(dir.is_dir());
        assert_eq!(loc.store_root_url(), "file://");
        let child = loc.child("events/date=2026-01-01/hour=00/part-1.parquet");
        assert!(
            child
                .as_ref()
                .ends_with("events/date=2026-01-01/hour=00/part-1.parquet")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
