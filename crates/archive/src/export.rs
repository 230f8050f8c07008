//! Export: a self-contained bundle of selected rows that an auditor verifies and reads
//! without Rampart.
//!
//! ```text
//! <out>/README.txt                       what the bundle is, how to verify and read it
//! <out>/manifest.json                    the selection, provenance and every data file
//! <out>/SHA256SUMS                       `sha256sum -c` input for every other file
//! <out>/data/<table>/part-NNNNN.parquet  the rows (zstd; a table without rows has one
//!                                        empty file, so that its schema is there)
//! ```
//!
//! **Selection.** Per table, the rows whose time column (the one that partitions it)
//! falls in `[from, to)`, and that satisfy the optional SQL predicate. The predicate is
//! planned against every selected table before anything is written: a table that lacks
//! a column it uses is refused if the user named the table, and skipped (and reported)
//! if it was only selected by default.
//!
//! **Provenance.** Only committed files are read: the ledger's live files of each table
//! whose partition hour overlaps the range. Each file is read whole, its SHA-256 and size
//! checked against the manifest that added it, and the selection evaluated on those same
//! bytes, so every exported row comes from bytes the archive's hash chain vouches for.
//! The manifests whose files contributed rows are listed with their SHA-256, along with
//! the archive's head; the chain up to the head is checked to link before the export
//! states it. Memory is bounded by the largest archive file (`sink.max-file-bytes`) and
//! one row group of output.
//!
//! **Destination.** A new or empty local directory written through [`OutTarget`]'s
//! confinement (no `..`, no symbolic links), or an object-store prefix. `SHA256SUMS` is
//! written last: a bundle without it is incomplete.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rampart_archive::Archive;
//! use rampart_archive::export::{self, ExportRequest, NoProgress, OutTarget};
//! let loc = rampart_core::store::open("./archive", Vec::<(String, String)>::new())?;
//! let archive = Archive::open(loc).await?;
//! let request = ExportRequest {
//!     predicate: Some("category = 'malware'".into()),
//!     ..ExportRequest::new(
//!         export::parse_time("--from", "2026-11-01")?,
//!         export::parse_time("--to", "2026-11-02")?,
//!     )
//! };
//! let out = OutTarget::parse("./bundle", Default::default())?;
//! let summary = export::export(&archive, &request, &out, &rampart_core::SystemClock, &NoProgress).await?;
//! println!("{} rows", summary.manifest.rows_total);
//! # Ok(()) }
//! ```

mod bundle;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::compute::filter_record_batch;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use chrono::{NaiveDate, SecondsFormat};
use datafusion::common::{Column, DFSchema, ScalarValue, SchemaError};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, lit};
use datafusion::physical_plan::PhysicalExpr;
use datafusion::prelude::SessionContext;
use object_store::ObjectStoreExt;
use parquet::arrow::AsyncArrowWriter;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use rampart_core::Clock;
use rampart_core::layout::MICROS_PER_HOUR;
use rampart_core::ledger::{
    LedgerError, LiveFile, State, parse_manifest, read_manifests, rfc3339, sha256_hex,
};
use rampart_core::schema::{self, TableDef};
use rampart_core::store::Location;
use serde::{Deserialize, Serialize};
use tracing::{debug, instrument};

pub use bundle::OutTarget;
use bundle::{Bundle, HashingSink};

use crate::Archive;

/// The `format` of the bundles this version writes.
pub const FORMAT: &str = "rampart-export/1";
/// The bundle's manifest, relative to its root.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The checksums, relative to the bundle's root.
pub const SUMS_FILE: &str = "SHA256SUMS";
/// The recipient's instructions, relative to the bundle's root.
pub const README_FILE: &str = "README.txt";
/// Rows per Parquet file of the bundle, unless told otherwise.
pub const DEFAULT_ROWS_PER_FILE: u64 = 1_000_000;

/// Rows per row group of the bundle's files: bounds the writer's memory.
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Compression of the bundle's files; the archive's default level.
const ZSTD_LEVEL: i32 = 3;
/// The recipient's README, with `{placeholders}`.
const README_TEMPLATE: &str = include_str!("export/bundle-readme.txt");

