//! One table's writer: an open Parquet file per hour, rolled by size, age and count.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::future::BoxFuture;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::async_writer::AsyncFileWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use rampart_core::Clock;
use rampart_core::config::SinkConfig;
use rampart_core::layout::{data_file_name, partition_dir};
use rampart_core::schema::{self, TableDef};
use rampart_core::store::Location;
use sha2::{Digest, Sha256};
use tracing::{debug, instrument};

use crate::encode::ParallelWriter;
use crate::partition::split_by_hour;
use crate::{Error, Result};

/// Columns every writer writes without a dictionary (see [`TableWriter::with_plain_columns`]):
/// free text, addresses, raw bytes and JSON, whose values rarely repeat, so a dictionary
/// costs a hash per value and is dropped for plain encoding once it outgrows its page.
pub const PLAIN_BY_DEFAULT: &[&str] = &[
    schema::events::MESSAGE,
    schema::events::SRC_IP,
    schema::events::EXTRA,
    schema::events::TS_RAW,
    schema::dead_letters::RAW,
    schema::dead_letters::REASON,
];
/// Columns every writer writes without min/max statistics: free text, JSON and raw bytes,
/// which no query prunes on (a range of messages says nothing useful), while keeping
/// them costs a comparison of every value. Their null counts go with them.
pub(crate) const NO_STATISTICS: &[&str] = &[
    schema::events::MESSAGE,
    schema::events::EXTRA,
    schema::events::TS_RAW,
    schema::dead_letters::RAW,
    schema::dead_letters::REASON,
];
/// Event columns the sink writes without min/max statistics, because its files hold the
/// events in the order they arrive: each row group then holds nearly every value of
/// these columns (every category and outcome, most users and addresses), so their
/// min/max never exclude a row group from a query, while keeping them compares every
/// value with the page's minimum and maximum (about 3% of the file job's CPU, measured
/// in docs/performance.md). The resource is among them: its min/max narrow a query only
/// once the rows are sorted by it. The time keeps its own (arrival order is nearly time
/// order, so a time range does narrow); compaction, which sorts the rows by resource,
/// writes these statistics again ([`TableWriter::with_statistics`]). Their null counts
/// go with them.
pub const UNSORTED_NO_STATISTICS: &[&str] = &[
    schema::events::RESOURCE_ID,
    schema::events::RESOURCE_TYPE,
    schema::events::CATEGORY,
    schema::events::WORKLOAD,
    schema::events::OUTCOME,
    schema::events::SEVERITY,
    schema::events::SRC_IP,
    schema::events::DST_IP,
    schema::events::PROTOCOL,
    schema::events::USER,
    schema::events::CLASSIFICATION,
    schema::events::VULN_ID,
];
/// Integer and time columns every writer writes as DELTA_BINARY_PACKED, without a
/// dictionary: event and arrival times, line numbers and Kafka offsets and timestamps
/// are nearly all distinct within a file but close to their neighbours, so a dictionary
/// hashes every value only to be dropped once it outgrows its page, while the deltas
/// pack into a few bits. Measured on 1M generated events (docs/performance.md): 6.9%
/// fewer instructions for the whole job and a 17% smaller `events` table. DuckDB,
/// Spark, Trino/Athena and pyarrow all read the encoding.
pub(crate) const DELTA_BY_DEFAULT: &[&str] = &[
    schema::events::TS,
    schema::dead_letters::RECEIVED_AT,
    schema::source::SOURCE_LINE,
    schema::source::KAFKA_OFFSET,
    schema::source::KAFKA_TIMESTAMP,
];
/// Upper bound of one buffered row group, whatever its row count.
const MAX_ROW_GROUP_BYTES: usize = 64 << 20;

/// A data file that was completed and is now visible in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Table name.
    pub table: &'static str,
    /// Path relative to the archive root, `<table>/date=../hour=../part-<id>.parquet`.
    pub path: String,
    /// Hour bucket (hours since the epoch) of the partition.
    pub hour: i64,
    /// Rows in the file.
    pub rows: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the file's bytes, computed as they were written.
    pub sha256: String,
}

