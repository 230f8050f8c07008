//! What a run did, for the one-screen report at its end.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Rows, files and bytes one table received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableSummary {
    /// Rows written.
    pub rows: u64,
    /// Files completed.
    pub files: u64,
    /// Bytes in those files.
    pub bytes: u64,
}

/// What background compaction did during a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionSummary {
    /// Partitions compacted.
    pub partitions: u64,
    /// Files they held before.
    pub files_before: u64,
    /// Files they hold now.
    pub files_after: u64,
}

impl CompactionSummary {
    /// The totals of `report`.
    pub fn of(report: &crate::CompactReport) -> Self {
        Self {
            partitions: report.partitions(),
            files_before: report.files_before(),
            files_after: report.files_after(),
        }
    }
}

/// Percentiles of a latency, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    /// Percentiles of `h`.
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// What the window stage did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowSummary {
    /// Events that arrived too late to join their window.
    pub late: u64,
    /// Windows closed and emitted.
    pub windows_closed: u64,
    /// `attack_rates` rows.
    pub attack_rates: u64,
    /// `policy_hits` rows.
    pub policy_hits: u64,
    /// Violations opened.
    pub violations_opened: u64,
    /// Violations resolved.
    pub violations_resolved: u64,
    /// Violations open at the end of the run.
    pub open_violations: u64,
    /// Alert lines written.
    pub alerts: u64,
    /// From a batch reaching the window stage to its alerts written (batches with alerts).
    pub alert_latency: LatencySummary,
}

impl std::fmt::Display for LatencySummary {
    /// `p50 1.2 ms, p99 3.4 ms, p999 5.6 ms`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |us: u64| us as f64 / 1000.0;
        write!(
            f,
            "p50 {:.1} ms, p99 {:.1} ms, p999 {:.1} ms",
            ms(self.p50_us),
            ms(self.p99_us),
            ms(self.p999_us)
        )
    }
}

/// The outcome of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// The source read.
    pub source: String,
    /// The archive written.
    pub archive: String,
    /// Messages read (accepted + dead-lettered).
    pub messages: u64,
    /// Messages that became `events` rows.
    pub accepted: u64,
    /// Messages that became `dead_letters` rows.
    pub dead_lettered: u64,
    /// Dead letters per reason code.
    pub dead_by_reason: BTreeMap<String, u64>,
    /// Bytes read from the source.
    pub input_bytes: u64,
    /// Per archive table, the committed files.
    pub tables: BTreeMap<&'static str, TableSummary>,
    /// Manifests this run committed.
    pub commits: u64,
    /// An earlier run had committed the source up to this line; reading began after it.
    pub resumed_after_line: Option<u64>,
    /// Files that no manifest listed (left by a crash), removed at start-up.
    pub orphans_removed: u64,
    /// Background compaction during the run.
    pub compaction: CompactionSummary,
    /// Wall-clock duration of the run.
    pub elapsed: Duration,
    /// From the first message read to the end of the run (the rate while reading,
    /// without start-up and a consumer group's join).
    pub reading: Duration,
    /// From a chunk read to its rows handed to the archive writer.
    pub batch_latency: LatencySummary,
    /// From a chunk read to the commit that made its rows part of the archive.
    pub durable_latency: LatencySummary,
    /// Windows, rules and violations.
    pub windows: WindowSummary,
    /// The run was stopped by a signal before its source ended.
    pub interrupted: bool,
}