/// An error exporting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A time flag is neither RFC 3339 nor a date.
    #[error(
        "{flag} `{text}` is not a time; give RFC 3339 such as 2026-11-01T00:00:00Z, or a date such as 2026-11-01 (midnight UTC)"
    )]
    BadTime { flag: &'static str, text: String },

    /// The range is empty.
    #[error(
        "--from {from} is not before --to {to}; the range is [from, to): give a --to later than --from"
    )]
    EmptyRange { from: String, to: String },

    /// No table of that name.
    #[error("unknown table `{name}` in --tables; the archive's tables are {known}")]
    UnknownTable { name: String, known: String },

    /// `--tables` was given but names no table.
    #[error("--tables names no table; give one or more of {known}, separated by commas")]
    NoTables { known: String },

    /// A part file would hold no rows.
    #[error("--rows-per-file must be at least 1")]
    RowsPerFile,

    /// A table the user named lacks a column the predicate uses.
    #[error(
        "--where uses column `{column}`, which table `{table}` does not have (its columns: {columns}); change the predicate or leave `{table}` out of --tables"
    )]
    MissingColumn {
        table: String,
        column: String,
        columns: String,
    },

    /// Every selected table lacks a column the predicate uses.
    #[error(
        "--where fits none of the selected tables: {missing}; check the column names (`rampart query \"SHOW COLUMNS FROM events\"` lists a table's), or choose tables with --tables"
    )]
    NoTableFits { missing: String },

    /// The predicate does not parse or cannot be planned on a table.
    #[error("--where `{predicate}` cannot be evaluated on table `{table}`: {source}")]
    Predicate {
        table: String,
        predicate: String,
        #[source]
        source: DataFusionError,
    },

    /// The predicate is not a condition.
    #[error(
        "--where `{predicate}` is a value of type {data_type} on table `{table}`, not a condition; give a predicate such as category = 'malware'"
    )]
    NotBoolean {
        table: String,
        predicate: String,
        data_type: DataType,
    },

    /// The destination cannot be used.
    #[error("cannot write the bundle to {out}: {message}")]
    Out { out: String, message: String },

    /// The destination holds something already.
    #[error(
        "refused: {out} is not empty (it holds {entries}); give a new or empty directory, so that the bundle holds only what the export wrote"
    )]
    OutNotEmpty { out: String, entries: String },

    /// A path would leave the bundle or go through a symbolic link.
    #[error("refused to write {path}: {message}")]
    UnsafePath { path: String, message: String },

    /// A local file or directory could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// The destination store failed.
    #[error("bundle store error at {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: object_store::Error,
    },

    /// The archive's manifests cannot be read.
    #[error("cannot read the archive's manifests: {source}")]
    Ledger {
        #[source]
        source: LedgerError,
    },

    /// The archive's hash chain does not hold up to its head.
    #[error(
        "archive manifest {sequence} {message}; run `rampart verify`. The export states where its rows come from and refuses a chain it cannot follow"
    )]
    Chain { sequence: u64, message: String },

    /// A source file disappeared after the archive was opened.
    #[error(
        "archive file {path} was removed after the export started (by compaction or retention); run the export again"
    )]
    SourceGone { path: String },

    /// A source file could not be read.
    #[error("cannot read archive file {path}: {source}")]
    SourceStore {
        path: String,
        #[source]
        source: object_store::Error,
    },

    /// A source file's bytes are not those its manifest recorded.
    #[error(
        "archive file {path} does not match manifest {sequence}: it records {expected_bytes} bytes with SHA-256 {expected}, the file has {actual_bytes} bytes with SHA-256 {actual}; the archive may have been altered: run `rampart verify`"
    )]
    SourceMismatch {
        path: String,
        sequence: u64,
        expected: String,
        expected_bytes: u64,
        actual: String,
        actual_bytes: u64,
    },

    /// A source file is not Parquet of its table.
    #[error("cannot read archive file {path} as Parquet of table `{table}`: {message}")]
    SourceDecode {
        path: String,
        table: String,
        message: String,
    },

    /// Evaluating the selection on a source file failed.
    #[error("cannot evaluate the selection on archive file {path}: {source}")]
    Select {
        path: String,
        #[source]
        source: DataFusionError,
    },

    /// A bundle data file could not be written.
    #[error("cannot write bundle file {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: parquet::errors::ParquetError,
    },

    /// The bundle's manifest could not be encoded.
    #[error("cannot encode {path}: {source}")]
    Encode {
        path: String,
        #[source]
        source: serde_json::Error,
    },

    /// The export failed after the bundle was started.
    #[error(
        "{source}. The bundle at {out} is incomplete (it has no {SUMS_FILE}): delete it before exporting again"
    )]
    Incomplete {
        out: String,
        #[source]
        source: Box<ExportError>,
    },
}

/// Result with [`ExportError`] as the default error type.
pub type Result<T, E = ExportError> = std::result::Result<T, E>;

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    /// Start of the range, included (microseconds since the epoch, UTC).
    pub from_micros: i64,
    /// End of the range, excluded.
    pub to_micros: i64,
    /// A SQL predicate over each selected table's columns.
    pub predicate: Option<String>,
    /// Tables to export, as named by the user; `None` for [`default_tables`].
    pub tables: Option<Vec<String>>,
    /// Rows per Parquet file of the bundle.
    pub rows_per_file: u64,
}

impl ExportRequest {
    /// Every row of the default tables in `[from_micros, to_micros)`.
    pub fn new(from_micros: i64, to_micros: i64) -> Self {
        Self {
            from_micros,
            to_micros,
            predicate: None,
            tables: None,
            rows_per_file: DEFAULT_ROWS_PER_FILE,
        }
    }

    /// The request as the flags that ask for it, for logs and the access log.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "export --from {} --to {}",
            rfc3339(self.from_micros),
            rfc3339(self.to_micros)
        );
        if let Some(p) = &self.predicate {
            s.push_str(&format!(" --where {p:?}"));
        }
        if let Some(t) = &self.tables {
            s.push_str(&format!(" --tables {}", t.join(",")));
        }
        s
    }
}

/// Reads a time flag: RFC 3339 (`2026-11-01T00:00:00Z`) or a date (`2026-11-01`, which
/// is midnight UTC). Returns microseconds since the epoch.
pub fn parse_time(flag: &'static str, text: &str) -> Result<i64> {
    let trimmed = text.trim();
    if let Some(micros) = rampart_core::ledger::parse_rfc3339(trimmed) {
        return Ok(micros);
    }
    NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
        .ok_or_else(|| ExportError::BadTime {
            flag,
            text: text.to_string(),
        })
}

