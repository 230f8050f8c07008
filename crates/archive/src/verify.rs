//! `rampart verify`: is the archive what its manifests say it is?
//!
//! [`verify_archive`] reads every manifest's stored bytes and checks, reporting every
//! problem rather than stopping at the first:
//!
//! - the manifest folder: only manifest names, numbered from 1 without gaps, each saying
//!   the number it is named by, each readable;
//! - the chain: every manifest records the SHA-256 of the stored bytes of the one before
//!   it, so an edited manifest shows up at the next one; the last one (the head) can only
//!   be checked against a head recorded elsewhere ([`VerifyReport::check_expected_head`]);
//! - the replay: nothing is removed that is not in the archive, nothing added twice, holds
//!   placed and released in order;
//! - the data: every file in the archive is stored with the size and SHA-256 its manifest
//!   records (streamed, never loaded whole) and, for Parquet, the row count its footer
//!   gives (stored reports are HTML and JSON: size and SHA-256 only);
//! - extras: objects in the tables' folders and `reports/` that are not in the archive.
//!   Those younger than the grace period may belong to a writer that has not committed
//!   yet, and those a manifest removed await cleanup: both are notes, not problems.
//!
//! Nothing is written: verification never changes the evidence it checks.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use parquet::arrow::async_reader::MetadataFetch;
use parquet::file::metadata::ParquetMetaDataReader;
use rampart_core::layout::{DATA_FILE_EXTENSION, committed_folders};
use rampart_core::ledger::{
    self, Action, Committed, FileEntry, MANIFEST_DIR, manifest_path, parse_manifest,
    read_manifests, sha256_hex,
};
use rampart_core::store::Location;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::instrument;

use crate::{Error, Result};

/// How many data files are read from the store at once.
const CONCURRENT_READS: usize = 4;

/// Bytes fetched from a file's end to read its footer in one request, usually.
const FOOTER_PREFETCH: usize = 64 * 1024;

/// Gaps longer than this are reported as their first missing manifest and a count.
const MAX_GAP_LISTED: u64 = 10;

/// What a finding is about. Problems make an archive or bundle not intact; notes do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Kind {
    // --- the manifest chain
    /// An object in the manifest folder whose name is not `<20 digits>.json`.
    NotAManifest,
    /// A number missing from the sequence.
    MissingManifest,
    /// A manifest whose `sequence` differs from its name: renamed or re-ordered.
    MisnumberedManifest,
    /// A manifest that does not parse as one.
    UnreadableManifest,
    /// A manifest whose bytes differ from what the next one recorded.
    AlteredManifest,
    /// A link that cannot be right whatever the bytes: a first manifest that records a
    /// previous one, or a later one that records none.
    BrokenLink,
    /// The head differs from the one recorded outside the archive.
    HeadMismatch,
    /// A removal of a file that is not in the archive at that point, or with a hash
    /// other than the one it was added with.
    InvalidRemoval,
    /// A file added while already in the archive.
    DuplicateAdd,
    /// A hold placed twice, or released while not in force.
    HoldConflict,
    // --- files
    /// A file listed (by a manifest or SHA256SUMS) that is not stored.
    Missing,
    /// A file whose bytes differ from the recorded size or SHA-256.
    Altered,
    /// A Parquet file whose footer gives another row count than the one recorded.
    RowsMismatch,
    /// A file whose Parquet footer cannot be read although its bytes are the recorded ones.
    UnreadableFile,
    /// A file that nothing lists.
    Extra,
    // --- export bundles
    /// A path that is absolute, has `..`, `.` or empty parts, is not UTF-8, or is a link.
    UnsafePath,
    /// A line of SHA256SUMS that is not `<64 hex>  <path>`, or names a path twice.
    BadChecksumLine,
    /// `manifest.json` is not a valid `rampart-export/1` manifest, or its entries
    /// disagree with each other or with SHA256SUMS.
    BadBundleManifest,
    /// A checkpoint (a derived copy of the state, to load faster) disagrees with the
    /// chain or cannot be read.
    BadCheckpoint,
    // --- notes
    /// An extra file younger than the grace period: a writer may still commit it.
    RecentExtra,
    /// A file a manifest removed that is still stored; the next cleanup deletes it.
    AwaitingCleanup,
    /// Where the head recorded outside the archive is in the chain.
    RecordedHead,
    /// The location holds no manifests.
    EmptyArchive,
    /// SHA256SUMS is not sorted by path (`sha256sum -c` does not mind).
    UnsortedChecksums,
}

impl Kind {
    /// The kind as reported: `altered-manifest`, `missing`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NotAManifest => "not-a-manifest",
            Kind::MissingManifest => "missing-manifest",
            Kind::MisnumberedManifest => "misnumbered-manifest",
            Kind::UnreadableManifest => "unreadable-manifest",
            Kind::AlteredManifest => "altered-manifest",
            Kind::BrokenLink => "broken-link",
            Kind::HeadMismatch => "head-mismatch",
            Kind::InvalidRemoval => "invalid-removal",
            Kind::DuplicateAdd => "duplicate-add",
            Kind::HoldConflict => "hold-conflict",
            Kind::Missing => "missing",
            Kind::Altered => "altered",
            Kind::RowsMismatch => "rows-mismatch",
            Kind::UnreadableFile => "unreadable-file",
            Kind::Extra => "extra",
            Kind::UnsafePath => "unsafe-path",
            Kind::BadChecksumLine => "bad-checksum-line",
            Kind::BadBundleManifest => "bad-bundle-manifest",
            Kind::BadCheckpoint => "bad-checkpoint",
            Kind::RecentExtra => "recent-extra",
            Kind::AwaitingCleanup => "awaiting-cleanup",
            Kind::RecordedHead => "recorded-head",
            Kind::EmptyArchive => "empty-archive",
            Kind::UnsortedChecksums => "unsorted-checksums",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem or note: what, where, and the facts behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What it is about.
    pub kind: Kind,
    /// The path it concerns, relative to the archive root or the bundle directory.
    pub path: String,
    /// The facts: expected and found values, which manifest says what.
    pub message: String,
}