impl Summary {
    /// Messages per second over the whole run.
    pub fn messages_per_sec(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Source bytes per second over the whole run.
    pub fn input_bytes_per_sec(&self) -> f64 {
        self.input_bytes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Files written, all tables.
    pub fn files(&self) -> u64 {
        self.tables.values().map(|t| t.files).sum()
    }

    /// Bytes written, all tables.
    pub fn bytes(&self) -> u64 {
        self.tables.values().map(|t| t.bytes).sum()
    }

    /// The one-screen report printed at the end of `rampart run`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let status = if self.interrupted {
            "stopped by signal"
        } else {
            "complete"
        };
        let _ = writeln!(s, "rampart run {status}");
        let _ = writeln!(s, "  source        {}", self.source);
        let _ = writeln!(s, "  archive       {}", self.archive);
        if let Some(line) = self.resumed_after_line {
            let _ = writeln!(
                s,
                "  resumed       after line {line} (committed by an earlier run)"
            );
        }
        if self.orphans_removed > 0 {
            let _ = writeln!(
                s,
                "  cleaned up    {:>12} uncommitted files left by an earlier run",
                self.orphans_removed
            );
        }
        let _ = writeln!(
            s,
            "  messages      {:>12}   ({:.1} MiB read)",
            self.messages,
            self.input_bytes as f64 / 1048576.0
        );
        let _ = writeln!(s, "  accepted      {:>12}", self.accepted);
        let _ = writeln!(s, "  dead-lettered {:>12}", self.dead_lettered);
        for (reason, n) in &self.dead_by_reason {
            let _ = writeln!(s, "    {reason:<20}{n:>8}");
        }
        let w = &self.windows;
        let _ = writeln!(s, "  late events   {:>12}", w.late);
        let _ = writeln!(s, "  windows       {:>12} closed", w.windows_closed);
        let _ = writeln!(
            s,
            "  policy hits   {:>12}   ({} attack-rate rows)",
            w.policy_hits, w.attack_rates
        );
        let _ = writeln!(
            s,
            "  violations    {:>12} opened, {} resolved, {} open now",
            w.violations_opened, w.violations_resolved, w.open_violations
        );
        let _ = writeln!(s, "  alerts        {:>12}", w.alerts);
        let _ = writeln!(
            s,
            "  written       {:>12} files, {:.1} MiB, in {} commits",
            self.files(),
            self.bytes() as f64 / 1048576.0,
            self.commits
        );
        for (table, t) in &self.tables {
            let _ = writeln!(
                s,
                "    {table:<20}{:>8} rows in {} files, {:.1} MiB",
                t.rows,
                t.files,
                t.bytes as f64 / 1048576.0
            );
        }
        let c = &self.compaction;
        if c.partitions > 0 {
            let _ = writeln!(
                s,
                "  compacted     {:>12} partitions, {} files into {}",
                c.partitions, c.files_before, c.files_after
            );
        }
        let _ = writeln!(
            s,
            "  throughput    {:>12.0} events/s, {:.1} MiB/s over {:.2}s",
            self.messages_per_sec(),
            self.input_bytes_per_sec() / 1048576.0,
            self.elapsed.as_secs_f64()
        );
        if !self.reading.is_zero() && self.reading < self.elapsed {
            let _ = writeln!(
                s,
                "  while reading {:>12.0} events/s over {:.2}s (from the first message)",
                self.messages as f64 / self.reading.as_secs_f64().max(1e-9),
                self.reading.as_secs_f64()
            );
        }
        let a = &w.alert_latency;
        let _ = writeln!(
            s,
            "  alert latency {a} (batch at the window stage to alerts written, {} batches)",
            a.count
        );
        let l = &self.batch_latency;
        let _ = writeln!(
            s,
            "  batch latency {l} (read to archive writer, {} batches)",
            l.count
        );
        let d = &self.durable_latency;
        let _ = writeln!(
            s,
            "  to archive    {d} (read to committed in the archive, {} batches)",
            d.count
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_names_every_count() {
        let mut s = Summary {
            source: "/x.jsonl".into(),
            archive: "file:///a/".into(),
            messages: 10,
            accepted: 8,
            dead_lettered: 2,
            input_bytes: 2 << 20,
            elapsed: Duration::from_secs(2),
            ..Default::default()
        };
        s.dead_by_reason.insert("not_json".into(), 2);
        s.tables.insert(
            "events",
            TableSummary {
                rows: 8,
                files: 1,
                bytes: 1 << 20,
            },
        );
        let r = s.render();
        for needle in [
            "/x.jsonl",
            "file:///a/",
            "not_json",
            "events",
            "5 events/s",
            "1.0 MiB/s",
        ] {
            assert!(r.contains(needle), "{needle} missing from\n{r}");
        }
        assert_eq!(s.files(), 1);
    }
}
