//! Where a bundle is written: a confined local directory or an object-store prefix.
//!
//! Every file of a bundle is named by a relative path that the export itself builds
//! (`data/events/part-00000.parquet`, `manifest.json`, ...). Even so, each path is checked
//! to be relative and normalized (no empty, `.` or `..` segments, no backslash), and a
//! local bundle never writes through a symbolic link: each directory on the way is
//! checked with `symlink_metadata` (a link is refused, not followed) and files are
//! created with `create_new`, which fails on any existing entry, a link included. The
//! bundle's own directory must be new or empty.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use parquet::arrow::async_writer::AsyncFileWriter;
use rampart_core::store::Location;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{ExportError, Result};

/// How many entries of a non-empty destination the error names.
const LISTED_ENTRIES: usize = 5;

/// The `--out` of an export, before anything is created.
#[derive(Clone, PartialEq, Eq)]
pub enum OutTarget {
    /// A local directory (a plain path or a `file://` URL).
    Dir(PathBuf),
    /// An object-store URL (`s3://`, `gs://`, `az://`) with the store's options.
    Store {
        /// The URL as given.
        url: String,
        /// Options of the store (`aws_endpoint`, ...), on top of the provider's environment.
        options: BTreeMap<String, String>,
    },
}

impl std::fmt::Debug for OutTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Options may hold credentials: show only their keys.
        match self {
            Self::Dir(p) => f.debug_tuple("Dir").field(p).finish(),
            Self::Store { url, options } => f
                .debug_struct("Store")
                .field("url", url)
                .field("options", &options.keys().collect::<Vec<_>>())
                .finish(),
        }
    }
}

impl OutTarget {
    /// Reads `--out`: a directory, `file:///dir`, or `s3://`, `gs://`, `az://` URL.
    /// `options` apply to an object store only.
    pub fn parse(out: &str, options: BTreeMap<String, String>) -> Result<Self> {
        let bad = |message: String| ExportError::Out {
            out: out.to_string(),
            message,
        };
        if out.trim().is_empty() {
            return Err(bad("it is empty; give a new or empty directory".into()));
        }
        let Some((scheme, _)) = out.split_once("://") else {
            return Ok(Self::Dir(PathBuf::from(out)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                let url = url::Url::parse(out).map_err(|e| bad(e.to_string()))?;
                let path = url
                    .to_file_path()
                    .map_err(|()| bad("a file:// URL must name an absolute local path".into()))?;
                Ok(Self::Dir(path))
            }
            "s3" | "s3a" | "gs" | "az" | "abfs" | "abfss" => Ok(Self::Store {
                url: out.to_string(),
                options,
            }),
            _ => Err(bad(format!(
                "`{scheme}://` is not a supported destination; give a directory, file://, s3://, gs:// or az://"
            ))),
        }
    }
}

/// A bundle being written.
pub(crate) enum Bundle {
    Local(ConfinedDir),
    Store(Location),
}

impl Bundle {
    /// Creates the destination, refusing one that is not new or empty.
    pub(crate) async fn create(target: &OutTarget) -> Result<Self> {
        match target {
            OutTarget::Dir(path) => Ok(Self::Local(ConfinedDir::create(path)?)),
            OutTarget::Store { url, options } => {
                let location = rampart_core::store::open(url, options.clone()).map_err(|e| {
                    ExportError::Out {
                        out: url.clone(),
                        message: e.to_string(),
                    }
                })?;
                let mut listed = location.store.list(Some(&location.prefix));
                let mut entries = Vec::new();
                while let Some(meta) = listed.next().await {
                    let meta = meta.map_err(|source| ExportError::Store {
                        path: url.clone(),
                        source,
                    })?;
                    entries.push(meta.location.to_string());
                    if entries.len() > LISTED_ENTRIES {
                        break;
                    }
                }
                if !entries.is_empty() {
                    return Err(ExportError::OutNotEmpty {
                        out: url.clone(),
                        entries: describe_entries(entries),
                    });
                }
                Ok(Self::Store(location))
            }
        }
    }

