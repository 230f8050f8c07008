//! The window stage: splits each batch by source partition, runs the window engine,
//! writes alerts, and decides the commit points.
//!
//! A commit point is a marker sent to the sink after the batches before it, carrying
//! the window state of every partition those batches touched. The sink commits the
//! files and the states in one manifest, so the state stored for a partition always
//! corresponds to the last position the archive holds for it:
//!
//! - every `sink.roll-interval`, after the batch in hand;
//! - when partitions are revoked (the marker travels from the Kafka source), after which
//!   their state is dropped here: their next owner restores it from the archive;
//! - at the end of the run, after the last windows closed.
//!
//! When partitions are assigned, their state is read back from the archive before any
//! of their records, if it matches the offsets the archive holds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::Int32Type;
use arrow::record_batch::RecordBatch;
use hdrhistogram::Histogram;
use object_store::ObjectStoreExt;
use rampart_core::Clock;
use rampart_core::ledger::{StateFile, sha256_hex};
use rampart_core::schema::{self, source as src};
use rampart_core::store::Location;
use rampart_window::state::PartitionSnapshot;
use rampart_window::{Outputs, ViolationState, WindowEngine, output};
use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tracing::{info, warn};

use crate::alerts::AlertSink;
use crate::commit::{Cover, PendingState};
use crate::metrics::{Metrics, Stage};
use crate::summary::{LatencySummary, WindowSummary};
use crate::{Error, Result};

/// Markers that travel with the data, in order, from the source to the window stage.
pub(crate) enum Control {
    /// Partitions are being revoked: commit everything before this marker, reply with
    /// what became durable, then drop the partitions' state.
    Flush {
        revoked: Vec<i32>,
        reply: oneshot::Sender<Cover>,
    },
    /// Partitions were assigned: restore their state before their first record.
    Assigned(Vec<Assignment>),
}

/// A partition assigned to this member, with what the archive holds of it.
#[derive(Debug, Clone)]
pub(crate) struct Assignment {
    pub(crate) partition: i32,
    /// Its latest stored window state.
    pub(crate) state: Option<StateFile>,
    /// The last position (offset) the archive holds.
    pub(crate) archived: Option<i64>,
}

/// Decoded rows with the time their chunk was read and the positions they come from.
pub(crate) struct DecodedChunk {
    pub(crate) decoded: rampart_ingest::Decoded,
    pub(crate) read_at: Instant,
    pub(crate) cover: Cover,
}

/// What the decode stage hands on.
pub(crate) enum Staged {
    Data(DecodedChunk),
    Control(Control),
}

/// A commit point: the sink commits everything received before it with these states.
pub(crate) struct CommitRequest {
    pub(crate) states: Vec<PendingState>,
    /// Replies for revoke flushes: the positions the commit made durable.
    pub(crate) flushes: Vec<oneshot::Sender<Cover>>,
}

/// Rows for the archive: per table, with the time their chunk was read and the source
/// positions they come from; or a commit point.
pub(crate) struct SinkBatch {
    pub(crate) tables: Vec<(&'static str, RecordBatch)>,
    pub(crate) read_at: Option<Instant>,
    pub(crate) cover: Cover,
    pub(crate) commit: Option<CommitRequest>,
}

/// How the stored states of this run are named.
#[derive(Debug, Clone)]
pub(crate) enum StateKeys {
    /// No state is stored (standard input cannot resume, or rules are off).
    None,
    /// One state for a file source.
    File(String),
    /// One state per partition of a Kafka topic.
    Kafka(String),
}

impl StateKeys {
    fn key(&self, partition: i32) -> Option<String> {
        match self {
            Self::None => None,
            Self::File(source) => Some(rampart_core::ledger::file_state_key(source)),
            Self::Kafka(topic) => Some(rampart_core::ledger::kafka_state_key(topic, partition)),
        }
    }
}

/// Histogram from 1 µs to 1 h at 3 significant digits; longer samples are clamped.
pub(crate) fn histogram(stage: &'static str) -> Result<Histogram<u64>> {
    Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| Error::Stage {
        stage,
        message: format!("cannot build histogram: {e}"),
    })
}

