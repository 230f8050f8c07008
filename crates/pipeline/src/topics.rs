//! Alerts and dead letters to Kafka topics.
//!
//! With `[kafka] alerts-topic` set, every alert (policy hit or violation change) is
//! produced to that topic as JSON: the line of the alerts output plus an `alert_id`,
//! keyed by `resource_id`. With `dead-letter-topic`, every dead letter goes there as JSON
//! with its reason, its raw bytes and its source coordinates, keyed by the resource it
//! names, else by the source message's own key. Both stay in the archive as well.
//!
//! **Delivery.** The producer is idempotent (`enable.idempotence`, `acks=all`) and, unless
//! `message.timeout.ms` is set in `[kafka.rdkafka]`, its messages never time out:
//! librdkafka retries them with backoff through a broker outage. Sending only enqueues;
//! [`TopicSink::flush`] waits until everything enqueued so far is delivered, warning
//! while it waits, and sends again what failed. The pipeline flushes before each archive
//! commit, so source offsets are never committed past an undelivered alert or dead
//! letter.
//!
//! The topics are **at least once**, the archive exactly once: a run that crashes after
//! producing and before its archive commit produces those messages again when the input
//! is read again. Consumers drop the repeats by `alert_id` (a hash of what identifies the
//! alert, see [`rampart_window::PolicyHit::alert_id`]) and dead letters by their source
//! coordinates.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use arrow::array::{
    Array, BinaryArray, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use arrow::record_batch::RecordBatch;
use base64::Engine;
use rampart_core::Config;
use rampart_core::config::Preset;
use rampart_core::ledger::{rfc3339, sha256_hex};
use rampart_core::schema::{dead_letters, events, source};
use rampart_ingest::KafkaLocation;
use rampart_ingest::kafka::backoff;
use rampart_window::Outputs;
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::{Error, Result};

/// How often [`TopicSink::flush`] says that it is still waiting.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Room left in a message for its key and the record's framing.
const FRAMING_BYTES: usize = 1024;

/// The producer of the alert and dead-letter topics (see the module docs). Cloning it
/// shares the producer and its undelivered messages.
#[derive(Clone)]
pub(crate) struct TopicSink {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TopicSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicSink")
            .field("brokers", &self.inner.brokers)
            .field("alerts_topic", &self.inner.alerts_topic)
            .field("dead_letter_topic", &self.inner.dead_letter_topic)
            .finish_non_exhaustive()
    }
}

struct Inner {
    brokers: String,
    /// The producer's settings, to build it again after a fatal error.
    client_config: ClientConfig,
    producer: RwLock<FutureProducer<Logged>>,
    alerts_topic: Option<String>,
    dead_letter_topic: Option<String>,
    /// The largest value a message may have (`message.max.bytes` less the framing).
    max_value_bytes: usize,
    /// `[input] preset`: where a rejected message names its resource.
    preset: Preset,
    /// Enqueued, not known to be delivered.
    pending: Mutex<Vec<Pending>>,
}

/// One message, kept until it is delivered so that it can be sent again.
struct Outgoing {
    topic: String,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
}

struct Pending {
    message: Outgoing,
    /// `None` when it could not be enqueued yet (the local queue was full).
    delivery: Option<DeliveryFuture>,
}

/// Routes librdkafka's errors to the log.
struct Logged;

impl ClientContext for Logged {
    fn error(&self, error: KafkaError, reason: &str) {
        warn!(%error, reason, "kafka producer error (it retries)");
    }
}

fn producer_err(brokers: &str, source: KafkaError) -> Error {
    Error::Producer {
        brokers: brokers.to_string(),
        source,
    }
}

