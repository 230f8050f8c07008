//! Compaction: the small files of hours that are over, rewritten into few large ones.
//!
//! A streaming writer closes a file per table and hour every `sink.roll-interval`, so an
//! hour of history is dozens of small files; a year of them is slow to list and to
//! query. [`compact`] (`rampart compact`, and every `compact.interval` in the background
//! of `rampart run`) rewrites them and records the replacement in the archive's chain.
//!
//! **Candidates.** A partition (table, date, hour) is compacted when its hour ended at
//! least `older_than` ago by the injected [`Clock`] (`compact.older-than`, default 2h, so
//! late events and files still rolling land first) and it holds two or more *small*
//! live files: files under half of `compact.target-file-bytes`. Only the small files
//! are rewritten; a large file is already what compaction would write, and rewriting it
//! costs I/O for no fewer files. A partition whose small files were compacted holds at
//! most one small file (the remainder), so a second pass does nothing: compaction is
//! idempotent and converges. A late file landing in a compacted hour is merged with that
//! remainder on a later pass. Files whose path is not in the folder of their recorded
//! partition, and tables this version does not know, are left alone.
//!
//! **Rewrite.** The inputs are read with DataFusion over exactly those files (never a
//! folder listing, so uncommitted files are never read), sorted by `resource_id` (when
//! the table has one) then the table's time column, so the min/max statistics of each
//! file and row group narrow a query on a resource to few row groups; and written with
//! the sink's [`TableWriter`] into the same partition folder, new files rolled at about
//! `compact.target-file-bytes`, with data pages of at most [`PAGE_ROWS`] rows so that
//! the page index (min/max per page, written by default) narrows such a query further,
//! to a page or two of each row group, and without dictionaries for the time column and
//! the [`PLAIN_COLUMNS`] (besides the sink's own plain columns), whose dictionaries such a query would otherwise read whole, and with the min/max statistics the sink leaves out of its unsorted files ([`UNSORTED_NO_STATISTICS`]), which the sort makes narrow. The sort keeps at most [`SORT_MEMORY_BYTES`] in memory
//! and spills to the temporary directory beyond, so an hour of any size is compacted in
//! bounded memory.
//!
//! **Commit.** The rows written must equal the sum of the inputs' recorded `rows`, or
//! the partition is abandoned (its new files deleted, nothing committed). Otherwise ONE
//! manifest per partition with [`Action::Compact`] adds the new files and removes the
//! inputs (`compacted into <new paths>`). Each new file takes the `retain_until` and
//! `retention` of the input kept longest, so compaction never shortens retention; legal
//! holds match rows, and the rows are the same. Only after the commit succeeded are the
//! inputs deleted, best effort: a file a manifest removed is no longer live, so whatever
//! is left is an orphan that `rampart_sink::remove_orphans` deletes later.
//!
//! **Crash safety.** The archive is what its chain says: before the manifest exists the
//! new files are orphans nobody reads, after it the inputs are. A crash at any point
//! leaves the archive as it was or as it will be, and never both (no row twice).
//!
//! **Concurrency.** Each commit goes through [`Ledger::commit`], which serializes
//! writers with `PutMode::Create`. A commit whose inputs are no longer live (retention
//! removed one, or another compactor got there first) is refused with
//! [`LedgerError::Conflict`]: the new files are deleted and the partition reported as
//! skipped. A commit that fails otherwise (the store) may still have landed (a request
//! that timed out after the store took it): the chain is re-read, and if the new files
//! are not part of the archive they are left for orphan clean-up rather than deleted,
//! since deleting a file a late manifest lists would break the archive. The pipeline
//! only adds files, so it never conflicts with compaction.
//!
//! **In the background.** With `compact.interval` above `0s` (default 10m), `rampart
//! run` compacts every interval by its clock, with a ledger of its own that it refreshes
//! incrementally (it reads only the manifests committed since its last pass). Ten
//! minutes is frequent enough that an hour is compacted soon after it becomes eligible
//! (hours become eligible once an hour) and rare enough that an idle archive costs
//! nothing measurable. When the run ends, the partition in progress is finished and
//! the pass stops there; the run's summary counts what was compacted.
//!
//! A query that planned over the inputs before the commit may find them deleted while
//! it reads and fail (it never returns wrong rows); run it again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext, col};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use rampart_archive::verify::footer;
use rampart_core::Clock;
use rampart_core::config::{Config, SinkConfig};
use rampart_core::layout::{MICROS_PER_HOUR, partition_dir};
use rampart_core::ledger::{Action, Change, FileEntry, Ledger, LedgerError, Removal, State};
use rampart_core::schema::{self, TableDef};
use rampart_core::store::Location;
use rampart_sink::{TableWriter, UNSORTED_NO_STATISTICS, WrittenFile};
use tracing::{info, instrument, warn};

use crate::task::SpawnedTask;
use crate::{Error, Result};

/// Memory the sort of one partition may hold before it spills to disk.
pub const SORT_MEMORY_BYTES: usize = 256 << 20;

/// Rows per data page of the files compaction writes. The rows are sorted by resource, so
/// a page covers a narrow range of resources and the page index lets a query for one
/// resource decode a page or two per file rather than the whole hour (about 41,000
/// rows of events). Smaller pages cost every query that reads whole columns: with 1,024
/// rows a month's count by workload spent more of its time per page; 4,096 keeps the
/// one-resource query as fast and most of that cost away, 8,192 made the one-resource
/// query decode half again as much (see docs/performance.md).
pub const PAGE_ROWS: usize = 4096;

/// Columns compaction writes without a dictionary besides the table's time column and
/// the ones every writer does ([`rampart_sink::PLAIN_BY_DEFAULT`]: `src_ip`, `message`,
/// `extra`, `ts_raw`, ...): their values are nearly all distinct within an hour, so their
/// dictionary would be about as large as the column, and a query reading one page of
/// them would still fetch and decode the whole dictionary of the row group.
pub const PLAIN_COLUMNS: [&str; 4] = [
    schema::events::DST_IP,
    schema::events::VULN_ID,
    schema::events::INGESTED_AT,
    schema::source::SOURCE_LINE,
];

/// A partition to compact: its small live files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The table.
    pub table: &'static str,
    /// The partition's hour, in hours since the epoch.
    pub hour: i64,
    /// The live files to rewrite, by path.
    pub inputs: Vec<FileEntry>,
}

impl Candidate {
    /// The partition's folder, `<table>/date=YYYY-MM-DD/hour=HH`.
    pub fn partition(&self) -> String {
        partition_dir(self.table, self.hour)
    }

    /// Rows in the inputs, as their manifests recorded them.
    pub fn rows(&self) -> u64 {
        self.inputs.iter().map(|f| f.rows).sum()
    }

    /// Bytes of the inputs.
    pub fn bytes(&self) -> u64 {
        self.inputs.iter().map(|f| f.bytes).sum()
    }
}

