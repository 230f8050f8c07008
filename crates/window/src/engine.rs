//! The window engine: per-partition watermarks, window state, rules and violations.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Int32Type, Int64Type, TimestampMicrosecondType};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use rampart_core::config::{RulesConfig, WindowConfig};
use rampart_core::schema::{events as ev, source as src};

use crate::intern::{Interner, Sym};
use crate::output::{AttackRate, Outputs, PolicyHit, ViolationChange, ViolationState};
use crate::plan::{
    Expect, Planner, attack_counts_schema, prev_attack_counts_schema, rule_events_schema,
};
use crate::rules::{Rule, RuleKind};
use crate::state::{
    CountSnapshot, HitSnapshot, OpenSnapshot, PartitionSnapshot, PrevSnapshot, STATE_FORMAT,
    WindowSnapshot,
};
use crate::{Error, Result};

struct Planned {
    info: Rule,
    plan: LogicalPlan,
    remedy: Option<LogicalPlan>,
    /// `info.id` and `info.action`, shared by the rule's output rows.
    id: Arc<str>,
    action: Arc<str>,
}

#[derive(Debug, Default)]
struct Agg {
    count: i64,
    /// The greatest workload seen.
    workload: Option<Sym>,
}

impl Agg {
    fn add(&mut self, n: i64, workload: Option<&str>, names: &mut Interner) -> Result<()> {
        self.count += n;
        if workload > names.get_opt(self.workload) {
            self.workload = workload.map(|w| names.intern(w)).transpose()?;
        }
        Ok(())
    }
}

/// An event rule, by its index in `WindowEngine::event_rules`.
type RuleIndex = u32;

/// The state of one open window. Strings are symbols of `WindowEngine::names`.
#[derive(Debug, Default)]
struct WindowState {
    /// (resource_id, category) -> count of on-time attack events.
    attacks: HashMap<(Sym, Sym), Agg>,
    /// (event rule, resource_id) -> hits.
    hits: HashMap<(RuleIndex, Sym), Agg>,
}

/// Attack counts of one window by (resource_id, category).
type AttackCounts = HashMap<(Sym, Sym), i64>;

#[derive(Debug)]
struct PartitionState {
    time: crate::PartitionTime,
    windows: BTreeMap<i64, WindowState>,
    /// The last closed window's attack counts, for the window after it.
    prev: Option<(i64, AttackCounts)>,
}

impl PartitionState {
    /// Starts of the open windows (of `size`) that the watermark has passed, ascending.
    fn closed_windows(&self, size: i64) -> Vec<i64> {
        self.windows
            .keys()
            .take_while(|s| self.time.is_closed(**s + size))
            .copied()
            .collect()
    }
}

#[derive(Debug, Clone)]
struct OpenViolation {
    /// The partition whose event opened it; `None` when it was read back from the
    /// archive at start-up (opened by an earlier run without partition state).
    partition: Option<i32>,
    opened_at: i64,
    opened_by: Box<str>,
    workload: Option<Sym>,
    version: i32,
    action: Sym,
}

/// Loads and plans every rule: the `[rules]` directory and the window aggregation.
/// Returns all errors, not just the first.
pub async fn check_rules(rules: &RulesConfig) -> std::result::Result<Vec<Rule>, Vec<Error>> {
    let planner = Planner::new(rules).map_err(|e| vec![e])?;
    let planned = plan_all(&planner, rules).await;
    if planned.errors.is_empty() {
        Ok(planned.rules.into_iter().map(|p| p.info).collect())
    } else {
        Err(planned.errors)
    }
}

/// Everything `[rules]` names, planned, with every error met on the way.
struct PlannedRules {
    window_plan: Option<LogicalPlan>,
    rules: Vec<Planned>,
    errors: Vec<Error>,
}

/// Reads and plans the window aggregation and each rule file, one error per bad file.
async fn plan_all(planner: &Planner, rules: &RulesConfig) -> PlannedRules {
    let mut out = PlannedRules {
        window_plan: None,
        rules: Vec::new(),
        errors: Vec::new(),
    };
    let window_sql = Path::new(&rules.window_sql);
    match std::fs::read_to_string(window_sql) {
        Ok(sql) => match planner.plan(window_sql, &sql, Expect::AttackCounts).await {
            Ok(plan) => out.window_plan = Some(plan),
            Err(e) => out.errors.push(e),
        },
        Err(source) => out.errors.push(Error::Read {
            path: window_sql.to_path_buf(),
            source,
        }),
    }
    match crate::rules::read_dir(Path::new(&rules.dir)) {
        Err(e) => out.errors.push(e),
        Ok(files) => {
            for file in files {
                let planned = match file {
                    Ok(rule) => planner
                        .plan_rule(&rule)
                        .await
                        .map(|(plan, remedy)| Planned {
                            id: rule.id.as_str().into(),
                            action: rule.action.as_str().into(),
                            info: rule,
                            plan,
                            remedy,
                        }),
                    Err(e) => Err(e),
                };
                match planned {
                    Ok(p) => out.rules.push(p),
                    Err(e) => out.errors.push(e),
                }
            }
        }
    }
    out
}

