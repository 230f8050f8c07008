//! Event-time windows: assignment of events to tumbling windows aligned to the epoch.
//!
//! This crate will hold the per-partition watermark, the window state and the SQL rules
//! (see the event contract, §2–§3). For now it assigns timestamps to windows, the piece
//! every later stage shares.
//!
//! ```
//! use rampart_window::WindowAssigner;
//! let w = WindowAssigner::new(std::time::Duration::from_secs(300)).unwrap();
//! assert_eq!(w.window_of(301_000_000), (300_000_000, 600_000_000));
//! ```

use std::time::Duration;

/// An error building window state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The window size is not a positive whole number of microseconds.
    #[error("invalid window size {size:?}: {message}")]
    Size { size: Duration, message: String },
}

/// Result with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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
