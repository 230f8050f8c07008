//! `rampart query`: read-only, partition pruning, output formats.

use std::collections::BTreeMap;
use std::path::Path;

use crate::*;

/// Every file under `dir` with its size and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path(), (m.len(), m.modified().unwrap()));
            }
        }
    }
    out
}

#[test]
fn statements_that_write_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(1_000, 1));
    let archive = dir.path().join("archive");
    run_pipeline(&g.path, &archive);
    let before = snapshot(&archive);
    let target = dir.path().join("copied.parquet");
    for sql in [
        "INSERT INTO events SELECT * FROM events".to_string(),
        "DELETE FROM events".to_string(),
        "UPDATE events SET category = 'x'".to_string(),
        "DROP TABLE events".to_string(),
        "CREATE TABLE t AS SELECT 1".to_string(),
        format!(
            "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '{}'",
            archive.display()
        ),
        format!("COPY (SELECT * FROM events) TO '{}'", target.display()),
        format!(
            "COPY events TO '{}/events/extra.parquet'",
            archive.display()
        ),
        "SELECT 1; DROP TABLE events".to_string(),
    ] {
        let err = fails(
            rampart()
                .args(["query", "--archive"])
                .arg(&archive)
                .arg(&sql),
        );
        assert!(err.contains("refused"), "{sql}: {err}");
    }
    assert!(!target.exists());
    // The evidence is unchanged: every file that existed is there as it was, and the only
    // new files are the access log's records of the refused statements and their commits.
    let after = snapshot(&archive);
    for (path, meta) in &before {
        assert_eq!(after.get(path), Some(meta), "{} changed", path.display());
    }
    let added: Vec<&PathBuf> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    assert!(
        added.iter().all(|p| {
            let rel = p.strip_prefix(&archive).unwrap();
            rel.starts_with("access_log") || rel.starts_with("_rampart/manifests")
        }),
        "{added:?}"
    );
    let n = query_json(&archive, "SELECT count(*) AS n FROM events");
    assert_eq!(n[0]["n"], g.stats.good);
    let logged = query_json(
        &archive,
        "SELECT statement, outcome FROM access_log WHERE outcome LIKE 'refused%'",
    );
    assert_eq!(
        logged.len(),
        9,
        "every refused statement is in the access log"
    );
}

#[test]
fn date_and_hour_filters_prune_partitions_and_agree_with_time_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(
        dir.path(),
        "in.jsonl",
        rampart_gen::GenConfig {
            span: std::time::Duration::from_secs(50 * 3600),
            ..small(5_000, 9)
        },
    );
    let archive = dir.path().join("archive");
    run_pipeline(&g.path, &archive);

    let by_partition = query_json(
        &archive,
        "SELECT count(*) AS n FROM events WHERE date = DATE '2026-11-02' AND hour = 5",
    );
    let by_time = query_json(
        &archive,
        "SELECT count(*) AS n FROM events WHERE ts >= TIMESTAMP '2026-11-02T05:00:00Z' \
         AND ts < TIMESTAMP '2026-11-02T06:00:00Z'",
    );
    assert!(by_partition[0]["n"].as_u64().unwrap() > 0);
    assert_eq!(by_partition[0]["n"], by_time[0]["n"]);

    let plan = String::from_utf8(
        ok(rampart()
            .args(["query", "--format", "csv", "--archive"])
            .arg(&archive)
            .arg("EXPLAIN SELECT resource_id FROM events WHERE date = DATE '2026-11-02' AND hour = 5"))
        .stdout,
    )
    .unwrap();
    assert!(plan.contains("date=2026-11-02/hour=05"), "{plan}");
    for other in ["date=2026-11-01", "date=2026-11-03", "hour=04", "hour=06"] {
        assert!(!plan.contains(other), "{other} was not pruned:\n{plan}");
    }
}