/// What compaction did to one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableCompaction {
    /// Partitions compacted.
    pub partitions: u64,
    /// Files removed from the archive.
    pub files_before: u64,
    /// Files added in their place.
    pub files_after: u64,
    /// Rows rewritten.
    pub rows: u64,
    /// Bytes of the removed files.
    pub bytes_before: u64,
    /// Bytes of the added files.
    pub bytes_after: u64,
    /// Removed files whose deletion failed; orphan clean-up deletes them later.
    pub inputs_left: u64,
}

/// A partition that was not compacted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSkipped {
    /// `<table>/date=YYYY-MM-DD/hour=HH`.
    pub partition: String,
    /// What happened.
    pub reason: String,
}

/// The outcome of a compaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Per table, what was compacted.
    pub tables: BTreeMap<&'static str, TableCompaction>,
    /// Partitions another commit changed meanwhile (retention, another compactor): left
    /// as they are, to be looked at again next time.
    pub skipped: Vec<PartitionSkipped>,
    /// Partitions that failed (the store, an unreadable file, a row count that does
    /// not match the manifests): left as they are.
    pub failed: Vec<PartitionSkipped>,
    /// Files no manifest lists, older than `archive.orphan-grace`, deleted after the
    /// pass: what crashes, failed deletes and earlier passes left.
    pub orphans_removed: u64,
}

impl CompactReport {
    /// Partitions compacted, all tables.
    pub fn partitions(&self) -> u64 {
        self.tables.values().map(|t| t.partitions).sum()
    }

    /// Files removed, all tables.
    pub fn files_before(&self) -> u64 {
        self.tables.values().map(|t| t.files_before).sum()
    }

    /// Files added, all tables.
    pub fn files_after(&self) -> u64 {
        self.tables.values().map(|t| t.files_after).sum()
    }