/// The tables exported when none are named: all but `access_log`, which records who
/// read the archive and is exported only when asked for.
pub fn default_tables() -> Vec<&'static str> {
    schema::tables()
        .iter()
        .map(TableDef::name)
        .filter(|n| *n != schema::ACCESS_LOG)
        .collect()
}

/// Reports how far an export is; the CLI draws a progress bar with it.
pub trait Progress: Send + Sync {
    /// The export will read `files` archive files of `bytes` bytes in all.
    fn start(&self, files: u64, bytes: u64) {
        let _ = (files, bytes);
    }
    /// One archive file was read and its rows selected.
    fn file_done(&self, path: &str, bytes: u64) {
        let _ = (path, bytes);
    }
    /// Every archive file was read; the bundle's last files are being written.
    fn finish(&self) {}
}

/// No progress report.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// `manifest.json` of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleManifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// When the export ran (RFC 3339 UTC).
    pub exported_at: String,
    /// `rampart <version>`.
    pub tool: String,
    /// The user the export ran as, when known.
    pub user: Option<String>,
    /// The selection.
    pub query: BundleQuery,
    /// The archive and its head when the export ran.
    pub archive: BundleArchive,
    /// The archive manifests that added the files the rows were read from, by sequence.
    pub source_manifests: Vec<SourceManifest>,
    /// The data files of the bundle, by path.
    pub files: Vec<BundleFile>,
    /// Rows in all data files.
    pub rows_total: u64,
}

/// The selection of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleQuery {
    /// Start of the range, included (RFC 3339 UTC).
    pub from: String,
    /// End of the range, excluded (RFC 3339 UTC).
    pub to: String,
    /// The SQL predicate, if any.
    #[serde(rename = "where")]
    pub predicate: Option<String>,
    /// The tables in the bundle (a default table the predicate does not apply to is not
    /// one of them).
    pub tables: Vec<String>,
}

/// The archive an export read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleArchive {
    /// Its URL, without credentials.
    pub url: String,
    /// Its last manifest's number; `None` for an empty archive.
    pub head_sequence: Option<u64>,
    /// Its last manifest's SHA-256.
    pub head_sha256: Option<String>,
}

/// An archive manifest and the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceManifest {
    /// Its number.
    pub sequence: u64,
    /// SHA-256 of its stored bytes.
    pub sha256: String,
}

/// A data file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFile {
    /// `data/<table>/part-NNNNN.parquet`.
    pub path: String,
    /// Its table.
    pub table: String,
    /// Rows in it.
    pub rows: u64,
    /// Its size.
    pub bytes: u64,
    /// SHA-256 of its bytes.
    pub sha256: String,
}

/// A default table left out because the predicate uses a column it lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedTable {
    /// The table.
    pub table: String,
    /// The first column of the predicate it lacks.
    pub column: String,
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// The bundle: an absolute directory or a URL.
    pub out: String,
    /// Whether the bundle is on the local disk.
    pub local: bool,
    /// The request, as its flags (see [`ExportRequest::describe`]).
    pub statement: String,
    /// The bundle's manifest as written.
    pub manifest: BundleManifest,
    /// Default tables left out.
    pub skipped: Vec<SkippedTable>,
    /// Archive files read.
    pub source_files: u64,
    /// Files in the bundle, README, manifest and checksums included.
    pub bundle_files: u64,
    /// Bytes of all the bundle's files.
    pub bundle_bytes: u64,
    /// SHA-256 of `SHA256SUMS`: the one value that fixes the whole bundle.
    pub sums_sha256: String,
}

impl ExportSummary {
    /// Per table of the bundle: (table, rows, data files), in the bundle's table order.
    pub fn rows_by_table(&self) -> Vec<(String, u64, u64)> {
        self.manifest
            .query
            .tables
            .iter()
            .map(|t| {
                let files = self.manifest.files.iter().filter(|f| &f.table == t);
                let (rows, count) = files.fold((0, 0), |(r, n), f| (r + f.rows, n + 1));
                (t.clone(), rows, count)
            })
            .collect()
    }
}

/// One table to export: its filter and the archive files to read.
struct Selection {
    table: TableDef,
    filter: Arc<dyn PhysicalExpr>,
    sources: Vec<LiveFile>,
}

