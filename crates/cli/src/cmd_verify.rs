//! `rampart verify`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use rampart_core::{Clock, SystemClock};

/// Check that the archive (or an export bundle) is intact: walk the manifest chain,
/// re-hash every file and report missing, altered, extra or re-ordered items with their
/// paths. Exits 0 only when intact, 1 when problems were found; an archive that cannot
/// be read at all is an error.
///
/// The report ends with the head (the last manifest and its SHA-256): keep it outside
/// the archive, and pass it to a later run with --expect-head, which then also detects
/// an edit of the head itself or the removal of the last manifests. Extra files younger
/// than [archive] orphan-grace (RAMPART_ARCHIVE__ORPHAN_GRACE) may belong to a running
/// writer and are notes, not problems.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  rampart verify --archive ./archive
  rampart verify --config pipelines/demo.toml --format json
  rampart verify --archive s3://audit-bucket/rampart --expect-head 3f1c...e9a0
  rampart verify --bundle ./export-2026-11-01")]
pub(crate) struct VerifyArgs {
    /// Pipeline file whose [archive] section to use.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Archive location; defaults to [archive] url of --config, else ./archive.
    #[arg(long)]
    archive: Option<String>,
    /// SHA-256 of the head recorded from an earlier report: fail unless the chain still
    /// holds that manifest (as its head, or with later manifests linked after it).
    #[arg(long, value_name = "SHA256")]
    expect_head: Option<String>,
    /// Check the export bundle in this directory instead of an archive.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["archive", "expect_head", "config"])]
    bundle: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    format: FormatArg,
}

/// `--format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FormatArg {
    /// A report for people.
    Text,
    /// One JSON document.
    Json,
}

pub(crate) async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.bundle {
        let report = rampart_archive::bundle_verify::verify_bundle(dir)
            .with_context(|| format!("cannot verify the bundle {}", dir.display()))?;
        let intact = report.is_intact();
        write_out(args.format, intact, &report)?;
        return Ok(exit(intact));
    }
    let expect_head = args
        .expect_head
        .as_deref()
        .map(str::trim)
        .map(|h| {
            if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(h.to_ascii_lowercase())
            } else {
                Err(anyhow::anyhow!(
                    "--expect-head `{h}` is not a SHA-256 (64 hex digits); copy it from the \
                     `head:` line of an earlier report"
                ))
            }
        })
        .transpose()?;
    let mut config = crate::config::load(args.config.as_deref())?;
    if let Some(archive) = args.archive {
        config.archive.url = archive;
    }
    let url = config.archive.url.clone();
    // Opening a local archive creates its folder: a mistyped path must not verify as an
    // empty archive.
    if let Ok(parsed) = rampart_core::store::resolve_url(&url)
        && parsed.scheme() == "file"
        && let Ok(dir) = parsed.to_file_path()
        && !dir.is_dir()
    {
        bail!(
            "no archive at {url}: {} is not a directory; pass --archive with the archive's location",
            dir.display()
        );
    }
    let location = config
        .archive
        .open(&url)
        .with_context(|| format!("cannot open archive {url}"))?;
    let mut report = rampart_archive::verify::verify_archive(
        &location,
        SystemClock.now_micros(),
        config.archive.orphan_grace,
    )
    .await
    .with_context(|| format!("cannot verify archive {url}"))?;
    if let Some(head) = &expect_head {
        report.check_expected_head(head);
    }
    let intact = report.is_intact();
    write_out(args.format, intact, &report)?;
    Ok(exit(intact))
}

/// The JSON form: the verdict first, then the report's fields.
#[derive(serde::Serialize)]
struct Json<'a, R> {
    intact: bool,
    #[serde(flatten)]
    report: &'a R,
}

fn write_out<R>(format: FormatArg, intact: bool, report: &R) -> anyhow::Result<()>
where
    R: std::fmt::Display + serde::Serialize,
{
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match format {
        FormatArg::Text => write!(out, "{report}").context("cannot write to stdout")?,
        FormatArg::Json => {
            serde_json::to_writer_pretty(&mut out, &Json { intact, report })
                .context("cannot write the report as JSON to stdout")?;
            writeln!(out).context("cannot write to stdout")?;
        }
    }
    out.flush().context("cannot write to stdout")
}

fn exit(intact: bool) -> ExitCode {
    if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
