//! Windows and rules, end to end. A plain-Rust reference implementation of the contract's
//! windows, watermark and rules (`spec/events.md` §2 and §3), written from the spec and
//! not from the engine, is compared row by row with the `attack_rates`, `policy_hits` and
//! `violations` tables that `rampart run` archives: on generated streams, on hand-written
//! edge cases (whose expected rows are also written out by hand), across batch sizes,
//! across a restart, and against the alerts file.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::{self, Debug};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rampart_gen::{GenConfig, MessageKind};
use serde_json::{Map, Value};

use crate::*;
use reference::{
    ATTACK_INCREASE, Event, NETWORK_VULNERABILITY, Open, Outputs, Params, SECURITY_HEALTH,
    UNCLASSIFIED_DATA,
};

// ---------------------------------------------------------------------------------------
// Rows of the three tables, and how two sets of rows are compared.

/// A timestamp in microseconds since the epoch; prints as RFC 3339 so that a failing
/// comparison reads well.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Ts(i64);

impl Debug for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DateTime::<Utc>::from_timestamp_micros(self.0) {
            Some(t) => write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%S%.6fZ")),
            None => write!(f, "Ts({})", self.0),
        }
    }
}

/// One row of `attack_rates`.
#[derive(Debug, Clone)]
struct AttackRate {
    window_start: Ts,
    window_end: Ts,
    resource_id: String,
    workload: Option<String>,
    category: String,
    event_count: i64,
    rate_per_min: f64,
}

/// One row of `policy_hits`.
#[derive(Debug, Clone)]
struct PolicyHit {
    window_start: Ts,
    window_end: Ts,
    resource_id: String,
    workload: Option<String>,
    rule_id: String,
    rule_version: i64,
    action: String,
    category: Option<String>,
    hit_count: i64,
    prev_count: Option<i64>,
    increase_pct: Option<f64>,
}

/// One row of `violations`.
#[derive(Debug, Clone)]
struct Violation {
    changed_at: Ts,
    resource_id: String,
    workload: Option<String>,
    rule_id: String,
    rule_version: i64,
    action: String,
    state: String,
    opened_at: Ts,
    resolved_at: Option<Ts>,
    opened_by: String,
    resolved_by: Option<String>,
}

/// The three tables of one archive (or of the reference).
#[derive(Debug, Default)]
struct Tables {
    attack_rates: Vec<AttackRate>,
    policy_hits: Vec<PolicyHit>,
    violations: Vec<Violation>,
}

impl Tables {
    fn extend(&mut self, other: Tables) {
        self.attack_rates.extend(other.attack_rates);
        self.policy_hits.extend(other.policy_hits);
        self.violations.extend(other.violations);
    }
}

/// A row as the comparison sees it.
trait Row: Debug {
    /// Every exactly compared column, as text; rows are matched by it.
    fn key(&self) -> String;
    /// The floating-point columns, compared within [`TOLERANCE`].
    fn floats(&self) -> Vec<Option<f64>> {
        Vec::new()
    }
}

impl Row for AttackRate {
    fn key(&self) -> String {
        format!(
            "{:?}",
            (
                self.window_start,
                &self.resource_id,
                &self.category,
                self.window_end,
                &self.workload,
                self.event_count,
            )
        )
    }
    fn floats(&self) -> Vec<Option<f64>> {
        vec![Some(self.rate_per_min)]
    }
}

impl Row for PolicyHit {
    fn key(&self) -> String {
        format!(
            "{:?}",
            (
                self.window_start,
                &self.resource_id,
                &self.rule_id,
                &self.category,
                self.window_end,
                &self.workload,
                self.rule_version,
                &self.action,
                self.hit_count,
                self.prev_count,
            )
        )
    }
    fn floats(&self) -> Vec<Option<f64>> {
        vec![self.increase_pct]
    }
}

impl Row for Violation {
    fn key(&self) -> String {
        format!(
            "{:?}",
            (
                &self.resource_id,
                &self.rule_id,
                self.changed_at,
                &self.state,
                &self.workload,
                self.rule_version,
                &self.action,
                self.opened_at,
                self.resolved_at,
                &self.opened_by,
                &self.resolved_by,
            )
        )
    }
}

const TOLERANCE: f64 = 1e-9;
/// Differences listed in a failure message, at most.
const SHOWN: usize = 20;

