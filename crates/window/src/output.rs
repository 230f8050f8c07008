//! What the window stage emits: rows of `attack_rates`, `policy_hits` and `violations`,
//! as Arrow batches for the archive and as JSON alerts.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use rampart_core::schema;
use serde_json::{Value, json};

use crate::{Error, Result};

/// One `attack_rates` row. Its strings are shared (with the window state and the other
/// rows that name the same resource, workload or category), not copied for each row.
#[derive(Debug, Clone, PartialEq)]
pub struct AttackRate {
    pub window_start: i64,
    pub window_end: i64,
    pub resource_id: Arc<str>,
    pub workload: Option<Arc<str>>,
    pub category: Arc<str>,
    pub event_count: i64,
    pub rate_per_min: f64,
}

/// One `policy_hits` row (strings shared, as in [`AttackRate`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyHit {
    pub window_start: i64,
    pub window_end: i64,
    pub resource_id: Arc<str>,
    pub workload: Option<Arc<str>>,
    pub rule_id: Arc<str>,
    pub rule_version: i32,
    pub action: Arc<str>,
    /// The attack category (`attack_increase`), else `None`.
    pub category: Option<Arc<str>>,
    pub hit_count: i64,
    pub prev_count: Option<i64>,
    pub increase_pct: Option<f64>,
}

/// Whether a violation change opened or resolved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationState {
    Open,
    Resolved,
}

impl ViolationState {
    /// `open` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolved => "resolved",
        }
    }
}

/// One `violations` row: a violation opening or being resolved (strings shared, as in
/// [`AttackRate`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ViolationChange {
    pub changed_at: i64,
    pub resource_id: Arc<str>,
    pub workload: Option<Arc<str>>,
    pub rule_id: Arc<str>,
    pub rule_version: i32,
    pub action: Arc<str>,
    pub state: ViolationState,
    pub opened_at: i64,
    pub resolved_at: Option<i64>,
    pub opened_by: String,
    pub resolved_by: Option<String>,
}

/// Everything one step of the window stage produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs {
    pub attack_rates: Vec<AttackRate>,
    pub policy_hits: Vec<PolicyHit>,
    pub violations: Vec<ViolationChange>,
    /// Late events seen in this step.
    pub late: u64,
    /// Windows closed in this step.
    pub windows_closed: u64,
}

impl Outputs {
    /// Appends `other`.
    pub fn extend(&mut self, other: Outputs) {
        self.attack_rates.extend(other.attack_rates);
        self.policy_hits.extend(other.policy_hits);
        self.violations.extend(other.violations);
        self.late += other.late;
        self.windows_closed += other.windows_closed;
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.attack_rates.is_empty() && self.policy_hits.is_empty() && self.violations.is_empty()
    }
}

fn ts() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

fn batch(table: &str, schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    RecordBatch::try_new(schema, columns).map_err(|e| Error::Internal {
        message: format!("building {table}: {e}"),
    })
}

