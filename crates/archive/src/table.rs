//! An archive table: DataFusion's listing table with one correction.
//!
//! DataFusion 55 narrows the folders it lists from equality filters on partition
//! columns by printing the literal: `hour = 5` becomes the prefix `hour=5`, which misses
//! the folder `hour=05` and silently returns no rows. [`ArchiveTable`] rewrites such
//! filters on integer partition columns to the equivalent `hour BETWEEN 5 AND 5`, which
//! is still pruned per folder (by value, so `05` matches) but not used as a prefix.
//! The date column needs no help: a `DATE` literal prints as `YYYY-MM-DD`.
//!
//! It also derives partition filters from filters on the table's time column: `ts >=
//! '2026-10-08T00:00:00Z' AND ts < '2026-10-15T00:00:00Z'` also becomes `date >=
//! DATE '2026-10-08' AND date <= DATE '2026-10-14'`, so that a query by time alone skips
//! the folders of other days (the partition of a row is its time column's UTC date and
//! hour). The derived filters only narrow the listing; the original filters still decide
//! which rows match.
//!
//! It also reads only committed files: a data file is part of the archive once a
//! manifest lists it (see `rampart_core::ledger`), so the files the listing finds are
//! narrowed to the committed set, and files left by a crash are never read. The
//! listing's whole-table statistics, which would count those files, are dropped.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Constraints, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::DataFusionError;
use datafusion::error::Result;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown, col, lit,
};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::{ExecutionPlan, Statistics};
use object_store::path::Path;

/// A listing table over one archive table (see the module docs).
#[derive(Debug)]
pub(crate) struct ArchiveTable {
    inner: Arc<ListingTable>,
    /// Partition columns whose folder spelling may differ from the literal's text.
    padded_columns: Vec<String>,
    /// Store paths of the table's committed files.
    committed: Arc<HashSet<Path>>,
    /// The column whose UTC date is the `date` partition column, if the table has one.
    time_column: Option<String>,
}

/// Microseconds per day.
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// `value` in microseconds since the epoch, if it is a non-null timestamp.
fn timestamp_micros(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMicrosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(v.div_euclid(1_000)),
        _ => None,
    }
}

/// The `date` partition value (days since the epoch) of `micros`.
fn date_of(micros: i64) -> Option<ScalarValue> {
    i32::try_from(micros.div_euclid(MICROS_PER_DAY))
        .ok()
        .map(|d| ScalarValue::Date32(Some(d)))
}

impl ArchiveTable {
    pub(crate) fn new(
        inner: Arc<ListingTable>,
        partition_columns: &[(String, DataType)],
        committed: Arc<HashSet<Path>>,
        time_column: Option<&str>,
    ) -> Self {
        let padded_columns = partition_columns
            .iter()
            .filter(|(_, t)| t.is_integer())
            .map(|(n, _)| n.clone())
            .collect();
        let time_column = time_column
            .filter(|_| partition_columns.iter().any(|(n, _)| n == "date"))
            .map(str::to_string);
        Self {
            inner,
            padded_columns,
            committed,
            time_column,
        }
    }

    /// Filters on `date` implied by `filter`'s conjuncts that compare the time column
    /// with a timestamp literal (see the module docs). Each is implied by `filter`, so
    /// adding them never changes which rows match.
    fn date_bounds(&self, filter: &Expr) -> Vec<Expr> {
        let Some(time) = &self.time_column else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for conjunct in split_conjunction(filter) {
            let Expr::BinaryExpr(BinaryExpr { left, op, right }) = conjunct else {
                continue;
            };
            // `column op literal`, with `literal op column` turned around.
            let (value, op) = match (left.as_ref(), right.as_ref()) {
                (Expr::Column(c), Expr::Literal(v, _)) if &c.name == time => (v, *op),
                (Expr::Literal(v, _), Expr::Column(c)) if &c.name == time => match op.swap() {
                    Some(op) => (v, op),
                    None => continue,
                },
                _ => continue,
            };
            let Some(micros) = timestamp_micros(value) else {
                continue;
            };
            let date = || col("date");
            let bound = match op {
                Operator::Gt | Operator::GtEq => date_of(micros).map(|d| date().gt_eq(lit(d))),
                Operator::Lt => micros
                    .checked_sub(1)
                    .and_then(date_of)
                    .map(|d| date().lt_eq(lit(d))),
                Operator::LtEq => date_of(micros).map(|d| date().lt_eq(lit(d))),
                Operator::Eq => date_of(micros).map(|d| date().eq(lit(d))),
                _ => None,
            };
            out.extend(bound);
        }
        out
    }