impl TopicSink {
    /// The producer for `[kafka] alerts-topic` and `dead-letter-topic`, or `None` when
    /// neither is set. The brokers are `[kafka] brokers`, else those of the `kafka://`
    /// source; `[kafka.rdkafka]` applies as it does to the consumer.
    pub(crate) fn open(config: &Config) -> Result<Option<Self>> {
        let k = &config.kafka;
        if !k.produces() {
            return Ok(None);
        }
        let source = match config.source.url.as_deref() {
            Some(url) if url.starts_with("kafka://") => Some(KafkaLocation::parse(url, &k.group)?),
            _ => None,
        };
        let brokers = match (&source, k.brokers.is_empty()) {
            (_, false) => k.brokers.clone(),
            (Some(s), true) => s.brokers.clone(),
            (None, true) => {
                return Err(rampart_core::Error::Config {
                    key: "kafka.brokers".into(),
                    message: "is required when a topic is set and the source is not kafka://"
                        .into(),
                }
                .into());
            }
        };
        for (key, topic) in [
            ("kafka.alerts-topic", &k.alerts_topic),
            ("kafka.dead-letter-topic", &k.dead_letter_topic),
        ] {
            if let Some(s) = &source
                && s.topic == *topic
                && s.brokers == brokers
            {
                return Err(rampart_core::Error::Config {
                    key: key.into(),
                    message: format!(
                        "{topic:?} is the source topic: its messages would be read back as events"
                    ),
                }
                .into());
            }
        }
        let mut client_config = ClientConfig::new();
        for (key, value) in &k.rdkafka {
            client_config.set(key, value);
        }
        client_config
            .set("bootstrap.servers", &brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all");
        if !k.rdkafka.contains_key("message.timeout.ms") {
            // Never time out: librdkafka retries through an outage, and flush waits.
            client_config.set("message.timeout.ms", "0");
        }
        let max_message = k
            .rdkafka
            .get("message.max.bytes")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1_000_000);
        let producer = client_config
            .create_with_context(Logged)
            .map_err(|e| producer_err(&brokers, e))?;
        let topic = |t: &String| (!t.is_empty()).then(|| t.clone());
        info!(
            brokers = %brokers,
            alerts_topic = %k.alerts_topic,
            dead_letter_topic = %k.dead_letter_topic,
            "alerts and dead letters go to Kafka"
        );
        Ok(Some(Self {
            inner: Arc::new(Inner {
                brokers,
                client_config,
                producer: RwLock::new(producer),
                alerts_topic: topic(&k.alerts_topic),
                dead_letter_topic: topic(&k.dead_letter_topic),
                max_value_bytes: max_message.saturating_sub(FRAMING_BYTES).max(FRAMING_BYTES),
                preset: config.input.preset,
                pending: Mutex::new(Vec::new()),
            }),
        }))
    }

    /// Enqueues the alerts of `outputs` (policy hits, then violation changes), keyed by
    /// resource. Does not wait for delivery (see [`TopicSink::flush`]).
    pub(crate) fn send_alerts(&self, outputs: &Outputs) {
        let Some(topic) = &self.inner.alerts_topic else {
            return;
        };
        let hits = outputs
            .policy_hits
            .iter()
            .map(|h| (&h.resource_id, h.alert(), h.alert_id()));
        let changes = outputs
            .violations
            .iter()
            .map(|v| (&v.resource_id, v.alert(), v.alert_id()));
        for (resource, mut alert, id) in hits.chain(changes) {
            if let Some(fields) = alert.as_object_mut() {
                fields.insert("alert_id".into(), Value::String(id));
            }
            self.enqueue(Outgoing {
                topic: topic.clone(),
                key: Some(resource.as_bytes().to_vec()),
                value: alert.to_string().into_bytes(),
            });
        }
    }

    /// Enqueues every row of a `dead_letters` batch (see [`dead_letter`]). Does not wait
    /// for delivery.
    pub(crate) fn send_dead_letters(&self, batch: &RecordBatch) -> Result<()> {
        let Some(topic) = &self.inner.dead_letter_topic else {
            return Ok(());
        };
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let columns = DeadLetterColumns::of(batch)?;
        for row in 0..batch.num_rows() {
            let (key, value) = columns.message(row, self.inner.max_value_bytes, self.inner.preset);
            self.enqueue(Outgoing {
                topic: topic.clone(),
                key,
                value,
            });
        }
        Ok(())
    }