/// `attack_rates` rows as a batch.
pub fn attack_rates_batch(rows: &[AttackRate]) -> Result<RecordBatch> {
    let (mut s, mut e, mut r, mut w, mut c, mut n, mut rate) = (
        ts(),
        ts(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        Int64Builder::new(),
        Float64Builder::new(),
    );
    for x in rows {
        s.append_value(x.window_start);
        e.append_value(x.window_end);
        r.append_value(&x.resource_id);
        w.append_option(x.workload.as_deref());
        c.append_value(&x.category);
        n.append_value(x.event_count);
        rate.append_value(x.rate_per_min);
    }
    batch(
        schema::ATTACK_RATES,
        schema::attack_rates_schema(),
        vec![
            Arc::new(s.finish()),
            Arc::new(e.finish()),
            Arc::new(r.finish()),
            Arc::new(w.finish()),
            Arc::new(c.finish()),
            Arc::new(n.finish()),
            Arc::new(rate.finish()),
        ],
    )
}

/// `policy_hits` rows as a batch.
pub fn policy_hits_batch(rows: &[PolicyHit]) -> Result<RecordBatch> {
    let (mut s, mut e, mut r, mut w) = (ts(), ts(), StringBuilder::new(), StringBuilder::new());
    let (mut id, mut v, mut a, mut c) = (
        StringBuilder::new(),
        Int32Builder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut n, mut p, mut pct) = (
        Int64Builder::new(),
        Int64Builder::new(),
        Float64Builder::new(),
    );
    for x in rows {
        s.append_value(x.window_start);
        e.append_value(x.window_end);
        r.append_value(&x.resource_id);
        w.append_option(x.workload.as_deref());
        id.append_value(&x.rule_id);
        v.append_value(x.rule_version);
        a.append_value(&x.action);
        c.append_option(x.category.as_deref());
        n.append_value(x.hit_count);
        p.append_option(x.prev_count);
        pct.append_option(x.increase_pct);
    }
    batch(
        schema::POLICY_HITS,
        schema::policy_hits_schema(),
        vec![
            Arc::new(s.finish()),
            Arc::new(e.finish()),
            Arc::new(r.finish()),
            Arc::new(w.finish()),
            Arc::new(id.finish()),
            Arc::new(v.finish()),
            Arc::new(a.finish()),
            Arc::new(c.finish()),
            Arc::new(n.finish()),
            Arc::new(p.finish()),
            Arc::new(pct.finish()),
        ],
    )
}

/// `violations` rows as a batch.
pub fn violations_batch(rows: &[ViolationChange]) -> Result<RecordBatch> {
    let (mut at, mut r, mut w, mut id, mut v, mut a, mut st) = (
        ts(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        Int32Builder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut oa, mut ra, mut ob, mut rb) = (ts(), ts(), StringBuilder::new(), StringBuilder::new());
    for x in rows {
        at.append_value(x.changed_at);
        r.append_value(&x.resource_id);
        w.append_option(x.workload.as_deref());
        id.append_value(&x.rule_id);
        v.append_value(x.rule_version);
        a.append_value(&x.action);
        st.append_value(x.state.as_str());
        oa.append_value(x.opened_at);
        ra.append_option(x.resolved_at);
        ob.append_value(&x.opened_by);
        rb.append_option(x.resolved_by.as_deref());
    }
    batch(
        schema::VIOLATIONS,
        schema::violations_schema(),
        vec![
            Arc::new(at.finish()),
            Arc::new(r.finish()),
            Arc::new(w.finish()),
            Arc::new(id.finish()),
            Arc::new(v.finish()),
            Arc::new(a.finish()),
            Arc::new(st.finish()),
            Arc::new(oa.finish()),
            Arc::new(ra.finish()),
            Arc::new(ob.finish()),
            Arc::new(rb.finish()),
        ],
    )
}

fn rfc3339(micros: i64) -> Value {
    chrono::DateTime::<chrono::Utc>::from_timestamp_micros(micros).map_or(Value::Null, |t| {
        Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    })
}

/// SHA-256 (hex) of `parts` written as one compact JSON array: the recipe of every
/// `alert_id`, which a consumer can repeat from the alert's own fields.
fn alert_id(parts: &Value) -> String {
    rampart_core::ledger::sha256_hex(parts.to_string().as_bytes())
}

impl PolicyHit {
    /// A stable id of this hit: the same rule, resource, window and category always give
    /// the same id, so a consumer can drop a redelivered alert. It is the SHA-256 of the
    /// compact JSON array `["policy_hit", rule_id, rule_version, resource_id,
    /// window_start, category]`, with the values as in [`PolicyHit::alert`].
    pub fn alert_id(&self) -> String {
        alert_id(&json!([
            "policy_hit",
            &*self.rule_id,
            self.rule_version,
            &*self.resource_id,
            rfc3339(self.window_start),
            self.category.as_deref(),
        ]))
    }

    /// The alert for this hit: routed by workload owner, rule and action.
    pub fn alert(&self) -> Value {
        serde_json::to_value(self.line()).unwrap_or_default()
    }

    /// [`PolicyHit::alert`] as one line of compact JSON, written without building the
    /// value first (the alerts output's hot path); the same bytes.
    pub fn alert_line(&self) -> String {
        serde_json::to_string(&self.line()).unwrap_or_default()
    }

    fn line(&self) -> HitLine<'_> {
        HitLine {
            action: &self.action,
            category: self.category.as_deref(),
            hit_count: self.hit_count,
            increase_pct: self.increase_pct,
            prev_count: self.prev_count,
            resource_id: &self.resource_id,
            route: Route {
                owner: self.workload.as_deref(),
                security: true,
            },
            rule_id: &self.rule_id,
            rule_version: self.rule_version,
            kind: "policy_hit",
            window_end: rfc3339(self.window_end),
            window_start: rfc3339(self.window_start),
            workload: self.workload.as_deref(),
        }
    }
}

impl ViolationChange {
    /// A stable id of this change (see [`PolicyHit::alert_id`]): the SHA-256 of the
    /// compact JSON array `["violation", rule_id, rule_version, resource_id, state,
    /// opened_at, changed_at]`, with the values as in [`ViolationChange::alert`].
    pub fn alert_id(&self) -> String {
        alert_id(&json!([
            "violation",
            &*self.rule_id,
            self.rule_version,
            &*self.resource_id,
            self.state.as_str(),
            rfc3339(self.opened_at),
            rfc3339(self.changed_at),
        ]))
    }

    /// The alert for this change: routed by workload owner, rule and action.
    pub fn alert(&self) -> Value {
        serde_json::to_value(self.line()).unwrap_or_default()
    }

    /// [`ViolationChange::alert`] as one line of compact JSON, written without building
    /// the value first; the same bytes.
    pub fn alert_line(&self) -> String {
        serde_json::to_string(&self.line()).unwrap_or_default()
    }

    fn line(&self) -> ViolationLine<'_> {
        ViolationLine {
            action: &self.action,
            changed_at: rfc3339(self.changed_at),
            opened_at: rfc3339(self.opened_at),
            opened_by: &self.opened_by,
            resolved_at: self.resolved_at.map(rfc3339),
            resolved_by: self.resolved_by.as_deref(),
            resource_id: &self.resource_id,
            route: Route {
                owner: self.workload.as_deref(),
                security: true,
            },
            rule_id: &self.rule_id,
            rule_version: self.rule_version,
            state: self.state.as_str(),
            kind: "violation",
            workload: self.workload.as_deref(),
        }
    }
}

