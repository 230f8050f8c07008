//! A partition's window state as stored at each commit, so that a restarted run, or
//! the partition's next owner in a consumer group, continues it exactly.
//!
//! The state holds what the results of later events depend on: the largest event time
//! (the watermark), the open windows' counts and hits, the last closed window's attack
//! counts (the baseline of `attack_increase`) and the violations open on the partition.

use serde::{Deserialize, Serialize};

/// The `format` of the state this version writes and reads.
pub const STATE_FORMAT: &str = "rampart-window-state/1";

/// One partition's window state (see the module docs). Its strings are `String`s, or
/// `&str` borrowed from the engine when it is only written
/// ([`WindowEngine::snapshot_borrowed`](crate::WindowEngine::snapshot_borrowed)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionSnapshot<S = String> {
    /// Always [`STATE_FORMAT`].
    pub format: S,
    /// Window size in microseconds: a state kept under another size is not restored.
    pub window_micros: i64,
    /// Largest event time seen (or moved forward while idle), microseconds.
    pub max_ts: Option<i64>,
    /// Open windows, by start.
    pub windows: Vec<WindowSnapshot<S>>,
    /// The last closed window's start and attack counts.
    pub prev: Option<PrevSnapshot<S>>,
    /// Violations opened by events of this partition and not resolved yet.
    pub open_violations: Vec<OpenSnapshot<S>>,
}

/// An open window's counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowSnapshot<S = String> {
    pub start: i64,
    pub attacks: Vec<CountSnapshot<S>>,
    pub hits: Vec<HitSnapshot<S>>,
}

/// On-time attack events of one (resource, category) in a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>"))]
pub struct CountSnapshot<S = String> {
    pub resource_id: S,
    pub category: S,
    pub count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<S>,
}

/// An event rule's hits on one resource in a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>"))]
pub struct HitSnapshot<S = String> {
    pub rule_id: S,
    pub resource_id: S,
    pub count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<S>,
}

/// The last closed window's attack counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrevSnapshot<S = String> {
    pub start: i64,
    pub counts: Vec<CountSnapshot<S>>,
}

/// An open violation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>"))]
pub struct OpenSnapshot<S = String> {
    pub resource_id: S,
    pub rule_id: S,
    pub rule_version: i32,
    pub action: S,
    pub opened_at: i64,
    pub opened_by: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<S>,
}