    /// Waits until every message enqueued before the call is delivered. What fails is
    /// sent again after a backoff; a producer that failed for good is replaced. Warns
    /// every [`WARN_EVERY`] while messages wait. It returns only once all are delivered:
    /// during a broker outage, that is once the broker is back.
    pub(crate) async fn flush(&self) -> Result<()> {
        let mut waiting = std::mem::take(&mut *self.pending());
        if waiting.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let mut next_warning = started + WARN_EVERY;
        let (mut failures, mut delivered) = (0u32, 0usize);
        while !waiting.is_empty() {
            let mut failed = Vec::new();
            let mut last_error = None;
            let count = waiting.len();
            for (i, mut p) in waiting.into_iter().enumerate() {
                let outcome = match p.delivery.take() {
                    None => None,
                    Some(mut delivery) => Some(loop {
                        tokio::select! {
                            r = &mut delivery => break r,
                            () = tokio::time::sleep_until(next_warning) => {
                                warn!(
                                    undelivered = count - i + failed.len(),
                                    waited_s = started.elapsed().as_secs(),
                                    brokers = %self.inner.brokers,
                                    "alerts or dead letters not delivered yet; waiting for the broker (archive commits wait too)"
                                );
                                next_warning += WARN_EVERY;
                            }
                        }
                    }),
                };
                match outcome {
                    Some(Ok(Ok(_))) => delivered += 1,
                    Some(Ok(Err((e, _)))) => {
                        last_error = Some(e.to_string());
                        failed.push(p);
                    }
                    // Purged when a failed producer was replaced, or never enqueued.
                    Some(Err(_)) | None => failed.push(p),
                }
            }
            if failed.is_empty() {
                break;
            }
            failures += 1;
            let pause = backoff(failures);
            warn!(
                undelivered = failed.len(),
                error = last_error.as_deref().unwrap_or("not enqueued"),
                retry_in_ms = pause.as_millis() as u64,
                "alerts or dead letters not delivered; sending them again"
            );
            self.replace_if_failed()?;
            tokio::time::sleep(pause).await;
            for p in &mut failed {
                p.delivery = self.try_send(&p.message);
            }
            waiting = failed;
        }
        if failures > 0 || started.elapsed() >= WARN_EVERY {
            info!(
                delivered,
                waited_s = started.elapsed().as_secs(),
                "alerts and dead letters delivered"
            );
        } else {
            debug!(delivered, "alerts and dead letters delivered");
        }
        Ok(())
    }

    fn pending(&self) -> MutexGuard<'_, Vec<Pending>> {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn producer(&self) -> FutureProducer<Logged> {
        self.inner
            .producer
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn enqueue(&self, message: Outgoing) {
        let delivery = self.try_send(&message);
        self.pending().push(Pending { message, delivery });
    }

    /// Hands `message` to librdkafka; `None` when it cannot take it now (a full queue),
    /// in which case [`TopicSink::flush`] sends it again.
    fn try_send(&self, message: &Outgoing) -> Option<DeliveryFuture> {
        let mut record = FutureRecord::to(&message.topic).payload(&message.value);
        if let Some(key) = &message.key {
            record = record.key(key);
        }
        match self.producer().send_result(record) {
            Ok(delivery) => Some(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => None,
            Err((error, _)) => {
                warn!(%error, topic = %message.topic, "cannot enqueue a message; it is sent again at the next flush");
                None
            }
        }
    }

    /// An idempotent producer can fail for good (the broker lost its sequence numbers,
    /// say after a restart without its data): build a new one, which the messages still
    /// undelivered are sent through.
    fn replace_if_failed(&self) -> Result<()> {
        let Some((code, reason)) = self.producer().client().fatal_error() else {
            return Ok(());
        };
        warn!(
            ?code,
            reason, "the kafka producer failed for good; replacing it"
        );
        let fresh = self
            .inner
            .client_config
            .create_with_context(Logged)
            .map_err(|e| producer_err(&self.inner.brokers, e))?;
        *self
            .inner
            .producer
            .write()
            .unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }
}

/// The columns of a `dead_letters` batch that a dead-letter message is made of.
struct DeadLetterColumns<'a> {
    received_at: &'a TimestampMicrosecondArray,
    reason_code: &'a StringArray,
    reason: &'a StringArray,
    raw: &'a BinaryArray,
    source_file: &'a StringArray,
    source_line: &'a Int64Array,
    kafka_topic: &'a StringArray,
    kafka_partition: &'a Int32Array,
    kafka_offset: &'a Int64Array,
    kafka_timestamp: &'a TimestampMicrosecondArray,
    kafka_key: &'a BinaryArray,
}

