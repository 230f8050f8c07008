//! A table whose rows are swapped between runs of the same planned query.

use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// Rules are planned once against this table; before each run the engine sets the
/// rows it holds, and each scan reads the rows set at that moment.
#[derive(Debug)]
pub(crate) struct SwapTable {
    schema: SchemaRef,
    rows: Mutex<Vec<RecordBatch>>,
}

impl SwapTable {
    pub(crate) fn new(schema: SchemaRef) -> Arc<Self> {
        Arc::new(Self {
            schema,
            rows: Mutex::new(Vec::new()),
        })
    }

    /// Replaces the rows.
    pub(crate) fn set(&self, batches: Vec<RecordBatch>) {
        *self.rows.lock().unwrap_or_else(|e| e.into_inner()) = batches;
    }
}

#[async_trait]
impl TableProvider for SwapTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let table = MemTable::try_new(Arc::clone(&self.schema), vec![rows])?;
        table.scan(state, projection, filters, limit).await
    }
}
