//! Integration tests of the window engine with the shipped rule files: one table of
//! input events and expected hits per rule file, then the engine's contract (lateness,
//! batching, violations, idle partitions, closing and freeing windows).
//!
//! Expected rows are written by hand from `spec/events.md` §2-§3, not from the engine.

mod attack_increase;
mod engine;
mod network_vulnerability;
mod security_health;
mod unclassified_data;
mod violations;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    new_null_array,
};
use rampart_core::config::{RulesConfig, WindowConfig};
use rampart_core::schema::{events as ev, events_schema, source as src};
use rampart_window::{Outputs, ViolationChange, WindowEngine};

pub(crate) const SECOND: i64 = 1_000_000;
pub(crate) const MINUTE: i64 = 60 * SECOND;
/// The default window size, W.
pub(crate) const W: i64 = 5 * MINUTE;

/// The source file every test event claims to come from.
pub(crate) const FILE: &str = "t.jsonl";

/// `HH:MM` or `HH:MM:SS` on 2026-11-01 (UTC), in microseconds since the epoch.
pub(crate) fn at(time: &str) -> i64 {
    let time = if time.len() == 5 {
        format!("{time}:00")
    } else {
        time.to_string()
    };
    chrono::DateTime::parse_from_rfc3339(&format!("2026-11-01T{time}Z"))
        .unwrap_or_else(|e| panic!("{time}: {e}"))
        .timestamp_micros()
}

/// One input event; the fields no rule reads are left null.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ev {
    pub(crate) ts: i64,
    pub(crate) resource: &'static str,
    pub(crate) resource_type: &'static str,
    pub(crate) category: &'static str,
    pub(crate) workload: Option<&'static str>,
    pub(crate) classification: Option<&'static str>,
    pub(crate) patched: Option<bool>,
    pub(crate) policy_allowed: Option<bool>,
}

/// An event at `time` (see [`at`]).
pub(crate) fn ev(
    time: &str,
    resource: &'static str,
    resource_type: &'static str,
    category: &'static str,
) -> Ev {
    Ev {
        ts: at(time),
        resource,
        resource_type,
        category,
        workload: None,
        classification: None,
        patched: None,
        policy_allowed: None,
    }
}

impl Ev {
    pub(crate) fn classification(self, c: &'static str) -> Self {
        Self {
            classification: Some(c),
            ..self
        }
    }
    pub(crate) fn patched(self, p: bool) -> Self {
        Self {
            patched: Some(p),
            ..self
        }
    }
    pub(crate) fn allowed(self, a: bool) -> Self {
        Self {
            policy_allowed: Some(a),
            ..self
        }
    }
    pub(crate) fn workload(self, w: &'static str) -> Self {
        Self {
            workload: Some(w),
            ..self
        }
    }
    /// The same event `micros` later.
    pub(crate) fn plus(self, micros: i64) -> Self {
        Self {
            ts: self.ts + micros,
            ..self
        }
    }
}

/// `n` events like `template`, spread evenly over the window starting at `window`.
pub(crate) fn burst(n: i64, window: &str, template: Ev) -> Vec<Ev> {
    let start = at(window);
    (0..n)
        .map(|i| Ev {
            ts: start + i * (W / n),
            ..template.clone()
        })
        .collect()
}

/// `events` in event-time order (stable), so that none of them is late.
pub(crate) fn in_time_order(events: impl IntoIterator<Item = Ev>) -> Vec<Ev> {
    let mut v: Vec<Ev> = events.into_iter().collect();
    v.sort_by_key(|e| e.ts);
    v
}

