//! Retention: remove the files whose retention period has passed, unless a legal hold
//! covers them, and record every removal in the chain.
//!
//! Each file carries the retention period in force when it was written and the instant
//! it may go (`retain_until`, from the end of its hour). Retention uses what the file
//! carries, not today's configuration, so shortening a period never reaches back. A
//! file whose recorded period is below the configured floor is kept unless the operator
//! passes `--allow-short-retention`. The removal is committed first (what, why, when,
//! the file's hash) and the file deleted after; a crash in between leaves a file that no
//! manifest lists, which the next clean-up removes.

use std::time::Duration;

use object_store::ObjectStoreExt;
use rampart_core::Clock;
use rampart_core::ledger::{Action, Change, Committed, Ledger, LiveFile, Removal, State, rfc3339};
use rampart_core::store::Location;
use tracing::warn;

use crate::holds::FileProbe;
use crate::{Error, Result};

/// At most this many removals go in one manifest.
const REMOVALS_PER_MANIFEST: usize = 10_000;

/// What retention would do now.
#[derive(Debug, Clone, Default)]
pub struct RetentionPlan {
    /// The instant the plan was made for (µs since the epoch).
    pub now: i64,
    /// Expired files that no hold covers: these go.
    pub expired: Vec<LiveFile>,
    /// Expired files kept by holds, with the names of the holds.
    pub held: Vec<(LiveFile, Vec<String>)>,
    /// Expired files whose recorded period is below the floor: kept without
    /// `--allow-short-retention`.
    pub below_floor: Vec<LiveFile>,
    /// Files not yet expired.
    pub retained: usize,
}

/// Plans retention for the archive's `state` at `now`.
pub async fn plan_retention(
    location: &Location,
    state: &State,
    now: i64,
    floor: Duration,
    allow_short: bool,
) -> Result<RetentionPlan> {
    let probe = FileProbe::new(location)?;
    let mut plan = RetentionPlan {
        now,
        ..RetentionPlan::default()
    };
    for file in state.live.values() {
        if file.entry.retain_until_micros() > now {
            plan.retained += 1;
            continue;
        }
        let recorded = humantime::parse_duration(&file.entry.retention).ok();
        if !allow_short && recorded.is_none_or(|p| p < floor) {
            plan.below_floor.push(file.clone());
            continue;
        }
        let mut holds = Vec::new();
        for active in state.holds.values() {
            if probe.matches(file, &active.hold).await? {
                holds.push(active.hold.name.clone());
            }
        }
        if holds.is_empty() {
            plan.expired.push(file.clone());
        } else {
            plan.held.push((file.clone(), holds));
        }
    }
    Ok(plan)
}

/// The outcome of applying a plan.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The manifests that record the removals.
    pub manifests: Vec<Committed>,
    /// Files removed from the archive.
    pub removed: usize,
    /// Of those, files whose deletion from the store failed (left for the clean-up).
    pub delete_failed: usize,
}