fn column<'a, T: Array + 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| Error::Stage {
            stage: "window",
            message: format!("got a dead_letters batch without a usable column {name}"),
        })
}

fn opt<A: Array, T>(array: &A, row: usize, value: impl FnOnce(usize) -> T) -> Option<T> {
    array.is_valid(row).then(|| value(row))
}

/// Bytes in JSON: the text when they are UTF-8, else base64; and which of the two.
fn bytes_json(bytes: &[u8]) -> (Value, bool) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (Value::String(text.to_string()), false),
        Err(_) => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
            true,
        ),
    }
}

/// The `resource_id` a rejected message names, when it is a JSON object (so UTF-8) with
/// a non-empty string `resource_id` (given once), or under a schema preset, a non-empty
/// string at the first of the preset's resource paths that is present (`cloud.instance.id`
/// or `host.id` for ECS, `resources[0].uid` for OCSF).
fn named_resource(raw: &[u8], preset: Preset) -> Option<String> {
    if let Some(table) = rampart_core::preset::table(preset) {
        let value: Value = serde_json::from_slice(raw).ok()?;
        let paths = table.iter().find(|m| m.field == events::RESOURCE_ID)?.paths;
        return paths
            .iter()
            .find_map(|p| {
                rampart_core::preset::get(&value, &rampart_core::preset::parse_path(p))
                    .filter(|v| !v.is_null())
            })?
            .as_str()
            .filter(|r| !r.is_empty())
            .map(str::to_string);
    }
    #[derive(serde::Deserialize)]
    struct Named<'a> {
        #[serde(borrow, default)]
        resource_id: Option<Cow<'a, str>>,
    }
    let text = std::str::from_utf8(raw).ok()?;
    if !text.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str::<Named<'_>>(text)
        .ok()?
        .resource_id
        .filter(|r| !r.is_empty())
        .map(Cow::into_owned)
}

