//! `rampart verify --bundle`: is an export bundle what its checksums and manifest say?
//!
//! A bundle (format `rampart-export/1`) is a directory:
//!
//! ```text
//! <dir>/README.txt
//! <dir>/manifest.json      what was exported, from which archive head, and every data file
//! <dir>/SHA256SUMS         "<64 hex>  <relative path>" per file except itself, sorted by path
//! <dir>/data/<table>/part-NNNNN.parquet
//! ```
//!
//! [`verify_bundle`] checks that every file SHA256SUMS lists exists with that hash and
//! that nothing else is in the directory; that `manifest.json` is a `rampart-export/1`
//! manifest whose data files are in SHA256SUMS with the same hash, have the recorded size
//! and, by their Parquet footer, the recorded rows; and that `rows_total` is their sum.
//! A path that is absolute, has `..`, or goes through a symbolic link is reported and
//! never read: verification stays inside the bundle. The checks agree with
//! `sha256sum -c SHA256SUMS` run in the directory, and go further.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use parquet::file::metadata::ParquetMetaDataReader;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::verify::{Finding, Kind, write_findings, write_verdict};
use crate::{Error, Result};

// The format is the exporter's: one definition of `manifest.json` for both sides.
pub use crate::export::{
    BundleArchive, BundleFile, BundleManifest, BundleQuery, FORMAT as BUNDLE_FORMAT,
    MANIFEST_FILE as BUNDLE_MANIFEST, README_FILE as README, SUMS_FILE as CHECKSUMS,
    SourceManifest,
};

/// The folder of the data files.
pub const DATA_DIR: &str = "data";

/// What [`verify_bundle`] found.
#[derive(Debug, Clone, Serialize)]
pub struct BundleReport {
    /// The bundle directory.
    pub dir: String,
    /// Its manifest, when it could be read.
    pub manifest: Option<BundleManifest>,
    /// Files whose SHA-256 matched their SHA256SUMS line.
    pub files_matched: u64,
    /// Data files read, and their rows by their Parquet footers.
    pub data_files: u64,
    pub data_rows: u64,
    /// What makes the bundle not intact.
    pub problems: Vec<Finding>,
    /// What is worth knowing but not a fault.
    pub notes: Vec<Finding>,
}

impl BundleReport {
    /// True when no problem was found.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, kind: Kind, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Finding {
            kind,
            path: path.into(),
            message: message.into(),
        });
    }
}

/// What is on disk: regular files by relative path, with their size.
type Present = BTreeMap<String, u64>;

/// Verifies the export bundle in `dir` (see the module docs). Errors only when `dir`
/// cannot be read; everything wrong with the bundle is in the report.
pub fn verify_bundle(dir: &Path) -> Result<BundleReport> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let meta = std::fs::metadata(dir).map_err(io_err(dir))?;
    if !meta.is_dir() {
        return Err(Error::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "an export bundle is a directory; give the directory that holds SHA256SUMS",
            ),
        });
    }
    let mut report = BundleReport {
        dir: dir.display().to_string(),
        manifest: None,
        files_matched: 0,
        data_files: 0,
        data_rows: 0,
        problems: Vec::new(),
        notes: Vec::new(),
    };
    let present = walk(dir, &mut report)?;
    let sums = check_sums(dir, &present, &mut report)?;
    for path in present.keys() {
        if path != CHECKSUMS && !sums.contains_key(path) {
            report.problem(
                Kind::Extra,
                path.as_str(),
                format!("is in the bundle but not in {CHECKSUMS}: it was added after the export"),
            );
        }
    }
    for required in [README, BUNDLE_MANIFEST] {
        if !present.contains_key(required) && !sums.contains_key(required) {
            report.problem(
                Kind::Missing,
                required,
                "every bundle has it, and SHA256SUMS must list it",
            );
        }
    }
    if present.contains_key(BUNDLE_MANIFEST) {
        check_manifest(dir, &present, &sums, &mut report)?;
    }
    Ok(report)
}

