//! The audit report: how well the cloud deployments adhered to policy over one month or
//! quarter, built from the archive with the SQL files of `sql/report/`.
//!
//! [`build`] runs those queries over the archive's committed files (through
//! [`Archive::query`], so nothing uncommitted is read and nothing can be written) and
//! gathers every number in a [`Report`]: policy hits per rule and workload, violations
//! opened, resolved and still open (with their age), the largest attack-rate increases,
//! dead letters by reason, adherence per workload and a per-day series. [`Report::to_json`]
//! and [`Report::to_html`] render it; the HTML is one self-contained file (inline CSS and
//! SVG charts, no script, no external asset, every string from the data escaped).
//! [`store()`] commits both into the archive under `reports/period=<period>/`, with one
//! manifest, so that the chain vouches for what was reported.
//!
//! Times are UTC. The report covers `[start, end)` of the period; a period that has not
//! ended when the report is made is covered up to that moment (`covered_until`), and the
//! report says so.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rampart_archive::Archive;
//! use rampart_archive::report::{self, Period};
//! let loc = rampart_core::store::open("./archive", Vec::<(String, String)>::new())?;
//! let archive = Archive::open(loc).await?;
//! let report = report::build(&archive, &Period::month("2026-10")?, &rampart_core::SystemClock).await?;
//! std::fs::write("report-2026-10.html", report.to_html())?;
//! # Ok(()) }
//! ```

mod html;
mod period;
mod sql;
mod store;

use std::collections::BTreeMap;

use rampart_core::Clock;
use rampart_core::ledger::{LedgerError, current_user, rfc3339};
use serde::Serialize;
use tracing::instrument;

use crate::Archive;
pub use period::{Period, PeriodKind};
use sql::Params;
pub use store::{StoredReport, store};

/// The `format` of the report's JSON.
pub const FORMAT: &str = "rampart-report/1";

/// How many attack-rate increases the report lists.
pub const TOP_INCREASES: usize = 10;

/// An error making or storing a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// `--month` or `--quarter` is not a period.
    #[error("{flag} `{text}` is not a period: {reason}; give {example}")]
    BadPeriod {
        flag: &'static str,
        text: String,
        reason: String,
        example: &'static str,
    },

    /// The period starts in the future.
    #[error("the period {period} has not begun: it starts at {start}")]
    NotBegun { period: String, start: String },

    /// A report query failed.
    #[error("report query {query} failed: {source}")]
    Query {
        query: String,
        #[source]
        source: Box<crate::Error>,
    },

    /// A report query returned something the report cannot read: a bug, or an edited
    /// SQL file.
    #[error("report query {query}: {message}")]
    Sql { query: String, message: String },

    /// The JSON could not be encoded.
    #[error("cannot encode the report as JSON: {source}")]
    Encode {
        #[source]
        source: serde_json::Error,
    },

    /// Storing the report in the archive failed.
    #[error("cannot store the report at {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: object_store::Error,
    },

    /// The commit of the stored report failed.
    #[error("cannot commit the stored report: {source}")]
    Ledger {
        #[source]
        source: LedgerError,
    },
}

/// Every number of one report. Serialized as the report's JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Always [`FORMAT`].
    pub format: &'static str,
    /// What period, and which part of it, the report covers.
    pub period: PeriodInfo,
    /// When the report was made (RFC 3339 UTC).
    pub generated_at: String,
    /// Who made it.
    pub generated_by: GeneratedBy,
    /// The archive it was made from, as of its head when opened.
    pub archive: ArchiveRef,
    /// The SQL files it ran, with their SHA-256.
    pub queries: Vec<QueryRef>,
    /// The headline numbers.
    pub totals: Totals,
    /// Policy hits per rule.
    pub hits_by_rule: Vec<RuleHits>,
    /// Policy hits per rule and workload.
    pub policy_hits: Vec<HitRow>,
    /// Violations per rule: opened, resolved, open at the end.
    pub violations_by_rule: Vec<RuleViolations>,
    /// Violations opened and resolved per rule and workload.
    pub violations: Vec<ViolationRow>,
    /// Every violation open at the end of the covered range, oldest first.
    pub open_violations: Vec<OpenViolation>,
    /// The largest attack-rate increases, largest first.
    pub attack_increases: Vec<AttackIncrease>,
    /// Dead letters by reason, most first.
    pub dead_letters: Vec<DeadLetters>,
    /// Adherence per workload; a null workload is resources whose events named none.
    pub adherence: Vec<Adherence>,
    /// One entry per UTC day of the covered range.
    pub daily: Vec<Day>,
    /// Rows the report's queries returned (the access log records it).
    #[serde(skip)]
    pub query_rows: u64,
}

