//! The archive's commit log: a hash chain of manifests.
//!
//! A data file is part of the archive only once a manifest lists it. Manifests live at
//! `_rampart/manifests/<sequence>.json`, numbered from 1 without gaps (twenty digits, so
//! names sort by number), and each is created with `PutMode::Create`: two writers that
//! race for the same number cannot both win, and the loser re-reads the new head and
//! retries on the next number. Nothing is ever overwritten.
//!
//! A manifest records what one commit changed: files added (path, table, partition,
//! rows, bytes, SHA-256, retention), files removed (by compaction or retention, with the
//! reason), holds placed or released, and the source positions the added data covers
//! (Kafka topic/partition/offset ranges or file/line ranges). It also records the SHA-256
//! of the previous manifest's bytes, so changing, removing or reordering any manifest
//! breaks the chain at the next one. The JSON is pretty-printed: an auditor reads it.
//!
//! [`Ledger::load`] replays the chain into the archive's current [`State`]: the live
//! files, the active holds and the committed source positions. It checks that the
//! sequence has no gaps; the full integrity check (hashes, file contents) is
//! `rampart verify`, built on [`read_manifests`].
//!
//! **Checkpoints.** Replaying every manifest costs one read per commit ever made, and
//! every query, export and hold is a commit. So every [`CHECKPOINT_EVERY`]th commit also
//! writes `_rampart/checkpoints/<sequence>.json`: the whole state after that manifest,
//! with that manifest's SHA-256. Loading starts from the newest checkpoint and reads only
//! the manifests after it. A checkpoint is derived data, never evidence: the chain is.
//! `rampart verify` replays the chain and reports any checkpoint that disagrees with it
//! ([`check_checkpoints`]); an unreadable checkpoint is skipped for a full replay.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Clock;
use crate::store::Location;

/// Folder of the manifests, relative to the archive root.
pub const MANIFEST_DIR: &str = "_rampart/manifests";

/// The `format` of the manifests this version writes and reads.
pub const FORMAT: &str = "rampart-manifest/1";

/// Folder of the checkpoints, relative to the archive root.
pub const CHECKPOINT_DIR: &str = "_rampart/checkpoints";

/// Folder of the window-state files (see [`StateFile`]).
pub const STATE_DIR: &str = "_rampart/state";

/// A checkpoint is written after every manifest whose number is a multiple of this.
pub const CHECKPOINT_EVERY: u64 = 100;

/// The newest checkpoints kept; older ones are deleted.
const CHECKPOINTS_KEPT: usize = 3;

/// The `format` of checkpoints.
const CHECKPOINT_FORMAT: &str = "rampart-checkpoint/1";

/// How many times a commit retries after losing the race for a manifest number.
const MAX_COMMIT_ATTEMPTS: usize = 1000;

/// The path of manifest `sequence`, relative to the archive root.
pub fn manifest_path(sequence: u64) -> String {
    format!("{MANIFEST_DIR}/{sequence:020}.json")
}

/// The path of the checkpoint after manifest `sequence`, relative to the archive root.
pub fn checkpoint_path(sequence: u64) -> String {
    format!("{CHECKPOINT_DIR}/{sequence:020}.json")
}

/// The sequence number of a manifest path (relative or absolute), if it is one.
pub fn parse_manifest_path(path: &str) -> Option<u64> {
    let name = path.rsplit('/').next()?;
    let digits = name.strip_suffix(".json")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Microseconds since the epoch as RFC 3339 UTC with microseconds.
pub fn rfc3339(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// RFC 3339 text as microseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// New data from a source (or an access-log record).
    Append,
    /// Small files replaced by fewer large ones with the same rows.
    Compact,
    /// Expired files removed under their retention period.
    Retention,
    /// A legal hold placed.
    Hold,
    /// A legal hold released.
    Release,
}

/// A data file made part of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the archive root.
    pub path: String,
    /// Table the file belongs to.
    pub table: String,
    /// Partition: UTC date `YYYY-MM-DD`.
    pub date: String,
    /// Partition: UTC hour, 0 to 23.
    pub hour: u8,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// Retention period of the table when the file was written, as configured (`400d`).
    pub retention: String,
    /// The file may be deleted after this instant (RFC 3339 UTC), unless a hold covers it.
    pub retain_until: String,
}

impl FileEntry {
    /// The entry of a file of `table` in the partition of `hour_bucket` (hours since
    /// the epoch), kept for `retention` after the end of that hour.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        table: &str,
        path: String,
        hour_bucket: i64,
        rows: u64,
        bytes: u64,
        sha256: String,
        retention: std::time::Duration,
    ) -> Self {
        let start = hour_bucket.saturating_mul(crate::layout::MICROS_PER_HOUR);
        let t = DateTime::<Utc>::from_timestamp_micros(start).unwrap_or_default();
        let retention_micros = i64::try_from(retention.as_micros()).unwrap_or(i64::MAX);
        let until = start
            .saturating_add(crate::layout::MICROS_PER_HOUR)
            .saturating_add(retention_micros);
        Self {
            path,
            table: table.to_string(),
            date: t.format("%Y-%m-%d").to_string(),
            hour: u8::try_from(chrono::Timelike::hour(&t)).unwrap_or(0),
            rows,
            bytes,
            sha256,
            retention: crate::config::format_period(retention),
            retain_until: rfc3339(until),
        }
    }

    /// `retain_until` in microseconds since the epoch (`i64::MAX` if unreadable: kept).
    pub fn retain_until_micros(&self) -> i64 {
        parse_rfc3339(&self.retain_until).unwrap_or(i64::MAX)
    }
}

