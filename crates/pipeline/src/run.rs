//! One run of a pipeline, from its source to the archive.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::record_batch::RecordBatch;
use hdrhistogram::Histogram;
use rampart_core::ledger::Ledger;
use rampart_core::schema::{self, dead_letters};
use rampart_core::{Clock, Config, store};
use rampart_ingest::{
    Decoded, Decoder, FileSource, KafkaBatch, KafkaLocation, KafkaSource, LineChunk,
};
use rampart_sink::TableWriter;
use rampart_window::{Outputs, WindowEngine, output};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tracing::{info, warn};

use crate::alerts::AlertSink;
use crate::commit::{Committer, Cover};
use crate::summary::{LatencySummary, Summary, WindowSummary};
use crate::task::SpawnedTask;
use crate::{Error, Result};

/// How a run behaves beyond its configuration.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Stop at the end of the source. A file or stdin always ends at its end; the flag
    /// matters for unbounded sources.
    pub until_end: bool,
    /// The clock for ingest times and file rolling.
    pub clock: Arc<dyn Clock>,
    /// Stop reading on Ctrl-C or SIGTERM and drain what was read.
    pub handle_signals: bool,
}

/// An opened source.
pub(crate) enum Input {
    /// A JSON-lines file, or standard input.
    File(FileSource),
    /// A Kafka consumer-group member.
    Kafka(KafkaSource),
}

/// Raw messages as read.
enum RawChunk {
    Lines(LineChunk),
    Kafka(KafkaBatch),
    /// Partitions are being revoked: commit everything before this marker and say what
    /// became durable. It travels with the data, so nothing read before it is missed.
    Flush(Flush),
}

/// The reply to a [`RawChunk::Flush`]: the positions the commit made durable.
type Flush = tokio::sync::oneshot::Sender<Cover>;

struct DecodedChunk {
    decoded: Decoded,
    read_at: Instant,
    cover: Cover,
    flushes: Vec<Flush>,
}

/// Rows for the archive: per table, with the time their chunk was read and the source
/// positions they come from.
struct SinkBatch {
    tables: Vec<(&'static str, RecordBatch)>,
    read_at: Option<Instant>,
    cover: Cover,
    flushes: Vec<Flush>,
}

/// Histogram from 1 µs to 1 h at 3 significant digits; longer samples are clamped.
fn histogram(stage: &'static str) -> Result<Histogram<u64>> {
    Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| Error::Stage {
        stage,
        message: format!("cannot build histogram: {e}"),
    })
}

/// Most rows the window stage takes at once when chunks are waiting.
const WINDOW_BATCH_ROWS: usize = 64 * 1024;

