//! One run of a pipeline, from its source to the archive.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use rampart_core::ledger::Ledger;
use rampart_core::schema::{self, dead_letters};
use rampart_core::{Clock, Config};
use rampart_ingest::{Decoder, FileSource, KafkaBatch, KafkaLocation, KafkaSource, LineChunk};
use rampart_sink::TableWriter;
use rampart_window::WindowEngine;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::alerts::AlertSink;
use crate::commit::{Committer, Cover};
use crate::metrics::{Metrics, Stage};
use crate::summary::{LatencySummary, Summary};
use crate::task::SpawnedTask;
use crate::window_stage::{
    Assignment, CommitRequest, Control, DecodedChunk, SinkBatch, Staged, StateKeys, WindowStage,
    histogram,
};
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
    /// A marker for the window stage (revoke, assign), in order with the data.
    Control(Control),
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
    // A line over the decoder's limit is not buffered whole (one `too_large` dead letter).
    let max_line = usize::try_from(config.decode.max_message_bytes.as_u64()).unwrap_or(usize::MAX);
    let source = FileSource::open(&source_url, chunk_bytes)
        .await?
        .with_max_line_bytes(max_line);
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
    let (metrics, _endpoint) = Metrics::start(&config.metrics, Arc::clone(&options.clock)).await?;
    let archive = config.archive.open(&config.archive.url)?;
    // Decoded chunks give their buffers back to the file source (`recycler`), to be read
    // into again.
    let (source_label, topic, recycler) = match &input {
        Input::File(f) => (f.label().to_string(), None, Some(f.recycler())),
        Input::Kafka(k) => (k.label(), Some(k.topic().to_string()), None),
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
    if let Input::Kafka(k) = &input {
        metrics.watch_consumer_lag(k.topic(), k.consumer_lag());
    }
    let mut engine = if config.rules.enabled {
        let open = crate::violations::open_violations(&archive).await?;
        Some(WindowEngine::new(&config.window, &config.rules, open).await?)
    } else {
        None
    };
    // Window state is stored per partition with each commit: per Kafka partition, or
    // once for a file that a later run can resume. Standard input cannot resume.
    let keys = match (&topic, is_file && !live) {
        (Some(t), _) => StateKeys::Kafka(t.clone()),
        (None, true) => StateKeys::File(source_label.clone()),
        (None, false) => StateKeys::None,
    };
    let mut positions = BTreeMap::new();
    if let (Some(engine), StateKeys::File(source)) = (engine.as_mut(), &keys) {
        // The file's one partition continues from the line the archive holds, with the
        // state stored at that line.
        let assignment = Assignment {
            partition: 0,
            state: ledger
                .state()
                .window_state
                .get(&rampart_core::ledger::file_state_key(source))
                .cloned(),
            archived: resume_after.map(|l| l as i64),
        };
        if let Some(line) = assignment.archived {
            positions.insert(0, line);
        }
        crate::window_stage::restore(engine, &archive, &assignment).await;
    }
    metrics.engine_started(engine.as_ref());
    let alerts = AlertSink::open(&config.alerts.path)?;
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

    // On a long run, a one-line summary every pipeline.progress-interval.
    let _progress = (!config.pipeline.progress_interval.is_zero()).then(|| {
        SpawnedTask::spawn(
            "progress",
            log_progress(metrics.clone(), config.pipeline.progress_interval),
        )
    });
    let capacity = config.pipeline.channel_capacity;
    let (raw_tx, mut raw_rx) = mpsc::channel::<(RawChunk, Instant)>(capacity);
    // Offsets the archive made durable, back to the Kafka source to commit to the group.
    let (commit_tx, mut commit_rx) = mpsc::unbounded_channel::<Vec<(i32, i64)>>();
    let (dec_tx, dec_rx) = mpsc::channel::<Staged>(capacity);
    let (sink_tx, mut sink_rx) = mpsc::channel::<SinkBatch>(capacity);
    // Set when a signal stopped reading, before the input ends: the run did not reach the
    // end of its source, and the window stage keeps its windows open for the next run.
    let interrupted_flag = Arc::new(AtomicBool::new(false));
    let source_interrupted = Arc::clone(&interrupted_flag);
    metrics.watch_queue("raw", &raw_tx);
    metrics.watch_queue("decoded", &dec_tx);
    metrics.watch_queue("sink", &sink_tx);

    let handle_signals = options.handle_signals;
    let until_end = options.until_end;
    let mut source_ledger = ledger.clone();
    let source_stage = async move {
        let mut input_bytes = 0u64;
        let mut first_read: Option<Instant> = None;
        match input {
            Input::File(mut source) => {
                let stop = shutdown_signal(handle_signals);
                tokio::pin!(stop);
                loop {
                    let chunk = tokio::select! {
                        biased;
                        () = &mut stop => {
                            warn!("signal received: no more reading; draining what was read");
                            source_interrupted.store(true, Ordering::SeqCst);
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
                    first_read.get_or_insert_with(Instant::now);
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
                let hook: rampart_ingest::kafka::RevokeHook = Arc::new(move |parts: &[i32]| {
                    let Some(tx) = weak.upgrade() else {
                        return Vec::new();
                    };
                    let (reply, durable) = tokio::sync::oneshot::channel();
                    let flush = Control::Flush {
                        revoked: parts.to_vec(),
                        reply,
                    };
                    tokio::task::block_in_place(|| {
                        if runtime
                            .block_on(tx.send((RawChunk::Control(flush), Instant::now())))
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
                        let state = source_ledger.state();
                        let topic = source.topic().to_string();
                        for ((t, partition), offset) in &state.kafka_offsets {
                            if *t == topic {
                                source.skip_through(*partition, *offset);
                            }
                        }
                        // The window stage restores their state before their records.
                        let assigned = source
                            .assignment()
                            .into_iter()
                            .map(|partition| Assignment {
                                partition,
                                state: state
                                    .window_state
                                    .get(&rampart_core::ledger::kafka_state_key(&topic, partition))
                                    .cloned(),
                                archived: state
                                    .kafka_offsets
                                    .get(&(topic.clone(), partition))
                                    .copied(),
                            })
                            .collect();
                        let marker = RawChunk::Control(Control::Assigned(assigned));
                        if raw_tx.send((marker, Instant::now())).await.is_err() {
                            break;
                        }
                    }
                    if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                        warn!("signal received: no more reading; draining what was read");
                        // Now, before the input ends: the window stage looks at it when
                        // the input ends, and the commits drained below wait for that.
                        source_interrupted.store(true, Ordering::SeqCst);
                        break;
                    }
                    let batch = source.next_batch(Duration::from_millis(100)).await?;
                    if batch.records.is_empty() {
                        if until_end
                            && let rampart_ingest::UntilEnd::Done(others) = source.until_end()
                        {
                            report_until_end(&source, others);
                            break;
                        }
                        continue;
                    }
                    first_read.get_or_insert_with(Instant::now);
                    input_bytes += batch
                        .records
                        .iter()
                        .map(|r| r.payload.len() as u64)
                        .sum::<u64>();
                    // While the queue is full (backpressure, e.g. the store is down), the
                    // offsets of commits already durable still go to the group, and a
                    // group commit the broker refused is tried again after its backoff.
                    let permit = loop {
                        tokio::select! {
                            permit = raw_tx.reserve() => break permit,
                            Some(next) = commit_rx.recv() => source.commit(&next)?,
                            () = tokio::time::sleep(Duration::from_millis(200)) => source.commit_due()?,
                        }
                    };
                    let Ok(permit) = permit else {
                        break;
                    };
                    permit.send((RawChunk::Kafka(batch), Instant::now()));
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
        let interrupted = source_interrupted.load(Ordering::SeqCst);
        Ok::<_, Error>((input_bytes, interrupted, first_read))
    };
    let source_task = SpawnedTask::spawn("source", metrics.watch(Stage::Source, source_stage));

    let decode_config = config.decode.clone();
    let preset = config.input.preset;
    let clock = Arc::clone(&options.clock);
    let decode_metrics = metrics.clone();
    let decode_stage = move || {
        let mut decoder = Decoder::new(&decode_config).with_preset(preset);
        let mut counts = DecodeCounts::default();
        while let Some((chunk, read_at)) = raw_rx.blocking_recv() {
            decode_metrics.busy(Stage::Decode);
            let ((accepted, dead), cover) = match chunk {
                RawChunk::Lines(chunk) => {
                    let decoded = decoder.push_lines(&chunk, clock.now_micros());
                    // Each line is accepted or dead-lettered, once: no second pass over
                    // the chunk to count them.
                    let count = decoded.0 + decoded.1;
                    let cover = if count > 0 {
                        Cover::lines(chunk.first_line, chunk.first_line + count - 1)
                    } else {
                        Cover::default()
                    };
                    if let Some(r) = &recycler {
                        r.give(chunk.data);
                    }
                    (decoded, cover)
                }
                RawChunk::Kafka(batch) => (
                    decoder.push_kafka(&batch, clock.now_micros()),
                    Cover::of_kafka(&batch),
                ),
                RawChunk::Control(marker) => {
                    if dec_tx.blocking_send(Staged::Control(marker)).is_err() {
                        break;
                    }
                    continue;
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
            decode_metrics.decoded(accepted + dead, &codes, &decoded.events);
            for code in codes {
                *counts.by_reason.entry(code).or_default() += 1;
            }
            decode_metrics.idle(Stage::Decode);
            if dec_tx
                .blocking_send(Staged::Data(DecodedChunk {
                    decoded,
                    read_at,
                    cover,
                }))
                .is_err()
            {
                break;
            }
        }
        Ok::<_, Error>(counts)
    };
    let decode_task = SpawnedTask::spawn_blocking(
        "decode",
        metrics.watch_blocking(Stage::Decode, decode_stage),
    );

    let commit_every = i64::try_from(config.sink.roll_interval.as_micros()).unwrap_or(i64::MAX);
    let resumable = !matches!(keys, StateKeys::None);
    let stage = WindowStage {
        metrics: metrics.clone(),
        engine,
        alerts,
        topics,
        clock: Arc::clone(&options.clock),
        archive: archive.clone(),
        keys,
        idle_timeout: live.then_some(idle_timeout),
        commit_every,
        interrupted: interrupted_flag,
        resumable,
        positions,
    };
    let window_task = SpawnedTask::spawn(
        "window",
        metrics.watch(Stage::Window, stage.run(dec_rx, sink_tx)),
    );

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
    .with_topic(topic)
    .with_metrics(metrics.clone());
    let sink_metrics = metrics.clone();
    let sink_stage = async move {
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
        // When each batch since the last commit was read: at the commit, their time to
        // become part of the archive.
        let mut durable = histogram("sink")?;
        let mut uncommitted: Vec<Instant> = Vec::new();
        while let Some(SinkBatch {
            tables,
            read_at,
            cover,
            commit,
        }) = sink_rx.recv().await
        {
            sink_metrics.busy(Stage::Sink);
            for (name, batch) in tables {
                if batch.num_rows() == 0 {
                    continue;
                }
                let writer = writers.get_mut(name).ok_or_else(|| Error::Stage {
                    stage: "sink",
                    message: format!("has no writer for table {name}"),
                })?;
                writer.write(&batch).await?;
                sink_metrics.rows_written(name, batch.num_rows());
            }
            committer.received(cover);
            if let Some(read_at) = read_at {
                latency.saturating_record(read_at.elapsed().as_micros() as u64);
                sink_metrics.batch_latency(read_at.elapsed());
                uncommitted.push(read_at);
            }
            // A commit point: every open file closes, and the files and window states
            // become one commit.
            if let Some(CommitRequest { states, flushes }) = commit {
                // Topics first: no offset is committed past an undelivered alert.
                if let Some(t) = &sink_topics {
                    t.flush().await?;
                }
                let covered = committer.commit(&mut writers, states).await?;
                for read_at in uncommitted.drain(..) {
                    durable.saturating_record(read_at.elapsed().as_micros() as u64);
                }
                if flushes.is_empty() {
                    if !covered.kafka.is_empty() {
                        let _ = commit_tx.send(covered.next_offsets());
                    }
                } else {
                    // Partitions are being revoked: the hook commits these offsets.
                    for reply in flushes {
                        let _ = reply.send(covered.clone());
                    }
                }
            }
            sink_metrics.idle(Stage::Sink);
        }
        // The window stage ends with a commit point; this only covers rows it sent
        // before failing.
        if let Some(t) = &sink_topics {
            t.flush().await?;
        }
        let covered = committer.commit(&mut writers, Vec::new()).await?;
        if !covered.kafka.is_empty() {
            let _ = commit_tx.send(covered.next_offsets());
        }
        drop(commit_tx);
        Ok::<_, Error>((
            committer,
            LatencySummary::of(&latency),
            LatencySummary::of(&durable),
        ))
    };
    let sink_task = SpawnedTask::spawn("sink", metrics.watch(Stage::Sink, sink_stage));

    let source_result = source_task.join().await?;
    let decode_result = decode_task.join().await?;
    let window_result = window_task.join().await?;
    let sink_result = sink_task.join().await?;
    let (input_bytes, interrupted, first_read) = source_result?;
    let counts = decode_result?;
    let (mut windows, open_violations) = window_result?;
    windows.open_violations = open_violations as u64;
    let (committer, batch_latency, durable_latency) = sink_result?;
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
        durable_latency,
        reading: first_read.map_or(Duration::ZERO, |t| t.elapsed()),
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

/// Logs what the run has done every `every`, with the rate since the last line.
async fn log_progress(metrics: Metrics, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await; // the first tick is immediate
    let mut last = (Instant::now(), metrics.progress().messages);
    loop {
        tick.tick().await;
        let p = metrics.progress();
        let rate = (p.messages - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-9);
        last = (Instant::now(), p.messages);
        info!(
            messages = p.messages,
            events_per_sec = rate.round() as u64,
            dead_letters = p.dead_letters,
            late = p.late,
            commits = p.commits,
            consumer_lag = p.consumer_lag,
            "progress"
        );
    }
}

/// When `--until-end` ends a Kafka run: names the partitions of the topic this member
/// did not hold (`others`: other members held them past the session timeout). This run
/// archived none of their records past what the archive held; the members holding
/// them, or the next run, read them.
fn report_until_end(source: &KafkaSource, others: rampart_ingest::Result<Vec<i32>>) {
    match others {
        Ok(rest) if !rest.is_empty() => warn!(
            topic = %source.topic(),
            assigned = ?source.assignment(),
            not_assigned = ?rest,
            "--until-end: every partition assigned to this member is at its end; the topic's other partitions stayed with other members past the group's session timeout, and this run did not read them"
        ),
        Ok(_) => {
            info!(topic = %source.topic(), "--until-end: every partition of the topic is at its end")
        }
        Err(e) => {
            warn!(topic = %source.topic(), error = %e, "--until-end: could not learn which partitions the topic has; only those assigned to this member were read to their end")
        }
    }
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
        let sql = rampart_core::package_dir(env!("CARGO_MANIFEST_DIR")).join("../../sql");
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