    /// Adds `other` to this report.
    pub fn merge(&mut self, other: CompactReport) {
        for (table, t) in other.tables {
            let s = self.tables.entry(table).or_default();
            s.partitions += t.partitions;
            s.files_before += t.files_before;
            s.files_after += t.files_after;
            s.rows += t.rows;
            s.bytes_before += t.bytes_before;
            s.bytes_after += t.bytes_after;
            s.inputs_left += t.inputs_left;
        }
        self.skipped.extend(other.skipped);
        self.failed.extend(other.failed);
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The hour bucket of a file's recorded partition, if its date reads as one.
fn hour_of(entry: &FileEntry) -> Option<i64> {
    let date = chrono::NaiveDate::parse_from_str(&entry.date, "%Y-%m-%d").ok()?;
    let day = date
        .and_hms_opt(0, 0, 0)?
        .and_utc()
        .timestamp()
        .div_euclid(3600);
    (entry.hour < 24).then(|| day + i64::from(entry.hour))
}

/// The partitions of `state` to compact at `now_micros` (see the module docs), oldest
/// hour first within each table.
pub fn plan(
    state: &State,
    target_file_bytes: u64,
    now_micros: i64,
    older_than: Duration,
) -> Vec<Candidate> {
    let small = target_file_bytes / 2;
    let older_than = micros(older_than);
    let tables = schema::tables();
    let mut partitions: BTreeMap<(&'static str, i64), Vec<FileEntry>> = BTreeMap::new();
    for live in state.live.values() {
        let entry = &live.entry;
        if entry.bytes >= small {
            continue;
        }
        let Some(table) = tables.iter().find(|t| t.name() == entry.table) else {
            continue;
        };
        let Some(hour) = hour_of(entry) else { continue };
        let ended = hour.saturating_add(1).saturating_mul(MICROS_PER_HOUR);
        if ended.saturating_add(older_than) > now_micros {
            continue;
        }
        let folder = format!("{}/", partition_dir(table.name(), hour));
        if !entry.path.starts_with(&folder) {
            continue;
        }
        partitions
            .entry((table.name(), hour))
            .or_default()
            .push(entry.clone());
    }
    partitions
        .into_iter()
        .filter(|(_, inputs)| inputs.len() >= 2)
        .map(|((table, hour), inputs)| Candidate {
            table,
            hour,
            inputs,
        })
        .collect()
}

/// Compacts the archive at `location`: every partition [`plan`] selects, one manifest
/// each. Errors of single partitions are in the report; an error here means the chain
/// could not be read.
pub async fn compact(
    location: &Location,
    config: &Config,
    clock: Arc<dyn Clock>,
    older_than: Duration,
) -> Result<CompactReport> {
    let mut ledger = Ledger::load(location).await?;
    compact_ledger(&mut ledger, config, clock, older_than).await
}

/// [`compact`] with a ledger kept between passes: only the manifests committed since
/// the last pass are read.
pub async fn compact_ledger(
    ledger: &mut Ledger,
    config: &Config,
    clock: Arc<dyn Clock>,
    older_than: Duration,
) -> Result<CompactReport> {
    compact_until(ledger, config, clock, older_than, || false).await
}

/// [`compact_ledger`], stopping before the next partition once `stop` says so.
async fn compact_until(
    ledger: &mut Ledger,
    config: &Config,
    clock: Arc<dyn Clock>,
    older_than: Duration,
    stop: impl Fn() -> bool,
) -> Result<CompactReport> {
    ledger.refresh().await?;
    let candidates = plan(
        ledger.state(),
        config.compact.target_file_bytes.as_u64(),
        clock.now_micros(),
        older_than,
    );
    let mut report = CompactReport::default();
    for candidate in candidates {
        if stop() {
            break;
        }
        let partition = candidate.partition();
        match compact_partition(ledger, config, &clock, &candidate).await {
            Outcome::Compacted(t) => {
                let s = report.tables.entry(candidate.table).or_default();
                s.partitions += 1;
                s.files_before += t.files_before;
                s.files_after += t.files_after;
                s.rows += t.rows;
                s.bytes_before += t.bytes_before;
                s.bytes_after += t.bytes_after;
                s.inputs_left += t.inputs_left;
            }
            Outcome::Skipped(reason) => {
                info!(%partition, %reason, "partition not compacted: the archive changed");
                report.skipped.push(PartitionSkipped { partition, reason });
            }
            Outcome::Failed(reason) => {
                warn!(%partition, %reason, "partition not compacted");
                report.failed.push(PartitionSkipped { partition, reason });
            }
        }
    }
    if !stop() {
        // A long-running instance cleans up here, not only at start-up: against the chain
        // as it is now, not as it was when the pass began.
        let location = ledger.location().clone();
        let grace = config.archive.orphan_grace;
        let cleaned = match ledger.refresh().await {
            Ok(()) => {
                rampart_sink::remove_orphans(&location, ledger.state(), grace, clock.now_micros())
                    .await
            }
            Err(e) => Err(rampart_sink::Error::Config {
                message: format!("cannot re-read the chain before the clean-up: {e}"),
            }),
        };
        match cleaned {
            Ok(removed) => report.orphans_removed = removed.len() as u64,
            Err(e) => {
                warn!(error = %e, "clean-up of files no manifest lists failed");
                report.failed.push(PartitionSkipped {
                    partition: "(clean-up)".into(),
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(report)
}

enum Outcome {
    Compacted(TableCompaction),
    Skipped(String),
    Failed(String),
}

#[instrument(skip_all, fields(partition = %candidate.partition(), files = candidate.inputs.len()))]
async fn compact_partition(
    ledger: &mut Ledger,
    config: &Config,
    clock: &Arc<dyn Clock>,
    candidate: &Candidate,
) -> Outcome {
    let location = ledger.location().clone();
    let Some(table) = schema::table(candidate.table) else {
        return Outcome::Failed(format!("internal error: no table {}", candidate.table));
    };
    let written = match rewrite(&location, &table, candidate, config, clock).await {
        Ok(w) => w,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let new_paths: Vec<String> = written.iter().map(|f| f.path.clone()).collect();
    let change = change_for(candidate, &written);
    // An error may hide a commit that landed: a retried request whose first attempt
    // had succeeded. The chain decides.
    if let Err(e) = ledger.commit(change, clock.as_ref()).await
        && !landed(ledger, candidate, &new_paths).await
    {
        if matches!(e, LedgerError::Conflict { .. }) {
            // Refused before anything was written: the new files are nobody's.
            delete_all(&location, &new_paths).await;
            return Outcome::Skipped(e.to_string());
        }
        return Outcome::Failed(format!(
            "{e}; its {} new files are left to orphan clean-up in case the commit lands late",
            new_paths.len()
        ));
    }
    let inputs: Vec<String> = candidate.inputs.iter().map(|f| f.path.clone()).collect();
    let left = delete_all(&location, &inputs).await;
    let t = TableCompaction {
        partitions: 1,
        files_before: candidate.inputs.len() as u64,
        files_after: written.len() as u64,
        rows: candidate.rows(),
        bytes_before: candidate.bytes(),
        bytes_after: written.iter().map(|f| f.bytes).sum(),
        inputs_left: left,
    };
    info!(
        files_before = t.files_before,
        files_after = t.files_after,
        rows = t.rows,
        bytes_before = t.bytes_before,
        bytes_after = t.bytes_after,
        "partition compacted"
    );
    Outcome::Compacted(t)
}

/// Whether the compaction of `candidate` into `new_paths` is in the chain, as far as
/// the ledger (re-read if it can be) tells.
async fn landed(ledger: &mut Ledger, candidate: &Candidate, new_paths: &[String]) -> bool {
    let check = |l: &Ledger| {
        let live = &l.state().live;
        if new_paths.is_empty() {
            candidate.inputs.iter().all(|f| !live.contains_key(&f.path))
        } else {
            new_paths.iter().all(|p| live.contains_key(p))
        }
    };
    check(ledger) || (ledger.refresh().await.is_ok() && check(ledger))
}

/// The manifest change replacing the inputs of `candidate` by `written`.
fn change_for(candidate: &Candidate, written: &[WrittenFile]) -> Change {
    // Every input is of the same hour; they differ only if the retention configured
    // changed between their writes. The longest wins: compaction never shortens it.
    let kept = candidate
        .inputs
        .iter()
        .max_by_key(|f| f.retain_until_micros());
    let add: Vec<FileEntry> = written
        .iter()
        .map(|f| {
            let mut e = FileEntry::new(
                f.table,
                f.path.clone(),
                f.hour,
                f.rows,
                f.bytes,
                f.sha256.clone(),
                Duration::ZERO,
            );
            if let Some(k) = kept {
                e.retention = k.retention.clone();
                e.retain_until = k.retain_until.clone();
            }
            e
        })
        .collect();
    let into = if written.is_empty() {
        "nothing (the files held no rows)".to_string()
    } else {
        add.iter()
            .map(|e| e.path.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let remove = candidate
        .inputs
        .iter()
        .map(|f| Removal {
            path: f.path.clone(),
            table: f.table.clone(),
            sha256: f.sha256.clone(),
            reason: format!("compacted into {into}"),
        })
        .collect();
    Change {
        add,
        remove,
        note: Some(format!(
            "compaction of {}: {} files, {} rows",
            candidate.partition(),
            candidate.inputs.len(),
            candidate.rows()
        )),
        ..Change::new(Action::Compact)
    }
}

/// Deletes `paths`, best effort; returns how many could not be deleted.
async fn delete_all(location: &Location, paths: &[String]) -> u64 {
    let mut left = 0;
    for path in paths {
        match location.store.delete(&location.child(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                warn!(%path, error = %e, "cannot delete a file no longer in the archive; orphan clean-up will");
                left += 1;
            }
        }
    }
    left
}

/// Writes the rows of `candidate`'s inputs, sorted, into new files of its partition.
/// On any error, or when the row count does not match, deletes what it wrote.
async fn rewrite(
    location: &Location,
    table: &TableDef,
    candidate: &Candidate,
    config: &Config,
    clock: &Arc<dyn Clock>,
) -> Result<Vec<WrittenFile>> {
    let sink = SinkConfig {
        // One file rolls by size only: `target-file-bytes`.
        max_file_rows: u64::MAX,
        max_file_bytes: config.compact.target_file_bytes,
        max_open_files: 1,
        ..config.sink.clone()
    };
    let mut writer = TableWriter::new(table.clone(), location.clone(), &sink, Arc::clone(clock))?
        .with_page_rows(PAGE_ROWS)
        .with_plain_columns(&[table.time_column()])
        .with_plain_columns(&PLAIN_COLUMNS)
        .with_statistics(UNSORTED_NO_STATISTICS);
    let copied = match copy_sorted(location, table, candidate, &mut writer, SORT_MEMORY_BYTES).await
    {
        Ok(rows) => writer.close_all().await.map(|()| rows).map_err(Error::from),
        Err(e) => Err(e),
    };
    let written = writer.take_written();
    let streamed = match copied {
        Ok(rows) => rows,
        Err(e) => return abandon(location, &written, e).await,
    };
    let expected = candidate.rows();
    let in_files: u64 = written.iter().map(|f| f.rows).sum();
    if streamed != expected || in_files != expected {
        let e = Error::CompactRowCount {
            partition: candidate.partition(),
            expected,
            written: if streamed == expected {
                in_files
            } else {
                streamed
            },
        };
        return abandon(location, &written, e).await;
    }
    if let Some(f) = written.iter().find(|f| f.hour != candidate.hour) {
        let e = Error::Stage {
            stage: "compact",
            message: format!(
                "wrote {} outside its partition {}",
                f.path,
                candidate.partition()
            ),
        };
        return abandon(location, &written, e).await;
    }
    Ok(written)
}

/// Deletes the files of an abandoned rewrite and returns `error`.
async fn abandon(
    location: &Location,
    written: &[WrittenFile],
    error: Error,
) -> Result<Vec<WrittenFile>> {
    let paths: Vec<String> = written.iter().map(|f| f.path.clone()).collect();
    delete_all(location, &paths).await;
    Err(error)
}

/// The most rows of one batch read for the sort (DataFusion's default batch size).
const MAX_BATCH_ROWS: usize = 8192;

/// Rows per batch read for the sort of `candidate`: as many as fit in a 64th of
/// `sort_memory` at the inputs' largest rows (uncompressed bytes per row of a row
/// group, from the footers), between 1 and [`MAX_BATCH_ROWS`]. A batch larger than the
/// sort's memory cannot be sorted at all, spill or not: an hour of dead letters of
/// 1 MiB each, 8,192 rows to a batch, failed with "Not enough memory to continue
/// external sort". The merge of the spilled runs and of the partitions holds a batch
/// per run and per partition, hence the small share (found by the test below: a 16th
/// was not enough for 64 KiB rows in 16 MiB). Rows of the usual size (under 1 KiB)
/// keep the full 8,192 under the default 256 MiB.
async fn batch_rows(
    location: &Location,
    candidate: &Candidate,
    sort_memory: usize,
) -> datafusion::parquet::errors::Result<usize> {
    let mut widest: u64 = 1;
    for input in &candidate.inputs {
        let meta = footer(location, &location.child(&input.path), input.bytes).await?;
        for group in meta.row_groups() {
            let rows = u64::try_from(group.num_rows()).unwrap_or(0).max(1);
            let bytes = u64::try_from(group.total_byte_size()).unwrap_or(0);
            widest = widest.max(bytes.div_ceil(rows));
        }
    }
    let fit = (sort_memory as u64 / 64) / widest;
    Ok(usize::try_from(fit)
        .unwrap_or(MAX_BATCH_ROWS)
        .clamp(1, MAX_BATCH_ROWS))
}

/// Streams the inputs through a sort into `writer`, holding at most `sort_memory` bytes
/// of rows before spilling to disk; returns the rows streamed.
async fn copy_sorted(
    location: &Location,
    table: &TableDef,
    candidate: &Candidate,
    writer: &mut TableWriter,
    sort_memory: usize,
) -> Result<u64> {
    let read_err = |source| Error::CompactRead {
        partition: candidate.partition(),
        source,
    };
    let batch = batch_rows(location, candidate, sort_memory)
        .await
        .map_err(|e| read_err(e.into()))?;
    let mut session = SessionConfig::new()
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .with_batch_size(batch);
    // What the sort keeps back for merging its spilled runs: DataFusion's 10 MiB, or less
    // under a smaller budget.
    session.options_mut().execution.sort_spill_reservation_bytes = (sort_memory / 8).min(10 << 20);
    // The table schema says Utf8; keep it rather than DataFusion's view types.
    session
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    // Fair shares: one partition's sorter cannot take the memory another partition's
    // merge needs (with DataFusion's greedy pool, the first to ask could).
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(sort_memory)))
        .build_arc()
        .map_err(read_err)?;
    let ctx = SessionContext::new_with_config_rt(session, runtime);
    let root = url::Url::parse(&location.store_root_url())
        .map_err(|e| read_err(datafusion::error::DataFusionError::External(Box::new(e))))?;
    ctx.register_object_store(&root, Arc::clone(&location.store));
    let mut base = location.url.to_string();
    if !base.ends_with('/') {
        base.push('/');
    }
    let urls: Vec<String> = candidate
        .inputs
        .iter()
        .map(|f| format!("{base}{}", f.path))
        .collect();
    let schema = table.schema();
    let mut order = Vec::new();
    if schema.index_of(schema::events::RESOURCE_ID).is_ok() {
        order.push(col(schema::events::RESOURCE_ID).sort(true, false));
    }
    order.push(col(table.time_column()).sort(true, false));
    let df = ctx
        .read_parquet(urls, ParquetReadOptions::default().schema(&schema))
        .await
        .map_err(read_err)?
        .sort(order)
        .map_err(read_err)?;
    let mut stream = df.execute_stream().await.map_err(read_err)?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(read_err)?;
        if batch.num_rows() == 0 {
            continue;
        }
        let batch = conform(&batch, &schema).map_err(|e| read_err(e.into()))?;
        rows += batch.num_rows() as u64;
        writer.write(&batch).await?;
    }
    Ok(rows)
}

/// `batch` with exactly the table's schema (names, types, nullability), as the writer
/// expects it.
fn conform(
    batch: &RecordBatch,
    schema: &arrow::datatypes::SchemaRef,
) -> arrow::error::Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let column = batch.column_by_name(f.name()).ok_or_else(|| {
                arrow::error::ArrowError::SchemaError(format!("column {} missing", f.name()))
            })?;
            if column.data_type() == f.data_type() {
                Ok(Arc::clone(column))
            } else {
                arrow::compute::cast(column, f.data_type())
            }
        })
        .collect::<arrow::error::Result<Vec<_>>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns)
}

/// Compaction in the background of a run (see [`start`]).
pub(crate) struct Background {
    stop: tokio::sync::watch::Sender<bool>,
    task: SpawnedTask<CompactReport>,
}

/// Starts compacting `location` every `compact.interval` by `clock`, with its own
/// ledger; `None` when the interval is `0s`.
pub(crate) fn start(
    location: &Location,
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Option<Background> {
    let every = micros(config.compact.interval);
    if every == 0 {
        return None;
    }
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let location = location.clone();
    let config = config.clone();
    let task = SpawnedTask::spawn("compact", async move {
        let mut total = CompactReport::default();
        let mut ledger: Option<Ledger> = None;
        let mut last = clock.now_micros();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // Told to stop, or the run is gone.
                _ = stopped.changed() => break,
                _ = tick.tick() => {}
            }
            let now = clock.now_micros();
            if now.saturating_sub(last) < every {
                continue;
            }
            last = now;
            let ledger = match ledger.as_mut() {
                Some(l) => l,
                None => match Ledger::load(&location).await {
                    Ok(l) => ledger.insert(l),
                    Err(e) => {
                        warn!(error = %e, "background compaction cannot read the archive's chain; trying again at the next interval");
                        continue;
                    }
                },
            };
            // When the run ends, the partition in progress is finished, then the pass stops.
            let older_than = config.compact.older_than;
            let pass = compact_until(ledger, &config, Arc::clone(&clock), older_than, || {
                *stopped.borrow()
            });
            match pass.await {
                Ok(report) => total.merge(report),
                Err(e) => {
                    warn!(error = %e, "background compaction failed; trying again at the next interval");
                }
            }
        }
        total
    });
    Some(Background { stop, task })
}

impl Background {
    /// Stops compacting once the partition in progress is done; returns what was done.
    pub(crate) async fn stop(self) -> Result<CompactReport> {
        let _ = self.stop.send(true);
        self.task.join().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

    use arrow::array::{
        Array, ArrayRef, AsArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };
    use futures::TryStreamExt;
    use futures::stream::BoxStream;
    use object_store::path::Path;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
        PutMultipartOptions, PutOptions, PutPayload, PutResult,
    };
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use rampart_core::ManualClock;
    use rampart_core::ledger::{SourceRange, read_manifests};

    const DAY: u64 = 86_400;
    /// 2026-11-01T05:00:00Z as an hour bucket.
    const HOUR: i64 = 1_793_491_200 / 3600 + 5;

    /// What the fault-injecting store does to manifest writes.
    const MANIFEST_OK: u8 = 0;
    /// Refuses the write: nothing is stored.
    const MANIFEST_FAILS: u8 = 1;
    /// Stores the manifest, then reports an error (a response lost on the way back).
    const MANIFEST_LOST_RESPONSE: u8 = 2;

    /// A store that fails manifest writes or deletes on demand (an in-process fake).
    #[derive(Debug)]
    struct Faulty {
        inner: Arc<dyn ObjectStore>,
        manifests: AtomicU8,
        deletes_fail: AtomicBool,
    }

    impl std::fmt::Display for Faulty {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Faulty({})", self.inner)
        }
    }

    fn injected(what: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "Faulty",
            source: format!("injected failure: {what}").into(),
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Faulty {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            if location.as_ref().contains("_rampart/manifests/") {
                match self.manifests.load(Ordering::SeqCst) {
                    MANIFEST_FAILS => return Err(injected("manifest put")),
                    MANIFEST_LOST_RESPONSE => {
                        self.inner.put_opts(location, payload, opts).await?;
                        return Err(injected("manifest put response"));
                    }
                    _ => {}
                }
            }
            self.inner.put_opts(location, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }

        async fn get_opts(
            &self,
            location: &Path,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            self.inner.get_opts(location, options).await
        }

        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            if self.deletes_fail.load(Ordering::SeqCst) {
                return locations
                    .map(|p| p.and_then(|_| Err(injected("delete"))))
                    .boxed();
            }
            self.inner.delete_stream(locations)
        }

        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }

        fn list_with_offset(
            &self,
            prefix: Option<&Path>,
            offset: &Path,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list_with_offset(prefix, offset)
        }

        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }

        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        location: Location,
        faulty: Arc<Faulty>,
        clock: Arc<ManualClock>,
        config: Config,
    }

