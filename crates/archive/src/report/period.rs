//! The period a report covers: a calendar month (`2026-10`) or quarter (`2026-Q4`) in UTC.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use super::ReportError;

/// Earliest year accepted: the archive's timestamps start at the Unix epoch.
const MIN_YEAR: i32 = 1970;
/// Latest year accepted.
const MAX_YEAR: i32 = 9999;

/// Month or quarter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    /// A calendar month.
    Month,
    /// A calendar quarter: January to March is Q1.
    Quarter,
}

impl PeriodKind {
    /// The CLI flag that names a period of this kind.
    pub fn flag(self) -> &'static str {
        match self {
            PeriodKind::Month => "--month",
            PeriodKind::Quarter => "--quarter",
        }
    }
}

/// A month or quarter: `[start, end)` in UTC, midnight to midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    kind: PeriodKind,
    year: i32,
    /// Month 1..=12 or quarter 1..=4.
    index: u32,
}

impl Period {
    /// Reads `--month YYYY-MM` (`2026-10`).
    pub fn month(text: &str) -> Result<Self, ReportError> {
        let bad = |reason: String| bad_period(PeriodKind::Month, text, reason);
        let (year, month) = split_year(text, "month").map_err(bad)?;
        if month.len() != 2 || !month.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!(
                "the month `{month}` is not two digits from 01 to 12"
            )));
        }
        let index: u32 = month
            .parse()
            .map_err(|_| bad(format!("the month `{month}` is not a number")))?;
        if !(1..=12).contains(&index) {
            return Err(bad(format!(
                "there is no month {index}: months go from 01 to 12"
            )));
        }
        Ok(Self {
            kind: PeriodKind::Month,
            year,
            index,
        })
    }

    /// Reads `--quarter YYYY-Qn` (`2026-Q4`; `q4` is accepted too).
    pub fn quarter(text: &str) -> Result<Self, ReportError> {
        let bad = |reason: String| bad_period(PeriodKind::Quarter, text, reason);
        let (year, quarter) = split_year(text, "quarter").map_err(bad)?;
        let digits = quarter
            .strip_prefix(['Q', 'q'])
            .ok_or_else(|| bad(format!("the quarter `{quarter}` does not start with Q")))?;
        let index = match digits {
            "1" => 1,
            "2" => 2,
            "3" => 3,
            "4" => 4,
            _ => {
                return Err(bad(format!(
                    "there is no quarter `{quarter}`: quarters are Q1 to Q4"
                )));
            }
        };
        Ok(Self {
            kind: PeriodKind::Quarter,
            year,
            index,
        })
    }

    /// Month or quarter.
    pub fn kind(&self) -> PeriodKind {
        self.kind
    }

    /// The first day of the period.
    pub fn first_day(&self) -> NaiveDate {
        let month = match self.kind {
            PeriodKind::Month => self.index,
            PeriodKind::Quarter => 3 * self.index - 2,
        };
        NaiveDate::from_ymd_opt(self.year, month, 1).unwrap_or_default()
    }

    /// The first day after the period.
    pub fn end_day(&self) -> NaiveDate {
        let months = match self.kind {
            PeriodKind::Month => 1,
            PeriodKind::Quarter => 3,
        };
        self.first_day()
            .checked_add_months(chrono::Months::new(months))
            .unwrap_or(NaiveDate::MAX)
    }

    /// Start of the period, included: microseconds since the epoch.
    pub fn start_micros(&self) -> i64 {
        midnight_micros(self.first_day())
    }

    /// End of the period, excluded: microseconds since the epoch.
    pub fn end_micros(&self) -> i64 {
        midnight_micros(self.end_day())
    }

    /// The flags that ask for this period: `--month 2026-10`.
    pub fn describe(&self) -> String {
        format!("{} {self}", self.kind.flag())
    }

    /// The months of the period, for people: `October 2026`, `Q4 2026 (October to December)`.
    pub fn title(&self) -> String {
        let month = |d: NaiveDate| d.format("%B").to_string();
        match self.kind {
            PeriodKind::Month => self.first_day().format("%B %Y").to_string(),
            PeriodKind::Quarter => {
                let last = self.end_day().pred_opt().unwrap_or_default();
                format!(
                    "Q{} {} ({} to {})",
                    self.index,
                    self.year,
                    month(self.first_day()),
                    month(last)
                )
            }
        }
    }
}

impl fmt::Display for Period {
    /// `2026-10` or `2026-Q4`: as given on the command line, and in the stored path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            PeriodKind::Month => write!(f, "{:04}-{:02}", self.year, self.index),
            PeriodKind::Quarter => write!(f, "{:04}-Q{}", self.year, self.index),
        }
    }
}