/// Exports `request` from `archive` into a new bundle at `out`.
///
/// Everything the user gave is checked before the destination is touched: the range,
/// the tables, the predicate on every table. The archive is read as
/// [`Archive::ledger`] saw it when opened.
#[instrument(skip_all, fields(rows))]
pub async fn export(
    archive: &Archive,
    request: &ExportRequest,
    out: &OutTarget,
    clock: &dyn Clock,
    progress: &dyn Progress,
) -> Result<ExportSummary> {
    if request.from_micros >= request.to_micros {
        return Err(ExportError::EmptyRange {
            from: rfc3339(request.from_micros),
            to: rfc3339(request.to_micros),
        });
    }
    if request.rows_per_file == 0 {
        return Err(ExportError::RowsPerFile);
    }
    let (tables, named) = resolve_tables(request.tables.as_deref())?;
    let ctx = SessionContext::new();
    let mut selections = Vec::new();
    let mut skipped = Vec::new();
    for table in tables {
        match table_filter(&ctx, &table, request)? {
            Ok(filter) => selections.push(Selection {
                sources: sources(archive.ledger().state(), &table, request),
                table,
                filter,
            }),
            Err(column) if named => {
                return Err(ExportError::MissingColumn {
                    table: table.name().to_string(),
                    columns: column_names(&table),
                    column,
                });
            }
            Err(column) => skipped.push(SkippedTable {
                table: table.name().to_string(),
                column,
            }),
        }
    }
    if selections.is_empty() {
        let missing: Vec<String> = skipped
            .iter()
            .map(|s| format!("{} has no column `{}`", s.table, s.column))
            .collect();
        return Err(ExportError::NoTableFits {
            missing: missing.join(", "),
        });
    }

    let location = archive.location();
    let head = archive.ledger().state().head.clone();
    let manifests = manifest_hashes(location, head.as_ref()).await?;

    let bundle = Bundle::create(out).await?;
    let writing = Writing {
        location,
        request,
        head,
        manifests: &manifests,
        skipped: &skipped,
    };
    let summary = writing
        .write(&bundle, selections, clock, progress)
        .await
        .map_err(|e| ExportError::Incomplete {
            out: bundle.display(),
            source: Box::new(e),
        })?;
    tracing::Span::current().record("rows", summary.manifest.rows_total);
    Ok(summary)
}

