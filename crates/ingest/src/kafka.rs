//! The Kafka source: a consumer-group member that never commits an offset the archive
//! does not hold yet.
//!
//! `kafka://HOST:PORT[,HOST:PORT...]/TOPIC?group=NAME` names the brokers, the topic and
//! the consumer group. Auto-commit and the automatic offset store are off: the pipeline
//! hands back, after each archive commit, the offsets that commit covers, and only then
//! are they committed to the group ([`KafkaSource::commit`]). After a crash the group
//! resumes from its committed offsets, which can be behind the archive (the archive
//! commit landed, the group commit did not): records at or below the offsets the
//! archive already holds are dropped ([`KafkaSource::skip_through`]), so a redelivered
//! record is never archived twice.
//!
//! **Broker outages.** Nothing here gives up on the broker: consume errors are logged
//! and polling goes on (librdkafka reconnects by itself), and a group commit that fails
//! is not an error either: its offsets are kept, merged with the next ones and
//! committed again with backoff. A lost group commit costs nothing but re-reading: the
//! archive's offsets make the re-read records skipped.
//!
//! Messages are expected to be keyed by `resource_id`, so that a resource's events stay
//! on one partition (and its windows with them). Records are read in batches
//! ([`KafkaBatch`]); `until_end` stops once every assigned partition has reached its
//! end (for backfills and tests).
//!
//! librdkafka's statistics (every `statistics.interval.ms`, 5 s unless set) give the
//! consumer lag of each assigned partition ([`KafkaSource::consumer_lag`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tracing::{debug, info, warn};

use crate::{Error, Result};

/// Where to consume: brokers, topic, group, and librdkafka settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaLocation {
    /// `host:port,host:port`.
    pub brokers: String,
    /// The topic.
    pub topic: String,
    /// The consumer group.
    pub group: String,
}

impl KafkaLocation {
    /// Parses `kafka://HOST:PORT[,HOST:PORT]/TOPIC[?group=NAME]`; the group defaults to
    /// `default_group`.
    pub fn parse(url: &str, default_group: &str) -> Result<Self> {
        let bad = |message: &str| Error::UnsupportedSource {
            location: url.to_string(),
            message: format!("{message}; write kafka://HOST:PORT[,HOST:PORT...]/TOPIC?group=NAME"),
        };
        let rest = url
            .strip_prefix("kafka://")
            .ok_or_else(|| bad("not a kafka:// URL"))?;
        let (brokers, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("no topic after the brokers"))?;
        let (topic, query) = path.split_once('?').unwrap_or((path, ""));
        if brokers.is_empty() || brokers.split(',').any(|b| !b.contains(':')) {
            return Err(bad("each broker needs HOST:PORT"));
        }
        if topic.is_empty() || topic.contains('/') {
            return Err(bad("the topic is missing or has a `/`"));
        }
        let mut group = default_group.to_string();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("group", g)) if !g.is_empty() => group = g.to_string(),
                _ => {
                    return Err(bad(&format!(
                        "unknown parameter `{pair}` (only group=NAME)"
                    )));
                }
            }
        }
        Ok(Self {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            group,
        })
    }

    /// The location as a label (`kafka://brokers/topic?group=...`).
    pub fn label(&self) -> String {
        format!(
            "kafka://{}/{}?group={}",
            self.brokers, self.topic, self.group
        )
    }
}

/// One consumed record.
#[derive(Debug, Clone)]
pub struct KafkaRecord {
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch, when the record has a timestamp.
    pub timestamp_ms: Option<i64>,
    pub key: Option<Arc<[u8]>>,
    /// The payload; an absent payload is empty (and becomes a dead letter).
    pub payload: Vec<u8>,
}

/// Records of one topic, in the order consumed.
#[derive(Debug, Clone)]
pub struct KafkaBatch {
    pub topic: Arc<str>,
    pub records: Vec<KafkaRecord>,
}

/// Routes librdkafka's errors to the log, leaving out the end-of-partition events that
/// `enable.partition.eof` turns on (they are how `--until-end` knows it is done), and
/// notes each new assignment.
/// It is the one owner of the state that librdkafka's callbacks and [`KafkaSource`]
/// share (the source reaches it through its consumer).
struct Context {
    /// Set when partitions were assigned; cleared by [`KafkaSource::take_assigned`].
    assigned: AtomicBool,
    /// Partitions revoked since the batch in progress began.
    revoked: Mutex<BTreeSet<i32>>,
    /// Makes what was handed downstream durable; returns the offsets to commit.
    on_revoke: Mutex<Option<RevokeHook>>,
    /// Offsets to commit to the group.
    commits: Mutex<PendingCommits>,
    topic: String,
    /// Partitions of `topic` assigned to this member now, each with the number of the
    /// assignment that gave it (see [`Context::assignments`]).
    owned: Mutex<BTreeMap<i32, u64>>,
    /// Assignments seen so far. Callbacks run inside the source's own polls, in order
    /// with the records and end-of-partition events, so the count read when an event
    /// is handled tells which assignment the event belongs to.
    assignments: AtomicU64,
    lag: ConsumerLag,
}

