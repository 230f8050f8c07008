//! A table whose rows are swapped between runs of the same planned query.

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};

/// The rows a [`SwapTable`] holds now.
type Rows = Arc<Mutex<Vec<RecordBatch>>>;

/// Rules are planned once against this table; before each run the engine sets the
/// rows it holds. Its scan ([`SwapExec`]) reads the rows set when it is executed, not
/// when it was planned, so a physical plan over it runs again on new rows.
#[derive(Debug)]
pub(crate) struct SwapTable {
    schema: SchemaRef,
    rows: Rows,
}

impl SwapTable {
    pub(crate) fn new(schema: SchemaRef) -> Arc<Self> {
        Arc::new(Self {
            schema,
            rows: Arc::new(Mutex::new(Vec::new())),
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

    /// Filters and limits are not pushed down (the default): the plan applies them
    /// above the scan.
    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => Arc::clone(&self.schema),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Arc::new(SwapExec {
            rows: Arc::clone(&self.rows),
            projection: projection.cloned(),
            schema,
            properties: Arc::new(properties),
        }))
    }
}

/// The scan of a [`SwapTable`]: one partition of the rows the table holds when it is
/// executed. It claims no statistics (the rows change between runs), so the planner
/// never answers a query from them.
#[derive(Debug)]
pub(crate) struct SwapExec {
    rows: Rows,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for SwapExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SwapExec: projection={:?}", self.projection)
    }
}

impl ExecutionPlan for SwapExec {
    fn name(&self) -> &'static str {
        "SwapExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let stream =
            MemoryStream::try_new(rows, Arc::clone(&self.schema), self.projection.clone())?;
        Ok(Box::pin(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use datafusion::physical_plan::execution_plan::reset_plan_states;
    use datafusion::prelude::SessionContext;

    fn rows(schema: &SchemaRef, values: Vec<i64>) -> RecordBatch {
        RecordBatch::try_new(Arc::clone(schema), vec![Arc::new(Int64Array::from(values))]).unwrap()
    }

    /// One physical plan run on the rows set before each run, as the planner runs
    /// rules: a count and a maximum without grouping, which a planner could answer
    /// from the statistics of the rows at planning time, or narrow with a filter made
    /// from the rows of the first run, come from each run's own rows.
    #[tokio::test]
    async fn a_physical_plan_runs_again_on_the_rows_set_since() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let table = SwapTable::new(Arc::clone(&schema));
        let ctx = SessionContext::new_with_config(crate::plan::session_config());
        ctx.register_table("t", Arc::clone(&table) as _).unwrap();
        table.set(vec![rows(&schema, vec![1, 9, 3])]);
        let plan = ctx
            .sql("SELECT count(*) AS n, max(x) AS m, sum(x) AS s FROM t WHERE x > 0")
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let run = |rows: Vec<RecordBatch>| {
            table.set(rows);
            let fresh = reset_plan_states(Arc::clone(&plan)).unwrap();
            datafusion::physical_plan::collect(fresh, ctx.task_ctx())
        };
        let answers = |out: Vec<RecordBatch>| -> (i64, i64, i64) {
            let b = &out[0];
            let v = |i: usize| b.column(i).as_primitive::<Int64Type>().value(0);
            (v(0), v(1), v(2))
        };
        assert_eq!(
            answers(run(vec![rows(&schema, vec![1, 9, 3])]).await.unwrap()),
            (3, 9, 13)
        );
        let more = vec![rows(&schema, vec![2, 4]), rows(&schema, vec![-5, 6, 5])];
        assert_eq!(answers(run(more).await.unwrap()), (4, 6, 17));
        assert_eq!(
            answers(run(vec![rows(&schema, vec![20])]).await.unwrap()),
            (1, 20, 20)
        );
    }
}