/// The events as a batch with every column of `events_schema()`; the columns an [`Ev`]
/// does not set are null. Each event comes with its `source_line`.
pub(crate) fn batch<'a>(events: impl IntoIterator<Item = (i64, &'a Ev)>) -> RecordBatch {
    let (lines, events): (Vec<i64>, Vec<&Ev>) = events.into_iter().unzip();
    let schema = events_schema();
    let strings = |f: fn(&Ev) -> Option<&str>| -> ArrayRef {
        Arc::new(events.iter().map(|e| f(e)).collect::<StringArray>())
    };
    let times = || -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(events.iter().map(|e| e.ts))
                .with_timezone("UTC"),
        )
    };
    let bools = |f: fn(&Ev) -> Option<bool>| -> ArrayRef {
        Arc::new(events.iter().map(|e| f(e)).collect::<BooleanArray>())
    };
    let columns = schema
        .fields()
        .iter()
        .map(|field| match field.name().as_str() {
            ev::TS | ev::INGESTED_AT => times(),
            ev::RESOURCE_ID => strings(|e| Some(e.resource)),
            ev::RESOURCE_TYPE => strings(|e| Some(e.resource_type)),
            ev::CATEGORY => strings(|e| Some(e.category)),
            ev::WORKLOAD => strings(|e| e.workload),
            ev::CLASSIFICATION => strings(|e| e.classification),
            ev::PATCHED => bools(|e| e.patched),
            ev::POLICY_ALLOWED => bools(|e| e.policy_allowed),
            src::SOURCE_FILE => strings(|_| Some(FILE)),
            src::SOURCE_LINE => Arc::new(Int64Array::from(lines.clone())),
            _ => new_null_array(field.data_type(), events.len()),
        })
        .collect();
    RecordBatch::try_new(schema, columns).expect("an events batch")
}

/// The shipped rules (`sql/rules`, `sql/windows/attack_counts.sql`) with the default
/// thresholds: 25% over a baseline of at least 10.
pub(crate) fn shipped_rules() -> RulesConfig {
    let root = rampart_core::package_dir(env!("CARGO_MANIFEST_DIR")).join("../../sql");
    RulesConfig {
        dir: root.join("rules").display().to_string(),
        window_sql: root.join("windows/attack_counts.sql").display().to_string(),
        increase_pct: 25,
        min_baseline: 10,
        ..RulesConfig::default()
    }
}

/// Windows of 5 minutes with 1 minute of allowed lateness.
pub(crate) fn window_config() -> WindowConfig {
    WindowConfig {
        size: Duration::from_secs(300),
        allowed_lateness: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(30),
    }
}

/// An engine and the next `source_line` to hand out.
pub(crate) struct Harness {
    pub(crate) engine: WindowEngine,
    next_line: i64,
}

impl Harness {
    /// The shipped rules, default windows, no open violations.
    pub(crate) async fn new() -> Self {
        Self::with(&window_config(), &shipped_rules(), Vec::new()).await
    }

    pub(crate) async fn with(
        window: &WindowConfig,
        rules: &RulesConfig,
        open: Vec<ViolationChange>,
    ) -> Self {
        let engine = WindowEngine::new(window, rules, open)
            .await
            .expect("the engine starts");
        Self {
            engine,
            next_line: 1,
        }
    }

    /// Feeds `events` to `partition` as one batch; lines are numbered on from the last
    /// event fed.
    pub(crate) async fn feed(&mut self, partition: i32, events: &[Ev]) -> Outputs {
        let first = self.next_line;
        self.next_line += events.len() as i64;
        let b = batch((first..).zip(events));
        self.engine.process(partition, &b).await.expect("process")
    }

    pub(crate) async fn close_all(&mut self) -> Outputs {
        self.engine.close_all().await.expect("close_all")
    }

    pub(crate) async fn idle(&mut self, partition: i32, micros: i64) -> Outputs {
        self.engine
            .advance_idle(partition, micros)
            .await
            .expect("advance_idle")
    }
}

/// Feeds `events` to partition 0 in one batch, then closes every window.
pub(crate) async fn run(events: &[Ev]) -> Outputs {
    run_with(&shipped_rules(), events).await
}

pub(crate) async fn run_with(rules: &RulesConfig, events: &[Ev]) -> Outputs {
    let mut h = Harness::with(&window_config(), rules, Vec::new()).await;
    let mut out = h.feed(0, events).await;
    out.extend(h.close_all().await);
    out
}

/// The enforcement action of each shipped rule (spec §3).
pub(crate) fn action(rule: &str) -> &'static str {
    match rule {
        "attack_increase" | "network_vulnerability" => "notify_security_and_owner",
        "unclassified_data" => "deny_external_access",
        "security_health" => "disable_access",
        other => panic!("no shipped rule {other}"),
    }
}

