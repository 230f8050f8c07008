//! End-to-end tests of the `rampart` binary: real processes, real files, independent
//! checks (the generator's ground truth, DuckDB and pyarrow, the input itself).

mod cli;
mod compact;
mod crash;
mod export;
mod external;
mod faults;
mod governance;
mod kafka;
mod metrics;
mod pipeline;
mod presets;
mod query;
mod reconstruct;
mod report;
mod rules;
mod verify;
mod windows;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rampart_gen::{GenConfig, GenStats, MessageKind};

/// The repository root: the working directory of every run, so that the default rule
/// files (`sql/rules`, `sql/windows`) are found as they are by a user in a checkout.
pub(crate) fn repo_root() -> PathBuf {
    rampart_core::package_dir(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The binary under test.
pub(crate) fn rampart() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rampart"));
    c.env("RAMPART_LOG", "warn").current_dir(repo_root());
    c
}

/// Runs a command and asserts that it succeeded.
/// The standard error of a run the test spawns, kept in a file rather than a pipe (a
/// pipe nobody drains fills up and stalls the run), to read back whenever the test
/// needs to show or search it.
pub(crate) struct RunLog(PathBuf);

impl RunLog {
    /// The log `run.log` in `dir`.
    pub(crate) fn in_dir(dir: &Path) -> Self {
        Self(dir.join("run.log"))
    }

    /// Spawns `cmd` with its standard error going to this log.
    pub(crate) fn spawn(&self, cmd: &mut Command) -> std::process::Child {
        cmd.stderr(std::fs::File::create(&self.0).unwrap())
            .spawn()
            .unwrap()
    }

    /// What the run has logged so far.
    pub(crate) fn text(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap_or_default()
    }
}

pub(crate) fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn rampart");
    assert!(
        out.status.success(),
        "{cmd:?} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command and asserts that it failed; returns its stderr.
pub(crate) fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn rampart");
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded but should have failed\nstdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A generated stream written to a file, with the generator's ground truth.
pub(crate) struct Generated {
    pub(crate) path: PathBuf,
    pub(crate) stats: GenStats,
    /// The intended kind of each line, line 1 first.
    pub(crate) kinds: Vec<MessageKind>,
}

/// Writes a generated stream to `dir/name`.
pub(crate) fn generate(dir: &Path, name: &str, cfg: GenConfig) -> Generated {
    use std::io::Write;
    let path = dir.join(name);
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut stats = GenStats::default();
    let mut kinds = Vec::new();
    for m in rampart_gen::Generator::new(cfg).unwrap() {
        file.write_all(&m.payload).unwrap();
        file.write_all(b"\n").unwrap();
        stats.record(&m.kind);
        kinds.push(m.kind);
    }
    file.flush().unwrap();
    Generated { path, stats, kinds }
}

/// `rampart run --source SOURCE --archive ARCHIVE`, asserting success; returns stdout.
pub(crate) fn run_pipeline(source: &Path, archive: &Path) -> String {
    run_pipeline_env(source, archive, [] as [(&str, &str); 0])
}

/// [`run_pipeline`] with `env` (`RAMPART_*` settings) set.
pub(crate) fn run_pipeline_env<K, V>(
    source: &Path,
    archive: &Path,
    env: impl IntoIterator<Item = (K, V)>,
) -> String
where
    K: AsRef<std::ffi::OsStr>,
    V: AsRef<std::ffi::OsStr>,
{
    let out = ok(rampart()
        .envs(env)
        .arg("run")
        .arg("--source")
        .arg(source)
        .arg("--archive")
        .arg(archive)
        .arg("--until-end"));
    String::from_utf8(out.stdout).unwrap()
}

/// The number after `label` on its line of a run's summary (`late events      3`).
pub(crate) fn summary_count(summary: &str, label: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{label} <N>` line in the summary:\n{summary}"))
}

/// `rampart query --format json`, parsed.
pub(crate) fn query_json(
    archive: &Path,
    sql: &str,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let out = ok(rampart()
        .args(["query", "--format", "json", "--archive"])
        .arg(archive)
        .arg(sql));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The input lines of a JSON-lines file, numbered from 1, without their `\n`.
pub(crate) fn input_lines(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let data = std::fs::read(path).unwrap();
    let body = data.strip_suffix(b"\n").unwrap_or(&data);
    body.split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.to_vec()))
        .collect()
}

/// The test S3 server's endpoint, or `None` when none runs (refused when the services
/// are required).
pub(crate) fn s3_endpoint() -> Option<String> {
    let endpoint = std::env::var("RAMPART_TEST_S3_ENDPOINT").ok();
    assert!(
        endpoint.is_some() || std::env::var_os("RAMPART_REQUIRE_SERVICES").is_none(),
        "RAMPART_REQUIRE_SERVICES is set but no S3 server is: run scripts/test.sh"
    );
    endpoint
}

/// A small generator config for tests.
pub(crate) fn small(events: u64, seed: u64) -> GenConfig {
    GenConfig {
        events,
        seed,
        ..GenConfig::default()
    }
}

/// Every source line once: (rows, distinct lines, min line, max line) over `events` and
/// `dead_letters` together.
pub(crate) fn line_coverage(archive: &Path) -> (u64, u64, u64, u64) {
    let rows = query_json(
        archive,
        "SELECT count(*) AS n, count(DISTINCT source_line) AS d, \
                min(source_line) AS lo, max(source_line) AS hi \
         FROM (SELECT source_line FROM events UNION ALL SELECT source_line FROM dead_letters)",
    );
    let get = |k: &str| rows[0][k].as_u64().unwrap_or(0);
    (get("n"), get("d"), get("lo"), get("hi"))
}

/// Every row of `attack_rates`, `policy_hits` and `violations` (the columns that depend
/// only on the events, not on when they were processed), one string per row, sorted:
/// two runs over the same input compare equal exactly when their window results do.
pub(crate) fn window_results(archive: &Path) -> Vec<String> {
    let mut rows = Vec::new();
    for (table, columns) in [
        (
            "attack_rates",
            "window_start, window_end, resource_id, workload, category, event_count, rate_per_min",
        ),
        (
            "policy_hits",
            "window_start, window_end, resource_id, workload, rule_id, rule_version, action, \
             category, hit_count, prev_count, increase_pct",
        ),
        (
            "violations",
            "changed_at, resource_id, workload, rule_id, rule_version, action, state, \
             opened_at, resolved_at, opened_by, resolved_by",
        ),
    ] {
        for row in query_json(archive, &format!("SELECT {columns} FROM {table}")) {
            rows.push(format!("{table} {}", serde_json::Value::Object(row)));
        }
    }
    rows.sort();
    rows
}

/// Asserts that `archive` holds the window results `expected` (from [`window_results`]),
/// row count first; `differ` says what differs when the rows do.
#[track_caller]
pub(crate) fn assert_window_results(archive: &Path, expected: &[String], differ: &str) {
    let got = window_results(archive);
    assert_eq!(got.len(), expected.len(), "window result rows");
    assert!(got == expected, "{differ}");
}
