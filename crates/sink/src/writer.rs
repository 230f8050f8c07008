//! One table's writer: an open Parquet file per hour, rolled by size, age and count.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use rampart_core::Clock;
use rampart_core::config::SinkConfig;
use rampart_core::layout::{data_file_name, partition_dir};
use rampart_core::schema::TableDef;
use rampart_core::store::Location;
use tracing::{debug, instrument};

use crate::partition::split_by_hour;
use crate::{Error, Result};

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
}

struct OpenFile {
    writer: AsyncArrowWriter<BufWriter>,
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
    clock: Arc<dyn Clock>,
    open: BTreeMap<i64, OpenFile>,
    written: Vec<WrittenFile>,
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
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
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
            clock,
            open: BTreeMap::new(),
            written: Vec::new(),
        })
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
        file.writer
            .write(batch)
            .await
            .map_err(|source| Error::Write {
                path: file.relative.clone(),
                source,
            })?;
        file.rows += batch.num_rows() as u64;
        let size = (file.writer.bytes_written() + file.writer.in_progress_size()) as u64;
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
        let object = BufWriter::new(Arc::clone(&self.location.store), path);
        let writer =
            AsyncArrowWriter::try_new(object, self.table.schema(), Some(self.props.clone()))
                .map_err(|source| Error::Write {
                    path: relative.clone(),
                    source,
                })?;
        Ok(OpenFile {
            writer,
            relative,
            rows: 0,
            opened_at: self.clock.now_micros(),
        })
    }

    #[instrument(skip(self), fields(table = self.table.name()))]
    async fn close_hour(&mut self, hour: i64) -> Result<()> {
        let Some(mut file) = self.open.remove(&hour) else {
            return Ok(());
        };
        file.writer.finish().await.map_err(|source| Error::Write {
            path: file.relative.clone(),
            source,
        })?;
        let bytes = file.writer.bytes_written() as u64;
        debug!(path = %file.relative, rows = file.rows, bytes, "archive file complete");
        self.written.push(WrittenFile {
            table: self.table.name(),
            path: file.relative,
            hour,
            rows: file.rows,
            bytes,
        });
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

    /// Closes every open file.
    pub async fn close_all(&mut self) -> Result<()> {
        let hours: Vec<i64> = self.open.keys().copied().collect();
        for hour in hours {
            self.close_hour(hour).await?;
        }
        Ok(())
    }

    /// The files completed since the last call.
    pub fn take_written(&mut self) -> Vec<WrittenFile> {
        std::mem::take(&mut self.written)
    }
}