/// The columns of a `policy_hits` row that a rule decides.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hit {
    pub(crate) window_start: i64,
    pub(crate) resource_id: String,
    pub(crate) category: Option<String>,
    pub(crate) hit_count: i64,
    pub(crate) prev_count: Option<i64>,
    pub(crate) increase_pct: Option<f64>,
}

/// An event rule's hit: `count` hits of `resource` in the window starting at `window`.
pub(crate) fn hit(window: &str, resource: &str, count: i64) -> Hit {
    Hit {
        window_start: at(window),
        resource_id: resource.to_string(),
        category: None,
        hit_count: count,
        prev_count: None,
        increase_pct: None,
    }
}

/// The hits of `rule` in `out`, sorted; checks the columns every hit of it shares
/// (window end, version 1, the rule's action).
pub(crate) fn hits_of(out: &Outputs, rule: &str) -> Vec<Hit> {
    let mut hits: Vec<Hit> = out
        .policy_hits
        .iter()
        .filter(|h| &*h.rule_id == rule)
        .map(|h| {
            assert_eq!(h.window_end, h.window_start + W, "{h:?}");
            assert_eq!((h.rule_version, &*h.action), (1, action(rule)), "{h:?}");
            Hit {
                window_start: h.window_start,
                resource_id: h.resource_id.to_string(),
                category: h.category.as_deref().map(str::to_string),
                hit_count: h.hit_count,
                prev_count: h.prev_count,
                increase_pct: h.increase_pct,
            }
        })
        .collect();
    hits.sort_by(|a, b| {
        (a.window_start, &a.resource_id, &a.category).cmp(&(
            b.window_start,
            &b.resource_id,
            &b.category,
        ))
    });
    hits
}

/// Asserts that `rule`'s hits in `out` are `expected` (in any order); percentages are
/// compared to within 1e-9. `case` names the case in the message.
pub(crate) fn assert_hits(out: &Outputs, rule: &str, case: &str, mut expected: Vec<Hit>) {
    let actual = hits_of(out, rule);
    expected.sort_by(|a, b| {
        (a.window_start, &a.resource_id, &a.category).cmp(&(
            b.window_start,
            &b.resource_id,
            &b.category,
        ))
    });
    let same = |a: &Hit, b: &Hit| {
        let pct = match (a.increase_pct, b.increase_pct) {
            (Some(x), Some(y)) => (x - y).abs() < 1e-9,
            (x, y) => x == y,
        };
        pct && Hit {
            increase_pct: None,
            ..a.clone()
        } == Hit {
            increase_pct: None,
            ..b.clone()
        }
    };
    let equal =
        actual.len() == expected.len() && actual.iter().zip(&expected).all(|(a, e)| same(a, e));
    assert!(
        equal,
        "{rule} hits differ in case `{case}`\nactual:\n{}\nexpected:\n{}",
        render(&actual),
        render(&expected)
    );
}

fn render(hits: &[Hit]) -> String {
    hits.iter()
        .map(|h| {
            let start = chrono::DateTime::from_timestamp_micros(h.window_start).map_or_else(
                || h.window_start.to_string(),
                |t| t.format("%H:%M:%S").to_string(),
            );
            format!(
                "  {start} {} {:?} hits={} prev={:?} pct={:?}\n",
                h.resource_id, h.category, h.hit_count, h.prev_count, h.increase_pct
            )
        })
        .collect()
}

/// One case of a rule's table: its name, input events and the rule's expected hits.
pub(crate) type Case = (&'static str, Vec<Ev>, Vec<Hit>);

/// Runs each case of `table` alone, then all of them together on one partition (where
/// other cases' events share the windows), and compares `rule`'s hits. The events are
/// fed in time order, so that none is late.
pub(crate) async fn check_table(rule: &str, table: Vec<Case>) {
    for (case, events, expected) in &table {
        let out = run(&in_time_order(events.clone())).await;
        assert_eq!(out.late, 0, "{case}");
        assert_hits(&out, rule, case, expected.clone());
    }
    let all = in_time_order(table.iter().flat_map(|(_, events, _)| events.clone()));
    let out = run(&all).await;
    assert_eq!(out.late, 0);
    let expected = table.into_iter().flat_map(|(_, _, hits)| hits).collect();
    assert_hits(&out, rule, "all cases together", expected);
}
