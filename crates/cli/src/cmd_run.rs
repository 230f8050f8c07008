//! `rampart run`

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use rampart_core::SystemClock;
use rampart_pipeline::RunOptions;

/// Run a pipeline: read security events, decode them (bad input to dead letters) and
/// write the archive. Ends with a one-screen summary.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  rampart run --config pipelines/demo.toml
  rampart run --source /var/log/security.jsonl --archive s3://audit-bucket/rampart
  zcat events.jsonl.gz | rampart run --source - --archive ./archive
  rampart run --config pipelines/demo.toml --alerts alerts.jsonl --rules-dir ./my-rules
  rampart run --config pipelines/demo.toml --metrics-addr 127.0.0.1:9464   # then GET /metrics, /healthz")]
pub(crate) struct RunArgs {
    /// Pipeline file (TOML). Without it, built-in defaults apply.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Source, overriding [source] url: a JSON-lines file path, file:///abs/path, or - for stdin.
    #[arg(long)]
    source: Option<String>,
    /// Archive location, overriding [archive] url: a directory, file:///dir, s3://bucket/prefix, gs://..., az://...
    #[arg(long)]
    archive: Option<String>,
    /// Stop at the end of the source (files and stdin always end at their end).
    #[arg(long)]
    until_end: bool,
    /// Directory of rule files, overriding [rules] dir.
    #[arg(long)]
    rules_dir: Option<String>,
    /// Alerts as JSON lines to this file (appended), or - for stdout; overrides [alerts] path.
    #[arg(long)]
    alerts: Option<String>,
    /// Accept a [retention] period below retention.floor (recorded with every file).
    #[arg(long)]
    allow_short_retention: bool,
    /// Serve Prometheus metrics at /metrics and health at /healthz on IP:PORT, overriding
    /// [metrics] addr (an empty value serves nothing).
    #[arg(long, value_name = "IP:PORT")]
    metrics_addr: Option<String>,
}

pub(crate) async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut config = crate::config::load(args.config.as_deref())?;
    if let Some(source) = args.source {
        config.source.url = Some(source);
    }
    if let Some(archive) = args.archive {
        config.archive.url = archive;
    }
    if let Some(dir) = args.rules_dir {
        config.rules.dir = dir;
    }
    if let Some(alerts) = args.alerts {
        config.alerts.path = alerts;
    }
    if let Some(addr) = args.metrics_addr {
        config.metrics.addr = addr;
    }
    config.retention.check_floor(args.allow_short_retention)?;
    if !config.pipeline.heap_trim_interval.is_zero() {
        crate::trim::start(config.pipeline.heap_trim_interval);
    }
    let options = RunOptions {
        until_end: args.until_end,
        clock: Arc::new(SystemClock),
        handle_signals: true,
    };
    let summary = rampart_pipeline::run(&config, options).await.map_err(|e| {
        let archive = rampart_core::store::resolve_url(&config.archive.url)
            .map_or_else(|_| config.archive.url.clone(), |u| u.to_string());
        let what = match fault(&e) {
            Some(Fault::DiskFull) => format!(
                "the archive's disk is full ({archive}): free space there, or move the \
                     archive to a larger disk ([archive] url), then run again"
            ),
            Some(Fault::StoreUnreachable) => format!(
                "the archive store ({archive}) did not answer within \
                     archive.retry-timeout ({}): once it does, run again",
                humantime::format_duration(config.archive.retry_timeout)
            ),
            None => return anyhow::Error::new(e).context("pipeline failed"),
        };
        anyhow::Error::new(e).context(format!(
            "pipeline failed: {what}; it resumes after the last commit, and nothing past \
                 that was committed"
        ))
    })?;
    print!("{}", summary.render());
    Ok(ExitCode::SUCCESS)
}

/// A failure of what the archive lives on, that a rerun recovers from once it is fixed.
enum Fault {
    /// The disk under a local archive is full (or its quota exhausted).
    DiskFull,
    /// A cloud store did not answer within `archive.retry-timeout`.
    StoreUnreachable,
}

/// The [`Fault`] behind `e`: found in its chain of causes, or in a message that carries
/// the store's error as text.
fn fault(e: &(dyn std::error::Error + 'static)) -> Option<Fault> {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && (io.kind() == std::io::ErrorKind::StorageFull
                || matches!(io.raw_os_error(), Some(ENOSPC | EDQUOT)))
        {
            return Some(Fault::DiskFull);
        }
        let text = c.to_string();
        if text.contains("No space left on device") || text.contains("Disk quota exceeded") {
            return Some(Fault::DiskFull);
        }
        // object_store's error once its retries have run out.
        if text.contains(" retries, max_retries: ") && text.contains("retry_timeout: ") {
            return Some(Fault::StoreUnreachable);
        }
        cause = c.source();
    }
    None
}