    /// A local archive behind the fault-injecting store, clock at the end of `HOUR`.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let local =
            rampart_core::store::open(dir.path().to_str().unwrap(), Vec::<(String, String)>::new())
                .unwrap();
        let faulty = Arc::new(Faulty {
            inner: Arc::clone(&local.store),
            manifests: AtomicU8::new(MANIFEST_OK),
            deletes_fail: AtomicBool::new(false),
        });
        let location = Location {
            store: Arc::clone(&faulty) as Arc<dyn ObjectStore>,
            ..local
        };
        Fixture {
            _dir: dir,
            location,
            faulty,
            clock: Arc::new(ManualClock::new((HOUR + 1) * MICROS_PER_HOUR)),
            config: Config::default(),
        }
    }

    impl Fixture {
        fn clock(&self) -> Arc<dyn Clock> {
            Arc::clone(&self.clock) as Arc<dyn Clock>
        }

        /// Commits one `attack_rates` file of `HOUR` per element of `retention_days`,
        /// `rows` rows each, numbered on from `first` (`event_count` is the number);
        /// resources and times run backwards, so unsorted.
        async fn seed(&self, first: i64, rows: i64, retention_days: &[u64]) {
            let table = schema::table(schema::ATTACK_RATES).unwrap();
            let mut ledger = Ledger::load(&self.location).await.unwrap();
            for (i, days) in retention_days.iter().enumerate() {
                let mut w = TableWriter::new(
                    table.clone(),
                    self.location.clone(),
                    &self.config.sink,
                    self.clock(),
                )
                .unwrap();
                let n: Vec<i64> = (0..rows).map(|j| first + i as i64 * rows + j).collect();
                w.write(&batch(&n)).await.unwrap();
                w.close_all().await.unwrap();
                let retention = Duration::from_secs(days * DAY);
                let change = Change {
                    add: w
                        .take_written()
                        .into_iter()
                        .map(|f| {
                            FileEntry::new(
                                f.table, f.path, f.hour, f.rows, f.bytes, f.sha256, retention,
                            )
                        })
                        .collect(),
                    sources: vec![SourceRange::File {
                        source: "/in.jsonl".into(),
                        first_line: 1,
                        last_line: 1,
                        first_line_sha256: None,
                    }],
                    ..Change::new(Action::Append)
                };
                ledger.commit(change, self.clock.as_ref()).await.unwrap();
            }
        }

        async fn compact(&self, older_than: Duration) -> CompactReport {
            compact(&self.location, &self.config, self.clock(), older_than)
                .await
                .unwrap()
        }

        async fn live(&self) -> Vec<FileEntry> {
            let l = Ledger::load(&self.location).await.unwrap();
            l.state().live.values().map(|f| f.entry.clone()).collect()
        }

        /// The data files in the store, relative to the archive.
        async fn stored(&self) -> Vec<String> {
            let root = format!("{}/", self.location.prefix.as_ref());
            let mut v: Vec<String> = self
                .location
                .store
                .list(Some(&self.location.child(schema::ATTACK_RATES)))
                .map_ok(|m| m.location.as_ref().strip_prefix(&root).unwrap().to_string())
                .try_collect()
                .await
                .unwrap();
            v.sort();
            v
        }

        /// `event_count` of every row the archive's query side reads, sorted.
        async fn numbers(&self) -> Vec<i64> {
            let archive = rampart_archive::Archive::open(self.location.clone())
                .await
                .unwrap();
            let out = archive
                .query("SELECT event_count FROM attack_rates ORDER BY event_count")
                .await
                .unwrap();
            out.batches
                .iter()
                .flat_map(|b| {
                    b.column(0)
                        .as_primitive::<arrow::datatypes::Int64Type>()
                        .values()
                        .to_vec()
                })
                .collect()
        }

        /// The bytes of one stored file.
        async fn file(&self, path: &str) -> impl parquet::file::reader::ChunkReader + 'static {
            let path = self.location.child(path);
            let stored = self.location.store.get(&path).await.unwrap();
            stored.bytes().await.unwrap()
        }

        /// (min, max) of `resource_id` of each data page of one stored file, from its
        /// page index; checks that the time column has no dictionary and the resource
        /// has one.
        async fn resource_pages(&self, path: &str) -> Vec<(String, String)> {
            use parquet::file::page_index::column_index::ColumnIndexMetaData;
            let bytes = self.file(path).await;
            let meta = parquet::file::metadata::ParquetMetaDataReader::new()
                .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required)
                .parse_and_finish(&bytes)
                .unwrap();
            let column = meta
                .file_metadata()
                .schema_descr()
                .columns()
                .iter()
                .position(|c| c.name() == "resource_id")
                .unwrap();
            let mut pages = Vec::new();
            for group in meta.row_groups() {
                // The time column has no dictionary; the resource (few values) has one.
                let dictionary = |name: &str| {
                    group
                        .columns()
                        .iter()
                        .find(|c| c.column_path().string() == name)
                        .unwrap()
                        .dictionary_page_offset()
                        .is_some()
                };
                assert!(!dictionary("window_start") && dictionary("resource_id"));
            }
            for index in meta.column_index().unwrap() {
                let ColumnIndexMetaData::BYTE_ARRAY(index) = &index[column] else {
                    panic!("resource_id has no byte-array page index");
                };
                for page in 0..index.num_pages() as usize {
                    let text = |v: Option<&[u8]>| String::from_utf8(v.unwrap().to_vec()).unwrap();
                    pages.push((text(index.min_value(page)), text(index.max_value(page))));
                }
            }
            pages
        }

        /// (resource_id, window_start) of the rows of one stored file, in file order.
        async fn keys(&self, path: &str) -> Vec<(String, i64)> {
            let bytes = self.file(path).await;
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .unwrap()
                .build()
                .unwrap();
            let mut keys = Vec::new();
            for b in reader {
                let b = b.unwrap();
                let r = b.column_by_name("resource_id").unwrap().as_string::<i32>();
                let t = b
                    .column_by_name("window_start")
                    .unwrap()
                    .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
                for i in 0..b.num_rows() {
                    keys.push((r.value(i).to_string(), t.value(i)));
                }
            }
            keys
        }
    }

    /// `attack_rates` rows numbered `n` (in `event_count`), in `HOUR`, unsorted.
    fn batch(n: &[i64]) -> RecordBatch {
        let start = HOUR * MICROS_PER_HOUR;
        let ts = |v: Vec<i64>| TimestampMicrosecondArray::from(v).with_timezone("UTC");
        let back: Vec<i64> = n.iter().map(|k| 1_000_000 - k).collect();
        let columns: Vec<Arc<dyn Array>> = vec![
            Arc::new(ts(back.iter().map(|b| start + b * 1000).collect())),
            Arc::new(ts(back.iter().map(|b| start + b * 1000 + 1).collect())),
            Arc::new(StringArray::from_iter_values(
                back.iter().map(|b| format!("r{}", b % 7)),
            )),
            Arc::new(StringArray::from(vec![None::<&str>; n.len()])),
            Arc::new(StringArray::from_iter_values(n.iter().map(|_| "ddos"))),
            Arc::new(Int64Array::from(n.to_vec())),
            Arc::new(Float64Array::from(vec![1.0; n.len()])),
        ];
        RecordBatch::try_new(schema::attack_rates_schema(), columns).unwrap()
    }

    /// An hour of rows far wider than the sort's memory divided by DataFusion's default
    /// batch (dead letters that kept 1 MiB messages under 256 MiB of sort memory; here
    /// scaled down, the same ratio: 64 KiB rows, 16 MiB) is sorted a few rows a batch,
    /// spilling, not refused as it was.
    #[tokio::test]
    async fn an_hour_of_huge_rows_is_sorted_within_the_sort_memory() {
        let f = fixture();
        let table = schema::table(schema::DEAD_LETTERS).unwrap();
        let dead = schema::dead_letters_schema();
        let start = HOUR * MICROS_PER_HOUR;
        let mut inputs = Vec::new();
        let per_file = 200;
        for file in 0..3i64 {
            // Newest first, so the sort has to reorder. Memory counts uncompressed bytes,
            // so the raw bytes may as well compress well (small files, a quick test).
            let times: Vec<i64> = (0..per_file)
                .map(|i| start + 1_000 - (file * per_file + i))
                .collect();
            let raws: Vec<Vec<u8>> = (0..per_file).map(|i| vec![i as u8; 64 << 10]).collect();
            let columns = dead
                .fields()
                .iter()
                .map(|field| -> ArrayRef {
                    match field.name().as_str() {
                        "received_at" => Arc::new(
                            TimestampMicrosecondArray::from(times.clone()).with_timezone("UTC"),
                        ),
                        "reason_code" | "reason" => {
                            Arc::new(StringArray::from(vec!["x"; per_file as usize]))
                        }
                        "raw" => Arc::new(arrow::array::BinaryArray::from_iter_values(&raws)),
                        _ => arrow::array::new_null_array(field.data_type(), per_file as usize),
                    }
                })
                .collect();
            let mut w =
                TableWriter::new(table.clone(), f.location.clone(), &f.config.sink, f.clock())
                    .unwrap();
            w.write(&RecordBatch::try_new(Arc::clone(&dead), columns).unwrap())
                .await
                .unwrap();
            w.close_all().await.unwrap();
            inputs.extend(w.take_written().into_iter().map(|w| {
                FileEntry::new(
                    w.table,
                    w.path,
                    w.hour,
                    w.rows,
                    w.bytes,
                    w.sha256,
                    Duration::ZERO,
                )
            }));
        }
        let candidate = Candidate {
            table: schema::DEAD_LETTERS,
            hour: HOUR,
            inputs,
        };
        let memory = 16 << 20;
        let rows = batch_rows(&f.location, &candidate, memory).await.unwrap();
        assert!(
            (1..=4).contains(&rows),
            "a 64th of 16 MiB holds 4 rows of 64 KiB at most: {rows}"
        );
        let mut out =
            TableWriter::new(table, f.location.clone(), &f.config.sink, f.clock()).unwrap();
        let rows = copy_sorted(
            &f.location,
            &schema::table(schema::DEAD_LETTERS).unwrap(),
            &candidate,
            &mut out,
            memory,
        )
        .await
        .unwrap();
        out.close_all().await.unwrap();
        assert_eq!(rows, 3 * per_file as u64);
        let written = out.take_written();
        let mut times: Vec<i64> = Vec::new();
        for file in &written {
            let reader = ParquetRecordBatchReaderBuilder::try_new(f.file(&file.path).await)
                .unwrap()
                .build()
                .unwrap();
            for b in reader {
                let b = b.unwrap();
                let t = b.column_by_name("received_at").unwrap();
                times.extend(
                    t.as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                        .values(),
                );
            }
        }
        let expected: Vec<i64> = (0..3 * per_file)
            .map(|i| start + 1_000 - (3 * per_file - 1) + i)
            .collect();
        assert_eq!(times, expected, "every row once, sorted by received_at");
    }

    fn entry(table: &str, date: &str, hour: u8, path: &str, bytes: u64) -> FileEntry {
        FileEntry {
            path: path.into(),
            table: table.into(),
            date: date.into(),
            hour,
            rows: 1,
            bytes,
            sha256: String::new(),
            retention: "400days".into(),
            retain_until: "2027-12-06T06:00:00.000000Z".into(),
        }
    }

    #[test]
    fn plan_picks_closed_hours_with_two_or_more_small_files() {
        let mut state = State::default();
        let mut add = |e: FileEntry| {
            state.live.insert(
                e.path.clone(),
                rampart_core::ledger::LiveFile {
                    entry: e,
                    added_by: 1,
                },
            );
        };
        let ev = "events/date=2026-11-01/hour=05";
        add(entry(
            "events",
            "2026-11-01",
            5,
            &format!("{ev}/a.parquet"),
            10,
        ));
        add(entry(
            "events",
            "2026-11-01",
            5,
            &format!("{ev}/b.parquet"),
            10,
        ));
        // Large: already what compaction writes.
        add(entry(
            "events",
            "2026-11-01",
            5,
            &format!("{ev}/big.parquet"),
            600,
        ));
        // One small file alone: nothing to merge.
        let dl = "dead_letters/date=2026-11-01/hour=05";
        add(entry(
            "dead_letters",
            "2026-11-01",
            5,
            &format!("{dl}/a.parquet"),
            10,
        ));
        // Two small files, but the hour ends at 07:00.
        let late = "events/date=2026-11-01/hour=06";
        add(entry(
            "events",
            "2026-11-01",
            6,
            &format!("{late}/a.parquet"),
            10,
        ));
        add(entry(
            "events",
            "2026-11-01",
            6,
            &format!("{late}/b.parquet"),
            10,
        ));
        // Not in the folder of its recorded partition, and a table this version lacks.
        add(entry(
            "events",
            "2026-11-01",
            4,
            &format!("{ev}/c.parquet"),
            10,
        ));
        add(entry("events", "2026-11-01", 4, "elsewhere/d.parquet", 10));
        let other = "audit/date=2026-11-01/hour=05";
        add(entry(
            "audit",
            "2026-11-01",
            5,
            &format!("{other}/a.parquet"),
            10,
        ));
        add(entry(
            "audit",
            "2026-11-01",
            5,
            &format!("{other}/b.parquet"),
            10,
        ));

        let end_of_05 = (HOUR + 1) * MICROS_PER_HOUR;
        let two_hours = Duration::from_secs(2 * 3600);
        let plan_at = |now| plan(&state, 1000, now, two_hours);
        assert!(plan_at(end_of_05 + 2 * 3600 * 1_000_000 - 1).is_empty());
        let c = plan_at(end_of_05 + 2 * 3600 * 1_000_000);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!((c[0].table, c[0].hour), ("events", HOUR));
        assert_eq!(c[0].partition(), ev);
        let paths: Vec<&str> = c[0].inputs.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [format!("{ev}/a.parquet"), format!("{ev}/b.parquet")]
        );
        assert_eq!((c[0].rows(), c[0].bytes()), (2, 20));
        // An hour later, 06 is closed long enough too.
        assert_eq!(plan_at(end_of_05 + 3 * 3600 * 1_000_000).len(), 2);
    }

    #[tokio::test]
    async fn small_files_become_one_sorted_file_with_the_same_rows() {
        // Five files of 2,000 rows: one of 10,000, more than two pages.
        const ROWS: usize = 10_000;
        let f = fixture();
        f.seed(0, ROWS as i64 / 5, &[400, 800, 400, 400, 400]).await;
        let before = f.live().await;
        assert_eq!(before.len(), 5);
        assert_eq!(f.numbers().await, (0..ROWS as i64).collect::<Vec<_>>());

        // The hour has not been over for 2h yet.
        let r = f.compact(Duration::from_secs(2 * 3600)).await;
        assert_eq!(r, CompactReport::default());
        f.clock.advance(2 * 3600 * 1_000_000);
        let r = f.compact(Duration::from_secs(2 * 3600)).await;
        let t = r.tables[schema::ATTACK_RATES];
        assert_eq!(
            (
                t.partitions,
                t.files_before,
                t.files_after,
                t.rows,
                t.inputs_left
            ),
            (1, 5, 1, ROWS as u64, 0)
        );
        assert!(r.skipped.is_empty() && r.failed.is_empty(), "{r:?}");

        let after = f.live().await;
        assert_eq!(after.len(), 1);
        let new = &after[0];
        assert_eq!(f.stored().await, vec![new.path.clone()], "inputs deleted");
        assert_eq!(f.numbers().await, (0..ROWS as i64).collect::<Vec<_>>());
        let keys = f.keys(&new.path).await;
        assert_eq!(keys.len(), ROWS);
        assert!(
            keys.is_sorted(),
            "rows sorted by (resource_id, window_start)"
        );
        // Pages of PAGE_ROWS rows, each with its min/max resource in the page index.
        let pages = f.resource_pages(&new.path).await;
        assert_eq!(pages.len(), ROWS.div_ceil(PAGE_ROWS), "{pages:?}");
        assert!(pages.len() > 2);
        for (i, (min, max)) in pages.iter().enumerate() {
            let rows = &keys[i * PAGE_ROWS..((i + 1) * PAGE_ROWS).min(keys.len())];
            assert_eq!((min, max), (&rows[0].0, &rows[rows.len() - 1].0));
        }
        // The longest retention of the inputs is kept.
        let longest = before
            .iter()
            .max_by_key(|e| e.retain_until_micros())
            .unwrap();
        let end = (HOUR + 1) * MICROS_PER_HOUR;
        assert_eq!(
            longest.retain_until_micros(),
            end + 800 * DAY as i64 * 1_000_000
        );
        assert_eq!(
            (&new.retention, &new.retain_until),
            (&longest.retention, &longest.retain_until)
        );

        // The manifest says what happened, for an auditor.
        let manifests = read_manifests(&f.location, None).await.unwrap();
        let last: serde_json::Value = serde_json::from_slice(&manifests.last().unwrap().2).unwrap();
        assert_eq!(last["action"], "compact");
        assert_eq!(last["remove"].as_array().unwrap().len(), 5);
        let reason = last["remove"][0]["reason"].as_str().unwrap();
        assert_eq!(reason, format!("compacted into {}", new.path));
        let removed: Vec<&str> = last["remove"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["sha256"].as_str().unwrap())
            .collect();
        let mut input_hashes: Vec<&str> = before.iter().map(|e| e.sha256.as_str()).collect();
        input_hashes.sort();
        let mut removed = removed;
        removed.sort();
        assert_eq!(removed, input_hashes);

        // A second pass has nothing to do.
        assert_eq!(
            f.compact(Duration::ZERO).await,
            CompactReport::default(),
            "compaction is idempotent"
        );
    }

    #[tokio::test]
    async fn a_failed_manifest_write_leaves_the_archive_as_it_was() {
        let f = fixture();
        f.seed(0, 100, &[400, 400, 400]).await;
        let before = f.live().await;
        let stored_before = f.stored().await;
        f.faulty.manifests.store(MANIFEST_FAILS, Ordering::SeqCst);
        let r = f.compact(Duration::ZERO).await;
        assert!(r.tables.is_empty(), "{r:?}");
        assert_eq!(r.failed.len(), 1, "{r:?}");
        assert!(r.failed[0].reason.contains("injected"), "{r:?}");
        assert_eq!(f.live().await, before, "same live files");
        assert_eq!(f.numbers().await, (0..300).collect::<Vec<_>>(), "same rows");
        // The new file is an orphan nobody reads, left to the clean-up in case the
        // failed write lands late; the clean-up removes it.
        let stored = f.stored().await;
        assert_eq!(stored.len(), stored_before.len() + 1);
        let ledger = Ledger::load(&f.location).await.unwrap();
        // Orphans age by the store's modification times: the system clock.
        let now = rampart_core::SystemClock.now_micros() + 1;
        let removed =
            rampart_sink::remove_orphans(&f.location, ledger.state(), Duration::ZERO, now)
                .await
                .unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(f.stored().await, stored_before, "no leftovers");

        // The store recovers: the next pass compacts.
        f.faulty.manifests.store(MANIFEST_OK, Ordering::SeqCst);
        let r = f.compact(Duration::ZERO).await;
        assert_eq!(r.partitions(), 1, "{r:?}");
        let live: Vec<String> = f.live().await.into_iter().map(|e| e.path).collect();
        assert_eq!(f.stored().await, live);
        assert_eq!(f.numbers().await, (0..300).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_crash_after_the_commit_leaves_the_archive_as_it_will_be() {
        let f = fixture();
        f.seed(0, 100, &[400, 400, 400]).await;
        let inputs: Vec<String> = f.live().await.into_iter().map(|e| e.path).collect();
        // The commit lands; deleting the inputs fails (as a crash right after it would).
        f.faulty.deletes_fail.store(true, Ordering::SeqCst);
        let r = f.compact(Duration::ZERO).await;
        assert_eq!(r.tables[schema::ATTACK_RATES].inputs_left, 3, "{r:?}");
        f.faulty.deletes_fail.store(false, Ordering::SeqCst);

        let live: Vec<String> = f.live().await.into_iter().map(|e| e.path).collect();
        assert_eq!(live.len(), 1);
        assert!(!inputs.contains(&live[0]));
        assert_eq!(f.stored().await.len(), 4, "the inputs are still stored");
        assert_eq!(
            f.numbers().await,
            (0..300).collect::<Vec<_>>(),
            "read from the new file only: no row twice"
        );
        let ledger = Ledger::load(&f.location).await.unwrap();
        let now = rampart_core::SystemClock.now_micros() + 1;
        let removed =
            rampart_sink::remove_orphans(&f.location, ledger.state(), Duration::ZERO, now)
                .await
                .unwrap();
        let mut removed: Vec<String> = removed.into_iter().map(|o| o.path).collect();
        removed.sort();
        assert_eq!(removed, inputs, "the old inputs are orphans");
        assert_eq!(f.stored().await, live);
    }

    #[tokio::test]
    async fn a_commit_whose_response_was_lost_still_counts() {
        let f = fixture();
        f.seed(0, 100, &[400, 400]).await;
        f.faulty
            .manifests
            .store(MANIFEST_LOST_RESPONSE, Ordering::SeqCst);
        let r = f.compact(Duration::ZERO).await;
        f.faulty.manifests.store(MANIFEST_OK, Ordering::SeqCst);
        assert_eq!(r.partitions(), 1, "{r:?}");
        let live: Vec<String> = f.live().await.into_iter().map(|e| e.path).collect();
        assert_eq!(live.len(), 1);
        assert_eq!(
            f.stored().await,
            live,
            "the new file kept, the inputs deleted"
        );
        assert_eq!(f.numbers().await, (0..200).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_partition_changed_meanwhile_is_skipped_and_its_new_files_deleted() {
        let f = fixture();
        f.seed(0, 100, &[400, 400, 400]).await;
        let mut stale = Ledger::load(&f.location).await.unwrap();
        let candidates = plan(
            stale.state(),
            256 << 20,
            f.clock.now_micros(),
            Duration::ZERO,
        );
        assert_eq!(candidates.len(), 1);
        // Retention removes one input after the plan was made.
        let gone = candidates[0].inputs[0].clone();
        let mut other = Ledger::load(&f.location).await.unwrap();
        let retention = Change {
            remove: vec![Removal {
                path: gone.path.clone(),
                table: gone.table.clone(),
                sha256: gone.sha256.clone(),
                reason: "retention expired".into(),
            }],
            ..Change::new(Action::Retention)
        };
        other.commit(retention, f.clock.as_ref()).await.unwrap();
        let stored_before = f.stored().await;

        let outcome = compact_partition(&mut stale, &f.config, &f.clock(), &candidates[0]).await;
        let Outcome::Skipped(reason) = outcome else {
            panic!("expected a skipped partition");
        };
        assert!(reason.contains("no longer in the archive"), "{reason}");
        assert_eq!(
            f.stored().await,
            stored_before,
            "new files deleted, inputs kept"
        );
        assert_eq!(f.numbers().await, (100..300).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_row_count_that_does_not_match_the_manifests_commits_nothing() {
        let f = fixture();
        f.seed(0, 100, &[400, 400]).await;
        let ledger = Ledger::load(&f.location).await.unwrap();
        let mut candidates = plan(
            ledger.state(),
            256 << 20,
            f.clock.now_micros(),
            Duration::ZERO,
        );
        candidates[0].inputs[0].rows += 1;
        let stored_before = f.stored().await;
        let table = schema::table(schema::ATTACK_RATES).unwrap();
        let err = rewrite(&f.location, &table, &candidates[0], &f.config, &f.clock())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::CompactRowCount {
                    expected: 201,
                    written: 200,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(f.stored().await, stored_before, "what it wrote is deleted");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_background_task_compacts_every_interval_by_the_clock() {
        let mut f = fixture();
        f.config.compact.interval = Duration::from_secs(600);
        f.config.compact.older_than = Duration::ZERO;
        f.seed(0, 100, &[400, 400, 400]).await;
        let bg = start(&f.location, &f.config, f.clock()).unwrap();
        for _ in 0..15 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(f.live().await.len(), 3, "not before the interval");
        f.clock.advance(600 * 1_000_000);
        let mut waited = 0;
        while f.live().await.len() != 1 {
            assert!(waited < 100, "not compacted after the interval");
            tokio::time::sleep(Duration::from_millis(100)).await;
            waited += 1;
        }
        let r = bg.stop().await.unwrap();
        assert_eq!(
            (r.partitions(), r.files_before(), r.files_after()),
            (1, 3, 1)
        );
        let mut off = Config::default();
        off.compact.interval = Duration::ZERO;
        assert!(start(&f.location, &off, f.clock()).is_none());
    }
}