/// Windows, rules and violations over the events of every source partition.
///
/// Feed each partition's events in arrival order with [`process`](Self::process); the
/// results depend only on that order, never on how the events are cut into batches.
pub struct WindowEngine {
    size: i64,
    lateness: i64,
    planner: Planner,
    window_plan: LogicalPlan,
    event_rules: Vec<Planned>,
    window_rules: Vec<Planned>,
    partitions: BTreeMap<i32, PartitionState>,
    /// (resource_id, rule_id) -> the violation open on it.
    open: HashMap<(Sym, Sym), OpenViolation>,
    /// The strings of the state above, each once.
    names: Interner,
    /// [`WindowEngine::event_columns_read`].
    reads: Vec<bool>,
}

impl std::fmt::Debug for WindowEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowEngine")
            .field("size", &self.size)
            .field("partitions", &self.partitions.len())
            .field("open_violations", &self.open.len())
            .finish_non_exhaustive()
    }
}

impl WindowEngine {
    /// Loads and plans the rules of `rules` (every one must plan, or this fails), with
    /// the violations that were open when the archive was last written.
    pub async fn new(
        window: &WindowConfig,
        rules: &RulesConfig,
        open_violations: Vec<ViolationChange>,
    ) -> Result<Self> {
        let size = crate::WindowAssigner::new(window.size)?.size_micros();
        let lateness = i64::try_from(window.allowed_lateness.as_micros()).unwrap_or(i64::MAX);
        let planner = Planner::new(rules)?;
        let planned = plan_all(&planner, rules).await;
        if let Some(first) = planned.errors.into_iter().next() {
            return Err(first);
        }
        let window_plan = planned.window_plan.ok_or_else(|| Error::Internal {
            message: "the window aggregation planned without a plan".into(),
        })?;
        let (event_rules, window_rules): (Vec<_>, Vec<_>) = planned
            .rules
            .into_iter()
            .partition(|p| p.info.kind == RuleKind::Event);
        let mut engine = Self {
            size,
            lateness,
            planner,
            window_plan,
            event_rules,
            window_rules,
            partitions: BTreeMap::new(),
            open: HashMap::new(),
            names: Interner::default(),
            reads: Vec::new(),
        };
        engine.reads = engine.event_columns_read();
        for v in open_violations {
            if v.state == ViolationState::Open {
                engine.open_again(
                    None,
                    OpenSnapshot {
                        resource_id: v.resource_id.to_string(),
                        rule_id: v.rule_id.to_string(),
                        rule_version: v.rule_version,
                        action: v.action.to_string(),
                        opened_at: v.opened_at,
                        opened_by: v.opened_by,
                        workload: v.workload.as_deref().map(str::to_string),
                    },
                )?;
            }
        }
        Ok(engine)
    }