/// The last manifest: record it outside the archive to detect a later edit of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Head {
    /// Its number.
    pub sequence: u64,
    /// Its path, relative to the archive root.
    pub path: String,
    /// SHA-256 of its stored bytes.
    pub sha256: String,
}

/// The archive's history in numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Manifests stored (with a manifest's name).
    pub manifests: u64,
    /// Readable manifests by action.
    pub append: u64,
    pub compact: u64,
    pub retention: u64,
    pub hold: u64,
    pub release: u64,
    /// Files in the archive now.
    pub files: u64,
    /// Their rows, as the manifests record them.
    pub rows: u64,
    /// Their bytes, as the manifests record them.
    pub bytes: u64,
    /// Files removed over the history (compaction, retention).
    pub files_removed: u64,
    /// Holds in force.
    pub holds: u64,
}

/// What [`verify_archive`] found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The archive's URL.
    pub url: String,
    /// The last manifest, if any.
    pub head: Option<Head>,
    /// The history in numbers.
    pub counts: Counts,
    /// What makes the archive not intact, in the order found.
    pub problems: Vec<Finding>,
    /// What an operator should know but is not a fault.
    pub notes: Vec<Finding>,
    /// Every stored manifest's number and hash, to place a recorded head in the chain.
    #[serde(skip)]
    chain: Vec<(u64, String)>,
}

impl VerifyReport {
    fn new(url: String) -> Self {
        Self {
            url,
            head: None,
            counts: Counts::default(),
            problems: Vec::new(),
            notes: Vec::new(),
            chain: Vec::new(),
        }
    }

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

    fn note(&mut self, kind: Kind, path: impl Into<String>, message: impl Into<String>) {
        self.notes.push(Finding {
            kind,
            path: path.into(),
            message: message.into(),
        });
    }

    /// Checks the chain against a head SHA-256 recorded outside the archive (from an
    /// earlier report). The chain is append-only: the recorded head must be the current
    /// head or a manifest the chain has grown from; anything else is a problem (the
    /// recorded manifest was edited, or removed together with everything after it).
    /// Whether the manifests after it link to it is part of the chain check itself.
    pub fn check_expected_head(&mut self, expected_sha256: &str) {
        let expected = expected_sha256.trim().to_ascii_lowercase();
        let Some(head) = self.head.clone() else {
            self.problem(
                Kind::HeadMismatch,
                MANIFEST_DIR,
                format!(
                    "the recorded head is {expected}, but the archive has no manifests: \
                     the whole chain was removed, or this is not the archive's URL"
                ),
            );
            return;
        };
        if head.sha256 == expected {
            self.note(
                Kind::RecordedHead,
                head.path,
                format!("the head, manifest {}, is the recorded one", head.sequence),
            );
            return;
        }
        match self.chain.iter().find(|(_, sha)| *sha == expected) {
            Some(&(sequence, _)) => {
                let since = head.sequence.saturating_sub(sequence);
                self.note(
                    Kind::RecordedHead,
                    manifest_path(sequence),
                    format!(
                        "the recorded head is manifest {sequence}; {since} manifest{} \
                         were committed after it, up to manifest {}",
                        if since == 1 { "" } else { "s" },
                        head.sequence
                    ),
                );
            }
            None => self.problem(
                Kind::HeadMismatch,
                head.path,
                format!(
                    "no manifest has the recorded head's SHA-256 {expected}; the head is \
                     manifest {} with SHA-256 {}: the recorded manifest was altered, or it \
                     was removed with everything after it",
                    head.sequence, head.sha256
                ),
            ),
        }
    }
}

/// Verifies the archive at `location` (see the module docs). Extra files younger than
/// `grace` at `now_micros` are notes, not problems. Errors only when the store cannot be
/// read; everything wrong with the archive itself is in the report.
#[instrument(skip_all, fields(url = %location.url))]
pub async fn verify_archive(
    location: &Location,
    now_micros: i64,
    grace: Duration,
) -> Result<VerifyReport> {
    let mut report = VerifyReport::new(location.url.to_string());
    let stored = read_manifests(location, None)
        .await
        .map_err(|source| Error::Ledger { source })?;
    let chain = check_chain(&stored, &mut report);
    let checkpoints = rampart_core::ledger::check_checkpoints(location, &chain)
        .await
        .map_err(|source| Error::Ledger { source })?;
    for (path, message) in checkpoints {
        report.problem(Kind::BadCheckpoint, path, message);
    }
    let replay = replay(&chain, &mut report);
    check_files(location, &replay, &mut report).await?;
    check_extras(location, &replay, now_micros, grace, &mut report).await?;
    if report.head.is_none() {
        report.note(
            Kind::EmptyArchive,
            MANIFEST_DIR,
            "no manifests: the archive is empty (or this is not the archive's URL)",
        );
    }
    Ok(report)
}