/// Per assigned partition, the consumer lag librdkafka last reported in its statistics:
/// the partition's high watermark minus the group's committed offset. Rampart commits an
/// offset only after the archive holds the record, so this counts records not yet
/// durable in the archive. A partition is absent until both ends are known (a new group
/// has no committed offset before its first commit).
#[derive(Debug, Clone, Default)]
pub struct ConsumerLag(Arc<Mutex<BTreeMap<i32, i64>>>);

impl ConsumerLag {
    /// Partition to lag, as last reported.
    pub fn snapshot(&self) -> BTreeMap<i32, i64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// Shortest and longest pause before an external fault is tried again.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// How often a run of consume errors is logged.
const CONSUME_WARN_EVERY: Duration = Duration::from_secs(10);

/// The pause before trying an external fault again after `failures` failures in a row:
/// 200 ms, doubling each time, at most 10 s.
pub fn backoff(failures: u32) -> Duration {
    BACKOFF_MIN
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(BACKOFF_MAX)
}

/// Group commits not yet done: the offsets waiting, and when to try again.
#[derive(Debug, Default)]
struct PendingCommits {
    /// Per partition, the next offset to read, waiting to be committed.
    waiting: BTreeMap<i32, i64>,
    /// Commits that failed in a row.
    failures: u32,
    /// No new attempt before this.
    not_before: Option<Instant>,
}

impl PendingCommits {
    /// Adds offsets to commit; a higher offset of a partition replaces a lower one.
    fn merge(&mut self, next: impl IntoIterator<Item = (i32, i64)>) {
        for (p, o) in next {
            let e = self.waiting.entry(p).or_insert(o);
            *e = (*e).max(o);
        }
    }

    /// A commit of `offsets` failed: they wait again (under any newer ones), and the next
    /// attempt waits a little longer.
    fn failed(&mut self, offsets: BTreeMap<i32, i64>, error: &KafkaError) {
        self.merge(offsets);
        self.failures += 1;
        let pause = backoff(self.failures);
        self.not_before = Some(Instant::now() + pause);
        warn!(
            %error,
            failures = self.failures,
            retry_in_ms = pause.as_millis() as u64,
            "cannot commit offsets to the consumer group; they are kept and committed again \
             (the archive's offsets keep re-read records out)"
        );
    }

    /// A commit succeeded.
    fn succeeded(&mut self) {
        if self.failures > 0 {
            info!(
                failures = self.failures,
                "offsets committed to the consumer group again"
            );
        }
        self.failures = 0;
        self.not_before = None;
    }

    /// Takes the offsets to commit now: all that wait, unless the backoff runs.
    fn take_due(&mut self) -> Option<BTreeMap<i32, i64>> {
        if self.waiting.is_empty() || self.not_before.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        Some(std::mem::take(&mut self.waiting))
    }
}

/// Called when partitions are revoked, before the group moves them: makes everything
/// handed downstream durable and returns `(partition, next offset)` to commit.
pub type RevokeHook = Arc<dyn Fn(&[i32]) -> Vec<(i32, i64)> + Send + Sync>;

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF);
        if !eof {
            tracing::warn!(%error, reason, "kafka client error (it retries)");
        }
    }

    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let Ok(owned) = self.owned.lock() else { return };
        let lag = topic
            .partitions
            .values()
            .filter(|p| owned.contains_key(&p.partition) && p.consumer_lag >= 0)
            .map(|p| (p.partition, p.consumer_lag))
            .collect();
        if let Ok(mut l) = self.lag.0.lock() {
            *l = lag;
        }
    }
}

impl Context {
    /// The partitions of this member's topic in `tpl`.
    fn partitions_of(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect()
    }