/// A data file taken out of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    /// Path relative to the archive root.
    pub path: String,
    /// Table the file belonged to.
    pub table: String,
    /// SHA-256 the file had when it was added.
    pub sha256: String,
    /// Why: `retention expired at ...`, `compacted into ...`.
    pub reason: String,
}

/// Source positions covered by the data of a commit, both ends included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceRange {
    /// Lines of a file (`-` for standard input), from 1.
    File {
        source: String,
        first_line: u64,
        last_line: u64,
        /// SHA-256 of the file's line 1: tells a file replaced at the same path (rotated,
        /// rewritten) from the one whose lines were committed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_line_sha256: Option<String>,
    },
    /// Offsets of a Kafka partition.
    Kafka {
        topic: String,
        partition: i32,
        first_offset: i64,
        last_offset: i64,
    },
}

/// Window state of one source partition as of a source position: the open windows,
/// the last closed window's counts and the open violations, stored as one JSON file
/// under [`STATE_DIR`]. A commit that covers a partition's records carries its state
/// after those records, so a restart (or the partition's next owner) continues from
/// exactly the position the archive holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    /// What it is the state of: see [`kafka_state_key`] and [`file_state_key`].
    pub key: String,
    /// The last source position folded into it: a Kafka offset or a file line.
    pub position: i64,
    /// Path relative to the archive root.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of its bytes.
    pub sha256: String,
}

/// The state key of a Kafka partition.
pub fn kafka_state_key(topic: &str, partition: i32) -> String {
    format!("kafka:{topic}/{partition}")
}

/// The state key of a file source (it has one partition).
pub fn file_state_key(source: &str) -> String {
    format!("file:{source}")
}

/// A new path for a state file of `key` as of `position`, unique to this writer.
pub fn state_path(key: &str, position: i64) -> String {
    let slug: String = sha256_hex(key.as_bytes()).chars().take(16).collect();
    let nonce: String = sha256_hex(
        format!(
            "{key}{position}{:?}{}",
            std::time::SystemTime::now(),
            std::process::id()
        )
        .as_bytes(),
    )
    .chars()
    .take(12)
    .collect();
    format!("{STATE_DIR}/{slug}/{position:020}-{nonce}.json")
}

/// A legal hold: every file holding a row that matches `predicate` is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The hold's unique name.
    pub name: String,
    /// A SQL predicate over a table's columns.
    pub predicate: String,
    /// Tables whose columns the predicate can be evaluated on.
    pub tables: Vec<String>,
    /// Why the hold was placed (case number, request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The tool and instance that wrote a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writer {
    /// `rampart <version>`.
    pub tool: String,
    /// A random id per process: tells concurrent instances apart.
    pub instance: String,
    /// The user or service account, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl Writer {
    /// This process, as a writer.
    pub fn this_process() -> Self {
        static INSTANCE: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| uuid::Uuid::now_v7().simple().to_string());
        Self {
            tool: format!("rampart {}", env!("CARGO_PKG_VERSION")),
            instance: INSTANCE.clone(),
            user: current_user(),
        }
    }
}

/// The user running this process, from `$USER` (or `$USERNAME`).
pub fn current_user() -> Option<String> {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .ok()
        .filter(|u| !u.is_empty())
}

/// What a committer asks for; [`Ledger::commit`] numbers, links and stamps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// What the commit does.
    pub action: Action,
    /// Files made part of the archive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<FileEntry>,
    /// Files taken out of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<Removal>,
    /// Source positions the added data covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceRange>,
    /// Window state of the covered partitions after the covered positions; each
    /// replaces the partition's earlier state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state: Vec<StateFile>,
    /// A hold placed by this commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// The name of a hold released by this commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Free text for people: why, by whose request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Change {
    /// An empty change doing `action`.
    pub fn new(action: Action) -> Self {
        Self {
            action,
            add: Vec::new(),
            remove: Vec::new(),
            sources: Vec::new(),
            state: Vec::new(),
            hold: None,
            release: None,
            note: None,
        }
    }
}

/// One manifest as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Its number, equal to the number in its file name.
    pub sequence: u64,
    /// SHA-256 of the previous manifest's bytes; `None` for the first.
    pub previous_sha256: Option<String>,
    /// When it was committed (RFC 3339 UTC).
    pub committed_at: String,
    /// Who committed it.
    pub writer: Writer,
    /// What it changed.
    #[serde(flatten)]
    pub change: Change,
}

