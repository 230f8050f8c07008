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
//! Messages are expected to be keyed by `resource_id`, so that a resource's events stay
//! on one partition (and its windows with them). Records are read in batches
//! ([`KafkaBatch`]); `until_end` stops once every assigned partition has reached its
//! end (for backfills and tests).
//!
//! librdkafka's statistics (every `statistics.interval.ms`, 5 s unless set) give the
//! consumer lag of each assigned partition ([`KafkaSource::consumer_lag`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

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
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::{debug, info};

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
struct Context {
    assigned: Arc<AtomicBool>,
    /// Partitions revoked since the batch in progress began.
    revoked: Arc<Mutex<BTreeSet<i32>>>,
    /// Makes what was handed downstream durable; returns the offsets to commit.
    on_revoke: Arc<Mutex<Option<RevokeHook>>>,
    topic: String,
    /// Partitions of `topic` assigned to this member now.
    owned: Mutex<BTreeSet<i32>>,
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
            .filter(|p| owned.contains(&p.partition) && p.consumer_lag >= 0)
            .map(|p| (p.partition, p.consumer_lag))
            .collect();
        if let Ok(mut l) = self.lag.0.lock() {
            *l = lag;
        }
    }
}

impl Context {
    /// Notes a change of this member's partitions of the topic.
    fn own(&self, tpl: &TopicPartitionList, owned: bool) {
        let Ok(mut o) = self.owned.lock() else { return };
        for e in tpl.elements().iter().filter(|e| e.topic() == self.topic) {
            if owned {
                o.insert(e.partition());
            } else {
                o.remove(&e.partition());
            }
        }
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        self.own(tpl, false);
        let parts: Vec<i32> = tpl
            .elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect();
        if parts.is_empty() {
            return;
        }
        if let Ok(mut r) = self.revoked.lock() {
            r.extend(parts.iter().copied());
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
            self.own(tpl, true);
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
    /// Partitions that reached their end since they were last assigned or read.
    at_end: BTreeSet<i32>,
    batch_records: usize,
    skipped: u64,
    /// Set when partitions were assigned; cleared by [`KafkaSource::take_assigned`].
    assigned: Arc<AtomicBool>,
    /// A record received after an assignment, held back until the caller has brought
    /// the archived offsets up to date.
    held: Option<KafkaRecord>,
    revoked: Arc<Mutex<BTreeSet<i32>>>,
    on_revoke: Arc<Mutex<Option<RevokeHook>>>,
    lag: ConsumerLag,
}

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
        let assigned = Arc::new(AtomicBool::new(false));
        let revoked = Arc::new(Mutex::new(BTreeSet::new()));
        let on_revoke = Arc::new(Mutex::new(None));
        let consumer: StreamConsumer<Context> = config
            .create_with_context(Context {
                assigned: Arc::clone(&assigned),
                revoked: Arc::clone(&revoked),
                on_revoke: Arc::clone(&on_revoke),
                topic: location.topic.clone(),
                owned: Mutex::new(BTreeSet::new()),
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
            at_end: BTreeSet::new(),
            batch_records: batch_records.max(1),
            skipped: 0,
            assigned,
            held: None,
            revoked,
            on_revoke,
            lag,
        })
    }

    /// The consumer lag of each assigned partition, updated with librdkafka's statistics.
    pub fn consumer_lag(&self) -> ConsumerLag {
        self.lag.clone()
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
        if let Ok(mut h) = self.on_revoke.lock() {
            *h = hook;
        }
    }

    /// Drops the records of partitions revoked meanwhile from `records`: they were not
    /// handed downstream, and the partition's next owner reads them.
    fn drop_revoked(&mut self, records: &mut Vec<KafkaRecord>) {
        let revoked = match self.revoked.lock() {
            Ok(mut r) if !r.is_empty() => std::mem::take(&mut *r),
            _ => return,
        };
        records.retain(|r| !revoked.contains(&r.partition));
        if self
            .held
            .as_ref()
            .is_some_and(|r| revoked.contains(&r.partition))
        {
            self.held = None;
        }
        for p in &revoked {
            self.at_end.remove(p);
        }
    }

    /// Whether partitions were assigned since the last call. Another member may have
    /// archived records of them meanwhile: the caller re-reads the archive's offsets and
    /// passes them to [`KafkaSource::skip_through`] before the next batch.
    pub fn take_assigned(&self) -> bool {
        self.assigned.swap(false, Ordering::SeqCst)
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

    /// Whether every assigned partition has reached its end.
    pub fn all_at_end(&self) -> bool {
        let Ok(assigned) = self.consumer.assignment() else {
            return false;
        };
        let parts: Vec<i32> = assigned.elements().iter().map(|e| e.partition()).collect();
        !parts.is_empty() && parts.iter().all(|p| self.at_end.contains(p))
    }

    /// The next batch: waits for a first record, then takes what arrives within `linger`
    /// up to the batch size. Returns an empty batch when `linger` passes with nothing
    /// (so that the caller can look at [`KafkaSource::all_at_end`]).
    pub async fn next_batch(&mut self, linger: Duration) -> Result<KafkaBatch> {
        let mut records = Vec::new();
        if let Some(r) = self.held.take() {
            self.keep(r, &mut records);
        }
        let deadline = tokio::time::Instant::now() + linger;
        while records.len() < self.batch_records {
            let msg = match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Err(_) => break,
                Ok(Err(KafkaError::PartitionEOF(p))) => {
                    self.at_end.insert(p);
                    continue;
                }
                Ok(Err(e)) => {
                    // The client reconnects and retries by itself (a broker restart, a
                    // network cut): wait a little and ask again, never give up.
                    tracing::warn!(error = %e, "kafka consume error; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Ok(Ok(m)) => m,
            };
            self.at_end.remove(&msg.partition());
            let record = KafkaRecord {
                partition: msg.partition(),
                offset: msg.offset(),
                timestamp_ms: msg.timestamp().to_millis(),
                key: msg.key().map(Arc::from),
                payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            };
            if self.assigned.load(Ordering::SeqCst) {
                // A rebalance ran inside this poll: hold the record until the caller has
                // re-read what the archive holds.
                self.held = Some(record);
                self.drop_revoked(&mut records);
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

    /// Commits `next` (partition, next offset to read) to the group, synchronously.
    pub fn commit(&self, next: &[(i32, i64)]) -> Result<()> {
        if next.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in next {
            tpl.add_partition_offset(&self.location.topic, *p, Offset::Offset(*o))
                .map_err(|e| kafka_err(&self.location, e))?;
        }
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| kafka_err(&self.location, e))?;
        debug!(partitions = next.len(), "offsets committed to the group");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