    /// Notes `parts` as assigned by a new assignment.
    fn assign(&self, parts: &[i32]) {
        let n = self.assignments.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(mut o) = self.owned.lock() {
            o.extend(parts.iter().map(|p| (*p, n)));
        }
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let parts = self.partitions_of(tpl);
        if let Ok(mut o) = self.owned.lock() {
            o.retain(|p, _| !parts.contains(p));
        }
        if parts.is_empty() {
            return;
        }
        if let Ok(mut r) = self.revoked.lock() {
            r.extend(parts.iter().copied());
        }
        // Offsets still waiting for these partitions are not committed later, when the
        // partitions may be another member's: the commit below covers them.
        if let Ok(mut c) = self.commits.lock() {
            c.waiting.retain(|p, _| !parts.contains(p));
        }
        let hook = self.on_revoke.lock().ok().and_then(|h| h.clone());
        let Some(hook) = hook else { return };
        let next = hook(&parts);
        let mut commit = TopicPartitionList::new();
        for (p, o) in &next {
            let _ = commit.add_partition_offset(&self.topic, *p, Offset::Offset(*o));
        }
        if commit.count() > 0
            && let Err(e) = consumer.commit(&commit, CommitMode::Sync)
        {
            tracing::warn!(error = %e, "cannot commit offsets on revoke; the archive's offsets still prevent duplicates");
        }
        info!(
            partitions = parts.len(),
            "partitions revoked after the archive committed what was read"
        );
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            info!(partitions = tpl.count(), "partitions assigned");
            self.assign(&self.partitions_of(tpl));
            self.assigned.store(true, Ordering::SeqCst);
        }
    }
}

/// A consumer-group member over one topic (see the module docs).
pub struct KafkaSource {
    location: KafkaLocation,
    topic: Arc<str>,
    consumer: StreamConsumer<Context>,
    /// Per partition, the last offset the archive already holds.
    archived: BTreeMap<i32, i64>,
    /// Partitions whose end was reached and nothing read since, each with the number
    /// of the assignment current when the end was reported: an end reported before the
    /// partition's latest assignment is not its end now (it is read again from the
    /// group's committed offset).
    at_end: BTreeMap<i32, u64>,
    batch_records: usize,
    skipped: u64,
    /// A record received after an assignment, held back until the caller has brought
    /// the archived offsets up to date.
    held: Option<KafkaRecord>,
    /// Consume errors since the last record.
    consume_errors: u32,
    /// When the last consume error was logged.
    consume_warned_at: Option<Instant>,
    /// The group's session timeout (`session.timeout.ms`, librdkafka's 45 s unless set):
    /// how long the group keeps a member that stopped without leaving.
    session_timeout: Duration,
    /// For `--until-end`: since when, and when last, every partition of this member
    /// was seen at its end while the group held others of the topic elsewhere.
    others_held: Option<(Instant, Instant)>,
}

/// Where `--until-end` stands ([`KafkaSource::until_end`]).
#[derive(Debug)]
pub enum UntilEnd {
    /// Read on.
    Reading,
    /// Done: every partition of this member is at its end. With the partitions of the
    /// topic other members held (empty when this member held them all), or why the
    /// brokers could not say.
    Done(Result<Vec<i32>>),
}

/// How much longer than the session timeout `--until-end` waits for the partitions
/// other members hold: the group's rebalance after it expires a stale member.
const REBALANCE_GRACE: Duration = Duration::from_secs(10);

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("location", &self.location.label())
            .finish_non_exhaustive()
    }
}

fn kafka_err(location: &KafkaLocation, e: KafkaError) -> Error {
    Error::Kafka {
        location: location.label(),
        message: e.to_string(),
    }
}