/// The store's buffered writer, hashing every byte on its way to it.
struct HashingWriter {
    inner: BufWriter,
    hasher: Sha256,
}

impl AsyncFileWriter for HashingWriter {
    fn write(&mut self, bs: Bytes) -> BoxFuture<'_, parquet::errors::Result<()>> {
        self.hasher.update(&bs);
        AsyncFileWriter::write(&mut self.inner, bs)
    }

    fn complete(&mut self) -> BoxFuture<'_, parquet::errors::Result<()>> {
        AsyncFileWriter::complete(&mut self.inner)
    }
}

struct OpenFile {
    writer: ParallelWriter,
    /// Where the writer's bytes go.
    object: HashingWriter,
    relative: String,
    rows: u64,
    opened_at: i64,
}

/// Writes one archive table (see the crate docs).
pub struct TableWriter {
    table: TableDef,
    location: Location,
    props: WriterProperties,
    max_file_rows: u64,
    max_file_bytes: u64,
    roll_interval_micros: i64,
    max_open_files: usize,
    /// Threads that encode a file's columns: the machine's cores.
    threads: usize,
    clock: Arc<dyn Clock>,
    open: BTreeMap<i64, OpenFile>,
    written: Vec<WrittenFile>,
}

/// Sends what `writer` has produced since the last call to the store.
async fn send(
    writer: &mut ParallelWriter,
    object: &mut HashingWriter,
) -> parquet::errors::Result<()> {
    let bytes = writer.take_bytes();
    if bytes.is_empty() {
        return Ok(());
    }
    AsyncFileWriter::write(object, bytes).await
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("table", &self.table.name())
            .field("location", &self.location.url.as_str())
            .field("open_hours", &self.open.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Finishes `file` (its last row group and footer) and sends what is left of it to the
/// store. The finishing, the compression of every column's last pages, runs on a
/// blocking thread: the files a commit closes (every open file of every table) are
/// then finished side by side, where one after the other they left a core idle at the
/// end of every commit and of a bounded run.
async fn close_file(table: &'static str, hour: i64, file: OpenFile) -> Result<WrittenFile> {
    let OpenFile {
        writer,
        mut object,
        relative,
        rows,
        ..
    } = file;
    // Awaited right here, a panic re-raised, as the pipeline's `SpawnedTask` does (the
    // sink does not depend on the pipeline); a blocking task cannot be aborted anyway.
    #[expect(
        clippy::disallowed_methods,
        reason = "joined at once, panics re-raised"
    )]
    let finishing = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        writer.finish().map(|()| writer)
    });
    let finished = match finishing.await {
        Ok(finished) => finished,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(parquet::errors::ParquetError::General(format!(
            "the thread finishing the file was cancelled: {e}"
        ))),
    };
    let sent = async {
        let mut writer = finished?;
        send(&mut writer, &mut object).await?;
        AsyncFileWriter::complete(&mut object).await?;
        Ok::<_, parquet::errors::ParquetError>(writer.bytes_taken())
    };
    let bytes = sent.await.map_err(|source| Error::Write {
        path: relative.clone(),
        source,
    })?;
    let sha256 = hex::encode(object.hasher.finalize());
    debug!(path = %relative, rows, bytes, "archive file complete");
    Ok(WrittenFile {
        table,
        path: relative,
        hour,
        rows,
        bytes,
        sha256,
    })
}

