//! `rampart compact`: every row still there exactly once, few sorted files per closed
//! hour, every file on disk listed by the chain, retention kept, recent hours untouched.

use std::collections::BTreeMap;

use arrow::array::AsArray;
use arrow::datatypes::TimestampMicrosecondType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use crate::*;

/// Small chunks and small files: an hour of events becomes many files.
const SMALL_FILES: [(&str, &str); 2] = [
    ("RAMPART_SOURCE__READ_CHUNK", "64 KiB"),
    ("RAMPART_SINK__MAX_FILE_ROWS", "500"),
];

/// Every data file on disk, relative to the archive, by partition folder; the access
/// log, which every query in between adds to, is left out.
fn files_by_partition(archive: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut stack = vec![archive.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if !p.ends_with("_rampart") && !p.ends_with("access_log") {
                    stack.push(p);
                }
                continue;
            }
            let rel = p
                .strip_prefix(archive)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let (folder, _) = rel.rsplit_once('/').unwrap();
            out.entry(folder.to_string()).or_default().push(rel);
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// The manifests, in chain order.
fn manifests(archive: &Path) -> Vec<Value> {
    // Only `*.json`: a manifest being written by a live run is a staging file beside them.
    let mut paths: Vec<PathBuf> = std::fs::read_dir(archive.join("_rampart/manifests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

/// The live files by replaying the manifests' adds and removes (an independent reading
/// of the chain): path -> its entry.
fn live(manifests: &[Value]) -> BTreeMap<String, Value> {
    let mut live = BTreeMap::new();
    for m in manifests {
        for r in m["remove"].as_array().into_iter().flatten() {
            let path = r["path"].as_str().unwrap();
            assert!(live.remove(path).is_some(), "{path} removed but not live");
        }
        for a in m["add"].as_array().into_iter().flatten() {
            live.insert(a["path"].as_str().unwrap().to_string(), a.clone());
        }
    }
    live
}

fn by_category(archive: &Path) -> Vec<(String, u64)> {
    query_json(
        archive,
        "SELECT category, count(*) AS n FROM events GROUP BY category ORDER BY category",
    )
    .iter()
    .map(|r| {
        (
            r["category"].as_str().unwrap().to_string(),
            r["n"].as_u64().unwrap(),
        )
    })
    .collect()
}

/// (resource_id, ts) of an events file's rows, in file order.
fn event_keys(path: &Path) -> Vec<(String, i64)> {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut keys = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let r = b.column_by_name("resource_id").unwrap().as_string::<i32>();
        let t = b
            .column_by_name("ts")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        keys.extend((0..b.num_rows()).map(|i| (r.value(i).to_string(), t.value(i))));
    }
    keys
}

/// Whether every row group of the Parquet file at `path` has min/max statistics for
/// `column`.
fn has_min_max(path: &Path, column: &str) -> bool {
    let file = std::fs::File::open(path).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    builder.metadata().row_groups().iter().all(|g| {
        g.columns()
            .iter()
            .find(|c| c.column_path().string() == column)
            .and_then(|c| c.statistics())
            .is_some_and(|s| s.min_bytes_opt().is_some())
    })
}

fn compact(archive: &Path, older_than: &str) -> String {
    let out = ok(rampart()
        .args(["compact", "--archive"])
        .arg(archive)
        .args(["--older-than", older_than]));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn compaction_keeps_every_row_once_in_one_sorted_file_per_closed_hour() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(
        dir.path(),
        "in.jsonl",
        rampart_gen::GenConfig {
            bad_rate: 0.01,
            ..small(20_000, 17)
        },
    );
    let total = g.stats.total();
    let archive = dir.path().join("archive");
    run_pipeline_env(&g.path, &archive, SMALL_FILES);
    let categories = by_category(&archive);
    assert_eq!(line_coverage(&archive), (total, total, 1, total));
    let before = files_by_partition(&archive);
    let event_partitions: Vec<&String> =
        before.keys().filter(|k| k.starts_with("events/")).collect();
    assert!(!event_partitions.is_empty());
    for p in &event_partitions {
        assert!(before[*p].len() >= 4, "{p}: {} files", before[*p].len());
        // The sink's files (rows in arrival order) keep min/max for the time only;
        // compaction's (sorted by resource) for the resource and the others too.
        let file = archive.join(&before[*p][0]);
        assert!(has_min_max(&file, "ts"));
        for column in ["resource_id", "category", "workload"] {
            assert!(!has_min_max(&file, column), "{p}: min/max for {column}");
        }
    }
    let entries_before = live(&manifests(&archive));

    // A dry run writes nothing.
    let dry = String::from_utf8(
        ok(rampart()
            .args(["compact", "--dry-run", "--older-than", "0s", "--archive"])
            .arg(&archive))
        .stdout,
    )
    .unwrap();
    assert!(
        dry.contains("events") && dry.contains("would be rewritten"),
        "{dry}"
    );
    assert_eq!(files_by_partition(&archive), before);

    let report = compact(&archive, "0s");
    assert!(report.contains("events"), "{report}");
    assert!(!report.contains("failed"), "{report}");

    // No row lost or doubled; the same answers.
    assert_eq!(line_coverage(&archive), (total, total, 1, total));
    assert_eq!(
        query_json(&archive, "SELECT count(*) AS n FROM events")[0]["n"],
        g.stats.good
    );
    assert_eq!(by_category(&archive), categories);

    // One file per closed event hour (dead letters sit in the current hour, still open),
    // its rows sorted by resource and time.
    let after = files_by_partition(&archive);
    for p in &event_partitions {
        let files = &after[*p];
        assert_eq!(files.len(), 1, "{p}: {files:?}");
        for column in ["resource_id", "category", "workload", "user"] {
            assert!(
                has_min_max(&archive.join(&files[0]), column),
                "{p}: no min/max for {column} after compaction"
            );
        }
        let keys = event_keys(&archive.join(&files[0]));
        assert!(!keys.is_empty());
        assert!(
            keys.is_sorted(),
            "{p}: rows not sorted by (resource_id, ts)"
        );
    }

    // Every file on disk is live by the chain, and every live file is on disk.
    let chain = manifests(&archive);
    let live_after = live(&chain);
    let on_disk: Vec<&String> = after.values().flatten().collect();
    let listed: Vec<&String> = live_after
        .keys()
        .filter(|p| !p.starts_with("access_log/"))
        .collect();
    assert_eq!(on_disk, listed, "files on disk are exactly the live ones");

    // Each compaction kept the longest retention of the files it replaced.
    let compactions: Vec<&Value> = chain.iter().filter(|m| m["action"] == "compact").collect();
    assert!(compactions.len() >= event_partitions.len());
    for m in compactions {
        let inputs: Vec<&Value> = m["remove"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &entries_before[r["path"].as_str().unwrap()])
            .collect();
        let longest = inputs
            .iter()
            .map(|e| e["retain_until"].as_str().unwrap())
            .max()
            .unwrap();
        let rows: u64 = inputs.iter().map(|e| e["rows"].as_u64().unwrap()).sum();
        let added = m["add"].as_array().unwrap();
        assert_eq!(
            added
                .iter()
                .map(|a| a["rows"].as_u64().unwrap())
                .sum::<u64>(),
            rows
        );
        for a in added {
            assert_eq!(a["retain_until"].as_str().unwrap(), longest, "{a}");
        }
    }

    // Queries still prune by date and hour.
    let hour = event_partitions[0].clone();
    let (date, h) = hour
        .strip_prefix("events/date=")
        .unwrap()
        .split_once("/hour=")
        .unwrap();
    let plan = String::from_utf8(
        ok(rampart()
            .args(["query", "--format", "csv", "--archive"])
            .arg(&archive)
            .arg(format!(
                "EXPLAIN SELECT resource_id FROM events WHERE date = DATE '{date}' AND hour = {}",
                h.parse::<u32>().unwrap()
            )))
        .stdout,
    )
    .unwrap();
    assert!(plan.contains(&hour), "{plan}");
    for other in event_partitions.iter().skip(1) {
        assert!(
            !plan.contains(other.as_str()),
            "{other} not pruned:\n{plan}"
        );
    }

    // Nothing left to do.
    let again = compact(&archive, "0s");
    assert!(again.contains("nothing to compact"), "{again}");
    assert_eq!(files_by_partition(&archive), after);

    // The replacement is in the chain: the archive verifies.
    let out = ok(rampart().args(["verify", "--archive"]).arg(&archive));
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(report.contains("archive intact"), "{report}");
}

#[test]
fn hours_that_ended_recently_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    let this_hour = now.timestamp().div_euclid(3600) * 3600;
    let start = chrono::DateTime::from_timestamp(this_hour - 3 * 3600, 0).unwrap();
    let g = generate(
        dir.path(),
        "in.jsonl",
        rampart_gen::GenConfig {
            start,
            span: std::time::Duration::from_secs(3 * 3600),
            ..small(6_000, 23)
        },
    );
    let archive = dir.path().join("archive");
    run_pipeline_env(&g.path, &archive, SMALL_FILES);
    let before = files_by_partition(&archive);
    let t0 = chrono::Utc::now().timestamp();
    let report = compact(&archive, "2h");
    let t1 = chrono::Utc::now().timestamp();
    let after = files_by_partition(&archive);

    let mut compacted = 0;
    for (p, files) in before.iter().filter(|(p, _)| p.starts_with("events/")) {
        let (date, h) = p
            .strip_prefix("events/date=")
            .unwrap()
            .split_once("/hour=")
            .unwrap();
        let begin = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .unwrap()
            .and_hms_opt(h.parse().unwrap(), 0, 0)
            .unwrap()
            .and_utc()
            .timestamp();
        let due = begin + 3600 + 2 * 3600;
        if files.len() < 2 {
            // An hour at the edge of the generated span may hold a single file: nothing
            // to compact there, whenever it ended.
            assert_eq!(&after[p], files, "{p}: a single file is left as it is");
            continue;
        }
        if due <= t0 {
            assert_eq!(after[p].len(), 1, "{p} ended over 2h ago: {report}");
            compacted += 1;
        } else if due > t1 {
            assert_eq!(&after[p], files, "{p} ended under 2h ago: {report}");
        }
    }
    assert_eq!(compacted, 1, "{report}");
    for (p, files) in before
        .iter()
        .filter(|(p, _)| p.starts_with("dead_letters/"))
    {
        assert_eq!(&after[p], files, "{p} is the current hour");
    }
    let total = g.stats.total();
    assert_eq!(line_coverage(&archive), (total, total, 1, total));
}

#[test]
fn a_run_compacts_in_the_background_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(5_000, 29));
    let archive = dir.path().join("archive");
    run_pipeline_env(&g.path, &archive, SMALL_FILES);
    let compactions = |a: &Path| {
        manifests(a)
            .iter()
            .filter(|m| m["action"] == "compact")
            .count()
    };
    assert_eq!(compactions(&archive), 0);

    // A live run (stdin held open) compacting every second.
    let mut child = rampart()
        .envs([
            ("RAMPART_COMPACT__INTERVAL", "1s"),
            ("RAMPART_COMPACT__OLDER_THAN", "0s"),
        ])
        .args(["run", "--source", "-", "--archive"])
        .arg(&archive)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let started = std::time::Instant::now();
    while compactions(&archive) == 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no background compaction"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(summary_count(&summary, "compacted") >= 1, "{summary}");
    let total = g.stats.total();
    assert_eq!(line_coverage(&archive), (total, total, 1, total));
}

#[test]
fn a_compaction_pass_cleans_up_files_no_manifest_lists() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(500, 71));
    let archive = dir.path().join("archive");
    run_pipeline(&g.path, &archive);
    let before = files_by_partition(&archive);
    // What a crash leaves: a complete file that no manifest lists.
    let (folder, files) = before.iter().next().unwrap();
    let orphan = archive.join(folder).join("part-crashed.parquet");
    std::fs::copy(archive.join(&files[0]), &orphan).unwrap();
    // Older than the hour of grace: no running writer can still commit it.
    std::fs::File::options()
        .write(true)
        .open(&orphan)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .unwrap();
    let out = ok(rampart()
        .args(["compact", "--older-than", "0s", "--archive"])
        .arg(&archive));
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(report.contains("cleaned up    1 files"), "{report}");
    assert!(!orphan.exists());
    assert_eq!(
        files_by_partition(&archive),
        before,
        "committed files untouched"
    );
}