    /// Which columns of `events` (a flag per field of its schema) the engine reads: the
    /// columns that the window aggregation, the rules and their remedies scan or filter
    /// on, and the ones it reads itself (event time, resource, workload and the source
    /// coordinates). The values of the others are never read: the engine leaves them out
    /// when it copies the on-time rows of a batch with late events.
    pub fn event_columns_read(&self) -> Vec<bool> {
        let schema = rampart_core::schema::events_schema();
        let rule_schema = crate::plan::rule_events_schema();
        let mut read = vec![false; schema.fields().len()];
        let mut mark = |name: &str| {
            if let Ok(i) = schema.index_of(name) {
                read[i] = true;
            }
        };
        for name in [
            ev::TS,
            ev::RESOURCE_ID,
            ev::WORKLOAD,
            src::SOURCE_FILE,
            src::SOURCE_LINE,
            src::KAFKA_TOPIC,
            src::KAFKA_PARTITION,
            src::KAFKA_OFFSET,
        ] {
            mark(name);
        }
        let rules = self.event_rules.iter().chain(&self.window_rules);
        let plans = std::iter::once(&self.window_plan)
            .chain(rules.flat_map(|r| std::iter::once(&r.plan).chain(r.remedy.as_ref())));
        for plan in plans {
            // The closure never fails.
            let _ = plan.apply_with_subqueries(|node| {
                if let LogicalPlan::TableScan(scan) = node
                    && scan.table_name.table() == "events"
                {
                    match &scan.projection {
                        Some(indices) => {
                            for i in indices {
                                mark(rule_schema.field(*i).name());
                            }
                        }
                        None => {
                            for f in rule_schema.fields() {
                                mark(f.name());
                            }
                        }
                    }
                    for filter in &scan.filters {
                        for column in filter.column_refs() {
                            mark(&column.name);
                        }
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            });
        }
        read
    }

    /// Adds a violation opened before: by an earlier run (`partition` is `None`) or kept
    /// in `partition`'s state.
    fn open_again(&mut self, partition: Option<i32>, o: OpenSnapshot) -> Result<()> {
        let names = &mut self.names;
        self.open.insert(
            (names.intern(&o.resource_id)?, names.intern(&o.rule_id)?),
            OpenViolation {
                partition,
                opened_at: o.opened_at,
                opened_by: o.opened_by.into(),
                workload: o.workload.as_deref().map(|w| names.intern(w)).transpose()?,
                version: o.rule_version,
                action: names.intern(&o.action)?,
            },
        );
        Ok(())
    }

    /// The loaded rules, event rules first.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.event_rules
            .iter()
            .chain(&self.window_rules)
            .map(|p| &p.info)
    }

    /// Violations open now.
    pub fn open_violations(&self) -> usize {
        self.open.len()
    }

    /// Violations open now, per rule id.
    pub fn open_violations_by_rule(&self) -> BTreeMap<&str, u64> {
        let mut by_rule = BTreeMap::new();
        for (_, rule) in self.open.keys() {
            *by_rule.entry(self.names.get(*rule)).or_default() += 1;
        }
        by_rule
    }

    /// Windows open now, all partitions.
    pub fn open_windows(&self) -> usize {
        self.partitions.values().map(|p| p.windows.len()).sum()
    }

    /// Distinct strings (resource ids, categories, workloads, rule ids, actions) held for
    /// the state: each is kept once however many windows, rules and violations refer to
    /// it, and is freed once none does, at a later window close (when the strings held
    /// have grown by an eighth since the last time).
    pub fn state_strings(&self) -> usize {
        self.names.len()
    }

    /// Partitions with state.
    pub fn partitions(&self) -> Vec<i32> {
        self.partitions.keys().copied().collect()
    }

    /// The state of `partition` to store with a commit (see [`crate::state`]).
    pub fn snapshot(&self, partition: i32) -> PartitionSnapshot {
        self.snapshot_with(partition, str::to_string)
    }

    /// [`snapshot`](Self::snapshot) with its strings borrowed from the engine: the same
    /// JSON, without a copy of every string of the state on the way to it.
    pub fn snapshot_borrowed(&self, partition: i32) -> PartitionSnapshot<&str> {
        self.snapshot_with(partition, |s| s)
    }

    /// The state of `partition`, each string as `text` makes it.
    fn snapshot_with<'a, S: Ord>(
        &'a self,
        partition: i32,
        text: impl Fn(&'a str) -> S,
    ) -> PartitionSnapshot<S> {
        let names = &self.names;
        let sym = |sym: Sym| text(names.get(sym));
        let sym_opt = |sym: Option<Sym>| names.get_opt(sym).map(&text);
        let count = |(res, cat): &(Sym, Sym), n: i64, workload: Option<Sym>| CountSnapshot {
            resource_id: sym(*res),
            category: sym(*cat),
            count: n,
            workload: sym_opt(workload),
        };
        let sorted = |mut v: Vec<CountSnapshot<S>>| {
            v.sort_by(|a, b| (&a.resource_id, &a.category).cmp(&(&b.resource_id, &b.category)));
            v
        };
        let state = self.partitions.get(&partition);
        let windows = state
            .map(|s| {
                s.windows
                    .iter()
                    .map(|(start, w)| {
                        let mut hits: Vec<HitSnapshot<S>> = w
                            .hits
                            .iter()
                            .map(|((k, res), agg)| HitSnapshot {
                                rule_id: text(&self.event_rules[*k as usize].info.id),
                                resource_id: sym(*res),
                                count: agg.count,
                                workload: sym_opt(agg.workload),
                            })
                            .collect();
                        hits.sort_by(|a, b| {
                            (&a.rule_id, &a.resource_id).cmp(&(&b.rule_id, &b.resource_id))
                        });
                        WindowSnapshot {
                            start: *start,
                            attacks: sorted(
                                w.attacks
                                    .iter()
                                    .map(|(k, agg)| count(k, agg.count, agg.workload))
                                    .collect(),
                            ),
                            hits,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let prev = state
            .and_then(|s| s.prev.as_ref())
            .map(|(start, counts)| PrevSnapshot {
                start: *start,
                counts: sorted(counts.iter().map(|(k, n)| count(k, *n, None)).collect()),
            });
        let mut open_violations: Vec<OpenSnapshot<S>> = self
            .open
            .iter()
            .filter(|(_, o)| o.partition == Some(partition))
            .map(|((res, rule), o)| OpenSnapshot {
                resource_id: sym(*res),
                rule_id: sym(*rule),
                rule_version: o.version,
                action: sym(o.action),
                opened_at: o.opened_at,
                opened_by: text(&o.opened_by),
                workload: sym_opt(o.workload),
            })
            .collect();
        open_violations
            .sort_by(|a, b| (&a.resource_id, &a.rule_id).cmp(&(&b.resource_id, &b.rule_id)));
        PartitionSnapshot {
            format: text(STATE_FORMAT),
            window_micros: self.size,
            max_ts: state.and_then(|s| s.time.max_ts()),
            windows,
            prev,
            open_violations,
        }
    }

    /// Replaces the state of `partition` with `snapshot`. Hits of rules that are no
    /// longer loaded are dropped (returned as warnings); a state kept under another
    /// window size or format is refused.
    pub fn restore(
        &mut self,
        partition: i32,
        snapshot: PartitionSnapshot,
    ) -> std::result::Result<Vec<String>, String> {
        if snapshot.format != STATE_FORMAT {
            return Err(format!(
                "its format is `{}`, this version reads `{STATE_FORMAT}`",
                snapshot.format
            ));
        }
        if snapshot.window_micros != self.size {
            return Err(format!(
                "it was kept with windows of {} µs, the configuration now says {} µs",
                snapshot.window_micros, self.size
            ));
        }
        self.forget(partition);
        self.restore_state(partition, snapshot)
            .map_err(|e| format!("it cannot be held: {e}"))
    }

    /// [`restore`](Self::restore) once `snapshot` is known to fit.
    fn restore_state(
        &mut self,
        partition: i32,
        snapshot: PartitionSnapshot,
    ) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        let index: HashMap<&str, RuleIndex> = self
            .event_rules
            .iter()
            .zip(0..)
            .map(|(r, k)| (r.info.id.as_str(), k))
            .collect();
        let names = &mut self.names;
        let mut windows = BTreeMap::new();
        for w in snapshot.windows {
            let mut state = WindowState::default();
            for c in w.attacks {
                state.attacks.insert(
                    (names.intern(&c.resource_id)?, names.intern(&c.category)?),
                    Agg {
                        count: c.count,
                        workload: c.workload.as_deref().map(|w| names.intern(w)).transpose()?,
                    },
                );
            }
            for h in w.hits {
                let Some(k) = index.get(h.rule_id.as_str()) else {
                    warnings.push(format!(
                        "hits of rule `{}` in the window at {} are dropped: the rule is no longer loaded",
                        h.rule_id, w.start
                    ));
                    continue;
                };
                state.hits.insert(
                    (*k, names.intern(&h.resource_id)?),
                    Agg {
                        count: h.count,
                        workload: h.workload.as_deref().map(|w| names.intern(w)).transpose()?,
                    },
                );
            }
            windows.insert(w.start, state);
        }
        let prev = match snapshot.prev {
            Some(p) => {
                let mut counts = AttackCounts::with_capacity(p.counts.len());
                for c in p.counts {
                    counts.insert(
                        (names.intern(&c.resource_id)?, names.intern(&c.category)?),
                        c.count,
                    );
                }
                Some((p.start, counts))
            }
            None => None,
        };
        self.partitions.insert(
            partition,
            PartitionState {
                time: crate::PartitionTime::restored(self.lateness, snapshot.max_ts),
                windows,
                prev,
            },
        );
        for o in snapshot.open_violations {
            self.open_again(Some(partition), o)?;
        }
        Ok(warnings)
    }

    /// Drops the state of `partition` and the violations its events opened (it went to
    /// another member of the group, which restores them from the archive).
    pub fn forget(&mut self, partition: i32) {
        self.partitions.remove(&partition);
        self.open.retain(|_, o| o.partition != Some(partition));
        self.sweep_names();
    }

    /// Frees the strings no state refers to any more, if enough were added since the
    /// last time (see [`Interner::wants_sweep`]).
    fn sweep_names(&mut self) {
        if !self.names.wants_sweep() {
            return;
        }
        let mut used = self.names.marks();
        for p in self.partitions.values() {
            for w in p.windows.values() {
                for ((res, cat), agg) in &w.attacks {
                    used.mark(*res);
                    used.mark(*cat);
                    used.mark_opt(agg.workload);
                }
                for ((_, res), agg) in &w.hits {
                    used.mark(*res);
                    used.mark_opt(agg.workload);
                }
            }
            for (res, cat) in p.prev.iter().flat_map(|(_, counts)| counts.keys()) {
                used.mark(*res);
                used.mark(*cat);
            }
        }
        for ((res, rule), o) in &self.open {
            used.mark(*res);
            used.mark(*rule);
            used.mark_opt(o.workload);
            used.mark(o.action);
        }
        self.names.sweep(&used);
    }

    /// Takes the next events of `partition` (a batch with the `events` columns, in
    /// arrival order) and returns what closed or changed.
    pub async fn process(&mut self, partition: i32, events: &RecordBatch) -> Result<Outputs> {
        self.process_batches(partition, std::slice::from_ref(events))
            .await
    }

    /// [`process`](Self::process) for events that arrive as several batches (in arrival
    /// order, one after another): the same as one batch of them all, without joining
    /// them. The rules run once over all of them, and a rule's `_row` numbers the rows
    /// across the batches.
    pub async fn process_batches(
        &mut self,
        partition: i32,
        batches: &[RecordBatch],
    ) -> Result<Outputs> {
        let mut out = Outputs::default();
        let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if n == 0 {
            return Ok(out);
        }
        let cols = Rows::of(batches)?;
        let (size, lateness) = (self.size, self.lateness);
        let state = self
            .partitions
            .entry(partition)
            .or_insert_with(|| PartitionState {
                time: crate::PartitionTime::new(lateness),
                windows: BTreeMap::new(),
                prev: None,
            });

        // Lateness, event by event, in arrival order.
        let mut starts = Vec::with_capacity(n);
        let mut full = Vec::with_capacity(batches.len());
        let mut on = Vec::with_capacity(batches.len());
        let assigner = crate::WindowAssigner::from_micros(size);
        for (events, c) in batches.iter().zip(&cols.batches) {
            let base = starts.len();
            let mut on_time: Vec<u32> = Vec::with_capacity(events.num_rows());
            for (i, ts) in c.ts.values().iter().enumerate() {
                let (start, end) = assigner.window_of(*ts);
                starts.push(start);
                if state.time.observe(*ts, end) {
                    out.late += 1;
                } else {
                    on_time.push(i as u32);
                }
            }
            let with = with_window_columns(events, &starts[base..], size, base)?;
            on.push(if on_time.len() == events.num_rows() {
                with.clone()
            } else {
                take_read(&with, &on_time, &self.reads)?
            });
            full.push(with);
        }

        // The window aggregation over on-time events.
        let planner = &self.planner;
        let names = &mut self.names;
        planner.events.set(on);
        for batch in planner
            .run("the window aggregation", &self.window_plan)
            .await?
        {
            let s = batch_ts(&batch, "window_start")?;
            let r = batch_str(&batch, "resource_id")?;
            let c = batch_str(&batch, "category")?;
            let w = batch_str(&batch, "workload")?;
            let k = batch_i64(&batch, "event_count")?;
            for i in 0..batch.num_rows() {
                let (Some(res), Some(cat)) = (str_opt(&r, i), str_opt(&c, i)) else {
                    continue;
                };
                state
                    .windows
                    .entry(s.value(i))
                    .or_default()
                    .attacks
                    .entry((names.intern(res)?, names.intern(cat)?))
                    .or_default()
                    .add(k.value(i), str_opt(&w, i), names)?;
            }
        }

        // Event rules over on-time events; their hits, and remedies over all events.
        // (row, is a hit, rule): sorted by row, remedies before hits, each in rule order.
        let mut changes: Vec<(usize, bool, usize)> = Vec::new();
        for ((k, rule), index) in self.event_rules.iter().enumerate().zip(0..) {
            for row in rows_of(&planner.run(&rule.info.id, &rule.plan).await?)? {
                let (c, i) = cols.at(row)?;
                let Some(res) = str_opt(c.resource, i) else {
                    continue;
                };
                state
                    .windows
                    .entry(starts[row])
                    .or_default()
                    .hits
                    .entry((index, names.intern(res)?))
                    .or_default()
                    .add(1, str_opt(c.workload, i), names)?;
                if rule.info.violation {
                    changes.push((row, true, k));
                }
            }
        }
        if self.event_rules.iter().any(|r| r.remedy.is_some()) {
            planner.events.set(full);
            for (k, rule) in self.event_rules.iter().enumerate() {
                let Some(remedy) = &rule.remedy else { continue };
                let what = format!("{} remedy", rule.info.id);
                for row in rows_of(&planner.run(&what, remedy).await?)? {
                    changes.push((row, false, k));
                }
            }
        }
        changes.sort_unstable();
        for (row, hit, k) in changes {
            let (c, i) = cols.at(row)?;
            let resource = c.resource.value(i);
            let resource_sym = names.intern(resource)?;
            let at = c.ts.value(i);
            if !hit {
                let rule = &self.event_rules[k];
                let key = (resource_sym, names.intern(&rule.info.id)?);
                // A remedy that happened before the violation began does not end it.
                if self.open.get(&key).is_none_or(|o| at < o.opened_at) {
                    continue;
                }
                if let Some(open) = self.open.remove(&key) {
                    out.violations.push(ViolationChange {
                        changed_at: at,
                        resource_id: names.shared(resource_sym),
                        workload: names.shared_opt(open.workload),
                        rule_id: Arc::clone(&rule.id),
                        rule_version: open.version,
                        action: names.shared(open.action),
                        state: ViolationState::Resolved,
                        opened_at: open.opened_at,
                        resolved_at: Some(at),
                        opened_by: open.opened_by.into(),
                        resolved_by: Some(c.event_ref(i)),
                    });
                }
            } else {
                let rule = &self.event_rules[k];
                let key = (resource_sym, names.intern(&rule.info.id)?);
                if self.open.contains_key(&key) {
                    continue;
                }
                let workload = str_opt(c.workload, i)
                    .map(|w| names.intern(w))
                    .transpose()?;
                let opened_by = c.event_ref(i);
                self.open.insert(
                    key,
                    OpenViolation {
                        partition: Some(partition),
                        opened_at: at,
                        opened_by: opened_by.as_str().into(),
                        workload,
                        version: rule.info.version,
                        action: names.intern(&rule.info.action)?,
                    },
                );
                out.violations.push(ViolationChange {
                    changed_at: at,
                    resource_id: names.shared(resource_sym),
                    workload: names.shared_opt(workload),
                    rule_id: Arc::clone(&rule.id),
                    rule_version: rule.info.version,
                    action: Arc::clone(&rule.action),
                    state: ViolationState::Open,
                    opened_at: at,
                    resolved_at: None,
                    opened_by,
                    resolved_by: None,
                });
            }
        }

        let closing = state.closed_windows(size);
        out.extend(self.close(partition, &closing).await?);
        Ok(out)
    }

    /// Closes every open window of every partition (the end of a bounded run).
    pub async fn close_all(&mut self) -> Result<Outputs> {
        let mut out = Outputs::default();
        let all: Vec<(i32, Vec<i64>)> = self
            .partitions
            .iter()
            .map(|(p, s)| (*p, s.windows.keys().copied().collect()))
            .collect();
        for (p, starts) in all {
            out.extend(self.close(p, &starts).await?);
        }
        Ok(out)
    }

    /// Moves a silent partition's event time forward by `micros` of idle wall-clock time
    /// and closes the windows that this closes.
    pub async fn advance_idle(&mut self, partition: i32, micros: i64) -> Result<Outputs> {
        let size = self.size;
        let Some(state) = self.partitions.get_mut(&partition) else {
            return Ok(Outputs::default());
        };
        state.time.advance_idle(micros);
        let closing = state.closed_windows(size);
        self.close(partition, &closing).await
    }

    /// Emits and frees the windows starting at `starts` (ascending) of `partition`.
    async fn close(&mut self, partition: i32, starts: &[i64]) -> Result<Outputs> {
        let mut out = Outputs::default();
        let size = self.size;
        let Some(state) = self.partitions.get_mut(&partition) else {
            return Ok(out);
        };
        if starts.is_empty() {
            return Ok(out);
        }
        let minutes = size as f64 / 60_000_000.0;
        let names = &self.names;
        // The strings' order, as the state's keys were once strings.
        let by_name = |(res, cat): &(Sym, Sym)| (names.get(*res), names.get(*cat));
        let mut counts = CountRows::default();
        let mut prev_rows = CountRows::default();
        let mut prev = state.prev.take();
        for start in starts {
            let Some(window) = state.windows.remove(start) else {
                continue;
            };
            out.windows_closed += 1;
            let end = start + size;
            let mut attacks: Vec<_> = window.attacks.into_iter().collect();
            attacks.sort_by(|a, b| by_name(&a.0).cmp(&by_name(&b.0)));
            if let Some((prev_start, prev_counts)) = &prev
                && *prev_start == start - size
            {
                let mut rows: Vec<_> = prev_counts.iter().collect();
                rows.sort_by(|a, b| by_name(a.0).cmp(&by_name(b.0)));
                for (key, n) in rows {
                    let (res, cat) = by_name(key);
                    prev_rows.push(*start, end, res, cat, None, *n);
                }
            }
            let mut next_prev = HashMap::with_capacity(attacks.len());
            for (key, agg) in attacks {
                let (res, cat) = by_name(&key);
                counts.push(
                    *start,
                    end,
                    res,
                    cat,
                    names.get_opt(agg.workload),
                    agg.count,
                );
                out.attack_rates.push(AttackRate {
                    window_start: *start,
                    window_end: end,
                    resource_id: names.shared(key.0),
                    workload: names.shared_opt(agg.workload),
                    category: names.shared(key.1),
                    event_count: agg.count,
                    rate_per_min: agg.count as f64 / minutes,
                });
                next_prev.insert(key, agg.count);
            }
            prev = Some((*start, next_prev));
            let mut hits: Vec<_> = window.hits.into_iter().collect();
            hits.sort_by(|a, b| {
                let ((k, res), (l, other)) = (a.0, b.0);
                (k, names.get(res)).cmp(&(l, names.get(other)))
            });
            for ((k, res), agg) in hits {
                let rule = &self.event_rules[k as usize];
                out.policy_hits.push(PolicyHit {
                    window_start: *start,
                    window_end: end,
                    resource_id: names.shared(res),
                    workload: names.shared_opt(agg.workload),
                    rule_id: Arc::clone(&rule.id),
                    rule_version: rule.info.version,
                    action: Arc::clone(&rule.action),
                    category: None,
                    hit_count: agg.count,
                    prev_count: None,
                    increase_pct: None,
                });
            }
        }
        state.prev = prev;

        if !self.window_rules.is_empty() && !counts.is_empty() {
            self.planner.attack_counts.set(vec![counts.batch(true)?]);
            self.planner
                .prev_attack_counts
                .set(vec![prev_rows.batch(false)?]);
            for rule in &self.window_rules {
                for batch in self.planner.run(&rule.info.id, &rule.plan).await? {
                    let s = batch_ts(&batch, "window_start")?;
                    let r = batch_str(&batch, "resource_id")?;
                    let n = batch_i64(&batch, "hit_count")?;
                    let c = batch
                        .column_by_name("category")
                        .map(as_strings)
                        .transpose()?;
                    let w = batch
                        .column_by_name("workload")
                        .map(as_strings)
                        .transpose()?;
                    let p = batch
                        .column_by_name("prev_count")
                        .and_then(|a| a.as_primitive_opt::<Int64Type>().cloned());
                    for i in 0..batch.num_rows() {
                        let Some(res) = str_opt(&r, i) else { continue };
                        let prev_count = p.as_ref().and_then(|p| p.is_valid(i).then(|| p.value(i)));
                        let hit_count = n.value(i);
                        out.policy_hits.push(PolicyHit {
                            window_start: s.value(i),
                            window_end: s.value(i) + size,
                            resource_id: res.into(),
                            workload: w.as_ref().and_then(|w| str_opt(w, i)).map(Arc::from),
                            rule_id: Arc::clone(&rule.id),
                            rule_version: rule.info.version,
                            action: Arc::clone(&rule.action),
                            category: c.as_ref().and_then(|c| str_opt(c, i)).map(Arc::from),
                            hit_count,
                            prev_count,
                            increase_pct: prev_count
                                .filter(|p| *p > 0)
                                .map(|p| (hit_count - p) as f64 * 100.0 / p as f64),
                        });
                    }
                }
            }
        }
        self.sweep_names();
        Ok(out)
    }
}

/// Rows for `attack_counts` / `prev_attack_counts`.
#[derive(Default)]
struct CountRows<'a> {
    start: Vec<i64>,
    end: Vec<i64>,
    resource: Vec<&'a str>,
    category: Vec<&'a str>,
    workload: Vec<Option<&'a str>>,
    count: Vec<i64>,
}

impl<'a> CountRows<'a> {
    fn push(
        &mut self,
        start: i64,
        end: i64,
        res: &'a str,
        cat: &'a str,
        workload: Option<&'a str>,
        n: i64,
    ) {
        self.start.push(start);
        self.end.push(end);
        self.resource.push(res);
        self.category.push(cat);
        self.workload.push(workload);
        self.count.push(n);
    }

    fn is_empty(&self) -> bool {
        self.start.is_empty()
    }

    /// As `attack_counts` (`current`) or `prev_attack_counts`.
    fn batch(self, current: bool) -> Result<RecordBatch> {
        let ts = |v: Vec<i64>| -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
        };
        let res: ArrayRef = Arc::new(StringArray::from(self.resource));
        let cat: ArrayRef = Arc::new(StringArray::from(self.category));
        let n: ArrayRef = Arc::new(Int64Array::from(self.count));
        let (schema, columns) = if current {
            let w: ArrayRef = Arc::new(StringArray::from(self.workload));
            (
                attack_counts_schema(),
                vec![ts(self.start), ts(self.end), res, cat, w, n],
            )
        } else {
            (
                prev_attack_counts_schema(),
                vec![ts(self.start), res, cat, n],
            )
        };
        RecordBatch::try_new(schema, columns).map_err(internal)
    }
}

/// The event columns the engine reads.
struct Columns<'a> {
    ts: &'a TimestampMicrosecondArray,
    resource: &'a StringArray,
    workload: &'a StringArray,
    file: &'a StringArray,
    line: &'a Int64Array,
    topic: &'a StringArray,
    partition: &'a arrow::array::Int32Array,
    offset: &'a Int64Array,
}

impl<'a> Columns<'a> {
    fn of(b: &'a RecordBatch) -> Result<Self> {
        let col = |name: &str| {
            b.column_by_name(name).ok_or_else(|| Error::Internal {
                message: format!("events batch has no column {name}"),
            })
        };
        let bad = |name: &str| Error::Internal {
            message: format!("events column {name} has an unexpected type"),
        };
        let s = |name: &str| col(name)?.as_string_opt::<i32>().ok_or_else(|| bad(name));
        let i64s = |name: &str| {
            col(name)?
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| bad(name))
        };
        Ok(Self {
            ts: col(ev::TS)?
                .as_primitive_opt::<TimestampMicrosecondType>()
                .ok_or_else(|| bad(ev::TS))?,
            resource: s(ev::RESOURCE_ID)?,
            workload: s(ev::WORKLOAD)?,
            file: s(src::SOURCE_FILE)?,
            line: i64s(src::SOURCE_LINE)?,
            topic: s(src::KAFKA_TOPIC)?,
            partition: col(src::KAFKA_PARTITION)?
                .as_primitive_opt::<Int32Type>()
                .ok_or_else(|| bad(src::KAFKA_PARTITION))?,
            offset: i64s(src::KAFKA_OFFSET)?,
        })
    }

    /// A reference to the event at `row`: `file:<path>:<line>` or
    /// `kafka:<topic>/<partition>@<offset>`.
    ///
    /// Written piece by piece (`itoa` for the numbers): one is made for every violation
    /// that opens or ends, and `format!` took several times as long.
    fn event_ref(&self, row: usize) -> String {
        let (mut first, mut second) = (itoa::Buffer::new(), itoa::Buffer::new());
        let parts = if self.topic.is_valid(row) {
            [
                "kafka:",
                self.topic.value(row),
                "/",
                first.format(self.partition.value(row)),
                "@",
                second.format(self.offset.value(row)),
            ]
        } else {
            let line = first.format(self.line.value(row));
            ["file:", self.file.value(row), ":", line, "", ""]
        };
        parts.concat()
    }
}

/// The columns of several batches, with rows numbered across them (as `_row` does).
struct Rows<'a> {
    batches: Vec<Columns<'a>>,
    /// The number of the first row of each batch.
    firsts: Vec<usize>,
}

