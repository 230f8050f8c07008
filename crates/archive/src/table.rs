//! An archive table: DataFusion's listing table with one correction.
//!
//! DataFusion 55 narrows the folders it lists from equality filters on partition
//! columns by printing the literal: `hour = 5` becomes the prefix `hour=5`, which misses
//! the folder `hour=05` and silently returns no rows. [`ArchiveTable`] rewrites such
//! filters on integer partition columns to the equivalent `hour BETWEEN 5 AND 5`, which
//! is still pruned per folder (by value, so `05` matches) but not used as a prefix.
//! The date column needs no help: a `DATE` literal prints as `YYYY-MM-DD`.
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
use datafusion::common::Constraints;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::DataFusionError;
use datafusion::error::Result;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
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
}

impl ArchiveTable {
    pub(crate) fn new(
        inner: Arc<ListingTable>,
        partition_columns: &[(String, DataType)],
        committed: Arc<HashSet<Path>>,
    ) -> Self {
        let padded_columns = partition_columns
            .iter()
            .filter(|(_, t)| t.is_integer())
            .map(|(n, _)| n.clone())
            .collect();
        Self {
            inner,
            padded_columns,
            committed,
        }
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
        let filters = filters
            .iter()
            .map(|f| self.rewrite(f))
            .collect::<Result<Vec<_>>>()?;
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
