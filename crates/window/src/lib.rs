//! Event-time windows, the governance rules as SQL, and the violation lifecycle.
//!
//! The [`WindowEngine`] takes each source partition's accepted events in arrival order
//! and keeps, per partition, the watermark ([`PartitionTime`]) and the state of open
//! tumbling windows (aligned to the epoch). For each batch it:
//!
//! 1. marks late events (they are archived and counted, but join no window);
//! 2. runs the window aggregation (`sql/windows/attack_counts.sql`) and every event
//!    rule (`sql/rules/*.sql`, `kind: event`) with DataFusion over the on-time events,
//!    adding their counts and hits to the windows' state;
//! 3. applies violation changes in arrival order: a remedy resolves an open violation
//!    (any event, late or not), a hit of a violation rule opens one (on-time events);
//! 4. closes the windows the watermark passed: emits `attack_rates`, the event rules'
//!    `policy_hits`, and runs the window rules (`attack_increase`) over the closing
//!    windows' counts and the counts of the window before each.
//!
//! Every rule is planned once at start-up; a batch only executes the plans. Results
//! depend only on each partition's order of events, never on batch sizes or timing
//! (except the idle timeout, see [`WindowEngine::advance_idle`]). State is bounded by the
//! open windows: a closed window is freed once its results are emitted, and only the
//! last closed window's attack counts are kept, for the window after it.
//!
//! ```
//! use rampart_window::WindowAssigner;
//! let w = WindowAssigner::new(std::time::Duration::from_secs(300)).unwrap();
//! assert_eq!(w.window_of(301_000_000), (300_000_000, 600_000_000));
//! ```

mod engine;
mod error;
mod intern;
pub mod output;
mod plan;
pub mod rules;
pub mod state;
mod table;
mod watermark;

use std::time::Duration;

pub use engine::{WindowEngine, check_rules};
pub use error::{Error, Result};
pub use output::{AttackRate, Outputs, PolicyHit, ViolationChange, ViolationState};
pub use plan::{attack_counts_schema, columns, prev_attack_counts_schema, rule_events_schema};
pub use rules::{Rule, RuleKind};
pub use watermark::PartitionTime;

/// Assigns event times to tumbling windows of one size, aligned to the Unix epoch, as
/// `date_bin(size, ts, TIMESTAMP '1970-01-01T00:00:00Z')` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowAssigner {
    size_micros: i64,
}

impl WindowAssigner {
    /// An assigner for windows of `size`.
    pub fn new(size: Duration) -> Result<Self> {
        let size_micros = i64::try_from(size.as_micros()).unwrap_or(0);
        if size_micros <= 0 {
            return Err(Error::Size {
                size,
                message: "must be at least 1 microsecond and fit in 292,000 years".into(),
            });
        }
        Ok(Self { size_micros })
    }

    /// An assigner for windows of `size_micros` (> 0) microseconds.
    pub(crate) fn from_micros(size_micros: i64) -> Self {
        Self { size_micros }
    }

    /// Window size in microseconds.
    pub fn size_micros(&self) -> i64 {
        self.size_micros
    }

    /// The `[start, end)` window, in microseconds, that `ts_micros` falls in.
    pub fn window_of(&self, ts_micros: i64) -> (i64, i64) {
        let start = ts_micros - ts_micros.rem_euclid(self.size_micros);
        (start, start.saturating_add(self.size_micros))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_the_epoch_and_floor_negative_times() {
        let w = WindowAssigner::new(Duration::from_secs(300)).unwrap();
        let m = 300_000_000;
        assert_eq!(w.window_of(0), (0, m));
        assert_eq!(w.window_of(m - 1), (0, m));
        assert_eq!(w.window_of(m), (m, 2 * m));
        assert_eq!(w.window_of(-1), (-m, 0));
    }

    #[test]
    fn zero_size_is_refused() {
        assert!(WindowAssigner::new(Duration::ZERO).is_err());
    }
}
