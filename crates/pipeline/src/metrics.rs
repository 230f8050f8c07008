//! A run's metrics and health, served for Prometheus.
//!
//! Every metric name is a constant here and every recording helper a method of
//! [`Metrics`], so a stage records with one call where it already counts. What is a
//! state rather than an event (queue depths, watermark lag, consumer lag, how long a
//! stage has held its batch) is read when scraped.
//!
//! With `[metrics] addr` set, [`Metrics::start`] listens there and answers
//! `GET /metrics` (OpenMetrics text) and `GET /healthz`: `200 ok`, or `503` with the
//! reason once a stage has held one batch for `metrics.stall-timeout` without finishing
//! it, or once a stage has failed. The server is a few lines over tokio's listener: two
//! read-only routes need no HTTP framework, and hyper's server feature would rebuild the
//! object-store stack that shares its hyper build.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int32Type, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rampart_core::config::MetricsConfig;
use rampart_core::schema::{self, events, source};
use rampart_core::{Clock, DeadLetterReason};
use rampart_ingest::ConsumerLag;
use rampart_window::{Outputs, ViolationState, WindowEngine};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::task::SpawnedTask;
use crate::{Error, Result};

// Names as registered; the exposition adds `_total` to counters.

/// Counter: messages read from the source, counted when decoded (each becomes one row of
/// `events` or `dead_letters`).
pub(crate) const MESSAGES_READ: &str = "rampart_messages_read";
/// Counter by `reason`: messages dead-lettered, counted when decoded.
pub(crate) const DEAD_LETTERS: &str = "rampart_dead_letters";
/// Counter by `table`: rows handed to the archive writer.
pub(crate) const ROWS_WRITTEN: &str = "rampart_rows_written";
/// Counter by `table`: rows in files a manifest committed.
pub(crate) const ROWS_COMMITTED: &str = "rampart_rows_committed";
/// Counter: events too late for their window.
pub(crate) const LATE_EVENTS: &str = "rampart_late_events";
/// Counter: windows closed and emitted.
pub(crate) const WINDOWS_CLOSED: &str = "rampart_windows_closed";
/// Counter: alerts emitted (policy hits and violation changes).
pub(crate) const ALERTS: &str = "rampart_alerts";
/// Counter by `rule`: `policy_hits` rows.
pub(crate) const POLICY_HITS: &str = "rampart_policy_hits";
/// Gauge by `rule`: violations open now.
pub(crate) const OPEN_VIOLATIONS: &str = "rampart_open_violations";
/// Counter: manifests committed.
pub(crate) const COMMITS: &str = "rampart_commits";
/// Histogram: one commit, from closing the open files to the manifest written.
pub(crate) const COMMIT_SECONDS: &str = "rampart_commit_duration_seconds";
/// Histogram: from a batch read at the source to its rows handed to the archive writer.
pub(crate) const BATCH_LATENCY_SECONDS: &str = "rampart_batch_latency_seconds";
/// Gauge by `queue`: batches waiting between two stages.
pub(crate) const QUEUE_DEPTH: &str = "rampart_queue_depth";
/// Gauge by `queue`: batches a queue holds before its upstream stage waits.
pub(crate) const QUEUE_CAPACITY: &str = "rampart_queue_capacity";
/// Gauge by `partition`: now minus the largest event time seen on the partition.
pub(crate) const WATERMARK_LAG_SECONDS: &str = "rampart_watermark_lag_seconds";
/// Gauge by `topic` and `partition`: high watermark minus the group's committed offset.
pub(crate) const KAFKA_CONSUMER_LAG: &str = "rampart_kafka_consumer_lag";
/// Gauge by `stage`: how long the stage has held its current batch (0 while it waits).
pub(crate) const STAGE_BUSY_SECONDS: &str = "rampart_stage_busy_seconds";

/// The stages of a run, as `/healthz` and the `stage` label name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Source,
    Decode,
    Window,
    Sink,
}

impl Stage {
    /// The stages that take batches from a queue (the source reads from outside).
    const HOLDING: [Stage; 3] = [Stage::Decode, Stage::Window, Stage::Sink];