// The alerts' fields, in the order `serde_json::Value` writes an object's keys (sorted),
// so that `alert_line` and `alert().to_string()` give the same bytes.
#[derive(serde::Serialize)]
struct Route<'a> {
    owner: Option<&'a str>,
    security: bool,
}

#[derive(serde::Serialize)]
struct HitLine<'a> {
    action: &'a str,
    category: Option<&'a str>,
    hit_count: i64,
    increase_pct: Option<f64>,
    prev_count: Option<i64>,
    resource_id: &'a str,
    route: Route<'a>,
    rule_id: &'a str,
    rule_version: i32,
    #[serde(rename = "type")]
    kind: &'static str,
    window_end: Value,
    window_start: Value,
    workload: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct ViolationLine<'a> {
    action: &'a str,
    changed_at: Value,
    opened_at: Value,
    opened_by: &'a str,
    resolved_at: Option<Value>,
    resolved_by: Option<&'a str>,
    resource_id: &'a str,
    route: Route<'a>,
    rule_id: &'a str,
    rule_version: i32,
    state: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    workload: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_793_491_500_000_000; // 2026-11-01T00:05:00Z

    fn hit(category: Option<&str>) -> PolicyHit {
        PolicyHit {
            window_start: T,
            window_end: T + 300_000_000,
            resource_id: "vm-1".into(),
            workload: Some("payments".into()),
            rule_id: "attack_increase".into(),
            rule_version: 2,
            action: "notify_security_and_owner".into(),
            category: category.map(Arc::from),
            hit_count: 30,
            prev_count: Some(12),
            increase_pct: Some(150.0),
        }
    }

    fn resolved(workload: Option<&str>) -> ViolationChange {
        ViolationChange {
            changed_at: T + 1_000_000,
            resource_id: "st-1".into(),
            workload: workload.map(Arc::from),
            rule_id: "unclassified_data".into(),
            rule_version: 1,
            action: "deny_external_access".into(),
            state: ViolationState::Resolved,
            opened_at: T,
            resolved_at: Some(T + 1_000_000),
            opened_by: "file:x.jsonl:1".into(),
            resolved_by: Some("file:x.jsonl:2".into()),
        }
    }

    #[test]
    fn alert_ids_follow_their_documented_recipe() {
        // The recipe written out by hand, as a consumer would repeat it.
        let text = r#"["policy_hit","attack_increase",2,"vm-1","2026-11-01T00:05:00Z","ddos"]"#;
        assert_eq!(
            hit(Some("ddos")).alert_id(),
            rampart_core::ledger::sha256_hex(text.as_bytes())
        );
        // What identifies the hit changes the id; the counts do not.
        let mut recount = hit(Some("ddos"));
        recount.hit_count = 31;
        assert_eq!(recount.alert_id(), hit(Some("ddos")).alert_id());
        assert_ne!(
            hit(Some("brute_force")).alert_id(),
            hit(Some("ddos")).alert_id()
        );
        assert_ne!(hit(None).alert_id(), hit(Some("ddos")).alert_id());

        let change = resolved(None);
        let text = r#"["violation","unclassified_data",1,"st-1","resolved","2026-11-01T00:05:00Z","2026-11-01T00:05:01Z"]"#;
        assert_eq!(
            change.alert_id(),
            rampart_core::ledger::sha256_hex(text.as_bytes())
        );
        let opened = ViolationChange {
            state: ViolationState::Open,
            ..change.clone()
        };
        assert_ne!(opened.alert_id(), change.alert_id());
    }

    // The alerts as they were built before, field by field with `json!`: the reference.
    fn hit_reference(h: &PolicyHit) -> Value {
        json!({
            "type": "policy_hit",
            "rule_id": h.rule_id,
            "rule_version": h.rule_version,
            "action": h.action,
            "resource_id": h.resource_id,
            "workload": h.workload,
            "route": {"security": true, "owner": h.workload},
            "window_start": rfc3339(h.window_start),
            "window_end": rfc3339(h.window_end),
            "category": h.category,
            "hit_count": h.hit_count,
            "prev_count": h.prev_count,
            "increase_pct": h.increase_pct,
        })
    }

    fn violation_reference(v: &ViolationChange) -> Value {
        json!({
            "type": "violation",
            "state": v.state.as_str(),
            "rule_id": v.rule_id,
            "rule_version": v.rule_version,
            "action": v.action,
            "resource_id": v.resource_id,
            "workload": v.workload,
            "route": {"security": true, "owner": v.workload},
            "changed_at": rfc3339(v.changed_at),
            "opened_at": rfc3339(v.opened_at),
            "resolved_at": v.resolved_at.map(rfc3339),
            "opened_by": v.opened_by,
            "resolved_by": v.resolved_by,
        })
    }

    #[test]
    fn alert_lines_are_the_bytes_of_the_alert_values() {
        // The value built with `json!` is the reference; the line is written directly.
        let mut hits = vec![hit(Some("ddos")), hit(None)];
        hits.push(PolicyHit {
            workload: None,
            prev_count: None,
            increase_pct: None,
            resource_id: "quote\"and\\back\u{1}".into(),
            window_start: i64::MAX,
            ..hit(None)
        });
        for h in &hits {
            assert_eq!(h.alert(), hit_reference(h));
            assert_eq!(h.alert_line(), hit_reference(h).to_string());
        }
        let change = resolved(Some("billing"));
        let opened = ViolationChange {
            state: ViolationState::Open,
            resolved_at: None,
            resolved_by: None,
            workload: None,
            ..change.clone()
        };
        for c in [&change, &opened] {
            assert_eq!(c.alert(), violation_reference(c));
            assert_eq!(c.alert_line(), violation_reference(c).to_string());
        }
    }
}
