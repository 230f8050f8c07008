//! `rampart export`

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rampart_archive::Archive;
use rampart_archive::access::AccessKind;
use rampart_archive::export::{
    self, DEFAULT_ROWS_PER_FILE, ExportRequest, ExportSummary, OutTarget, SUMS_FILE,
};
use rampart_core::SystemClock;

use crate::cmd_query::{outcome, record_access};

/// Export rows of a time range into a self-contained bundle for legal retention.
///
/// The bundle holds the rows as Parquet (one folder per table), manifest.json (the
/// selection, the archive manifests the rows come from with their SHA-256, every file
/// with its rows and SHA-256), SHA256SUMS for `sha256sum -c`, and a README telling the
/// recipient how to verify and read it without Rampart. Per table, a row is selected
/// when the table's time column is in [--from, --to) and --where holds.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  rampart export --from 2026-11-01 --to 2026-11-02 --out case-4711
  rampart export --from 2026-11-01T08:00:00Z --to 2026-11-01T12:00:00Z \\
      --where \"resource_id = 'vm-0042'\" --tables events,policy_hits --out /evidence/case-4711
  rampart export --from 2026-11-01 --to 2026-12-01 --out s3://legal-hold/case-4711

Then, in the bundle: sha256sum -c SHA256SUMS")]
pub(crate) struct ExportArgs {
    /// Start of the range, included: RFC 3339 (2026-11-01T00:00:00Z) or a date (midnight UTC).
    #[arg(long)]
    from: String,
    /// End of the range, excluded: RFC 3339 or a date (midnight UTC).
    #[arg(long)]
    to: String,
    /// SQL predicate over the columns of each exported table, e.g. "category = 'malware'".
    /// A default table without a column it uses is left out (and reported).
    #[arg(long = "where", value_name = "PREDICATE")]
    predicate: Option<String>,
    /// Tables to export, comma-separated; default: every table except access_log.
    #[arg(long, value_delimiter = ',')]
    tables: Option<Vec<String>>,
    /// Destination: a new or empty directory (or file:// URL), or s3://, gs://, az:// URL.
    #[arg(long)]
    out: String,
    /// Rows per Parquet file in the bundle.
    #[arg(long, default_value_t = DEFAULT_ROWS_PER_FILE)]
    rows_per_file: u64,
    /// Archive location; defaults to [archive] url of --config, else ./archive.
    #[arg(long)]
    archive: Option<String>,
    /// Pipeline file whose [archive] section to use.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

pub(crate) async fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    // Flags first: a mistake in them is reported before the archive is opened.
    let from = export::parse_time("--from", &args.from)?;
    let to = export::parse_time("--to", &args.to)?;
    let request = ExportRequest {
        predicate: args.predicate,
        tables: args.tables,
        rows_per_file: args.rows_per_file,
        ..ExportRequest::new(from, to)
    };
    let mut config = crate::config::load(args.config.as_deref())?;
    if let Some(archive) = args.archive {
        config.archive.url = archive;
    }
    config.validate()?;
    // An object-store destination of the archive's kind takes the archive's options
    // (endpoint, region...); any other takes the provider's environment alone.
    let same_kind = scheme(&args.out).is_some_and(|s| Some(s) == scheme(&config.archive.url));
    let out_options = if same_kind {
        config.archive.options.clone()
    } else {
        BTreeMap::new()
    };
    let out = OutTarget::parse(&args.out, out_options)?;
    let location = config
        .archive
        .open(&config.archive.url)
        .with_context(|| format!("cannot open archive {}", config.archive.url))?;
    let archive = Archive::open_with(location.clone(), &config.query).await?;
    // Every export goes in the access log: once before anything is written (so an
    // export that cannot be recorded writes nothing), once with its outcome.
    let statement = format!("{} --out {}", request.describe(), args.out);
    let record = |rows, outcome| {
        record_access(
            &location,
            &config,
            AccessKind::Export,
            statement.clone(),
            rows,
            outcome,
        )
    };
    record(0, "started".to_string()).await?;
    let progress = Bar::new();
    let result = export::export(&archive, &request, &out, &SystemClock, &progress).await;
    let rows = result.as_ref().map_or(0, |s| s.manifest.rows_total);
    record(rows, outcome(&result)).await?;
    let summary = result?;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    print_summary(&summary, &mut w).context("cannot write to stdout")?;
    w.flush().context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// The lowercase scheme of a URL, `None` for a plain path.
fn scheme(location: &str) -> Option<String> {
    location
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
}

fn print_summary(s: &ExportSummary, w: &mut impl Write) -> std::io::Result<()> {
    let m = &s.manifest;
    writeln!(w, "exported {} rows to {}", m.rows_total, s.out)?;
    let tables = s.rows_by_table();
    let width = tables
        .iter()
        .map(|(t, ..)| t.len())
        .max()
        .unwrap_or(5)
        .max(5);
    writeln!(w, "  {:<width$}  {:>12}  {:>5}", "table", "rows", "files")?;
    for (table, rows, files) in &tables {
        writeln!(w, "  {table:<width$}  {rows:>12}  {files:>5}")?;
    }
    for skipped in &s.skipped {
        writeln!(
            w,
            "  not exported: {} (it has no column `{}`, which --where uses)",
            skipped.table, skipped.column
        )?;
    }
    let head = match (&m.archive.head_sequence, &m.archive.head_sha256) {
        (Some(seq), Some(sha)) => format!("head manifest {seq} (SHA-256 {sha})"),
        _ => "an empty archive".to_string(),
    };
    writeln!(
        w,
        "source: {} archive file(s) read, rows from {} manifest(s); {head}",
        s.source_files,
        m.source_manifests.len()
    )?;
    writeln!(
        w,
        "bundle: {} files, {} bytes; SHA-256 of {SUMS_FILE}: {}",
        s.bundle_files, s.bundle_bytes, s.sums_sha256
    )?;
    if s.local {
        writeln!(w, "verify: cd {} && sha256sum -c {SUMS_FILE}", s.out)?;
    } else {
        writeln!(
            w,
            "verify: download {} and run `sha256sum -c {SUMS_FILE}` inside it",
            s.out
        )?;
    }
    Ok(())
}

/// A progress bar over the archive files read, on stderr. indicatif draws nothing when
/// stderr is not a terminal, so redirected output and tests stay clean.
struct Bar(ProgressBar);

impl Bar {
    fn new() -> Self {
        // Hidden until the export knows what it will read: a refused request draws nothing.
        let bar = ProgressBar::hidden();
        if let Ok(style) = ProgressStyle::with_template(
            "exporting {bar:25} {pos}/{len} archive files of {msg}, {eta} left",
        ) {
            bar.set_style(style);
        }
        Self(bar)
    }
}

impl export::Progress for Bar {
    fn start(&self, files: u64, bytes: u64) {
        self.0.set_length(files);
        self.0.set_message(indicatif::HumanBytes(bytes).to_string());
        self.0.set_draw_target(ProgressDrawTarget::stderr());
    }

    fn file_done(&self, _path: &str, _bytes: u64) {
        self.0.inc(1);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
