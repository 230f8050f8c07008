//! What to generate: size, seed, resources, time range, disorder and malformed share.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

/// Upper bound on `--disorder`, to keep the disorder stage's memory small.
const MAX_DISORDER: Duration = Duration::from_secs(24 * 3600);
/// Upper bound on the number of steps (`span / window`).
const MAX_STEPS: u128 = 10_000_000;

/// The settings of one generated stream. The same settings always give the same bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    /// Total messages to emit, good and malformed together, exactly.
    pub events: u64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of distinct resources, at least 10.
    pub resources: u32,
    /// Event time of the start of the stream.
    pub start: DateTime<Utc>,
    /// Event times fall in `[start, start + span)`.
    pub span: Duration,
    /// Largest delay between an event's time and its arrival in the stream.
    pub disorder: Duration,
    /// Share of malformed messages, 0 to 1.
    pub bad_rate: f64,
    /// Campaign step: the window over which attack volume rises. Steps are aligned to
    /// the Unix epoch, like the pipeline's windows.
    pub window: Duration,
}

impl Default for GenConfig {
    fn default() -> Self {
        Self {
            events: 100_000,
            seed: 42,
            resources: 200,
            start: Utc
                .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
                .single()
                .unwrap_or(DateTime::UNIX_EPOCH),
            span: Duration::from_secs(2 * 3600),
            disorder: Duration::from_secs(20),
            bad_rate: 0.002,
            window: Duration::from_secs(5 * 60),
        }
    }
}

/// Whole milliseconds of `d`, saturating.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl GenConfig {
    /// Checks the settings; the error names the CLI flag and what is wrong with it.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.bad_rate) {
            return Err(format!(
                "--bad-rate must be between 0 and 1, got {}",
                self.bad_rate
            ));
        }
        if self.resources < 10 {
            return Err(format!(
                "--resources must be at least 10, got {}",
                self.resources
            ));
        }
        if self.window < Duration::from_millis(1) {
            return Err(format!(
                "--window must be at least 1ms, got {:?}",
                self.window
            ));
        }
        if self.span < Duration::from_millis(1) {
            return Err(format!("--span must be at least 1ms, got {:?}", self.span));
        }
        if self.disorder > MAX_DISORDER {
            return Err(format!(
                "--disorder must be at most 24h, got {:?}",
                self.disorder
            ));
        }
        let steps = self.span.as_millis() / self.window.as_millis();
        if steps > MAX_STEPS {
            return Err(format!(
                "--span {:?} / --window {:?} makes {steps} windows, more than {MAX_STEPS}",
                self.span, self.window
            ));
        }
        let earliest = DateTime::UNIX_EPOCH;
        let latest = Utc
            .with_ymd_and_hms(9999, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let end = self
            .start
            .timestamp_millis()
            .checked_add(millis(self.span))
            .filter(|end| *end <= latest.timestamp_millis());
        if self.start < earliest || end.is_none() {
            return Err(format!(
                "--start and --span must keep event times between {earliest} and {latest}, got {} + {:?}",
                self.start, self.span
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        let cfg = GenConfig::default();
        assert_eq!(cfg.start.to_rfc3339(), "2026-11-01T00:00:00+00:00");
        cfg.validate().unwrap();
    }

    #[test]
    fn errors_name_the_flag() {
        let check = |cfg: GenConfig, needle: &str| {
            let err = cfg.validate().unwrap_err();
            assert!(err.contains(needle), "{err}");
        };
        let d = GenConfig::default;
        check(
            GenConfig {
                bad_rate: 1.5,
                ..d()
            },
            "--bad-rate must be between 0 and 1, got 1.5",
        );
        check(
            GenConfig {
                bad_rate: f64::NAN,
                ..d()
            },
            "--bad-rate",
        );
        check(
            GenConfig {
                resources: 9,
                ..d()
            },
            "--resources must be at least 10, got 9",
        );
        check(
            GenConfig {
                window: Duration::ZERO,
                ..d()
            },
            "--window",
        );
        check(
            GenConfig {
                span: Duration::from_micros(10),
                ..d()
            },
            "--span",
        );
        check(
            GenConfig {
                disorder: Duration::from_secs(90_000),
                ..d()
            },
            "--disorder",
        );
        check(
            GenConfig {
                window: Duration::from_millis(1),
                span: Duration::from_secs(86_400),
                ..d()
            },
            "windows",
        );
        check(
            GenConfig {
                span: Duration::from_secs(u64::MAX),
                window: Duration::from_secs(u64::MAX),
                ..d()
            },
            "--start",
        );
        check(
            GenConfig {
                start: DateTime::UNIX_EPOCH - chrono::Duration::days(1),
                ..d()
            },
            "--start",
        );
    }
}
