//! `rampart`: the command-line face of the pipeline. Thin by design: it resolves the
//! configuration, then calls `rampart-pipeline`, `rampart-archive` or `rampart-gen`.

mod cmd_compact;
mod cmd_export;
mod cmd_gen;
mod cmd_hold;
mod cmd_query;
mod cmd_report;
mod cmd_retention;
mod cmd_rules;
mod cmd_run;
mod cmd_verify;
mod config;
mod trim;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// With the `jemalloc` feature, jemalloc instead of the system's malloc. On a long run
/// glibc's resident set keeps climbing while the live heap stays level (its mmap
/// threshold rises to the largest block freed, up to 32 MiB, so the batches, pages and
/// buffers of a few MiB that the pipeline frees all the time are then carved from its
/// heaps, and the freed room stays resident); jemalloc held it lower (585 -> 418 MiB) but
/// ran 5 to 15% slower. Measured in docs/performance.md, "Flat? A saturated resource set".
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Rampart: streaming security-log analytics with an audit-grade Parquet archive.
#[derive(Debug, Parser)]
#[command(name = "rampart", version, about, long_about = None, after_help = "\
Examples:
  rampart run --config pipelines/demo.toml
  rampart query \"SELECT category, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC\"
  rampart gen --events 100000 --out events.jsonl
  rampart verify --archive s3://audit-bucket/rampart
  rampart export --from 2026-11-01 --to 2026-12-01 --where \"resource_id = 'vm-17'\" --out ./case-17
  rampart hold add case-17 --where \"resource_id = 'vm-17'\" --reason \"litigation 17\"
  rampart retention apply --dry-run
  rampart compact --older-than 2h
  rampart report --month 2026-10

Logs go to stderr; set RAMPART_LOG (e.g. RAMPART_LOG=debug) to change the level.")]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    Run(cmd_run::RunArgs),
    Query(cmd_query::QueryArgs),
    Gen(cmd_gen::GenArgs),
    Rules(cmd_rules::RulesArgs),
    Hold(cmd_hold::HoldArgs),
    Retention(cmd_retention::RetentionArgs),
    Compact(cmd_compact::CompactArgs),
    Verify(cmd_verify::VerifyArgs),
    Export(cmd_export::ExportArgs),
    Report(cmd_report::ReportArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Run(_) => "info",
        _ => "warn",
    };
    init_logging(cli.log_format, default_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => cmd_run::run(args).await,
            Command::Query(args) => cmd_query::run(args).await,
            Command::Gen(args) => cmd_gen::run(args),
            Command::Rules(args) => cmd_rules::run(args).await,
            Command::Hold(args) => cmd_hold::run(args).await,
            Command::Retention(args) => cmd_retention::run(args).await,
            Command::Compact(args) => cmd_compact::run(args).await,
            Command::Verify(args) => cmd_verify::run(args).await,
            Command::Export(args) => cmd_export::run(args).await,
            Command::Report(args) => cmd_report::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            // Each cause once: many errors already name their source in their message.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !msg.contains(&cause) {
                    msg.push_str(": ");
                    msg.push_str(&cause);
                }
            }
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("RAMPART_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rampart commands `docker-compose.yml` gives its containers (JSON-style
    /// `command: [...]` lists of the services built from this repository), and the
    /// paths the `Dockerfile` copies, are ones this build accepts: the compose set-up
    /// cannot be run here (no Docker engine), so what can be checked is checked.
    #[test]
    fn the_docker_compose_commands_parse_and_the_dockerfile_copies_what_exists() {
        let root = rampart_core::package_dir(env!("CARGO_MANIFEST_DIR")).join("../..");
        let compose = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
        let mut checked = 0;
        let mut built_here = false;
        for line in compose.lines() {
            let t = line.trim();
            if t.starts_with("build:") {
                built_here = true;
            } else if t.starts_with("image:") && !t.contains("rampart") {
                built_here = false;
            }
            let Some(list) = t.strip_prefix("command: ") else {
                continue;
            };
            if !built_here || !list.starts_with('[') {
                continue;
            }
            let args: Vec<String> = serde_json::from_str(list).unwrap();
            let parsed = Cli::try_parse_from(std::iter::once("rampart".to_string()).chain(args));
            assert!(parsed.is_ok(), "{list}: {}", parsed.unwrap_err());
            if let Some(i) = list.find("pipelines/") {
                let path: String = list[i..].chars().take_while(|c| *c != '"').collect();
                assert!(
                    root.join(&path).is_file(),
                    "{path} is not in the repository"
                );
            }
            checked += 1;
        }
        assert_eq!(checked, 2, "the generator and rampart services");
        let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
        for line in dockerfile.lines().filter(|l| l.starts_with("COPY ")) {
            if line.contains("--from=") {
                continue;
            }
            let src = line.split_whitespace().nth(1).unwrap();
            assert!(
                root.join(src).exists(),
                "the Dockerfile copies {src}, not in the repository"
            );
        }
        for needed in [
            "COPY sql ",
            "COPY pipelines ",
            "cargo build --release --locked -p rampart-cli",
        ] {
            assert!(
                dockerfile.contains(needed),
                "the Dockerfile lacks `{needed}`"
            );
        }
    }
}
