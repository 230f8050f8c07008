//! Event-time progress of one partition: the watermark, lateness and window closing,
//! exactly as the event contract (§2) defines them.

/// Event-time progress of one source partition.
///
/// For an event, `wm` is the largest event time among the events of the partition that
/// arrived before it, minus the allowed lateness (minus infinity before any event). The
/// event is late when the end of its window is `<= wm`. A window `[start, end)` closes
/// once `largest event time - lateness >= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionTime {
    max_ts: Option<i64>,
    lateness: i64,
}

impl PartitionTime {
    /// A partition that has seen no event, with `lateness_micros` of allowed lateness.
    pub fn new(lateness_micros: i64) -> Self {
        Self {
            max_ts: None,
            lateness: lateness_micros,
        }
    }

    /// A partition whose largest event time so far is `max_ts` (a restored state).
    pub fn restored(lateness_micros: i64, max_ts: Option<i64>) -> Self {
        Self {
            max_ts,
            lateness: lateness_micros,
        }
    }

    /// The largest event time seen, if any.
    pub fn max_ts(&self) -> Option<i64> {
        self.max_ts
    }

    /// The current watermark (`None` is minus infinity).
    pub fn watermark(&self) -> Option<i64> {
        self.max_ts.map(|m| m.saturating_sub(self.lateness))
    }

    /// Takes one event with time `ts` whose window ends at `window_end`; returns whether
    /// it is late. The event's time counts for later events either way.
    pub fn observe(&mut self, ts: i64, window_end: i64) -> bool {
        let late = self.watermark().is_some_and(|wm| window_end <= wm);
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
        late
    }

    /// Whether a window ending at `window_end` is closed.
    pub fn is_closed(&self, window_end: i64) -> bool {
        self.watermark().is_some_and(|wm| wm >= window_end)
    }

    /// Moves the largest event time forward by `micros` of idle wall-clock time, so that
    /// the last windows of a silent partition close. Events that later arrive for a window
    /// closed this way are late.
    pub fn advance_idle(&mut self, micros: i64) {
        if let Some(m) = self.max_ts.as_mut() {
            *m = m.saturating_add(micros.max(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = 300;
    const L: i64 = 60;

    fn end(ts: i64) -> i64 {
        ts - ts.rem_euclid(W) + W
    }

    #[test]
    fn first_event_is_never_late() {
        let mut p = PartitionTime::new(L);
        assert_eq!(p.watermark(), None);
        assert!(!p.observe(-1_000_000, end(-1_000_000)));
    }

    #[test]
    fn lateness_uses_only_earlier_events() {
        let mut p = PartitionTime::new(L);
        assert!(!p.observe(1000, end(1000))); // max 1000, wm 940
        // window [600, 900) ends at 900 <= 940: late
        assert!(p.observe(899, end(899)));
        // window [900, 1200) ends 1200 > 940: on time
        assert!(!p.observe(900, end(900)));
        // a late event does not move the max back
        assert_eq!(p.max_ts(), Some(1000));
    }

    #[test]
    fn the_end_exactly_at_the_watermark_is_late_and_closed() {
        let mut p = PartitionTime::new(L);
        p.observe(960, end(960)); // wm = 900
        assert!(p.is_closed(900));
        assert!(!p.is_closed(901));
        assert!(p.observe(0, 300)); // end 300 <= 900
        assert!(p.observe(600, 900)); // end 900 <= 900
    }

    #[test]
    fn idle_time_moves_event_time_forward() {
        let mut p = PartitionTime::new(L);
        p.observe(1000, end(1000));
        assert!(!p.is_closed(1200));
        p.advance_idle(260); // max 1260, wm 1200
        assert!(p.is_closed(1200));
        assert!(
            p.observe(1100, 1200),
            "an event for a window closed by idleness is late"
        );
        let mut empty = PartitionTime::new(L);
        empty.advance_idle(1000);
        assert_eq!(
            empty.max_ts(),
            None,
            "a partition with no events has nothing to advance"
        );
    }
}
