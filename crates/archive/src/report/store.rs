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