#[test]
fn output_formats() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(500, 2));
    let archive = dir.path().join("archive");
    run_pipeline(&g.path, &archive);
    let sql = "SELECT category, count(*) AS n FROM events GROUP BY category ORDER BY category";
    let json = query_json(&archive, sql);
    let csv = String::from_utf8(
        ok(rampart()
            .args(["query", "--format", "csv", "--archive"])
            .arg(&archive)
            .arg(sql))
        .stdout,
    )
    .unwrap();
    let mut csv_lines = csv.lines();
    assert_eq!(csv_lines.next(), Some("category,n"));
    let csv_rows: Vec<(String, u64)> = csv_lines
        .map(|l| {
            let (c, n) = l.split_once(',').unwrap();
            (c.to_string(), n.parse().unwrap())
        })
        .collect();
    let json_rows: Vec<(String, u64)> = json
        .iter()
        .map(|r| {
            (
                r["category"].as_str().unwrap().to_string(),
                r["n"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(csv_rows, json_rows);
    assert_eq!(json_rows.iter().map(|(_, n)| n).sum::<u64>(), g.stats.good);
    let table = String::from_utf8(
        ok(rampart()
            .args(["query", "--archive"])
            .arg(&archive)
            .arg(sql))
        .stdout,
    )
    .unwrap();
    assert!(table.contains("| category"), "{table}");
    let empty = String::from_utf8(
        ok(rampart()
            .args(["query", "--archive"])
            .arg(&archive)
            .arg("SELECT category FROM events WHERE false"))
        .stdout,
    )
    .unwrap();
    assert!(
        empty.contains("category") && empty.contains("(0 rows)"),
        "{empty}"
    );
}

#[test]
fn an_empty_archive_has_empty_tables() {
    let dir = tempfile::tempdir().unwrap();
    let rows = query_json(
        &dir.path().join("nothing-here"),
        "SELECT (SELECT count(*) FROM events) AS e, (SELECT count(*) FROM dead_letters) AS d",
    );
    assert_eq!(rows[0]["e"], 0);
    assert_eq!(rows[0]["d"], 0);
}

#[test]
fn a_data_file_that_no_manifest_lists_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(1_000, 3));
    let archive = dir.path().join("archive");
    run_pipeline(&g.path, &archive);
    let count = || query_json(&archive, "SELECT count(*) AS n FROM events")[0]["n"].as_u64();
    assert_eq!(count(), Some(g.stats.good));
    // A crash leaves complete files that no manifest lists: copy one to a new name.
    let committed = snapshot(&archive.join("events"))
        .into_keys()
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    std::fs::copy(
        &committed,
        committed.with_file_name("part-uncommitted.parquet"),
    )
    .unwrap();
    assert_eq!(count(), Some(g.stats.good), "the uncommitted copy was read");
}

#[test]
fn a_query_is_bounded_by_query_memory_limit_and_query_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(100, 3));
    let archive = dir.path().join("archive");
    run_pipeline(&g.path, &archive);
    // 20 million values gathered in one array: about 160 MB, and no way to spill it.
    let big = "SELECT cardinality(array_agg(value)) AS n FROM generate_series(1, 20000000)";
    let rows = query_json(&archive, big);
    assert_eq!(
        rows[0]["n"].as_u64(),
        Some(20_000_000),
        "within the default limit"
    );
    let err = fails(
        rampart()
            .env("RAMPART_QUERY__MEMORY_LIMIT", "16 MiB")
            .args(["query", "--archive"])
            .arg(&archive)
            .arg(big),
    );
    assert!(
        err.contains("query.memory-limit") && err.contains("16.0 MiB"),
        "{err}"
    );
    // Three billion rows take far longer than 300 ms to count.
    let started = std::time::Instant::now();
    let err = fails(
        rampart()
            .env("RAMPART_QUERY__TIMEOUT", "300ms")
            .args(["query", "--archive"])
            .arg(&archive)
            .arg("SELECT count(*) FROM generate_series(1, 3000000000)"),
    );
    assert!(
        err.contains("query.timeout") && err.contains("300ms"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the query was not stopped"
    );
    // Limits too small to be meant are refused by key.
    let err = fails(
        rampart()
            .env("RAMPART_QUERY__MEMORY_LIMIT", "1 KiB")
            .args(["query", "--archive"])
            .arg(&archive)
            .arg("SELECT 1"),
    );
    assert!(err.contains("query.memory-limit"), "{err}");
}