impl KafkaSource {
    /// Joins the group and subscribes. `settings` are passed to librdkafka as they are
    /// (TLS, SASL, timeouts); those Rampart needs for its guarantees are set after them.
    pub fn open(
        location: KafkaLocation,
        settings: &BTreeMap<String, String>,
        batch_records: usize,
    ) -> Result<Self> {
        let mut config = ClientConfig::new();
        for (k, v) in settings {
            config.set(k, v);
        }
        config
            .set("bootstrap.servers", &location.brokers)
            .set("group.id", &location.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true");
        if !settings.contains_key("auto.offset.reset") {
            config.set("auto.offset.reset", "earliest");
        }
        if !settings.contains_key("statistics.interval.ms") {
            config.set("statistics.interval.ms", "5000");
        }
        let lag = ConsumerLag::default();
        let consumer: StreamConsumer<Context> = config
            .create_with_context(Context {
                assigned: AtomicBool::new(false),
                revoked: Mutex::new(BTreeSet::new()),
                on_revoke: Mutex::new(None),
                commits: Mutex::new(PendingCommits::default()),
                topic: location.topic.clone(),
                owned: Mutex::new(BTreeMap::new()),
                assignments: AtomicU64::new(0),
                lag: lag.clone(),
            })
            .map_err(|e| kafka_err(&location, e))?;
        consumer
            .subscribe(&[&location.topic])
            .map_err(|e| kafka_err(&location, e))?;
        info!(source = %location.label(), "joined the consumer group");
        Ok(Self {
            topic: Arc::from(location.topic.as_str()),
            location,
            consumer,
            archived: BTreeMap::new(),
            at_end: BTreeMap::new(),
            batch_records: batch_records.max(1),
            skipped: 0,
            held: None,
            consume_errors: 0,
            consume_warned_at: None,
            session_timeout: settings
                .get("session.timeout.ms")
                .and_then(|ms| ms.parse().ok())
                .map_or(Duration::from_secs(45), Duration::from_millis),
            others_held: None,
        })
    }

    /// The state shared with librdkafka's callbacks.
    fn shared(&self) -> &Context {
        self.consumer.context()
    }

    /// The consumer lag of each assigned partition, updated with librdkafka's statistics.
    pub fn consumer_lag(&self) -> ConsumerLag {
        self.shared().lag.clone()
    }

    /// The source's label.
    pub fn label(&self) -> String {
        self.location.label()
    }

    /// The topic.
    pub fn topic(&self) -> &Arc<str> {
        &self.topic
    }

    /// Records at or below `offset` on `partition` are in the archive already: drop them.
    pub fn skip_through(&mut self, partition: i32, offset: i64) {
        let e = self.archived.entry(partition).or_insert(offset);
        *e = (*e).max(offset);
    }

    /// Sets (or with `None` removes) the hook run when partitions are revoked.
    pub fn set_revoke_hook(&self, hook: Option<RevokeHook>) {
        if let Ok(mut h) = self.shared().on_revoke.lock() {
            *h = hook;
        }
    }

    /// Drops the records of partitions revoked meanwhile from `records`: they were not
    /// handed downstream, and the partition's next owner reads them. The held record is
    /// never among them: it is held after the revocations it follows were applied, and
    /// it joins a batch (and is dropped with it if revoked) before the next poll.
    fn drop_revoked(&mut self, records: &mut Vec<KafkaRecord>) {
        let revoked = match self.shared().revoked.lock() {
            Ok(mut r) if !r.is_empty() => std::mem::take(&mut *r),
            _ => return,
        };
        records.retain(|r| !revoked.contains(&r.partition));
    }

    /// Whether partitions were assigned since the last call. Another member may have
    /// archived records of them meanwhile: the caller re-reads the archive's offsets and
    /// passes them to [`KafkaSource::skip_through`] before the next batch.
    pub fn take_assigned(&self) -> bool {
        self.shared().assigned.swap(false, Ordering::SeqCst)
    }

    /// Records dropped because the archive held them.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The partitions assigned to this member now, ascending.
    pub fn assignment(&self) -> Vec<i32> {
        let mut parts: Vec<i32> = self
            .consumer
            .assignment()
            .map(|a| {
                a.elements()
                    .iter()
                    .filter(|e| e.topic() == self.location.topic)
                    .map(|e| e.partition())
                    .collect()
            })
            .unwrap_or_default();
        parts.sort_unstable();
        parts
    }

    /// The partitions of the topic that are not assigned to this member, ascending, as
    /// the brokers' metadata lists them (waiting at most `timeout` for it; a blocking
    /// call, made off the async workers as `commit` is). When `--until-end` ends, their
    /// records are the other members' to read, or the next run's: this run has not
    /// archived them. An error when the brokers cannot be asked, or do not list the
    /// topic with its partitions.
    pub fn unassigned_partitions(&self, timeout: Duration) -> Result<Vec<i32>> {
        let metadata = tokio::task::block_in_place(|| {
            self.consumer
                .fetch_metadata(Some(&self.location.topic), timeout)
        })
        .map_err(|e| kafka_err(&self.location, e))?;
        let unlisted = |why: String| Error::Kafka {
            location: self.location.label(),
            message: why,
        };
        let topic = metadata
            .topics()
            .iter()
            .find(|t| t.name() == self.location.topic)
            .ok_or_else(|| unlisted("the brokers' metadata does not list the topic".into()))?;
        if let Some(e) = topic.error() {
            let code = RDKafkaErrorCode::from(e);
            return Err(unlisted(format!(
                "the topic's metadata has an error: {code}"
            )));
        }
        if topic.partitions().is_empty() {
            return Err(unlisted(
                "the brokers' metadata lists no partition of the topic".into(),
            ));
        }
        let assigned = self.assignment();
        let mut rest: Vec<i32> = topic
            .partitions()
            .iter()
            .map(|p| p.id())
            .filter(|p| !assigned.contains(p))
            .collect();
        rest.sort_unstable();
        Ok(rest)
    }

    /// For `--until-end`, called between batches: done once every partition assigned to
    /// this member is at its end, and either the topic has no other partition or other
    /// members have held them for longer than the session timeout (and a rebalance)
    /// since this member came to its end. A member that stopped without leaving the group
    /// (a process killed, a broker outage after which this member joined again under a
    /// new id) keeps its partitions until the group expires it, and a run that ended
    /// beside it would leave them unread; waiting lets the group give them to this
    /// member. Live members holding them end the run that much later. The brokers are
    /// asked for the topic's partitions at most once a second.
    pub fn until_end(&mut self) -> UntilEnd {
        if !self.all_at_end() {
            self.others_held = None;
            return UntilEnd::Reading;
        }
        let now = Instant::now();
        if let Some((_, asked)) = self.others_held
            && now.duration_since(asked) < Duration::from_secs(1)
        {
            return UntilEnd::Reading;
        }
        match self.unassigned_partitions(Duration::from_secs(5)) {
            Ok(rest) if !rest.is_empty() => {
                let since = self.others_held.map_or(now, |(since, _)| since);
                self.others_held = Some((since, now));
                if now.duration_since(since) < self.session_timeout + REBALANCE_GRACE {
                    if since == now {
                        info!(
                            not_assigned = ?rest,
                            wait_s = (self.session_timeout + REBALANCE_GRACE).as_secs(),
                            "--until-end: this member's partitions are at their end; waiting for the group to hand over the topic's others if their member is gone"
                        );
                    }
                    UntilEnd::Reading
                } else {
                    UntilEnd::Done(Ok(rest))
                }
            }
            done => UntilEnd::Done(done),
        }
    }

    /// Whether every assigned partition has reached its end since it was last assigned
    /// and no record is held. A partition with no assignment noted (none can be, but
    /// for its callback) is not at its end.
    pub fn all_at_end(&self) -> bool {
        if self.held.is_some() {
            return false;
        }
        let parts = self.assignment();
        let Ok(owned) = self.shared().owned.lock() else {
            return false;
        };
        !parts.is_empty()
            && parts.iter().all(|p| {
                let (seen, given) = (self.at_end.get(p), owned.get(p));
                seen.zip(given).is_some_and(|(seen, given)| seen >= given)
            })
    }

    /// The next batch: waits for a first record, then takes what arrives within `linger`
    /// up to the batch size. Returns an empty batch when `linger` passes with nothing
    /// (so that the caller can look at [`KafkaSource::all_at_end`]).
    pub async fn next_batch(&mut self, linger: Duration) -> Result<KafkaBatch> {
        // A group commit that failed is tried again once its backoff has passed.
        self.commit_due()?;
        let mut records = Vec::new();
        if let Some(r) = self.held.take() {
            self.keep(r, &mut records);
        }
        let deadline = tokio::time::Instant::now() + linger;
        while records.len() < self.batch_records {
            let msg = match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Err(_) => break,
                Ok(Err(KafkaError::PartitionEOF(p))) => {
                    let current = self.shared().assignments.load(Ordering::SeqCst);
                    self.at_end.insert(p, current);
                    continue;
                }
                Ok(Err(e)) => {
                    // The client reconnects and retries by itself (a broker restart, a
                    // network cut): keep polling, never give up. Polling is what serves
                    // its callbacks (a lost assignment, commit results), so the pause is
                    // short; the warning repeats only every CONSUME_WARN_EVERY.
                    self.consume_errors += 1;
                    if self
                        .consume_warned_at
                        .is_none_or(|t| t.elapsed() >= CONSUME_WARN_EVERY)
                    {
                        warn!(error = %e, errors = self.consume_errors, "kafka consume error; the client reconnects by itself, polling on");
                        self.consume_warned_at = Some(Instant::now());
                    }
                    tokio::time::sleep(BACKOFF_MIN).await;
                    continue;
                }
                Ok(Ok(m)) => m,
            };
            if self.consume_errors > 0 {
                info!(errors = self.consume_errors, "consuming again after errors");
                self.consume_errors = 0;
                self.consume_warned_at = None;
            }
            self.at_end.remove(&msg.partition());
            let record = KafkaRecord {
                partition: msg.partition(),
                offset: msg.offset(),
                timestamp_ms: msg.timestamp().to_millis(),
                key: msg.key().map(Arc::from),
                payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            };
            if self.shared().assigned.load(Ordering::SeqCst) {
                // A rebalance ran inside this poll: hold the record until the caller has
                // re-read what the archive holds. The record is of the new assignment, so
                // the partitions revoked before it are dropped from the batch first: a
                // partition revoked and assigned again in one poll keeps this record
                // (its first from the group's committed offset; dropping it would leave a
                // gap that later records close over).
                self.drop_revoked(&mut records);
                self.held = Some(record);
                break;
            }
            self.keep(record, &mut records);
            self.drop_revoked(&mut records);
        }
        self.drop_revoked(&mut records);
        if !records.is_empty() {
            debug!(records = records.len(), "batch consumed");
        }
        Ok(KafkaBatch {
            topic: Arc::clone(&self.topic),
            records,
        })
    }