/// Checks names, numbering and links; returns the readable manifests in chain order.
fn check_chain<B: AsRef<[u8]>>(
    stored: &[(Option<u64>, String, B)],
    report: &mut VerifyReport,
) -> Vec<Committed> {
    let mut readable = Vec::new();
    // The manifest stored just before, by number: (sequence, SHA-256 of its bytes).
    let mut previous: Option<(u64, String)> = None;
    let mut expected = 1u64;
    for (sequence, path, bytes) in stored {
        let Some(sequence) = *sequence else {
            report.problem(
                Kind::NotAManifest,
                path.as_str(),
                format!(
                    "is in {MANIFEST_DIR} but is not named like a manifest \
                     (<20-digit number>.json); the folder holds manifests only"
                ),
            );
            continue;
        };
        if sequence == 0 {
            report.problem(
                Kind::MisnumberedManifest,
                path.as_str(),
                "manifest numbers start at 1; no writer creates number 0",
            );
            continue;
        }
        if sequence > expected {
            report_gap(report, expected, sequence);
        }
        let bytes = bytes.as_ref();
        let sha256 = sha256_hex(bytes);
        report.counts.manifests += 1;
        report.chain.push((sequence, sha256.clone()));
        match parse_manifest(path, bytes) {
            Err(e) => report.problem(
                Kind::UnreadableManifest,
                path.as_str(),
                format!("{e}; what it recorded cannot be replayed"),
            ),
            Ok(committed) => {
                let m = &committed.manifest;
                if m.sequence == sequence {
                    check_link(
                        report,
                        sequence,
                        path,
                        m.previous_sha256.as_deref(),
                        &previous,
                    );
                } else {
                    // Its link belongs to another place in the chain: checking it here
                    // would blame the manifest before it.
                    report.problem(
                        Kind::MisnumberedManifest,
                        path.as_str(),
                        format!(
                            "is named as manifest {sequence} but says it is manifest {}: \
                             manifests were renamed or re-ordered",
                            m.sequence
                        ),
                    );
                }
                readable.push(committed);
            }
        }
        previous = Some((sequence, sha256.clone()));
        expected = sequence.saturating_add(1);
        report.head = Some(Head {
            sequence,
            path: path.clone(),
            sha256,
        });
    }
    readable
}

fn report_gap(report: &mut VerifyReport, expected: u64, found: u64) {
    let context = if expected == 1 {
        format!("the chain starts at manifest {found}")
    } else {
        format!(
            "the chain goes from manifest {} to manifest {found}",
            expected - 1
        )
    };
    let missing = found - expected;
    for sequence in expected..found.min(expected.saturating_add(MAX_GAP_LISTED)) {
        report.problem(
            Kind::MissingManifest,
            manifest_path(sequence),
            format!(
                "is missing: {context}; what it recorded (files added or removed, holds) \
                 is unknown and the link across the gap cannot be checked"
            ),
        );
    }
    if missing > MAX_GAP_LISTED {
        report.problem(
            Kind::MissingManifest,
            manifest_path(expected + MAX_GAP_LISTED),
            format!(
                "and {} more up to {} are missing: {context}",
                missing - MAX_GAP_LISTED,
                manifest_path(found - 1)
            ),
        );
    }
}

/// Checks that manifest `sequence` links to the manifest stored before it.
fn check_link(
    report: &mut VerifyReport,
    sequence: u64,
    path: &str,
    recorded: Option<&str>,
    previous: &Option<(u64, String)>,
) {
    match (previous, recorded) {
        (None, Some(recorded)) if sequence == 1 => report.problem(
            Kind::BrokenLink,
            path,
            format!(
                "is the first manifest but records a previous one (SHA-256 {recorded}): \
                 it was altered, or the chain before it was removed and renumbered"
            ),
        ),
        (Some((before, before_sha)), recorded) if *before + 1 == sequence => match recorded {
            None => report.problem(
                Kind::BrokenLink,
                path,
                format!(
                    "records no previous manifest, but manifest {before} (SHA-256 \
                     {before_sha}) comes before it: it was altered or put in place by hand"
                ),
            ),
            Some(recorded) if recorded != before_sha => report.problem(
                Kind::AlteredManifest,
                manifest_path(*before),
                format!(
                    "manifest {before} was altered (its SHA-256 is {before_sha}; \
                     manifest {sequence} records {recorded})"
                ),
            ),
            Some(_) => {}
        },
        // A gap before it (already reported): the link cannot be checked.
        _ => {}
    }
}

/// The archive as the readable manifests say it is.
#[derive(Debug, Default)]
struct Replay {
    /// Files in the archive: entry and the manifest that added it.
    live: BTreeMap<String, (FileEntry, u64)>,
    /// Files taken out: the manifest that removed them and why.
    removed: BTreeMap<String, (u64, String)>,
    /// Per partition, its latest window-state file and the manifest that recorded it.
    states: BTreeMap<String, (rampart_core::ledger::StateFile, u64)>,
}