/// The period and the part of it covered.
#[derive(Debug, Clone, Serialize)]
pub struct PeriodInfo {
    /// `2026-10` or `2026-Q4`.
    pub label: String,
    /// Month or quarter.
    pub kind: PeriodKind,
    /// `October 2026`.
    pub title: String,
    /// Start, included (RFC 3339 UTC).
    pub start: String,
    /// End, excluded.
    pub end: String,
    /// The end of what the report covers: `end`, or when the report was made if the
    /// period had not ended then. Every "at the end" figure is at this instant.
    pub covered_until: String,
    /// Whether the period had ended when the report was made.
    pub complete: bool,
}

/// Who made a report.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratedBy {
    /// `rampart <version>`.
    pub tool: String,
    /// The user, when known.
    pub user: Option<String>,
}

/// The archive a report was made from.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveRef {
    /// Its URL.
    pub url: String,
    /// The head manifest when the archive was opened.
    pub head_sequence: Option<u64>,
    /// Its SHA-256.
    pub head_sha256: Option<String>,
}

/// One SQL file the report ran.
#[derive(Debug, Clone, Serialize)]
pub struct QueryRef {
    /// `sql/report/<name>.sql`.
    pub path: String,
    /// SHA-256 of its text.
    pub sha256: String,
}

/// The headline numbers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Events with an event time in the covered range.
    pub events: u64,
    /// Distinct resources of those events.
    pub resources: u64,
    /// Of those, resources without a violation open at the end.
    pub resources_adherent: u64,
    /// `resources_adherent / resources` in percent; null without resources.
    pub adherence_pct: Option<f64>,
    /// Sum of the hit counts of policy hits whose window started in the range.
    pub policy_hits: u64,
    /// Violations opened in the range.
    pub violations_opened: u64,
    /// Violations resolved in the range.
    pub violations_resolved: u64,
    /// Violations open at the end of the range, whenever opened.
    pub violations_open_at_end: u64,
    /// Dead letters received in the range.
    pub dead_letters: u64,
    /// Their size as received, in bytes.
    pub dead_letter_bytes: u64,
}

/// Policy hits of one rule.
#[derive(Debug, Clone, Serialize)]
pub struct RuleHits {
    /// The rule.
    pub rule_id: String,
    /// Sum of its hit counts.
    pub hits: u64,
    /// Its (window, resource) rows.
    pub windows: u64,
}

/// Policy hits of one rule and workload.
#[derive(Debug, Clone, Serialize)]
pub struct HitRow {
    /// The rule.
    pub rule_id: String,
    /// The workload; null when the hitting events named none.
    pub workload: Option<String>,
    /// Sum of the hit counts.
    pub hits: u64,
    /// (window, resource) rows.
    pub windows: u64,
    /// Distinct resources hit.
    pub resources: u64,
}

/// Violations of one rule.
#[derive(Debug, Clone, Serialize)]
pub struct RuleViolations {
    /// The rule.
    pub rule_id: String,
    /// Opened in the range.
    pub opened: u64,
    /// Resolved in the range.
    pub resolved: u64,
    /// Open at the end of the range.
    pub open_at_end: u64,
    /// Age of the oldest of those, in seconds.
    pub oldest_open_age_seconds: Option<i64>,
}

/// Violations of one rule and workload opened and resolved in the range.
#[derive(Debug, Clone, Serialize)]
pub struct ViolationRow {
    /// The rule.
    pub rule_id: String,
    /// The workload of the opening event.
    pub workload: Option<String>,
    /// Opened in the range.
    pub opened: u64,
    /// Resolved in the range.
    pub resolved: u64,
}

/// A violation open at the end of the range.
#[derive(Debug, Clone, Serialize)]
pub struct OpenViolation {
    /// The resource.
    pub resource_id: String,
    /// Its workload, from the opening event.
    pub workload: Option<String>,
    /// The rule.
    pub rule_id: String,
    /// The action in force.
    pub action: String,
    /// When it opened (RFC 3339 UTC).
    pub opened_at: String,
    /// The event that opened it.
    pub opened_by: String,
    /// `covered_until - opened_at`, in seconds.
    pub age_seconds: i64,
}