/// Records the removal of `plan.expired` in the chain, then deletes the files.
pub async fn apply_retention(
    ledger: &mut Ledger,
    plan: &RetentionPlan,
    clock: &dyn Clock,
) -> Result<Applied> {
    let mut applied = Applied::default();
    ledger
        .refresh()
        .await
        .map_err(|source| Error::Ledger { source })?;
    for chunk in plan.expired.chunks(REMOVALS_PER_MANIFEST) {
        let remove = chunk
            .iter()
            .map(|f| Removal {
                path: f.entry.path.clone(),
                table: f.entry.table.clone(),
                sha256: f.entry.sha256.clone(),
                reason: format!(
                    "retention of {} expired at {}; removed at {}",
                    f.entry.retention,
                    f.entry.retain_until,
                    rfc3339(plan.now)
                ),
            })
            .collect();
        let committed = ledger
            .commit(
                Change {
                    remove,
                    ..Change::new(Action::Retention)
                },
                clock,
            )
            .await
            .map_err(|source| Error::Ledger { source })?;
        applied.manifests.push(committed);
        let location = ledger.location().clone();
        for f in chunk {
            applied.removed += 1;
            match location.store.delete(&location.child(&f.entry.path)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    warn!(path = %f.entry.path, error = %e, "removed from the archive but not deleted; the next clean-up deletes it");
                    applied.delete_failed += 1;
                }
            }
        }
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Archive;
    use crate::access::{AccessKind, AccessRecord, log_access};
    use crate::holds::{place_hold, release_hold};
    use rampart_core::ManualClock;
    use rampart_core::layout::MICROS_PER_HOUR;

    const T0: i64 = 1_793_491_200_000_000; // 2026-11-01T00:00:00Z
    const DAY: i64 = 24 * MICROS_PER_HOUR;

    /// The same suite on the local disk and, when scripts/test.sh runs it, on S3.
    fn locations() -> Vec<(Location, Option<tempfile::TempDir>)> {
        let dir = tempfile::tempdir().unwrap();
        let local =
            rampart_core::store::open(dir.path().to_str().unwrap(), Vec::<(String, String)>::new())
                .unwrap();
        let mut v = vec![(local, Some(dir))];
        if let Ok(endpoint) = std::env::var("RAMPART_TEST_S3_ENDPOINT") {
            let bucket = std::env::var("RAMPART_TEST_S3_BUCKET").unwrap();
            let prefix = format!("retention-{}", uuid::Uuid::now_v7().simple());
            let s3 = rampart_core::store::open(
                &format!("s3://{bucket}/{prefix}"),
                [
                    ("aws_endpoint", endpoint.as_str()),
                    ("aws_allow_http", "true"),
                    ("aws_virtual_hosted_style_request", "false"),
                ],
            )
            .unwrap();
            v.push((s3, None));
        } else {
            assert!(
                std::env::var_os("RAMPART_REQUIRE_SERVICES").is_none(),
                "RAMPART_REQUIRE_SERVICES is set but no S3 server is: run scripts/test.sh"
            );
        }
        v
    }

    /// One access-log file per statement, an hour apart from T0, kept for one day.
    async fn archive_of(loc: &Location, clock: &ManualClock, statements: &[&str]) -> Vec<String> {
        let mut paths = Vec::new();
        for s in statements {
            let record = AccessRecord {
                kind: AccessKind::Query,
                statement: (*s).to_string(),
                rows: 1,
                outcome: "ok".into(),
            };
            let day = Duration::from_secs(86_400);
            paths.push(log_access(loc, &record, day, clock).await.unwrap());
            clock.advance(MICROS_PER_HOUR);
        }
        paths
    }

    async fn plan(loc: &Location, now: i64, allow_short: bool) -> RetentionPlan {
        let ledger = Ledger::load(loc).await.unwrap();
        let floor = Duration::from_secs(365 * 86_400);
        plan_retention(loc, ledger.state(), now, floor, allow_short)
            .await
            .unwrap()
    }

    fn paths(files: &[LiveFile]) -> Vec<&str> {
        files.iter().map(|f| f.entry.path.as_str()).collect()
    }

    #[tokio::test]
    async fn files_go_when_their_period_ends_unless_held_or_below_the_floor() {
        for (loc, _dir) in locations() {
            let clock = ManualClock::new(T0);
            let files = archive_of(&loc, &clock, &["a", "case-17", "c"]).await;
            // File i covers hour i and is kept until the end of that hour plus one day.
            let until = |i: i64| T0 + (i + 1) * MICROS_PER_HOUR + DAY;

            let p = plan(&loc, until(0) - 1, true).await;
            assert!(p.expired.is_empty(), "{}: nothing has expired yet", loc.url);
            assert_eq!(p.retained, 3);
            let p = plan(&loc, until(0), true).await;
            assert_eq!(paths(&p.expired), vec![files[0].as_str()], "{}", loc.url);

            // A one-day period is below the one-year floor: kept unless overridden.
            let p = plan(&loc, until(2), false).await;
            assert!(
                p.expired.is_empty() && p.below_floor.len() == 3,
                "{}",
                loc.url
            );

            // A hold keeps the file holding a matching row, and only that one.
            let archive = Archive::open(loc.clone()).await.unwrap();
            let placed = place_hold(
                &archive,
                "case-17",
                "statement = 'case-17'",
                Some(vec!["access_log".into()]),
                Some("litigation".into()),
                &clock,
            )
            .await
            .unwrap();
            assert_eq!(placed.matching_rows, vec![("access_log".to_string(), 1)]);
            let p = plan(&loc, until(2), true).await;
            assert_eq!(
                paths(&p.expired),
                vec![files[0].as_str(), files[2].as_str()]
            );
            assert_eq!(p.held.len(), 1);
            assert_eq!(p.held[0].0.entry.path, files[1]);
            assert_eq!(p.held[0].1, vec!["case-17".to_string()]);

            // Applying removes them from the chain, with the reason and hash, and the store.
            let mut ledger = Ledger::load(&loc).await.unwrap();
            clock.advance(DAY);
            let applied = apply_retention(&mut ledger, &p, &clock).await.unwrap();
            assert_eq!((applied.removed, applied.delete_failed), (2, 0));
            let m = &applied.manifests[0].manifest;
            assert_eq!(m.change.action, Action::Retention);
            assert_eq!(m.change.remove.len(), 2);
            assert!(
                m.change.remove[0]
                    .reason
                    .contains("retention of 1d expired")
            );
            let reloaded = Ledger::load(&loc).await.unwrap();
            let live: Vec<&String> = reloaded.state().live.keys().collect();
            assert!(
                live.iter()
                    .all(|p| !p.ends_with(&files[0]) && **p != files[2]),
                "{live:?}"
            );
            assert!(reloaded.state().live.contains_key(&files[1]));
            for gone in [&files[0], &files[2]] {
                assert!(loc.store.head(&loc.child(gone)).await.is_err(), "{gone}");
            }
            assert!(loc.store.head(&loc.child(&files[1])).await.is_ok());

            // Released, the held file goes at the next application.
            release_hold(&loc, "case-17", Some("closed".into()), &clock)
                .await
                .unwrap();
            let p = plan(&loc, until(2), true).await;
            assert_eq!(paths(&p.expired), vec![files[1].as_str()]);
        }
    }
}