/// Most rows the window stage takes at once when chunks are waiting.
const WINDOW_BATCH_ROWS: usize = 64 * 1024;

/// The window stage's settings and channels.
pub(crate) struct WindowStage {
    pub(crate) metrics: Metrics,
    pub(crate) engine: Option<WindowEngine>,
    pub(crate) alerts: AlertSink,
    /// Alerts and dead letters to Kafka topics, when configured; the sink waits for their
    /// delivery before each commit.
    pub(crate) topics: Option<crate::topics::TopicSink>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) archive: Location,
    pub(crate) keys: StateKeys,
    /// Close the windows of a partition silent for this long (live sources only).
    pub(crate) idle_timeout: Option<i64>,
    pub(crate) commit_every: i64,
    /// Set by the source when a signal stopped it (the run did not reach its end).
    pub(crate) interrupted: Arc<AtomicBool>,
    /// Whether a later run continues this one (a Kafka group or a regular file): then
    /// an interrupted run keeps its windows open in the stored state instead of closing
    /// them.
    pub(crate) resumable: bool,
    /// The last position per partition, as restored at start (file sources).
    pub(crate) positions: BTreeMap<i32, i64>,
}

/// Per-partition bookkeeping while the stage runs.
#[derive(Default)]
struct Progress {
    /// The last position folded into each partition's state.
    positions: BTreeMap<i32, i64>,
    /// Partitions whose state changed since the last commit point.
    dirty: BTreeSet<i32>,
    /// Per partition, when its last input arrived and up to when its idle time was
    /// credited (clock microseconds).
    last_input: BTreeMap<i32, (i64, i64)>,
    /// When the last commit point was sent (clock microseconds).
    last_commit: i64,
}

