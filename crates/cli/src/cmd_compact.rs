//! `rampart compact`

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rampart_core::ledger::Ledger;
use rampart_core::{Clock, SystemClock};
use rampart_pipeline::CompactReport;
use rampart_pipeline::compact::Candidate;

/// Rewrite the small files of closed hours into few large ones, sorted by resource and
/// time, and record the replacement in the archive's chain.
///
/// An hour is compacted once it ended at least --older-than ago and holds two or more
/// files under half of [compact] target-file-bytes. No row is lost or doubled: the new
/// files become part of the archive in the same manifest that removes the old ones,
/// and a crash at any point leaves the archive as it was or as it will be. `rampart
/// run` also compacts in the background every [compact] interval.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  rampart compact --config pipelines/demo.toml
  rampart compact --archive s3://audit-bucket/rampart --older-than 6h
  rampart compact --archive ./archive --dry-run")]
pub(crate) struct CompactArgs {
    /// Pipeline file whose [archive] and [compact] sections to use.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Archive location, overriding [archive] url: a directory, file:///dir, s3://bucket/prefix, gs://..., az://...
    #[arg(long)]
    archive: Option<String>,
    /// Compact only hours that ended at least this long ago (e.g. 2h, 30m, 0s); overrides [compact] older-than.
    #[arg(long, value_parser = humantime::parse_duration)]
    older_than: Option<Duration>,
    /// Show what would be compacted; write nothing.
    #[arg(long)]
    dry_run: bool,
}

pub(crate) async fn run(args: CompactArgs) -> anyhow::Result<ExitCode> {
    let mut config = crate::config::load(args.config.as_deref())?;
    if let Some(archive) = args.archive {
        config.archive.url = archive;
    }
    if let Some(older_than) = args.older_than {
        config.compact.older_than = older_than;
    }
    config.validate()?;
    let older_than = config.compact.older_than;
    let location = config
        .archive
        .open(&config.archive.url)
        .with_context(|| format!("cannot open archive {}", config.archive.url))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    if args.dry_run {
        let ledger = Ledger::load(&location)
            .await
            .with_context(|| format!("cannot read the manifests of {}", location.url))?;
        let plan = rampart_pipeline::compact::plan(
            ledger.state(),
            config.compact.target_file_bytes.as_u64(),
            clock.now_micros(),
            older_than,
        );
        print!("{}", render_plan(location.url.as_str(), older_than, &plan));
        return Ok(ExitCode::SUCCESS);
    }
    let report = rampart_pipeline::compact(&location, &config, clock, older_than)
        .await
        .with_context(|| format!("cannot compact {}", location.url))?;
    print!("{}", render(location.url.as_str(), older_than, &report));
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

fn render(archive: &str, older_than: Duration, r: &CompactReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "rampart compact: hours that ended at least {} ago",
        humantime::format_duration(older_than)
    );
    let _ = writeln!(s, "  archive       {archive}");
    if r.tables.is_empty() {
        let _ = writeln!(s, "  nothing to compact");
    }
    for (table, t) in &r.tables {
        let _ = writeln!(
            s,
            "  {table:<14}{:>6} partitions, {} files into {}, {} rows, {:.1} MiB into {:.1} MiB",
            t.partitions,
            t.files_before,
            t.files_after,
            t.rows,
            mib(t.bytes_before),
            mib(t.bytes_after)
        );
        if t.inputs_left > 0 {
            let _ = writeln!(
                s,
                "  {:<14}{:>6} replaced files not deleted yet (removed by a later clean-up)",
                "", t.inputs_left
            );
        }
    }
    for p in &r.skipped {
        let _ = writeln!(s, "  skipped       {}: {}", p.partition, p.reason);
    }
    for p in &r.failed {
        let _ = writeln!(s, "  failed        {}: {}", p.partition, p.reason);
    }
    if r.orphans_removed > 0 {
        let _ = writeln!(
            s,
            "  cleaned up    {} files that no manifest lists (older than archive.orphan-grace)",
            r.orphans_removed
        );
    }
    s
}

fn render_plan(archive: &str, older_than: Duration, plan: &[Candidate]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "rampart compact --dry-run: hours that ended at least {} ago; nothing written",
        humantime::format_duration(older_than)
    );
    let _ = writeln!(s, "  archive       {archive}");
    if plan.is_empty() {
        let _ = writeln!(s, "  nothing to compact");
    }
    let mut tables: std::collections::BTreeMap<&str, (u64, u64, u64, u64)> = Default::default();
    for c in plan {
        let t = tables.entry(c.table).or_default();
        t.0 += 1;
        t.1 += c.inputs.len() as u64;
        t.2 += c.rows();
        t.3 += c.bytes();
    }
    for (table, (partitions, files, rows, bytes)) in tables {
        let _ = writeln!(
            s,
            "  {table:<14}{partitions:>6} partitions, {files} files, {rows} rows, {:.1} MiB would be rewritten",
            mib(bytes)
        );
    }
    s
}
