//! Planning rule SQL once, against the tables it will run on, and running the plans.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::execution::TaskContext;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::prelude::{SessionConfig, SessionContext};
use rampart_core::config::RulesConfig;
use rampart_core::schema::{events_schema, ts_type};

use crate::rules::{Rule, RuleKind};
use crate::table::SwapTable;
use crate::{Error, Result};

/// Extra columns of the `events` table that rules see.
pub mod columns {
    /// Start of the event's window.
    pub const WINDOW_START: &str = "window_start";
    /// End of the event's window.
    pub const WINDOW_END: &str = "window_end";
    /// Index of the event in its batch: what an event rule selects.
    pub const ROW: &str = "_row";
}

/// `events` as rules see it: the archive's columns, then window_start, window_end, _row.
pub fn rule_events_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        let mut fields: Vec<Field> = events_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(columns::WINDOW_START, ts_type(), false));
        fields.push(Field::new(columns::WINDOW_END, ts_type(), false));
        fields.push(Field::new(columns::ROW, DataType::Int64, false));
        Arc::new(Schema::new(fields))
    });
    Arc::clone(&S)
}

/// `attack_counts`: the final counts of each closing window.
pub fn attack_counts_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new(columns::WINDOW_START, ts_type(), false),
            Field::new(columns::WINDOW_END, ts_type(), false),
            Field::new("resource_id", DataType::Utf8, false),
            Field::new("category", DataType::Utf8, false),
            Field::new("workload", DataType::Utf8, true),
            Field::new("event_count", DataType::Int64, false),
        ]))
    });
    Arc::clone(&S)
}

/// `prev_attack_counts`: for each closing window (by its start), the previous window's counts.
pub fn prev_attack_counts_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new(columns::WINDOW_START, ts_type(), false),
            Field::new("resource_id", DataType::Utf8, false),
            Field::new("category", DataType::Utf8, false),
            Field::new("event_count", DataType::Int64, false),
        ]))
    });
    Arc::clone(&S)
}

/// The tables rules run on, and the session that plans and runs them.
pub(crate) struct Planner {
    /// The session's state (with the tables registered), taken from its context once:
    /// taking it at each query of each batch cloned every registry of functions.
    state: SessionState,
    /// The context every run executes in, made once from `state`.
    task: Arc<TaskContext>,
    /// The physical plan of each query run so far, by its logical plan: made at the
    /// query's first run and reset for each later one (see `run`).
    physical: Mutex<HashMap<LogicalPlan, Arc<dyn ExecutionPlan>>>,
    pub(crate) events: Arc<SwapTable>,
    pub(crate) attack_counts: Arc<SwapTable>,
    pub(crate) prev_attack_counts: Arc<SwapTable>,
    increase_pct: u32,
    min_baseline: u32,
}

impl std::fmt::Debug for Planner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planner").finish_non_exhaustive()
    }
}

/// The columns a query's result must have, by kind of SQL.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect {
    /// An event rule or a remedy: `_row`.
    Rows,
    /// A window rule.
    WindowHits,
    /// The window aggregation.
    AttackCounts,
}

impl Planner {
    pub(crate) fn new(rules: &RulesConfig) -> Result<Self> {
        let config = session_config();
        let ctx = SessionContext::new_with_config(config);
        let events = SwapTable::new(rule_events_schema());
        let attack_counts = SwapTable::new(attack_counts_schema());
        let prev_attack_counts = SwapTable::new(prev_attack_counts_schema());
        let register = |name: &str, t: &Arc<SwapTable>| {
            ctx.register_table(name, Arc::clone(t) as _)
                .map_err(|source| Error::Execute {
                    what: format!("registering {name}"),
                    source,
                })
        };
        register("events", &events)?;
        register("attack_counts", &attack_counts)?;
        register("prev_attack_counts", &prev_attack_counts)?;
        let state = ctx.state();
        Ok(Self {
            task: state.task_ctx(),
            state,
            physical: Mutex::new(HashMap::new()),
            events,
            attack_counts,
            prev_attack_counts,
            increase_pct: rules.increase_pct,
            min_baseline: rules.min_baseline,
        })
    }

