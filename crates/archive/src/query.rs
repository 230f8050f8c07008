//! The query engine over an archive location.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use object_store::path::Path;
use rampart_core::config::QueryConfig;
use rampart_core::layout::{DATA_FILE_EXTENSION, partition_columns};
use rampart_core::ledger::Ledger;
use rampart_core::schema::{self, TableDef};
use rampart_core::store::Location;
use tracing::instrument;

use crate::readonly::check_read_only;
use crate::table::ArchiveTable;
use crate::{Error, Result};

/// Bytes read from the end of a Parquet file in one request, to get its footer (and,
/// usually, its page index) without a second read. DataFusion's default, 512 KiB, is
/// sized for object stores; an hour of events compacts into a file of about 1.3 MB with
/// a footer of 6 KB and a page index of a few tens of KB, so the default read 40% of
/// every file a query opened, 370 MB for a month of hours, only to find its footer.
pub(crate) const METADATA_SIZE_HINT: usize = 64 << 10;

/// The rows a query returned, with their schema (kept for empty results).
#[derive(Debug, Clone)]
pub struct QueryOutput {
    /// Schema of the result.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
}

impl QueryOutput {
    /// Total rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// An archive opened for reading.
pub struct Archive {
    ctx: SessionContext,
    location: Location,
    ledger: Ledger,
    limits: QueryConfig,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("url", &self.location.url.as_str())
            .finish_non_exhaustive()
    }
}

impl Archive {
    /// Opens the archive at `location` and registers its tables, with the default
    /// `[query]` bounds.
    pub async fn open(location: Location) -> Result<Self> {
        Self::open_with(location, &QueryConfig::default()).await
    }

    /// Opens the archive at `location`; every statement runs within `limits`.
    pub async fn open_with(location: Location, limits: &QueryConfig) -> Result<Self> {
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()));
        config.options_mut().execution.parquet.metadata_size_hint = Some(METADATA_SIZE_HINT);
        // No statistics while planning: DataFusion would open every file the listing
        // keeps and summarize every column of its footer (a month of hours: 720 files,
        // a fifth of the CPU time of a per-workload count) before the scan opens the same
        // files again, and would open files no manifest lists too (the archive table
        // narrows to committed files after the listing), so a file a crash left half
        // written would fail the query. The scan prunes row groups and pages from each
        // footer itself; the table's statistics are dropped anyway (`ArchiveTable`).
        config.options_mut().execution.collect_statistics = false;
        let mut runtime = RuntimeEnvBuilder::new();
        if limits.memory_limit.as_u64() > 0 {
            let memory = usize::try_from(limits.memory_limit.as_u64()).unwrap_or(usize::MAX);
            runtime = runtime.with_memory_limit(memory, 1.0);
        }
        let runtime = runtime.build_arc().map_err(|source| Error::Open {
            url: location.url.to_string(),
            source,
        })?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let open_err = |source| Error::Open {
            url: location.url.to_string(),
            source,
        };
        let root = url::Url::parse(&location.store_root_url())
            .map_err(|e| open_err(datafusion::error::DataFusionError::External(Box::new(e))))?;
        ctx.register_object_store(&root, Arc::clone(&location.store));
        let ledger = Ledger::load(&location)
            .await
            .map_err(|source| Error::Ledger { source })?;
        for table in schema::tables() {
            let committed: HashSet<Path> = ledger
                .state()
                .files_of(table.name())
                .map(|f| location.child(&f.entry.path))
                .collect();
            let provider =
                listing_table(&location, &table, Arc::new(committed)).map_err(open_err)?;
            ctx.register_table(table.name(), provider)
                .map_err(open_err)?;
        }
        Ok(Self {
            ctx,
            location,
            ledger,
            limits: limits.clone(),
        })
    }

    /// The archive's chain as it was when opened.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The archive's location.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The DataFusion session, with every archive table registered.
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// Runs one read-only statement and collects its rows.
    #[instrument(skip(self), fields(rows))]
    pub async fn query(&self, sql: &str) -> Result<QueryOutput> {
        check_read_only(sql)?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = self
            .ctx
            .sql_with_options(sql, options)
            .await
            .map_err(|source| Error::Query { source })?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = tokio::time::timeout(self.limits.timeout, df.collect())
            .await
            .map_err(|_| Error::QueryTimeout {
                limit: humantime::format_duration(self.limits.timeout).to_string(),
            })?
            .map_err(|source| match source.find_root() {
                DataFusionError::ResourcesExhausted(_) => Error::QueryMemory {
                    limit: self.limits.memory_limit.to_string(),
                    source,
                },
                _ => Error::Query { source },
            })?;
        let (schema, batches) =
            views_as_utf8(&schema, batches).map_err(|source| Error::Query { source })?;
        let out = QueryOutput { schema, batches };
        tracing::Span::current().record("rows", out.num_rows());
        Ok(out)
    }
}