    /// `plan` (the listing's scan) narrowed to committed files.
    fn committed_only(&self, plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        if plan.is::<EmptyExec>() {
            return Ok(plan);
        }
        let config = plan
            .downcast_ref::<DataSourceExec>()
            .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
            .ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "archive scan: expected a file scan, got {}",
                    plan.name()
                ))
            })?;
        let mut groups: Vec<FileGroup> = config
            .file_groups
            .iter()
            .map(|g| {
                g.iter()
                    .filter(|f| self.committed.contains(&f.object_meta.location))
                    .cloned()
                    .collect::<FileGroup>()
            })
            .filter(|g| !g.is_empty())
            .collect();
        if groups.is_empty() {
            groups.push(FileGroup::new(Vec::new()));
        }
        let narrowed = FileScanConfigBuilder::from(config.clone())
            .with_file_groups(groups)
            .with_statistics(Statistics::new_unknown(&self.inner.schema()))
            .build();
        Ok(DataSourceExec::from_data_source(narrowed))
    }

    fn rewrite(&self, filter: &Expr) -> Result<Expr> {
        filter
            .clone()
            .transform(|e| {
                if let Expr::BinaryExpr(BinaryExpr {
                    left,
                    op: Operator::Eq,
                    right,
                }) = &e
                {
                    let pair = match (left.as_ref(), right.as_ref()) {
                        (Expr::Column(c), Expr::Literal(..)) => Some((c, right)),
                        (Expr::Literal(..), Expr::Column(c)) => Some((c, left)),
                        _ => None,
                    };
                    if let Some((column, literal)) = pair
                        && self.padded_columns.contains(&column.name)
                    {
                        return Ok(Transformed::yes(Expr::Between(Between::new(
                            Box::new(Expr::Column(column.clone())),
                            false,
                            literal.clone(),
                            literal.clone(),
                        ))));
                    }
                }
                Ok(Transformed::no(e))
            })
            .map(|t| t.data)
    }
}