    fn name(self) -> &'static str {
        match self {
            Stage::Source => "source",
            Stage::Decode => "decode",
            Stage::Window => "window",
            Stage::Sink => "sink",
        }
    }
}

/// `busy_since` of a stage that waits for input.
const IDLE: i64 = i64::MIN;

/// Whether the pipeline makes progress: per stage, since when it holds its current
/// batch; and the first stage failure.
#[derive(Debug)]
struct Health {
    stall_micros: i64,
    busy_since: [AtomicI64; 4],
    failed: Mutex<Option<String>>,
}

impl Health {
    fn new(stall_timeout: Duration) -> Self {
        Self {
            stall_micros: i64::try_from(stall_timeout.as_micros()).unwrap_or(i64::MAX),
            busy_since: std::array::from_fn(|_| AtomicI64::new(IDLE)),
            failed: Mutex::new(None),
        }
    }

    /// Seconds `stage` has held its batch at `now`; 0 while it waits for input.
    fn busy_secs(&self, stage: Stage, now: i64) -> f64 {
        match self.busy_since[stage as usize].load(Ordering::SeqCst) {
            IDLE => 0.0,
            since => now.saturating_sub(since).max(0) as f64 / 1e6,
        }
    }

    /// `Ok` while every stage makes progress; else what is wrong.
    fn check(&self, now: i64) -> std::result::Result<(), String> {
        if let Some(failure) = self.failed.lock().ok().and_then(|f| f.clone()) {
            return Err(format!("failed: {failure}"));
        }
        let stalled: Vec<String> = Stage::HOLDING
            .iter()
            .filter_map(|&stage| {
                let since = self.busy_since[stage as usize].load(Ordering::SeqCst);
                (since != IDLE && now.saturating_sub(since) >= self.stall_micros).then(|| {
                    format!(
                        "{} stage has held one batch for {:.0}s",
                        stage.name(),
                        self.busy_secs(stage, now)
                    )
                })
            })
            .collect();
        if stalled.is_empty() {
            return Ok(());
        }
        Err(format!(
            "stalled: {} (metrics.stall-timeout is {}s)",
            stalled.join("; "),
            self.stall_micros / 1_000_000
        ))
    }
}