fn sorted<T: Row>(rows: &[T]) -> Vec<(String, &T)> {
    let mut keyed: Vec<(String, &T)> = rows.iter().map(|r| (r.key(), r)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed
}

fn floats_close(a: &[Option<f64>], b: &[Option<f64>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|pair| match pair {
            (None, None) => true,
            (Some(x), Some(y)) => (x - y).abs() <= TOLERANCE,
            _ => false,
        })
}

/// The differences between two multisets of rows, or `None` when they are the same.
fn diff_rows<T: Row>(table: &str, actual: &[T], expected: &[T]) -> Option<String> {
    let (a, e) = (sorted(actual), sorted(expected));
    let mut problems = Vec::new();
    let (mut i, mut j) = (0, 0);
    loop {
        match (a.get(i), e.get(j)) {
            (None, None) => break,
            (Some((ka, ra)), Some((ke, re))) if ka == ke => {
                if !floats_close(&ra.floats(), &re.floats()) {
                    problems.push(format!("  differs:    {ra:?}\n    expected: {re:?}"));
                }
                i += 1;
                j += 1;
            }
            (Some((ka, ra)), Some((ke, _))) if ka < ke => {
                problems.push(format!("  unexpected: {ra:?}"));
                i += 1;
            }
            (Some((_, ra)), None) => {
                problems.push(format!("  unexpected: {ra:?}"));
                i += 1;
            }
            (_, Some((_, re))) => {
                problems.push(format!("  missing:    {re:?}"));
                j += 1;
            }
        }
    }
    (!problems.is_empty()).then(|| {
        format!(
            "{table}: {} rows, expected {}; {} differences{}:\n{}",
            a.len(),
            e.len(),
            problems.len(),
            if problems.len() > SHOWN {
                format!(" (first {SHOWN})")
            } else {
                String::new()
            },
            problems[..problems.len().min(SHOWN)].join("\n")
        )
    })
}

/// Asserts that two sets of tables hold the same rows, in any order.
fn assert_same_tables(what: &str, actual: &Tables, expected: &Tables) {
    let problems: Vec<String> = [
        diff_rows("attack_rates", &actual.attack_rates, &expected.attack_rates),
        diff_rows("policy_hits", &actual.policy_hits, &expected.policy_hits),
        diff_rows("violations", &actual.violations, &expected.violations),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Running the binary and reading what it archived.

/// Without `RAMPART_*` settings: the built-in defaults.
const NO_ENV: [(&str, &str); 0] = [];

/// `rampart run` from the repository root (where the rule files live) with `env` set;
/// returns the summary.
fn run<K, V>(source: &Path, archive: &Path, env: impl IntoIterator<Item = (K, V)>) -> String
where
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    run_pipeline_env(source, archive, env)
}

/// The number on the summary's `late events` line.
fn late_count(summary: &str) -> u64 {
    summary_count(summary, "late events")
}

/// The number of batches on the summary's `batch latency` line (`..., N batches)`).
fn batch_count(summary: &str) -> u64 {
    summary
        .lines()
        .find(|l| l.trim_start().starts_with("batch latency"))
        .and_then(|l| l.strip_suffix(" batches)"))
        .and_then(|l| l.rsplit([' ', '(']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `batch latency ... N batches)` line in:\n{summary}"))
}

/// Typed access to one row of `rampart query --format json`.
struct JsonRow<'a>(&'a Map<String, Value>);

impl JsonRow<'_> {
    fn get(&self, col: &str) -> Option<&Value> {
        let v = self
            .0
            .get(col)
            .unwrap_or_else(|| panic!("no column {col} in {:?}", self.0));
        (!v.is_null()).then_some(v)
    }
    fn wrong(&self, col: &str, what: &str) -> ! {
        panic!("column {col} is not {what} in {:?}", self.0)
    }
    fn opt_text(&self, col: &str) -> Option<String> {
        self.get(col)
            .map(|v| v.as_str().unwrap_or_else(|| self.wrong(col, "text")).into())
    }
    fn text(&self, col: &str) -> String {
        self.opt_text(col)
            .unwrap_or_else(|| self.wrong(col, "non-null"))
    }
    fn opt_int(&self, col: &str) -> Option<i64> {
        self.get(col)
            .map(|v| v.as_i64().unwrap_or_else(|| self.wrong(col, "an integer")))
    }
    fn int(&self, col: &str) -> i64 {
        self.opt_int(col)
            .unwrap_or_else(|| self.wrong(col, "non-null"))
    }
    fn opt_float(&self, col: &str) -> Option<f64> {
        self.get(col)
            .map(|v| v.as_f64().unwrap_or_else(|| self.wrong(col, "a number")))
    }
    fn float(&self, col: &str) -> f64 {
        self.opt_float(col)
            .unwrap_or_else(|| self.wrong(col, "non-null"))
    }
    fn ts(&self, col: &str) -> Ts {
        Ts(self.int(col))
    }
    fn opt_ts(&self, col: &str) -> Option<Ts> {
        self.opt_int(col).map(Ts)
    }
}

const ATTACK_RATES_SQL: &str = "SELECT CAST(window_start AS BIGINT) AS window_start, \
     CAST(window_end AS BIGINT) AS window_end, resource_id, workload, category, \
     event_count, rate_per_min FROM attack_rates";
const POLICY_HITS_SQL: &str = "SELECT CAST(window_start AS BIGINT) AS window_start, \
     CAST(window_end AS BIGINT) AS window_end, resource_id, workload, rule_id, \
     rule_version, action, category, hit_count, prev_count, increase_pct FROM policy_hits";
const VIOLATIONS_SQL: &str = "SELECT CAST(changed_at AS BIGINT) AS changed_at, resource_id, \
     workload, rule_id, rule_version, action, state, CAST(opened_at AS BIGINT) AS opened_at, \
     CAST(resolved_at AS BIGINT) AS resolved_at, opened_by, resolved_by FROM violations";

/// The three tables of `archive`, through `rampart query`.
fn read_tables(archive: &Path) -> Tables {
    let attack_rates = query_json(archive, ATTACK_RATES_SQL)
        .iter()
        .map(|r| {
            let r = JsonRow(r);
            AttackRate {
                window_start: r.ts("window_start"),
                window_end: r.ts("window_end"),
                resource_id: r.text("resource_id"),
                workload: r.opt_text("workload"),
                category: r.text("category"),
                event_count: r.int("event_count"),
                rate_per_min: r.float("rate_per_min"),
            }
        })
        .collect();
    let policy_hits = query_json(archive, POLICY_HITS_SQL)
        .iter()
        .map(|r| {
            let r = JsonRow(r);
            PolicyHit {
                window_start: r.ts("window_start"),
                window_end: r.ts("window_end"),
                resource_id: r.text("resource_id"),
                workload: r.opt_text("workload"),
                rule_id: r.text("rule_id"),
                rule_version: r.int("rule_version"),
                action: r.text("action"),
                category: r.opt_text("category"),
                hit_count: r.int("hit_count"),
                prev_count: r.opt_int("prev_count"),
                increase_pct: r.opt_float("increase_pct"),
            }
        })
        .collect();
    let violations = query_json(archive, VIOLATIONS_SQL)
        .iter()
        .map(|r| {
            let r = JsonRow(r);
            Violation {
                changed_at: r.ts("changed_at"),
                resource_id: r.text("resource_id"),
                workload: r.opt_text("workload"),
                rule_id: r.text("rule_id"),
                rule_version: r.int("rule_version"),
                action: r.text("action"),
                state: r.text("state"),
                opened_at: r.ts("opened_at"),
                resolved_at: r.opt_ts("resolved_at"),
                opened_by: r.text("opened_by"),
                resolved_by: r.opt_text("resolved_by"),
            }
        })
        .collect();
    Tables {
        attack_rates,
        policy_hits,
        violations,
    }
}

// ---------------------------------------------------------------------------------------
// The reference implementation.

mod reference {
    //! The contract's windows and rules as a plain loop over the accepted events of one
    //! partition, in arrival order. Written from `spec/events.md`, not from the engine.

    use std::collections::BTreeMap;
    use std::path::Path;

    use serde_json::Value;

    use super::{AttackRate, PolicyHit, Tables, Ts, Violation};

    pub(super) const SECOND: i64 = 1_000_000;
    pub(super) const MINUTE: i64 = 60 * SECOND;

    pub(super) const ATTACK_INCREASE: &str = "attack_increase";
    pub(super) const UNCLASSIFIED_DATA: &str = "unclassified_data";
    pub(super) const SECURITY_HEALTH: &str = "security_health";
    pub(super) const NETWORK_VULNERABILITY: &str = "network_vulnerability";
    /// Rules decided event by event.
    const EVENT_RULES: [&str; 3] = [UNCLASSIFIED_DATA, SECURITY_HEALTH, NETWORK_VULNERABILITY];
    /// Rules whose hits open violations.
    const VIOLATION_RULES: [&str; 2] = [UNCLASSIFIED_DATA, SECURITY_HEALTH];
    const ATTACK_CATEGORIES: [&str; 2] = ["brute_force", "ddos"];
    const RULE_VERSION: i64 = 1;

    /// The enforcement action of `rule`.
    pub(super) fn action(rule: &str) -> &'static str {
        match rule {
            ATTACK_INCREASE | NETWORK_VULNERABILITY => "notify_security_and_owner",
            UNCLASSIFIED_DATA => "deny_external_access",
            SECURITY_HEALTH => "disable_access",
            other => panic!("unknown rule {other}"),
        }
    }

    /// Window size and thresholds; durations in microseconds.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Params {
        pub(super) window: i64,
        pub(super) lateness: i64,
        pub(super) increase_pct: i64,
        pub(super) min_baseline: i64,
    }

    impl Params {
        /// The contract's defaults.
        pub(super) const DEFAULT: Params = Params {
            window: 5 * MINUTE,
            lateness: MINUTE,
            increase_pct: 25,
            min_baseline: 10,
        };

        /// The `RAMPART_*` variables that set these.
        pub(super) fn env(&self) -> Vec<(&'static str, String)> {
            let secs = |us: i64| {
                assert_eq!(us % SECOND, 0, "whole seconds only");
                format!("{}s", us / SECOND)
            };
            vec![
                ("RAMPART_WINDOW__SIZE", secs(self.window)),
                ("RAMPART_WINDOW__ALLOWED_LATENESS", secs(self.lateness)),
                ("RAMPART_RULES__INCREASE_PCT", self.increase_pct.to_string()),
                ("RAMPART_RULES__MIN_BASELINE", self.min_baseline.to_string()),
            ]
        }
    }

    /// The fields of an accepted event that windows and rules look at.
    #[derive(Debug, Clone)]
    pub(super) struct Event {
        /// `file:<path>:<line>`.
        pub(super) source: String,
        /// Microseconds since the epoch.
        pub(super) ts: i64,
        pub(super) resource_id: String,
        pub(super) resource_type: String,
        pub(super) category: String,
        pub(super) workload: Option<String>,
        /// `Some("")` is kept apart from `None`: only a remedy cares.
        pub(super) classification: Option<String>,
        pub(super) patched: Option<bool>,
        pub(super) policy_allowed: Option<bool>,
    }

    impl Event {
        /// Line `line` of the JSON-lines file `path`, a valid event.
        pub(super) fn parse(path: &Path, line: u64, text: &[u8]) -> Self {
            let v: Value = serde_json::from_slice(text)
                .unwrap_or_else(|e| panic!("{}:{line}: {e}", path.display()));
            let text_of = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
            let required =
                |k: &str| text_of(k).unwrap_or_else(|| panic!("{}:{line}: no {k}", path.display()));
            let ts = chrono::DateTime::parse_from_rfc3339(&required("ts"))
                .unwrap_or_else(|e| panic!("{}:{line}: {e}", path.display()));
            Self {
                source: format!("file:{}:{line}", path.display()),
                ts: ts.timestamp_micros(),
                resource_id: required("resource_id"),
                resource_type: required("resource_type"),
                category: required("category"),
                workload: text_of("workload"),
                classification: text_of("classification"),
                patched: v.get("patched").and_then(Value::as_bool),
                policy_allowed: v.get("policy_allowed").and_then(Value::as_bool),
            }
        }

        fn is_hit(&self, rule: &str) -> bool {
            match rule {
                UNCLASSIFIED_DATA => {
                    matches!(self.resource_type.as_str(), "storage" | "database")
                        && self.classification.as_deref().is_none_or(str::is_empty)
                }
                SECURITY_HEALTH => {
                    self.resource_type == "vm"
                        && matches!(self.category.as_str(), "malware" | "vulnerability")
                        && self.patched != Some(true)
                }
                NETWORK_VULNERABILITY => {
                    self.category == "network_access" && self.policy_allowed == Some(false)
                }
                other => panic!("{other} is not an event rule"),
            }
        }

        fn is_remedy(&self, rule: &str) -> bool {
            match rule {
                UNCLASSIFIED_DATA => {
                    self.category == "classification_change"
                        && self
                            .classification
                            .as_deref()
                            .is_some_and(|c| !c.is_empty())
                }
                SECURITY_HEALTH => self.category == "patch" && self.patched == Some(true),
                other => panic!("{other} has no remedy"),
            }
        }
    }

    /// Open violations by resource and rule, with the row that opened each. Outlives a
    /// run: the next run on the same archive starts from it.
    pub(super) type Open = BTreeMap<(String, &'static str), Violation>;

    /// What a bounded run over some events archives, and how many of them were late.
    pub(super) struct Outputs {
        pub(super) tables: Tables,
        pub(super) late: u64,
    }

    /// A count, and the largest workload among the events counted (`None` sorts below
    /// every string, so it stays only when every workload is absent, like SQL's `max`).
    #[derive(Default)]
    struct Tally {
        count: i64,
        workload: Option<String>,
    }

    impl Tally {
        fn add(&mut self, e: &Event) {
            self.count += 1;
            self.workload = self.workload.take().max(e.workload.clone());
        }
    }

    /// One bounded run over `events` (one partition, in arrival order), starting with the
    /// violations in `open` and leaving the ones still open there.
    pub(super) fn evaluate(events: &[Event], p: &Params, open: &mut Open) -> Outputs {
        let mut max_ts: Option<i64> = None;
        let mut late = 0;
        let mut attacks: BTreeMap<(i64, &str, &str), Tally> = BTreeMap::new();
        let mut hits: BTreeMap<(i64, &str, &str), Tally> = BTreeMap::new();
        let mut violations = Vec::new();
        for e in events {
            let start = e.ts.div_euclid(p.window) * p.window;
            // The watermark is the largest time seen *before* this event, minus lateness.
            let on_time = max_ts.is_none_or(|m| start + p.window > m - p.lateness);
            max_ts = Some(max_ts.map_or(e.ts, |m| m.max(e.ts)));
            late += u64::from(!on_time);
            track_violations(e, on_time, open, &mut violations);
            if !on_time {
                continue;
            }
            if ATTACK_CATEGORIES.contains(&e.category.as_str()) {
                attacks
                    .entry((start, e.resource_id.as_str(), e.category.as_str()))
                    .or_default()
                    .add(e);
            }
            for rule in EVENT_RULES {
                if e.is_hit(rule) {
                    hits.entry((start, e.resource_id.as_str(), rule))
                        .or_default()
                        .add(e);
                }
            }
        }
        let attack_rates = attacks
            .iter()
            .map(|(&(start, resource, category), t)| AttackRate {
                window_start: Ts(start),
                window_end: Ts(start + p.window),
                resource_id: resource.into(),
                workload: t.workload.clone(),
                category: category.into(),
                event_count: t.count,
                rate_per_min: t.count as f64 / (p.window as f64 / MINUTE as f64),
            })
            .collect();
        let mut policy_hits: Vec<PolicyHit> = hits
            .iter()
            .map(|(&(start, resource, rule), t)| PolicyHit {
                window_start: Ts(start),
                window_end: Ts(start + p.window),
                resource_id: resource.into(),
                workload: t.workload.clone(),
                rule_id: rule.into(),
                rule_version: RULE_VERSION,
                action: action(rule).into(),
                category: None,
                hit_count: t.count,
                prev_count: None,
                increase_pct: None,
            })
            .collect();
        policy_hits.extend(attack_increases(&attacks, p));
        Outputs {
            tables: Tables {
                attack_rates,
                policy_hits,
                violations,
            },
            late,
        }
    }

    /// `attack_increase`: a window's count against the same resource and category in the
    /// window just before (0 when it has no events).
    fn attack_increases(
        attacks: &BTreeMap<(i64, &str, &str), Tally>,
        p: &Params,
    ) -> Vec<PolicyHit> {
        attacks
            .iter()
            .filter_map(|(&(start, resource, category), t)| {
                let prev = attacks
                    .get(&(start - p.window, resource, category))
                    .map_or(0, |t| t.count);
                let hit = t.count * 100 >= prev * (100 + p.increase_pct) && prev >= p.min_baseline;
                hit.then(|| PolicyHit {
                    window_start: Ts(start),
                    window_end: Ts(start + p.window),
                    resource_id: resource.into(),
                    workload: t.workload.clone(),
                    rule_id: ATTACK_INCREASE.into(),
                    rule_version: RULE_VERSION,
                    action: action(ATTACK_INCREASE).into(),
                    category: Some(category.into()),
                    hit_count: t.count,
                    prev_count: Some(prev),
                    increase_pct: Some((t.count - prev) as f64 * 100.0 / prev as f64),
                })
            })
            .collect()
    }

    /// Remedies first (late events too, but never one that happened before the
    /// violation began), then hits (on-time events only).
    fn track_violations(e: &Event, on_time: bool, open: &mut Open, rows: &mut Vec<Violation>) {
        for rule in VIOLATION_RULES {
            let key = (e.resource_id.clone(), rule);
            if e.is_remedy(rule)
                && open.get(&key).is_some_and(|o| e.ts >= o.opened_at.0)
                && let Some(opening) = open.remove(&key)
            {
                rows.push(Violation {
                    changed_at: Ts(e.ts),
                    state: "resolved".into(),
                    resolved_at: Some(Ts(e.ts)),
                    resolved_by: Some(e.source.clone()),
                    ..opening
                });
            }
            if on_time && e.is_hit(rule) && !open.contains_key(&key) {
                let opening = Violation {
                    changed_at: Ts(e.ts),
                    resource_id: e.resource_id.clone(),
                    workload: e.workload.clone(),
                    rule_id: rule.into(),
                    rule_version: RULE_VERSION,
                    action: action(rule).into(),
                    state: "open".into(),
                    opened_at: Ts(e.ts),
                    resolved_at: None,
                    opened_by: e.source.clone(),
                    resolved_by: None,
                };
                rows.push(opening.clone());
                open.insert(key, opening);
            }
        }
    }
}

/// The accepted events of a generated stream.
fn accepted(g: &Generated) -> Vec<Event> {
    let lines = input_lines(&g.path);
    assert_eq!(lines.len(), g.kinds.len());
    lines
        .iter()
        .zip(&g.kinds)
        .filter(|(_, kind)| **kind == MessageKind::Good)
        .map(|((n, text), _)| Event::parse(&g.path, *n, text))
        .collect()
}

/// Every line of a hand-written file, each a valid event.
fn all_events(path: &Path) -> Vec<Event> {
    input_lines(path)
        .iter()
        .map(|(n, text)| Event::parse(path, *n, text))
        .collect()
}

/// How much of the rules a reference run exercises.
fn coverage(out: &Outputs) -> BTreeMap<String, u64> {
    let mut c = BTreeMap::new();
    for h in &out.tables.policy_hits {
        *c.entry(format!("{} hits", h.rule_id)).or_default() += 1;
    }
    for v in &out.tables.violations {
        *c.entry(format!("violations {}", v.state)).or_default() += 1;
    }
    c.insert("late events".into(), out.late);
    c
}

fn assert_covers_everything(c: &BTreeMap<String, u64>) {
    for what in [
        "attack_increase hits",
        "unclassified_data hits",
        "security_health hits",
        "network_vulnerability hits",
        "violations open",
        "violations resolved",
        "late events",
    ] {
        assert!(
            c.get(what).is_some_and(|n| *n > 0),
            "the streams have no {what}: {c:?}"
        );
    }
}

/// What a live run over `g` (one partition, default windows and rules) has emitted once
/// it has processed every line, before the end of its input closes the windows still
/// open: from the reference, with the windows the largest event time has closed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LiveCounts {
    pub(crate) late: u64,
    /// Windows closed: those holding an attack count or a rule hit.
    pub(crate) windows_closed: u64,
    /// `policy_hits` rows of the closed windows, per rule.
    pub(crate) policy_hits: BTreeMap<String, u64>,
    /// Violations open, per rule.
    pub(crate) open_violations: BTreeMap<String, u64>,
    /// Violation changes (opened and resolved).
    pub(crate) violation_changes: u64,
    /// The largest event time, in microseconds since the epoch.
    pub(crate) max_ts: i64,
}

