//! The commit step: closes the open files and makes them part of the archive with one
//! manifest that also records the source lines they cover.
//!
//! Everything the sink received before a commit is in the files that commit lists, so
//! the source position it records is safe to resume from: a restarted run skips the
//! lines up to it, and whatever a crash left uncommitted is read again.
//!
//! A commit also carries the window state of each partition it covers, as of the last
//! position it covers (written as a file first, then listed in the manifest), so a
//! restarted run continues the windows from exactly where the archive stops.

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::ObjectStoreExt;
use rampart_core::Clock;
use rampart_core::config::RetentionConfig;
use rampart_core::ledger::{
    Action, Change, FileEntry, Ledger, SourceRange, StateFile, sha256_hex, state_path,
};
use rampart_sink::TableWriter;
use tracing::debug;

use crate::metrics::Metrics;
use crate::summary::TableSummary;
use crate::{Error, Result};

/// The source positions a set of rows comes from: a range of file lines, or per Kafka
/// partition a range of offsets (both ends included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cover {
    pub(crate) lines: Option<(u64, u64)>,
    pub(crate) kafka: BTreeMap<i32, (i64, i64)>,
}

impl Cover {
    /// Lines `first..=last`.
    pub(crate) fn lines(first: u64, last: u64) -> Self {
        Self {
            lines: Some((first, last)),
            kafka: BTreeMap::new(),
        }
    }

    /// The offsets of a Kafka batch.
    pub(crate) fn of_kafka(batch: &rampart_ingest::KafkaBatch) -> Self {
        let mut kafka: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
        for r in &batch.records {
            let e = kafka.entry(r.partition).or_insert((r.offset, r.offset));
            e.0 = e.0.min(r.offset);
            e.1 = e.1.max(r.offset);
        }
        Self { lines: None, kafka }
    }

    /// Adds `other` (positions of the same source).
    pub(crate) fn join(&mut self, other: Cover) {
        self.lines = match (self.lines, other.lines) {
            (Some((a0, a1)), Some((b0, b1))) => Some((a0.min(b0), a1.max(b1))),
            (x, None) | (None, x) => x,
        };
        for (p, (lo, hi)) in other.kafka {
            let e = self.kafka.entry(p).or_insert((lo, hi));
            e.0 = e.0.min(lo);
            e.1 = e.1.max(hi);
        }
    }

    /// Per partition, the next offset to read once this cover is durable.
    pub(crate) fn next_offsets(&self) -> Vec<(i32, i64)> {
        self.kafka.iter().map(|(p, (_, hi))| (*p, hi + 1)).collect()
    }
}

/// A partition's window state to store with the next commit.
#[derive(Debug, Clone)]
pub(crate) struct PendingState {
    /// See [`rampart_core::ledger::kafka_state_key`].
    pub(crate) key: String,
    /// The last source position folded into it.
    pub(crate) position: i64,
    /// The state as JSON.
    pub(crate) json: Vec<u8>,
}

/// Commits the writers' files to the archive's chain.
pub(crate) struct Committer {
    ledger: Ledger,
    retention: RetentionConfig,
    source: String,
    /// SHA-256 of the source's line 1 (file sources).
    fingerprint: Option<String>,
    clock: Arc<dyn Clock>,
    /// Positions received since the last commit.
    cover: Cover,
    /// The Kafka topic, for a Kafka source.
    topic: Option<String>,
    /// Where commits, their latency and the rows they commit are counted.
    metrics: Option<Metrics>,
    /// Manifests committed by this run.
    pub(crate) commits: u64,
    /// Committed files, per table.
    pub(crate) tables: BTreeMap<&'static str, TableSummary>,
}