/// The tables to export, in the archive's order, and whether the user named them.
fn resolve_tables(named: Option<&[String]>) -> Result<(Vec<TableDef>, bool)> {
    let all = schema::tables();
    let known = || {
        all.iter()
            .map(TableDef::name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(named) = named else {
        let defaults = default_tables();
        let tables = all
            .iter()
            .filter(|t| defaults.contains(&t.name()))
            .cloned()
            .collect();
        return Ok((tables, false));
    };
    let mut wanted = BTreeSet::new();
    for name in named.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if !all.iter().any(|t| t.name() == name) {
            return Err(ExportError::UnknownTable {
                name: name.to_string(),
                known: known(),
            });
        }
        wanted.insert(name);
    }
    if wanted.is_empty() {
        return Err(ExportError::NoTables { known: known() });
    }
    let tables = all
        .iter()
        .filter(|t| wanted.contains(t.name()))
        .cloned()
        .collect();
    Ok((tables, true))
}

fn column_names(table: &TableDef) -> String {
    table
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The selection of `table` as one boolean expression over its rows: the time range and
/// the predicate. `Ok(Err(column))` when the predicate uses a column the table lacks.
fn table_filter(
    ctx: &SessionContext,
    table: &TableDef,
    request: &ExportRequest,
) -> Result<Result<Arc<dyn PhysicalExpr>, String>> {
    let arrow_schema = table.schema();
    let plan_err = |source| ExportError::Predicate {
        table: table.name().to_string(),
        predicate: request.predicate.clone().unwrap_or_default(),
        source,
    };
    let df_schema = DFSchema::try_from(arrow_schema.as_ref().clone()).map_err(plan_err)?;
    let time = Expr::Column(Column::new_unqualified(table.time_column()));
    let at = |micros| {
        lit(ScalarValue::TimestampMicrosecond(
            Some(micros),
            Some("UTC".into()),
        ))
    };
    let mut selection = time
        .clone()
        .gt_eq(at(request.from_micros))
        .and(time.lt(at(request.to_micros)));
    if let Some(predicate) = &request.predicate {
        let parsed = match ctx.parse_sql_expr(predicate, &df_schema) {
            Ok(expr) => expr,
            Err(e) => {
                return match missing_field(&e) {
                    Some(column) => Ok(Err(column)),
                    None => Err(plan_err(e)),
                };
            }
        };
        let mut used: Vec<&Column> = parsed.column_refs().into_iter().collect();
        used.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(c) = used
            .iter()
            .find(|c| df_schema.field_with_unqualified_name(&c.name).is_err())
        {
            return Ok(Err(c.name.clone()));
        }
        // Planned alone first, so that a non-boolean predicate is named as such.
        let alone = ctx
            .create_physical_expr(parsed.clone(), &df_schema)
            .map_err(plan_err)?;
        let data_type = alone.data_type(&arrow_schema).map_err(plan_err)?;
        if data_type != DataType::Boolean && data_type != DataType::Null {
            return Err(ExportError::NotBoolean {
                table: table.name().to_string(),
                predicate: predicate.clone(),
                data_type,
            });
        }
        selection = selection.and(parsed);
    }
    let filter = ctx
        .create_physical_expr(selection, &df_schema)
        .map_err(plan_err)?;
    Ok(Ok(filter))
}

/// The column a planning error says is missing, if that is what it says.
fn missing_field(e: &DataFusionError) -> Option<String> {
    match e.find_root() {
        DataFusionError::SchemaError(inner, _) => match inner.as_ref() {
            SchemaError::FieldNotFound { field, .. } => Some(field.name.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// The live files of `table` whose partition hour overlaps the range, by hour then path.
fn sources(state: &State, table: &TableDef, request: &ExportRequest) -> Vec<LiveFile> {
    let mut files: Vec<(i64, LiveFile)> = state
        .files_of(table.name())
        .filter_map(|f| {
            // A partition that cannot be read as one is read anyway: rows are filtered.
            let start = partition_start(&f.entry.date, f.entry.hour);
            let overlaps = start.is_none_or(|s| {
                s < request.to_micros && s.saturating_add(MICROS_PER_HOUR) > request.from_micros
            });
            overlaps.then(|| (start.unwrap_or(i64::MIN), f.clone()))
        })
        .collect();
    files.sort_by(|a, b| (a.0, &a.1.entry.path).cmp(&(b.0, &b.1.entry.path)));
    files.into_iter().map(|(_, f)| f).collect()
}

/// Start of the partition `date`/`hour` in microseconds since the epoch.
fn partition_start(date: &str, hour: u8) -> Option<i64> {
    NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()?
        .and_hms_opt(u32::from(hour), 0, 0)
        .map(|t| t.and_utc().timestamp_micros())
}

/// The SHA-256 of every manifest up to `head`, after checking that they form one chain
/// ending at it.
async fn manifest_hashes(
    location: &Location,
    head: Option<&(u64, String)>,
) -> Result<BTreeMap<u64, String>> {
    let mut hashes = BTreeMap::new();
    let Some((head_seq, head_sha)) = head else {
        return Ok(hashes);
    };
    let stored = read_manifests(location, None)
        .await
        .map_err(|source| ExportError::Ledger { source })?;
    let mut previous: Option<String> = None;
    for (seq, path, bytes) in stored {
        let Some(seq) = seq else { continue };
        if seq > *head_seq {
            break;
        }
        let expected = hashes.len() as u64 + 1;
        if seq != expected {
            return Err(ExportError::Chain {
                sequence: expected,
                message: "is missing".into(),
            });
        }
        let committed =
            parse_manifest(&path, &bytes).map_err(|source| ExportError::Ledger { source })?;
        if committed.manifest.previous_sha256 != previous {
            return Err(ExportError::Chain {
                sequence: seq,
                message: "does not link to the manifest before it (its previous_sha256 is not that manifest's SHA-256)".into(),
            });
        }
        previous = Some(committed.sha256.clone());
        hashes.insert(seq, committed.sha256);
    }
    if hashes.get(head_seq) != Some(head_sha) {
        return Err(ExportError::Chain {
            sequence: *head_seq,
            message: "changed or disappeared after the archive was opened".into(),
        });
    }
    Ok(hashes)
}

/// What the writing half of an export needs.
struct Writing<'a> {
    location: &'a Location,
    request: &'a ExportRequest,
    head: Option<(u64, String)>,
    manifests: &'a BTreeMap<u64, String>,
    skipped: &'a [SkippedTable],
}

impl Writing<'_> {
    async fn write(
        &self,
        bundle: &Bundle,
        selections: Vec<Selection>,
        clock: &dyn Clock,
        progress: &dyn Progress,
    ) -> Result<ExportSummary> {
        let props = writer_properties();
        let source_files: u64 = selections.iter().map(|s| s.sources.len() as u64).sum();
        let source_bytes = selections
            .iter()
            .flat_map(|s| &s.sources)
            .map(|f| f.entry.bytes)
            .sum();
        progress.start(source_files, source_bytes);
        let mut contributors = BTreeSet::new();
        let mut files = Vec::new();
        let mut tables = Vec::new();
        for selection in &selections {
            let mut output = TableOutput::new(
                selection.table.clone(),
                props.clone(),
                self.request.rows_per_file,
            );
            for live in &selection.sources {
                let bytes = read_source(self.location, live).await?;
                let rows = select(bytes, selection, live, &mut output, bundle).await?;
                if rows > 0 {
                    contributors.insert(live.added_by);
                }
                debug!(path = %live.entry.path, rows, "archive file exported");
                progress.file_done(&live.entry.path, live.entry.bytes);
            }
            files.extend(output.finish(bundle).await?);
            tables.push(selection.table.name().to_string());
        }
        progress.finish();

        let mut source_manifests = Vec::with_capacity(contributors.len());
        for sequence in contributors {
            let sha256 =
                self.manifests
                    .get(&sequence)
                    .cloned()
                    .ok_or_else(|| ExportError::Chain {
                        sequence,
                        message: "added an exported file but is not in the chain".into(),
                    })?;
            source_manifests.push(SourceManifest { sequence, sha256 });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let writer = rampart_core::ledger::Writer::this_process();
        let manifest = BundleManifest {
            format: FORMAT.to_string(),
            exported_at: chrono::DateTime::from_timestamp_micros(clock.now_micros())
                .unwrap_or_default()
                .to_rfc3339_opts(SecondsFormat::Micros, true),
            tool: writer.tool,
            user: writer.user,
            query: BundleQuery {
                from: rfc3339(self.request.from_micros),
                to: rfc3339(self.request.to_micros),
                predicate: self.request.predicate.clone(),
                tables,
            },
            archive: BundleArchive {
                url: public_url(self.location),
                head_sequence: self.head.as_ref().map(|(s, _)| *s),
                head_sha256: self.head.as_ref().map(|(_, h)| h.clone()),
            },
            source_manifests,
            rows_total: files.iter().map(|f| f.rows).sum(),
            files,
        };

        let readme = render_readme(&manifest, self.skipped);
        let mut json =
            serde_json::to_vec_pretty(&manifest).map_err(|source| ExportError::Encode {
                path: MANIFEST_FILE.into(),
                source,
            })?;
        json.push(b'\n');
        let mut sums: Vec<(String, String, u64)> = manifest
            .files
            .iter()
            .map(|f| (f.path.clone(), f.sha256.clone(), f.bytes))
            .collect();
        for (name, bytes) in [(README_FILE, readme.into_bytes()), (MANIFEST_FILE, json)] {
            let size = bytes.len() as u64;
            let sha256 = bundle.put(name, bytes).await?;
            sums.push((name.to_string(), sha256, size));
        }
        sums.sort();
        let text: String = sums
            .iter()
            .map(|(path, sha256, _)| format!("{sha256}  {path}\n"))
            .collect();
        let sums_size = text.len() as u64;
        let sums_sha256 = bundle.put(SUMS_FILE, text.into_bytes()).await?;
        Ok(ExportSummary {
            out: bundle.display(),
            local: bundle.is_local(),
            statement: self.request.describe(),
            skipped: self.skipped.to_vec(),
            source_files,
            bundle_files: sums.len() as u64 + 1,
            bundle_bytes: sums.iter().map(|(_, _, b)| b).sum::<u64>() + sums_size,
            sums_sha256,
            manifest,
        })
    }
}

fn writer_properties() -> WriterProperties {
    let tool = format!("rampart {}", env!("CARGO_PKG_VERSION"));
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default(),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(tool)
        .build()
}

/// The archive's URL without user name or password.
fn public_url(location: &Location) -> String {
    let mut url = location.url.clone();
    // Fails only for URLs that cannot carry credentials anyway.
    let _ = url.set_password(None);
    let _ = url.set_username("");
    url.to_string()
}

/// The bytes of an archive file, checked against the manifest that added it.
async fn read_source(location: &Location, live: &LiveFile) -> Result<Bytes> {
    let path = &live.entry.path;
    let store_err = |source| match source {
        object_store::Error::NotFound { .. } => ExportError::SourceGone { path: path.clone() },
        source => ExportError::SourceStore {
            path: path.clone(),
            source,
        },
    };
    let bytes = location
        .store
        .get(&location.child(path))
        .await
        .map_err(store_err)?
        .bytes()
        .await
        .map_err(store_err)?;
    let actual = sha256_hex(&bytes);
    if actual != live.entry.sha256 || bytes.len() as u64 != live.entry.bytes {
        return Err(ExportError::SourceMismatch {
            path: path.clone(),
            sequence: live.added_by,
            expected: live.entry.sha256.clone(),
            expected_bytes: live.entry.bytes,
            actual,
            actual_bytes: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// Decodes `bytes` (an archive file of the selection's table), keeps the selected rows
/// and appends them to `output`. Returns the number of rows kept.
async fn select(
    bytes: Bytes,
    selection: &Selection,
    live: &LiveFile,
    output: &mut TableOutput,
    bundle: &Bundle,
) -> Result<u64> {
    let path = &live.entry.path;
    let decode_err = |message: String| ExportError::SourceDecode {
        path: path.clone(),
        table: selection.table.name().to_string(),
        message,
    };
    let options = ArrowReaderOptions::new().with_schema(selection.table.schema());
    let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(bytes, options)
        .and_then(|b| b.build())
        .map_err(|e| decode_err(e.to_string()))?;
    let mut kept = 0;
    for batch in reader {
        let batch = batch.map_err(|e| decode_err(e.to_string()))?;
        let selected = filter(&selection.filter, &batch).map_err(|source| ExportError::Select {
            path: path.clone(),
            source,
        })?;
        if selected.num_rows() > 0 {
            kept += selected.num_rows() as u64;
            output.write(bundle, &selected).await?;
        }
    }
    Ok(kept)
}

/// The rows of `batch` for which `predicate` is true (not false, not null).
fn filter(
    predicate: &Arc<dyn PhysicalExpr>,
    batch: &RecordBatch,
) -> datafusion::error::Result<RecordBatch> {
    let mask = predicate.evaluate(batch)?.into_array(batch.num_rows())?;
    let mask = mask.as_boolean_opt().ok_or_else(|| {
        DataFusionError::Internal(format!(
            "the selection evaluated to {}, not booleans",
            mask.data_type()
        ))
    })?;
    Ok(filter_record_batch(batch, mask)?)
}

/// One table's data files in a bundle, rolled by row count.
struct TableOutput {
    table: TableDef,
    props: WriterProperties,
    rows_per_file: u64,
    open: Option<OpenPart>,
    next_part: u32,
    files: Vec<BundleFile>,
}

struct OpenPart {
    writer: AsyncArrowWriter<HashingSink>,
    path: String,
    rows: u64,
}

impl TableOutput {
    fn new(table: TableDef, props: WriterProperties, rows_per_file: u64) -> Self {
        Self {
            table,
            props,
            rows_per_file,
            open: None,
            next_part: 0,
            files: Vec::new(),
        }
    }

    async fn write(&mut self, bundle: &Bundle, batch: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if self.open.is_none() {
                let part = self.create(bundle).await?;
                self.open = Some(part);
            }
            let Some(part) = self.open.as_mut() else {
                break;
            };
            let room =
                usize::try_from(self.rows_per_file.saturating_sub(part.rows)).unwrap_or(usize::MAX);
            let n = room.min(batch.num_rows() - offset);
            part.writer
                .write(&batch.slice(offset, n))
                .await
                .map_err(|source| ExportError::Write {
                    path: part.path.clone(),
                    source,
                })?;
            part.rows += n as u64;
            offset += n;
            if part.rows >= self.rows_per_file {
                self.close().await?;
            }
        }
        Ok(())
    }

    async fn create(&mut self, bundle: &Bundle) -> Result<OpenPart> {
        let path = format!(
            "data/{}/part-{:05}.parquet",
            self.table.name(),
            self.next_part
        );
        self.next_part += 1;
        let sink = bundle.create_file(&path).await?;
        let props = self
            .props
            .clone()
            .into_builder()
            .set_key_value_metadata(Some(vec![KeyValue::new(
                "rampart.table".to_string(),
                self.table.name().to_string(),
            )]))
            .build();
        let writer = AsyncArrowWriter::try_new(sink, self.table.schema(), Some(props)).map_err(
            |source| ExportError::Write {
                path: path.clone(),
                source,
            },
        )?;
        Ok(OpenPart {
            writer,
            path,
            rows: 0,
        })
    }

    async fn close(&mut self) -> Result<()> {
        let Some(OpenPart {
            mut writer,
            path,
            rows,
        }) = self.open.take()
        else {
            return Ok(());
        };
        writer.finish().await.map_err(|source| ExportError::Write {
            path: path.clone(),
            source,
        })?;
        let (sha256, bytes) = writer.into_inner().finish();
        self.files.push(BundleFile {
            path,
            table: self.table.name().to_string(),
            rows,
            bytes,
            sha256,
        });
        Ok(())
    }

    /// Closes the open file; a table without rows gets one empty file.
    async fn finish(mut self, bundle: &Bundle) -> Result<Vec<BundleFile>> {
        if self.files.is_empty() && self.open.is_none() {
            let part = self.create(bundle).await?;
            self.open = Some(part);
        }
        self.close().await?;
        Ok(self.files)
    }
}

/// README.txt for `manifest`.
fn render_readme(manifest: &BundleManifest, skipped: &[SkippedTable]) -> String {
    let mut tables = String::new();
    for (i, table) in manifest.query.tables.iter().enumerate() {
        let files: Vec<&BundleFile> = manifest
            .files
            .iter()
            .filter(|f| &f.table == table)
            .collect();
        let rows: u64 = files.iter().map(|f| f.rows).sum();
        let label = if i == 0 { "tables" } else { "" };
        tables.push_str(&format!(
            "  {label:<12}{table}: {rows} rows in {} file{}\n",
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        ));
    }
    for (i, s) in skipped.iter().enumerate() {
        let label = if i == 0 { "skipped" } else { "" };
        tables.push_str(&format!(
            "  {label:<12}{} (it has no column `{}`, which `where` uses)\n",
            s.table, s.column
        ));
    }
    let head = match (
        &manifest.archive.head_sequence,
        &manifest.archive.head_sha256,
    ) {
        (Some(seq), Some(sha)) => format!("manifest {seq}, SHA-256 {sha}"),
        _ => "none (the archive had no manifests)".to_string(),
    };
    let replacements = [
        ("{from}", manifest.query.from.clone()),
        ("{to}", manifest.query.to.clone()),
        (
            "{where}",
            manifest
                .query
                .predicate
                .clone()
                .unwrap_or_else(|| "(none: every row in the range)".into()),
        ),
        ("{rows_total}", manifest.rows_total.to_string()),
        ("{tables}", tables),
        ("{archive_url}", manifest.archive.url.clone()),
        ("{head}", head),
        ("{exported_at}", manifest.exported_at.clone()),
        (
            "{user}",
            manifest.user.clone().unwrap_or_else(|| "(unknown)".into()),
        ),
        ("{tool}", manifest.tool.clone()),
    ];
    // One pass, so that a value containing `{...}` (a predicate) is never replaced again.
    let mut out = String::with_capacity(README_TEMPLATE.len() + 512);
    let mut rest = README_TEMPLATE;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        match replacements.iter().find(|(k, _)| tail.starts_with(k)) {
            Some((key, value)) => {
                out.push_str(value);
                rest = &tail[key.len()..];
            }
            None => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_dates() {
        assert_eq!(
            parse_time("--from", "2026-11-01").unwrap(),
            parse_time("--from", "2026-11-01T00:00:00Z").unwrap()
        );
        assert_eq!(
            parse_time("--to", "2026-11-01T01:00:00+01:00").unwrap(),
            parse_time("--to", "2026-11-01T00:00:00Z").unwrap()
        );
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-11-01 00:00",
            "",
            "2026-11-01T00:00:00",
        ] {
            let err = parse_time("--from", bad).unwrap_err().to_string();
            assert!(err.contains("--from") && err.contains("RFC 3339"), "{err}");
        }
    }

    #[test]
    fn default_tables_leave_out_the_access_log() {
        let d = default_tables();
        assert!(d.contains(&"events") && !d.contains(&schema::ACCESS_LOG));
        let (tables, named) = resolve_tables(None).unwrap();
        assert!(!named);
        assert_eq!(tables.len(), d.len());
        let (tables, named) = resolve_tables(Some(&[
            "policy_hits".into(),
            "events".into(),
            "events".into(),
        ]))
        .unwrap();
        assert!(named);
        let names: Vec<&str> = tables.iter().map(TableDef::name).collect();
        assert_eq!(names, ["events", "policy_hits"], "archive order, once each");
        let err = resolve_tables(Some(&["evnts".into()])).unwrap_err();
        assert!(err.to_string().contains("`evnts`"), "{err}");
        assert!(resolve_tables(Some(&[" ".into()])).is_err());
    }

    fn filter_of(table: &str, predicate: &str) -> Result<Result<Arc<dyn PhysicalExpr>, String>> {
        let request = ExportRequest {
            predicate: Some(predicate.into()),
            ..ExportRequest::new(0, 1)
        };
        table_filter(
            &SessionContext::new(),
            &schema::table(table).unwrap(),
            &request,
        )
    }

    #[test]
    fn predicates_are_planned_per_table() {
        assert!(filter_of("events", "category = 'malware'").unwrap().is_ok());
        assert!(
            filter_of(
                "events",
                "ts >= '2026-11-01T00:30:00Z' AND dst_port IN (22, 3389)"
            )
            .unwrap()
            .is_ok()
        );
        assert_eq!(
            filter_of("dead_letters", "category = 'malware'")
                .unwrap()
                .err(),
            Some("category".to_string())
        );
        assert_eq!(
            filter_of("events", "Categry = 'x' OR resource_id = 'y'")
                .unwrap()
                .err(),
            Some("categry".to_string())
        );
        for bad in [
            "category = ",
            "category",
            "1; DROP TABLE events",
            "dst_port + 1",
            "resource_id IN (SELECT resource_id FROM events)",
            "count(*) > 1",
        ] {
            assert!(filter_of("events", bad).is_err(), "{bad}");
        }
        let err = filter_of("events", "dst_port + 1").unwrap_err().to_string();
        assert!(err.contains("not a condition"), "{err}");
    }

    #[test]
    fn the_readme_names_the_selection_without_placeholders() {
        let manifest = BundleManifest {
            format: FORMAT.into(),
            exported_at: "2026-12-01T00:00:00.000000Z".into(),
            tool: "rampart 0.1.0".into(),
            user: None,
            query: BundleQuery {
                from: "2026-11-01T00:00:00.000000Z".into(),
                to: "2026-11-02T00:00:00.000000Z".into(),
                predicate: Some("message = '{to}'".into()),
                tables: vec!["events".into()],
            },
            archive: BundleArchive {
                url: "file:///a/".into(),
                head_sequence: Some(3),
                head_sha256: Some("ab".repeat(32)),
            },
            source_manifests: vec![],
            files: vec![BundleFile {
                path: "data/events/part-00000.parquet".into(),
                table: "events".into(),
                rows: 7,
                bytes: 100,
                sha256: "cd".repeat(32),
            }],
            rows_total: 7,
        };
        let skipped = [SkippedTable {
            table: "dead_letters".into(),
            column: "message".into(),
        }];
        let text = render_readme(&manifest, &skipped);
        assert!(text.contains("message = '{to}'"), "{text}");
        assert!(text.contains("events: 7 rows in 1 file\n"), "{text}");
        assert!(
            text.contains("dead_letters (it has no column `message`"),
            "{text}"
        );
        assert!(text.contains("sha256sum -c SHA256SUMS"), "{text}");
        assert!(text.contains("manifest 3, SHA-256 abab"), "{text}");
        for key in ["{from}", "{rows_total}", "{tables}", "{head}", "{user}"] {
            assert!(!text.contains(key), "{key} left in:\n{text}");
        }
    }

    #[tokio::test]
    async fn a_chain_that_does_not_link_is_refused() {
        use object_store::memory::InMemory;
        use rampart_core::ManualClock;
        use rampart_core::ledger::{Action, Change, Ledger, manifest_path};

        let loc = Location {
            url: url::Url::parse("memory:///a/").unwrap(),
            store: Arc::new(InMemory::new()),
            prefix: object_store::path::Path::from("a"),
        };
        let clock = ManualClock::new(0);
        let mut ledger = Ledger::load(&loc).await.unwrap();
        for i in 0..3 {
            let change = Change {
                note: Some(format!("commit {i}")),
                ..Change::new(Action::Append)
            };
            ledger.commit(change, &clock).await.unwrap();
        }
        let head = ledger.state().head.clone();
        let hashes = manifest_hashes(&loc, head.as_ref()).await.unwrap();
        assert_eq!(hashes.len(), 3);
        assert_eq!(Some(&hashes[&3]), head.as_ref().map(|(_, h)| h));

        // Manifest 2 rewritten (one more space): 3 no longer links to it.
        let path = loc.child(&manifest_path(2));
        let mut bytes = loc
            .store
            .get(&path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        bytes.push(b' ');
        loc.store.put(&path, bytes.into()).await.unwrap();
        let err = manifest_hashes(&loc, head.as_ref()).await.unwrap_err();
        assert!(
            matches!(err, ExportError::Chain { sequence: 3, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("rampart verify"), "{err}");
    }
}
