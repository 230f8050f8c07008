//! The access log: every `query`, `export` and `report` appends a record (time, user, statement,
//! rows returned, outcome) to the archive's `access_log` table, through the same commit
//! protocol as the data, so the chain covers it.
//!
//! A query whose record cannot be written does not show its results: an archive that
//! must account for every read fails closed. (Readers that open the Parquet directly,
//! such as DuckDB, are outside Rampart's reach; restrict them with the store's own
//! access controls and audit logs.)

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rampart_core::Clock;
use rampart_core::layout::{data_file_name, hour_bucket, partition_dir};
use rampart_core::ledger::{self, Action, Change, FileEntry, Ledger};
use rampart_core::schema::{self, ACCESS_LOG};
use rampart_core::store::Location;

use crate::{Error, Result};

/// What was done to the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    /// `rampart query`.
    Query,
    /// `rampart export`.
    Export,
    /// `rampart report`.
    Report,
}

impl AccessKind {
    fn as_str(self) -> &'static str {
        match self {
            AccessKind::Query => "query",
            AccessKind::Export => "export",
            AccessKind::Report => "report",
        }
    }
}

/// One access, as recorded.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    /// Query or export.
    pub kind: AccessKind,
    /// The statement, or the export's selection.
    pub statement: String,
    /// Rows returned (or exported).
    pub rows: u64,
    /// `ok`, or the error that stopped it.
    pub outcome: String,
}

fn encode(record: &AccessRecord, at: i64) -> Result<Vec<u8>> {
    let user = ledger::current_user();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMicrosecondArray::from(vec![at]).with_timezone("UTC")),
        Arc::new(StringArray::from(vec![record.kind.as_str()])),
        Arc::new(StringArray::from(vec![user])),
        Arc::new(StringArray::from(vec![record.statement.as_str()])),
        Arc::new(Int64Array::from(vec![
            i64::try_from(record.rows).unwrap_or(i64::MAX),
        ])),
        Arc::new(StringArray::from(vec![record.outcome.as_str()])),
        Arc::new(StringArray::from(vec![format!(
            "rampart {}",
            env!("CARGO_PKG_VERSION")
        )])),
    ];
    let batch = RecordBatch::try_new(schema::access_log_schema(), columns)
        .map_err(|source| Error::Output { source })?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut buf = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).map_err(|e| Error::Access {
            message: e.to_string(),
        })?;
    writer.write(&batch).map_err(|e| Error::Access {
        message: e.to_string(),
    })?;
    writer.close().map_err(|e| Error::Access {
        message: e.to_string(),
    })?;
    Ok(buf)
}

/// Appends `record` to the access log of the archive at `location` and commits it.
/// Returns the path of the file written.
pub async fn log_access(
    location: &Location,
    record: &AccessRecord,
    retention: Duration,
    clock: &dyn Clock,
) -> Result<String> {
    let at = clock.now_micros();
    let bytes = encode(record, at)?;
    let hour = hour_bucket(at);
    let id = uuid::Uuid::now_v7().simple().to_string();
    let path = format!(
        "{}/{}",
        partition_dir(ACCESS_LOG, hour),
        data_file_name(&id)
    );
    let entry = FileEntry::new(
        ACCESS_LOG,
        path.clone(),
        hour,
        1,
        bytes.len() as u64,
        ledger::sha256_hex(&bytes),
        retention,
    );
    location
        .create(&path, bytes)
        .await
        .map_err(|e| Error::Access {
            message: format!("cannot write {path}: {e}"),
        })?;
    let mut ledger = Ledger::load(location)
        .await
        .map_err(|source| Error::Ledger { source })?;
    ledger
        .commit(
            Change {
                add: vec![entry],
                note: Some(format!("access log: {}", record.kind.as_str())),
                ..Change::new(Action::Append)
            },
            clock,
        )
        .await
        .map_err(|source| Error::Ledger { source })?;
    Ok(path)
}