fn bad_period(kind: PeriodKind, text: &str, reason: String) -> ReportError {
    ReportError::BadPeriod {
        flag: kind.flag(),
        text: text.to_string(),
        reason,
        example: match kind {
            PeriodKind::Month => "YYYY-MM, for example 2026-10",
            PeriodKind::Quarter => "YYYY-Qn, for example 2026-Q4",
        },
    }
}

/// `YYYY-rest` as the year and the rest; `what` names the rest in an error.
fn split_year<'a>(text: &'a str, what: &str) -> Result<(i32, &'a str), String> {
    let (year, rest) = text
        .trim()
        .split_once('-')
        .ok_or_else(|| format!("it has no `-` between year and {what}"))?;
    Ok((parse_year(year)?, rest))
}

fn parse_year(year: &str) -> Result<i32, String> {
    if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("the year `{year}` is not four digits"));
    }
    let y: i32 = year
        .parse()
        .map_err(|_| format!("the year `{year}` is not a number"))?;
    if !(MIN_YEAR..=MAX_YEAR).contains(&y) {
        return Err(format!(
            "the year {y} is outside {MIN_YEAR} to {MAX_YEAR}, the archive's time range"
        ));
    }
    Ok(y)
}

fn midnight_micros(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map_or(i64::MAX, |t| t.and_utc().timestamp_micros())
}

/// The UTC date of `micros` (microseconds since the epoch).
pub(crate) fn utc_date(micros: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

/// The days from `first` to `last`, both included.
pub(crate) fn days(first: NaiveDate, last: NaiveDate) -> Vec<NaiveDate> {
    first
        .iter_days()
        .take_while(|d| *d <= last)
        .take(400)
        .collect()
}

/// Whether `day` is the first of a month (used for axis labels).
pub(crate) fn is_first_of_month(day: NaiveDate) -> bool {
    day.day() == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(micros: i64) -> String {
        rampart_core::ledger::rfc3339(micros)
    }

    #[test]
    fn a_month_runs_from_midnight_utc_to_the_next_month() {
        let p = Period::month("2026-10").unwrap();
        assert_eq!(p.to_string(), "2026-10");
        assert_eq!(p.describe(), "--month 2026-10");
        assert_eq!(p.title(), "October 2026");
        assert_eq!(rfc(p.start_micros()), "2026-10-01T00:00:00.000000Z");
        assert_eq!(rfc(p.end_micros()), "2026-11-01T00:00:00.000000Z");
        let dec = Period::month("2026-12").unwrap();
        assert_eq!(rfc(dec.end_micros()), "2027-01-01T00:00:00.000000Z");
        let feb = Period::month("2028-02").unwrap();
        assert_eq!(feb.end_day() - feb.first_day(), chrono::TimeDelta::days(29));
    }

    #[test]
    fn a_quarter_is_three_months() {
        let p = Period::quarter("2026-Q4").unwrap();
        assert_eq!(p.to_string(), "2026-Q4");
        assert_eq!(p.title(), "Q4 2026 (October to December)");
        assert_eq!(rfc(p.start_micros()), "2026-10-01T00:00:00.000000Z");
        assert_eq!(rfc(p.end_micros()), "2027-01-01T00:00:00.000000Z");
        let q1 = Period::quarter("2027-q1").unwrap();
        assert_eq!(q1.to_string(), "2027-Q1");
        assert_eq!(rfc(q1.end_micros()), "2027-04-01T00:00:00.000000Z");
    }

    #[test]
    fn bad_periods_are_refused_with_the_reason_and_an_example() {
        let month = |t: &str| Period::month(t).unwrap_err().to_string();
        let quarter = |t: &str| Period::quarter(t).unwrap_err().to_string();
        let e = month("2026-13");
        assert!(
            e.contains("--month `2026-13`") && e.contains("no month 13"),
            "{e}"
        );
        assert!(e.contains("for example 2026-10"), "{e}");
        assert!(month("2026-00").contains("no month 0"));
        assert!(month("2026-1").contains("two digits"));
        assert!(month("202610").contains("no `-`"));
        assert!(month("26-10").contains("four digits"));
        assert!(month("1969-12").contains("outside 1970"));
        assert!(month("2026-Q4").contains("two digits"));
        let e = quarter("2026-Q5");
        assert!(
            e.contains("--quarter `2026-Q5`") && e.contains("Q1 to Q4"),
            "{e}"
        );
        assert!(quarter("2026-4").contains("does not start with Q"));
        assert!(quarter("2026-10").contains("does not start with Q"));
        assert!(quarter("Q4-2026").contains("four digits"));
    }

    #[test]
    fn days_list_every_date_once() {
        let p = Period::month("2026-02").unwrap();
        let last = p.end_day().pred_opt().unwrap();
        let d = days(p.first_day(), last);
        assert_eq!(d.len(), 28);
        assert!(is_first_of_month(d[0]) && !is_first_of_month(d[1]));
        assert_eq!(utc_date(p.end_micros() - 1), last);
    }
}
