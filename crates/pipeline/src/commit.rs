//! The commit step: closes the open files and makes them part of the archive with one
//! manifest that also records the source lines they cover.
//!
//! Everything the sink received before a commit is in the files that commit lists, so
//! the source position it records is safe to resume from: a restarted run skips the
//! lines up to it, and whatever a crash left uncommitted is read again.

use std::collections::BTreeMap;
use std::sync::Arc;

use rampart_core::Clock;
use rampart_core::config::RetentionConfig;
use rampart_core::ledger::{Action, Change, FileEntry, Ledger, SourceRange};
use rampart_sink::TableWriter;
use tracing::debug;

use crate::summary::TableSummary;
use crate::{Error, Result};

/// Commits the writers' files to the archive's chain.
pub(crate) struct Committer {
    ledger: Ledger,
    retention: RetentionConfig,
    source: String,
    /// SHA-256 of the source's line 1 (file sources).
    fingerprint: Option<String>,
    clock: Arc<dyn Clock>,
    /// Source lines received since the last commit.
    lines: Option<(u64, u64)>,
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
            lines: None,
            commits: 0,
            tables: BTreeMap::new(),
        }
    }

    /// Notes that the rows of `lines` were handed to the writers.
    pub(crate) fn received(&mut self, lines: Option<(u64, u64)>) {
        self.lines = crate::run::join_lines(self.lines, lines);
    }

    /// Closes every open file and commits all completed ones in one manifest.
    pub(crate) async fn commit(
        &mut self,
        writers: &mut BTreeMap<&'static str, TableWriter>,
    ) -> Result<()> {
        let mut written = Vec::new();
        for w in writers.values_mut() {
            w.close_all().await?;
            written.extend(w.take_written());
        }
        if written.is_empty() {
            return Ok(());
        }
        let mut change = Change::new(Action::Append);
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
        if let Some((first_line, last_line)) = self.lines.take() {
            change.sources.push(SourceRange::File {
                source: self.source.clone(),
                first_line,
                last_line,
                first_line_sha256: self.fingerprint.clone(),
            });
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
        for f in written {
            let t = self.tables.entry(f.table).or_default();
            t.rows += f.rows;
            t.files += 1;
            t.bytes += f.bytes;
        }
        Ok(())
    }
}