    /// Plans `sql` (read from `path`) and checks the columns of its result.
    pub(crate) async fn plan(&self, path: &Path, sql: &str, expect: Expect) -> Result<LogicalPlan> {
        let sql = sql
            .replace("$increase_pct", &self.increase_pct.to_string())
            .replace("$min_baseline", &self.min_baseline.to_string());
        let state = &self.state;
        let plan = state
            .create_logical_plan(&sql)
            .await
            .map_err(|e| plan_error(path, &e))?;
        if !matches!(
            plan,
            LogicalPlan::Projection(_)
                | LogicalPlan::Sort(_)
                | LogicalPlan::Limit(_)
                | LogicalPlan::Distinct(_)
                | LogicalPlan::Aggregate(_)
                | LogicalPlan::Filter(_)
                | LogicalPlan::SubqueryAlias(_)
                | LogicalPlan::Union(_)
        ) {
            return Err(Error::Plan {
                path: path.to_path_buf(),
                position: String::new(),
                message: "a rule must be one SELECT query".into(),
            });
        }
        let schema = plan.schema();
        let has = |name: &str, types: &[DataType]| {
            schema
                .fields()
                .iter()
                .any(|f| f.name() == name && types.contains(f.data_type()))
        };
        let strings = [DataType::Utf8, DataType::Utf8View, DataType::LargeUtf8];
        let ts = [ts_type()];
        let ints = [DataType::Int64];
        let required: Vec<(&str, &[DataType])> = match expect {
            Expect::Rows => vec![(columns::ROW, &ints)],
            Expect::WindowHits => vec![
                (columns::WINDOW_START, &ts),
                ("resource_id", &strings),
                ("hit_count", &ints),
            ],
            Expect::AttackCounts => vec![
                (columns::WINDOW_START, &ts),
                ("resource_id", &strings),
                ("category", &strings),
                ("workload", &strings),
                ("event_count", &ints),
            ],
        };
        for (name, types) in required {
            if !has(name, types) {
                return Err(Error::Plan {
                    path: path.to_path_buf(),
                    position: String::new(),
                    message: format!(
                        "the query must return a column `{name}` of type {}; it returns {}",
                        types
                            .iter()
                            .map(|t| t.to_string())
                            .collect::<Vec<_>>()
                            .join(" or "),
                        schema
                            .fields()
                            .iter()
                            .map(|f| format!("{} {}", f.name(), f.data_type()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        // Optimize once here; each run only plans the physical side over the rows it has.
        state.optimize(&plan).map_err(|e| plan_error(path, &e))
    }

    /// Plans a rule's query and, for a violation rule, its remedy.
    pub(crate) async fn plan_rule(
        &self,
        rule: &Rule,
    ) -> Result<(LogicalPlan, Option<LogicalPlan>)> {
        let expect = match rule.kind {
            RuleKind::Event => Expect::Rows,
            RuleKind::Window => Expect::WindowHits,
        };
        let plan = self.plan(&rule.path, &rule.sql, expect).await?;
        let remedy = match &rule.remedy {
            None => None,
            Some(predicate) => {
                let sql = format!("SELECT {} FROM events WHERE {predicate}", columns::ROW);
                let plan =
                    self.plan(&rule.path, &sql, Expect::Rows)
                        .await
                        .map_err(|e| match e {
                            Error::Plan { path, message, .. } => Error::Plan {
                                path,
                                position: String::new(),
                                message: format!("in `remedy: {predicate}`: {message}"),
                            },
                            other => other,
                        })?;
                Some(plan)
            }
        };
        Ok((plan, remedy))
    }

    /// Runs a planned query over the rows currently set in the tables.
    ///
    /// The plan is optimized already (`plan`), and its physical plan is made once, at
    /// its first run: the tables' scans read the rows set when they are executed
    /// ([`SwapTable`]), so the same physical plan serves every batch. Making it again
    /// for each batch (its physical optimizer passes above all) was about a fifth of
    /// the window stage's time. Each run executes a copy with its operators' state
    /// reset ([`reset_plan_states`]), so nothing kept from the rows of one run (the
    /// build side of a join) is used in the next.
    pub(crate) async fn run(&self, what: &str, plan: &LogicalPlan) -> Result<Vec<RecordBatch>> {
        let exec = |source| Error::Execute {
            what: what.to_string(),
            source,
        };
        let cached = self
            .physical
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(plan)
            .cloned();
        let physical = match cached {
            Some(physical) => physical,
            None => {
                let state = &self.state;
                let physical = state
                    .query_planner()
                    .create_physical_plan(plan, state)
                    .await
                    .map_err(exec)?;
                self.physical
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(plan.clone(), Arc::clone(&physical));
                physical
            }
        };
        let fresh = reset_plan_states(physical).map_err(exec)?;
        datafusion::physical_plan::collect(fresh, Arc::clone(&self.task))
            .await
            .map_err(exec)
    }
}

/// The session rules are planned and run in.
pub(crate) fn session_config() -> SessionConfig {
    // One partition: windows are small, and results must not depend on scheduling.
    let mut config = SessionConfig::new().with_target_partitions(1);
    // Spans let planning errors (unknown column, ...) name their line and column.
    config.options_mut().sql_parser.collect_spans = true;
    // Physical plans are run again on new rows (see `Planner::run`): no filter that an
    // operator derives from the rows of one run (a join's build side, a top-k, a
    // min/max) may stay in the plan for the next.
    config
        .options_mut()
        .optimizer
        .enable_dynamic_filter_pushdown = false;
    config
}

fn plan_error(path: &Path, e: &datafusion::error::DataFusionError) -> Error {
    let position = e
        .diagnostic()
        .and_then(|d| d.span)
        .map(|s| format!(":{}:{}", s.start.line, s.start.column))
        .unwrap_or_default();
    Error::Plan {
        path: path.to_path_buf(),
        position,
        message: e.strip_backtrace(),
    }
}
