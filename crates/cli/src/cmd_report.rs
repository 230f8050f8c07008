//! `rampart report`

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rampart_archive::Archive;
use rampart_archive::access::AccessKind;
use rampart_archive::report::{self, Period};
use rampart_core::SystemClock;
use rampart_core::layout::REPORTS;

use crate::cmd_query::{outcome, record_access};

/// Build the monthly (or quarterly) policy-adherence report from the archive.
///
/// Policy hits per rule and workload, violations opened, resolved and still open at the
/// end (with their age), the largest attack-rate increases, dead letters by reason,
/// adherence per workload (the share of its resources without an open violation) and a
/// day-by-day chart, computed with the SQL files of sql/report/ over the archive's
/// committed files. Writes one self-contained HTML page (inline SVG charts, no script,
/// no external asset) and the same numbers as JSON, and stores both in the archive under
/// reports/period=<period>/, committed with one manifest and kept for
/// [retention] reports. Times are UTC. Recorded in access_log; if the record cannot be
/// written, nothing is written.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  rampart report --month 2026-10
  rampart report --quarter 2026-Q4 --out q4.html --json q4.json
  rampart report --month 2026-10 --archive s3://audit-bucket/rampart --no-store")]
#[command(group(clap::ArgGroup::new("period").required(true).args(["month", "quarter"])))]
pub(crate) struct ReportArgs {
    /// The month, YYYY-MM (UTC), e.g. 2026-10.
    #[arg(long, value_name = "YYYY-MM")]
    month: Option<String>,
    /// The quarter, YYYY-Qn (UTC), e.g. 2026-Q4.
    #[arg(long, value_name = "YYYY-Qn")]
    quarter: Option<String>,
    /// The HTML page to write; default rampart-report-<period>.html.
    #[arg(long, value_name = "FILE.html")]
    out: Option<PathBuf>,
    /// The JSON to write; default the --out path with .json.
    #[arg(long, value_name = "FILE.json")]
    json: Option<PathBuf>,
    /// Do not store a copy in the archive.
    #[arg(long)]
    no_store: bool,
    /// Store the copy even if [retention] reports is below retention.floor.
    #[arg(long)]
    allow_short_retention: bool,
    /// Archive location; defaults to [archive] url of --config, else ./archive.
    #[arg(long)]
    archive: Option<String>,
    /// Pipeline file whose [archive] and [retention] sections to use.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

pub(crate) async fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    // Flags first: a mistake in them is reported before the archive is opened.
    let period = match (&args.month, &args.quarter) {
        (Some(m), None) => Period::month(m)?,
        (None, Some(q)) => Period::quarter(q)?,
        _ => anyhow::bail!("give one of --month YYYY-MM or --quarter YYYY-Qn"),
    };
    let html_path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("rampart-report-{period}.html")));
    let json_path = args
        .json
        .clone()
        .unwrap_or_else(|| html_path.with_extension("json"));
    if html_path == json_path {
        anyhow::bail!(
            "--out and --json are the same file {}; give the JSON another name",
            html_path.display()
        );
    }
    let (config, location) = crate::config::open_archive(args.config.as_deref(), args.archive)?;
    let retention = config.retention.reports;
    if !args.no_store && !args.allow_short_retention && retention < config.retention.floor {
        anyhow::bail!(
            "retention.reports ({}) is below retention.floor ({}); a stored report would be \
             kept less long than the floor allows. Pass --allow-short-retention if that is \
             meant, or --no-store",
            rampart_core::config::format_period(retention),
            rampart_core::config::format_period(config.retention.floor)
        );
    }
    let archive = Archive::open_with(location.clone(), &config.query).await?;
    let result = report::build(&archive, &period, &SystemClock).await;
    let mut statement = format!("report {}", period.describe());
    if args.no_store {
        statement.push_str(" --no-store");
    }
    let rows = result.as_ref().map_or(0, |r| r.query_rows);
    // Fail closed, as a query does: nothing is written unless the access is recorded.
    record_access(
        &location,
        &config,
        AccessKind::Report,
        statement,
        rows,
        outcome(&result),
    )
    .await?;
    let report = result?;
    let html = report.to_html();
    let json = report.to_json()?;
    write_file(&html_path, html.as_bytes())?;
    write_file(&json_path, &json)?;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let t = &report.totals;
    writeln!(
        w,
        "report {} ({}): {} to {}{}",
        report.period.label,
        report.period.title,
        report.period.start,
        report.period.covered_until,
        if report.period.complete {
            ""
        } else {
            " (the period has not ended: covered up to now)"
        }
    )?;
    writeln!(
        w,
        "  adherence {}, {} policy hits, {} violations opened, {} resolved, {} open at the end, {} dead letters",
        t.adherence_pct
            .map_or_else(|| "n/a".to_string(), |p| format!("{p:.1}%")),
        t.policy_hits,
        t.violations_opened,
        t.violations_resolved,
        t.violations_open_at_end,
        t.dead_letters
    )?;
    writeln!(w, "wrote {}", html_path.display())?;
    writeln!(w, "wrote {}", json_path.display())?;
    if args.no_store {
        writeln!(w, "not stored in the archive (--no-store)")?;
    } else {
        let stored = report::store(
            &location,
            &report,
            html.as_bytes(),
            &json,
            retention,
            &SystemClock,
        )
        .await?;
        writeln!(
            w,
            "stored in the archive {} (manifest {}, kept for {} under {REPORTS}/):",
            location.url,
            stored.manifest_sequence,
            rampart_core::config::format_period(retention)
        )?;
        writeln!(w, "  {}  sha256 {}", stored.html_path, stored.html_sha256)?;
        writeln!(w, "  {}  sha256 {}", stored.json_path, stored.json_sha256)?;
    }
    w.flush().context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
