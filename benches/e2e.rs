//! End to end: a generated JSON-lines file through decode and the Parquet archive.
//!
//! cargo bench -p rampart-benches --bench e2e
//!
//! Environment: `RAMPART_BENCH_EVENTS` (default 1,000,000), `RAMPART_BENCH_RUNS`
//! (default 5). Prints the median throughput over the runs and the batch latency
//! percentiles (chunk read to rows in the archive writer) from hdrhistogram.

use std::sync::Arc;

use rampart_core::{Config, SystemClock};
use rampart_pipeline::{RunOptions, run};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter we do not use.
    let events = env_u64("RAMPART_BENCH_EVENTS", 1_000_000);
    let runs = env_u64("RAMPART_BENCH_RUNS", 5).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("events.jsonl");
    let stats = rampart_benches::write_file(rampart_benches::bench_config(events), &input)
        .expect("write input");
    let input_bytes = std::fs::metadata(&input).map(|m| m.len()).unwrap_or(0);
    println!(
        "e2e: {} messages ({} malformed), {:.1} MiB, {runs} runs",
        stats.total(),
        stats.bad_total(),
        input_bytes as f64 / 1048576.0
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut results = Vec::new();
    for i in 0..runs {
        let mut config = Config::default();
        let sql = rampart_core::package_dir(env!("CARGO_MANIFEST_DIR")).join("../sql");
        config.rules.dir = sql.join("rules").to_string_lossy().into_owned();
        config.rules.window_sql = sql
            .join("windows/attack_counts.sql")
            .to_string_lossy()
            .into_owned();
        config.source.url = Some(input.to_string_lossy().into_owned());
        config.archive.url = dir
            .path()
            .join(format!("archive-{i}"))
            .to_string_lossy()
            .into_owned();
        let options = RunOptions {
            until_end: true,
            clock: Arc::new(SystemClock),
            handle_signals: false,
        };
        let summary = runtime
            .block_on(run(&config, options))
            .expect("pipeline run");
        assert_eq!(
            summary.messages,
            stats.total(),
            "every message accounted for"
        );
        println!(
            "  run {i}: {:.2}s, {:.0} events/s, {:.1} MiB/s, batch latency {}, alert latency {}",
            summary.elapsed.as_secs_f64(),
            summary.messages_per_sec(),
            summary.input_bytes_per_sec() / 1048576.0,
            summary.batch_latency,
            summary.windows.alert_latency,
        );
        results.push(summary);
        let _ = std::fs::remove_dir_all(dir.path().join(format!("archive-{i}")));
    }
    results.sort_by_key(|s| s.elapsed);
    let median = &results[results.len() / 2];
    println!(
        "e2e median: {:.2}s, {:.0} events/s, {:.1} MiB/s; batch latency {}; alert latency {}",
        median.elapsed.as_secs_f64(),
        median.messages_per_sec(),
        median.input_bytes_per_sec() / 1048576.0,
        median.batch_latency,
        median.windows.alert_latency,
    );
}