    fn keep(&mut self, record: KafkaRecord, records: &mut Vec<KafkaRecord>) {
        if self
            .archived
            .get(&record.partition)
            .is_some_and(|a| record.offset <= *a)
        {
            self.skipped += 1;
        } else {
            records.push(record);
        }
    }

    /// Commits `next` (partition, next offset to read) to the group, synchronously (off
    /// the async workers). It never fails the source: when the broker refuses the commit
    /// or cannot be reached, the offsets are kept, merged with later ones and committed
    /// again after a backoff, from [`KafkaSource::next_batch`] or
    /// [`KafkaSource::finish_commits`].
    pub fn commit(&self, next: &[(i32, i64)]) -> Result<()> {
        if let Ok(mut c) = self.shared().commits.lock() {
            c.merge(next.iter().copied());
        }
        self.commit_due()
    }

    /// Commits the waiting offsets unless their backoff runs (see [`KafkaSource::commit`]).
    /// [`KafkaSource::next_batch`] calls it; a caller that waits without reading (the
    /// pipeline's queue full) calls it to retry a commit the broker refused.
    pub fn commit_due(&self) -> Result<()> {
        let due = self
            .shared()
            .commits
            .lock()
            .ok()
            .and_then(|mut c| c.take_due());
        match due {
            Some(offsets) => self.commit_now(offsets).map(|_| ()),
            None => Ok(()),
        }
    }

