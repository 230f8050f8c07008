//! The Kafka source against the real Kafka-protocol broker that scripts/test.sh starts:
//! every record archived exactly once with its coordinates, through restarts and kills.

use std::collections::BTreeMap;
use std::path::PathBuf;
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
pub(crate) const GROUP_SETTINGS: &str =
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
pub(crate) fn coverage(archive: &Path, topic: &str) -> (u64, u64, u64) {
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
    assert_window_results(
        &archive,
        &expected,
        "window results differ from the uninterrupted run",
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
    let expected = one_instance_window_results(&brokers, &topic, dir.path());
    assert!(
        expected.iter().any(|r| r.starts_with("policy_hits")),
        "the input produces window results"
    );
    assert_window_results(
        &archive,
        &expected,
        "the members' window results differ from one instance's",
    );
}

/// A member stopped by SIGTERM, as in a deploy, leaves the windows it has open in the
/// stored state: it does not close them on the records it happened to have read. The
/// next member continues them with the records that arrive later, so the results are
/// those of one instance that never stopped.
#[test]
fn a_member_stopped_by_sigterm_leaves_its_open_windows_to_the_next_member() {
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = create_topic(&brokers, 2);
    // Event time 00:00 to 00:12, then 00:12 to 00:24 after the stop: the window that is
    // open at 00:12 gets records from both. (The same seed, so the same resources.)
    let produce_from = |start: &str| {
        ok(rampart()
            .args(["gen", "--events", "20000", "--seed", "84", "--span", "12m"])
            .args(["--start", start])
            .args(["--kafka", &format!("{brokers}/{topic}")]));
    };
    produce_from("2026-11-01T00:00:00Z");
    let archive = dir.path().join("archive");
    let member = with_rules(&mut run_kafka(&brokers, &topic, &archive))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while coverage(&archive, &topic).0 < 20_000 {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the member did not archive the first records within 90 s"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    stop(member, "the member");
    // Only the watermark closes windows of a stopped member: none ends after the last
    // event time it read.
    for table in ["attack_rates", "policy_hits"] {
        let late = query_json(
            &archive,
            &format!(
                "SELECT count(*) AS n FROM {table} \
                 WHERE window_end > TIMESTAMP '2026-11-01T00:12:00Z'"
            ),
        );
        assert_eq!(
            late[0]["n"], 0,
            "{table}: a stopped member closed windows that were still open"
        );
    }
    produce_from("2026-11-01T00:12:00Z");
    ok_within(
        with_rules(&mut run_kafka(&brokers, &topic, &archive)).arg("--until-end"),
        120,
    );
    assert_eq!(
        coverage(&archive, &topic),
        (40_000, 40_000, 0),
        "every record once"
    );
    let expected = one_instance_window_results(&brokers, &topic, dir.path());
    assert!(
        expected.iter().any(|r| {
            r.starts_with("attack_rates") && r.contains(r#""window_start":"2026-11-01T00:10:00Z""#)
        }),
        "the window open at the stop has results"
    );
    assert_window_results(
        &archive,
        &expected,
        "the results across the stop differ from one instance's",
    );
}

/// The window results of one instance (a group of its own) reading all of `topic` into
/// an archive under `dir`: what members sharing or handing over the topic must produce.
fn one_instance_window_results(brokers: &str, topic: &str, dir: &Path) -> Vec<String> {
    let whole = dir.join("one-instance");
    ok_within(
        with_rules(&mut run_kafka_group(
            brokers,
            topic,
            &whole,
            &format!("one-{topic}"),
        ))
        .arg("--until-end"),
        120,
    );
    window_results(&whole)
}

/// One message read back from a topic.
struct Consumed {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: serde_json::Value,
}

/// Every message of `topic` from its start, read by assigning all its partitions (no
/// group) until each is at its end.
fn read_topic(brokers: &str, topic: &str) -> Vec<Consumed> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::KafkaError;
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{}", uuid_like()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(20))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len() as i32;
    assert!(partitions > 0, "topic {topic} has no partitions");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut at_end = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let started = Instant::now();
    while (at_end.len() as i32) < partitions {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{topic}: not at the end of every partition within a minute"
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                let value = serde_json::from_slice(m.payload().unwrap_or_default())
                    .unwrap_or_else(|e| panic!("{topic}: a message that is not JSON: {e}"));
                out.push(Consumed {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value,
                });
            }
        }
    }
    out
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// RFC 3339 as the alerts write it (UTC, `Z`, only the fraction digits needed).
fn alert_time(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The `alert_id` of every row of `policy_hits` and `violations`, with its resource,
/// computed here by the recipe the README documents.
fn expected_alerts(archive: &Path) -> BTreeMap<String, String> {
    let text = |v: &serde_json::Value| serde_json::to_string(v).unwrap();
    let mut ids = BTreeMap::new();
    for h in query_json(
        archive,
        "SELECT rule_id, rule_version, resource_id, CAST(window_start AS BIGINT) AS ws, category \
         FROM policy_hits",
    ) {
        let recipe = format!(
            "[\"policy_hit\",{},{},{},{},{}]",
            text(&h["rule_id"]),
            h["rule_version"],
            text(&h["resource_id"]),
            text(&alert_time(h["ws"].as_i64().unwrap()).into()),
            text(&h["category"]),
        );
        let resource = h["resource_id"].as_str().unwrap().to_string();
        assert!(ids.insert(sha256(recipe.as_bytes()), resource).is_none());
    }
    for v in query_json(
        archive,
        "SELECT rule_id, rule_version, resource_id, state, CAST(opened_at AS BIGINT) AS o, \
                CAST(changed_at AS BIGINT) AS c FROM violations",
    ) {
        let recipe = format!(
            "[\"violation\",{},{},{},{},{},{}]",
            text(&v["rule_id"]),
            v["rule_version"],
            text(&v["resource_id"]),
            text(&v["state"]),
            text(&alert_time(v["o"].as_i64().unwrap()).into()),
            text(&alert_time(v["c"].as_i64().unwrap()).into()),
        );
        let resource = v["resource_id"].as_str().unwrap().to_string();
        assert!(ids.insert(sha256(recipe.as_bytes()), resource).is_none());
    }
    ids
}

/// Checks the alerts read from the topic against the archive's `policy_hits` and
/// `violations`: keyed by resource, every expected `alert_id` there (repeats allowed),
/// none other. Returns how many repeats there were.
fn check_alert_topic(alerts: &[Consumed], archive: &Path) -> usize {
    let expected = expected_alerts(archive);
    assert!(!expected.is_empty(), "the run produced no alerts to check");
    let mut seen = BTreeMap::new();
    for a in alerts {
        let resource = a.value["resource_id"].as_str().unwrap();
        assert_eq!(
            a.key.as_deref().map(String::from_utf8_lossy).as_deref(),
            Some(resource),
            "an alert not keyed by its resource: {}",
            a.value
        );
        let id = a.value["alert_id"].as_str().unwrap().to_string();
        *seen.entry(id).or_insert(0usize) += 1;
    }
    let expected_ids: std::collections::BTreeSet<&String> = expected.keys().collect();
    let seen_ids: std::collections::BTreeSet<&String> = seen.keys().collect();
    assert_eq!(
        (
            expected_ids.difference(&seen_ids).count(),
            seen_ids.difference(&expected_ids).count()
        ),
        (0, 0),
        "(alerts of the archive not in the topic, alerts in the topic not in the archive), \
         of {} alerts",
        expected.len()
    );
    alerts.len() - seen.len()
}

/// The generator's ground truth: the malformed messages as (SHA-256 of the payload,
/// reason) → (payload length, the keys they were produced with).
type MalformedTruth = BTreeMap<(String, String), (usize, Vec<String>)>;

fn malformed_truth(n: u64, seed: u64) -> MalformedTruth {
    let mut truth = MalformedTruth::new();
    for m in rampart_gen::Generator::new(small(n, seed)).unwrap() {
        if let rampart_gen::MessageKind::Bad(reason) = m.kind {
            truth
                .entry((sha256(&m.payload), reason.as_str().to_string()))
                .or_insert_with(|| (m.payload.len(), Vec::new()))
                .1
                .push(m.key);
        }
    }
    truth
}

/// Checks the dead letters read from the topic against the generator's truth and the
/// archive's `dead_letters`: each source record once (repeats allowed), with its
/// coordinates, reason and raw bytes (or, when too large to carry, their SHA-256 and
/// length), keyed by the resource its payload names, else by the key it was produced
/// with. Returns how many repeats there were.
fn check_dead_letter_topic(
    dead: &[Consumed],
    archive: &Path,
    source_topic: &str,
    truth: &MalformedTruth,
) -> usize {
    use base64::Engine;
    let archived: BTreeMap<(i64, i64), (String, String)> = query_json(
        archive,
        "SELECT kafka_partition AS p, kafka_offset AS o, reason_code AS r, \
                encode(sha256(raw), 'hex') AS h FROM dead_letters",
    )
    .into_iter()
    .map(|r| {
        (
            (r["p"].as_i64().unwrap(), r["o"].as_i64().unwrap()),
            (
                r["r"].as_str().unwrap().to_string(),
                r["h"].as_str().unwrap().to_string(),
            ),
        )
    })
    .collect();
    let mut seen: BTreeMap<(i64, i64), (String, String)> = BTreeMap::new();
    for d in dead {
        let v = &d.value;
        assert_eq!(v["type"], "dead_letter");
        assert_eq!(v["kafka_topic"], source_topic);
        let at = (
            v["kafka_partition"].as_i64().unwrap(),
            v["kafka_offset"].as_i64().unwrap(),
        );
        let (reason, hash) = archived
            .get(&at)
            .unwrap_or_else(|| panic!("a dead letter the archive does not hold: {v}"));
        assert_eq!(v["reason_code"], reason.as_str());
        assert_eq!(v["raw_sha256"], hash.as_str());
        let (len, keys) = truth
            .get(&(hash.clone(), reason.clone()))
            .unwrap_or_else(|| panic!("a dead letter the generator did not make: {v}"));
        assert_eq!(v["raw_bytes"].as_u64(), Some(*len as u64));
        if v["raw_omitted"] == true {
            assert_eq!(v["raw"], serde_json::Value::Null);
        } else {
            let text = v["raw"].as_str().unwrap();
            let raw = if v["raw_base64"] == true {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .unwrap()
            } else {
                text.as_bytes().to_vec()
            };
            assert_eq!(&sha256(&raw), hash, "raw bytes changed on the way: {v}");
        }
        let key = String::from_utf8(d.key.clone().unwrap_or_default()).unwrap();
        let named = v["resource_id"].as_str();
        assert!(
            named.is_some_and(|r| r == key) || (named.is_none() && keys.contains(&key)),
            "dead letter keyed {key:?}, expected its resource or one of {keys:?}: {v}"
        );
        seen.insert(at, (hash.clone(), reason.clone()));
    }
    assert_eq!(
        seen.len(),
        archived.len(),
        "every dead letter of the archive in the topic"
    );
    // And against the generator: the same malformed messages, as many of each.
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for k in seen.into_values() {
        *counts.entry(k).or_default() += 1;
    }
    let truth_counts: BTreeMap<(String, String), usize> = truth
        .iter()
        .map(|(k, (_, keys))| (k.clone(), keys.len()))
        .collect();
    assert_eq!(
        counts, truth_counts,
        "the malformed messages the generator made"
    );
    dead.len() - archived.len()
}

/// `run_kafka` with the window stage on and both topics set.
fn run_with_topics(
    brokers: &str,
    topic: &str,
    archive: &Path,
    alerts: &str,
    dead: &str,
) -> Command {
    let mut c = run_kafka(brokers, topic, archive);
    c.env("RAMPART_RULES__ENABLED", "true")
        .env("RAMPART_KAFKA__ALERTS_TOPIC", alerts)
        .env("RAMPART_KAFKA__DEAD_LETTER_TOPIC", dead);
    c
}

#[test]
fn alerts_and_dead_letters_reach_their_topics_keyed_by_resource() {
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = create_topic(&brokers, 4);
    let (alerts_topic, dead_topic) = (create_topic(&brokers, 3), create_topic(&brokers, 2));
    produce(&brokers, &topic, 40_000, 84);
    let archive = dir.path().join("archive");
    let alerts_file = dir.path().join("alerts.jsonl");
    ok_within(
        run_with_topics(&brokers, &topic, &archive, &alerts_topic, &dead_topic)
            .arg("--until-end")
            .arg("--alerts")
            .arg(&alerts_file),
        120,
    );

    let alerts = read_topic(&brokers, &alerts_topic);
    assert_eq!(
        check_alert_topic(&alerts, &archive),
        0,
        "no outage, no repeats"
    );
    // The value is the alerts file's line plus its alert_id, message for line.
    let mut from_topic: Vec<String> = alerts
        .iter()
        .map(|a| {
            let mut v = a.value.clone();
            v.as_object_mut().unwrap().remove("alert_id");
            v.to_string()
        })
        .collect();
    let mut from_file: Vec<String> = std::fs::read_to_string(&alerts_file)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap()
                .to_string()
        })
        .collect();
    from_topic.sort();
    from_file.sort();
    assert_eq!(from_topic, from_file);
    // Keyed by resource: one resource's alerts all on one partition.
    let mut partition_of = BTreeMap::new();
    for a in &alerts {
        let p = *partition_of.entry(a.key.clone()).or_insert(a.partition);
        assert_eq!(p, a.partition, "one resource, one partition");
    }

    let dead = read_topic(&brokers, &dead_topic);
    let truth = malformed_truth(40_000, 84);
    assert_eq!(
        check_dead_letter_topic(&dead, &archive, &topic, &truth),
        0,
        "no outage, no repeats"
    );
    let omitted = dead
        .iter()
        .filter(|d| d.value["raw_omitted"] == true)
        .count();
    let too_large = dead
        .iter()
        .filter(|d| d.value["reason_code"] == "too_large")
        .count();
    assert!(too_large > 0, "the stream has too_large dead letters");
    assert_eq!(
        omitted, too_large,
        "only messages over 1 MB leave their raw bytes out"
    );
    assert!(
        dead.iter().any(|d| d.value["raw_base64"] == true),
        "the stream has non-UTF-8 dead letters"
    );
    // Offsets in the topic follow the order in which dead letters were sent.
    assert!(
        dead.windows(2)
            .all(|w| w[0].partition != w[1].partition || w[0].offset < w[1].offset)
    );
}

