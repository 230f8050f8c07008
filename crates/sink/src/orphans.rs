//! Files that no manifest lists: left by a crash, or removed from the archive by
//! compaction or retention and not yet deleted.

use std::time::Duration;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use rampart_core::layout::committed_folders;
use rampart_core::ledger::State;
use rampart_core::store::Location;
use tracing::info;

use crate::{Error, Result};

/// A data file that is not part of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// Path relative to the archive root.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Microseconds since it was last modified, by `now`.
    pub age_micros: i64,
}

/// Every object under the tables' folders and `reports/` that `state` does not list as
/// live, and every window-state file that is not a partition's latest.
pub async fn find_orphans(location: &Location, state: &State, now: i64) -> Result<Vec<Orphan>> {
    let root = location.prefix.as_ref().trim_end_matches('/');
    let mut out = Vec::new();
    let current: std::collections::BTreeSet<&str> = state
        .window_state
        .values()
        .map(|f| f.path.as_str())
        .collect();
    let folders = committed_folders()
        .into_iter()
        .chain([rampart_core::ledger::STATE_DIR]);
    for folder in folders {
        let dir = location.child(folder);
        let listed: Vec<object_store::ObjectMeta> = location
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|source| Error::Store {
                path: folder.to_string(),
                source,
            })?;
        for meta in listed {
            let full = meta.location.as_ref();
            let relative = if root.is_empty() {
                full
            } else {
                full.strip_prefix(root)
                    .map_or(full, |r| r.trim_start_matches('/'))
            };
            if state.live.contains_key(relative) || current.contains(relative) {
                continue;
            }
            out.push(Orphan {
                path: relative.to_string(),
                bytes: meta.size,
                age_micros: now.saturating_sub(meta.last_modified.timestamp_micros()),
            });
        }
    }
    out.extend(local_staging_files(location, now));
    Ok(out)
}

/// On the local disk, an upload in progress is a staging file `<name>#<n>` that the store
/// never lists; a crash leaves it behind. They are found by walking the folders.
fn local_staging_files(location: &Location, now: i64) -> Vec<Orphan> {
    let Ok(root) = location.url.to_file_path() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut stack: Vec<std::path::PathBuf> = committed_folders()
        .into_iter()
        .map(|folder| root.join(folder))
        .collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let staging = name
                .rsplit_once('#')
                .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !staging {
                continue;
            }
            let modified = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
            let Ok(relative) = path.strip_prefix(&root) else {
                continue;
            };
            out.push(Orphan {
                path: relative.to_string_lossy().replace('\\', "/"),
                bytes: meta.len(),
                age_micros: now.saturating_sub(modified),
            });
        }
    }
    out
}

/// Deletes the orphans at least `grace` old (younger ones may belong to a writer that
/// has not committed yet) and returns them. A file the store refuses to delete is
/// logged and left for the next clean-up.
///
/// An archive without a single manifest is left alone: its files may be an archive
/// written before manifests existed, which is not Rampart's to delete.
pub async fn remove_orphans(
    location: &Location,
    state: &State,
    grace: Duration,
    now: i64,
) -> Result<Vec<Orphan>> {
    let grace = i64::try_from(grace.as_micros()).unwrap_or(i64::MAX);
    let mut removed = Vec::new();
    if state.head.is_none() {
        let found = find_orphans(location, state, now).await?;
        if !found.is_empty() {
            tracing::warn!(
                files = found.len(),
                "the archive has data files but no manifests (written by a version before manifests, or a first run that never committed); nothing is deleted"
            );
        }
        return Ok(removed);
    }
    for orphan in find_orphans(location, state, now).await? {
        if orphan.age_micros < grace {
            continue;
        }
        if let Ok(root) = location.url.to_file_path()
            && orphan.path.contains('#')
        {
            // A staging file: the store does not see it, the file system does.
            match std::fs::remove_file(root.join(&orphan.path)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %orphan.path, error = %e, "cannot delete a file no manifest lists; left for the next clean-up");
                    continue;
                }
            }
            removed.push(orphan);
            continue;
        }
        match location.store.delete(&location.child(&orphan.path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(path = %orphan.path, error = %e, "cannot delete a file no manifest lists; left for the next clean-up");
                continue;
            }
        }
        info!(path = %orphan.path, bytes = orphan.bytes, "removed a file that no manifest lists");
        removed.push(orphan);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_of_an_archive_without_manifests_are_never_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let loc =
            rampart_core::store::open(dir.path().to_str().unwrap(), Vec::<(String, String)>::new())
                .unwrap();
        let file = dir
            .path()
            .join("events/date=2026-01-01/hour=00/part-old.parquet");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"written before manifests existed").unwrap();
        let now = i64::MAX / 2;
        // No manifest at all: perhaps an archive of an older version. Left alone.
        let empty = State::default();
        assert!(
            remove_orphans(&loc, &empty, Duration::ZERO, now)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(file.exists());
        // Once a chain exists, a file it does not list is an orphan.
        let chained = State {
            head: Some((1, "h".into())),
            ..State::default()
        };
        let removed = remove_orphans(&loc, &chained, Duration::ZERO, now)
            .await
            .unwrap();
        assert_eq!(removed.len(), 1);
        assert!(!file.exists());
    }

    #[tokio::test]
    async fn an_uncommitted_report_is_an_orphan_and_a_committed_one_is_not() {
        use rampart_core::ledger::{FileEntry, LiveFile};
        let dir = tempfile::tempdir().unwrap();
        let loc =
            rampart_core::store::open(dir.path().to_str().unwrap(), Vec::<(String, String)>::new())
                .unwrap();
        let (kept, left) = (
            "reports/period=2026-10/report-a.html",
            "reports/period=2026-10/report-b.html",
        );
        for p in [kept, left] {
            let file = dir.path().join(p);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, b"<p>report</p>").unwrap();
        }
        let mut state = State {
            head: Some((1, "h".into())),
            ..State::default()
        };
        let entry = FileEntry::new(
            rampart_core::layout::REPORTS,
            kept.into(),
            0,
            0,
            13,
            String::new(),
            Duration::ZERO,
        );
        state
            .live
            .insert(kept.into(), LiveFile { entry, added_by: 1 });
        let removed = remove_orphans(&loc, &state, Duration::ZERO, i64::MAX / 2)
            .await
            .unwrap();
        let paths: Vec<&str> = removed.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(paths, [left]);
        assert!(dir.path().join(kept).exists());
    }

    #[tokio::test]
    async fn window_states_other_than_the_latest_are_orphans() {
        use rampart_core::ledger::{StateFile, state_path};
        let dir = tempfile::tempdir().unwrap();
        let loc =
            rampart_core::store::open(dir.path().to_str().unwrap(), Vec::<(String, String)>::new())
                .unwrap();
        let (old, latest) = (state_path("kafka:t/0", 1), state_path("kafka:t/0", 2));
        for p in [&old, &latest] {
            let file = dir.path().join(p);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, b"{}").unwrap();
        }
        let mut state = State {
            head: Some((2, "h".into())),
            ..State::default()
        };
        state.window_state.insert(
            "kafka:t/0".into(),
            StateFile {
                key: "kafka:t/0".into(),
                position: 2,
                path: latest.clone(),
                bytes: 2,
                sha256: String::new(),
            },
        );
        let removed = remove_orphans(&loc, &state, Duration::ZERO, i64::MAX / 2)
            .await
            .unwrap();
        let paths: Vec<&str> = removed.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(paths, [old.as_str()]);
        assert!(dir.path().join(&latest).exists());
    }
}
