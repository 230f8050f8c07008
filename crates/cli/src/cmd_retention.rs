//! `rampart retention apply`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use rampart_archive::retention::{apply_retention, plan_retention};
use rampart_core::ledger::Ledger;
use rampart_core::{Clock, SystemClock};

/// Retention: remove the files whose retention period (recorded with each file when it
/// was written) has passed, unless a legal hold covers them. Every removal is recorded
/// in the archive's chain with the file's hash and the reason.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  rampart retention apply --dry-run
  rampart retention apply --config pipelines/demo.toml")]
pub(crate) struct RetentionArgs {
    #[command(subcommand)]
    command: RetentionCommand,
}

#[derive(Debug, Subcommand)]
enum RetentionCommand {
    /// Remove expired files that no hold covers.
    Apply {
        /// Show what would be removed; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also remove files whose recorded period is below retention.floor.
        #[arg(long)]
        allow_short_retention: bool,
        /// Archive location; defaults to [archive] url of --config, else ./archive.
        #[arg(long)]
        archive: Option<String>,
        /// Pipeline file whose [archive] and [retention] sections to use.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

pub(crate) async fn run(args: RetentionArgs) -> anyhow::Result<ExitCode> {
    let RetentionCommand::Apply {
        dry_run,
        allow_short_retention,
        archive,
        config,
    } = args.command;
    let (config, location) = crate::config::open_archive(config.as_deref(), archive)?;
    let mut ledger = Ledger::load(&location).await?;
    let clock = SystemClock;
    let plan = plan_retention(
        &location,
        ledger.state(),
        clock.now_micros(),
        config.retention.floor,
        allow_short_retention,
    )
    .await?;
    let verb = if dry_run { "would remove" } else { "removing" };
    for f in &plan.expired {
        println!(
            "{verb} {} ({} rows, retention {} ended {})",
            f.entry.path, f.entry.rows, f.entry.retention, f.entry.retain_until
        );
    }
    for (f, holds) in &plan.held {
        println!("kept     {} (held by {})", f.entry.path, holds.join(", "));
    }
    for f in &plan.below_floor {
        println!(
            "kept     {} (recorded retention {} is below the floor {}; pass --allow-short-retention to remove it)",
            f.entry.path,
            f.entry.retention,
            rampart_core::config::format_period(config.retention.floor)
        );
    }
    if dry_run {
        println!(
            "dry run: {} files would be removed, {} held, {} below the floor, {} not expired",
            plan.expired.len(),
            plan.held.len(),
            plan.below_floor.len(),
            plan.retained
        );
        return Ok(ExitCode::SUCCESS);
    }
    let applied = apply_retention(&mut ledger, &plan, &clock).await?;
    let manifests: Vec<String> = applied
        .manifests
        .iter()
        .map(|c| c.manifest.sequence.to_string())
        .collect();
    println!(
        "removed {} files (recorded in manifest {}), {} held, {} below the floor, {} not expired",
        applied.removed,
        if manifests.is_empty() {
            "none".to_string()
        } else {
            manifests.join(", ")
        },
        plan.held.len(),
        plan.below_floor.len(),
        plan.retained
    );
    if applied.delete_failed > 0 {
        println!(
            "{} files could not be deleted from the store; they are out of the archive and the next clean-up deletes them",
            applied.delete_failed
        );
    }
    Ok(ExitCode::SUCCESS)
}