/// A broker of the test's own (from `RAMPART_TEST_TANSU`, see `scripts/services.sh`)
/// that its clients reach only through a TCP relay on another port: the broker
/// advertises the relay's address, so every connection, bootstrap or not, goes through
/// it. Cutting the relay closes every connection and refuses new ones, which is what a
/// broker outage or a network partition looks like to a client, while the broker keeps
/// its topics, records and group offsets (tansu's durable `s3://` engine lost
/// acknowledged records when it was killed, so the broker itself is not killed).
struct CutBroker {
    child: std::process::Child,
    /// The broker's own port.
    upstream: u16,
    /// The port clients use.
    port: u16,
    log: PathBuf,
    relay: Option<Relay>,
}

/// The accepting side of the relay and the connections it carries.
struct Relay {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    streams: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    accept: std::thread::JoinHandle<()>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl CutBroker {
    /// `None` when the services are not there (refused when they are required).
    fn start(dir: &Path) -> Option<Self> {
        let Ok(bin) = std::env::var("RAMPART_TEST_TANSU") else {
            assert!(
                std::env::var_os("RAMPART_REQUIRE_SERVICES").is_none(),
                "RAMPART_REQUIRE_SERVICES is set but RAMPART_TEST_TANSU is not: run scripts/test.sh"
            );
            return None;
        };
        let (upstream, port) = (free_port(), free_port());
        let log = dir.join("broker.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .args(["broker", "--listener-url"])
            .arg(format!("tcp://127.0.0.1:{upstream}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://127.0.0.1:{port}"))
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut broker = Self {
            child,
            upstream,
            port,
            log,
            relay: None,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", upstream)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the broker did not listen within 20 s:\n{}",
                std::fs::read_to_string(&broker.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        broker.restore();
        Some(broker)
    }

    /// The address clients use.
    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Accepts connections again and relays them to the broker.
    fn restore(&mut self) {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let streams = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (flag, kept, upstream) = (stop.clone(), streams.clone(), self.upstream);
        let accept = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let mut kept = kept.lock().unwrap();
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
                kept.push(client);
                kept.push(server);
            }
            // The listener is dropped here: new connections are refused.
        });
        self.relay = Some(Relay {
            stop,
            streams,
            accept,
        });
    }

