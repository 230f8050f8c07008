//! The Kafka source against the real Kafka-protocol broker that scripts/test.sh starts:
//! every record archived exactly once with its coordinates, through restarts and kills.

use std::time::{Duration, Instant};

use crate::*;

/// The broker's address, or `None` when no broker runs (refused when one is required).
fn broker() -> Option<String> {
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
fn create_topic(brokers: &str, partitions: i32) -> String {
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
fn produce(brokers: &str, topic: &str, events: u64, seed: u64) {
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
    let config = archive.with_extension("toml");
    std::fs::write(&config, GROUP_SETTINGS).unwrap();
    let mut c = rampart();
    c.env("RAMPART_SINK__ROLL_INTERVAL", "1s")
        .env("RAMPART_ARCHIVE__ORPHAN_GRACE", "1s")
        .env("RAMPART_RULES__ENABLED", "false")
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--source")
        .arg(format!("kafka://{brokers}/{topic}?group=g-{topic}"))
        .arg("--archive")
        .arg(archive);
    c
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
    ok(run_kafka(&brokers, &topic, &archive).arg("--until-end"));
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
    ok(run_kafka(&brokers, &topic, &archive).arg("--until-end"));
    assert_eq!(coverage(&archive, &topic), (total, total, 0));
}

#[test]
fn a_kafka_run_killed_and_restarted_archives_every_record_once() {
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = create_topic(&brokers, 4);
    let truth = generate(dir.path(), "truth.jsonl", small(150_000, 82));
    produce(&brokers, &topic, 150_000, 82);
    let archive = dir.path().join("archive");
    let manifests =
        || std::fs::read_dir(archive.join("_rampart/manifests")).map_or(0, |d| d.count());
    let mut killed = 0;
    for wait_for in [1] {
        let mut child = run_kafka(&brokers, &topic, &archive)
            .arg("--until-end")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let before = manifests();
        let started = Instant::now();
        while manifests() < before + wait_for && started.elapsed() < Duration::from_secs(90) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL: the group's offsets may lag the archive
            killed += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        killed >= 1,
        "no run was still going when killed: make the input larger"
    );
    std::thread::sleep(Duration::from_millis(1100));
    ok(run_kafka(&brokers, &topic, &archive).arg("--until-end"));
    let total = truth.stats.total();
    assert_eq!(
        coverage(&archive, &topic),
        (total, total, 0),
        "every record once"
    );
}
