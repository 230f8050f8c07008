//! `rampart rules`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};

/// Show and check the governance rules (SQL files) without running a pipeline.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  rampart rules list
  rampart rules check
  rampart rules check ./my-rules")]
pub(crate) struct RulesArgs {
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// List the loaded rules: id, version, kind, action, violation and description.
    #[command(
        after_help = "Examples:\n  rampart rules list\n  rampart rules list --config pipelines/demo.toml"
    )]
    List {
        /// Pipeline file whose [rules] section to use.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Rules directory, overriding [rules] dir.
        #[arg(long)]
        dir: Option<String>,
    },
    /// Parse and plan every rule (and the window aggregation) against the event schema;
    /// report every error with its file and position. Exit 0 only when all plan.
    #[command(after_help = "Examples:\n  rampart rules check\n  rampart rules check ./my-rules")]
    Check {
        /// Rules directory; defaults to [rules] dir.
        dir: Option<String>,
        /// Pipeline file whose [rules] section to use.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

pub(crate) async fn run(args: RulesArgs) -> anyhow::Result<ExitCode> {
    let (config_path, dir, list) = match args.command {
        RulesCommand::List { config, dir } => (config, dir, true),
        RulesCommand::Check { dir, config } => (config, dir, false),
    };
    let mut config = crate::config::load(config_path.as_deref())?;
    if let Some(dir) = dir {
        config.rules.dir = dir;
    }
    config.validate()?;
    match rampart_window::check_rules(&config.rules).await {
        Ok(rules) => {
            if list {
                println!(
                    "{:<24} {:>7}  {:<6}  {:<26} {:<9} description",
                    "id", "version", "kind", "action", "violation"
                );
                for r in &rules {
                    println!(
                        "{:<24} {:>7}  {:<6}  {:<26} {:<9} {}",
                        r.id,
                        r.version,
                        r.kind.as_str(),
                        r.action,
                        if r.violation { "yes" } else { "no" },
                        r.description
                    );
                }
            } else {
                println!(
                    "{} rules in {} and the window aggregation {} plan: ok",
                    rules.len(),
                    config.rules.dir,
                    config.rules.window_sql
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            bail!("{} rule file(s) failed to load or plan", errors.len());
        }
    }
}
