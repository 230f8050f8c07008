//! `rampart hold add|list|release`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use rampart_archive::Archive;
use rampart_archive::holds::{place_hold, release_hold};
use rampart_core::SystemClock;
use rampart_core::ledger::Ledger;

/// Legal holds: keep every file holding a row that matches a SQL predicate, whatever
/// its retention period, until the hold is released. Holds and releases are recorded in
/// the archive's chain of manifests.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  rampart hold add case-2026-114 --where \"resource_id = 'vm-17'\" --reason \"litigation 2026-114\"
  rampart hold add breach-nov --where \"ts >= TIMESTAMP '2026-11-01T00:00:00Z' AND workload = 'payments'\" --tables events,policy_hits
  rampart hold list
  rampart hold release case-2026-114 --reason \"case closed\"")]
pub(crate) struct HoldArgs {
    #[command(subcommand)]
    command: HoldCommand,
    /// Archive location; defaults to [archive] url of --config, else ./archive.
    #[arg(long, global = true)]
    archive: Option<String>,
    /// Pipeline file whose [archive] section to use.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum HoldCommand {
    /// Place a hold.
    Add {
        /// The hold's name (letters, digits, `.`, `_`, `-`).
        name: String,
        /// SQL predicate over a table's columns; files holding a matching row are kept.
        #[arg(long = "where")]
        predicate: String,
        /// Why (case number, request); recorded with the hold.
        #[arg(long)]
        reason: Option<String>,
        /// Tables the hold covers, comma-separated; default: every table whose columns the
        /// predicate names.
        #[arg(long, value_delimiter = ',')]
        tables: Option<Vec<String>>,
    },
    /// List the holds in force.
    List,
    /// Release a hold.
    Release {
        /// The hold's name.
        name: String,
        /// Why; recorded with the release.
        #[arg(long)]
        reason: Option<String>,
    },
}

pub(crate) async fn run(args: HoldArgs) -> anyhow::Result<ExitCode> {
    let (config, location) = crate::config::open_archive(args.config.as_deref(), args.archive)?;
    match args.command {
        HoldCommand::Add {
            name,
            predicate,
            reason,
            tables,
        } => {
            let archive = Archive::open_with(location, &config.query).await?;
            let placed = place_hold(&archive, &name, &predicate, tables, reason, &SystemClock)
                .await
                .with_context(|| format!("cannot place hold `{name}`"))?;
            println!(
                "hold `{name}` placed (manifest {})",
                placed.committed.manifest.sequence
            );
            for (table, rows) in &placed.matching_rows {
                println!("  {table:<14}{rows:>12} rows match now");
            }
        }
        HoldCommand::List => {
            let ledger = Ledger::load(&location).await?;
            let holds = &ledger.state().holds;
            if holds.is_empty() {
                println!("no holds in force");
            }
            for h in holds.values() {
                println!("{}", h.hold.name);
                println!("  where    {}", h.hold.predicate);
                println!("  tables   {}", h.hold.tables.join(", "));
                if let Some(reason) = &h.hold.reason {
                    println!("  reason   {reason}");
                }
                println!(
                    "  placed   {} by {} (manifest {})",
                    h.placed_at,
                    h.placed_by_user.as_deref().unwrap_or("unknown user"),
                    h.placed_by
                );
            }
        }
        HoldCommand::Release { name, reason } => {
            let committed = release_hold(&location, &name, reason, &SystemClock)
                .await
                .with_context(|| format!("cannot release hold `{name}`"))?;
            println!(
                "hold `{name}` released (manifest {})",
                committed.manifest.sequence
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