impl<'a> Rows<'a> {
    fn of(batches: &'a [RecordBatch]) -> Result<Self> {
        let mut firsts = Vec::with_capacity(batches.len());
        let mut first = 0;
        for b in batches {
            firsts.push(first);
            first += b.num_rows();
        }
        Ok(Self {
            batches: batches.iter().map(Columns::of).collect::<Result<_>>()?,
            firsts,
        })
    }

    /// The columns of the batch that holds row `row`, and its index there.
    fn at(&self, row: usize) -> Result<(&Columns<'a>, usize)> {
        // The last batch that starts at or before `row` (empty batches start where the
        // next one does, and are passed over).
        let b = self.firsts.partition_point(|first| *first <= row);
        b.checked_sub(1)
            .map(|b| (&self.batches[b], row - self.firsts[b]))
            .filter(|(c, i)| *i < c.ts.len())
            .ok_or_else(|| Error::Internal {
                message: format!("a rule selected row {row}, which the batches do not hold"),
            })
    }
}

fn str_opt(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

fn internal(e: arrow::error::ArrowError) -> Error {
    Error::Internal {
        message: e.to_string(),
    }
}

/// The rows `rows` of `batch` (in the rule schema), with the values of the `events`
/// columns no query reads (`reads` is false) left out, all null: taking the free text of
/// the on-time events only to never read it was most of the cost of a batch with late
/// events.
fn take_read(batch: &RecordBatch, rows: &[u32], reads: &[bool]) -> Result<RecordBatch> {
    let indices = arrow::array::UInt32Array::from(rows.to_vec());
    let schema = batch.schema();
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .enumerate()
        .map(|(i, (field, column))| {
            if reads.get(i).copied().unwrap_or(true) || !field.is_nullable() {
                arrow::compute::take(column, &indices, None).map_err(internal)
            } else {
                Ok(arrow::array::new_null_array(field.data_type(), rows.len()))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(schema, columns).map_err(internal)
}

/// `events` plus window_start, window_end and _row (from `first_row` on), in the rule
/// schema.
fn with_window_columns(
    events: &RecordBatch,
    starts: &[i64],
    size: i64,
    first_row: usize,
) -> Result<RecordBatch> {
    let mut columns = events.columns().to_vec();
    let ends: Vec<i64> = starts.iter().map(|s| s + size).collect();
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(starts.to_vec()).with_timezone("UTC"),
    ));
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(ends).with_timezone("UTC"),
    ));
    let first = first_row as i64;
    columns.push(Arc::new(Int64Array::from_iter_values(
        first..first + starts.len() as i64,
    )));
    RecordBatch::try_new(rule_events_schema(), columns).map_err(internal)
}