#[async_trait]
impl TableProvider for ArchiveTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.inner.constraints()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut filters = filters
            .iter()
            .map(|f| self.rewrite(f))
            .collect::<Result<Vec<_>>>()?;
        let derived: Vec<Expr> = filters.iter().flat_map(|f| self.date_bounds(f)).collect();
        filters.extend(derived);
        let plan = self.inner.scan(state, projection, &filters, limit).await?;
        self.committed_only(plan)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // The rewrite is exact, so whatever the listing table handles exactly stays exact.
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        // The listing's statistics count uncommitted files too.
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema, TimeUnit};
    use arrow::record_batch::RecordBatch;
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{ListingOptions, ListingTableConfig, ListingTableUrl};
    use datafusion::prelude::SessionContext;
    use rampart_core::layout::partition_columns;

    /// 2026-10-01T00:00:00Z, microseconds.
    const OCT1: i64 = 1_790_812_800_000_000;

    /// A table `t (ts, v)` with one row at 2026-10-01T12:00Z in `date=2026-10-01/hour=12`
    /// and, in `date=2026-10-02/hour=00`, a file that is not Parquet: reading it fails,
    /// so a query succeeds only if the listing skips that folder.
    async fn archive_table(dir: &std::path::Path) -> (SessionContext, Arc<ArchiveTable>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("v", DataType::Int64, false),
        ]));
        let good = dir.join("t/date=2026-10-01/hour=12");
        let bad = dir.join("t/date=2026-10-02/hour=00");
        std::fs::create_dir_all(&good).unwrap();
        std::fs::create_dir_all(&bad).unwrap();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(
                    TimestampMicrosecondArray::from(vec![OCT1 + 12 * 3_600_000_000])
                        .with_timezone("UTC"),
                ),
                Arc::new(Int64Array::from(vec![7])),
            ],
        )
        .unwrap();
        let file = std::fs::File::create(good.join("a.parquet")).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        std::fs::write(bad.join("b.parquet"), b"not parquet").unwrap();
        let committed: HashSet<Path> = [good.join("a.parquet"), bad.join("b.parquet")]
            .iter()
            .map(|p| Path::from_absolute_path(p).unwrap())
            .collect();
        let url = ListingTableUrl::parse(format!("file://{}/t/", dir.display())).unwrap();
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension("parquet")
            .with_table_partition_cols(partition_columns());
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(schema);
        let listing = Arc::new(ListingTable::try_new(config).unwrap());
        let table = Arc::new(ArchiveTable::new(
            listing,
            &partition_columns(),
            Arc::new(committed),
            Some("ts"),
        ));
        let ctx = SessionContext::new();
        ctx.register_table("t", Arc::clone(&table) as _).unwrap();
        (ctx, table)
    }

    async fn count(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<i64> {
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0))
    }

    #[tokio::test]
    async fn a_query_by_time_alone_skips_the_folders_of_other_days() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, _) = archive_table(dir.path()).await;
        // Every day but 2026-10-01 is excluded by the time range alone.
        for sql in [
            "SELECT count(*) FROM t WHERE ts >= '2026-10-01T00:00:00Z' AND ts < '2026-10-02T00:00:00Z'",
            "SELECT count(*) FROM t WHERE '2026-10-02T00:00:00Z' > ts AND ts > '2026-09-30T23:00:00Z'",
            "SELECT count(*) FROM t WHERE ts <= '2026-10-01T23:59:59.999999Z' AND v = 7",
            "SELECT count(*) FROM t WHERE ts = '2026-10-01T12:00:00Z'",
        ] {
            assert_eq!(count(&ctx, sql).await.unwrap(), 1, "{sql}");
        }
        // The other day's folder is read when the range includes it (and fails there).
        let err = count(
            &ctx,
            "SELECT count(*) FROM t WHERE ts < '2026-10-02T00:00:00.000001Z'",
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("Corrupt footer"), "{err}");
        // Not a conjunct: nothing is derived, both days are read.
        assert!(
            count(
                &ctx,
                "SELECT count(*) FROM t WHERE ts < '2026-10-02T00:00:00Z' OR v = 1"
            )
            .await
            .is_err()
        );
    }

    #[tokio::test]
    async fn date_bounds_follow_the_comparison() {
        let dir = tempfile::tempdir().unwrap();
        let (_, table) = archive_table(dir.path()).await;
        let ts = |micros: i64| lit(ScalarValue::TimestampMicrosecond(Some(micros), None));
        let day = |d: i32| lit(ScalarValue::Date32(Some(d)));
        let oct1 = (OCT1 / MICROS_PER_DAY) as i32;
        let bounds = |e: Expr| table.date_bounds(&e);
        assert_eq!(
            bounds(col("ts").gt_eq(ts(OCT1))),
            [col("date").gt_eq(day(oct1))]
        );
        assert_eq!(
            bounds(col("ts").gt(ts(OCT1 - 1))),
            [col("date").gt_eq(day(oct1 - 1))]
        );
        // `ts < midnight` ends the day before; `ts <= midnight` includes the day.
        assert_eq!(
            bounds(col("ts").lt(ts(OCT1))),
            [col("date").lt_eq(day(oct1 - 1))]
        );
        assert_eq!(
            bounds(col("ts").lt_eq(ts(OCT1))),
            [col("date").lt_eq(day(oct1))]
        );
        assert_eq!(
            bounds(ts(OCT1).gt(col("ts"))),
            [col("date").lt_eq(day(oct1 - 1))]
        );
        assert_eq!(
            bounds(col("ts").eq(ts(OCT1 + 5))),
            [col("date").eq(day(oct1))]
        );
        assert_eq!(
            bounds(
                col("ts")
                    .gt_eq(ts(OCT1))
                    .and(col("ts").lt(ts(OCT1 + MICROS_PER_DAY)))
            ),
            [col("date").gt_eq(day(oct1)), col("date").lt_eq(day(oct1))]
        );
        // Other columns, operators, disjunctions and nulls give nothing.
        assert!(bounds(col("v").gt_eq(ts(OCT1))).is_empty());
        assert!(bounds(col("ts").not_eq(ts(OCT1))).is_empty());
        assert!(bounds(col("ts").gt_eq(ts(OCT1)).or(col("v").eq(lit(1)))).is_empty());
        assert!(
            bounds(col("ts").gt_eq(lit(ScalarValue::TimestampMicrosecond(None, None)))).is_empty()
        );
    }
}
