//! An archive table: DataFusion's listing table with one correction.
//!
//! DataFusion 55 narrows the folders it lists from equality filters on partition
//! columns by printing the literal: `hour = 5` becomes the prefix `hour=5`, which misses
//! the folder `hour=05` and silently returns no rows. [`ArchiveTable`] rewrites such
//! filters on integer partition columns to the equivalent `hour BETWEEN 5 AND 5`, which
//! is still pruned per folder (by value, so `05` matches) but not used as a prefix.
//! The date column needs no help: a `DATE` literal prints as `YYYY-MM-DD`.

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Constraints;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::ListingTable;
use datafusion::error::Result;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::{ExecutionPlan, Statistics};

/// A listing table over one archive table (see the module docs).
#[derive(Debug)]
pub(crate) struct ArchiveTable {
    inner: Arc<ListingTable>,
    /// Partition columns whose folder spelling may differ from the literal's text.
    padded_columns: Vec<String>,
}

impl ArchiveTable {
    pub(crate) fn new(inner: Arc<ListingTable>, partition_columns: &[(String, DataType)]) -> Self {
        let padded_columns = partition_columns
            .iter()
            .filter(|(_, t)| t.is_integer())
            .map(|(n, _)| n.clone())
            .collect();
        Self {
            inner,
            padded_columns,
        }
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
        self.inner.scan(state, projection, &filters, limit).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // The rewrite is exact, so whatever the listing table handles exactly stays exact.
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }
}
