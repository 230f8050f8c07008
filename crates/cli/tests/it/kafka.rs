//! The Kafka source against the real Kafka-protocol broker that scripts/test.sh starts:
//! every record archived exactly once with its coordinates, through restarts and kills.

use std::time::{Duration, Instant};

use crate::*;

/// The broker's address, or `None` when no broker runs (refused when one is required).
pub(crate) fn broker() -> Option<String> {
    match std::env::var("RAMPART_TEST_KAFKA") {
        Ok(b) => Some(b),
        Err(_) => {
            assert!(
                std::env::var_os("RAMPART_REQUIRE_SERVICES").is_none(),
                "RAMPART_REQUIRE_SERVICES is set but no broker is: run scripts/test.sh"
            );
            None
        }
    }
}

/// A new topic with `partitions` partitions.
pub(crate) fn create_topic(brokers: &str, partitions: i32) -> String {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let name = format!("t-{}", uuid_like());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .unwrap();
        let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
        let results = admin
            .create_topics(&[topic], &AdminOptions::new())
            .await
            .unwrap();
        for r in results {
            r.unwrap();
        }
    });
    name
}

fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{t:x}-{}", std::process::id())
}

/// `rampart gen` into the topic: the same messages as `generate(.., small(events, seed))`.
pub(crate) fn produce(brokers: &str, topic: &str, events: u64, seed: u64) {
    ok(rampart()
        .args([
            "gen",
            "--events",
            &events.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .args(["--kafka", &format!("{brokers}/{topic}")]));
}

/// Short group timeouts: the test broker waits about half a session timeout for members
/// to join (20 s with librdkafka's default of 45 s).
const GROUP_SETTINGS: &str =
    "[kafka.rdkafka]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n";

fn run_kafka(brokers: &str, topic: &str, archive: &Path) -> Command {
    run_kafka_group(brokers, topic, archive, &format!("g-{topic}"))
}

fn run_kafka_group(brokers: &str, topic: &str, archive: &Path, group: &str) -> Command {
    run_kafka_settings(brokers, topic, archive, group, "")
}

/// [`run_kafka_group`] with more `[kafka.rdkafka]` lines (`"key" = "value"`).
pub(crate) fn run_kafka_settings(
    brokers: &str,
    topic: &str,
    archive: &Path,
    group: &str,
    rdkafka: &str,
) -> Command {
    let config = archive.with_extension("toml");
    std::fs::write(&config, format!("{GROUP_SETTINGS}{rdkafka}")).unwrap();
    let mut c = rampart();
    c.env("RAMPART_SINK__ROLL_INTERVAL", "1s")
        .env("RAMPART_ARCHIVE__ORPHAN_GRACE", "1s")
        .env("RAMPART_RULES__ENABLED", "false")
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--source")
        .arg(format!("kafka://{brokers}/{topic}?group={group}"))
        .arg("--archive")
        .arg(archive);
    c
}

/// Runs `cmd` to its end, at most `secs` seconds (then kills it and fails with its log):
/// a consumer that never gets its partitions must not hang the suite.
pub(crate) fn ok_within(cmd: &mut Command, secs: u64) {
    let mut child = cmd
        .env("RAMPART_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).ok();
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(secs) {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = log.join().unwrap();
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!("{cmd:?} failed ({s}):\n{log}"),
        None => panic!("{cmd:?} did not finish within {secs} s:\n{log}"),
    }
}

/// (rows, distinct (partition, offset), rows of another topic) over events and dead letters.
fn coverage(archive: &Path, topic: &str) -> (u64, u64, u64) {
    let rows = query_json(
        archive,
        &format!(
            "SELECT count(*) AS n, count(DISTINCT (kafka_partition, kafka_offset)) AS d, \
                    sum(CASE WHEN kafka_topic = '{topic}' THEN 0 ELSE 1 END) AS other \
             FROM (SELECT kafka_topic, kafka_partition, kafka_offset FROM events UNION ALL \
                   SELECT kafka_topic, kafka_partition, kafka_offset FROM dead_letters)"
        ),
    );
    let get = |k: &str| rows[0][k].as_u64().unwrap_or(0);
    (get("n"), get("d"), get("other"))
}

#[test]
fn records_from_kafka_are_archived_once_with_their_coordinates() {
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = create_topic(&brokers, 4);
    let truth = generate(dir.path(), "truth.jsonl", small(20_000, 81));
    produce(&brokers, &topic, 20_000, 81);
    let archive = dir.path().join("archive");
    ok_within(
        run_kafka(&brokers, &topic, &archive).arg("--until-end"),
        120,
    );
    let total = truth.stats.total();
    assert_eq!(coverage(&archive, &topic), (total, total, 0));
    let good = query_json(&archive, "SELECT count(*) AS n FROM events");
    assert_eq!(good[0]["n"].as_u64(), Some(truth.stats.good));
    // Keyed by resource: every event's key is its resource_id; all four partitions used.
    let keys = query_json(
        &archive,
        "SELECT count(*) AS n FROM events WHERE CAST(kafka_key AS VARCHAR) <> resource_id",
    );
    assert_eq!(keys[0]["n"].as_u64(), Some(0));
    let parts = query_json(
        &archive,
        "SELECT count(DISTINCT kafka_partition) AS n FROM events",
    );
    assert_eq!(parts[0]["n"].as_u64(), Some(4));

    // The group's offsets were committed after the archive's: a second run adds nothing.
    ok_within(
        run_kafka(&brokers, &topic, &archive).arg("--until-end"),
        120,
    );
    assert_eq!(coverage(&archive, &topic), (total, total, 0));
}

/// A run with the shipped rules on (the other tests here archive only). The idle
/// timeout, the one place where wall-clock time enters the results, is set beyond the
/// test's length, so the results depend only on the records.
fn with_rules(cmd: &mut Command) -> &mut Command {
    cmd.env("RAMPART_RULES__ENABLED", "true")
        .env("RAMPART_WINDOW__IDLE_TIMEOUT", "10m")
}

/// A seed for the moments of the kills, printed so a failure can be replayed with
/// `RAMPART_TEST_SEED`.
fn kill_seed() -> u64 {
    let seed = std::env::var("RAMPART_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64
        });
    eprintln!("kill moments from RAMPART_TEST_SEED={seed}");
    seed
}

#[test]
fn a_kafka_run_killed_at_random_moments_archives_every_record_once_with_the_uninterrupted_windows()
{
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = create_topic(&brokers, 4);
    let truth = generate(dir.path(), "truth.jsonl", small(300_000, 82));
    produce(&brokers, &topic, 300_000, 82);

    // The reference: one uninterrupted run over the same records (a group of its own).
    let whole = dir.path().join("uninterrupted");
    ok_within(
        with_rules(&mut run_kafka_group(
            &brokers,
            &topic,
            &whole,
            &format!("whole-{topic}"),
        ))
        .arg("--until-end"),
        180,
    );
    let expected = window_results(&whole);
    assert!(
        expected.iter().any(|r| r.starts_with("policy_hits"))
            && expected.iter().any(|r| r.starts_with("attack_rates"))
            && expected.iter().any(|r| r.starts_with("violations")),
        "the input produces window results"
    );

    let archive = dir.path().join("archive");
    let manifests =
        || std::fs::read_dir(archive.join("_rampart/manifests")).map_or(0, |d| d.count());
    let mut rng = kill_seed();
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut killed = 0;
    for _ in 0..3 {
        let mut child = with_rules(&mut run_kafka(&brokers, &topic, &archive))
            .arg("--until-end")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // No commit or one commit in, then up to 0.7 s more: a kill lands before the
        // first commit, between commits, or while one is being written.
        let before = manifests();
        let wait_for = next(2) as usize;
        let started = Instant::now();
        while manifests() < before + wait_for
            && started.elapsed() < Duration::from_secs(90)
            && child.try_wait().unwrap().is_none()
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(next(700)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL: the group's offsets may lag the archive
            killed += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        killed >= 2,
        "only {killed} runs were still going when killed: make the input larger"
    );
    std::thread::sleep(Duration::from_millis(1100));
    ok_within(
        with_rules(&mut run_kafka(&brokers, &topic, &archive)).arg("--until-end"),
        180,
    );
    let total = truth.stats.total();
    assert_eq!(
        coverage(&archive, &topic),
        (total, total, 0),
        "every record once"
    );
    let got = window_results(&archive);
    assert_eq!(got.len(), expected.len(), "window result rows");
    assert!(
        got == expected,
        "window results differ from the uninterrupted run"
    );
}

/// Sends SIGTERM to `child` and waits for it, at most a minute (then kills it and fails).
pub(crate) fn stop(mut child: std::process::Child, who: &str) {
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success(), "{who} was not running");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("{who} did not stop within a minute of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(child.wait().unwrap().success(), "{who} failed");
}

#[test]
fn two_members_of_one_group_share_the_topic_and_archive_every_record_once() {
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = create_topic(&brokers, 4);
    let truth = generate(dir.path(), "truth.jsonl", small(150_000, 83));
    let archive = dir.path().join("archive");
    let manifests =
        || std::fs::read_dir(archive.join("_rampart/manifests")).map_or(0, |d| d.count());
    // Records keep arriving while the members come and go (about 6 s of them).
    let producer = rampart()
        .args([
            "gen", "--events", "150000", "--seed", "83", "--rate", "25000",
        ])
        .args(["--kafka", &format!("{brokers}/{topic}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Live members (no --until-end): they run until stopped. They commit every 10 s,
    // longer than a rebalance takes: what a member read since its last commit must be
    // committed when its partitions are revoked, or their next owner reads it again.
    let spawn = || {
        with_rules(&mut run_kafka(&brokers, &topic, &archive))
            .env("RAMPART_SINK__ROLL_INTERVAL", "10s")
            .env("RAMPART_ARCHIVE__ORPHAN_GRACE", "10s")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let first = spawn();
    let started = Instant::now();
    while manifests() < 1 && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // A second member joins: the first gives up half of the partitions, after
    // committing what it had read of them (records read since its last commit included).
    let second = spawn();
    assert!(producer.wait_with_output().unwrap().status.success());
    std::thread::sleep(Duration::from_secs(3));
    // The first is stopped: it drains, commits and leaves; the second takes over all.
    stop(first, "the first member");
    std::thread::sleep(Duration::from_secs(8));
    stop(second, "the second member");
    // Whatever neither reached, a last run reads to the end. It is a new group, reading
    // from the start: the archive's offsets alone keep it from archiving anything twice.
    ok_within(
        with_rules(&mut run_kafka_group(
            &brokers,
            &topic,
            &archive,
            &format!("last-{topic}"),
        ))
        .arg("--until-end"),
        120,
    );
    let total = truth.stats.total();
    assert_eq!(
        coverage(&archive, &topic),
        (total, total, 0),
        "every record once"
    );
    // The members handed the partitions' window state over through the archive: the
    // union of their results is that of one instance reading the same records.
    let whole = dir.path().join("one-instance");
    ok_within(
        with_rules(&mut run_kafka_group(
            &brokers,
            &topic,
            &whole,
            &format!("one-{topic}"),
        ))
        .arg("--until-end"),
        120,
    );
    let expected = window_results(&whole);
    assert!(
        expected.iter().any(|r| r.starts_with("policy_hits")),
        "the input produces window results"
    );
    let got = window_results(&archive);
    assert_eq!(got.len(), expected.len(), "window result rows");
    assert!(
        got == expected,
        "the members' window results differ from one instance's"
    );
}