/// The largest attack-rate increase of one resource and category.
#[derive(Debug, Clone, Serialize)]
pub struct AttackIncrease {
    /// The resource.
    pub resource_id: String,
    /// Its workload.
    pub workload: Option<String>,
    /// `brute_force` or `ddos`.
    pub category: String,
    /// The window of the increase (RFC 3339 UTC).
    pub window_start: String,
    /// Attack events in the window before.
    pub prev_count: Option<i64>,
    /// Attack events in the window.
    pub hit_count: i64,
    /// The increase, in percent.
    pub increase_pct: Option<f64>,
    /// Windows of the range with an `attack_increase` hit for it.
    pub rising_windows: u64,
    /// Its attack events in the range (from `attack_rates`).
    pub attack_events: u64,
    /// Its highest rate per minute in the range.
    pub peak_rate_per_min: Option<f64>,
}

/// Dead letters of one reason.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetters {
    /// The reason code.
    pub reason_code: String,
    /// Messages.
    pub messages: u64,
    /// Their bytes as received.
    pub bytes: u64,
}

/// Adherence of one workload.
#[derive(Debug, Clone, Serialize)]
pub struct Adherence {
    /// The workload; null for resources whose events named none.
    pub workload: Option<String>,
    /// Its resources seen in the range.
    pub resources: u64,
    /// Of those, without a violation open at the end.
    pub adherent: u64,
    /// `adherent / resources` in percent.
    pub adherence_pct: f64,
}

/// One UTC day.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Day {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Sum of the hit counts of windows that started that day.
    pub policy_hits: u64,
    /// Violations opened.
    pub violations_opened: u64,
    /// Violations resolved.
    pub violations_resolved: u64,
    /// Brute-force and DDoS events in windows that started that day.
    pub attack_events: u64,
}

