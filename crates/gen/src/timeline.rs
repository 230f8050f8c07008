//! The run's event-time axis cut into steps: the windows of size `window`, aligned to the
//! Unix epoch like the pipeline's, clipped to `[start, start + span)`.

/// Steps of the generated time range, in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeline {
    start: i64,
    end: i64,
    window: i64,
    /// Epoch-aligned index of the window holding `start`.
    first: i64,
    steps: u64,
}

impl Timeline {
    /// The steps of `[start, start + span)`; `span` and `window` are at least 1.
    pub(crate) fn new(start: i64, span: i64, window: i64) -> Self {
        let end = start.saturating_add(span);
        let first = start.div_euclid(window);
        let last = (end - 1).div_euclid(window);
        Self {
            start,
            end,
            window,
            first,
            steps: (last - first + 1) as u64,
        }
    }

    /// How many steps there are.
    pub(crate) fn steps(&self) -> u64 {
        self.steps
    }

    /// The time range `[from, to)` of step `step`, never empty.
    pub(crate) fn range(&self, step: u64) -> (i64, i64) {
        let window_start = (self.first + step as i64) * self.window;
        (
            window_start.max(self.start),
            (window_start + self.window).min(self.end),
        )
    }

    /// Whether step `step` covers its whole window.
    pub(crate) fn is_full(&self, step: u64) -> bool {
        let (from, to) = self.range(step);
        to - from == self.window
    }

    /// Step `step`'s part of `total` events spread evenly over the time range; the parts
    /// of all steps add up to `total`.
    pub(crate) fn share(&self, total: u64, step: u64) -> u64 {
        let (from, to) = self.range(step);
        let len = (self.end - self.start) as u128;
        let upto = |t: i64| (u128::from(total) * (t - self.start) as u128 / len) as u64;
        upto(to) - upto(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_range_has_whole_steps() {
        let t = Timeline::new(600_000, 3_000_000, 300_000);
        assert_eq!(t.steps(), 10);
        assert_eq!(t.range(0), (600_000, 900_000));
        assert!((0..10).all(|s| t.is_full(s)));
        assert_eq!((0..10).map(|s| t.share(1001, s)).sum::<u64>(), 1001);
    }

    #[test]
    fn unaligned_range_is_clipped_to_the_epoch_grid() {
        let t = Timeline::new(100, 1000, 300);
        assert_eq!(t.steps(), 4);
        assert_eq!(t.range(0), (100, 300));
        assert_eq!(t.range(3), (900, 1100));
        assert!(!t.is_full(0) && t.is_full(1) && t.is_full(2) && !t.is_full(3));
        assert_eq!(t.share(1000, 0), 200);
        assert_eq!((0..4).map(|s| t.share(7, s)).sum::<u64>(), 7);
    }
}