/// A manifest read back, with the SHA-256 of its bytes.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The manifest.
    pub manifest: Manifest,
    /// SHA-256 of its stored bytes.
    pub sha256: String,
}

/// A live file with the manifest that added it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFile {
    /// Its entry as added.
    pub entry: FileEntry,
    /// The manifest that added it.
    pub added_by: u64,
}

/// A hold in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveHold {
    /// The hold as placed.
    pub hold: Hold,
    /// The manifest that placed it.
    pub placed_by: u64,
    /// When (RFC 3339 UTC).
    pub placed_at: String,
    /// Who placed it, if known.
    pub placed_by_user: Option<String>,
}

/// The archive as the chain says it is now.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// Files in the archive, by path.
    pub live: BTreeMap<String, LiveFile>,
    /// Holds in force, by name.
    pub holds: BTreeMap<String, ActiveHold>,
    /// The last manifest's number and SHA-256.
    pub head: Option<(u64, String)>,
    /// Per file source (`source` of [`SourceRange::File`]), the last committed line.
    pub file_lines: BTreeMap<String, u64>,
    /// Per file source, the SHA-256 of its line 1 as last committed.
    pub file_fingerprints: BTreeMap<String, String>,
    /// Per Kafka (topic, partition), the last committed offset.
    pub kafka_offsets: BTreeMap<(String, i32), i64>,
    /// Per state key, the partition's latest window state.
    pub window_state: BTreeMap<String, StateFile>,
}

impl State {
    /// The last committed line of the file source `source` whose line 1 hashes to
    /// `first_line_sha256`; `None` when nothing of that file was committed (a file
    /// replaced at the same path starts over).
    pub fn resume_line(&self, source: &str, first_line_sha256: Option<&str>) -> Option<u64> {
        let line = *self.file_lines.get(source)?;
        match (self.file_fingerprints.get(source), first_line_sha256) {
            (Some(recorded), Some(now)) if recorded != now => None,
            _ => Some(line),
        }
    }

    /// Checks that `change` can follow this state.
    fn check(&self, change: &Change) -> Result<(), LedgerError> {
        let conflict = |message: String| Err(LedgerError::Conflict { message });
        for r in &change.remove {
            if !self.live.contains_key(&r.path) {
                return conflict(format!(
                    "{} is no longer in the archive (another commit removed it)",
                    r.path
                ));
            }
        }
        for a in &change.add {
            if self.live.contains_key(&a.path) {
                return conflict(format!("{} is already in the archive", a.path));
            }
        }
        if let Some(h) = &change.hold
            && self.holds.contains_key(&h.name)
        {
            return conflict(format!(
                "a hold named `{}` is already in force; release it or pick another name",
                h.name
            ));
        }
        if let Some(name) = &change.release
            && !self.holds.contains_key(name)
        {
            return conflict(format!("no hold named `{name}` is in force"));
        }
        Ok(())
    }

    /// Applies a committed manifest.
    fn apply(&mut self, c: &Committed) {
        let m = &c.manifest;
        for r in &m.change.remove {
            self.live.remove(&r.path);
        }
        for a in &m.change.add {
            self.live.insert(
                a.path.clone(),
                LiveFile {
                    entry: a.clone(),
                    added_by: m.sequence,
                },
            );
        }
        if let Some(h) = &m.change.hold {
            self.holds.insert(
                h.name.clone(),
                ActiveHold {
                    hold: h.clone(),
                    placed_by: m.sequence,
                    placed_at: m.committed_at.clone(),
                    placed_by_user: m.writer.user.clone(),
                },
            );
        }
        if let Some(name) = &m.change.release {
            self.holds.remove(name);
        }
        for s in &m.change.sources {
            match s {
                SourceRange::File {
                    source,
                    last_line,
                    first_line_sha256,
                    ..
                } => {
                    if let Some(f) = first_line_sha256
                        && self.file_fingerprints.get(source) != Some(f)
                    {
                        // Another file at the same path: its lines start over.
                        self.file_fingerprints.insert(source.clone(), f.clone());
                        self.file_lines.insert(source.clone(), *last_line);
                    } else {
                        let e = self.file_lines.entry(source.clone()).or_default();
                        *e = (*e).max(*last_line);
                    }
                }
                SourceRange::Kafka {
                    topic,
                    partition,
                    last_offset,
                    ..
                } => {
                    let e = self
                        .kafka_offsets
                        .entry((topic.clone(), *partition))
                        .or_insert(*last_offset);
                    *e = (*e).max(*last_offset);
                }
            }
        }
        for f in &m.change.state {
            self.window_state.insert(f.key.clone(), f.clone());
        }
        self.head = Some((m.sequence, c.sha256.clone()));
    }

    /// Live files of `table`.
    pub fn files_of<'a>(&'a self, table: &'a str) -> impl Iterator<Item = &'a LiveFile> + 'a {
        self.live.values().filter(move |f| f.entry.table == table)
    }
}