/// Lists the regular files under `dir`; reports links and names that are not UTF-8.
fn walk(dir: &Path, report: &mut BundleReport) -> Result<Present> {
    let mut present = Present::new();
    let mut stack: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), String::new())];
    while let Some((abs, rel)) = stack.pop() {
        let entries = std::fs::read_dir(&abs).map_err(|source| Error::Io {
            path: abs.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| Error::Io {
                path: abs.clone(),
                source,
            })?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                report.problem(
                    Kind::UnsafePath,
                    format!("{rel}{}", name.to_string_lossy()),
                    "its name is not UTF-8; a bundle's paths are plain text",
                );
                continue;
            };
            let child = format!("{rel}{name}");
            let kind = entry.file_type().map_err(|source| Error::Io {
                path: entry.path(),
                source,
            })?;
            if kind.is_symlink() {
                report.problem(
                    Kind::UnsafePath,
                    child,
                    "is a symbolic link; a bundle holds plain files only, and links are not followed",
                );
            } else if kind.is_dir() {
                stack.push((entry.path(), format!("{child}/")));
            } else if kind.is_file() {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                present.insert(child, size);
            } else {
                report.problem(
                    Kind::UnsafePath,
                    child,
                    "is not a regular file; a bundle holds plain files only",
                );
            }
        }
    }
    Ok(present)
}

/// Why `path` cannot be read inside the bundle, if it cannot.
fn unsafe_path(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("is empty");
    }
    if path.starts_with('/') || path.starts_with('\\') || path.as_bytes().get(1) == Some(&b':') {
        return Some("is absolute; bundle paths are relative to the bundle directory");
    }
    if path.contains('\\') {
        return Some("has a backslash; bundle paths use `/`");
    }
    if path.split('/').any(|p| p == "..") {
        return Some("has `..`; bundle paths stay inside the bundle");
    }
    if path.split('/').any(|p| p.is_empty() || p == ".") {
        return Some("has `.` or empty parts; bundle paths are written plainly (data/t/f)");
    }
    None
}

/// Parses SHA256SUMS and checks each listed file; returns path -> recorded hash.
fn check_sums(
    dir: &Path,
    present: &Present,
    report: &mut BundleReport,
) -> Result<BTreeMap<String, String>> {
    let mut sums = BTreeMap::new();
    if !present.contains_key(CHECKSUMS) {
        report.problem(
            Kind::Missing,
            CHECKSUMS,
            "the bundle has no SHA256SUMS: none of its files can be checked",
        );
        return Ok(sums);
    }
    let path = dir.join(CHECKSUMS);
    let text = std::fs::read(&path).map_err(|source| Error::Io { path, source })?;
    let Ok(text) = String::from_utf8(text) else {
        report.problem(
            Kind::BadChecksumLine,
            CHECKSUMS,
            "is not UTF-8 text; it must be sha256sum output",
        );
        return Ok(sums);
    };
    let mut order = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("{CHECKSUMS}:{}", n + 1);
        if line.is_empty() {
            continue;
        }
        let parsed = line
            .split_once("  ")
            .or_else(|| line.split_once(" *"))
            .filter(|(h, _)| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some((hash, file)) = parsed else {
            report.problem(
                Kind::BadChecksumLine,
                at,
                format!("`{line}` is not `<64 hex digits>  <path>` (sha256sum format)"),
            );
            continue;
        };
        if let Some(why) = unsafe_path(file) {
            report.problem(Kind::UnsafePath, file, format!("{at} names it; it {why}"));
            continue;
        }
        if sums.contains_key(file) {
            report.problem(
                Kind::BadChecksumLine,
                at,
                format!("lists {file} a second time"),
            );
            continue;
        }
        if file == CHECKSUMS {
            report.problem(
                Kind::BadChecksumLine,
                at,
                "lists SHA256SUMS itself, which cannot hold its own hash",
            );
            continue;
        }
        order.push(file.to_string());
        sums.insert(file.to_string(), hash.to_ascii_lowercase());
    }
    if order.windows(2).any(|w| w[0] > w[1]) {
        report.notes.push(Finding {
            kind: Kind::UnsortedChecksums,
            path: CHECKSUMS.into(),
            message: "its lines are not sorted by path as rampart writes them".into(),
        });
    }
    for (file, recorded) in &sums {
        if !present.contains_key(file) {
            report.problem(
                Kind::Missing,
                file.as_str(),
                format!("{CHECKSUMS} lists it but it is not in the bundle"),
            );
            continue;
        }
        let actual = hash_file(&dir.join(file))?;
        if actual == *recorded {
            report.files_matched += 1;
        } else {
            report.problem(
                Kind::Altered,
                file.as_str(),
                format!("its SHA-256 is {actual}, {CHECKSUMS} records {recorded}"),
            );
        }
    }
    Ok(sums)
}