impl Report {
    /// The report as pretty-printed JSON, ending with a newline.
    pub fn to_json(&self) -> Result<Vec<u8>, ReportError> {
        let mut bytes =
            serde_json::to_vec_pretty(self).map_err(|source| ReportError::Encode { source })?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// The report as one self-contained HTML page.
    pub fn to_html(&self) -> String {
        html::render(self)
    }
}

fn pct(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

/// Builds the report of `period` from `archive`'s committed files, at `clock`'s now.
#[instrument(skip_all, fields(period = %period))]
pub async fn build(
    archive: &Archive,
    period: &Period,
    clock: &dyn Clock,
) -> Result<Report, ReportError> {
    let now = clock.now_micros();
    let start = period.start_micros();
    if now <= start {
        return Err(ReportError::NotBegun {
            period: period.to_string(),
            start: rfc3339(start),
        });
    }
    let end = period.end_micros().min(now);
    let params = Params {
        start,
        end,
        top: TOP_INCREASES,
    };
    let run = |query| sql::run(archive, query, &params);
    let events = run(&sql::EVENTS).await?;
    let hits = run(&sql::POLICY_HITS).await?;
    let violations = run(&sql::VIOLATIONS).await?;
    let open = run(&sql::OPEN_VIOLATIONS).await?;
    let adherence = run(&sql::ADHERENCE).await?;
    let increases = run(&sql::ATTACK_INCREASES).await?;
    let dead = run(&sql::DEAD_LETTERS).await?;
    let daily = run(&sql::DAILY).await?;
    let query_rows = [
        &events,
        &hits,
        &violations,
        &open,
        &adherence,
        &increases,
        &dead,
        &daily,
    ]
    .iter()
    .map(|r| r.len() as u64)
    .sum();
    let head = archive.ledger().state().head.clone();
    let mut report = Report {
        format: FORMAT,
        period: PeriodInfo {
            label: period.to_string(),
            kind: period.kind(),
            title: period.title(),
            start: rfc3339(start),
            end: rfc3339(period.end_micros()),
            covered_until: rfc3339(end),
            complete: end == period.end_micros(),
        },
        generated_at: rfc3339(now),
        generated_by: GeneratedBy {
            tool: format!("rampart {}", env!("CARGO_PKG_VERSION")),
            user: current_user(),
        },
        archive: ArchiveRef {
            url: archive.location().url.to_string(),
            head_sequence: head.as_ref().map(|(s, _)| *s),
            head_sha256: head.map(|(_, h)| h),
        },
        queries: sql::ALL
            .iter()
            .map(|q| QueryRef {
                path: q.path(),
                sha256: q.sha256(),
            })
            .collect(),
        totals: Totals::default(),
        hits_by_rule: Vec::new(),
        policy_hits: read_hits(&hits)?,
        violations_by_rule: Vec::new(),
        violations: read_violations(&violations)?,
        open_violations: read_open(&open, end)?,
        attack_increases: read_increases(&increases)?,
        dead_letters: read_dead_letters(&dead)?,
        adherence: Vec::new(),
        daily: read_daily(&daily, start, end)?,
        query_rows,
    };
    let (adherence, seen, adherent) = read_adherence(&adherence)?;
    report.adherence = adherence;
    report.hits_by_rule = hits_by_rule(&report.policy_hits);
    report.violations_by_rule = violations_by_rule(&report.violations, &report.open_violations);
    let t = &mut report.totals;
    t.events = events.counts("events")?.first().copied().unwrap_or(0);
    t.resources = seen;
    t.resources_adherent = adherent;
    t.adherence_pct = pct(adherent, seen);
    t.policy_hits = report.policy_hits.iter().map(|h| h.hits).sum();
    t.violations_opened = report.violations.iter().map(|v| v.opened).sum();
    t.violations_resolved = report.violations.iter().map(|v| v.resolved).sum();
    t.violations_open_at_end = report.open_violations.len() as u64;
    t.dead_letters = report.dead_letters.iter().map(|d| d.messages).sum();
    t.dead_letter_bytes = report.dead_letters.iter().map(|d| d.bytes).sum();
    Ok(report)
}

fn read_hits(rows: &sql::Rows) -> Result<Vec<HitRow>, ReportError> {
    let rule = rows.required_strings("rule_id")?;
    let workload = rows.strings("workload")?;
    let hits = rows.counts("hits")?;
    let windows = rows.counts("windows")?;
    let resources = rows.counts("resources")?;
    Ok((0..rows.len())
        .map(|i| HitRow {
            rule_id: rule[i].clone(),
            workload: workload[i].clone(),
            hits: hits[i],
            windows: windows[i],
            resources: resources[i],
        })
        .collect())
}

fn hits_by_rule(hits: &[HitRow]) -> Vec<RuleHits> {
    let mut by_rule: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for h in hits {
        let e = by_rule.entry(h.rule_id.as_str()).or_default();
        e.0 += h.hits;
        e.1 += h.windows;
    }
    by_rule
        .into_iter()
        .map(|(rule, (hits, windows))| RuleHits {
            rule_id: rule.to_string(),
            hits,
            windows,
        })
        .collect()
}

fn read_violations(rows: &sql::Rows) -> Result<Vec<ViolationRow>, ReportError> {
    let rule = rows.required_strings("rule_id")?;
    let workload = rows.strings("workload")?;
    let opened = rows.counts("opened")?;
    let resolved = rows.counts("resolved")?;
    Ok((0..rows.len())
        .map(|i| ViolationRow {
            rule_id: rule[i].clone(),
            workload: workload[i].clone(),
            opened: opened[i],
            resolved: resolved[i],
        })
        .collect())
}

fn read_open(rows: &sql::Rows, end: i64) -> Result<Vec<OpenViolation>, ReportError> {
    let resource = rows.required_strings("resource_id")?;
    let workload = rows.strings("workload")?;
    let rule = rows.required_strings("rule_id")?;
    let action = rows.required_strings("action")?;
    let opened_at = rows.micros("opened_at")?;
    let opened_by = rows.required_strings("opened_by")?;
    Ok((0..rows.len())
        .map(|i| OpenViolation {
            resource_id: resource[i].clone(),
            workload: workload[i].clone(),
            rule_id: rule[i].clone(),
            action: action[i].clone(),
            opened_at: rfc3339(opened_at[i]),
            opened_by: opened_by[i].clone(),
            age_seconds: end.saturating_sub(opened_at[i]) / 1_000_000,
        })
        .collect())
}

fn violations_by_rule(rows: &[ViolationRow], open: &[OpenViolation]) -> Vec<RuleViolations> {
    fn of<'a>(m: &'a mut BTreeMap<String, RuleViolations>, rule: &str) -> &'a mut RuleViolations {
        m.entry(rule.to_string()).or_insert_with(|| RuleViolations {
            rule_id: rule.to_string(),
            opened: 0,
            resolved: 0,
            open_at_end: 0,
            oldest_open_age_seconds: None,
        })
    }
    let mut by_rule = BTreeMap::new();
    for r in rows {
        let e = of(&mut by_rule, &r.rule_id);
        e.opened += r.opened;
        e.resolved += r.resolved;
    }
    for o in open {
        let e = of(&mut by_rule, &o.rule_id);
        e.open_at_end += 1;
        e.oldest_open_age_seconds = Some(
            e.oldest_open_age_seconds
                .map_or(o.age_seconds, |a| a.max(o.age_seconds)),
        );
    }
    by_rule.into_values().collect()
}