    /// The destination as a person reads it: an absolute directory or a URL.
    pub(crate) fn display(&self) -> String {
        match self {
            Self::Local(dir) => dir.root.display().to_string(),
            Self::Store(location) => location.url.to_string(),
        }
    }

    /// Whether the bundle is on the local disk.
    pub(crate) fn is_local(&self) -> bool {
        matches!(self, Self::Local(_))
    }

    /// A new file at `relative`, hashing what is written to it.
    pub(crate) async fn create_file(&self, relative: &str) -> Result<HashingSink> {
        let parts = checked_parts(relative)?;
        let inner = match self {
            Self::Local(dir) => {
                let file = dir.create_file(&parts)?;
                Sink::Local(tokio::fs::File::from_std(file))
            }
            Self::Store(location) => Sink::Store(BufWriter::new(
                Arc::clone(&location.store),
                location.child(&parts.join("/")),
            )),
        };
        Ok(HashingSink {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    /// Writes a whole small file at `relative`; returns its SHA-256.
    pub(crate) async fn put(&self, relative: &str, bytes: Vec<u8>) -> Result<String> {
        let sha256 = rampart_core::ledger::sha256_hex(&bytes);
        let parts = checked_parts(relative)?;
        match self {
            Self::Local(dir) => {
                let io = |source| ExportError::Io {
                    path: dir.root.join(relative).display().to_string(),
                    source,
                };
                let mut file = tokio::fs::File::from_std(dir.create_file(&parts)?);
                file.write_all(&bytes).await.map_err(io)?;
                file.flush().await.map_err(io)?;
                file.sync_all().await.map_err(io)?;
            }
            Self::Store(location) => {
                location
                    .create(&parts.join("/"), bytes)
                    .await
                    .map_err(|source| ExportError::Store {
                        path: relative.to_string(),
                        source,
                    })?;
            }
        }
        Ok(sha256)
    }
}

/// The segments of a bundle-relative path, refused unless it is relative and normalized.
pub(crate) fn checked_parts(relative: &str) -> Result<Vec<&str>> {
    let parts: Vec<&str> = relative.split('/').collect();
    let bad = parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == ".." || p.contains('\\') || p.contains('\0'));
    if bad {
        return Err(ExportError::UnsafePath {
            path: relative.to_string(),
            message: "a bundle file must have a relative path without empty, `.` or `..` parts"
                .into(),
        });
    }
    Ok(parts)
}

/// A local directory that files are written into and never out of.
#[derive(Debug)]
pub(crate) struct ConfinedDir {
    /// The directory, absolute, with every `..` and link of the given path resolved.
    root: PathBuf,
}

impl ConfinedDir {
    /// Creates the directory `path` (or takes it when it exists and is empty).
    ///
    /// The path's `..` parts are resolved on the real file system (a link before a `..`
    /// is followed first, as the shell's `cd -P` does), so the directory written to is
    /// the one the path names; the result is shown in the summary. The last part of
    /// the path itself must not be a symbolic link.
    pub(crate) fn create(path: &Path) -> Result<Self> {
        let given = path.display().to_string();
        let (existing, missing, last_is_link) = resolve(path)?;
        let root = if missing.is_empty() {
            if last_is_link {
                return Err(ExportError::UnsafePath {
                    path: given,
                    message: "it is a symbolic link; give the directory it points to, or a new one"
                        .into(),
                });
            }
            if !existing.is_dir() {
                return Err(ExportError::Out {
                    out: given,
                    message: "it exists and is not a directory; give a new or empty directory"
                        .into(),
                });
            }
            let entries = list_dir(&existing)?;
            if !entries.is_empty() {
                return Err(ExportError::OutNotEmpty {
                    out: existing.display().to_string(),
                    entries: describe_entries(entries),
                });
            }
            existing
        } else {
            let mut dir = existing;
            for part in missing {
                dir.push(part);
                create_real_dir(&dir)?;
            }
            dir
        };
        Ok(Self { root })
    }

    /// Creates the new file `root/parts...`, creating the directories on the way.
    fn create_file(&self, parts: &[&str]) -> Result<std::fs::File> {
        let Some((name, dirs)) = parts.split_last() else {
            return Err(ExportError::UnsafePath {
                path: String::new(),
                message: "empty path".into(),
            });
        };
        check_real_dir(&self.root)?;
        let mut dir = self.root.clone();
        for part in dirs {
            dir.push(part);
            create_real_dir(&dir)?;
        }
        let path = dir.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| match source.kind() {
                ErrorKind::AlreadyExists => ExportError::UnsafePath {
                    path: path.display().to_string(),
                    message: "something already exists there (a file or a link); the bundle \
                              directory must be empty and left alone during the export"
                        .into(),
                },
                _ => ExportError::Io {
                    path: path.display().to_string(),
                    source,
                },
            })
    }
}

/// Splits `path` into its longest existing prefix, made absolute and real (links and
/// `..` resolved), and the names after it that do not exist yet; also says whether the
/// path's last part is a symbolic link.
fn resolve(path: &Path) -> Result<(PathBuf, Vec<OsString>, bool)> {
    let given = path.display().to_string();
    let io = |source| ExportError::Io {
        path: given.clone(),
        source,
    };
    let absolute = std::path::absolute(path).map_err(io)?;
    let mut real = PathBuf::new();
    let mut missing: Vec<OsString> = Vec::new();
    let mut last_is_link = false;
    for component in absolute.components() {
        last_is_link = false;
        match component {
            Component::Prefix(_) | Component::RootDir => real.push(component),
            Component::CurDir => {}
            Component::ParentDir if missing.is_empty() => {
                real.pop();
            }
            Component::ParentDir => {
                return Err(ExportError::UnsafePath {
                    path: given,
                    message: format!(
                        "it goes up (`..`) from {}, which does not exist",
                        real.join(missing.iter().collect::<PathBuf>()).display()
                    ),
                });
            }
            Component::Normal(name) if !missing.is_empty() => missing.push(name.to_owned()),
            Component::Normal(name) => {
                let candidate = real.join(name);
                match std::fs::symlink_metadata(&candidate) {
                    Ok(meta) => {
                        last_is_link = meta.file_type().is_symlink();
                        // Real from the root down: a link is replaced by its target, so a
                        // following `..` leaves the target, as it does for the kernel.
                        real = std::fs::canonicalize(&candidate).map_err(|source| {
                            ExportError::Io {
                                path: candidate.display().to_string(),
                                source,
                            }
                        })?;
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => missing.push(name.to_owned()),
                    Err(source) => {
                        return Err(ExportError::Io {
                            path: candidate.display().to_string(),
                            source,
                        });
                    }
                }
            }
        }
    }
    Ok((real, missing, last_is_link))
}

/// Creates directory `dir` unless it exists; either way it must be a real directory.
fn create_real_dir(dir: &Path) -> Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => check_real_dir(dir),
        Err(source) => Err(ExportError::Io {
            path: dir.display().to_string(),
            source,
        }),
    }
}

/// Refuses `dir` unless it is a directory and not a symbolic link.
fn check_real_dir(dir: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(dir).map_err(|source| ExportError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    if meta.file_type().is_symlink() {
        return Err(ExportError::UnsafePath {
            path: dir.display().to_string(),
            message: "it is a symbolic link, which the export does not write through".into(),
        });
    }
    if !meta.is_dir() {
        return Err(ExportError::UnsafePath {
            path: dir.display().to_string(),
            message: "it is not a directory".into(),
        });
    }
    Ok(())
}

/// Up to a few entries of `dir`, links marked.
fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let io = |source| ExportError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let mut name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().is_ok_and(|t| t.is_symlink()) {
            name.push_str(" (a symbolic link)");
        }
        out.push(name);
        if out.len() > LISTED_ENTRIES {
            break;
        }
    }
    Ok(out)
}