fn replay(chain: &[Committed], report: &mut VerifyReport) -> Replay {
    let mut state = Replay::default();
    let mut holds: BTreeMap<String, u64> = BTreeMap::new();
    for committed in chain {
        let m = &committed.manifest;
        let seq = m.sequence;
        let counts = &mut report.counts;
        match m.change.action {
            Action::Append => counts.append += 1,
            Action::Compact => counts.compact += 1,
            Action::Retention => counts.retention += 1,
            Action::Hold => counts.hold += 1,
            Action::Release => counts.release += 1,
        }
        for r in &m.change.remove {
            match state.live.remove(&r.path) {
                None => report.problem(
                    Kind::InvalidRemoval,
                    r.path.as_str(),
                    format!(
                        "manifest {seq} removes it, but it is not in the archive at that \
                         point (never added, or already removed)"
                    ),
                ),
                Some((added, added_by)) if !r.sha256.is_empty() && r.sha256 != added.sha256 => {
                    report.problem(
                        Kind::InvalidRemoval,
                        r.path.as_str(),
                        format!(
                            "manifest {seq} removes it as SHA-256 {}, but manifest \
                             {added_by} added it as {}",
                            r.sha256, added.sha256
                        ),
                    );
                }
                Some(_) => {}
            }
            report.counts.files_removed += 1;
            state
                .removed
                .insert(r.path.clone(), (seq, r.reason.clone()));
        }
        for a in &m.change.add {
            if let Some((_, added_by)) = state.live.get(&a.path) {
                report.problem(
                    Kind::DuplicateAdd,
                    a.path.as_str(),
                    format!(
                        "manifest {seq} adds it, but manifest {added_by} already did and \
                         nothing removed it in between"
                    ),
                );
            }
            state.removed.remove(&a.path);
            state.live.insert(a.path.clone(), (a.clone(), seq));
        }
        for f in &m.change.state {
            state.states.insert(f.key.clone(), (f.clone(), seq));
        }
        if let Some(h) = &m.change.hold {
            if let Some(placed_by) = holds.get(&h.name) {
                report.problem(
                    Kind::HoldConflict,
                    manifest_path(seq),
                    format!(
                        "places hold `{}`, already in force since manifest {placed_by}",
                        h.name
                    ),
                );
            }
            holds.insert(h.name.clone(), seq);
        }
        if let Some(name) = &m.change.release
            && holds.remove(name).is_none()
        {
            report.problem(
                Kind::HoldConflict,
                manifest_path(seq),
                format!("releases hold `{name}`, which is not in force"),
            );
        }
    }
    let counts = &mut report.counts;
    counts.files = state.live.len() as u64;
    counts.rows = state.live.values().map(|(e, _)| e.rows).sum();
    counts.bytes = state.live.values().map(|(e, _)| e.bytes).sum();
    counts.holds = holds.len() as u64;
    state
}

/// What reading one stored file gave.
enum Stored {
    Missing,
    Read {
        bytes: u64,
        sha256: String,
        /// Rows from the Parquet footer, when the bytes match and it is a Parquet file.
        rows: Option<Result<u64, String>>,
    },
}

/// Checks every file in the archive against its manifest entry.
async fn check_files(
    location: &Location,
    replay: &Replay,
    report: &mut VerifyReport,
) -> Result<()> {
    // In path order, a few reads at a time: the store's latency overlaps, the report's
    // order stays stable.
    let results: Vec<(&str, &FileEntry, u64, Stored)> = futures::stream::iter(replay.live.iter())
        .map(|(path, (entry, added_by))| async move {
            let stored = read_stored(location, &entry.path, &entry.sha256, entry.bytes).await?;
            Ok::<_, Error>((path.as_str(), entry, *added_by, stored))
        })
        .buffered(CONCURRENT_READS)
        .try_collect()
        .await?;
    for (path, entry, added_by, stored) in results {
        match stored {
            Stored::Missing => report.problem(
                Kind::Missing,
                path,
                format!("manifest {added_by} lists it, but it is not in the store"),
            ),
            Stored::Read { bytes, sha256, .. } if sha256 != entry.sha256 => {
                let size = if bytes == entry.bytes {
                    String::new()
                } else {
                    format!("; its size is {bytes} bytes, recorded {}", entry.bytes)
                };
                report.problem(
                    Kind::Altered,
                    path,
                    format!(
                        "its SHA-256 is {sha256}, manifest {added_by} records {}{size}",
                        entry.sha256
                    ),
                );
            }
            Stored::Read { bytes, .. } if bytes != entry.bytes => report.problem(
                Kind::Altered,
                path,
                format!(
                    "its SHA-256 matches but its size is {bytes} bytes and manifest \
                     {added_by} records {}: the manifest was altered",
                    entry.bytes
                ),
            ),
            Stored::Read {
                rows: Some(Ok(rows)),
                ..
            } if rows != entry.rows => report.problem(
                Kind::RowsMismatch,
                path,
                format!(
                    "its Parquet footer gives {rows} rows, manifest {added_by} records {}: \
                     the file is the one written, so the manifest was altered",
                    entry.rows
                ),
            ),
            Stored::Read {
                rows: Some(Err(e)), ..
            } => report.problem(
                Kind::UnreadableFile,
                path,
                format!("its bytes are the recorded ones but its Parquet footer is not: {e}"),
            ),
            Stored::Read { .. } => {}
        }
    }
    // The window state each partition continues from: only the latest per partition is
    // kept (earlier ones are deleted once replaced).
    for (file, recorded_by) in replay.states.values() {
        match read_stored(location, &file.path, &file.sha256, file.bytes).await? {
            Stored::Missing => report.problem(
                Kind::Missing,
                file.path.as_str(),
                format!(
                    "manifest {recorded_by} records it as the window state of {}, but it is not in the store",
                    file.key
                ),
            ),
            Stored::Read { bytes, sha256, .. } if sha256 != file.sha256 || bytes != file.bytes => {
                report.problem(
                    Kind::Altered,
                    file.path.as_str(),
                    format!(
                        "its SHA-256 is {sha256} ({bytes} bytes), manifest {recorded_by} records {} ({} bytes)",
                        file.sha256, file.bytes
                    ),
                )
            }
            Stored::Read { .. } => {}
        }
    }
    Ok(())
}