/// [`LiveCounts`] of `g`.
pub(crate) fn live_counts(g: &Generated) -> LiveCounts {
    let events = accepted(g);
    let p = Params::DEFAULT;
    let mut open = Open::new();
    let out = reference::evaluate(&events, &p, &mut open);
    let max_ts = events.iter().map(|e| e.ts).max().unwrap_or(i64::MIN);
    let closed = |end: Ts| end.0 <= max_ts - p.lateness;
    let hits = out
        .tables
        .policy_hits
        .iter()
        .filter(|h| closed(h.window_end));
    let mut policy_hits = BTreeMap::new();
    for h in hits.clone() {
        *policy_hits.entry(h.rule_id.clone()).or_default() += 1;
    }
    let attacks = out
        .tables
        .attack_rates
        .iter()
        .filter(|a| closed(a.window_end));
    let windows: std::collections::BTreeSet<Ts> = hits
        .map(|h| h.window_start)
        .chain(attacks.map(|a| a.window_start))
        .collect();
    let mut open_violations = BTreeMap::new();
    for (_, rule) in open.keys() {
        *open_violations.entry(rule.to_string()).or_default() += 1;
    }
    LiveCounts {
        late: out.late,
        windows_closed: windows.len() as u64,
        policy_hits,
        open_violations,
        violation_changes: out.tables.violations.len() as u64,
        max_ts,
    }
}