impl WindowStage {
    /// Runs until `rx` closes; returns the window summary and the open violations.
    pub(crate) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Staged>,
        tx: mpsc::Sender<SinkBatch>,
    ) -> Result<(WindowSummary, usize)> {
        let mut ws = WindowSummary::default();
        let mut alert_latency = histogram("window")?;
        let mut progress = Progress {
            positions: std::mem::take(&mut self.positions),
            ..Progress::default()
        };
        let start = self.clock.now_micros();
        for p in progress.positions.keys() {
            progress.last_input.insert(*p, (start, start));
        }
        progress.last_commit = start;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut pending: Option<Staged> = None;
        loop {
            let staged = match pending.take() {
                Some(s) => s,
                None => tokio::select! {
                    msg = rx.recv() => match msg {
                        Some(s) => s,
                        None => break,
                    },
                    _ = tick.tick() => {
                        // Idle only when nothing waits upstream: a slow sink is not a
                        // silent source.
                        if rx.is_empty() {
                            self.metrics.busy(Stage::Window);
                            let started = Instant::now();
                            let out = self.idle(&mut progress).await?;
                            let sent = self
                                .emit(out, &mut ws, &mut alert_latency, started, &tx, None)
                                .await?;
                            self.metrics.idle(Stage::Window);
                            if !sent {
                                break;
                            }
                        }
                        if !self.commit_if_due(&mut progress, &tx).await? {
                            break;
                        }
                        continue;
                    }
                },
            };
            match staged {
                Staged::Control(Control::Assigned(list)) => {
                    for a in list {
                        self.assign(a, &mut progress).await;
                    }
                    // Restored partitions bring their open violations.
                    self.metrics.engine_started(self.engine.as_ref());
                }
                Staged::Control(Control::Flush { revoked, reply }) => {
                    let sent = self.commit_point(&mut progress, vec![reply], &tx).await?;
                    for p in revoked {
                        if let Some(engine) = self.engine.as_mut() {
                            engine.forget(p);
                        }
                        progress.positions.remove(&p);
                        progress.last_input.remove(&p);
                    }
                    // The revoked partitions' open violations went with them.
                    self.metrics.engine_started(self.engine.as_ref());
                    if !sent {
                        break;
                    }
                }
                Staged::Data(first) => {
                    self.metrics.busy(Stage::Window);
                    let Coalesced {
                        events,
                        dead_letters,
                        read_at,
                        cover,
                    } = coalesce(first, &mut rx, &mut pending);
                    let started = Instant::now();
                    let now = self.clock.now_micros();
                    let touched: Vec<(i32, i64)> = match (&self.keys, &cover) {
                        (StateKeys::Kafka(_), c) => {
                            c.kafka.iter().map(|(p, (_, hi))| (*p, *hi)).collect()
                        }
                        (_, c) => c
                            .lines
                            .map(|(_, last)| vec![(0, last as i64)])
                            .unwrap_or_default(),
                    };
                    for (p, position) in touched {
                        progress.positions.insert(p, position);
                        progress.dirty.insert(p);
                        progress.last_input.insert(p, (now, now));
                    }
                    let mut out = Outputs::default();
                    if let Some(engine) = self.engine.as_mut() {
                        for (p, events) in by_partition(&events)? {
                            out.extend(engine.process_batches(p, &events).await?);
                        }
                    }
                    // Dead letters to their topic (enqueued; the sink flushes before it
                    // commits).
                    if let Some(t) = &self.topics {
                        for d in &dead_letters {
                            t.send_dead_letters(d)?;
                        }
                    }
                    let tables = events
                        .into_iter()
                        .map(|b| (schema::EVENTS, b))
                        .chain(dead_letters.into_iter().map(|b| (schema::DEAD_LETTERS, b)))
                        .collect();
                    let batch = SinkBatch {
                        tables,
                        read_at: Some(read_at),
                        cover,
                        commit: None,
                    };
                    let sent = self
                        .emit(out, &mut ws, &mut alert_latency, started, &tx, Some(batch))
                        .await?;
                    self.metrics.idle(Stage::Window);
                    if !sent {
                        break;
                    }
                    if !self.commit_if_due(&mut progress, &tx).await? {
                        break;
                    }
                }
            }
        }
        // A run that reached the end of its source closes every window. One stopped by a
        // signal that a later run continues keeps them open in the stored state.
        let stopped = self.interrupted.load(Ordering::SeqCst);
        if !(stopped && self.resumable)
            && let Some(engine) = self.engine.as_mut()
        {
            let closing = Instant::now();
            let out = engine.close_all().await?;
            for p in engine.partitions() {
                progress.dirty.insert(p);
            }
            self.emit(out, &mut ws, &mut alert_latency, closing, &tx, None)
                .await?;
        }
        self.commit_point(&mut progress, Vec::new(), &tx).await?;
        ws.alert_latency = LatencySummary::of(&alert_latency);
        let open = self
            .engine
            .as_ref()
            .map_or(0, WindowEngine::open_violations);
        Ok((ws, open))
    }

    /// Records `out` in the summary, writes its alerts and sends its rows (with `batch`,
    /// if any) to the sink. `false` when the sink stopped (its error is its own).
    async fn emit(
        &mut self,
        out: Outputs,
        ws: &mut WindowSummary,
        alert_latency: &mut Histogram<u64>,
        started: Instant,
        tx: &mpsc::Sender<SinkBatch>,
        batch: Option<SinkBatch>,
    ) -> Result<bool> {
        self.metrics.window_outputs(&out);
        ws.late += out.late;
        ws.windows_closed += out.windows_closed;
        ws.attack_rates += out.attack_rates.len() as u64;
        ws.policy_hits += out.policy_hits.len() as u64;
        for v in &out.violations {
            match v.state {
                ViolationState::Open => ws.violations_opened += 1,
                ViolationState::Resolved => ws.violations_resolved += 1,
            }
        }
        ws.alerts += self.alerts.write(&out)?;
        // Alerts to their topic too (enqueued; the sink flushes before it commits).
        if let Some(t) = &self.topics {
            t.send_alerts(&out);
        }
        if !out.policy_hits.is_empty() || !out.violations.is_empty() {
            alert_latency.saturating_record(started.elapsed().as_micros() as u64);
        }
        let mut batch = batch.unwrap_or(SinkBatch {
            tables: Vec::new(),
            read_at: None,
            cover: Cover::default(),
            commit: None,
        });
        batch.tables.extend(result_batches(&out)?);
        if batch.tables.is_empty() {
            return Ok(true);
        }
        Ok(tx.send(batch).await.is_ok())
    }

    /// Sends a commit point when `sink.roll-interval` has passed since the last one.
    async fn commit_if_due(
        &mut self,
        progress: &mut Progress,
        tx: &mpsc::Sender<SinkBatch>,
    ) -> Result<bool> {
        if self.clock.now_micros() - progress.last_commit < self.commit_every {
            return Ok(true);
        }
        self.commit_point(progress, Vec::new(), tx).await
    }

    /// Sends a commit point with the state of every partition changed since the last.
    async fn commit_point(
        &mut self,
        progress: &mut Progress,
        flushes: Vec<oneshot::Sender<Cover>>,
        tx: &mpsc::Sender<SinkBatch>,
    ) -> Result<bool> {
        let mut states = Vec::new();
        if let Some(engine) = self.engine.as_ref() {
            for p in std::mem::take(&mut progress.dirty) {
                let (Some(key), Some(position)) = (self.keys.key(p), progress.positions.get(&p))
                else {
                    continue;
                };
                let json =
                    serde_json::to_vec(&engine.snapshot_borrowed(p)).map_err(|e| Error::Stage {
                        stage: "window",
                        message: format!("cannot write the window state of partition {p}: {e}"),
                    })?;
                states.push(PendingState {
                    key,
                    position: *position,
                    json,
                });
            }
        }
        progress.dirty.clear();
        progress.last_commit = self.clock.now_micros();
        let request = SinkBatch {
            tables: Vec::new(),
            read_at: None,
            cover: Cover::default(),
            commit: Some(CommitRequest { states, flushes }),
        };
        Ok(tx.send(request).await.is_ok())
    }

    /// Moves the event time of each partition silent for the idle timeout forward and
    /// closes the windows that this closes.
    async fn idle(&mut self, progress: &mut Progress) -> Result<Outputs> {
        let mut out = Outputs::default();
        let (Some(timeout), Some(engine)) = (self.idle_timeout, self.engine.as_mut()) else {
            return Ok(out);
        };
        let now = self.clock.now_micros();
        for p in engine.partitions() {
            let (last, credited) = progress.last_input.entry(p).or_insert((now, now));
            if now - *last < timeout {
                continue;
            }
            let by = now - *credited;
            *credited = now;
            let closed = engine.advance_idle(p, by).await?;
            if closed.windows_closed > 0 {
                progress.dirty.insert(p);
            }
            out.extend(closed);
        }
        Ok(out)
    }

    /// Restores the state of an assigned partition (see [`restore`]).
    async fn assign(&mut self, a: Assignment, progress: &mut Progress) {
        let now = self.clock.now_micros();
        progress.last_input.insert(a.partition, (now, now));
        if let Some(position) = a.archived {
            progress.positions.insert(a.partition, position);
        }
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        if engine.partitions().contains(&a.partition) {
            return; // still ours: the state in memory is the newest
        }
        restore(engine, &self.archive, &a).await;
    }
}