/// A live file as a checkpoint stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CheckpointFile {
    added_by: u64,
    #[serde(flatten)]
    entry: FileEntry,
}

/// A hold in force as a checkpoint stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CheckpointHold {
    placed_by: u64,
    placed_at: String,
    placed_by_user: Option<String>,
    #[serde(flatten)]
    hold: Hold,
}

/// A committed Kafka offset as a checkpoint stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CheckpointOffset {
    topic: String,
    partition: i32,
    offset: i64,
}

/// The state after one manifest, stored so that loading need not replay from the start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Checkpoint {
    format: String,
    sequence: u64,
    manifest_sha256: String,
    live: Vec<CheckpointFile>,
    holds: Vec<CheckpointHold>,
    file_lines: BTreeMap<String, u64>,
    #[serde(default)]
    file_fingerprints: BTreeMap<String, String>,
    kafka_offsets: Vec<CheckpointOffset>,
    #[serde(default)]
    window_state: Vec<StateFile>,
}

impl Checkpoint {
    fn of(state: &State) -> Option<Self> {
        let (sequence, sha) = state.head.clone()?;
        Some(Self {
            format: CHECKPOINT_FORMAT.to_string(),
            sequence,
            manifest_sha256: sha,
            live: state
                .live
                .values()
                .map(|f| CheckpointFile {
                    added_by: f.added_by,
                    entry: f.entry.clone(),
                })
                .collect(),
            holds: state
                .holds
                .values()
                .map(|h| CheckpointHold {
                    placed_by: h.placed_by,
                    placed_at: h.placed_at.clone(),
                    placed_by_user: h.placed_by_user.clone(),
                    hold: h.hold.clone(),
                })
                .collect(),
            file_lines: state.file_lines.clone(),
            file_fingerprints: state.file_fingerprints.clone(),
            kafka_offsets: state
                .kafka_offsets
                .iter()
                .map(|((topic, partition), offset)| CheckpointOffset {
                    topic: topic.clone(),
                    partition: *partition,
                    offset: *offset,
                })
                .collect(),
            window_state: state.window_state.values().cloned().collect(),
        })
    }

    fn into_state(self) -> State {
        State {
            live: self
                .live
                .into_iter()
                .map(|f| {
                    (
                        f.entry.path.clone(),
                        LiveFile {
                            entry: f.entry,
                            added_by: f.added_by,
                        },
                    )
                })
                .collect(),
            holds: self
                .holds
                .into_iter()
                .map(|h| {
                    (
                        h.hold.name.clone(),
                        ActiveHold {
                            hold: h.hold,
                            placed_by: h.placed_by,
                            placed_at: h.placed_at,
                            placed_by_user: h.placed_by_user,
                        },
                    )
                })
                .collect(),
            head: Some((self.sequence, self.manifest_sha256)),
            file_lines: self.file_lines,
            file_fingerprints: self.file_fingerprints,
            kafka_offsets: self
                .kafka_offsets
                .into_iter()
                .map(|o| ((o.topic, o.partition), o.offset))
                .collect(),
            window_state: self
                .window_state
                .into_iter()
                .map(|f| (f.key.clone(), f))
                .collect(),
        }
    }
}