/// `first` and the chunks already waiting behind it, up to [`WINDOW_BATCH_ROWS`] rows,
/// as one chunk (read at the time of the first).
fn coalesce(first: DecodedChunk, rx: &mut mpsc::Receiver<DecodedChunk>) -> Result<DecodedChunk> {
    let mut rows = first.decoded.events.num_rows();
    if rows >= WINDOW_BATCH_ROWS || rx.is_empty() {
        return Ok(first);
    }
    let read_at = first.read_at;
    let mut cover = first.cover;
    let mut flushes = first.flushes;
    let (mut events, mut dead) = (vec![first.decoded.events], vec![first.decoded.dead_letters]);
    while rows < WINDOW_BATCH_ROWS {
        let Ok(next) = rx.try_recv() else { break };
        rows += next.decoded.events.num_rows();
        cover.join(next.cover);
        flushes.extend(next.flushes);
        events.push(next.decoded.events);
        dead.push(next.decoded.dead_letters);
    }
    let concat = |batches: Vec<RecordBatch>| -> Result<RecordBatch> {
        let schema = batches[0].schema();
        arrow::compute::concat_batches(&schema, &batches).map_err(|e| Error::Stage {
            stage: "window",
            message: format!("cannot join batches: {e}"),
        })
    };
    Ok(DecodedChunk {
        decoded: Decoded {
            events: concat(events)?,
            dead_letters: concat(dead)?,
        },
        read_at,
        cover,
        flushes,
    })
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

#[derive(Default)]
struct DecodeCounts {
    accepted: u64,
    dead: u64,
    by_reason: BTreeMap<String, u64>,
}

/// Runs the pipeline described by `config` until its source ends (or a signal stops it).
pub async fn run(config: &Config, options: RunOptions) -> Result<Summary> {
    config.validate()?;
    let source_url = config
        .source
        .url
        .clone()
        .ok_or_else(|| rampart_core::Error::Config {
            key: "source.url".into(),
            message: "no source given: pass --source FILE (or - for stdin), or set url in [source]"
                .into(),
        })?;
    if source_url.starts_with("kafka://") {
        let location = KafkaLocation::parse(&source_url, &config.kafka.group)?;
        let source =
            KafkaSource::open(location, &config.kafka.rdkafka, config.kafka.batch_records)?;
        return run_source(config, options, Input::Kafka(source), true).await;
    }
    let chunk_bytes = usize::try_from(config.source.read_chunk.as_u64()).unwrap_or(1 << 20);
    let source = FileSource::open(&source_url, chunk_bytes).await?;
    // Standard input is a live stream: a silent one advances its event time (idle timeout).
    let live = source.label().as_ref() == "-";
    run_source(config, options, Input::File(source), live).await
}

/// Runs the pipeline over an opened source; `live` sources close the windows of a silent
/// partition after `window.idle-timeout`.
pub(crate) async fn run_source(
    config: &Config,
    options: RunOptions,
    mut input: Input,
    live: bool,
) -> Result<Summary> {
    let started = Instant::now();
    let archive = store::open(&config.archive.url, config.archive.options.clone())?;
    let (source_label, topic) = match &input {
        Input::File(f) => (f.label().to_string(), None),
        Input::Kafka(k) => (k.label(), Some(k.topic().to_string())),
    };
    let is_file = matches!(input, Input::File(_));
    let ledger = Ledger::load(&archive).await?;
    // Files that no manifest lists were left by a crash (or a writer long gone).
    let orphans = rampart_sink::remove_orphans(
        &archive,
        ledger.state(),
        config.archive.orphan_grace,
        options.clock.now_micros(),
    )
    .await
    .unwrap_or_else(|e| {
        warn!(error = %e, "clean-up of files no manifest lists failed; they stay out of the archive");
        Vec::new()
    });
    // Lines an earlier run already committed are not read again (stdin cannot resume),
    // unless the file at that path is another one now (its line 1 differs).
    let fingerprint = if live || !is_file {
        None
    } else {
        first_line_sha256(&source_label)
    };
    let resume_after = if live || !is_file {
        None
    } else {
        ledger
            .state()
            .resume_line(&source_label, fingerprint.as_deref())
    };
    if is_file
        && !live
        && resume_after.is_none()
        && ledger.state().file_lines.contains_key(&source_label)
    {
        warn!(source = %source_label, "the file at this path is not the one an earlier run committed (its first line differs): reading it from line 1");
    }
    // A Kafka record at or below an offset the archive holds was archived already: the
    // group's committed offset may lag the archive by one commit.
    if let (Input::Kafka(k), Some(topic)) = (&mut input, &topic) {
        for ((t, partition), offset) in &ledger.state().kafka_offsets {
            if t == topic {
                k.skip_through(*partition, *offset);
            }
        }
    }
    let mut engine = if config.rules.enabled {
        let open = crate::violations::open_violations(&archive).await?;
        Some(WindowEngine::new(&config.window, &config.rules, open).await?)
    } else {
        None
    };
    let mut alerts = AlertSink::open(&config.alerts.path)?;
    // Alerts and dead letters to Kafka topics ([kafka] alerts-topic, dead-letter-topic).
    let topics = crate::topics::TopicSink::open(config)?;
    let sink_topics = topics.clone();
    // Every compact.interval, the small files of closed hours are rewritten.
    let compactor = crate::compact::start(&archive, config, Arc::clone(&options.clock));
    let idle_timeout = i64::try_from(config.window.idle_timeout.as_micros()).unwrap_or(i64::MAX);
    info!(
        source = %source_label,
        archive = %archive.url,
        rules = engine.as_ref().map_or(0, |e| e.rules().count()),
        resume_after_line = resume_after,
        orphans_removed = orphans.len(),
        open_violations = engine.as_ref().map_or(0, WindowEngine::open_violations),
        "pipeline starting"
    );

    let capacity = config.pipeline.channel_capacity;
    let (raw_tx, mut raw_rx) = mpsc::channel::<(RawChunk, Instant)>(capacity);
    // Offsets the archive made durable, back to the Kafka source to commit to the group.
    let (commit_tx, mut commit_rx) = mpsc::unbounded_channel::<Vec<(i32, i64)>>();
    let (dec_tx, mut dec_rx) = mpsc::channel::<DecodedChunk>(capacity);
    let (sink_tx, mut sink_rx) = mpsc::channel::<SinkBatch>(capacity);

    let handle_signals = options.handle_signals;
    let until_end = options.until_end;
    let mut source_ledger = ledger.clone();
    let source_task = SpawnedTask::spawn("source", async move {
        let mut input_bytes = 0u64;
        let mut interrupted = false;
        match input {
            Input::File(mut source) => {
                let stop = shutdown_signal(handle_signals);
                tokio::pin!(stop);
                loop {
                    let chunk = tokio::select! {
                        biased;
                        () = &mut stop => {
                            warn!("signal received: no more reading; draining what was read");
                            interrupted = true;
                            break;
                        }
                        chunk = source.next_chunk() => chunk?,
                    };
                    let Some(chunk) = chunk else { break };
                    let chunk = match resume_after {
                        Some(line) => match chunk.skip_through(line) {
                            Some(rest) => rest,
                            None => continue,
                        },
                        None => chunk,
                    };
                    input_bytes += chunk.data.len() as u64;
                    if raw_tx
                        .send((RawChunk::Lines(chunk), Instant::now()))
                        .await
                        .is_err()
                    {
                        break; // downstream stopped; its error is reported by its own stage
                    }
                }
            }
            Input::Kafka(mut source) => {
                // On revoke, librdkafka calls back inside a poll of this task: the hook
                // sends a flush marker down the pipeline and waits for the commit. It
                // holds only a weak sender, so the pipeline can still end.
                let weak = raw_tx.downgrade();
                let runtime = tokio::runtime::Handle::current();
                let hook: rampart_ingest::kafka::RevokeHook = Arc::new(move |_parts: &[i32]| {
                    let Some(tx) = weak.upgrade() else {
                        return Vec::new();
                    };
                    let (reply, durable) = tokio::sync::oneshot::channel();
                    tokio::task::block_in_place(|| {
                        if runtime
                            .block_on(tx.send((RawChunk::Flush(reply), Instant::now())))
                            .is_err()
                        {
                            return Vec::new();
                        }
                        drop(tx);
                        durable
                            .blocking_recv()
                            .map(|c| c.next_offsets())
                            .unwrap_or_default()
                    })
                });
                source.set_revoke_hook(Some(hook));
                // `next_batch` is not cancel-safe (it holds the records taken so far), so
                // it is never raced: the signal sets a flag, looked at between batches.
                let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let flag = Arc::clone(&stopped);
                let _signal = SpawnedTask::spawn("signal", async move {
                    shutdown_signal(handle_signals).await;
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                });
                loop {
                    while let Ok(next) = commit_rx.try_recv() {
                        source.commit(&next)?;
                    }
                    if source.take_assigned() {
                        // Partitions (re)assigned: another member may have archived some of
                        // their records since this run started.
                        source_ledger.refresh().await?;
                        for ((t, partition), offset) in &source_ledger.state().kafka_offsets {
                            if t.as_str() == source.topic().as_ref() {
                                source.skip_through(*partition, *offset);
                            }
                        }
                    }
                    if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                        warn!("signal received: no more reading; draining what was read");
                        interrupted = true;
                        break;
                    }
                    let batch = source.next_batch(Duration::from_millis(100)).await?;
                    if batch.records.is_empty() {
                        if until_end && source.all_at_end() {
                            break;
                        }
                        continue;
                    }
                    input_bytes += batch
                        .records
                        .iter()
                        .map(|r| r.payload.len() as u64)
                        .sum::<u64>();
                    if raw_tx
                        .send((RawChunk::Kafka(batch), Instant::now()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                // No more reading; the offsets of the last commits still go to the group.
                source.set_revoke_hook(None);
                drop(raw_tx);
                while let Some(next) = commit_rx.recv().await {
                    source.commit(&next)?;
                }
                // Group commits that failed (a broker outage) get a last, bounded try.
                source.finish_commits(Duration::from_secs(30)).await?;
                if source.skipped() > 0 {
                    info!(
                        records = source.skipped(),
                        "records already in the archive were skipped"
                    );
                }
            }
        }
        Ok::<_, Error>((input_bytes, interrupted))
    });

    let decode_config = config.decode.clone();
    let clock = Arc::clone(&options.clock);
    let decode_task = SpawnedTask::spawn_blocking("decode", move || {
        let mut decoder = Decoder::new(&decode_config);
        let mut counts = DecodeCounts::default();
        while let Some((chunk, read_at)) = raw_rx.blocking_recv() {
            let mut flushes = Vec::new();
            let ((accepted, dead), cover) = match chunk {
                RawChunk::Lines(chunk) => {
                    let count = chunk.line_count();
                    let cover = if count > 0 {
                        Cover::lines(chunk.first_line, chunk.first_line + count - 1)
                    } else {
                        Cover::default()
                    };
                    (decoder.push_lines(&chunk, clock.now_micros()), cover)
                }
                RawChunk::Kafka(batch) => (
                    decoder.push_kafka(&batch, clock.now_micros()),
                    Cover::of_kafka(&batch),
                ),
                RawChunk::Flush(reply) => {
                    flushes.push(reply);
                    ((0, 0), Cover::default())
                }
            };
            counts.accepted += accepted;
            counts.dead += dead;
            let decoded = decoder.flush()?;
            let codes = decoded
                .dead_letters
                .column_by_name(dead_letters::REASON_CODE)
                .map(|c| {
                    c.as_string::<i32>()
                        .iter()
                        .flatten()
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            for code in codes {
                *counts.by_reason.entry(code).or_default() += 1;
            }
            if dec_tx
                .blocking_send(DecodedChunk {
                    decoded,
                    read_at,
                    cover,
                    flushes,
                })
                .is_err()
            {
                break;
            }
        }
        Ok::<_, Error>(counts)
    });

    let window_clock = Arc::clone(&options.clock);
    let window_task = SpawnedTask::spawn("window", async move {
        let mut ws = WindowSummary::default();
        let mut alert_latency = histogram("window")?;
        let record = |out: &Outputs, ws: &mut WindowSummary| {
            ws.late += out.late;
            ws.windows_closed += out.windows_closed;
            ws.attack_rates += out.attack_rates.len() as u64;
            ws.policy_hits += out.policy_hits.len() as u64;
            for v in &out.violations {
                match v.state {
                    rampart_window::ViolationState::Open => ws.violations_opened += 1,
                    rampart_window::ViolationState::Resolved => ws.violations_resolved += 1,
                }
            }
        };
        let clock = Arc::clone(&window_clock);
        let mut last_input = clock.now_micros();
        let mut credited = last_input;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let (out, tables, read_at, cover, flushes, started) = tokio::select! {
                msg = dec_rx.recv() => {
                    let Some(first) = msg else { break };
                    // Under load several chunks wait: take them together, so the rules
                    // run once over more rows (results do not depend on batching).
                    let DecodedChunk { decoded, read_at, cover, flushes } = coalesce(first, &mut dec_rx)?;
                    let started = Instant::now();
                    last_input = clock.now_micros();
                    credited = last_input;
                    let out = match engine.as_mut() {
                        Some(e) => e.process(0, &decoded.events).await?,
                        None => Outputs::default(),
                    };
                    // Dead letters to their topic (enqueued; the sink flushes before it commits).
                    if let Some(t) = &topics { t.send_dead_letters(&decoded.dead_letters)?; }
                    let tables = vec![(schema::EVENTS, decoded.events), (schema::DEAD_LETTERS, decoded.dead_letters)];
                    (out, tables, Some(read_at), cover, flushes, started)
                }
                _ = tick.tick(), if live && engine.is_some() => {
                    // Idle only when nothing waits upstream: a slow sink is not a silent source.
                    let now = clock.now_micros();
                    if !dec_rx.is_empty() || now - last_input < idle_timeout {
                        continue;
                    }
                    let started = Instant::now();
                    let by = now - credited;
                    credited = now;
                    let out = match engine.as_mut() {
                        Some(e) => e.advance_idle(0, by).await?,
                        None => Outputs::default(),
                    };
                    (out, Vec::new(), None, Cover::default(), Vec::new(), started)
                }
            };
            record(&out, &mut ws);
            ws.alerts += alerts.write(&out)?;
            // Alerts to their topic too (enqueued; the sink flushes before it commits).
            if let Some(t) = &topics {
                t.send_alerts(&out);
            }
            if !out.policy_hits.is_empty() || !out.violations.is_empty() {
                alert_latency.saturating_record(started.elapsed().as_micros() as u64);
            }
            let mut tables = tables;
            tables.extend(result_batches(&out)?);
            if !tables.is_empty()
                && sink_tx
                    .send(SinkBatch {
                        tables,
                        read_at,
                        cover,
                        flushes,
                    })
                    .await
                    .is_err()
            {
                break; // the sink stopped; its error is reported by its own stage
            }
        }
        let closing = Instant::now();
        let out = match engine.as_mut() {
            Some(e) => e.close_all().await?,
            None => Outputs::default(),
        };
        record(&out, &mut ws);
        ws.alerts += alerts.write(&out)?;
        // Alerts to their topic too (enqueued; the sink flushes before it commits).
        if let Some(t) = &topics {
            t.send_alerts(&out);
        }
        if !out.policy_hits.is_empty() || !out.violations.is_empty() {
            alert_latency.saturating_record(closing.elapsed().as_micros() as u64);
        }
        let tables = result_batches(&out)?;
        if !tables.is_empty() {
            let _ = sink_tx
                .send(SinkBatch {
                    tables,
                    read_at: None,
                    cover: Cover::default(),
                    flushes: Vec::new(),
                })
                .await;
        }
        let open = engine.as_ref().map_or(0, WindowEngine::open_violations);
        Ok::<_, Error>((ws, LatencySummary::of(&alert_latency), open))
    });

    let sink_config = config.sink.clone();
    let clock = Arc::clone(&options.clock);
    let sink_archive = archive.clone();
    let mut committer = Committer::new(
        ledger,
        config.retention.clone(),
        source_label.clone(),
        fingerprint,
        Arc::clone(&clock),
    )
    .with_topic(topic);
    let commit_every = i64::try_from(config.sink.roll_interval.as_micros()).unwrap_or(i64::MAX);
    let sink_task = SpawnedTask::spawn("sink", async move {
        let mut writers = BTreeMap::new();
        for table in schema::tables() {
            let name = table.name();
            writers.insert(
                name,
                TableWriter::new(
                    table,
                    sink_archive.clone(),
                    &sink_config,
                    Arc::clone(&clock),
                )?,
            );
        }
        let mut latency = histogram("sink")?;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_commit = clock.now_micros();
        loop {
            tokio::select! {
                msg = sink_rx.recv() => {
                    let Some(SinkBatch { tables, read_at, cover, flushes }) = msg else { break };
                    for (name, batch) in tables {
                        if batch.num_rows() == 0 {
                            continue;
                        }
                        let writer = writers.get_mut(name).ok_or_else(|| Error::Stage {
                            stage: "sink",
                            message: format!("has no writer for table {name}"),
                        })?;
                        writer.write(&batch).await?;
                    }
                    committer.received(cover);
                    if !flushes.is_empty() {
                        // Partitions are being revoked: make everything so far durable now.
                        // Topics first: no offset is committed past an undelivered alert.
                        if let Some(t) = &sink_topics { t.flush().await?; }
                        let durable = committer.commit(&mut writers).await?;
                        last_commit = clock.now_micros();
                        for reply in flushes {
                            let _ = reply.send(durable.clone());
                        }
                    }
                    if let Some(read_at) = read_at {
                        latency.saturating_record(read_at.elapsed().as_micros() as u64);
                    }
                }
                _ = tick.tick() => {
                    // Every roll interval, all open files close and become one commit.
                    let now = clock.now_micros();
                    if now.saturating_sub(last_commit) >= commit_every {
                        // Topics first: no offset is committed past an undelivered alert.
                        if let Some(t) = &sink_topics { t.flush().await?; }
                        let durable = committer.commit(&mut writers).await?;
                        if !durable.kafka.is_empty() {
                            let _ = commit_tx.send(durable.next_offsets());
                        }
                        last_commit = now;
                    }
                }
            }
        }
        // Topics first: no offset is committed past an undelivered alert.
        if let Some(t) = &sink_topics {
            t.flush().await?;
        }
        let durable = committer.commit(&mut writers).await?;
        if !durable.kafka.is_empty() {
            let _ = commit_tx.send(durable.next_offsets());
        }
        drop(commit_tx);
        Ok::<_, Error>((committer, LatencySummary::of(&latency)))
    });

    let source_result = source_task.join().await?;
    let decode_result = decode_task.join().await?;
    let window_result = window_task.join().await?;
    let sink_result = sink_task.join().await?;
    let (input_bytes, interrupted) = source_result?;
    let counts = decode_result?;
    let (mut windows, alert_latency, open_violations) = window_result?;
    windows.open_violations = open_violations as u64;
    windows.alert_latency = alert_latency;
    let (committer, batch_latency) = sink_result?;
    let compaction = match compactor {
        Some(c) => c.stop().await?,
        None => crate::CompactReport::default(),
    };

    let summary = Summary {
        source: source_label,
        archive: archive.url.to_string(),
        messages: counts.accepted + counts.dead,
        accepted: counts.accepted,
        dead_lettered: counts.dead,
        dead_by_reason: counts.by_reason,
        input_bytes,
        tables: committer.tables,
        commits: committer.commits,
        resumed_after_line: resume_after,
        orphans_removed: orphans.len() as u64,
        compaction: crate::summary::CompactionSummary::of(&compaction),
        elapsed: started.elapsed(),
        batch_latency,
        windows,
        interrupted,
    };
    info!(
        accepted = summary.accepted,
        dead_lettered = summary.dead_lettered,
        files = summary.files(),
        "pipeline finished"
    );
    Ok(summary)
}

/// SHA-256 of line 1 of the file at `path` (without its line end), read through at most
/// the first MiB; `None` when it cannot be read or is empty.
fn first_line_sha256(path: &str) -> Option<String> {
    use std::io::{BufRead, Read};
    let file = std::fs::File::open(path).ok()?;
    let mut line = Vec::new();
    std::io::BufReader::new(file.take(1 << 20))
        .read_until(b'\n', &mut line)
        .ok()?;
    let line = line.strip_suffix(b"\n").unwrap_or(&line);
    (!line.is_empty()).then(|| rampart_core::ledger::sha256_hex(line))
}

/// Resolves on Ctrl-C or SIGTERM when `enabled`, never otherwise.
async fn shutdown_signal(enabled: bool) {
    if !enabled {
        return std::future::pending().await;
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = async {
            match signal(SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::ManualClock;
    use tokio::io::AsyncWriteExt;

    const T0: i64 = 1_793_491_200_000_000; // 2026-11-01T00:00:00Z

    fn event(ts: &str, resource: &str) -> String {
        format!(
            r#"{{"ts":"{ts}","resource_id":"{resource}","resource_type":"network","category":"network_access","policy_allowed":false}}"#
        ) + "\n"
    }

    /// Polls `done` while the stages run (the idle clock is the manual one; this only
    /// waits for the pipeline's one-second ticks to look at it).
    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..400 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_live_source_closes_its_windows_after_the_idle_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let sql = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sql");
        let alerts = dir.path().join("alerts.jsonl");
        let mut config = Config::default();
        config.source.url = Some("-".into());
        config.archive.url = dir.path().join("archive").to_string_lossy().into_owned();
        config.rules.dir = sql.join("rules").to_string_lossy().into_owned();
        config.rules.window_sql = sql
            .join("windows/attack_counts.sql")
            .to_string_lossy()
            .into_owned();
        config.alerts.path = alerts.to_string_lossy().into_owned();
        let clock = Arc::new(ManualClock::new(T0));
        let options = RunOptions {
            until_end: false,
            clock: Arc::clone(&clock) as Arc<dyn Clock>,
            handle_signals: false,
        };
        let (mut input, reader) = tokio::io::duplex(1 << 16);
        let source = FileSource::from_reader("-", Box::new(reader), 4096);
        let run = SpawnedTask::spawn("test run", async move {
            run_source(&config, options, Input::File(source), true).await
        });
        let alert_lines = || std::fs::read_to_string(&alerts).map_or(0, |s| s.lines().count());

        // A hit in the window [00:00, 00:05); its partition's event time is 00:04:50.
        input
            .write_all(event("2026-11-01T00:04:50Z", "nsg-1").as_bytes())
            .await
            .unwrap();
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            alert_lines(),
            0,
            "the window is open: nothing to report yet"
        );

        // 29 s of silence: under the idle timeout, nothing moves.
        clock.advance(29_000_000);
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(alert_lines(), 0, "under the idle timeout");

        // 2 min of silence in all: event time 00:06:50, watermark 00:05:50 >= 00:05.
        clock.advance(91_000_000);
        until("the idle window to close", || alert_lines() == 1).await;
        let alert = std::fs::read_to_string(&alerts).unwrap();
        assert!(
            alert.contains("network_vulnerability") && alert.contains("nsg-1"),
            "{alert}"
        );

        // An event for the window closed by idleness is late.
        input
            .write_all(event("2026-11-01T00:04:55Z", "nsg-2").as_bytes())
            .await
            .unwrap();
        drop(input);
        let summary = run.join().await.unwrap().unwrap();
        assert_eq!(summary.windows.late, 1);
        assert_eq!(summary.windows.policy_hits, 1, "the late event is no hit");
    }
}