/// Restores the state `a` names into `engine` when it is the state at the last position
/// the archive holds; otherwise the partition starts with empty windows, with a warning
/// that says why.
pub(crate) async fn restore(engine: &mut WindowEngine, archive: &Location, a: &Assignment) {
    let p = a.partition;
    let file = match (&a.state, a.archived) {
        (None, None) => return,
        (Some(f), Some(archived)) if f.position == archived => f,
        (state, archived) => {
            warn!(
                partition = p,
                state_position = state.as_ref().map(|s| s.position),
                archived_position = archived,
                "the stored window state does not match what the archive holds (rules were off, or an older version wrote it): this partition's windows start empty"
            );
            return;
        }
    };
    let read = async {
        let bytes = archive
            .store
            .get(&archive.child(&file.path))
            .await
            .map_err(|e| e.to_string())?
            .bytes()
            .await
            .map_err(|e| e.to_string())?;
        if sha256_hex(&bytes) != file.sha256 {
            return Err("its SHA-256 differs from the one its manifest records".to_string());
        }
        let snapshot: PartitionSnapshot =
            serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        engine.restore(p, snapshot)
    };
    match read.await {
        Ok(warnings) => {
            for w in warnings {
                warn!(partition = p, "{w}");
            }
            info!(
                partition = p,
                position = file.position,
                "window state restored"
            );
        }
        Err(e) => warn!(
            partition = p,
            path = %file.path,
            error = %e,
            "cannot restore the window state: this partition's windows start empty"
        ),
    }
}