/// A generated stream over two hours whose events arrive up to three minutes after their
/// time, beyond the one minute of allowed lateness, so that some are late.
pub(crate) fn stream(events: u64, seed: u64) -> GenConfig {
    GenConfig {
        events,
        seed,
        span: Duration::from_secs(2 * 3600),
        disorder: Duration::from_secs(180),
        bad_rate: 0.005,
        ..GenConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Generated streams.

#[test]
fn reference_matches_the_pipeline_on_generated_streams() {
    let dir = tempfile::tempdir().unwrap();
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    for seed in [11, 12, 13] {
        let g = generate(dir.path(), &format!("s{seed}.jsonl"), stream(20_000, seed));
        let expected = reference::evaluate(&accepted(&g), &Params::DEFAULT, &mut Open::new());
        assert!(expected.late > 0, "seed {seed}: no late events");
        let archive = dir.path().join(format!("archive-{seed}"));
        let summary = run(&g.path, &archive, NO_ENV);
        assert_eq!(
            late_count(&summary),
            expected.late,
            "seed {seed}: late events in the summary"
        );
        assert_same_tables(
            &format!("seed {seed}: rampart vs reference"),
            &read_tables(&archive),
            &expected.tables,
        );
        for (k, n) in coverage(&expected) {
            *total.entry(k).or_default() += n;
        }
    }
    assert_covers_everything(&total);
}

#[test]
fn results_do_not_depend_on_batch_size() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", stream(20_000, 14));
    let expected = reference::evaluate(&accepted(&g), &Params::DEFAULT, &mut Open::new());
    let (big, small) = (dir.path().join("big"), dir.path().join("small"));
    let big_summary = run(&g.path, &big, NO_ENV);
    let small_summary = run(&g.path, &small, [("RAMPART_SOURCE__READ_CHUNK", "4 KiB")]);
    assert!(
        batch_count(&small_summary) > 10 * batch_count(&big_summary),
        "4 KiB chunks made about as many batches as 1 MiB ones:\n{big_summary}\n{small_summary}"
    );
    assert_eq!(late_count(&big_summary), expected.late, "1 MiB batches");
    assert_eq!(late_count(&small_summary), expected.late, "4 KiB batches");
    let (big, small) = (read_tables(&big), read_tables(&small));
    assert_same_tables("4 KiB vs 1 MiB batches", &small, &big);
    assert_same_tables("1 MiB batches vs reference", &big, &expected.tables);
    assert_same_tables("4 KiB batches vs reference", &small, &expected.tables);
}

#[test]
fn other_settings_are_followed() {
    // A 7-minute window does not divide an hour: windows must align to the epoch.
    let params = Params {
        window: 7 * reference::MINUTE,
        lateness: 30 * reference::SECOND,
        increase_pct: 50,
        min_baseline: 20,
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = GenConfig {
        window: Duration::from_secs(7 * 60),
        ..stream(15_000, 15)
    };
    let g = generate(dir.path(), "in.jsonl", cfg);
    let expected = reference::evaluate(&accepted(&g), &params, &mut Open::new());
    let c = coverage(&expected);
    assert!(
        c.get("attack_increase hits").is_some_and(|n| *n > 0),
        "{c:?}"
    );
    assert!(expected.late > 0, "{c:?}");
    let archive = dir.path().join("archive");
    let summary = run(&g.path, &archive, params.env());
    assert_eq!(late_count(&summary), expected.late, "late events");
    assert_same_tables(
        "7m windows, 30s lateness, 50%, baseline 20: rampart vs reference",
        &read_tables(&archive),
        &expected.tables,
    );
}

// ---------------------------------------------------------------------------------------
// Hand-written edge cases: expected rows written out, checked against both the reference
// and the pipeline.

const DAY: &str = "2026-11-01";
const W: i64 = 5 * reference::MINUTE;

/// `time` ("00:04:59.999") on [`DAY`], UTC.
fn at(time: &str) -> Ts {
    let t = DateTime::parse_from_rfc3339(&format!("{DAY}T{time}Z")).unwrap();
    Ts(t.timestamp_micros())
}

/// An event line at the RFC 3339 time `ts`; `fields` are more `"key":value` pairs.
fn ev_at(ts: &str, resource: &str, rtype: &str, category: &str, fields: &str) -> String {
    let sep = if fields.is_empty() { "" } else { "," };
    format!(
        r#"{{"ts":"{ts}","resource_id":"{resource}","resource_type":"{rtype}","category":"{category}"{sep}{fields}}}"#
    )
}

/// An event line at `time` on [`DAY`], UTC.
fn ev(time: &str, resource: &str, rtype: &str, category: &str, fields: &str) -> String {
    ev_at(&format!("{DAY}T{time}Z"), resource, rtype, category, fields)
}

/// `n` events spread evenly over the `index`th window of [`DAY`], with workloads taken
/// in turn from `workloads`.
fn burst(
    resource: &str,
    category: &str,
    index: i64,
    n: i64,
    workloads: &[Option<&str>],
) -> Vec<(Ts, String)> {
    let start = at("00:00:00").0 + index * W;
    let step_ms = W / 1000 / n;
    (0..n)
        .map(|i| {
            let ts = start + i * step_ms * 1000;
            let text = DateTime::<Utc>::from_timestamp_micros(ts)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            let fields = match workloads[i as usize % workloads.len()] {
                Some(w) => format!(r#""workload":"{w}""#),
                None => String::new(),
            };
            (Ts(ts), ev_at(&text, resource, "vm", category, &fields))
        })
        .collect()
}

/// The lines of `parts` in event-time order (so that none is late).
fn in_time_order(parts: impl IntoIterator<Item = Vec<(Ts, String)>>) -> Vec<String> {
    let mut all: Vec<(Ts, String)> = parts.into_iter().flatten().collect();
    all.sort_by_key(|(ts, _)| *ts);
    all.into_iter().map(|(_, line)| line).collect()
}

fn rate(
    window: &str,
    resource: &str,
    category: &str,
    count: i64,
    per_min: f64,
    workload: Option<&str>,
) -> AttackRate {
    AttackRate {
        window_start: at(window),
        window_end: Ts(at(window).0 + W),
        resource_id: resource.into(),
        workload: workload.map(Into::into),
        category: category.into(),
        event_count: count,
        rate_per_min: per_min,
    }
}

fn hit(window: &str, resource: &str, rule: &str, count: i64, workload: Option<&str>) -> PolicyHit {
    PolicyHit {
        window_start: at(window),
        window_end: Ts(at(window).0 + W),
        resource_id: resource.into(),
        workload: workload.map(Into::into),
        rule_id: rule.into(),
        rule_version: 1,
        action: reference::action(rule).into(),
        category: None,
        hit_count: count,
        prev_count: None,
        increase_pct: None,
    }
}

/// An `attack_increase` hit: `[count, prev]` and the increase in percent.
fn increase(
    window: &str,
    resource: &str,
    category: &str,
    [count, prev]: [i64; 2],
    pct: f64,
    workload: Option<&str>,
) -> PolicyHit {
    PolicyHit {
        category: Some(category.into()),
        prev_count: Some(prev),
        increase_pct: Some(pct),
        ..hit(window, resource, ATTACK_INCREASE, count, workload)
    }
}

/// A violation opened by line `line` of `src` (`file:<path>`).
fn opened(
    src: &str,
    line: u64,
    time: &str,
    resource: &str,
    rule: &str,
    workload: Option<&str>,
) -> Violation {
    Violation {
        changed_at: at(time),
        resource_id: resource.into(),
        workload: workload.map(Into::into),
        rule_id: rule.into(),
        rule_version: 1,
        action: reference::action(rule).into(),
        state: "open".into(),
        opened_at: at(time),
        resolved_at: None,
        opened_by: format!("{src}:{line}"),
        resolved_by: None,
    }
}

/// The violation `opening` resolved by line `line` of `src`.
fn resolved(opening: &Violation, src: &str, line: u64, time: &str) -> Violation {
    Violation {
        changed_at: at(time),
        state: "resolved".into(),
        resolved_at: Some(at(time)),
        resolved_by: Some(format!("{src}:{line}")),
        ..opening.clone()
    }
}

/// Builds a case given the source reference (`file:<path>`) its lines will have.
type CaseFn = fn(&str) -> Case;

/// A hand-written input and everything it must produce.
struct Case {
    lines: Vec<String>,
    late: u64,
    expected: Tables,
}

/// 12 then 15 is exactly 25% more: a hit. 12 then 14 is not.
fn increase_edge(_src: &str) -> Case {
    let web = [Some("web"), None];
    Case {
        lines: in_time_order([
            burst("vm-a", "brute_force", 0, 12, &web),
            burst("vm-a", "brute_force", 1, 15, &web),
            burst("vm-b", "brute_force", 0, 12, &[None]),
            burst("vm-b", "brute_force", 1, 14, &[None]),
        ]),
        late: 0,
        expected: Tables {
            attack_rates: vec![
                rate("00:00:00", "vm-a", "brute_force", 12, 2.4, Some("web")),
                rate("00:05:00", "vm-a", "brute_force", 15, 3.0, Some("web")),
                rate("00:00:00", "vm-b", "brute_force", 12, 2.4, None),
                rate("00:05:00", "vm-b", "brute_force", 14, 2.8, None),
            ],
            policy_hits: vec![increase(
                "00:05:00",
                "vm-a",
                "brute_force",
                [15, 12],
                25.0,
                Some("web"),
            )],
            violations: vec![],
        },
    }
}

/// The previous window needs at least 10 events: 9 then 100 is no hit, 10 then 13 is.
fn min_baseline(_src: &str) -> Case {
    let identity = [Some("identity")];
    let web = [Some("web")];
    Case {
        lines: in_time_order([
            burst("vm-c", "brute_force", 0, 9, &identity),
            burst("vm-c", "brute_force", 1, 100, &identity),
            burst("net-d", "ddos", 0, 10, &web),
            burst("net-d", "ddos", 1, 13, &web),
            burst("net-d", "ddos", 2, 16, &web),
        ]),
        late: 0,
        expected: Tables {
            attack_rates: vec![
                rate("00:00:00", "vm-c", "brute_force", 9, 1.8, Some("identity")),
                rate(
                    "00:05:00",
                    "vm-c",
                    "brute_force",
                    100,
                    20.0,
                    Some("identity"),
                ),
                rate("00:00:00", "net-d", "ddos", 10, 2.0, Some("web")),
                rate("00:05:00", "net-d", "ddos", 13, 2.6, Some("web")),
                rate("00:10:00", "net-d", "ddos", 16, 3.2, Some("web")),
            ],
            policy_hits: vec![increase(
                "00:05:00",
                "net-d",
                "ddos",
                [13, 10],
                30.0,
                Some("web"),
            )],
            violations: vec![],
        },
    }
}

/// No events in the window just before (or only in another category): no hit.
fn absent_previous_window(_src: &str) -> Case {
    let web = [Some("web")];
    Case {
        lines: in_time_order([
            burst("vm-e", "brute_force", 1, 50, &web),
            burst("vm-f", "brute_force", 0, 20, &web),
            burst("vm-f", "brute_force", 2, 50, &web),
            burst("vm-g", "brute_force", 0, 20, &web),
            burst("vm-g", "ddos", 1, 50, &web),
        ]),
        late: 0,
        expected: Tables {
            attack_rates: vec![
                rate("00:05:00", "vm-e", "brute_force", 50, 10.0, Some("web")),
                rate("00:00:00", "vm-f", "brute_force", 20, 4.0, Some("web")),
                rate("00:10:00", "vm-f", "brute_force", 50, 10.0, Some("web")),
                rate("00:00:00", "vm-g", "brute_force", 20, 4.0, Some("web")),
                rate("00:05:00", "vm-g", "ddos", 50, 10.0, Some("web")),
            ],
            policy_hits: vec![],
            violations: vec![],
        },
    }
}

/// Null, absent and `""` classifications are hits on storage and databases; a label is
/// not; a `classification_change` to a label resolves, one to `""` does not.
fn classification(src: &str) -> Case {
    let rule = UNCLASSIFIED_DATA;
    #[rustfmt::skip]
    let lines = vec![
        ev("00:00:10", "st-null", "storage", "data_access", r#""workload":"analytics","classification":null"#),
        ev("00:00:20", "st-absent", "storage", "data_access", r#""workload":"analytics""#),
        ev("00:00:30", "st-empty", "storage", "auth", r#""workload":"analytics","classification":"""#),
        ev("00:00:40", "st-internal", "storage", "data_access", r#""workload":"analytics","classification":"internal""#),
        ev("00:00:50", "db-absent", "database", "data_access", ""),
        ev("00:01:00", "vm-null", "vm", "auth", r#""classification":null"#),
        ev("00:01:10", "st-null", "storage", "data_access", r#""workload":"billing","classification":null"#),
        ev("00:02:00", "st-null", "storage", "classification_change", r#""workload":"billing","classification":"confidential""#),
        ev("00:02:10", "st-empty", "storage", "classification_change", r#""workload":"analytics","classification":"""#),
        ev("00:06:00", "st-null", "storage", "data_access", r#""workload":"analytics","classification":null"#),
        ev("00:06:30", "st-absent", "storage", "classification_change", r#""workload":"analytics","classification":"public""#),
        ev("00:07:00", "st-internal", "storage", "classification_change", r#""workload":"analytics","classification":"restricted""#),
    ];
    let analytics = Some("analytics");
    let null1 = opened(src, 1, "00:00:10", "st-null", rule, analytics);
    let absent = opened(src, 2, "00:00:20", "st-absent", rule, analytics);
    Case {
        lines,
        late: 0,
        expected: Tables {
            attack_rates: vec![],
            policy_hits: vec![
                hit("00:00:00", "st-null", rule, 2, Some("billing")),
                hit("00:00:00", "st-absent", rule, 1, analytics),
                hit("00:00:00", "st-empty", rule, 2, analytics),
                hit("00:00:00", "db-absent", rule, 1, None),
                hit("00:05:00", "st-null", rule, 1, analytics),
            ],
            violations: vec![
                resolved(&null1, src, 8, "00:02:00"),
                resolved(&absent, src, 11, "00:06:30"),
                null1,
                absent,
                opened(src, 3, "00:00:30", "st-empty", rule, analytics),
                opened(src, 5, "00:00:50", "db-absent", rule, None),
                opened(src, 10, "00:06:00", "st-null", rule, analytics),
            ],
        },
    }
}

/// `patched` absent, null or false on a vm's malware or vulnerability is a hit, true is
/// not; only a `patch` event with `patched = true` resolves.
fn patched(src: &str) -> Case {
    let rule = SECURITY_HEALTH;
    #[rustfmt::skip]
    let lines = vec![
        ev("00:00:10", "vm-absent", "vm", "malware", r#""workload":"web""#),
        ev("00:00:20", "vm-null", "vm", "vulnerability", r#""workload":"web","patched":null"#),
        ev("00:00:30", "vm-false", "vm", "malware", r#""workload":"ml","patched":false"#),
        ev("00:00:40", "vm-true", "vm", "vulnerability", r#""workload":"web","patched":true"#),
        ev("00:00:50", "st-malware", "storage", "malware", r#""workload":"analytics","classification":"internal","patched":false"#),
        ev("00:01:00", "vm-patch", "vm", "patch", r#""workload":"web","patched":false"#),
        ev("00:02:00", "vm-absent", "vm", "patch", r#""workload":"web","patched":true"#),
        ev("00:02:10", "vm-null", "vm", "patch", r#""workload":"web","patched":false"#),
        ev("00:02:20", "vm-false", "vm", "patch", r#""workload":"ml""#),
        ev("00:02:30", "vm-null", "vm", "vulnerability", r#""workload":"web","patched":true"#),
        ev("00:03:00", "vm-true", "vm", "patch", r#""workload":"web","patched":true"#),
        ev("00:03:10", "vm-absent", "vm", "malware", r#""workload":"web","patched":false"#),
        ev("00:03:20", "app-1", "app", "malware", r#""workload":"web","patched":false"#),
    ];
    let web = Some("web");
    let absent = opened(src, 1, "00:00:10", "vm-absent", rule, web);
    Case {
        lines,
        late: 0,
        expected: Tables {
            attack_rates: vec![],
            policy_hits: vec![
                hit("00:00:00", "vm-absent", rule, 2, web),
                hit("00:00:00", "vm-null", rule, 1, web),
                hit("00:00:00", "vm-false", rule, 1, Some("ml")),
            ],
            violations: vec![
                resolved(&absent, src, 7, "00:02:00"),
                absent,
                opened(src, 2, "00:00:20", "vm-null", rule, web),
                opened(src, 3, "00:00:30", "vm-false", rule, Some("ml")),
                opened(src, 12, "00:03:10", "vm-absent", rule, web),
            ],
        },
    }
}

/// `policy_allowed = false` on `network_access` is a hit; true, null or absent is not.
/// No violations for this rule.
fn policy_allowed(_src: &str) -> Case {
    let rule = NETWORK_VULNERABILITY;
    #[rustfmt::skip]
    let lines = vec![
        ev("00:00:10", "net-1", "network", "network_access", r#""workload":"web","policy_allowed":false"#),
        ev("00:00:20", "net-1", "network", "network_access", r#""workload":"ml","policy_allowed":false"#),
        ev("00:00:30", "net-2", "network", "network_access", r#""workload":"web","policy_allowed":true"#),
        ev("00:00:40", "net-3", "network", "network_access", r#""workload":"web""#),
        ev("00:00:50", "net-4", "network", "network_access", r#""workload":"web","policy_allowed":null"#),
        ev("00:01:00", "vm-5", "vm", "auth", r#""workload":"web","policy_allowed":false"#),
        ev("00:05:10", "vm-5", "vm", "network_access", r#""policy_allowed":false"#),
    ];
    Case {
        lines,
        late: 0,
        expected: Tables {
            attack_rates: vec![],
            policy_hits: vec![
                hit("00:00:00", "net-1", rule, 2, Some("web")),
                hit("00:05:00", "vm-5", rule, 1, None),
            ],
            violations: vec![],
        },
    }
}

/// An event is late when its window ends at or before the largest time seen before it,
/// minus one minute. Late events count nowhere and open nothing, but a late remedy still
/// resolves.
fn late(src: &str) -> Case {
    let bf = r#""workload":"web""#;
    #[rustfmt::skip]
    let lines = vec![
        ev("00:00:30", "st-l2", "storage", "data_access", r#""workload":"analytics","classification":null"#),
        ev("00:01:00", "vm-l", "vm", "brute_force", bf),
        ev("00:10:59.999", "vm-x", "vm", "auth", bf),
        // wm = 00:09:59.999 < 00:10:00, the end of its window: on time.
        ev("00:06:00", "vm-l", "vm", "brute_force", bf),
        ev("00:11:00", "vm-x", "vm", "auth", bf),
        // wm = 00:10:00 from here on.
        ev("00:09:59.999", "vm-l", "vm", "brute_force", bf),
        ev("00:02:00", "st-late", "storage", "data_access", r#""workload":"analytics""#),
        ev("00:02:30", "vm-l", "vm", "brute_force", bf),
        ev("00:03:00", "st-l2", "storage", "classification_change", r#""workload":"analytics","classification":"internal""#),
        ev("00:04:00", "vm-lm", "vm", "malware", r#""workload":"web","patched":false"#),
        ev("00:10:00", "vm-l", "vm", "brute_force", bf),
    ];
    let web = Some("web");
    let l2 = opened(
        src,
        1,
        "00:00:30",
        "st-l2",
        UNCLASSIFIED_DATA,
        Some("analytics"),
    );
    Case {
        lines,
        late: 5,
        expected: Tables {
            attack_rates: vec![
                rate("00:00:00", "vm-l", "brute_force", 1, 0.2, web),
                rate("00:05:00", "vm-l", "brute_force", 1, 0.2, web),
                rate("00:10:00", "vm-l", "brute_force", 1, 0.2, web),
            ],
            policy_hits: vec![hit(
                "00:00:00",
                "st-l2",
                UNCLASSIFIED_DATA,
                1,
                Some("analytics"),
            )],
            violations: vec![resolved(&l2, src, 9, "00:03:00"), l2],
        },
    }
}

/// Windows are aligned to the epoch, in UTC whatever the offset, and sub-microsecond
/// digits are cut, not rounded.
fn epoch_alignment(_src: &str) -> Case {
    let web = r#""workload":"web""#;
    Case {
        lines: vec![
            ev("00:04:59.999", "vm-e", "vm", "brute_force", web),
            ev("00:05:00.000", "vm-e", "vm", "brute_force", web),
            ev("00:04:59.9999999", "vm-e", "vm", "brute_force", web),
            ev_at(
                "2026-11-01T01:09:59.999+01:00",
                "vm-e",
                "vm",
                "brute_force",
                web,
            ),
            ev_at(
                "2026-11-01T01:10:00+01:00",
                "vm-e",
                "vm",
                "brute_force",
                web,
            ),
            ev_at(
                "2026-10-31T19:14:59.999-05:00",
                "vm-e",
                "vm",
                "brute_force",
                web,
            ),
        ],
        late: 0,
        expected: Tables {
            attack_rates: vec![
                rate("00:00:00", "vm-e", "brute_force", 2, 0.4, Some("web")),
                rate("00:05:00", "vm-e", "brute_force", 2, 0.4, Some("web")),
                rate("00:10:00", "vm-e", "brute_force", 2, 0.4, Some("web")),
            ],
            policy_hits: vec![],
            violations: vec![],
        },
    }
}

#[test]
fn edge_cases() {
    let cases: [(&str, CaseFn); 8] = [
        ("increase_edge", increase_edge),
        ("min_baseline", min_baseline),
        ("absent_previous_window", absent_previous_window),
        ("classification", classification),
        ("patched", patched),
        ("policy_allowed", policy_allowed),
        ("late", late),
        ("epoch_alignment", epoch_alignment),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, build) in cases {
        let path = dir.path().join(format!("{name}.jsonl"));
        let case = build(&format!("file:{}", path.display()));
        std::fs::write(&path, case.lines.join("\n") + "\n").unwrap();

        let reference = reference::evaluate(&all_events(&path), &Params::DEFAULT, &mut Open::new());
        assert_eq!(reference.late, case.late, "{name}: late events, reference");
        assert_same_tables(
            &format!("{name}: reference vs hand-written"),
            &reference.tables,
            &case.expected,
        );

        let archive = dir.path().join(format!("archive-{name}"));
        let summary = run(&path, &archive, NO_ENV);
        assert_eq!(
            late_count(&summary),
            case.late,
            "{name}: late events, rampart"
        );
        assert_same_tables(
            &format!("{name}: rampart vs expected"),
            &read_tables(&archive),
            &case.expected,
        );
    }
}

// ---------------------------------------------------------------------------------------
// Restarts and alerts.

#[test]
fn violations_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    #[rustfmt::skip]
    let first = [
        ev("00:01:00", "st-1", "storage", "data_access", r#""workload":"analytics","classification":null"#),
        ev("00:02:00", "vm-1", "vm", "malware", r#""workload":"web""#),
    ];
    #[rustfmt::skip]
    let second = [
        ev("00:20:00", "st-1", "storage", "data_access", r#""workload":"analytics""#),
        ev("00:21:00", "vm-1", "vm", "patch", r#""workload":"web","patched":true"#),
    ];
    std::fs::write(&a, first.join("\n") + "\n").unwrap();
    std::fs::write(&b, second.join("\n") + "\n").unwrap();
    let (src_a, src_b) = (
        format!("file:{}", a.display()),
        format!("file:{}", b.display()),
    );
    let vm = opened(&src_a, 2, "00:02:00", "vm-1", SECURITY_HEALTH, Some("web"));
    let expected = Tables {
        attack_rates: vec![],
        policy_hits: vec![
            hit("00:00:00", "st-1", UNCLASSIFIED_DATA, 1, Some("analytics")),
            hit("00:00:00", "vm-1", SECURITY_HEALTH, 1, Some("web")),
            hit("00:20:00", "st-1", UNCLASSIFIED_DATA, 1, Some("analytics")),
        ],
        violations: vec![
            opened(
                &src_a,
                1,
                "00:01:00",
                "st-1",
                UNCLASSIFIED_DATA,
                Some("analytics"),
            ),
            resolved(&vm, &src_b, 2, "00:21:00"),
            vm,
        ],
    };

    let mut open = Open::new();
    let mut reference = reference::evaluate(&all_events(&a), &Params::DEFAULT, &mut open).tables;
    reference.extend(reference::evaluate(&all_events(&b), &Params::DEFAULT, &mut open).tables);
    assert_same_tables("reference vs hand-written", &reference, &expected);

    let archive = dir.path().join("archive");
    run(&a, &archive, NO_ENV);
    run(&b, &archive, NO_ENV);
    assert_same_tables("rampart, after two runs", &read_tables(&archive), &expected);
}

/// One line of the alerts file, or what a table row should put there.
#[derive(Debug)]
struct Alert {
    kind: String,
    rule_id: String,
    action: String,
    resource_id: String,
    workload: Option<String>,
}

impl Row for Alert {
    fn key(&self) -> String {
        format!(
            "{:?}",
            (
                &self.kind,
                &self.rule_id,
                &self.action,
                &self.resource_id,
                &self.workload,
            )
        )
    }
}

#[test]
fn alerts_file_carries_every_hit_and_violation_change() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", stream(10_000, 16));
    let alerts_path: PathBuf = dir.path().join("alerts.jsonl");
    let archive = dir.path().join("archive");
    run(&g.path, &archive, [("RAMPART_ALERTS__PATH", &alerts_path)]);
    let tables = read_tables(&archive);
    let expected = reference::evaluate(&accepted(&g), &Params::DEFAULT, &mut Open::new());
    assert_same_tables("rampart vs reference", &tables, &expected.tables);

    let text = std::fs::read_to_string(&alerts_path)
        .unwrap_or_else(|e| panic!("{}: {e}", alerts_path.display()));
    let alerts: Vec<Alert> = text
        .lines()
        .map(|l| {
            let v: Map<String, Value> =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            let r = JsonRow(&v);
            Alert {
                kind: r.text("type"),
                rule_id: r.text("rule_id"),
                action: r.text("action"),
                resource_id: r.text("resource_id"),
                workload: r.opt_text("workload"),
            }
        })
        .collect();
    let hits = tables.policy_hits.iter().map(|h| Alert {
        kind: "policy_hit".into(),
        rule_id: h.rule_id.clone(),
        action: h.action.clone(),
        resource_id: h.resource_id.clone(),
        workload: h.workload.clone(),
    });
    let changes = tables.violations.iter().map(|v| Alert {
        kind: "violation".into(),
        rule_id: v.rule_id.clone(),
        action: v.action.clone(),
        resource_id: v.resource_id.clone(),
        workload: v.workload.clone(),
    });
    let from_tables: Vec<Alert> = hits.chain(changes).collect();
    let count = |rows: &[Alert], kind: &str| rows.iter().filter(|a| a.kind == kind).count();
    assert!(count(&from_tables, "policy_hit") > 0 && count(&from_tables, "violation") > 0);
    for kind in ["policy_hit", "violation"] {
        assert_eq!(
            count(&alerts, kind),
            count(&from_tables, kind),
            "{kind} alerts vs table rows"
        );
    }
    assert_eq!(alerts.len(), from_tables.len(), "alerts of other types");
    if let Some(diff) = diff_rows("alerts", &alerts, &from_tables) {
        panic!("alerts file vs tables:\n{diff}");
    }
}
