//! The metrics endpoint of `rampart run`, scraped while the run is going: counters against
//! the generator's ground truth and the reference implementation of windows and rules,
//! Kafka consumer lag against the broker's own offsets, and `/healthz`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::kafka::{broker, create_topic, ok_within, produce, run_kafka_settings, stop};
use crate::windows::{live_counts, stream};
use crate::*;

/// A port nobody listens on now.
pub(crate) fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// `GET path` over plain HTTP/1.1: the status code and the body; `None` while nothing
/// listens.
pub(crate) fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Every sample of a scrape of `/metrics`, by series (`name{labels}`).
pub(crate) fn scrape(addr: SocketAddr) -> Option<BTreeMap<String, f64>> {
    let (status, body) = get(addr, "/metrics")?;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.ends_with("# EOF\n"),
        "an incomplete exposition:\n{body}"
    );
    Some(
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_string(), value.parse().ok()?))
            })
            .collect(),
    )
}

/// Scrapes until `done` holds for a scrape, at most `secs` seconds; returns that scrape.
fn scrape_until(
    addr: SocketAddr,
    secs: u64,
    what: &str,
    mut done: impl FnMut(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < Duration::from_secs(secs) {
        if let Some(m) = scrape(addr) {
            if done(&m) {
                return m;
            }
            last = Some(m);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no scrape showed {what} within {secs} s; the last:\n{last:#?}");
}

/// The value of `series`, 0 when absent.
pub(crate) fn value(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

/// `rampart_<name>` series by the value of `label`.
fn by_label(m: &BTreeMap<String, f64>, name: &str, label: &str) -> BTreeMap<String, f64> {
    let prefix = format!("{name}{{{label}=\"");
    m.iter()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix(&prefix)?;
            Some((rest.split_once('"')?.0.to_string(), *v))
        })
        .collect()
}

/// The series of [`by_label`] that are not 0, as counts.
fn counted(m: &BTreeMap<String, f64>, name: &str, label: &str) -> BTreeMap<String, u64> {
    by_label(m, name, label)
        .into_iter()
        .filter(|(_, v)| *v != 0.0)
        .map(|(k, v)| (k, v as u64))
        .collect()
}

/// Waits for `child` to exit, at most a minute; returns its stdout.
fn wait_output(child: Child) -> String {
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the run took over a minute to end"
    );
    assert!(
        out.status.success(),
        "rampart run failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn micros_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

#[test]
fn a_live_run_serves_what_it_processed() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(
        dir.path(),
        "in.jsonl",
        rampart_gen::GenConfig {
            bad_rate: 0.01,
            ..stream(20_000, 95)
        },
    );
    let expected = live_counts(&g);
    assert!(
        expected.late > 0
            && g.stats.bad.len() > 3
            && expected.windows_closed > 0
            && expected.policy_hits.len() == 4
            && !expected.open_violations.is_empty(),
        "a stream without late events, dead letters of several kinds, closed windows, \
         hits of every rule or open violations: {expected:?} {:?}",
        g.stats
    );
    let archive = dir.path().join("archive");
    let addr = free_addr();
    let mut child = rampart()
        // Windows close only by event time here (no idle advance during the test).
        .env("RAMPART_WINDOW__IDLE_TIMEOUT", "1h")
        .env("RAMPART_SINK__ROLL_INTERVAL", "1s")
        .args(["run", "--source", "-", "--archive"])
        .arg(&archive)
        .args(["--metrics-addr", &addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Every line in, and stdin left open: the run goes on while it is scraped.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&std::fs::read(&g.path).unwrap()).unwrap();
    stdin.flush().unwrap();

    let total = g.stats.total() as f64;
    let good = g.stats.good as f64;
    let bad = g.stats.bad_total() as f64;
    let before = micros_now();
    let m = scrape_until(addr, 120, "every line processed and committed", |m| {
        value(m, "rampart_messages_read_total") == total
            && value(m, "rampart_rows_written_total{table=\"events\"}") == good
            && value(m, "rampart_rows_committed_total{table=\"events\"}") == good
            && value(m, "rampart_rows_committed_total{table=\"dead_letters\"}") == bad
    });
    let after = micros_now();

    // Messages and dead letters, against the generator's ground truth.
    let reasons = by_label(&m, "rampart_dead_letters_total", "reason");
    for (reason, n) in &reasons {
        let truth = g.stats.bad.get(reason.as_str()).copied().unwrap_or(0);
        assert_eq!(*n, truth as f64, "dead letters of reason {reason}");
    }
    for reason in g.stats.bad.keys() {
        assert!(reasons.contains_key(*reason), "no series for {reason}");
    }
    assert_eq!(
        value(&m, "rampart_rows_written_total{table=\"dead_letters\"}"),
        bad
    );

    // Windows and rules, against the reference: every line processed, and only the
    // windows its largest event time closed are out.
    assert_eq!(value(&m, "rampart_late_events_total"), expected.late as f64);
    assert_eq!(
        value(&m, "rampart_windows_closed_total"),
        expected.windows_closed as f64
    );
    assert_eq!(
        counted(&m, "rampart_policy_hits_total", "rule"),
        expected.policy_hits
    );
    assert_eq!(
        counted(&m, "rampart_open_violations", "rule"),
        expected.open_violations
    );
    let hit_rows: u64 = expected.policy_hits.values().sum();
    assert_eq!(
        value(&m, "rampart_alerts_total"),
        (hit_rows + expected.violation_changes) as f64
    );

    // Watermark lag: the scrape's now minus the largest event time, on partition 0.
    let lag = value(&m, "rampart_watermark_lag_seconds{partition=\"0\"}");
    let (lo, hi) = (
        (before - expected.max_ts) as f64 / 1e6,
        (after - expected.max_ts) as f64 / 1e6,
    );
    assert!(
        lo <= lag && lag <= hi,
        "watermark lag {lag} outside [{lo}, {hi}]"
    );

    // Commits, queues and stages: everything drained, nothing held.
    let commits = value(&m, "rampart_commits_total");
    assert!(commits >= 1.0);
    assert_eq!(value(&m, "rampart_commit_duration_seconds_count"), commits);
    assert!(value(&m, "rampart_batch_latency_seconds_count") >= 1.0);
    // The run sets no capacity: each queue has the default's.
    let capacity = rampart_core::config::Config::default()
        .pipeline
        .channel_capacity as f64;
    for queue in ["raw", "decoded", "sink"] {
        assert_eq!(
            value(&m, &format!("rampart_queue_capacity{{queue=\"{queue}\"}}")),
            capacity
        );
        assert_eq!(
            m.get(&format!("rampart_queue_depth{{queue=\"{queue}\"}}")),
            Some(&0.0),
            "{queue}"
        );
    }
    for stage in ["decode", "window", "sink"] {
        assert!(m.contains_key(&format!("rampart_stage_busy_seconds{{stage=\"{stage}\"}}")));
    }
    assert_eq!(get(addr, "/healthz"), Some((200, "ok\n".to_string())));
    assert_eq!(get(addr, "/nothing").map(|r| r.0), Some(404));

    // The end of the input ends the run; its summary and archive agree.
    drop(stdin);
    let summary = wait_output(child);
    assert_eq!(summary_count(&summary, "late events"), expected.late);
    assert_eq!(summary_count(&summary, "accepted"), g.stats.good);
    let events = query_json(&archive, "SELECT count(*) AS n FROM events");
    assert_eq!(events[0]["n"].as_u64(), Some(g.stats.good));
    assert!(
        get(addr, "/healthz").is_none(),
        "the endpoint outlived the run"
    );
}

#[test]
fn a_bad_or_taken_metrics_address_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "").unwrap();
    let archive = dir.path().join("archive");
    let run = |addr: &str| {
        fails(
            rampart()
                .args(["run", "--source"])
                .arg(&input)
                .arg("--archive")
                .arg(&archive)
                .args(["--metrics-addr", addr]),
        )
    };
    let err = run("localhost:9464");
    assert!(
        err.contains("metrics.addr") && err.contains("IP:PORT"),
        "{err}"
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = run(&addr);
    assert!(
        err.contains(&format!("cannot serve metrics on {addr}"))
            && err.contains("in use")
            && err.contains("--metrics-addr"),
        "{err}"
    );
    // The same through the config file's [metrics] addr.
    let config = dir.path().join("p.toml");
    std::fs::write(&config, "[metrics]\naddr = \"127.0.0.1\"\n").unwrap();
    let err = fails(
        rampart()
            .arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--source")
            .arg(&input),
    );
    assert!(err.contains("metrics.addr"), "{err}");
}

/// Records of each partition in the archive (events and dead letters), by partition.
fn archived_per_partition(archive: &Path) -> BTreeMap<String, f64> {
    query_json(
        archive,
        "SELECT kafka_partition AS p, count(*) AS n FROM \
         (SELECT kafka_partition FROM events UNION ALL SELECT kafka_partition FROM dead_letters) \
         GROUP BY 1",
    )
    .into_iter()
    .map(|r| (r["p"].to_string(), r["n"].as_f64().unwrap()))
    .collect()
}

#[test]
fn kafka_consumer_lag_per_partition_shows_the_records_not_yet_archived_then_zero() {
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = create_topic(&brokers, 4);
    let group = format!("g-{topic}");
    let archive = dir.path().join("archive");
    // A first run reads the topic to its end and commits the group's offsets there.
    produce(&brokers, &topic, 3_000, 96);
    ok_within(
        run_kafka_settings(&brokers, &topic, &archive, &group, "").arg("--until-end"),
        120,
    );
    let first = archived_per_partition(&archive);
    assert_eq!(first.values().sum::<f64>(), 3_000.0);
    produce(&brokers, &topic, 5_000, 97);

    // A live member of the same group that commits only every 15 s: until its first
    // commit, the lag of each partition is what was produced since the first run.
    let addr = free_addr();
    let child = run_kafka_settings(
        &brokers,
        &topic,
        &archive,
        &group,
        "\"statistics.interval.ms\" = \"500\"\n",
    )
    .env("RAMPART_SINK__ROLL_INTERVAL", "15s")
    .env("RAMPART_ARCHIVE__ORPHAN_GRACE", "15s")
    .args(["--metrics-addr", &addr.to_string()])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let lag = |m: &BTreeMap<String, f64>| {
        let prefix = format!("rampart_kafka_consumer_lag{{topic=\"{topic}\",partition=\"");
        m.iter()
            .filter_map(|(k, v)| {
                Some((k.strip_prefix(&prefix)?.split_once('"')?.0.to_string(), *v))
            })
            .collect::<BTreeMap<String, f64>>()
    };
    let m = scrape_until(addr, 60, "the lag of all four partitions", |m| {
        lag(m).len() == 4
    });
    assert_eq!(
        value(&m, "rampart_commits_total"),
        0.0,
        "a commit came before the lag was first reported; lengthen the roll interval"
    );
    let before_commit = lag(&m);

    // Once every record is read and committed, every partition's lag is 0.
    let zero: BTreeMap<String, f64> = (0..4).map(|p| (p.to_string(), 0.0)).collect();
    let m = scrape_until(addr, 60, "zero lag on every partition", |m| {
        value(m, "rampart_commits_total") >= 1.0 && lag(m) == zero
    });
    assert_eq!(value(&m, "rampart_messages_read_total"), 5_000.0);
    assert_eq!(
        by_label(&m, "rampart_watermark_lag_seconds", "partition")
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        ["0", "1", "2", "3"]
    );
    assert_eq!(get(addr, "/healthz"), Some((200, "ok\n".to_string())));
    stop(child, "the live member");

    // Until the first commit, the lag of each partition was the records the group had
    // not archived: those produced since the first run.
    let behind: BTreeMap<String, f64> = archived_per_partition(&archive)
        .into_iter()
        .map(|(p, n)| {
            let before = first.get(&p).copied().unwrap_or(0.0);
            (p, n - before)
        })
        .collect();
    assert_eq!(behind.values().sum::<f64>(), 5_000.0);
    assert_eq!(before_commit, behind, "lag before the first commit");
}

#[test]
fn a_long_run_logs_a_progress_line_with_what_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(
        dir.path(),
        "in.jsonl",
        rampart_gen::GenConfig {
            bad_rate: 0.01,
            ..stream(5_000, 96)
        },
    );
    let mut child = rampart()
        .env("RAMPART_LOG", "info")
        .env("RAMPART_PIPELINE__PROGRESS_INTERVAL", "1s")
        .args(["run", "--log-format", "json", "--source", "-", "--archive"])
        .arg(dir.path().join("archive"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&std::fs::read(&g.path).unwrap()).unwrap();
    stdin.flush().unwrap();
    // Stdin stays open: the run goes on, and logs its progress every second.
    std::thread::sleep(Duration::from_millis(3500));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let log = String::from_utf8(out.stderr).unwrap();
    let progress: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "progress")
        .collect();
    assert!(progress.len() >= 2, "progress lines:\n{log}");
    let last = &progress[progress.len() - 1]["fields"];
    assert_eq!(last["messages"].as_u64(), Some(g.stats.total()), "{last}");
    assert_eq!(
        last["dead_letters"].as_u64(),
        Some(g.stats.bad_total()),
        "{last}"
    );
}