/// Decoded chunks taken at once by the window stage.
#[derive(Debug)]
struct Coalesced {
    events: Vec<RecordBatch>,
    dead_letters: Vec<RecordBatch>,
    /// When the first was read.
    read_at: Instant,
    cover: Cover,
}

/// `first` and the data chunks already waiting behind it, up to [`WINDOW_BATCH_ROWS`]
/// rows, taken together (read at the time of the first). A marker met on the way is kept
/// in `pending`, so it is handled after the rows before it. The batches are not joined:
/// the sink writes them one after another, and the engine takes them as they are
/// ([`WindowEngine::process_batches`]).
fn coalesce(
    first: DecodedChunk,
    rx: &mut mpsc::Receiver<Staged>,
    pending: &mut Option<Staged>,
) -> Coalesced {
    let mut rows = first.decoded.events.num_rows();
    let mut taken = Coalesced {
        events: vec![first.decoded.events],
        dead_letters: vec![first.decoded.dead_letters],
        read_at: first.read_at,
        cover: first.cover,
    };
    while rows < WINDOW_BATCH_ROWS && !rx.is_empty() {
        let next = match rx.try_recv() {
            Ok(Staged::Data(next)) => next,
            Ok(control) => {
                *pending = Some(control);
                break;
            }
            Err(_) => break,
        };
        rows += next.decoded.events.num_rows();
        taken.cover.join(next.cover);
        taken.events.push(next.decoded.events);
        taken.dead_letters.push(next.decoded.dead_letters);
    }
    taken
}

/// The rows of `batches` per source partition (the Kafka partition; 0 for a file), each
/// partition's batches in arrival order. A batch of one partition is handed on as it is.
fn by_partition(batches: &[RecordBatch]) -> Result<BTreeMap<i32, Vec<RecordBatch>>> {
    let mut out: BTreeMap<i32, Vec<RecordBatch>> = BTreeMap::new();
    for events in batches.iter().filter(|b| b.num_rows() > 0) {
        let Some(parts) = events
            .column_by_name(src::KAFKA_PARTITION)
            .and_then(|c| c.as_primitive_opt::<Int32Type>())
        else {
            out.entry(0).or_default().push(events.clone());
            continue;
        };
        let partition = |i: usize| if parts.is_valid(i) { parts.value(i) } else { 0 };
        let first = partition(0);
        if (0..parts.len()).all(|i| partition(i) == first) {
            out.entry(first).or_default().push(events.clone());
            continue;
        }
        let mut rows: BTreeMap<i32, Vec<u32>> = BTreeMap::new();
        for i in 0..parts.len() {
            rows.entry(partition(i)).or_default().push(i as u32);
        }
        for (p, idx) in rows {
            let part =
                take_record_batch(events, &UInt32Array::from(idx)).map_err(|e| Error::Stage {
                    stage: "window",
                    message: format!("cannot split a batch by partition: {e}"),
                })?;
            out.entry(p).or_default().push(part);
        }
    }
    Ok(out)
}