/// The checkpoints stored under `location`, by sequence: (sequence, relative path).
async fn list_checkpoints(location: &Location) -> Result<Vec<(u64, String)>, LedgerError> {
    let listed: Vec<object_store::ObjectMeta> = location
        .store
        .list(Some(&location.child(CHECKPOINT_DIR)))
        .try_collect()
        .await
        .map_err(|source| LedgerError::Store {
            path: CHECKPOINT_DIR.to_string(),
            source,
        })?;
    let mut out: Vec<(u64, String)> = listed
        .iter()
        .filter_map(|m| {
            let seq = parse_manifest_path(m.location.as_ref())?;
            Some((seq, checkpoint_path(seq)))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// SHA-256 of the stored manifest `sequence`, if it can be read.
async fn manifest_sha256(location: &Location, sequence: u64) -> Option<String> {
    let got = location
        .store
        .get(&location.child(&manifest_path(sequence)))
        .await
        .ok()?;
    Some(sha256_hex(&got.bytes().await.ok()?))
}

async fn read_checkpoint(location: &Location, path: &str) -> Result<Checkpoint, String> {
    let bytes = location
        .store
        .get(&location.child(path))
        .await
        .map_err(|e| e.to_string())?
        .bytes()
        .await
        .map_err(|e| e.to_string())?;
    let c: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if c.format != CHECKPOINT_FORMAT {
        return Err(format!("format is `{}`", c.format));
    }
    Ok(c)
}

/// Checks every stored checkpoint against the state replayed from `chain` (the
/// manifests in order, from number 1). Returns (checkpoint path, what is wrong).
pub async fn check_checkpoints(
    location: &Location,
    chain: &[Committed],
) -> Result<Vec<(String, String)>, LedgerError> {
    let mut findings = Vec::new();
    let checkpoints = list_checkpoints(location).await?;
    let mut state = State::default();
    let mut next = chain.iter().peekable();
    for (seq, path) in checkpoints {
        while let Some(c) = next.next_if(|c| c.manifest.sequence <= seq) {
            state.apply(c);
        }
        let stored = match read_checkpoint(location, &path).await {
            Ok(c) => c,
            Err(e) => {
                findings.push((path, format!("unreadable: {e}")));
                continue;
            }
        };
        if state.head.as_ref().map(|(s, _)| *s) != Some(seq) {
            findings.push((
                path,
                format!("the chain has no manifest {seq} to compare it with"),
            ));
            continue;
        }
        let replayed = Checkpoint::of(&state);
        if replayed.as_ref() != Some(&stored) {
            let what = match &replayed {
                Some(r) if r.manifest_sha256 != stored.manifest_sha256 => {
                    "it records another SHA-256 for its manifest"
                }
                Some(r) if r.live != stored.live => "its live files differ from the chain's",
                Some(r) if r.holds != stored.holds => "its holds differ from the chain's",
                _ => "its source positions differ from the chain's",
            };
            findings.push((
                path,
                format!("disagrees with the chain replayed to manifest {seq}: {what}"),
            ));
        }
    }
    Ok(findings)
}

/// An error reading or committing manifests.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The store failed.
    #[error("archive store error at {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: object_store::Error,
    },
    /// A manifest cannot be read as one.
    #[error("manifest {path} is not a valid {FORMAT} manifest: {message}; run `rampart verify`")]
    Corrupt { path: String, message: String },
    /// The sequence has a gap.
    #[error(
        "manifest {missing} is missing (the chain goes from {before} to {after}); run `rampart verify`"
    )]
    Gap {
        missing: String,
        before: u64,
        after: u64,
    },
    /// The change no longer applies to the archive.
    #[error("commit refused: {message}")]
    Conflict { message: String },
    /// Every attempt lost a race.
    #[error("commit gave up after {attempts} attempts: other writers kept taking the next number")]
    Contended { attempts: usize },
}

/// Every manifest object under `location`: (sequence, relative path, bytes), by sequence.
/// Objects in the manifest folder whose names are not manifest names are returned with
/// sequence `None` so that `verify` can report them.
pub async fn read_manifests(
    location: &Location,
    after: Option<u64>,
) -> Result<Vec<(Option<u64>, String, bytes::Bytes)>, LedgerError> {
    let dir = location.child(MANIFEST_DIR);
    let store_err = |source| LedgerError::Store {
        path: MANIFEST_DIR.to_string(),
        source,
    };
    let listed: Vec<object_store::ObjectMeta> = match after {
        Some(seq) => {
            let offset = location.child(&manifest_path(seq));
            location
                .store
                .list_with_offset(Some(&dir), &offset)
                .try_collect()
                .await
        }
        None => location.store.list(Some(&dir)).try_collect().await,
    }
    .map_err(store_err)?;
    let prefix = format!("{}/", location.prefix.as_ref().trim_end_matches('/'));
    let mut out = Vec::with_capacity(listed.len());
    for meta in listed {
        let full = meta.location.to_string();
        let relative = if location.prefix.as_ref().is_empty() {
            full.clone()
        } else {
            full.strip_prefix(&prefix).unwrap_or(&full).to_string()
        };
        let bytes = location
            .store
            .get(&meta.location)
            .await
            .map_err(|source| LedgerError::Store {
                path: relative.clone(),
                source,
            })?
            .bytes()
            .await
            .map_err(|source| LedgerError::Store {
                path: relative.clone(),
                source,
            })?;
        out.push((parse_manifest_path(&relative), relative, bytes));
    }
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(out)
}

/// Parses stored manifest bytes.
pub fn parse_manifest(path: &str, bytes: &[u8]) -> Result<Committed, LedgerError> {
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| LedgerError::Corrupt {
        path: path.to_string(),
        message: e.to_string(),
    })?;
    if manifest.format != FORMAT {
        return Err(LedgerError::Corrupt {
            path: path.to_string(),
            message: format!(
                "format is `{}`, this version reads `{FORMAT}`",
                manifest.format
            ),
        });
    }
    Ok(Committed {
        manifest,
        sha256: sha256_hex(bytes),
    })
}

/// The chain of an archive, replayed, and the way to extend it.
#[derive(Debug, Clone)]
pub struct Ledger {
    location: Location,
    state: State,
}

impl Ledger {
    /// Reads the archive's chain at `location` and replays it, from the newest readable
    /// checkpoint on.
    pub async fn load(location: &Location) -> Result<Self, LedgerError> {
        let mut ledger = Self {
            location: location.clone(),
            state: State::default(),
        };
        for (seq, path) in list_checkpoints(location).await?.into_iter().rev() {
            match read_checkpoint(location, &path).await {
                // Only over the manifest it was made from: a checkpoint left from another
                // chain, or one whose manifest was replaced, is not used.
                Ok(c)
                    if c.sequence == seq
                        && manifest_sha256(location, seq).await.as_deref()
                            == Some(c.manifest_sha256.as_str()) =>
                {
                    ledger.state = c.into_state();
                    break;
                }
                Ok(_) => tracing::warn!(path, "checkpoint does not match its manifest; skipped"),
                Err(e) => tracing::warn!(path, error = %e, "unreadable checkpoint; skipped"),
            }
        }
        ledger.refresh().await?;
        Ok(ledger)
    }