impl TableWriter {
    /// A writer for `table` in the archive at `location`.
    pub fn new(
        table: TableDef,
        location: Location,
        config: &SinkConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let level = ZstdLevel::try_new(config.zstd_level).map_err(|e| Error::Config {
            message: format!("sink.zstd-level {}: {e}", config.zstd_level),
        })?;
        let mut props = WriterProperties::builder().set_compression(Compression::ZSTD(level));
        for column in NO_STATISTICS {
            props = props
                .set_column_statistics_enabled(ColumnPath::from(*column), EnabledStatistics::None);
        }
        if table.name() == schema::EVENTS {
            for column in UNSORTED_NO_STATISTICS {
                props = props.set_column_statistics_enabled(
                    ColumnPath::from(*column),
                    EnabledStatistics::None,
                );
            }
        }
        for column in DELTA_BY_DEFAULT {
            props = props
                .set_column_dictionary_enabled(ColumnPath::from(*column), false)
                .set_column_encoding(ColumnPath::from(*column), Encoding::DELTA_BINARY_PACKED);
        }
        let props = props
            .set_max_row_group_row_count(Some(config.row_group_rows))
            .set_max_row_group_bytes(Some(MAX_ROW_GROUP_BYTES))
            .set_created_by(format!("rampart {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                "rampart.table".to_string(),
                table.name().to_string(),
            )]))
            .build();
        Ok(Self {
            table,
            location,
            props,
            max_file_rows: config.max_file_rows,
            max_file_bytes: config.max_file_bytes.as_u64(),
            roll_interval_micros: i64::try_from(config.roll_interval.as_micros())
                .unwrap_or(i64::MAX),
            max_open_files: config.max_open_files,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            clock,
            open: BTreeMap::new(),
            written: Vec::new(),
        }
        .with_plain_columns(PLAIN_BY_DEFAULT))
    }

    /// Cuts the data pages of every column at `rows` rows at most (about; pages end on
    /// multiples of 1024 rows, the writer's batch). For files whose rows are sorted, such
    /// as compaction's: each page's min/max in the page index then covers a narrow range
    /// of the sort key, and a reader skips the pages outside its filter instead of
    /// decoding them (Parquet's default, 20,000 rows, leaves a few pages per hour).
    pub fn with_page_rows(mut self, rows: usize) -> Self {
        self.props = self
            .props
            .into_builder()
            .set_data_page_row_count_limit(rows.max(1))
            .build();
        self
    }

    /// Writes `columns` without dictionary encoding (plain, then compressed). For columns
    /// whose values are nearly all distinct within a row group (event times, messages,
    /// addresses): their dictionary is about as large as the column, and a reader must
    /// fetch and decode all of it even to read one page of rows.
    pub fn with_plain_columns(mut self, columns: &[&str]) -> Self {
        let mut builder = self.props.into_builder();
        for column in columns {
            builder = builder.set_column_dictionary_enabled(ColumnPath::from(*column), false);
        }
        self.props = builder.build();
        self
    }

    /// Writes min/max statistics (per page, and so per row group) for `columns`; for files
    /// whose rows are sorted so that these columns narrow within a file, such as
    /// compaction's (see [`UNSORTED_NO_STATISTICS`]).
    pub fn with_statistics(mut self, columns: &[&str]) -> Self {
        let mut builder = self.props.into_builder();
        for column in columns {
            builder = builder
                .set_column_statistics_enabled(ColumnPath::from(*column), EnabledStatistics::Page);
        }
        self.props = builder.build();
        self
    }

    /// The table this writer writes.
    pub fn table(&self) -> &TableDef {
        &self.table
    }

    /// Number of files currently open.
    pub fn open_files(&self) -> usize {
        self.open.len()
    }

    /// Appends a batch; its rows go to the files of their hours.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let table = self.table.name();
        let parts = split_by_hour(batch, self.table.time_column_index())
            .map_err(|source| Error::Batch { table, source })?;
        for (hour, part) in parts {
            self.write_hour(hour, &part).await?;
        }
        Ok(())
    }

    async fn write_hour(&mut self, hour: i64, batch: &RecordBatch) -> Result<()> {
        if !self.open.contains_key(&hour) {
            while self.open.len() >= self.max_open_files {
                let oldest = self
                    .open
                    .iter()
                    .min_by_key(|(_, f)| f.opened_at)
                    .map(|(h, _)| *h);
                match oldest {
                    Some(h) => self.close_hour(h).await?,
                    None => break,
                }
            }
            let file = self.create(hour)?;
            self.open.insert(hour, file);
        }
        let Some(file) = self.open.get_mut(&hour) else {
            return Ok(());
        };
        let written = match file.writer.write(batch) {
            Ok(()) => send(&mut file.writer, &mut file.object).await,
            Err(e) => Err(e),
        };
        written.map_err(|source| Error::Write {
            path: file.relative.clone(),
            source,
        })?;
        file.rows += batch.num_rows() as u64;
        let size = file.writer.bytes_taken() + file.writer.in_progress_bytes() as u64;
        if file.rows >= self.max_file_rows || size >= self.max_file_bytes {
            self.close_hour(hour).await?;
        }
        Ok(())
    }

    fn create(&self, hour: i64) -> Result<OpenFile> {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let relative = format!(
            "{}/{}",
            partition_dir(self.table.name(), hour),
            data_file_name(&id)
        );
        let path: Path = self.location.child(&relative);
        let object = HashingWriter {
            inner: BufWriter::new(Arc::clone(&self.location.store), path),
            hasher: Sha256::new(),
        };
        let writer = ParallelWriter::try_new(self.table.schema(), self.props.clone(), self.threads)
            .map_err(|source| Error::Write {
                path: relative.clone(),
                source,
            })?;
        Ok(OpenFile {
            writer,
            object,
            relative,
            rows: 0,
            opened_at: self.clock.now_micros(),
        })
    }

    #[instrument(skip(self), fields(table = self.table.name()))]
    async fn close_hour(&mut self, hour: i64) -> Result<()> {
        let Some(file) = self.open.remove(&hour) else {
            return Ok(());
        };
        let written = close_file(self.table.name(), hour, file).await?;
        self.written.push(written);
        Ok(())
    }

    /// Closes every file that has been open for `sink.roll-interval` or longer.
    pub async fn roll_due(&mut self) -> Result<()> {
        let now = self.clock.now_micros();
        let due: Vec<i64> = self
            .open
            .iter()
            .filter(|(_, f)| now.saturating_sub(f.opened_at) >= self.roll_interval_micros)
            .map(|(h, _)| *h)
            .collect();
        for hour in due {
            self.close_hour(hour).await?;
        }
        Ok(())
    }

    /// Closes every open file, all at once (see [`close_file`]); the files completed are
    /// taken in hour order.
    pub async fn close_all(&mut self) -> Result<()> {
        let table = self.table.name();
        let open = std::mem::take(&mut self.open);
        let written =
            futures::future::try_join_all(open.into_iter().map(|(h, f)| close_file(table, h, f)))
                .await?;
        self.written.extend(written);
        Ok(())
    }

    /// The files completed since the last call.
    pub fn take_written(&mut self) -> Vec<WrittenFile> {
        std::mem::take(&mut self.written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use arrow::array::{ArrayRef, BinaryArray, StringArray, TimestampMicrosecondArray};
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use rampart_core::layout::MICROS_PER_HOUR;
    use rampart_core::{ManualClock, schema};

    /// The same suite runs against every store: the local disk, memory, and the real
    /// S3-compatible server that scripts/test.sh starts (required when it says so).
    fn stores() -> Vec<(&'static str, Location, Option<tempfile::TempDir>)> {
        let dir = tempfile::tempdir().unwrap();
        let local =
            rampart_core::store::open(dir.path().to_str().unwrap(), Vec::<(String, String)>::new())
                .unwrap();
        let memory = Location {
            url: url::Url::parse("memory:///archive/").unwrap(),
            store: Arc::new(InMemory::new()),
            prefix: Path::from("archive"),
        };
        let mut stores = vec![("local", local, Some(dir)), ("memory", memory, None)];
        match std::env::var("RAMPART_TEST_S3_ENDPOINT") {
            Ok(endpoint) => {
                let bucket = std::env::var("RAMPART_TEST_S3_BUCKET").unwrap();
                // A fresh prefix per call: tests share the bucket. The second store sends
                // `x-amz-checksum-sha256` with every upload, as Object Lock buckets require.
                for (name, checksum) in [("s3", None), ("s3+checksum", Some("sha256"))] {
                    let prefix = format!("sink-{}", uuid::Uuid::now_v7().simple());
                    let mut options = vec![
                        ("aws_endpoint", endpoint.clone()),
                        ("aws_allow_http", "true".into()),
                        ("aws_virtual_hosted_style_request", "false".into()),
                        (
                            "aws_access_key_id",
                            std::env::var("AWS_ACCESS_KEY_ID").unwrap(),
                        ),
                        (
                            "aws_secret_access_key",
                            std::env::var("AWS_SECRET_ACCESS_KEY").unwrap(),
                        ),
                        ("aws_region", "us-east-1".into()),
                    ];
                    if let Some(algorithm) = checksum {
                        options.push(("aws_checksum_algorithm", algorithm.into()));
                    }
                    let s3 = rampart_core::store::open(&format!("s3://{bucket}/{prefix}"), options)
                        .unwrap();
                    stores.push((name, s3, None));
                }
            }
            Err(_) => assert!(
                std::env::var_os("RAMPART_REQUIRE_SERVICES").is_none(),
                "RAMPART_REQUIRE_SERVICES is set but no S3 server is: run scripts/test.sh"
            ),
        }
        stores
    }

    /// A `dead_letters` batch with `raw` of `raw_len` pseudo-random bytes per row.
    fn batch(ts: &[i64], raw_len: usize) -> RecordBatch {
        let schema = schema::dead_letters_schema();
        let n = ts.len();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let raws: Vec<Vec<u8>> = (0..n)
            .map(|_| {
                (0..raw_len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect()
            })
            .collect();
        schema::batch_with(schema, n, |name| -> Option<ArrayRef> {
            Some(match name {
                "received_at" => {
                    Arc::new(TimestampMicrosecondArray::from(ts.to_vec()).with_timezone("UTC"))
                }
                "reason_code" => Arc::new(StringArray::from(vec!["not_json"; n])),
                "reason" => Arc::new(StringArray::from(vec!["test"; n])),
                "raw" => Arc::new(BinaryArray::from_iter_values(raws.iter())),
                _ => return None,
            })
        })
        .unwrap()
    }

    fn config(max_file_rows: u64) -> SinkConfig {
        SinkConfig {
            max_file_rows,
            row_group_rows: 1024,
            roll_interval: Duration::from_secs(60),
            ..SinkConfig::default()
        }
    }

    fn writer(loc: &Location, cfg: &SinkConfig, clock: Arc<ManualClock>) -> TableWriter {
        TableWriter::new(
            schema::table(schema::DEAD_LETTERS).unwrap(),
            loc.clone(),
            cfg,
            clock,
        )
        .unwrap()
    }

    async fn listed(loc: &Location) -> Vec<String> {
        let mut v: Vec<String> = loc
            .store
            .list(Some(&loc.prefix))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        v.sort();
        v
    }

    async fn reader(loc: &Location, relative: &str) -> ParquetRecordBatchReaderBuilder<Bytes> {
        let bytes = loc
            .store
            .get(&loc.child(relative))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap()
    }

    async fn rows_in(loc: &Location, relative: &str) -> usize {
        let reader = reader(loc, relative).await.build().unwrap();
        reader.map(|b| b.unwrap().num_rows()).sum()
    }

    #[tokio::test]
    async fn files_appear_only_when_complete_and_hold_every_row() {
        for (name, loc, _dir) in stores() {
            let clock = Arc::new(ManualClock::new(0));
            let mut w = writer(&loc, &config(1_000_000), clock);
            let h = MICROS_PER_HOUR;
            w.write(&batch(&[10, h + 1, 20, 2 * h + 5], 16))
                .await
                .unwrap();
            assert_eq!(w.open_files(), 3, "{name}");
            assert!(
                listed(&loc).await.is_empty(),
                "{name}: a file is visible before it is complete"
            );
            w.close_all().await.unwrap();
            let written = w.take_written();
            assert_eq!(written.len(), 3, "{name}");
            // Closed side by side, taken in hour order.
            assert_eq!(
                written.iter().map(|f| f.hour).collect::<Vec<_>>(),
                [0, 1, 2],
                "{name}"
            );
            let listed = listed(&loc).await;
            assert_eq!(listed.len(), 3, "{name}");
            let mut total = 0;
            for f in &written {
                assert!(
                    f.path.starts_with("dead_letters/date=1970-01-01/hour=0"),
                    "{name}: {}",
                    f.path
                );
                assert!(
                    listed.iter().any(|l| l.ends_with(&f.path)),
                    "{name}: {} not listed",
                    f.path
                );
                let n = rows_in(&loc, &f.path).await;
                assert_eq!(n as u64, f.rows, "{name}");
                let size = loc.store.head(&loc.child(&f.path)).await.unwrap().size;
                assert_eq!(size, f.bytes, "{name}: reported size");
                let stored = loc.store.get(&loc.child(&f.path)).await.unwrap();
                let stored = stored.bytes().await.unwrap();
                assert_eq!(
                    hex::encode(Sha256::digest(&stored)),
                    f.sha256,
                    "{name}: the hash taken while writing is the hash of the stored bytes"
                );
                total += n;
            }
            assert_eq!(total, 4, "{name}");
        }
    }

    /// The metadata of the file a writer on local disk writes for three dead letters.
    async fn one_file_of_three_rows() -> Arc<parquet::file::metadata::ParquetMetaData> {
        let dir = tempfile::tempdir().unwrap();
        let loc =
            rampart_core::store::open(dir.path().to_str().unwrap(), Vec::<(String, String)>::new())
                .unwrap();
        let mut w = writer(&loc, &config(1_000_000), Arc::new(ManualClock::new(0)));
        w.write(&batch(&[10, 20, 30], 16)).await.unwrap();
        w.close_all().await.unwrap();
        let file = &w.take_written()[0];
        Arc::clone(reader(&loc, &file.path).await.metadata())
    }

    /// The chunk of column `name` in the first row group of `meta`.
    fn column<'a>(
        meta: &'a parquet::file::metadata::ParquetMetaData,
        name: &str,
    ) -> &'a parquet::file::metadata::ColumnChunkMetaData {
        meta.row_group(0)
            .columns()
            .iter()
            .find(|c| c.column_path().string() == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    #[tokio::test]
    async fn free_text_columns_have_no_statistics_and_the_others_do() {
        let meta = one_file_of_three_rows().await;
        let min_max = |name: &str| {
            column(&meta, name)
                .statistics()
                .is_some_and(|s| s.min_bytes_opt().is_some())
        };
        assert!(min_max("received_at") && min_max("reason_code"));
        assert!(!min_max("raw") && !min_max("reason"));
    }

    /// The metadata of the events file that `writer` writes for three events.
    async fn one_events_file(
        writer: impl FnOnce(TableWriter) -> TableWriter,
    ) -> Arc<parquet::file::metadata::ParquetMetaData> {
        let dir = tempfile::tempdir().unwrap();
        let loc =
            rampart_core::store::open(dir.path().to_str().unwrap(), Vec::<(String, String)>::new())
                .unwrap();
        let table = schema::table(schema::EVENTS).unwrap();
        let batch = schema::batch_with(table.schema(), 3, |name| -> Option<ArrayRef> {
            Some(match name {
                "ts" | "ingested_at" => {
                    Arc::new(TimestampMicrosecondArray::from(vec![10, 20, 30]).with_timezone("UTC"))
                }
                "resource_id" => Arc::new(StringArray::from(vec!["vm-2", "vm-1", "vm-3"])),
                "resource_type" | "category" | "workload" | "user" => {
                    Arc::new(StringArray::from(vec!["b", "a", "c"]))
                }
                _ => return None,
            })
        })
        .unwrap();
        let config = config(1_000_000);
        let mut w = writer(
            TableWriter::new(table, loc.clone(), &config, Arc::new(ManualClock::new(0))).unwrap(),
        );
        w.write(&batch).await.unwrap();
        w.close_all().await.unwrap();
        let file = &w.take_written()[0];
        Arc::clone(reader(&loc, &file.path).await.metadata())
    }

    #[tokio::test]
    async fn unsorted_event_files_keep_min_max_for_time_only_unless_asked() {
        let min_max = |meta: &parquet::file::metadata::ParquetMetaData, name: &str| {
            column(meta, name)
                .statistics()
                .and_then(|s| Some((s.min_bytes_opt()?.to_vec(), s.max_bytes_opt()?.to_vec())))
        };
        let live = one_events_file(|w| w).await;
        assert!(min_max(&live, "ts").is_some());
        for name in [
            "resource_id",
            "resource_type",
            "category",
            "workload",
            "user",
        ] {
            assert_eq!(min_max(&live, name), None, "{name}");
        }
        let sorted = one_events_file(|w| w.with_statistics(UNSORTED_NO_STATISTICS)).await;
        assert_eq!(
            min_max(&sorted, "resource_id"),
            Some((b"vm-1".to_vec(), b"vm-3".to_vec()))
        );
        for name in ["resource_type", "category", "workload", "user"] {
            assert_eq!(
                min_max(&sorted, name),
                Some((b"a".to_vec(), b"c".to_vec())),
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn time_and_offset_columns_are_delta_encoded_without_a_dictionary() {
        let meta = one_file_of_three_rows().await;
        let chunk = |name: &str| column(&meta, name);
        for name in ["received_at", "kafka_offset"] {
            let c = chunk(name);
            assert!(
                c.encodings().any(|e| e == Encoding::DELTA_BINARY_PACKED),
                "{name}: {:?}",
                c.encodings().collect::<Vec<_>>()
            );
            assert!(
                c.dictionary_page_offset().is_none(),
                "{name} has a dictionary"
            );
        }
        assert!(
            chunk("reason_code").dictionary_page_offset().is_some(),
            "a repeating string column keeps its dictionary"
        );
    }

    #[tokio::test]
    async fn files_roll_at_the_row_limit() {
        for (name, loc, _dir) in stores() {
            let mut w = writer(&loc, &config(1000), Arc::new(ManualClock::new(0)));
            for _ in 0..5 {
                w.write(&batch(&[7; 500], 8)).await.unwrap();
            }
            w.close_all().await.unwrap();
            let rows: Vec<u64> = w.take_written().iter().map(|f| f.rows).collect();
            assert_eq!(rows, vec![1000, 1000, 500], "{name}");
        }
    }

    #[tokio::test]
    async fn files_roll_when_old_by_the_injected_clock() {
        for (name, loc, _dir) in stores() {
            let clock = Arc::new(ManualClock::new(0));
            let mut w = writer(&loc, &config(1_000_000), Arc::clone(&clock));
            w.write(&batch(&[1, 2], 8)).await.unwrap();
            clock.advance(59_999_999);
            w.roll_due().await.unwrap();
            assert_eq!(w.open_files(), 1, "{name}: rolled too early");
            clock.advance(1);
            w.roll_due().await.unwrap();
            assert_eq!(w.open_files(), 0, "{name}: not rolled at the interval");
            assert_eq!(listed(&loc).await.len(), 1, "{name}");
        }
    }

    #[tokio::test]
    async fn opening_past_the_limit_closes_the_oldest() {
        for (name, loc, _dir) in stores() {
            let clock = Arc::new(ManualClock::new(0));
            let cfg = SinkConfig {
                max_open_files: 2,
                ..config(1_000_000)
            };
            let mut w = writer(&loc, &cfg, Arc::clone(&clock));
            let h = MICROS_PER_HOUR;
            for hour in [3, 1, 2] {
                w.write(&batch(&[hour * h], 8)).await.unwrap();
                clock.advance(1);
            }
            assert_eq!(w.open_files(), 2, "{name}");
            let closed: Vec<i64> = w.take_written().iter().map(|f| f.hour).collect();
            assert_eq!(
                closed,
                vec![3],
                "{name}: the first-opened file closes first"
            );
        }
    }

    #[tokio::test]
    async fn a_multipart_file_stays_invisible_until_complete() {
        // Over the 10 MiB buffer of object_store's BufWriter: a multipart upload.
        for (name, loc, _dir) in stores() {
            let mut w = writer(&loc, &config(1_000_000), Arc::new(ManualClock::new(0)));
            for _ in 0..6 {
                w.write(&batch(&[5; 1024], 2048)).await.unwrap();
            }
            assert!(
                listed(&loc).await.is_empty(),
                "{name}: partial multipart upload visible"
            );
            w.close_all().await.unwrap();
            let f = &w.take_written()[0];
            assert!(
                f.bytes > 10 << 20,
                "{name}: {} bytes is not multipart",
                f.bytes
            );
            assert_eq!(rows_in(&loc, &f.path).await, 6 * 1024, "{name}");
            assert_eq!(listed(&loc).await.len(), 1, "{name}");
        }
    }
}
