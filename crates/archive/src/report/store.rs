//! Storing a report in the archive: its HTML and JSON under
//! `reports/period=<period>/`, committed together with one manifest.
//!
//! The two files are written with `PutMode::Create` at new names, then one `append`
//! manifest adds them, each with its size, SHA-256 and the `reports` retention period
//! counted from the end of the hour the report was made in. Until that manifest exists
//! they are not part of the archive: a crash in between leaves two files that
//! `rampart verify` shows as extras and the clean-up deletes after `archive.orphan-grace`.

use std::time::Duration;

use chrono::DateTime;
use rampart_core::Clock;
use rampart_core::layout::{REPORTS, hour_bucket};
use rampart_core::ledger::{Action, Change, FileEntry, Ledger, sha256_hex};
use rampart_core::store::Location;
use tracing::instrument;

use super::{Report, ReportError};

/// A report as stored in the archive.
#[derive(Debug, Clone)]
pub struct StoredReport {
    /// The HTML's path, relative to the archive root.
    pub html_path: String,
    /// The JSON's path, relative to the archive root.
    pub json_path: String,
    /// The manifest that committed both.
    pub manifest_sequence: u64,
    /// The SHA-256 of the HTML's bytes.
    pub html_sha256: String,
    /// The SHA-256 of the JSON's bytes.
    pub json_sha256: String,
}

/// `reports/period=<period>/report-<made at>-<id>` (without extension).
fn stem(report: &Report) -> String {
    let at = DateTime::parse_from_rfc3339(&report.generated_at)
        .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_default();
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "{REPORTS}/period={}/report-{at}-{}",
        report.period.label,
        &id[id.len() - 8..]
    )
}

/// Writes `html` and `json` (the renderings of `report`) into the archive at
/// `location` and commits them with one manifest, kept for `retention`.
#[instrument(skip_all, fields(period = %report.period.label))]
pub async fn store(
    location: &Location,
    report: &Report,
    html: &[u8],
    json: &[u8],
    retention: Duration,
    clock: &dyn Clock,
) -> Result<StoredReport, ReportError> {
    let stem = stem(report);
    let made = rampart_core::ledger::parse_rfc3339(&report.generated_at)
        .unwrap_or_else(|| clock.now_micros());
    let hour = hour_bucket(made);
    let html_entry = put_new(location, format!("{stem}.html"), html, hour, retention).await?;
    let json_entry = put_new(location, format!("{stem}.json"), json, hour, retention).await?;
    let mut ledger = Ledger::load(location)
        .await
        .map_err(|source| ReportError::Ledger { source })?;
    let committed = ledger
        .commit(
            Change {
                note: Some(format!(
                    "audit report {} ({}), covering {} to {}",
                    report.period.label,
                    report.period.title,
                    report.period.start,
                    report.period.covered_until
                )),
                add: vec![html_entry.clone(), json_entry.clone()],
                ..Change::new(Action::Append)
            },
            clock,
        )
        .await
        .map_err(|source| ReportError::Ledger { source })?;
    Ok(StoredReport {
        html_path: html_entry.path,
        json_path: json_entry.path,
        manifest_sequence: committed.manifest.sequence,
        html_sha256: html_entry.sha256,
        json_sha256: json_entry.sha256,
    })
}

/// Writes `bytes` at the new object `path` and returns its manifest entry.
async fn put_new(
    location: &Location,
    path: String,
    bytes: &[u8],
    hour: i64,
    retention: Duration,
) -> Result<FileEntry, ReportError> {
    location
        .create(&path, bytes.to_vec())
        .await
        .map_err(|source| ReportError::Store {
            path: path.clone(),
            source,
        })?;
    Ok(FileEntry::new(
        REPORTS,
        path,
        hour,
        0,
        bytes.len() as u64,
        sha256_hex(bytes),
        retention,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Archive;
    use crate::holds::place_hold;
    use crate::report::{Period, build};
    use crate::retention::plan_retention;
    use crate::verify::verify_archive;
    use rampart_core::ManualClock;
    use rampart_core::layout::MICROS_PER_HOUR;

    /// 2026-11-05T10:30:00Z
    const NOW: i64 = 1_793_874_600_000_000;
    const DAY: Duration = Duration::from_secs(86_400);

    #[tokio::test]
    async fn a_stored_report_is_committed_verified_and_kept_for_its_own_retention() {
        let dir = tempfile::tempdir().unwrap();
        let loc =
            rampart_core::store::open(dir.path().to_str().unwrap(), Vec::<(String, String)>::new())
                .unwrap();
        let clock = ManualClock::new(NOW);
        // An empty archive still makes a report: every count is zero.
        let archive = Archive::open(loc.clone()).await.unwrap();
        let period = Period::month("2026-11").unwrap();
        let report = build(&archive, &period, &clock).await.unwrap();
        assert_eq!(report.totals.events, 0);
        assert_eq!(report.totals.adherence_pct, None);
        assert!(!report.period.complete);
        assert_eq!(report.period.covered_until, "2026-11-05T10:30:00.000000Z");
        assert_eq!(report.daily.len(), 5, "November 1 to 5");
        let html = report.to_html();
        let json = report.to_json().unwrap();

        let stored = store(&loc, &report, html.as_bytes(), &json, DAY, &clock)
            .await
            .unwrap();
        assert!(
            stored
                .html_path
                .starts_with("reports/period=2026-11/report-20261105T103000Z-"),
            "{}",
            stored.html_path
        );
        assert_eq!(
            stored.json_path.strip_suffix(".json"),
            stored.html_path.strip_suffix(".html")
        );
        let ledger = Ledger::load(&loc).await.unwrap();
        let files: Vec<_> = ledger.state().files_of(REPORTS).collect();
        assert_eq!(files.len(), 2);
        for f in &files {
            assert_eq!(f.added_by, stored.manifest_sequence);
            assert_eq!((f.entry.rows, f.entry.retention.as_str()), (0, "1d"));
            // Kept from the end of the hour it was made in.
            assert_eq!(f.entry.retain_until, "2026-11-06T11:00:00.000000Z");
        }
        let on_disk = std::fs::read(dir.path().join(&stored.html_path)).unwrap();
        assert_eq!(sha256_hex(&on_disk), stored.html_sha256);
        assert_eq!(on_disk, html.as_bytes());

        let verified = verify_archive(&loc, NOW, Duration::from_secs(3600))
            .await
            .unwrap();
        assert!(verified.is_intact(), "{verified}");

        // Retention: a hold keeps rows, and a report has none: it goes at the end of
        // its own period, and like any file is kept when that period is below the floor.
        place_hold(
            &archive,
            "h",
            "true",
            Some(vec!["access_log".into()]),
            None,
            &clock,
        )
        .await
        .unwrap();
        let ledger = Ledger::load(&loc).await.unwrap();
        let until = NOW - NOW % MICROS_PER_HOUR + MICROS_PER_HOUR + 86_400_000_000;
        let floor = Duration::from_secs(365 * 86_400);
        let plan = plan_retention(&loc, ledger.state(), until - 1, floor, true)
            .await
            .unwrap();
        assert!(plan.expired.is_empty());
        let plan = plan_retention(&loc, ledger.state(), until, floor, true)
            .await
            .unwrap();
        assert_eq!(plan.expired.len(), 2);
        assert!(plan.held.is_empty());
        let plan = plan_retention(&loc, ledger.state(), until, floor, false)
            .await
            .unwrap();
        assert_eq!((plan.expired.len(), plan.below_floor.len()), (0, 2));
    }
}