    /// One synchronous commit of `offsets`; on failure they wait again with a backoff.
    /// Whether it succeeded.
    fn commit_now(&self, offsets: BTreeMap<i32, i64>) -> Result<bool> {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &offsets {
            tpl.add_partition_offset(&self.location.topic, *p, Offset::Offset(*o))
                .map_err(|e| kafka_err(&self.location, e))?;
        }
        // librdkafka reports the outcome of a manual commit only to a synchronous caller;
        // without a broker it returns once the request fails (at most socket.timeout.ms).
        let result = tokio::task::block_in_place(|| self.consumer.commit(&tpl, CommitMode::Sync));
        let Ok(mut c) = self.shared().commits.lock() else {
            return Ok(false);
        };
        match result {
            Ok(()) => {
                debug!(partitions = offsets.len(), "offsets committed to the group");
                c.succeeded();
                Ok(true)
            }
            Err(e) => {
                c.failed(offsets, &e);
                Ok(false)
            }
        }
    }

    /// At the end of a run: commits every offset still waiting, trying again with
    /// backoff for at most `within`. Offsets that cannot be committed by then are logged
    /// and left: the archive holds their records, so the next run skips them when the
    /// group hands them out again.
    pub async fn finish_commits(&self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let Some(offsets) = self
                .shared()
                .commits
                .lock()
                .ok()
                .map(|mut c| std::mem::take(&mut c.waiting))
                .filter(|o| !o.is_empty())
            else {
                return Ok(());
            };
            if self.commit_now(offsets)? {
                return Ok(());
            }
            let pause = self
                .shared()
                .commits
                .lock()
                .map_or(BACKOFF_MAX, |c| backoff(c.failures));
            if Instant::now() + pause > deadline {
                warn!(
                    "the last offsets were not committed to the consumer group; the archive holds their records, so the next run skips them"
                );
                return Ok(());
            }
            tokio::time::sleep(pause).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let pauses: Vec<u64> = (1..=9).map(|f| backoff(f).as_millis() as u64).collect();
        assert_eq!(
            pauses,
            [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn failed_commits_keep_their_offsets_and_wait() {
        let mut c = PendingCommits::default();
        c.merge([(0, 10), (1, 5)]);
        let first = c.take_due().unwrap();
        assert_eq!(first, BTreeMap::from([(0, 10), (1, 5)]));
        assert!(c.take_due().is_none(), "nothing waits");
        // Newer offsets arrive while the commit fails: the failed ones wait under them.
        c.merge([(0, 20)]);
        c.failed(
            first,
            &KafkaError::ConsumerCommit(RDKafkaErrorCode::BrokerTransportFailure),
        );
        assert_eq!(c.waiting, BTreeMap::from([(0, 20), (1, 5)]));
        assert!(c.take_due().is_none(), "still in its backoff");
        c.not_before = Some(Instant::now());
        assert_eq!(c.take_due().unwrap(), BTreeMap::from([(0, 20), (1, 5)]));
        assert_eq!(c.failures, 1);
        c.succeeded();
        assert_eq!((c.failures, c.not_before), (0, None));
    }

    /// Two members of one group over a topic of two partitions: each reads its own
    /// partition to its end and names the other's as not assigned to it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_member_at_the_end_of_its_partitions_names_the_ones_it_does_not_hold() {
        let (mock, mut a, mut b) = two_members();
        let servers = mock.bootstrap_servers();
        let started = Instant::now();
        // The group settles on one partition each before there is anything to read, so
        // no record is read twice across a rebalance.
        while !(a.assignment().len() == 1 && b.assignment().len() == 1) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the group did not settle: {:?} {:?}",
                a.assignment(),
                b.assignment()
            );
            read_batch(&mut a).await;
            read_batch(&mut b).await;
        }
        produce(&servers, 0..10);
        let mut read = 0;
        while !(a.all_at_end() && b.all_at_end() && read == 10) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "read {read} of 10"
            );
            read += read_batch(&mut a).await + read_batch(&mut b).await;
        }
        assert_eq!(read, 10, "each record read once, by one of the two");
        let timeout = Duration::from_secs(10);
        assert_eq!(a.unassigned_partitions(timeout).unwrap(), b.assignment());
        assert_eq!(b.unassigned_partitions(timeout).unwrap(), a.assignment());
    }

    /// `--until-end` does not end a member while another member holds part of the topic
    /// (within the session timeout and a rebalance): when that member goes, the group
    /// hands its partition over, and the run reads it too before it ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn until_end_waits_for_the_partitions_another_member_holds() {
        let (_mock, mut a, mut b) = two_members();
        let started = Instant::now();
        while !(a.assignment().len() == 1 && b.assignment().len() == 1 && a.all_at_end()) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no settled group"
            );
            read_batch(&mut a).await;
            read_batch(&mut b).await;
        }
        // Every partition of `a` is at its end, and `b` holds the other: `a` reads on.
        let waited = Instant::now();
        while waited.elapsed() < Duration::from_secs(3) {
            read_batch(&mut b).await;
            assert!(
                matches!(a.until_end(), UntilEnd::Reading),
                "ended beside a member holding part of the topic"
            );
            read_batch(&mut a).await;
        }
        // `b` goes; the group gives its partition to `a`, which then ends holding both.
        drop(b);
        let done = loop {
            assert!(started.elapsed() < Duration::from_secs(60), "never ended");
            if let UntilEnd::Done(others) = a.until_end() {
                break others;
            }
            read_batch(&mut a).await;
        };
        assert_eq!(done.unwrap(), Vec::<i32>::new());
        assert_eq!(a.assignment(), [0, 1]);
    }

    /// librdkafka's mock cluster with an empty topic `t` of two partitions, and two
    /// members of group `g` over it.
    fn two_members() -> (
        rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
        KafkaSource,
        KafkaSource,
    ) {
        let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
        mock.create_topic("t", 2, 1).unwrap();
        let servers = mock.bootstrap_servers();
        let (a, b) = (member(&servers), member(&servers));
        (mock, a, b)
    }

    /// librdkafka's mock cluster with topic `t` of one partition holding `records`
    /// records, and a source of group `g` over it.
    fn mock_source(
        records: usize,
    ) -> (
        rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
        KafkaSource,
    ) {
        let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
        mock.create_topic("t", 1, 1).unwrap();
        produce(&mock.bootstrap_servers(), 0..records);
        let source = member(&mock.bootstrap_servers());
        (mock, source)
    }

    /// A member of group `g` over topic `t` of the brokers at `servers`.
    fn member(servers: &str) -> KafkaSource {
        let location = KafkaLocation {
            brokers: servers.to_string(),
            topic: "t".into(),
            group: "g".into(),
        };
        let settings = BTreeMap::from([("session.timeout.ms".into(), "6000".into())]);
        KafkaSource::open(location, &settings, 100).unwrap()
    }

    /// Records `numbers` (their keys and payloads) to topic `t` of the brokers at
    /// `servers`.
    fn produce(servers: &str, numbers: std::ops::Range<usize>) {
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", servers)
            .create()
            .unwrap();
        for i in numbers {
            producer
                .send(
                    BaseRecord::to("t")
                        .key(&i.to_string())
                        .payload(&i.to_string()),
                )
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
    }

    /// How many records the next batch brings (lingering 100 ms).
    async fn read_batch(source: &mut KafkaSource) -> usize {
        let batch = source.next_batch(Duration::from_millis(100)).await;
        batch.unwrap().records.len()
    }

    /// A partition revoked and assigned again within one poll (an eager rebalance when a
    /// member joins): the first record of the new assignment is held for the caller, not
    /// dropped with the revoked partition's earlier records. Dropped, it was lost: the
    /// records after it were read and archived, and the archive's offsets then skip it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_partition_revoked_and_assigned_in_one_poll_keeps_its_first_record() {
        let (_mock, mut source) = mock_source(5);
        // The revocation, as the rebalance callback notes it, precedes the assignment
        // and the record that the poll below brings.
        source.shared().revoked.lock().unwrap().insert(0);
        let first = source.next_batch(Duration::from_secs(30)).await.unwrap();
        assert!(
            first.records.is_empty(),
            "held until the caller has seen the assignment"
        );
        assert!(source.take_assigned());
        let started = Instant::now();
        let mut offsets = Vec::new();
        while offsets.len() < 5 && started.elapsed() < Duration::from_secs(30) {
            let batch = source.next_batch(Duration::from_millis(100)).await.unwrap();
            offsets.extend(batch.records.iter().map(|r| r.offset));
        }
        assert_eq!(offsets, [0, 1, 2, 3, 4]);
    }

    /// `--until-end` ends on the end-of-partition events of the partitions' current
    /// assignment only. An end reported before a partition was assigned again is stale:
    /// the partition is read again from the group's committed offset, and ending on the
    /// old event would leave its records unread. An end reported after the assignment
    /// counts, even when the revocation before it is still pending (a partition revoked
    /// and assigned within one poll, whose new fetch starts at its end): erasing that
    /// end with the revocation left `--until-end` waiting for an event that never came.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_an_end_reported_since_the_latest_assignment_ends_the_run() {
        let (_mock, mut source) = mock_source(3);
        let started = Instant::now();
        let mut read = 0;
        while !source.all_at_end() {
            assert!(started.elapsed() < Duration::from_secs(30), "no end");
            read += read_batch(&mut source).await;
        }
        assert_eq!(read, 3);

        // Partition 0 revoked and assigned again within one poll, as the rebalance
        // callbacks note it, after its end.
        source.shared().revoked.lock().unwrap().insert(0);
        source.shared().assign(&[0]);
        assert!(!source.all_at_end(), "an end from before the assignment");

        // The new assignment's fetch starts at the partition's end, so its end event
        // comes again without a record (a seek starts a new fetch, as an assignment does).
        tokio::task::block_in_place(|| {
            source
                .consumer
                .seek("t", 0, Offset::Offset(3), Duration::from_secs(10))
        })
        .unwrap();
        // The end event is queued (librdkafka's next fetch, within about a second) before
        // the next poll takes it together with the pending revocation.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let started = Instant::now();
        while !source.all_at_end() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the end reported after the assignment did not count"
            );
            assert_eq!(read_batch(&mut source).await, 0, "nothing past the end");
        }
    }

    /// Against librdkafka's mock cluster: the broker refuses two commits in a row; the
    /// offsets are kept and committed on the third try, while the source reads on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_group_commit_is_kept_and_made_again() {
        use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
        let (mock, mut source) = mock_source(5);
        let started = Instant::now();
        let mut read = 0;
        while read < 5 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "read {read} of 5"
            );
            read += read_batch(&mut source).await;
        }

        let refused = RDKafkaRespErr::RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE;
        mock.request_errors(RDKafkaApiKey::OffsetCommit, &[refused, refused]);
        source.commit(&[(0, 5)]).unwrap();
        let mut most_failures = 0;
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "never committed"
            );
            source.next_batch(Duration::from_millis(50)).await.unwrap();
            let c = source.shared().commits.lock().unwrap();
            most_failures = most_failures.max(c.failures);
            if c.waiting.is_empty() {
                break;
            }
        }
        assert_eq!(most_failures, 2, "both refusals seen, then success");
        let committed = source.consumer.committed(Duration::from_secs(10)).unwrap();
        assert_eq!(
            committed.find_partition("t", 0).unwrap().offset(),
            Offset::Offset(5)
        );
    }

    #[test]
    fn urls_name_brokers_topic_and_group() {
        let l = KafkaLocation::parse("kafka://a:9092,b:9093/security?group=g1", "rampart").unwrap();
        assert_eq!(l.brokers, "a:9092,b:9093");
        assert_eq!(l.topic, "security");
        assert_eq!(l.group, "g1");
        let l = KafkaLocation::parse("kafka://a:9092/t", "rampart").unwrap();
        assert_eq!(l.group, "rampart");
        for bad in [
            "kafka://a:9092",
            "kafka:///t",
            "kafka://a/t",
            "kafka://a:1/t?grp=x",
            "kafka://a:1/t/u",
        ] {
            let err = KafkaLocation::parse(bad, "r").unwrap_err().to_string();
            assert!(err.contains("kafka://HOST:PORT"), "{bad}: {err}");
        }
    }
}