impl<'a> DeadLetterColumns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self> {
        Ok(Self {
            received_at: column(batch, dead_letters::RECEIVED_AT)?,
            reason_code: column(batch, dead_letters::REASON_CODE)?,
            reason: column(batch, dead_letters::REASON)?,
            raw: column(batch, dead_letters::RAW)?,
            source_file: column(batch, source::SOURCE_FILE)?,
            source_line: column(batch, source::SOURCE_LINE)?,
            kafka_topic: column(batch, source::KAFKA_TOPIC)?,
            kafka_partition: column(batch, source::KAFKA_PARTITION)?,
            kafka_offset: column(batch, source::KAFKA_OFFSET)?,
            kafka_timestamp: column(batch, source::KAFKA_TIMESTAMP)?,
            kafka_key: column(batch, source::KAFKA_KEY)?,
        })
    }

    /// The key and value of the dead-letter message of `row`. The raw bytes are left
    /// out (`raw_omitted`) when the value would exceed `max_value_bytes`; the archive
    /// holds them, found by the coordinates, and `raw_sha256` identifies them.
    fn message(
        &self,
        row: usize,
        max_value_bytes: usize,
        preset: Preset,
    ) -> (Option<Vec<u8>>, Vec<u8>) {
        let raw = self.raw.value(row);
        let resource = named_resource(raw, preset);
        let source_key = opt(self.kafka_key, row, |r| self.kafka_key.value(r));
        let (key_json, key_base64) = source_key.map(bytes_json).unzip();
        let (raw_json, raw_base64) = bytes_json(raw);
        let mut value = json!({
            "type": "dead_letter",
            "reason_code": self.reason_code.value(row),
            "reason": self.reason.value(row),
            "received_at": rfc3339(self.received_at.value(row)),
            "resource_id": resource,
            "raw": raw_json,
            "raw_base64": raw_base64,
            "raw_omitted": false,
            "raw_bytes": raw.len(),
            "raw_sha256": sha256_hex(raw),
            "source_file": opt(self.source_file, row, |r| self.source_file.value(r)),
            "source_line": opt(self.source_line, row, |r| self.source_line.value(r)),
            "kafka_topic": opt(self.kafka_topic, row, |r| self.kafka_topic.value(r)),
            "kafka_partition": opt(self.kafka_partition, row, |r| self.kafka_partition.value(r)),
            "kafka_offset": opt(self.kafka_offset, row, |r| self.kafka_offset.value(r)),
            "kafka_timestamp": opt(self.kafka_timestamp, row, |r| rfc3339(self.kafka_timestamp.value(r))),
            "kafka_key": key_json,
            "kafka_key_base64": key_base64,
        });
        let mut text = value.to_string();
        if text.len() > max_value_bytes
            && let Some(fields) = value.as_object_mut()
        {
            fields.insert("raw".into(), Value::Null);
            fields.insert("raw_omitted".into(), Value::Bool(true));
            text = value.to_string();
        }
        let key = match resource {
            Some(r) => Some(r.into_bytes()),
            None => source_key.map(<[u8]>::to_vec),
        };
        (key, text.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::SourcePos;
    use rampart_core::config::DecodeConfig;
    use rampart_ingest::Decoder;

    /// Dead letters of `messages` from a decoder, each with the Kafka coordinates
    /// (topic `src`, partition 3, offset = its index) and the given key.
    fn dead_letters(messages: &[(&[u8], Option<&[u8]>)]) -> RecordBatch {
        let mut d = Decoder::new(&DecodeConfig::default());
        for (i, (payload, key)) in messages.iter().enumerate() {
            let pos = SourcePos::Kafka {
                topic: "src".into(),
                partition: 3,
                offset: i as i64,
                timestamp_ms: Some(1_795_858_867_000),
                key: key.map(Arc::from),
            };
            d.push(payload, &pos, 1_795_858_867_123_456);
        }
        d.flush().unwrap().dead_letters
    }

    fn messages(batch: &RecordBatch, max: usize) -> Vec<(Option<Vec<u8>>, Value)> {
        let c = DeadLetterColumns::of(batch).unwrap();
        (0..batch.num_rows())
            .map(|r| {
                let (k, v) = c.message(r, max, Preset::Native);
                (k, serde_json::from_slice(&v).unwrap())
            })
            .collect()
    }

    #[test]
    fn dead_letters_keep_their_bytes_reason_and_coordinates() {
        let not_utf8: &[u8] = b"{\"resource_id\":\"vm-9\",\"x\":\"\xff\xfe\"}";
        let batch = dead_letters(&[
            // Names its resource: keyed by it, not by the (different) source key.
            (
                br#"{"resource_id":"vm-1","resource_type":"vm","category":"malware"}"#,
                Some(b"other-key"),
            ),
            // Not an object: the source key.
            (br#"["vm-2"]"#, Some(b"vm-2")),
            // Not UTF-8: base64, keyed by the source key (not JSON, though it names vm-9).
            (not_utf8, Some(b"src-key")),
            // Nothing to key by.
            (b"{oops", None),
        ]);
        let m = messages(&batch, 1 << 20);
        assert_eq!(m.len(), 4);

        let (key, v) = &m[0];
        assert_eq!(key.as_deref(), Some(&b"vm-1"[..]));
        assert_eq!(v["type"], "dead_letter");
        assert_eq!(v["reason_code"], "missing_field");
        assert!(v["reason"].as_str().unwrap().contains("`ts`"), "{v}");
        assert_eq!(v["resource_id"], "vm-1");
        assert_eq!(
            v["raw"],
            r#"{"resource_id":"vm-1","resource_type":"vm","category":"malware"}"#
        );
        assert_eq!(v["raw_base64"], false);
        assert_eq!(v["kafka_topic"], "src");
        assert_eq!(v["kafka_partition"], 3);
        assert_eq!(v["kafka_offset"], 0);
        assert_eq!(v["kafka_timestamp"], "2026-11-28T09:41:07.000000Z");
        assert_eq!(v["received_at"], "2026-11-28T09:41:07.123456Z");
        assert_eq!(v["kafka_key"], "other-key");
        assert_eq!(v["source_file"], Value::Null);

        assert_eq!(m[1].0.as_deref(), Some(&b"vm-2"[..]));
        assert_eq!(m[1].1["resource_id"], Value::Null);
        assert_eq!(m[1].1["reason_code"], "not_object");

        let (key, v) = &m[2];
        assert_eq!(key.as_deref(), Some(&b"src-key"[..]));
        assert_eq!(v["resource_id"], Value::Null);
        assert_eq!(v["reason_code"], "not_utf8");
        assert_eq!(v["raw_base64"], true);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(v["raw"].as_str().unwrap())
            .unwrap();
        assert_eq!(decoded, not_utf8, "lossless");
        assert_eq!(v["raw_sha256"], sha256_hex(not_utf8));

        assert_eq!(m[3].0, None);
        assert_eq!(m[3].1["kafka_key"], Value::Null);
        assert_eq!(m[3].1["raw"], "{oops");
        assert_eq!(m[3].1["kafka_offset"], 3);
    }

    #[test]
    fn raw_bytes_too_large_for_a_message_are_left_to_the_archive() {
        let big = format!(r#"{{"resource_id":"vm-1","pad":"{}"#, "x".repeat(5000));
        let batch = dead_letters(&[(big.as_bytes(), None)]);
        let (_, v) = messages(&batch, 4096).remove(0);
        assert_eq!(v["raw"], Value::Null);
        assert_eq!(v["raw_omitted"], true);
        assert_eq!(v["raw_bytes"], big.len());
        assert_eq!(v["raw_sha256"], sha256_hex(big.as_bytes()));
        let (_, v) = messages(&batch, 1 << 20).remove(0);
        assert_eq!(v["raw"], big.as_str());
        assert_eq!(v["raw_omitted"], false);
    }

    fn hit(resource: &str) -> rampart_window::PolicyHit {
        rampart_window::PolicyHit {
            window_start: 1_793_491_200_000_000,
            window_end: 1_793_491_500_000_000,
            resource_id: resource.into(),
            workload: Some("payments".into()),
            rule_id: "network_vulnerability".into(),
            rule_version: 1,
            action: "notify_security_and_owner".into(),
            category: None,
            hit_count: 1,
            prev_count: None,
            increase_pct: None,
        }
    }

    /// Every message of `topic` on `brokers`: (key, value).
    fn read_back(brokers: &str, topic: &str, partitions: i32) -> Vec<(Vec<u8>, Value)> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::message::Message;
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "reader")
            .set("enable.partition.eof", "true")
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let (mut out, mut at_end) = (Vec::new(), 0);
        let started = std::time::Instant::now();
        while at_end < partitions && started.elapsed() < Duration::from_secs(30) {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => out.push((
                    m.key().unwrap_or_default().to_vec(),
                    serde_json::from_slice(m.payload().unwrap()).unwrap(),
                )),
                Some(Err(KafkaError::PartitionEOF(_))) => at_end += 1,
                Some(Err(e)) => panic!("{e}"),
                None => {}
            }
        }
        assert_eq!(at_end, partitions, "{topic} not read to its end");
        out
    }

    /// Against librdkafka's mock cluster: the broker goes away with messages in flight,
    /// they time out (after 1 s here), and flush sends them again until it is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flush_waits_out_an_outage_and_sends_again_what_timed_out() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
        mock.create_topic("alerts", 2, 1).unwrap();
        mock.create_topic("dead", 1, 1).unwrap();
        let mut config = Config::default();
        config.source.url = Some("events.jsonl".into());
        config.kafka.brokers = mock.bootstrap_servers();
        config.kafka.alerts_topic = "alerts".into();
        config.kafka.dead_letter_topic = "dead".into();
        config
            .kafka
            .rdkafka
            .insert("message.timeout.ms".into(), "1000".into());
        let sink = TopicSink::open(&config).unwrap().unwrap();
        let outputs = |resources: &[&str]| Outputs {
            policy_hits: resources.iter().map(|r| hit(r)).collect(),
            ..Outputs::default()
        };
        sink.send_alerts(&outputs(&["vm-0"]));
        sink.flush().await.unwrap();

        mock.broker_down(-1).unwrap();
        sink.send_alerts(&outputs(&["vm-1", "vm-2", "vm-3"]));
        sink.send_dead_letters(&dead_letters(&[(b"{oops", Some(b"vm-9"))]))
            .unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let flushing = {
            let (sink, done) = (sink.clone(), Arc::clone(&done));
            crate::task::SpawnedTask::spawn("flush", async move {
                let r = sink.flush().await;
                done.store(true, Ordering::SeqCst);
                r
            })
        };
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            !done.load(Ordering::SeqCst),
            "flush returned with the broker down"
        );
        mock.broker_up(-1).unwrap();
        tokio::time::timeout(Duration::from_secs(60), flushing.join())
            .await
            .expect("flush still waiting a minute after the broker came back")
            .unwrap()
            .unwrap();

        let brokers = mock.bootstrap_servers();
        let mut alerts = read_back(&brokers, "alerts", 2);
        alerts.sort_by(|a, b| a.0.cmp(&b.0));
        alerts.dedup_by(|a, b| a.1["alert_id"] == b.1["alert_id"]);
        let keys: Vec<&[u8]> = alerts.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, [&b"vm-0"[..], b"vm-1", b"vm-2", b"vm-3"]);
        for (key, value) in &alerts {
            let expected = hit(std::str::from_utf8(key).unwrap());
            assert_eq!(value["alert_id"], expected.alert_id().as_str());
            assert_eq!(value["rule_id"], "network_vulnerability");
        }
        let dead = read_back(&brokers, "dead", 1);
        assert!(!dead.is_empty());
        assert!(
            dead.iter()
                .all(|(k, v)| k.as_slice() == b"vm-9" && v["raw"] == "{oops")
        );
    }

    #[test]
    fn under_a_preset_the_resource_is_named_at_the_presets_paths() {
        let ecs = br#"{"@timestamp":"x","host":{"id":"h-1"}}"#;
        assert_eq!(named_resource(ecs, Preset::Ecs).as_deref(), Some("h-1"));
        let flat = br#"{"cloud.instance.id":"vm-2","host":{"id":"h-1"}}"#;
        assert_eq!(named_resource(flat, Preset::Ecs).as_deref(), Some("vm-2"));
        let ocsf = br#"{"time":"x","resources":[{"uid":"sa-1"},{"uid":"sa-2"}]}"#;
        assert_eq!(named_resource(ocsf, Preset::Ocsf).as_deref(), Some("sa-1"));
        assert_eq!(named_resource(ocsf, Preset::Ecs), None);
        assert_eq!(named_resource(ecs, Preset::Native), None);
        for raw in [
            &br#"{"resources":[{"uid":""}]}"#[..],
            br#"{"resources":[{"uid":7}]}"#,
            br#"{"resources":{"uid":"a"}}"#,
            b"{oops",
        ] {
            assert_eq!(named_resource(raw, Preset::Ocsf), None);
        }
    }

    #[test]
    fn a_resource_is_named_only_by_an_object_with_one_string_resource_id() {
        assert_eq!(
            named_resource(br#" {"resource_id":"a"}"#, Preset::Native).as_deref(),
            Some("a")
        );
        assert_eq!(
            named_resource(br#"{"resource_id":"a\u0062"}"#, Preset::Native).as_deref(),
            Some("ab")
        );
        for raw in [
            &br#"["a"]"#[..],
            br#"{"resource_id":""}"#,
            br#"{"resource_id":7}"#,
            br#"{"resource_id":"a","resource_id":"b"}"#,
            br#"{"resource_id":"a""#,
            b"{\"resource_id\":\"a\",\"x\":\"\xff\"}",
            b"null",
        ] {
            assert_eq!(
                named_resource(raw, Preset::Native),
                None,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}