/// The `_row` values of a rule's result, ascending and without repeats.
fn rows_of(batches: &[RecordBatch]) -> Result<Vec<usize>> {
    let mut rows = Vec::new();
    for b in batches {
        let r = batch_i64(b, crate::plan::columns::ROW)?;
        rows.extend(r.iter().flatten().filter_map(|v| usize::try_from(v).ok()));
    }
    rows.sort_unstable();
    rows.dedup();
    Ok(rows)
}

fn batch_ts<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a TimestampMicrosecondArray> {
    b.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or_else(|| Error::Internal {
            message: format!("result has no timestamp column {name}"),
        })
}

fn batch_i64<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a Int64Array> {
    b.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| Error::Internal {
            message: format!("result has no BIGINT column {name}"),
        })
}

/// A string column of any string type, as plain `Utf8`.
fn as_strings(a: &ArrayRef) -> Result<StringArray> {
    let cast = arrow::compute::cast(a, &DataType::Utf8).map_err(internal)?;
    Ok(cast.as_string::<i32>().clone())
}

fn batch_str(b: &RecordBatch, name: &str) -> Result<StringArray> {
    let col = b.column_by_name(name).ok_or_else(|| Error::Internal {
        message: format!("result has no column {name}"),
    })?;
    as_strings(col)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int32Array;

    #[test]
    fn an_event_is_named_by_its_file_line_or_its_kafka_record() {
        let schema = rampart_core::schema::events_schema();
        let batch = rampart_core::schema::batch_with(schema, 2, |name| -> Option<ArrayRef> {
            Some(match name {
                src::SOURCE_FILE => Arc::new(StringArray::from(vec![Some("/in/a.jsonl"), None])),
                src::SOURCE_LINE => Arc::new(Int64Array::from(vec![Some(1_234_567), None])),
                src::KAFKA_TOPIC => Arc::new(StringArray::from(vec![None, Some("security")])),
                src::KAFKA_PARTITION => Arc::new(Int32Array::from(vec![None, Some(11)])),
                src::KAFKA_OFFSET => Arc::new(Int64Array::from(vec![None, Some(i64::MAX)])),
                ev::TS | ev::INGESTED_AT => {
                    Arc::new(TimestampMicrosecondArray::from(vec![0, 0]).with_timezone("UTC"))
                }
                ev::RESOURCE_ID | ev::RESOURCE_TYPE | ev::CATEGORY => {
                    Arc::new(StringArray::from(vec!["r", "r"]))
                }
                _ => return None,
            })
        })
        .unwrap();
        let cols = Columns::of(&batch).unwrap();
        assert_eq!(
            cols.event_ref(0),
            format!("file:{}:{}", "/in/a.jsonl", 1_234_567)
        );
        assert_eq!(
            cols.event_ref(1),
            format!("kafka:{}/{}@{}", "security", 11, i64::MAX)
        );
    }
}