/// SHA-256 of a file, read in chunks.
fn hash_file(path: &Path) -> Result<String> {
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Checks `manifest.json` against itself, SHA256SUMS and the data files.
fn check_manifest(
    dir: &Path,
    present: &Present,
    sums: &BTreeMap<String, String>,
    report: &mut BundleReport,
) -> Result<()> {
    let path = dir.join(BUNDLE_MANIFEST);
    let bytes = std::fs::read(&path).map_err(|source| Error::Io { path, source })?;
    let bad = |report: &mut BundleReport, message: String| {
        report.problem(Kind::BadBundleManifest, BUNDLE_MANIFEST, message);
    };
    let value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            bad(report, format!("is not JSON: {e}"));
            return Ok(());
        }
    };
    match value.get("format").and_then(|f| f.as_str()) {
        Some(BUNDLE_FORMAT) => {}
        Some(other) => {
            bad(
                report,
                format!("its format is `{other}`; this version reads `{BUNDLE_FORMAT}`"),
            );
            return Ok(());
        }
        None => {
            bad(
                report,
                format!("has no `format`; expected `{BUNDLE_FORMAT}`"),
            );
            return Ok(());
        }
    }
    let manifest: BundleManifest = match serde_json::from_value(value) {
        Ok(m) => m,
        Err(e) => {
            bad(
                report,
                format!("is not a valid {BUNDLE_FORMAT} manifest: {e}"),
            );
            return Ok(());
        }
    };
    for (field, text) in [
        ("exported_at", &manifest.exported_at),
        ("query.from", &manifest.query.from),
        ("query.to", &manifest.query.to),
    ] {
        if rampart_core::ledger::parse_rfc3339(text).is_none() {
            bad(
                report,
                format!("`{field}` is `{text}`, not an RFC 3339 time"),
            );
        }
    }
    let mut listed = BTreeSet::new();
    let mut rows_sum = 0u64;
    for f in &manifest.files {
        rows_sum = rows_sum.saturating_add(f.rows);
        if let Some(why) = unsafe_path(&f.path) {
            report.problem(
                Kind::UnsafePath,
                f.path.as_str(),
                format!("{BUNDLE_MANIFEST} lists it; it {why}"),
            );
            continue;
        }
        if !listed.insert(f.path.as_str()) {
            bad(report, format!("lists {} twice", f.path));
            continue;
        }
        let folder = format!("{DATA_DIR}/{}/", f.table);
        if !f.path.starts_with(&folder) {
            report.problem(
                Kind::BadBundleManifest,
                f.path.as_str(),
                format!("is listed as table `{}` but is not under {folder}", f.table),
            );
        }
        match sums.get(&f.path) {
            None => report.problem(
                Kind::BadBundleManifest,
                f.path.as_str(),
                format!("{BUNDLE_MANIFEST} lists it but {CHECKSUMS} does not"),
            ),
            Some(h) if *h != f.sha256.to_ascii_lowercase() => report.problem(
                Kind::BadBundleManifest,
                f.path.as_str(),
                format!(
                    "{BUNDLE_MANIFEST} records SHA-256 {}, {CHECKSUMS} records {h}",
                    f.sha256
                ),
            ),
            Some(_) => {}
        }
        let Some(&size) = present.get(&f.path) else {
            if !sums.contains_key(&f.path) {
                report.problem(
                    Kind::Missing,
                    f.path.as_str(),
                    format!("{BUNDLE_MANIFEST} lists it but it is not in the bundle"),
                );
            }
            continue;
        };
        if size != f.bytes {
            report.problem(
                Kind::Altered,
                f.path.as_str(),
                format!(
                    "its size is {size} bytes, {BUNDLE_MANIFEST} records {}",
                    f.bytes
                ),
            );
        }
        report.data_files += 1;
        match parquet_rows(&dir.join(&f.path)) {
            Ok(rows) => {
                report.data_rows += rows;
                if rows != f.rows {
                    report.problem(
                        Kind::RowsMismatch,
                        f.path.as_str(),
                        format!(
                            "its Parquet footer gives {rows} rows, {BUNDLE_MANIFEST} records {}",
                            f.rows
                        ),
                    );
                }
            }
            Err(e) => report.problem(
                Kind::UnreadableFile,
                f.path.as_str(),
                format!("its Parquet footer cannot be read: {e}"),
            ),
        }
    }
    if rows_sum != manifest.rows_total {
        bad(
            report,
            format!(
                "`rows_total` is {}, but its files' rows add up to {rows_sum}",
                manifest.rows_total
            ),
        );
    }
    let data_prefix = format!("{DATA_DIR}/");
    for path in present.keys() {
        if path.starts_with(&data_prefix) && !listed.contains(path.as_str()) {
            report.problem(
                Kind::Extra,
                path.as_str(),
                format!("is in {DATA_DIR}/ but {BUNDLE_MANIFEST} does not list it"),
            );
        }
    }
    report.manifest = Some(manifest);
    Ok(())
}