/// The schema queries see for `table`: its string columns as `Utf8View`. DataFusion then
/// reads a dictionary-encoded column as views into its dictionary rather than copying
/// every value out, and hashes and compares views (values up to 12 bytes inline) when
/// grouping or joining: a month's count of events by workload took about a quarter less
/// CPU. The files are unchanged (Parquet strings, as other readers see them), and
/// [`Archive::query`] returns such columns as `Utf8`, as they are stored.
fn query_schema(table: &TableDef) -> SchemaRef {
    retyped(&table.schema(), &DataType::Utf8, &DataType::Utf8View)
}

/// `schema` with its fields of type `from` (at the top level) as `to`.
fn retyped(schema: &Schema, from: &DataType, to: &DataType) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let f = f.as_ref().clone();
            if f.data_type() == from {
                f.with_data_type(to.clone())
            } else {
                f
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batches` (of `schema`) with their `Utf8View` columns as `Utf8` (see [`query_schema`]).
fn views_as_utf8(
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
) -> std::result::Result<(SchemaRef, Vec<RecordBatch>), DataFusionError> {
    let utf8 = retyped(schema, &DataType::Utf8View, &DataType::Utf8);
    if &utf8 == schema {
        return Ok((utf8, batches));
    }
    let batches = batches
        .iter()
        .map(|b| {
            let columns = b
                .columns()
                .iter()
                .zip(utf8.fields())
                .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(RecordBatch::try_new(Arc::clone(&utf8), columns)?)
        })
        .collect::<std::result::Result<Vec<_>, DataFusionError>>()?;
    Ok((utf8, batches))
}

fn listing_table(
    location: &Location,
    table: &TableDef,
    committed: Arc<HashSet<Path>>,
) -> datafusion::error::Result<Arc<ArchiveTable>> {
    let mut base = location.url.to_string();
    if !base.ends_with('/') {
        base.push('/');
    }
    let url = ListingTableUrl::parse(format!("{base}{}/", table.name()))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(DATA_FILE_EXTENSION)
        .with_table_partition_cols(partition_columns());
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(query_schema(table));
    let listing = Arc::new(ListingTable::try_new(config)?);
    Ok(Arc::new(ArchiveTable::new(
        listing,
        &partition_columns(),
        committed,
        Some(table.time_column()),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

    /// The archive in `dir`, opened.
    async fn open(dir: &std::path::Path) -> Archive {
        let location =
            rampart_core::store::open(dir.to_str().unwrap(), Vec::<(String, String)>::new())
                .unwrap();
        Archive::open(location).await.unwrap()
    }

    #[tokio::test]
    async fn footers_are_read_with_a_small_hint() {
        let dir = tempfile::tempdir().unwrap();
        let archive = open(dir.path()).await;
        let state = archive.session().state();
        let parquet = &state.config_options().execution.parquet;
        assert_eq!(parquet.metadata_size_hint, Some(METADATA_SIZE_HINT));
    }

    #[tokio::test]
    async fn strings_are_read_as_views_and_returned_as_stored() {
        let dir = tempfile::tempdir().unwrap();
        let archive = open(dir.path()).await;
        let events = archive.session().table("events").await.unwrap();
        let workload = events.schema().field_with_name(None, "workload").unwrap();
        assert_eq!(workload.data_type(), &DataType::Utf8View);
        let stored = schema::table("events").unwrap().schema();
        assert_eq!(
            stored.field_with_name("workload").unwrap().data_type(),
            &DataType::Utf8
        );
        // Results come back as the files store them.
        let out = archive
            .query("SELECT workload, arrow_cast('a', 'Utf8View') AS v, 1 AS n FROM events UNION ALL SELECT arrow_cast('w', 'Utf8View'), arrow_cast('b', 'Utf8View'), 2")
            .await
            .unwrap();
        let types: Vec<&DataType> = out.schema.fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(types, [&DataType::Utf8, &DataType::Utf8, &DataType::Int64]);
        assert_eq!(out.num_rows(), 1);
        let b = &out.batches[0];
        assert_eq!(b.schema(), out.schema);
        assert_eq!(b.column(0).as_string::<i32>().value(0), "w");
        assert_eq!(b.column(1).as_string::<i32>().value(0), "b");
    }

    #[tokio::test]
    async fn planning_opens_no_file() {
        // A file no manifest lists (left by a crash, say) in a folder a query lists: it
        // is not Parquet, so the query fails if anything opens it, even to plan.
        let dir = tempfile::tempdir().unwrap();
        let hour = dir.path().join("events/date=2026-10-01/hour=00");
        std::fs::create_dir_all(&hour).unwrap();
        std::fs::write(hour.join("part-left.parquet"), b"half written").unwrap();
        let archive = open(dir.path()).await;
        let out = archive
            .query("SELECT workload, count(*) FROM events WHERE date = DATE '2026-10-01' GROUP BY workload")
            .await
            .unwrap();
        assert_eq!(out.num_rows(), 0);
    }
}