    /// Writes the checkpoint of the current state and deletes the oldest ones. A
    /// checkpoint only saves time, so a failure is logged, not returned.
    async fn checkpoint(&self) {
        let Some(c) = Checkpoint::of(&self.state) else {
            return;
        };
        let path = checkpoint_path(c.sequence);
        let written = match serde_json::to_vec(&c) {
            Ok(bytes) => self
                .location
                .store
                .put(&self.location.child(&path), PutPayload::from(bytes))
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = written {
            tracing::warn!(path, %error, "cannot write checkpoint; loading will replay more");
            return;
        }
        if let Ok(all) = list_checkpoints(&self.location).await {
            let old = all.len().saturating_sub(CHECKPOINTS_KEPT);
            for (_, p) in &all[..old] {
                let _ = self.location.store.delete(&self.location.child(p)).await;
            }
        }
    }

    /// Reads and applies the manifests committed since the last read.
    pub async fn refresh(&mut self) -> Result<(), LedgerError> {
        let head = self.state.head.as_ref().map(|(s, _)| *s);
        for (seq, path, bytes) in read_manifests(&self.location, head).await? {
            let Some(seq) = seq else { continue };
            let expected = head_after(&self.state);
            if seq != expected {
                return Err(LedgerError::Gap {
                    missing: manifest_path(expected),
                    before: expected.saturating_sub(1),
                    after: seq,
                });
            }
            let committed = parse_manifest(&path, &bytes)?;
            if committed.manifest.sequence != seq {
                return Err(LedgerError::Corrupt {
                    path,
                    message: format!("it says it is number {}", committed.manifest.sequence),
                });
            }
            self.state.apply(&committed);
        }
        Ok(())
    }

    /// The archive's current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The archive's location.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Commits `change` as the next manifest. On losing the race for a number, re-reads
    /// the chain, checks that the change still applies and tries the next number.
    pub async fn commit(
        &mut self,
        change: Change,
        clock: &dyn Clock,
    ) -> Result<Committed, LedgerError> {
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            self.state.check(&change)?;
            let sequence = head_after(&self.state);
            let manifest = Manifest {
                format: FORMAT.to_string(),
                sequence,
                previous_sha256: self.state.head.as_ref().map(|(_, h)| h.clone()),
                committed_at: rfc3339(clock.now_micros()),
                writer: Writer::this_process(),
                change: change.clone(),
            };
            let mut bytes =
                serde_json::to_vec_pretty(&manifest).map_err(|e| LedgerError::Corrupt {
                    path: manifest_path(sequence),
                    message: e.to_string(),
                })?;
            bytes.push(b'\n');
            let sha256 = sha256_hex(&bytes);
            let path = manifest_path(sequence);
            match self.location.create(&path, bytes).await {
                Ok(_) => {
                    let committed = Committed { manifest, sha256 };
                    self.state.apply(&committed);
                    if sequence.is_multiple_of(CHECKPOINT_EVERY) {
                        self.checkpoint().await;
                    }
                    return Ok(committed);
                }
                Err(object_store::Error::AlreadyExists { .. }) => {
                    // Either another writer took the number, or this very request landed
                    // and its response was lost (the store's retry then finds it there).
                    if let Some(ours) = self.our_own(sequence, &manifest).await? {
                        self.state.apply(&ours);
                        return Ok(ours);
                    }
                    tracing::debug!(sequence, "lost the race for a manifest number; retrying");
                    self.refresh().await?;
                }
                Err(source) => return Err(LedgerError::Store { path, source }),
            }
        }
        Err(LedgerError::Contended {
            attempts: MAX_COMMIT_ATTEMPTS,
        })
    }
}

impl Ledger {
    /// The manifest stored at `sequence` if it is `mine` (same writer instance, same
    /// change): a commit whose success was not reported.
    async fn our_own(
        &self,
        sequence: u64,
        mine: &Manifest,
    ) -> Result<Option<Committed>, LedgerError> {
        let path = manifest_path(sequence);
        let bytes = match self.location.store.get(&self.location.child(&path)).await {
            Ok(got) => got.bytes().await.map_err(|source| LedgerError::Store {
                path: path.clone(),
                source,
            })?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(LedgerError::Store { path, source }),
        };
        let Ok(stored) = parse_manifest(&path, &bytes) else {
            return Ok(None);
        };
        let same = stored.manifest.writer.instance == mine.writer.instance
            && stored.manifest.change == mine.change
            && stored.manifest.previous_sha256 == mine.previous_sha256;
        Ok(same.then_some(stored))
    }
}