fn read_increases(rows: &sql::Rows) -> Result<Vec<AttackIncrease>, ReportError> {
    let resource = rows.required_strings("resource_id")?;
    let workload = rows.strings("workload")?;
    let category = rows.strings("category")?;
    let window = rows.micros("window_start")?;
    let prev = rows.floats("prev_count")?;
    let hit = rows.ints("hit_count")?;
    let pct = rows.floats("increase_pct")?;
    let rising = rows.counts("rising_windows")?;
    let events = rows.counts("attack_events")?;
    let peak = rows.floats("peak_rate_per_min")?;
    Ok((0..rows.len())
        .map(|i| AttackIncrease {
            resource_id: resource[i].clone(),
            workload: workload[i].clone(),
            category: category[i].clone().unwrap_or_default(),
            window_start: rfc3339(window[i]),
            prev_count: prev[i].map(|p| p as i64),
            hit_count: hit[i],
            increase_pct: pct[i],
            rising_windows: rising[i],
            attack_events: events[i],
            peak_rate_per_min: peak[i],
        })
        .collect())
}

fn read_dead_letters(rows: &sql::Rows) -> Result<Vec<DeadLetters>, ReportError> {
    let reason = rows.required_strings("reason_code")?;
    let messages = rows.counts("messages")?;
    let bytes = rows.counts("bytes")?;
    Ok((0..rows.len())
        .map(|i| DeadLetters {
            reason_code: reason[i].clone(),
            messages: messages[i],
            bytes: bytes[i],
        })
        .collect())
}

/// The per-workload rows, and the total row's resources and adherent resources.
fn read_adherence(rows: &sql::Rows) -> Result<(Vec<Adherence>, u64, u64), ReportError> {
    let workload = rows.strings("workload")?;
    let total = rows.bools("total")?;
    let resources = rows.counts("resources")?;
    let adherent = rows.counts("adherent")?;
    let mut out = Vec::new();
    let (mut seen, mut ok) = (0, 0);
    for i in 0..rows.len() {
        if total[i] {
            (seen, ok) = (resources[i], adherent[i]);
        } else {
            out.push(Adherence {
                workload: workload[i].clone(),
                resources: resources[i],
                adherent: adherent[i],
                adherence_pct: pct(adherent[i], resources[i]).unwrap_or(100.0),
            });
        }
    }
    Ok((out, seen, ok))
}

fn read_daily(rows: &sql::Rows, start: i64, end: i64) -> Result<Vec<Day>, ReportError> {
    let first = period::utc_date(start);
    let last = period::utc_date(end.saturating_sub(1));
    let mut days: BTreeMap<chrono::NaiveDate, Day> = period::days(first, last)
        .into_iter()
        .map(|d| {
            (
                d,
                Day {
                    date: d.format("%Y-%m-%d").to_string(),
                    ..Day::default()
                },
            )
        })
        .collect();
    let day = rows.dates("day")?;
    let hits = rows.counts("policy_hits")?;
    let opened = rows.counts("violations_opened")?;
    let resolved = rows.counts("violations_resolved")?;
    let attacks = rows.counts("attack_events")?;
    for i in 0..rows.len() {
        if let Some(d) = days.get_mut(&day[i]) {
            d.policy_hits = hits[i];
            d.violations_opened = opened[i];
            d.violations_resolved = resolved[i];
            d.attack_events = attacks[i];
        }
    }
    Ok(days.into_values().collect())
}