type Label = [(&'static str, String); 1];
type TopicPartition = [(&'static str, String); 2];
type FloatGauge = Gauge<f64, AtomicU64>;
/// Depth and capacity of a queue; `None` once it is closed.
type QueueProbe = Box<dyn Fn() -> Option<(usize, usize)> + Send + Sync>;

fn label(key: &'static str, value: impl Into<String>) -> Label {
    [(key, value.into())]
}

/// The metrics of one run (cheap to clone: every clone records into the same registry).
#[derive(Clone)]
pub(crate) struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    clock: Arc<dyn Clock>,
    health: Health,
    messages_read: Counter,
    dead_letters: Family<Label, Counter>,
    /// All dead letters, for the progress line (not exported: the family has them).
    dead_total: Counter,
    rows_written: Family<Label, Counter>,
    rows_committed: Family<Label, Counter>,
    late_events: Counter,
    windows_closed: Counter,
    alerts: Counter,
    policy_hits: Family<Label, Counter>,
    open_violations: Family<Label, Gauge>,
    commits: Counter,
    commit_seconds: Histogram,
    batch_latency_seconds: Histogram,
    queue_depth: Family<Label, Gauge>,
    queue_capacity: Family<Label, Gauge>,
    watermark_lag: Family<Label, FloatGauge>,
    consumer_lag: Family<TopicPartition, Gauge>,
    stage_busy: Family<Label, FloatGauge>,
    /// Sampled when scraped.
    queues: Mutex<Vec<(&'static str, QueueProbe)>>,
    /// Per source partition, the largest event time seen (µs).
    event_time: Mutex<BTreeMap<i32, i64>>,
    kafka: Mutex<Option<(String, ConsumerLag)>>,
    /// One scrape at a time: the sampled gauges are set, then encoded.
    scrape: Mutex<()>,
}

impl Inner {
    /// A registry of every metric, each series known in advance present at 0.
    fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        let (i, r) = (self, &mut registry);
        r.register(
            MESSAGES_READ,
            "Messages read from the source, counted when decoded (each becomes one events or dead_letters row)",
            i.messages_read.clone(),
        );
        r.register(
            DEAD_LETTERS,
            "Messages dead-lettered, by reason code, counted when decoded",
            i.dead_letters.clone(),
        );
        r.register(
            ROWS_WRITTEN,
            "Rows handed to the archive writer, by table",
            i.rows_written.clone(),
        );
        r.register(
            ROWS_COMMITTED,
            "Rows in files committed to the archive by a manifest, by table",
            i.rows_committed.clone(),
        );
        r.register(
            LATE_EVENTS,
            "Events too late for their window (archived, in no window)",
            i.late_events.clone(),
        );
        r.register(
            WINDOWS_CLOSED,
            "Windows closed and emitted",
            i.windows_closed.clone(),
        );
        r.register(
            ALERTS,
            "Alerts emitted: policy hits and violation changes",
            i.alerts.clone(),
        );
        r.register(
            POLICY_HITS,
            "policy_hits rows, by rule",
            i.policy_hits.clone(),
        );
        r.register(
            OPEN_VIOLATIONS,
            "Violations open now, by rule",
            i.open_violations.clone(),
        );
        r.register(
            COMMITS,
            "Manifests committed to the archive",
            i.commits.clone(),
        );
        r.register(
            COMMIT_SECONDS,
            "Duration of one archive commit: closing the open files and writing the manifest",
            i.commit_seconds.clone(),
        );
        r.register(
            BATCH_LATENCY_SECONDS,
            "From a batch read at the source to its rows handed to the archive writer",
            i.batch_latency_seconds.clone(),
        );
        r.register(
            QUEUE_DEPTH,
            "Batches waiting in the queue between two stages (raw: source to decode, decoded: decode to window, sink: window to sink)",
            i.queue_depth.clone(),
        );
        r.register(
            QUEUE_CAPACITY,
            "Batches a queue holds before its upstream stage waits",
            i.queue_capacity.clone(),
        );
        r.register(
            WATERMARK_LAG_SECONDS,
            "Now minus the largest event time seen on the source partition (a file or stdin is partition 0)",
            i.watermark_lag.clone(),
        );
        r.register(
            KAFKA_CONSUMER_LAG,
            "Records between the partition's high watermark and the group's committed offset (committed only once archived), from librdkafka's statistics",
            i.consumer_lag.clone(),
        );
        r.register(
            STAGE_BUSY_SECONDS,
            "How long the stage has held its current batch; 0 while it waits for input",
            i.stage_busy.clone(),
        );
        for reason in DeadLetterReason::ALL {
            let _ = i
                .dead_letters
                .get_or_create_owned(&label("reason", reason.as_str()));
        }
        for table in schema::tables() {
            let _ = i
                .rows_written
                .get_or_create_owned(&label("table", table.name()));
            let _ = i
                .rows_committed
                .get_or_create_owned(&label("table", table.name()));
        }
        registry
    }
}

/// What the periodic progress line of a long run reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ProgressCounts {
    pub(crate) messages: u64,
    pub(crate) dead_letters: u64,
    pub(crate) late: u64,
    pub(crate) commits: u64,
    /// Records of the assigned partitions not yet committed to the group (Kafka).
    pub(crate) consumer_lag: Option<i64>,
}

/// The listening endpoint; dropping it stops serving.
pub(crate) struct Endpoint {
    _task: SpawnedTask<()>,
}

impl Metrics {
    /// Metrics for a run whose clock is `clock`; a stage that holds one batch for
    /// `stall_timeout` is reported stalled.
    pub(crate) fn new(clock: Arc<dyn Clock>, stall_timeout: Duration) -> Self {
        let latency = || Histogram::new(exponential_buckets(0.001, 2.0, 18));
        let mut inner = Inner {
            registry: Registry::default(),
            clock,
            health: Health::new(stall_timeout),
            messages_read: Counter::default(),
            dead_letters: Family::default(),
            dead_total: Counter::default(),
            rows_written: Family::default(),
            rows_committed: Family::default(),
            late_events: Counter::default(),
            windows_closed: Counter::default(),
            alerts: Counter::default(),
            policy_hits: Family::default(),
            open_violations: Family::default(),
            commits: Counter::default(),
            commit_seconds: latency(),
            batch_latency_seconds: latency(),
            queue_depth: Family::default(),
            queue_capacity: Family::default(),
            watermark_lag: Family::default(),
            consumer_lag: Family::default(),
            stage_busy: Family::default(),
            queues: Mutex::new(Vec::new()),
            event_time: Mutex::new(BTreeMap::new()),
            kafka: Mutex::new(None),
            scrape: Mutex::new(()),
        };
        inner.registry = inner.registry();
        Self(Arc::new(inner))
    }

    /// Metrics for a run (see [`Metrics::new`]), and with `config.addr` set, the endpoint
    /// serving them. A taken port or an address that is not this machine's fails here.
    pub(crate) async fn start(
        config: &MetricsConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, Option<Endpoint>)> {
        let metrics = Self::new(clock, config.stall_timeout);
        let Some(addr) = config.socket_addr()? else {
            return Ok((metrics, None));
        };
        let listen_err = |source| Error::MetricsListen { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(listen_err)?;
        let local = listener.local_addr().map_err(listen_err)?;
        info!(addr = %local, "serving metrics at /metrics and health at /healthz");
        let task = SpawnedTask::spawn("metrics", serve(listener, metrics.clone()));
        Ok((metrics, Some(Endpoint { _task: task })))
    }

    /// A decoded batch: `messages` read, the reason code of each dead letter, and the
    /// accepted `events` (for the largest event time per partition).
    pub(crate) fn decoded(&self, messages: u64, reason_codes: &[String], events: &RecordBatch) {
        let i = &self.0;
        i.messages_read.inc_by(messages);
        let mut by_reason: BTreeMap<&str, u64> = BTreeMap::new();
        for code in reason_codes {
            *by_reason.entry(code).or_default() += 1;
        }
        i.dead_total.inc_by(reason_codes.len() as u64);
        for (code, n) in by_reason {
            i.dead_letters
                .get_or_create(&label("reason", code))
                .inc_by(n);
        }
        let latest = latest_event_times(events);
        if let Ok(mut seen) = i.event_time.lock() {
            for (partition, t) in latest {
                let e = seen.entry(partition).or_insert(t);
                *e = (*e).max(t);
            }
        }
    }

    /// `rows` of `table` handed to the archive writer.
    pub(crate) fn rows_written(&self, table: &str, rows: usize) {
        self.0
            .rows_written
            .get_or_create(&label("table", table))
            .inc_by(rows as u64);
    }

    /// A batch reached the archive writer `since_read` after it was read.
    pub(crate) fn batch_latency(&self, since_read: Duration) {
        self.0
            .batch_latency_seconds
            .observe(since_read.as_secs_f64());
    }

    /// A manifest committed files of `(table, rows)` after `took`.
    pub(crate) fn committed(
        &self,
        files: impl IntoIterator<Item = (&'static str, u64)>,
        took: Duration,
    ) {
        let i = &self.0;
        i.commits.inc();
        i.commit_seconds.observe(took.as_secs_f64());
        for (table, rows) in files {
            i.rows_committed
                .get_or_create(&label("table", table))
                .inc_by(rows);
        }
    }

    /// What the window stage emitted.
    pub(crate) fn window_outputs(&self, out: &Outputs) {
        let i = &self.0;
        i.late_events.inc_by(out.late);
        i.windows_closed.inc_by(out.windows_closed);
        i.alerts
            .inc_by((out.policy_hits.len() + out.violations.len()) as u64);
        for hit in &out.policy_hits {
            i.policy_hits
                .get_or_create(&label("rule", &*hit.rule_id))
                .inc();
        }
        for v in &out.violations {
            let open = i.open_violations.get_or_create(&label("rule", &*v.rule_id));
            match v.state {
                ViolationState::Open => open.inc(),
                ViolationState::Resolved => open.dec(),
            };
        }
    }

    /// The window engine's rules and the violations it starts with (restored from the
    /// archive); later changes arrive through [`Metrics::window_outputs`].
    pub(crate) fn engine_started(&self, engine: Option<&WindowEngine>) {
        let Some(engine) = engine else { return };
        let i = &self.0;
        let open = engine.open_violations_by_rule();
        for rule in engine.rules() {
            let _ = i
                .policy_hits
                .get_or_create_owned(&label("rule", rule.id.as_str()));
            if rule.violation {
                let n = open.get(rule.id.as_str()).copied().unwrap_or(0);
                i.open_violations
                    .get_or_create(&label("rule", rule.id.as_str()))
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        for (rule, n) in open {
            i.open_violations
                .get_or_create(&label("rule", rule))
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Reports the depth of the queue `name` that `tx` sends into (sampled when scraped,
    /// through a weak sender, so the queue still closes when its stage ends).
    pub(crate) fn watch_queue<T: Send + 'static>(&self, name: &'static str, tx: &mpsc::Sender<T>) {
        let weak = tx.downgrade();
        let probe: QueueProbe = Box::new(move || {
            weak.upgrade()
                .map(|tx| (tx.max_capacity() - tx.capacity(), tx.max_capacity()))
        });
        if let Ok(mut q) = self.0.queues.lock() {
            q.push((name, probe));
        }
    }

    /// Reports the consumer lag of `topic`'s assigned partitions.
    pub(crate) fn watch_consumer_lag(&self, topic: &str, lag: ConsumerLag) {
        if let Ok(mut k) = self.0.kafka.lock() {
            *k = Some((topic.to_string(), lag));
        }
    }

    /// The counts the periodic progress line reports.
    pub(crate) fn progress(&self) -> ProgressCounts {
        let i = &self.0;
        let consumer_lag = i
            .kafka
            .lock()
            .ok()
            .and_then(|k| k.as_ref().map(|(_, lag)| lag.snapshot()))
            .filter(|lag| !lag.is_empty())
            .map(|lag| lag.values().sum());
        ProgressCounts {
            messages: i.messages_read.get(),
            dead_letters: i.dead_total.get(),
            late: i.late_events.get(),
            commits: i.commits.get(),
            consumer_lag,
        }
    }

    /// `stage` took a batch (or a timer's work) and works on it.
    pub(crate) fn busy(&self, stage: Stage) {
        let now = self.0.clock.now_micros();
        self.0.health.busy_since[stage as usize].store(now, Ordering::SeqCst);
    }

    /// `stage` finished its batch and waits for the next (or for room downstream).
    pub(crate) fn idle(&self, stage: Stage) {
        self.0.health.busy_since[stage as usize].store(IDLE, Ordering::SeqCst);
    }

    /// `work`, the body of `stage`; an error it ends with makes `/healthz` report failure.
    pub(crate) fn watch<T, F>(
        &self,
        stage: Stage,
        work: F,
    ) -> impl Future<Output = Result<T>> + Send + 'static
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let metrics = self.clone();
        async move {
            let result = work.await;
            if let Err(e) = &result {
                metrics.failed(stage, e);
            }
            result
        }
    }

    /// [`Metrics::watch`] for a stage that runs on a blocking thread.
    pub(crate) fn watch_blocking<T, F>(
        &self,
        stage: Stage,
        work: F,
    ) -> impl FnOnce() -> Result<T> + Send + 'static
    where
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let metrics = self.clone();
        move || {
            let result = work();
            if let Err(e) = &result {
                metrics.failed(stage, e);
            }
            result
        }
    }

    fn failed(&self, stage: Stage, error: &Error) {
        if let Ok(mut f) = self.0.health.failed.lock() {
            f.get_or_insert_with(|| format!("{} stage: {error}", stage.name()));
        }
    }

    /// `Ok` while the pipeline makes progress; else the reason (see the module docs).
    pub(crate) fn health(&self) -> std::result::Result<(), String> {
        self.0.health.check(self.0.clock.now_micros())
    }

    /// The OpenMetrics text of every metric, sampled gauges read now.
    pub(crate) fn render(&self) -> String {
        let i = &self.0;
        let _one = i.scrape.lock();
        let now = i.clock.now_micros();
        if let Ok(queues) = i.queues.lock() {
            for (name, probe) in queues.iter() {
                let (depth, capacity) = probe().unwrap_or((0, 0));
                let l = label("queue", *name);
                i.queue_depth.get_or_create(&l).set(depth as i64);
                if capacity > 0 {
                    i.queue_capacity.get_or_create(&l).set(capacity as i64);
                }
            }
        }
        if let Ok(seen) = i.event_time.lock() {
            for (partition, t) in seen.iter() {
                i.watermark_lag
                    .get_or_create(&label("partition", partition.to_string()))
                    .set(now.saturating_sub(*t) as f64 / 1e6);
            }
        }
        if let Ok(kafka) = i.kafka.lock()
            && let Some((topic, lag)) = kafka.as_ref()
        {
            i.consumer_lag.clear();
            for (partition, records) in lag.snapshot() {
                i.consumer_lag
                    .get_or_create(&[
                        ("topic", topic.clone()),
                        ("partition", partition.to_string()),
                    ])
                    .set(records);
            }
        }
        for stage in Stage::HOLDING {
            i.stage_busy
                .get_or_create(&label("stage", stage.name()))
                .set(i.health.busy_secs(stage, now));
        }
        let mut text = String::new();
        if let Err(e) = encode(&mut text, &i.registry) {
            warn!(error = %e, "cannot encode metrics");
        }
        text
    }
}

/// Per source partition (`kafka_partition`, or 0 for a file or stdin), the largest
/// event time in `events`.
fn latest_event_times(events: &RecordBatch) -> BTreeMap<i32, i64> {
    let mut latest = BTreeMap::new();
    let Some(ts) = events
        .column_by_name(events::TS)
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
    else {
        return latest;
    };
    let partitions = events
        .column_by_name(source::KAFKA_PARTITION)
        .and_then(|c| c.as_primitive_opt::<Int32Type>())
        .filter(|p| p.null_count() < p.len());
    match partitions {
        None => {
            if let Some(max) = arrow::compute::max(ts) {
                latest.insert(0, max);
            }
        }
        Some(p) => {
            for row in (0..ts.len()).filter(|&r| ts.is_valid(r)) {
                let partition = if p.is_valid(row) { p.value(row) } else { 0 };
                let e = latest.entry(partition).or_insert(i64::MIN);
                *e = (*e).max(ts.value(row));
            }
        }
    }
    latest
}

/// Most connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 32;

/// Accepts connections until dropped, answering each on its own task.
async fn serve(listener: TcpListener, metrics: Metrics) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        if connections.len() >= MAX_CONNECTIONS {
            let _ = connections.join_next().await;
            continue;
        }
        match listener.accept().await {
            Ok((stream, _)) => {
                connections.spawn(respond(stream, metrics.clone()));
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, then accept again.
                warn!(error = %e, "metrics endpoint cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// How long a client may take to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest request head read.
const MAX_REQUEST_HEAD: usize = 8 << 10;

/// Answers one HTTP/1.x request and closes the connection.
async fn respond(mut stream: TcpStream, metrics: Metrics) {
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, request_line(&mut stream)).await {
        Ok(Some(line)) => route(&line, &metrics),
        _ => Response::text(400, "Bad Request", "bad request\n".into()),
    };
    if let Err(e) = stream.write_all(&response.into_bytes()).await {
        debug!(error = %e, "metrics client went away");
    }
    let _ = stream.shutdown().await;
}

/// Reads a request head and returns its first line; `None` when the client sent no
/// complete head.
async fn request_line(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
        let end =
            head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n");
        if end {
            break;
        }
        if head.len() > MAX_REQUEST_HEAD {
            return None;
        }
    }
    let line = head.split(|b| *b == b'\n').next()?;
    Some(String::from_utf8_lossy(line).trim_end().to_string())
}

struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
    head_only: bool,
}

impl Response {
    fn text(status: u16, reason: &'static str, body: String) -> Self {
        Self {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body,
            head_only: false,
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        );
        if self.status == 405 {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("\r\n");
        if !self.head_only {
            out.push_str(&self.body);
        }
        out.into_bytes()
    }
}

/// The answer to `GET /metrics`, `GET /healthz` (or `HEAD`), anything else refused.
fn route(request_line: &str, metrics: &Metrics) -> Response {
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return Response::text(405, "Method Not Allowed", "only GET and HEAD\n".into());
    }
    let mut response = match path {
        "/metrics" => Response {
            content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ..Response::text(200, "OK", metrics.render())
        },
        "/healthz" => match metrics.health() {
            Ok(()) => Response::text(200, "OK", "ok\n".into()),
            Err(why) => Response::text(503, "Service Unavailable", format!("{why}\n")),
        },
        _ => Response::text(404, "Not Found", "not found: /metrics or /healthz\n".into()),
    };
    response.head_only = method == "HEAD";
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::ManualClock;

    const T0: i64 = 1_793_491_200_000_000; // 2026-11-01T00:00:00Z

    fn metrics(stall: u64) -> (Metrics, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(T0));
        let m = Metrics::new(
            Arc::clone(&clock) as Arc<dyn Clock>,
            Duration::from_secs(stall),
        );
        (m, clock)
    }

    /// The value of the sample `series` (name and labels as exposed) in `text`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn a_stage_holding_one_batch_past_the_stall_timeout_is_unhealthy() {
        let (m, clock) = metrics(60);
        assert_eq!(m.health(), Ok(()));
        // Waiting for input, however long, is no stall.
        clock.advance(600_000_000);
        assert_eq!(m.health(), Ok(()));

        m.busy(Stage::Window);
        clock.advance(59_000_000);
        assert_eq!(m.health(), Ok(()), "under the stall timeout");
        let text = m.render();
        assert_eq!(
            sample(&text, "rampart_stage_busy_seconds{stage=\"window\"}"),
            Some(59.0)
        );
        clock.advance(1_000_000);
        let why = m.health().unwrap_err();
        assert!(
            why.contains("window stage has held one batch for 60s") && why.contains("is 60s"),
            "{why}"
        );
        assert!(!why.contains("sink"), "{why}");

        // Finishing the batch is progress.
        m.idle(Stage::Window);
        assert_eq!(m.health(), Ok(()));
        assert_eq!(
            sample(&m.render(), "rampart_stage_busy_seconds{stage=\"window\"}"),
            Some(0.0)
        );

        // A new batch starts its own count.
        m.busy(Stage::Sink);
        clock.advance(30_000_000);
        m.idle(Stage::Sink);
        m.busy(Stage::Sink);
        clock.advance(30_000_000);
        assert_eq!(m.health(), Ok(()));
    }

    #[test]
    fn a_failed_stage_is_unhealthy_for_good() {
        let (m, _) = metrics(60);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let r: Result<()> = rt.block_on(m.watch(Stage::Sink, async {
            Err(Error::Stage {
                stage: "sink",
                message: "broke".into(),
            })
        }));
        assert!(r.is_err());
        let ok: Result<u8> = m.watch_blocking(Stage::Decode, || Ok(7))();
        assert_eq!(ok.unwrap(), 7);
        let why = m.health().unwrap_err();
        assert!(
            why.starts_with("failed: sink stage:") && why.contains("broke"),
            "{why}"
        );
    }

    #[test]
    fn counts_and_sampled_gauges_render_as_recorded() {
        let (m, clock) = metrics(60);
        let (tx, _rx) = mpsc::channel::<u8>(8);
        m.watch_queue("raw", &tx);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        m.decoded(
            5,
            &["not_json".into(), "not_json".into(), "too_large".into()],
            &RecordBatch::new_empty(schema::events_schema()),
        );
        m.rows_written("events", 2);
        m.committed(
            [("events", 2), ("dead_letters", 3)],
            Duration::from_millis(20),
        );
        clock.advance(1);
        let text = m.render();
        for (series, value) in [
            ("rampart_messages_read_total", 5.0),
            ("rampart_dead_letters_total{reason=\"not_json\"}", 2.0),
            ("rampart_dead_letters_total{reason=\"too_large\"}", 1.0),
            ("rampart_dead_letters_total{reason=\"wrong_type\"}", 0.0),
            ("rampart_rows_written_total{table=\"events\"}", 2.0),
            ("rampart_rows_committed_total{table=\"dead_letters\"}", 3.0),
            ("rampart_commits_total", 1.0),
            ("rampart_commit_duration_seconds_count", 1.0),
            ("rampart_queue_depth{queue=\"raw\"}", 2.0),
            ("rampart_queue_capacity{queue=\"raw\"}", 8.0),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        // A closed queue is empty.
        drop(tx);
        assert_eq!(
            sample(&m.render(), "rampart_queue_depth{queue=\"raw\"}"),
            Some(0.0)
        );
    }

    #[test]
    fn watermark_lag_is_now_minus_the_largest_event_time_per_partition() {
        let (m, clock) = metrics(60);
        let record = |partition, offset, ts: &str| rampart_ingest::KafkaRecord {
            partition,
            offset,
            timestamp_ms: None,
            key: None,
            payload: format!(
                r#"{{"ts":"{ts}","resource_id":"r","resource_type":"vm","category":"auth"}}"#
            )
            .into_bytes(),
        };
        let mut decoder =
            rampart_ingest::Decoder::new(&rampart_core::config::DecodeConfig::default());
        let batch = rampart_ingest::KafkaBatch {
            topic: "t".into(),
            records: vec![
                record(2, 10, "2026-11-01T00:00:05Z"),
                record(2, 11, "2026-11-01T00:00:03Z"),
                record(0, 4, "2026-10-31T23:59:00Z"),
            ],
        };
        decoder.push_kafka(&batch, T0);
        let decoded = decoder.flush().unwrap();
        m.decoded(3, &[], &decoded.events);
        clock.advance(60_000_000);
        let text = m.render();
        assert_eq!(
            sample(&text, "rampart_watermark_lag_seconds{partition=\"2\"}"),
            Some(55.0)
        );
        assert_eq!(
            sample(&text, "rampart_watermark_lag_seconds{partition=\"0\"}"),
            Some(120.0)
        );
        // An older event does not move it back.
        let batch = rampart_ingest::KafkaBatch {
            topic: "t".into(),
            records: vec![record(2, 12, "2026-10-01T00:00:00Z")],
        };
        decoder.push_kafka(&batch, T0);
        m.decoded(1, &[], &decoder.flush().unwrap().events);
        assert_eq!(
            sample(
                &m.render(),
                "rampart_watermark_lag_seconds{partition=\"2\"}"
            ),
            Some(55.0)
        );
    }

    #[tokio::test]
    async fn the_endpoint_answers_metrics_health_and_nothing_else() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(T0));
        let config = MetricsConfig {
            addr: "127.0.0.1:0".into(),
            ..MetricsConfig::default()
        };
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = MetricsConfig {
            addr: taken.local_addr().unwrap().to_string(),
            ..MetricsConfig::default()
        };
        let err = Metrics::start(&busy, Arc::clone(&clock))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("cannot serve metrics on") && err.contains("--metrics-addr"),
            "{err}"
        );

        let listener = TcpListener::bind(&config.addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let m = Metrics::new(clock, Duration::from_secs(60));
        let _server = SpawnedTask::spawn("metrics", serve(listener, m.clone()));
        m.decoded(3, &[], &RecordBatch::new_empty(schema::events_schema()));
        let get = |request: &'static str| async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(request.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let metrics = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
        assert!(metrics.contains("\r\n\r\n# HELP"), "{metrics}");
        assert!(
            metrics.contains("\nrampart_messages_read_total 3\n"),
            "{metrics}"
        );
        let health = get("GET /healthz HTTP/1.1\r\n\r\n").await;
        assert!(
            health.starts_with("HTTP/1.1 200 OK\r\n") && health.ends_with("\r\n\r\nok\n"),
            "{health}"
        );
        let head = get("HEAD /healthz HTTP/1.1\r\n\r\n").await;
        assert!(
            head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        assert!(
            get("GET /nope HTTP/1.1\r\n\r\n")
                .await
                .starts_with("HTTP/1.1 404")
        );
        assert!(
            get("POST /metrics HTTP/1.1\r\n\r\n")
                .await
                .starts_with("HTTP/1.1 405")
        );
        m.busy(Stage::Decode);
        m.failed(
            Stage::Decode,
            &Error::Stage {
                stage: "decode",
                message: "broke".into(),
            },
        );
        let health = get("GET /healthz HTTP/1.1\r\n\r\n").await;
        assert!(
            health.starts_with("HTTP/1.1 503 Service Unavailable\r\n")
                && health.contains("decode stage"),
            "{health}"
        );
    }
}
