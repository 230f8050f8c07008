//! `rampart query`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rampart_archive::access::{AccessKind, AccessRecord, log_access};
use rampart_archive::{Archive, OutputFormat};
use rampart_core::store::Location;
use rampart_core::{Config, SystemClock};

/// Run one read-only SQL statement over the archive.
///
/// Tables: events, dead_letters, attack_rates, policy_hits, violations, access_log.
/// Every table has the hive partition columns `date` (DATE) and `hour` (INT): filtering
/// on them skips whole folders. Only committed files are read. Every query, refused
/// ones included, is recorded in access_log; if the record cannot be written, the
/// results are not shown.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  rampart query \"SELECT count(*) FROM events\"
  rampart query --format csv \"SELECT resource_id, count(*) AS n FROM events WHERE date = DATE '2026-11-01' GROUP BY 1 ORDER BY n DESC LIMIT 10\"
  rampart query --format json \"SELECT reason_code, count(*) FROM dead_letters GROUP BY 1\"
  rampart query --archive s3://audit-bucket/rampart \"SHOW TABLES\"")]
pub(crate) struct QueryArgs {
    /// The SQL statement (SELECT, WITH, EXPLAIN, SHOW TABLES, SHOW COLUMNS).
    sql: String,
    /// Archive location; defaults to [archive] url of --config, else ./archive.
    #[arg(long)]
    archive: Option<String>,
    /// Pipeline file whose [archive] section to use.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    format: FormatArg,
}

/// `--format` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    /// An aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per row.
    Json,
}

impl From<FormatArg> for OutputFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Table => OutputFormat::Table,
            FormatArg::Csv => OutputFormat::Csv,
            FormatArg::Json => OutputFormat::Json,
        }
    }
}

pub(crate) async fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let (config, location) = crate::config::open_archive(args.config.as_deref(), args.archive)?;
    let archive = Archive::open_with(location.clone(), &config.query).await?;
    let result = archive.query(&args.sql).await;
    let rows = result.as_ref().map_or(0, |o| o.num_rows() as u64);
    record_access(
        &location,
        &config,
        AccessKind::Query,
        args.sql.clone(),
        rows,
        outcome(&result),
    )
    .await?;
    let output = result?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    rampart_archive::write_results(&output, args.format.into(), &mut out)?;
    out.flush().context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// `ok`, or the error's message: the outcome of an access, as the access log keeps it.
pub(crate) fn outcome<T, E: std::fmt::Display>(result: &Result<T, E>) -> String {
    match result {
        Ok(_) => "ok".to_string(),
        Err(e) => e.to_string(),
    }
}

/// Appends one record to the archive's access log (see `rampart_archive::access`).
pub(crate) async fn record_access(
    location: &Location,
    config: &Config,
    kind: AccessKind,
    statement: String,
    rows: u64,
    outcome: String,
) -> anyhow::Result<()> {
    let record = AccessRecord {
        kind,
        statement,
        rows,
        outcome,
    };
    log_access(location, &record, config.retention.access_log, &SystemClock).await?;
    Ok(())
}