/// Streams the stored file at `path` through SHA-256; reads the Parquet footer when the
/// bytes are the recorded ones (`sha256`, `size`).
async fn read_stored(location: &Location, path: &str, recorded: &str, size: u64) -> Result<Stored> {
    let object = location.child(path);
    let store_err = |source| Error::Store {
        path: path.to_string(),
        source,
    };
    let got = match location.store.get(&object).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(Stored::Missing),
        Err(source) => return Err(store_err(source)),
    };
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut chunks = got.into_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(store_err)?;
        bytes += chunk.len() as u64;
        hasher.update(&chunk);
    }
    let sha256 = hex::encode(hasher.finalize());
    let rows = if sha256 == recorded && bytes == size && path.ends_with(DATA_FILE_EXTENSION) {
        Some(
            footer(location, &object, bytes)
                .await
                .map(|m| u64::try_from(m.file_metadata().num_rows()).unwrap_or(0))
                .map_err(|e| e.to_string()),
        )
    } else {
        None
    };
    Ok(Stored::Read {
        bytes,
        sha256,
        rows,
    })
}

/// The footer (metadata) of the Parquet file stored at `object`, `size` bytes long,
/// read with a ranged request or two.
pub async fn footer(
    location: &Location,
    object: &object_store::path::Path,
    size: u64,
) -> parquet::errors::Result<parquet::file::metadata::ParquetMetaData> {
    ParquetMetaDataReader::new()
        .with_prefetch_hint(Some(FOOTER_PREFETCH))
        .load_and_finish(RangeFetch { location, object }, size)
        .await
}

/// Byte ranges of a stored object, for reading a Parquet footer.
struct RangeFetch<'a> {
    location: &'a Location,
    object: &'a object_store::path::Path,
}

impl MetadataFetch for RangeFetch<'_> {
    fn fetch(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<bytes::Bytes>> {
        Box::pin(async move {
            self.location
                .store
                .get_range(self.object, range)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        })
    }
}

/// Reports objects in the tables' folders and `reports/` that are not in the archive.
async fn check_extras(
    location: &Location,
    replay: &Replay,
    now_micros: i64,
    grace: Duration,
    report: &mut VerifyReport,
) -> Result<()> {
    let grace_micros = i64::try_from(grace.as_micros()).unwrap_or(i64::MAX);
    let root = location.prefix.as_ref().trim_end_matches('/');
    for folder in committed_folders() {
        let listed: Vec<object_store::ObjectMeta> = location
            .store
            .list(Some(&location.child(folder)))
            .try_collect()
            .await
            .map_err(|source| Error::Store {
                path: format!("{folder}/"),
                source,
            })?;
        let mut extras: Vec<(String, object_store::ObjectMeta)> = listed
            .into_iter()
            .filter_map(|meta| {
                let full = meta.location.as_ref();
                let relative = if root.is_empty() {
                    full
                } else {
                    full.strip_prefix(root)
                        .map_or(full, |r| r.trim_start_matches('/'))
                }
                .to_string();
                (!replay.live.contains_key(&relative)).then_some((relative, meta))
            })
            .collect();
        extras.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, meta) in extras {
            let modified = meta.last_modified.timestamp_micros();
            let age = now_micros.saturating_sub(modified);
            if let Some((by, reason)) = replay.removed.get(&path) {
                report.note(
                    Kind::AwaitingCleanup,
                    path,
                    format!(
                        "manifest {by} removed it ({reason}); it is no longer part of the \
                         archive and awaits deletion"
                    ),
                );
            } else if age < grace_micros {
                report.note(
                    Kind::RecentExtra,
                    path,
                    format!(
                        "no manifest lists it; it was written {} ago, within \
                         archive.orphan-grace ({}): a running writer may still commit it",
                        human_age(age),
                        humanize(grace)
                    ),
                );
            } else {
                report.problem(
                    Kind::Extra,
                    path,
                    format!(
                        "no manifest lists it ({} bytes, last modified {}): it is not part \
                         of the archive (left by a crash, or put there by hand)",
                        meta.size,
                        ledger::rfc3339(modified)
                    ),
                );
            }
        }
    }
    Ok(())
}

fn human_age(micros: i64) -> String {
    humanize(Duration::from_secs(
        u64::try_from(micros / 1_000_000).unwrap_or(0),
    ))
}

fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 if d.is_zero() => "0s".into(),
        0 => "under 1s".into(),
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

impl fmt::Display for VerifyReport {
    /// The report for people: history, every problem and note with its path, the head,
    /// and the verdict on the last line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        writeln!(f, "rampart verify: archive {}", self.url)?;
        writeln!(
            f,
            "  manifests   {} (append {}, compact {}, retention {}, hold {}, release {})",
            c.manifests, c.append, c.compact, c.retention, c.hold, c.release
        )?;
        writeln!(
            f,
            "  files       {} in the archive, {} rows, {} bytes; {} removed over the history",
            c.files, c.rows, c.bytes, c.files_removed
        )?;
        writeln!(f, "  holds       {} in force", c.holds)?;
        write_findings(f, "problems", &self.problems)?;
        write_findings(f, "notes", &self.notes)?;
        match &self.head {
            Some(h) => writeln!(
                f,
                "head: manifest {} ({}) sha256 {}",
                h.sequence, h.path, h.sha256
            )?,
            None => writeln!(f, "head: none (no manifests)")?,
        }
        write_verdict(f, "archive", self.problems.len())
    }
}