fn head_after(state: &State) -> u64 {
    state.head.as_ref().map_or(1, |(s, _)| s + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;
    use std::sync::Arc;

    fn memory() -> Location {
        Location {
            url: url::Url::parse("memory:///a/").unwrap(),
            store: Arc::new(object_store::memory::InMemory::new()),
            prefix: object_store::path::Path::from("a"),
        }
    }

    fn file(path: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            table: "events".into(),
            date: "2026-11-01".into(),
            hour: 0,
            rows: 1,
            bytes: 10,
            sha256: sha256_hex(path.as_bytes()),
            retention: "400d".into(),
            retain_until: rfc3339(0),
        }
    }

    fn append(path: &str, first: u64, last: u64) -> Change {
        Change {
            add: vec![file(path)],
            sources: vec![SourceRange::File {
                source: "/in.jsonl".into(),
                first_line: first,
                last_line: last,
                first_line_sha256: None,
            }],
            ..Change::new(Action::Append)
        }
    }

    #[test]
    fn a_file_entry_is_kept_from_the_end_of_its_hour() {
        // 2026-11-01T13:00Z is hour bucket 498_193.
        let hour = 1_793_494_800_000_000 / crate::layout::MICROS_PER_HOUR + 12;
        let e = FileEntry::new(
            "events",
            "p".into(),
            hour,
            1,
            2,
            "h".into(),
            std::time::Duration::from_secs(2 * 86_400),
        );
        assert_eq!((e.date.as_str(), e.hour), ("2026-11-01", 13));
        assert_eq!(e.retention, "2d");
        assert_eq!(e.retain_until, "2026-11-03T14:00:00.000000Z");
    }

    #[test]
    fn manifest_paths_sort_by_number() {
        assert_eq!(
            manifest_path(7),
            "_rampart/manifests/00000000000000000007.json"
        );
        assert_eq!(parse_manifest_path(&manifest_path(12345)), Some(12345));
        assert!(manifest_path(9) < manifest_path(10));
        assert_eq!(parse_manifest_path("_rampart/manifests/7.json"), None);
        assert_eq!(parse_manifest_path("x/00000000000000000001.txt"), None);
    }

    #[tokio::test]
    async fn commits_chain_and_replay() {
        let loc = memory();
        let clock = ManualClock::new(1_000_000);
        let mut l = Ledger::load(&loc).await.unwrap();
        let a = l.commit(append("events/a", 1, 10), &clock).await.unwrap();
        let b = l.commit(append("events/b", 11, 20), &clock).await.unwrap();
        assert_eq!(a.manifest.sequence, 1);
        assert_eq!(a.manifest.previous_sha256, None);
        assert_eq!(
            b.manifest.previous_sha256.as_deref(),
            Some(a.sha256.as_str())
        );
        let stored = read_manifests(&loc, None).await.unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!(
            sha256_hex(&stored[1].2),
            b.sha256,
            "hash of the stored bytes"
        );

        let again = Ledger::load(&loc).await.unwrap();
        assert_eq!(again.state().live.len(), 2);
        assert_eq!(again.state().file_lines["/in.jsonl"], 20);
        assert_eq!(again.state().head, Some((2, b.sha256)));
    }

    #[tokio::test]
    async fn a_lost_race_retries_on_the_next_number() {
        let loc = memory();
        let clock = ManualClock::new(0);
        let mut one = Ledger::load(&loc).await.unwrap();
        let mut two = Ledger::load(&loc).await.unwrap();
        one.commit(append("events/a", 1, 1), &clock).await.unwrap();
        // `two` still believes the archive is empty: it loses number 1 and takes 2.
        let c = two.commit(append("events/b", 2, 2), &clock).await.unwrap();
        assert_eq!(c.manifest.sequence, 2);
        let first = Ledger::load(&loc).await.unwrap();
        assert_eq!(
            first.state().live.len(),
            2,
            "neither commit overwrote the other"
        );
        let stored = read_manifests(&loc, None).await.unwrap();
        assert_eq!(
            c.manifest.previous_sha256.as_deref(),
            Some(sha256_hex(&stored[0].2).as_str())
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    // Real tasks on real threads race here; SpawnedTask lives in the pipeline crate.
    #[allow(clippy::disallowed_methods)]
    async fn concurrent_writers_all_land_without_gaps() {
        let loc = memory();
        let mut tasks = Vec::new();
        for w in 0..4 {
            let loc = loc.clone();
            tasks.push(tokio::spawn(async move {
                let clock = ManualClock::new(0);
                let mut l = Ledger::load(&loc).await.unwrap();
                for i in 0..10 {
                    l.commit(append(&format!("events/{w}-{i}"), 1, 1), &clock)
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let l = Ledger::load(&loc).await.unwrap();
        assert_eq!(l.state().live.len(), 40);
        assert_eq!(l.state().head.as_ref().unwrap().0, 40);
    }

    #[tokio::test]
    async fn a_commit_that_landed_but_was_not_reported_is_recognised() {
        let loc = memory();
        let clock = ManualClock::new(0);
        let mut before = Ledger::load(&loc).await.unwrap();
        let mut l = before.clone();
        let first = l.commit(append("events/a", 1, 1), &clock).await.unwrap();
        // `before` retries the very same commit, as after a lost response: it finds its
        // own manifest instead of refusing the change or committing it twice.
        let again = before
            .commit(append("events/a", 1, 1), &clock)
            .await
            .unwrap();
        assert_eq!(again.manifest.sequence, 1);
        assert_eq!(again.sha256, first.sha256);
        assert_eq!(read_manifests(&loc, None).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_change_that_no_longer_applies_is_refused() {
        let loc = memory();
        let clock = ManualClock::new(0);
        let mut one = Ledger::load(&loc).await.unwrap();
        one.commit(append("events/a", 1, 1), &clock).await.unwrap();
        let mut two = Ledger::load(&loc).await.unwrap();
        let remove = |reason: &str| Change {
            remove: vec![Removal {
                path: "events/a".into(),
                table: "events".into(),
                sha256: String::new(),
                reason: reason.into(),
            }],
            ..Change::new(Action::Retention)
        };
        one.commit(remove("first"), &clock).await.unwrap();
        let err = two.commit(remove("second"), &clock).await.unwrap_err();
        assert!(
            err.to_string().contains("no longer in the archive"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn loading_starts_from_the_newest_checkpoint_and_checkpoints_are_checked() {
        let loc = memory();
        let clock = ManualClock::new(0);
        let mut l = Ledger::load(&loc).await.unwrap();
        let n = 4 * CHECKPOINT_EVERY + 7;
        for i in 0..n {
            l.commit(append(&format!("events/{i}"), i + 1, i + 1), &clock)
                .await
                .unwrap();
        }
        let full = l.state().clone();
        let kept = list_checkpoints(&loc).await.unwrap();
        let seqs: Vec<u64> = kept.iter().map(|c| c.0).collect();
        assert_eq!(seqs, vec![200, 300, 400], "the newest three are kept");

        let chain: Vec<Committed> = read_manifests(&loc, None)
            .await
            .unwrap()
            .iter()
            .map(|(_, p, b)| parse_manifest(p, b).unwrap())
            .collect();
        assert!(check_checkpoints(&loc, &chain).await.unwrap().is_empty());

        // With the manifests the newest checkpoint covers gone (but its own), loading
        // still gives the whole state: it read the checkpoint and the manifests after it.
        let saved: Vec<_> = read_manifests(&loc, None).await.unwrap();
        for seq in 1..400 {
            loc.store
                .delete(&loc.child(&manifest_path(seq)))
                .await
                .unwrap();
        }
        let from_checkpoint = Ledger::load(&loc).await.unwrap();
        assert_eq!(from_checkpoint.state().live, full.live);
        assert_eq!(from_checkpoint.state().head, full.head);
        assert_eq!(from_checkpoint.state().file_lines, full.file_lines);
        // A checkpoint over another manifest 400 than the one stored is not used: the
        // gap before 400 is found instead.
        let mut other = saved[399].2.to_vec();
        other.push(b' ');
        loc.store
            .put(&loc.child(&manifest_path(400)), PutPayload::from(other))
            .await
            .unwrap();
        assert!(Ledger::load(&loc).await.is_err());
        for (_, path, bytes) in saved {
            loc.store
                .put(&loc.child(&path), PutPayload::from(bytes))
                .await
                .unwrap();
        }

        // A checkpoint that hides a file is caught, and an unreadable one is skipped.
        let path = checkpoint_path(400);
        let mut c = read_checkpoint(&loc, &path).await.unwrap();
        c.live.remove(3);
        let tampered = serde_json::to_vec(&c).unwrap();
        loc.store
            .put(&loc.child(&path), PutPayload::from(tampered))
            .await
            .unwrap();
        let findings = check_checkpoints(&loc, &chain).await.unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].0, path);
        assert!(findings[0].1.contains("live files differ"), "{findings:?}");
        loc.store
            .put(&loc.child(&path), PutPayload::from_static(b"{not json"))
            .await
            .unwrap();
        let fallback = Ledger::load(&loc).await.unwrap();
        assert_eq!(fallback.state().live, full.live, "from checkpoint 300 on");
    }

    #[tokio::test]
    async fn a_gap_is_reported_with_the_missing_name() {
        let loc = memory();
        let clock = ManualClock::new(0);
        let mut l = Ledger::load(&loc).await.unwrap();
        for i in 0..3 {
            l.commit(append(&format!("events/{i}"), 1, 1), &clock)
                .await
                .unwrap();
        }
        loc.store
            .delete(&loc.child(&manifest_path(2)))
            .await
            .unwrap();
        let err = Ledger::load(&loc).await.unwrap_err().to_string();
        assert!(err.contains(&manifest_path(2)), "{err}");
    }
}