fn describe_entries(mut entries: Vec<String>) -> String {
    entries.sort();
    let more = entries.len() > LISTED_ENTRIES;
    entries.truncate(LISTED_ENTRIES);
    let mut s = entries.join(", ");
    if more {
        s.push_str(", ...");
    }
    s
}

enum Sink {
    Local(tokio::fs::File),
    Store(BufWriter),
}

/// A bundle file being written, hashed on the way.
pub(crate) struct HashingSink {
    inner: Sink,
    hasher: Sha256,
    bytes: u64,
}

impl HashingSink {
    /// The SHA-256 (lowercase hex) and size of what was written.
    pub(crate) fn finish(self) -> (String, u64) {
        (hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl AsyncFileWriter for HashingSink {
    fn write(&mut self, bs: Bytes) -> BoxFuture<'_, parquet::errors::Result<()>> {
        self.hasher.update(&bs);
        self.bytes += bs.len() as u64;
        match &mut self.inner {
            Sink::Local(file) => async move {
                file.write_all(&bs).await?;
                Ok(())
            }
            .boxed(),
            Sink::Store(writer) => AsyncFileWriter::write(writer, bs),
        }
    }

    fn complete(&mut self) -> BoxFuture<'_, parquet::errors::Result<()>> {
        match &mut self.inner {
            Sink::Local(file) => async move {
                file.flush().await?;
                file.sync_all().await?;
                Ok(())
            }
            .boxed(),
            Sink::Store(writer) => AsyncFileWriter::complete(writer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_relative_normalized_paths_pass() {
        assert_eq!(
            checked_parts("data/events/part-00000.parquet").unwrap(),
            ["data", "events", "part-00000.parquet"]
        );
        for bad in [
            "",
            "/etc/passwd",
            "data//x",
            "data/../x",
            "./x",
            "..",
            "a\\b",
            "x/",
        ] {
            assert!(checked_parts(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn out_targets_are_read_from_paths_and_urls() {
        let none = BTreeMap::new;
        assert_eq!(
            OutTarget::parse("b", none()).unwrap(),
            OutTarget::Dir("b".into())
        );
        assert_eq!(
            OutTarget::parse("file:///tmp/b", none()).unwrap(),
            OutTarget::Dir("/tmp/b".into())
        );
        assert!(matches!(
            OutTarget::parse("s3://bucket/p", none()).unwrap(),
            OutTarget::Store { .. }
        ));
        let err = OutTarget::parse("ftp://x/y", none())
            .unwrap_err()
            .to_string();
        assert!(err.contains("ftp://"), "{err}");
        assert!(OutTarget::parse(" ", none()).is_err());
    }

    #[test]
    fn a_new_directory_is_created_with_its_parents() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ConfinedDir::create(&tmp.path().join("a/b")).unwrap();
        assert!(tmp.path().join("a/b").is_dir());
        dir.create_file(&["data", "events", "x"]).unwrap();
        assert!(tmp.path().join("a/b/data/events/x").is_file());
        let err = dir.create_file(&["data", "events", "x"]).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
    }

    #[test]
    fn a_non_empty_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("keep.txt"), "x").unwrap();
        let err = ConfinedDir::create(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains("not empty") && err.contains("keep.txt"),
            "{err}"
        );
        assert_eq!(std::fs::read(tmp.path().join("keep.txt")).unwrap(), b"x");
    }

    #[test]
    fn parent_parts_resolve_on_the_real_file_system() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("a")).unwrap();
        let dir = ConfinedDir::create(&tmp.path().join("a/../b")).unwrap();
        let real = std::fs::canonicalize(tmp.path()).unwrap().join("b");
        assert_eq!(dir.root, real);
        let err = ConfinedDir::create(&tmp.path().join("nope/../c")).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(!tmp.path().join("nope").exists() && !tmp.path().join("c").exists());
    }

    #[cfg(unix)]
    #[test]
    fn links_inside_the_bundle_are_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let out = tmp.path().join("out");
        let dir = ConfinedDir::create(&out).unwrap();
        // A link planted after the directory was taken: a directory on the way...
        std::os::unix::fs::symlink(&elsewhere, out.join("data")).unwrap();
        let err = dir.create_file(&["data", "x"]).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        // ...or the file itself.
        std::os::unix::fs::symlink(elsewhere.join("f"), out.join("f")).unwrap();
        let err = dir.create_file(&["f"]).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        // The out directory itself given as a link is refused too.
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let err = ConfinedDir::create(&link).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
    }
}