impl Committer {
    pub(crate) fn new(
        ledger: Ledger,
        retention: RetentionConfig,
        source: String,
        fingerprint: Option<String>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            ledger,
            retention,
            source,
            fingerprint,
            clock,
            cover: Cover::default(),
            topic: None,
            metrics: None,
            commits: 0,
            tables: BTreeMap::new(),
        }
    }

    /// A committer for a Kafka source reading `topic`.
    pub(crate) fn with_topic(mut self, topic: Option<String>) -> Self {
        self.topic = topic;
        self
    }

    /// A committer that counts its commits in `metrics`.
    pub(crate) fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Notes that the rows of `cover` were handed to the writers.
    pub(crate) fn received(&mut self, cover: Cover) {
        self.cover.join(cover);
    }

    /// Closes every open file and commits all completed ones, with the window `states`,
    /// in one manifest. Returns the positions the commit made durable.
    pub(crate) async fn commit(
        &mut self,
        writers: &mut BTreeMap<&'static str, TableWriter>,
        states: Vec<PendingState>,
    ) -> Result<Cover> {
        let started = std::time::Instant::now();
        // Every table's files at once: each file is finished on a thread of its own.
        futures::future::try_join_all(writers.values_mut().map(TableWriter::close_all)).await?;
        let mut written = Vec::new();
        for w in writers.values_mut() {
            written.extend(w.take_written());
        }
        if written.is_empty() && states.is_empty() {
            return Ok(Cover::default());
        }
        let mut change = Change::new(Action::Append);
        let location = self.ledger.location().clone();
        let mut superseded = Vec::new();
        for s in states {
            let path = state_path(&s.key, s.position);
            let file = StateFile {
                key: s.key,
                position: s.position,
                bytes: s.json.len() as u64,
                sha256: sha256_hex(&s.json),
                path,
            };
            location
                .store
                .put(&location.child(&file.path), s.json.into())
                .await
                .map_err(|e| Error::Stage {
                    stage: "sink",
                    message: format!("cannot store window state {}: {e}", file.path),
                })?;
            if let Some(old) = self.ledger.state().window_state.get(&file.key) {
                superseded.push(old.path.clone());
            }
            change.state.push(file);
        }
        for f in &written {
            let retention = self.retention.period(f.table).ok_or_else(|| Error::Stage {
                stage: "sink",
                message: format!("has no retention period for table {}", f.table),
            })?;
            change.add.push(FileEntry::new(
                f.table,
                f.path.clone(),
                f.hour,
                f.rows,
                f.bytes,
                f.sha256.clone(),
                retention,
            ));
        }
        let cover = std::mem::take(&mut self.cover);
        if let Some((first_line, last_line)) = cover.lines {
            change.sources.push(SourceRange::File {
                source: self.source.clone(),
                first_line,
                last_line,
                first_line_sha256: self.fingerprint.clone(),
            });
        }
        if let Some(topic) = &self.topic {
            for (partition, (first_offset, last_offset)) in &cover.kafka {
                change.sources.push(SourceRange::Kafka {
                    topic: topic.clone(),
                    partition: *partition,
                    first_offset: *first_offset,
                    last_offset: *last_offset,
                });
            }
        }
        let committed = self
            .ledger
            .commit(change, self.clock.as_ref())
            .await
            .map_err(|source| Error::Ledger { source })?;
        debug!(
            sequence = committed.manifest.sequence,
            files = written.len(),
            "committed"
        );
        self.commits += 1;
        // The states this commit replaced are no longer read; one left behind by a failed
        // delete (or a crash here) is removed by the next clean-up of orphans.
        for path in superseded {
            if let Err(e) = location.store.delete(&location.child(&path)).await {
                debug!(%path, error = %e, "cannot delete a superseded window state");
            }
        }
        if let Some(m) = &self.metrics {
            m.committed(written.iter().map(|f| (f.table, f.rows)), started.elapsed());
        }
        for f in written {
            let t = self.tables.entry(f.table).or_default();
            t.rows += f.rows;
            t.files += 1;
            t.bytes += f.bytes;
        }
        Ok(cover)
    }
}