/// The window stage's outputs as archive batches.
fn result_batches(out: &Outputs) -> Result<Vec<(&'static str, RecordBatch)>> {
    let mut v = Vec::new();
    if !out.attack_rates.is_empty() {
        v.push((
            schema::ATTACK_RATES,
            output::attack_rates_batch(&out.attack_rates)?,
        ));
    }
    if !out.policy_hits.is_empty() {
        v.push((
            schema::POLICY_HITS,
            output::policy_hits_batch(&out.policy_hits)?,
        ));
    }
    if !out.violations.is_empty() {
        v.push((
            schema::VIOLATIONS,
            output::violations_batch(&out.violations)?,
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};

    use super::*;

    /// An events batch of `rows` rows from line `from`: every column filled, the
    /// nullable ones too.
    fn events(from: i64, rows: i64) -> RecordBatch {
        let schema = schema::events_schema();
        let lines: Vec<i64> = (from..from + rows).collect();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                match f.data_type() {
                    arrow::datatypes::DataType::Utf8 => Arc::new(StringArray::from_iter_values(
                        lines.iter().map(|l| format!("{} {l}", f.name())),
                    )),
                    arrow::datatypes::DataType::Int64 => Arc::new(Int64Array::from(lines.clone())),
                    arrow::datatypes::DataType::Timestamp(..) => Arc::new(
                        TimestampMicrosecondArray::from(lines.clone()).with_timezone("UTC"),
                    ),
                    other => arrow::array::new_null_array(other, lines.len()),
                }
            })
            .collect();
        RecordBatch::try_new(schema, columns).unwrap()
    }

    /// `events(from, rows)` with each row's Kafka partition from `partitions`.
    fn on_partitions(from: i64, partitions: &[i32]) -> RecordBatch {
        let b = events(from, partitions.len() as i64);
        let i = b.schema().index_of(src::KAFKA_PARTITION).unwrap();
        let mut columns = b.columns().to_vec();
        columns[i] = Arc::new(arrow::array::Int32Array::from(partitions.to_vec()));
        RecordBatch::try_new(b.schema(), columns).unwrap()
    }

    #[test]
    fn each_partition_gets_its_rows_in_arrival_order_without_joining_batches() {
        let batches = [
            on_partitions(1, &[0, 1, 0]),
            on_partitions(4, &[1, 1]),
            events(6, 0),
            on_partitions(6, &[2, 0, 2, 1]),
        ];
        // The reference: each row's line, by partition, in the order given.
        let mut expected: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for b in &batches {
            let parts = b.column_by_name(src::KAFKA_PARTITION).unwrap();
            let lines = b.column_by_name(src::SOURCE_LINE).unwrap();
            for r in 0..b.num_rows() {
                expected
                    .entry(parts.as_primitive::<Int32Type>().value(r))
                    .or_default()
                    .push(lines.as_primitive::<arrow::datatypes::Int64Type>().value(r));
            }
        }
        let split = by_partition(&batches).unwrap();
        let lines: BTreeMap<i32, Vec<i64>> = split
            .iter()
            .map(|(p, bs)| {
                let lines = bs.iter().flat_map(|b| {
                    let l = b.column_by_name(src::SOURCE_LINE).unwrap();
                    l.as_primitive::<arrow::datatypes::Int64Type>()
                        .values()
                        .to_vec()
                });
                (*p, lines.collect())
            })
            .collect();
        assert_eq!(lines, expected);
        // A batch of one partition is handed on whole, not copied.
        assert_eq!(split[&1][1], batches[1]);
        // Without a partition column (a file): every row in partition 0.
        let file = events(1, 3);
        let file_only = by_partition(std::slice::from_ref(&file)).unwrap();
        assert_eq!(file_only, BTreeMap::from([(0, vec![file])]));
    }
}