    /// Closes every connection and refuses new ones until [`CutBroker::restore`].
    fn cut(&mut self) {
        use std::sync::atomic::Ordering;
        if let Some(relay) = self.relay.take() {
            relay.stop.store(true, Ordering::SeqCst);
            relay.accept.join().unwrap();
            for s in relay.streams.lock().unwrap().drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

impl Drop for CutBroker {
    fn drop(&mut self) {
        self.cut();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_broker_outage_mid_run_is_waited_out_and_loses_nothing() {
    const EVENTS: u64 = 150_000;
    let dir = tempfile::tempdir().unwrap();
    let Some(mut broker) = CutBroker::start(dir.path()) else {
        return;
    };
    let brokers = broker.address();
    let topic = create_topic(&brokers, 4);
    let (alerts_topic, dead_topic) = (create_topic(&brokers, 2), create_topic(&brokers, 2));
    produce(&brokers, &topic, EVENTS, 85);
    let truth = malformed_truth(EVENTS, 85);
    let malformed: usize = truth.values().map(|(_, keys)| keys.len()).sum();

    let archive = dir.path().join("archive");
    let run_log = RunLog::in_dir(dir.path());
    let log = || run_log.text();
    let mut run = run_log.spawn(
        run_with_topics(&brokers, &topic, &archive, &alerts_topic, &dead_topic)
            .arg("--until-end")
            .env("RAMPART_LOG", "info")
            .stdout(std::process::Stdio::null()),
    );
    let manifests =
        || std::fs::read_dir(archive.join("_rampart/manifests")).map_or(0, |d| d.count());
    let started = Instant::now();
    while manifests() < 1 && started.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let still_running = |run: &mut std::process::Child, when: &str| {
        let ended = run.try_wait().unwrap();
        assert!(ended.is_none(), "the run ended {when}:\n{}", log());
    };
    still_running(
        &mut run,
        "before the broker went down: make the input larger",
    );
    // The broker is cut off mid-run for 30 s (the outage the issue names): far longer
    // than the group's session timeout (6 s), so the run also loses its partitions and
    // joins again, and than librdkafka's longest reconnect backoff (10 s).
    broker.cut();
    let cut_at = Instant::now();
    let mut ended_during_outage = None;
    while cut_at.elapsed() < Duration::from_secs(30) && ended_during_outage.is_none() {
        std::thread::sleep(Duration::from_millis(200));
        ended_during_outage = run.try_wait().unwrap();
    }
    assert!(
        ended_during_outage.is_none(),
        "the run ended ({ended_during_outage:?}) {:.1} s into the outage:\n{}",
        cut_at.elapsed().as_secs_f64(),
        log()
    );
    broker.restore();
    let restarted = Instant::now();
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        if restarted.elapsed() > Duration::from_secs(180) {
            run.kill().unwrap();
            run.wait().unwrap();
            panic!(
                "the run did not finish within 3 minutes of the broker's return:\n{}",
                log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let resumed_in = restarted.elapsed();
    assert!(status.success(), "the run failed ({status}):\n{}", log());
    assert!(
        log().contains("kafka consume error") || log().contains("kafka client error"),
        "the run never noticed the outage:\n{}",
        log()
    );

    // The archive: every record once, as events or dead letters.
    assert_eq!(
        coverage(&archive, &topic),
        (EVENTS, EVENTS, 0),
        "every record once; per partition (rows, lowest and highest offset): {:?}\n\
         the run's log:\n{}",
        query_json(
            &archive,
            "SELECT kafka_partition AS p, count(*) AS n, min(kafka_offset) AS lo, \
                    max(kafka_offset) AS hi \
             FROM (SELECT kafka_partition, kafka_offset FROM events UNION ALL \
                   SELECT kafka_partition, kafka_offset FROM dead_letters) \
             GROUP BY kafka_partition ORDER BY kafka_partition"
        ),
        log()
    );
    let dead_rows = query_json(&archive, "SELECT count(*) AS n FROM dead_letters");
    assert_eq!(dead_rows[0]["n"].as_u64(), Some(malformed as u64));
    // The one member held every partition of the topic when it ended (when it ended
    // with the broker already cut off, it could not ask which partitions there are).
    assert!(
        log().contains("every partition of the topic is at its end")
            || log().contains("could not learn which partitions the topic has"),
        "{}",
        log()
    );

    // The topics: every alert and dead letter at least once, repeats allowed.
    let alerts = read_topic(&brokers, &alerts_topic);
    let alert_repeats = check_alert_topic(&alerts, &archive);
    let dead = read_topic(&brokers, &dead_topic);
    let dead_repeats = check_dead_letter_topic(&dead, &archive, &topic, &truth);
    assert!(
        dead.iter().any(|d| d.value["raw_omitted"] == true),
        "the stream has messages over 1 MB"
    );
    eprintln!(
        "outage: {} alerts ({alert_repeats} repeats), {} dead letters ({dead_repeats} repeats), \
         run finished {:.1} s after the broker's return",
        alerts.len(),
        dead.len(),
        resumed_in.as_secs_f64()
    );
}

#[test]
fn a_file_source_sends_alerts_and_dead_letters_to_the_brokers_it_is_given() {
    use base64::Engine;
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (alerts_topic, dead_topic) = (create_topic(&brokers, 2), create_topic(&brokers, 1));
    let source = dir.path().join("events.jsonl");
    let not_utf8: &[u8] = b"{\"resource_id\":\"vm-8\",\"x\":\"\xff\"}";
    let mut input = br#"{"ts":"2026-11-01T00:00:10Z","resource_id":"nsg-1","resource_type":"network","category":"network_access","policy_allowed":false}
{"ts":"2026-11-01T00:00:20Z","resource_id":"vm-7","category":"malware"}
"#
    .to_vec();
    input.extend_from_slice(not_utf8);
    input.push(b'\n');
    std::fs::write(&source, &input).unwrap();
    let archive = dir.path().join("archive");
    ok(rampart()
        .env("RAMPART_KAFKA__BROKERS", &brokers)
        .env("RAMPART_KAFKA__ALERTS_TOPIC", &alerts_topic)
        .env("RAMPART_KAFKA__DEAD_LETTER_TOPIC", &dead_topic)
        .arg("run")
        .arg("--source")
        .arg(&source)
        .arg("--archive")
        .arg(&archive));

    let alerts = read_topic(&brokers, &alerts_topic);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].key.as_deref(), Some(&b"nsg-1"[..]));
    assert_eq!(alerts[0].value["rule_id"], "network_vulnerability");
    assert_eq!(alerts[0].value["window_start"], "2026-11-01T00:00:00Z");

    let mut dead = read_topic(&brokers, &dead_topic);
    dead.sort_by_key(|d| d.value["source_line"].as_u64());
    assert_eq!(dead.len(), 2);
    let (missing, bad_bytes) = (&dead[0], &dead[1]);
    assert_eq!(missing.key.as_deref(), Some(&b"vm-7"[..]));
    assert_eq!(missing.value["reason_code"], "missing_field");
    assert_eq!(missing.value["source_line"], 2);
    assert_eq!(
        missing.value["source_file"].as_str(),
        Some(source.to_str().unwrap())
    );
    assert_eq!(missing.value["kafka_topic"], serde_json::Value::Null);
    // Not UTF-8: no resource can be read from it, and a file line has no Kafka key.
    assert_eq!(bad_bytes.key, None);
    assert_eq!(bad_bytes.value["reason_code"], "not_utf8");
    assert_eq!(bad_bytes.value["source_line"], 3);
    assert_eq!(bad_bytes.value["raw_base64"], true);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(bad_bytes.value["raw"].as_str().unwrap())
        .unwrap();
    assert_eq!(raw, not_utf8);
}