/// Rows of a Parquet file, from its footer.
fn parquet_rows(path: &Path) -> std::result::Result<u64, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let meta = ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .map_err(|e| e.to_string())?;
    u64::try_from(meta.file_metadata().num_rows()).map_err(|e| e.to_string())
}

impl fmt::Display for BundleReport {
    /// The report for people: what the bundle is, every problem and note with its path,
    /// and the verdict on the last line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "rampart verify: export bundle {}", self.dir)?;
        if let Some(m) = &self.manifest {
            writeln!(
                f,
                "  exported    {} by {}{}",
                m.exported_at,
                m.tool,
                m.user
                    .as_deref()
                    .map(|u| format!(" ({u})"))
                    .unwrap_or_default()
            )?;
            let head = match (m.archive.head_sequence, &m.archive.head_sha256) {
                (Some(s), Some(h)) => format!("at head manifest {s} sha256 {h}"),
                (Some(s), None) => format!("at head manifest {s}"),
                _ => "(empty archive)".to_string(),
            };
            writeln!(f, "  archive     {} {head}", m.archive.url)?;
            writeln!(
                f,
                "  query       {} to {}, tables {}{}",
                m.query.from,
                m.query.to,
                m.query.tables.join(", "),
                m.query
                    .predicate
                    .as_deref()
                    .map(|w| format!(", where {w}"))
                    .unwrap_or_default()
            )?;
            writeln!(
                f,
                "  data        {} files, {} rows recorded",
                m.files.len(),
                m.rows_total
            )?;
        }
        writeln!(
            f,
            "  checked     {} files match {CHECKSUMS}; {} data files with {} rows by their footers",
            self.files_matched, self.data_files, self.data_rows
        )?;
        write_findings(f, "problems", &self.problems)?;
        write_findings(f, "notes", &self.notes)?;
        write_verdict(f, "bundle", self.problems.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_bundle_are_refused() {
        assert_eq!(unsafe_path("data/events/part-00000.parquet"), None);
        assert_eq!(unsafe_path("README.txt"), None);
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "data/../../x",
            "data//x",
            "./x",
            "C:/x",
            "a\\b",
        ] {
            assert!(unsafe_path(bad).is_some(), "{bad}");
        }
    }
}