/// Lists findings, each as `kind  path` with the message indented below.
pub(crate) fn write_findings(
    f: &mut fmt::Formatter<'_>,
    title: &str,
    findings: &[Finding],
) -> fmt::Result {
    if findings.is_empty() {
        return Ok(());
    }
    writeln!(f, "{title} ({}):", findings.len())?;
    for x in findings {
        writeln!(f, "  {:<21} {}", x.kind.as_str(), x.path)?;
        writeln!(f, "  {:<21} {}", "", x.message)?;
    }
    Ok(())
}

/// `<what> intact` or `<what> NOT intact: N problems`.
pub(crate) fn write_verdict(
    f: &mut fmt::Formatter<'_>,
    what: &str,
    problems: usize,
) -> fmt::Result {
    match problems {
        0 => writeln!(f, "{what} intact"),
        1 => writeln!(f, "{what} NOT intact: 1 problem"),
        n => writeln!(f, "{what} NOT intact: {n} problems"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, RecordBatch};
    use object_store::PutPayload;
    use rampart_core::ManualClock;
    use rampart_core::ledger::{Change, Ledger, Removal};

    const NOW: i64 = 1_800_000_000_000_000;

    fn memory() -> Location {
        Location {
            url: url::Url::parse("memory:///a/").unwrap(),
            store: Arc::new(object_store::memory::InMemory::new()),
            prefix: object_store::path::Path::from("a"),
        }
    }

    /// A real Parquet file of `rows` rows.
    fn parquet(rows: i64) -> Vec<u8> {
        let col: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows));
        let batch = RecordBatch::try_from_iter([("n", col)]).unwrap();
        let mut out = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        out
    }

    /// Stores a data file and returns its manifest entry.
    async fn put_file(loc: &Location, path: &str, rows: i64) -> FileEntry {
        let data = parquet(rows);
        let entry = FileEntry {
            path: path.into(),
            table: "events".into(),
            date: "2026-11-01".into(),
            hour: 0,
            rows: rows as u64,
            bytes: data.len() as u64,
            sha256: sha256_hex(&data),
            retention: "400d".into(),
            retain_until: ledger::rfc3339(NOW * 2),
        };
        loc.store
            .put(&loc.child(path), PutPayload::from(data))
            .await
            .unwrap();
        entry
    }

    /// An archive of `n` append manifests, one file each: returns the files' paths.
    async fn archive(loc: &Location, n: usize) -> Vec<String> {
        let clock = ManualClock::new(NOW);
        let mut ledger = Ledger::load(loc).await.unwrap();
        let mut paths = Vec::new();
        for i in 0..n {
            let path = format!("events/date=2026-11-01/hour=00/part-{i}.parquet");
            let entry = put_file(loc, &path, 10 + i as i64).await;
            let change = Change {
                add: vec![entry],
                ..Change::new(Action::Append)
            };
            ledger.commit(change, &clock).await.unwrap();
            paths.push(path);
        }
        paths
    }

    async fn verify(loc: &Location) -> VerifyReport {
        verify_archive(loc, NOW, Duration::ZERO).await.unwrap()
    }

    async fn stored(loc: &Location, path: &str) -> Vec<u8> {
        loc.store
            .get(&loc.child(path))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }

    async fn put(loc: &Location, path: &str, bytes: Vec<u8>) {
        loc.store
            .put(&loc.child(path), PutPayload::from(bytes))
            .await
            .unwrap();
    }

    fn kinds_at(r: &VerifyReport, path: &str) -> Vec<Kind> {
        r.problems
            .iter()
            .filter(|p| p.path == path)
            .map(|p| p.kind)
            .collect()
    }

    #[tokio::test]
    async fn a_checkpoint_that_disagrees_with_the_chain_is_reported() {
        let loc = memory();
        let n = rampart_core::ledger::CHECKPOINT_EVERY as usize;
        let files = archive(&loc, n).await;
        let path = rampart_core::ledger::checkpoint_path(n as u64);
        assert!(verify(&loc).await.is_intact(), "with an honest checkpoint");
        // Hide a file from everything that loads from the checkpoint.
        let text = String::from_utf8(stored(&loc, &path).await).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["live"].as_array_mut().unwrap().remove(0);
        put(&loc, &path, serde_json::to_vec(&v).unwrap()).await;
        let r = verify(&loc).await;
        assert_eq!(kinds_at(&r, &path), vec![Kind::BadCheckpoint], "{r}");
        assert!(
            kinds_at(&r, &files[0]).is_empty(),
            "the file itself is fine"
        );
    }

    #[tokio::test]
    async fn an_untouched_archive_is_intact_and_its_head_is_the_last_manifest() {
        let loc = memory();
        archive(&loc, 3).await;
        let r = verify(&loc).await;
        assert!(r.is_intact(), "{r}");
        let head = r.head.clone().unwrap();
        assert_eq!(head.sequence, 3);
        assert_eq!(
            head.sha256,
            sha256_hex(&stored(&loc, &manifest_path(3)).await)
        );
        assert_eq!((r.counts.manifests, r.counts.append), (3, 3));
        assert_eq!((r.counts.files, r.counts.rows), (3, 10 + 11 + 12));
    }

    #[tokio::test]
    async fn an_edited_manifest_is_reported_at_its_own_path_with_both_hashes() {
        let loc = memory();
        archive(&loc, 3).await;
        let path = manifest_path(2);
        let original = stored(&loc, &path).await;
        let edited = String::from_utf8(original.clone())
            .unwrap()
            .replace("\"rows\": 11", "\"rows\": 12");
        assert_ne!(edited.as_bytes(), original.as_slice());
        put(&loc, &path, edited.clone().into_bytes()).await;
        let r = verify(&loc).await;
        let altered = r
            .problems
            .iter()
            .find(|p| p.kind == Kind::AlteredManifest)
            .unwrap_or_else(|| panic!("{r}"));
        assert_eq!(altered.path, path);
        assert!(
            altered.message.contains(&sha256_hex(edited.as_bytes()))
                && altered.message.contains(&sha256_hex(&original)),
            "{}",
            altered.message
        );
        // The edit also contradicts the file's footer.
        assert_eq!(
            kinds_at(&r, "events/date=2026-11-01/hour=00/part-1.parquet"),
            [Kind::RowsMismatch]
        );
    }

    #[tokio::test]
    async fn a_removed_manifest_is_a_gap_and_its_files_become_extra() {
        let loc = memory();
        let files = archive(&loc, 4).await;
        loc.store
            .delete(&loc.child(&manifest_path(2)))
            .await
            .unwrap();
        let r = verify(&loc).await;
        assert_eq!(kinds_at(&r, &manifest_path(2)), [Kind::MissingManifest]);
        assert_eq!(kinds_at(&r, &files[1]), [Kind::Extra]);
        assert_eq!(r.problems.len(), 2, "{r}");
    }

    #[tokio::test]
    async fn renamed_manifests_and_stray_objects_are_reported() {
        let loc = memory();
        archive(&loc, 3).await;
        // Swap 2 and 3.
        let two = stored(&loc, &manifest_path(2)).await;
        let three = stored(&loc, &manifest_path(3)).await;
        put(&loc, &manifest_path(2), three).await;
        put(&loc, &manifest_path(3), two).await;
        put(&loc, &format!("{MANIFEST_DIR}/notes.txt"), b"hi".to_vec()).await;
        let r = verify(&loc).await;
        assert!(
            kinds_at(&r, &manifest_path(2)).contains(&Kind::MisnumberedManifest),
            "{r}"
        );
        assert!(
            kinds_at(&r, &manifest_path(3)).contains(&Kind::MisnumberedManifest),
            "{r}"
        );
        assert_eq!(
            kinds_at(&r, &format!("{MANIFEST_DIR}/notes.txt")),
            [Kind::NotAManifest]
        );
    }

    #[tokio::test]
    async fn unreadable_and_first_manifests_are_checked() {
        let loc = memory();
        archive(&loc, 2).await;
        put(&loc, &manifest_path(2), b"{ not json".to_vec()).await;
        let r = verify(&loc).await;
        assert_eq!(kinds_at(&r, &manifest_path(2)), [Kind::UnreadableManifest]);

        let loc = memory();
        archive(&loc, 1).await;
        let first = String::from_utf8(stored(&loc, &manifest_path(1)).await).unwrap();
        let linked = first.replace(
            "\"previous_sha256\": null",
            &format!("\"previous_sha256\": \"{}\"", "ab".repeat(32)),
        );
        assert_ne!(linked, first);
        put(&loc, &manifest_path(1), linked.into_bytes()).await;
        let r = verify(&loc).await;
        assert_eq!(kinds_at(&r, &manifest_path(1)), [Kind::BrokenLink]);
    }

    #[tokio::test]
    async fn data_files_missing_altered_and_extra_are_named() {
        let loc = memory();
        let files = archive(&loc, 3).await;
        loc.store.delete(&loc.child(&files[0])).await.unwrap();
        let mut data = stored(&loc, &files[1]).await;
        let mid = data.len() / 2;
        data[mid] ^= 0x01;
        let flipped = sha256_hex(&data);
        put(&loc, &files[1], data).await;
        let extra = "events/date=2026-11-01/hour=00/part-x.parquet";
        put(&loc, extra, parquet(3)).await;
        let r = verify(&loc).await;
        assert_eq!(kinds_at(&r, &files[0]), [Kind::Missing]);
        assert_eq!(kinds_at(&r, &files[1]), [Kind::Altered]);
        assert!(r.problems.iter().any(|p| p.message.contains(&flipped)));
        assert_eq!(kinds_at(&r, extra), [Kind::Extra]);
        assert_eq!(r.problems.len(), 3, "{r}");

        // Within the grace period (it was stored just now) the extra file is a note.
        let now = rampart_core::Clock::now_micros(&rampart_core::SystemClock);
        let r = verify_archive(&loc, now, Duration::from_secs(3600))
            .await
            .unwrap();
        assert!(kinds_at(&r, extra).is_empty());
        assert!(
            r.notes
                .iter()
                .any(|n| n.kind == Kind::RecentExtra && n.path == extra)
        );
    }

    #[tokio::test]
    async fn the_latest_window_state_of_each_partition_is_checked() {
        let loc = memory();
        archive(&loc, 1).await;
        let clock = ManualClock::new(NOW);
        let mut ledger = Ledger::load(&loc).await.unwrap();
        let mut paths = Vec::new();
        for (key, body) in [("kafka:t/0", "{\"a\":1}"), ("kafka:t/1", "{\"b\":2}")] {
            let path = ledger::state_path(key, 7);
            put(&loc, &path, body.as_bytes().to_vec()).await;
            let change = Change {
                state: vec![ledger::StateFile {
                    key: key.into(),
                    position: 7,
                    path: path.clone(),
                    bytes: body.len() as u64,
                    sha256: sha256_hex(body.as_bytes()),
                }],
                ..Change::new(Action::Append)
            };
            ledger.commit(change, &clock).await.unwrap();
            paths.push(path);
        }
        assert!(verify(&loc).await.is_intact());
        // One altered, one gone: both named at their paths.
        put(&loc, &paths[0], b"{\"a\":2}".to_vec()).await;
        loc.store.delete(&loc.child(&paths[1])).await.unwrap();
        let r = verify(&loc).await;
        assert_eq!(kinds_at(&r, &paths[0]), [Kind::Altered]);
        assert_eq!(kinds_at(&r, &paths[1]), [Kind::Missing]);
        assert_eq!(r.problems.len(), 2, "{r}");
    }

    #[tokio::test]
    async fn removed_files_still_stored_await_cleanup_and_bad_removals_are_problems() {
        let loc = memory();
        let files = archive(&loc, 2).await;
        let clock = ManualClock::new(NOW);
        let mut ledger = Ledger::load(&loc).await.unwrap();
        let removal = |path: &str| Removal {
            path: path.into(),
            table: "events".into(),
            sha256: String::new(),
            reason: "retention expired".into(),
        };
        ledger
            .commit(
                Change {
                    remove: vec![removal(&files[0])],
                    ..Change::new(Action::Retention)
                },
                &clock,
            )
            .await
            .unwrap();
        let r = verify(&loc).await;
        assert!(r.is_intact(), "{r}");
        assert!(
            r.notes
                .iter()
                .any(|n| n.kind == Kind::AwaitingCleanup && n.path == files[0])
        );
        assert_eq!((r.counts.retention, r.counts.files_removed), (1, 1));

        // A manifest that removes the file again, written by hand (the ledger refuses).
        let three = stored(&loc, &manifest_path(3)).await;
        let mut again: ledger::Manifest = serde_json::from_slice(&three).unwrap();
        again.sequence = 4;
        again.previous_sha256 = Some(sha256_hex(&three));
        put(
            &loc,
            &manifest_path(4),
            serde_json::to_vec_pretty(&again).unwrap(),
        )
        .await;
        let r = verify(&loc).await;
        assert_eq!(kinds_at(&r, &files[0]), [Kind::InvalidRemoval], "{r}");
    }

    #[tokio::test]
    async fn a_recorded_head_is_found_in_the_chain_or_reported() {
        let loc = memory();
        archive(&loc, 3).await;
        let two = sha256_hex(&stored(&loc, &manifest_path(2)).await);
        let mut r = verify(&loc).await;
        let head = r.head.clone().unwrap().sha256;
        r.check_expected_head(&head);
        assert!(r.is_intact());
        r.check_expected_head(&two.to_uppercase());
        assert!(r.is_intact(), "an older head the chain grew from: {r}");
        r.check_expected_head(&"0".repeat(64));
        assert_eq!(kinds_at(&r, &manifest_path(3)), [Kind::HeadMismatch]);

        // An edit of the head itself is only visible against a recorded head.
        let text = String::from_utf8(stored(&loc, &manifest_path(3)).await).unwrap();
        put(
            &loc,
            &manifest_path(3),
            text.replace("part-2", "part-9").into_bytes(),
        )
        .await;
        let mut r = verify(&loc).await;
        r.check_expected_head(&head);
        assert!(
            kinds_at(&r, &manifest_path(3)).contains(&Kind::HeadMismatch),
            "{r}"
        );
    }

    /// The same checks against the real S3-compatible server that scripts/test.sh starts.
    #[tokio::test]
    async fn on_s3_an_altered_file_is_found() {
        let Ok(endpoint) = std::env::var("RAMPART_TEST_S3_ENDPOINT") else {
            assert!(
                std::env::var_os("RAMPART_REQUIRE_SERVICES").is_none(),
                "RAMPART_REQUIRE_SERVICES is set but no S3 server is: run scripts/test.sh"
            );
            return;
        };
        let bucket = std::env::var("RAMPART_TEST_S3_BUCKET").unwrap();
        let prefix = format!(
            "verify-{}-{}",
            std::process::id(),
            rampart_core::Clock::now_micros(&rampart_core::SystemClock)
        );
        let loc = rampart_core::store::open(
            &format!("s3://{bucket}/{prefix}"),
            [
                ("aws_endpoint", endpoint),
                ("aws_allow_http", "true".into()),
                ("aws_virtual_hosted_style_request", "false".into()),
                ("aws_region", "us-east-1".into()),
            ],
        )
        .unwrap();
        let files = archive(&loc, 2).await;
        let r = verify(&loc).await;
        assert!(r.is_intact(), "{r}");
        let mut data = stored(&loc, &files[1]).await;
        let mid = data.len() / 2;
        data[mid] ^= 0x80;
        put(&loc, &files[1], data).await;
        let r = verify(&loc).await;
        assert_eq!(kinds_at(&r, &files[1]), [Kind::Altered], "{r}");
        assert_eq!(r.problems.len(), 1, "{r}");
    }
}
