//! Retention, legal holds and the access log, through the binary.
//!
//! The generated events are from November 2026 and `events` is kept for one hour here,
//! so by the system clock every events file has expired; the exact expiry boundaries are
//! tested with an injected clock in the archive crate. (Dead letters are partitioned by
//! the time they were received, which is now: they have not expired.)

use crate::*;

/// `events` kept for one hour.
const SHORT: [(&str, &str); 1] = [("RAMPART_RETENTION__EVENTS", "1h")];

/// The hold: one resource's events of the first hour (the data spans two hours, so
/// the second hour's files hold no matching row).
const CUTOFF: &str = "2026-11-01T01:00:00Z";

fn count(archive: &Path, sql: &str) -> u64 {
    query_json(archive, sql)[0]["n"].as_u64().unwrap()
}

/// Parquet files of `events` on disk.
fn data_files(archive: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![archive.join("events")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if e.path().extension().is_some_and(|x| x == "parquet") {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn retention_removes_expired_files_except_those_a_hold_covers() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(
        dir.path(),
        "in.jsonl",
        rampart_gen::GenConfig {
            bad_rate: 0.01,
            ..small(3_000, 11)
        },
    );
    // The held resource and its events, counted from the input itself.
    let events: Vec<serde_json::Value> = input_lines(&g.path)
        .iter()
        .zip(&g.kinds)
        .filter(|(_, k)| matches!(k, rampart_gen::MessageKind::Good))
        .map(|((_, l), _)| serde_json::from_slice(l).unwrap())
        .collect();
    let held = events[0]["resource_id"].as_str().unwrap().to_string();
    let cutoff = chrono::DateTime::parse_from_rfc3339(CUTOFF).unwrap();
    let first_hour = |e: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(e["ts"].as_str().unwrap()).unwrap() < cutoff
    };
    let held_events = events
        .iter()
        .filter(|e| e["resource_id"] == held.as_str() && first_hour(e))
        .count() as u64;
    assert!(held_events > 0);
    let predicate = format!("resource_id = '{held}' AND ts < TIMESTAMP '{CUTOFF}'");
    let archive = dir.path().join("archive");

    // A period below the floor is refused at run time without the named flag.
    let err = fails(
        rampart()
            .envs(SHORT)
            .arg("run")
            .arg("--source")
            .arg(&g.path)
            .arg("--archive")
            .arg(&archive),
    );
    assert!(
        err.contains("retention.events") && err.contains("--allow-short-retention"),
        "{err}"
    );
    ok(rampart()
        .envs(SHORT)
        .arg("run")
        .arg("--allow-short-retention")
        .arg("--source")
        .arg(&g.path)
        .arg("--archive")
        .arg(&archive));
    let attack_rates = count(&archive, "SELECT count(*) AS n FROM attack_rates");
    let dead_letters = count(&archive, "SELECT count(*) AS n FROM dead_letters");

    let hold = |args: &[&str]| {
        let out = ok(rampart()
            .arg("hold")
            .args(args)
            .arg("--archive")
            .arg(&archive));
        String::from_utf8(out.stdout).unwrap()
    };
    let placed = hold(&[
        "add",
        "case-17",
        "--where",
        &predicate,
        "--tables",
        "events",
        "--reason",
        "litigation 17",
    ]);
    assert!(
        placed.contains(&format!("{held_events} rows match")),
        "{placed}"
    );
    let listed = hold(&["list"]);
    assert!(
        listed.contains("case-17") && listed.contains(&held) && listed.contains("litigation 17"),
        "{listed}"
    );

    let apply = |extra: &[&str]| {
        let out = ok(rampart()
            .args(["retention", "apply", "--archive"])
            .arg(&archive)
            .args(extra));
        String::from_utf8(out.stdout).unwrap()
    };
    let files_before = data_files(&archive);
    let dry = apply(&["--dry-run", "--allow-short-retention"]);
    assert!(
        dry.contains("would remove") && dry.contains("held by case-17"),
        "{dry}"
    );
    assert_eq!(
        data_files(&archive),
        files_before,
        "a dry run deletes nothing"
    );

    let floor = apply(&[]);
    assert!(floor.contains("removed 0 files"), "{floor}");
    assert!(floor.contains("below the floor"), "{floor}");

    let applied = apply(&["--allow-short-retention"]);
    assert!(applied.contains("held by case-17"), "{applied}");
    // Every event of the held resource is still there; tables whose period has not
    // ended are untouched.
    let q = |w: &str| {
        count(
            &archive,
            &format!("SELECT count(*) AS n FROM events WHERE {w}"),
        )
    };
    assert_eq!(q(&predicate), held_events);
    assert_eq!(
        q(&format!("ts >= TIMESTAMP '{CUTOFF}'")),
        0,
        "the second hour is gone"
    );
    assert!(q("true") < g.stats.good, "nothing was removed");
    assert_eq!(
        count(&archive, "SELECT count(*) AS n FROM dead_letters"),
        dead_letters
    );
    assert_eq!(
        count(&archive, "SELECT count(*) AS n FROM attack_rates"),
        attack_rates
    );
    assert!(
        data_files(&archive) < files_before,
        "removed files stay on disk"
    );

    // The chain records each removal with its reason and hash.
    let mut removals = 0;
    for m in std::fs::read_dir(archive.join("_rampart/manifests")).unwrap() {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(m.unwrap().path()).unwrap()).unwrap();
        if v["action"] == "retention" {
            for r in v["remove"].as_array().unwrap() {
                assert!(r["reason"].as_str().unwrap().contains("retention of 1h"));
                assert_eq!(r["sha256"].as_str().unwrap().len(), 64);
                removals += 1;
            }
        }
    }
    assert!(removals > 0);

    // Released, the hold keeps nothing.
    let released = hold(&["release", "case-17", "--reason", "case closed"]);
    assert!(released.contains("released"), "{released}");
    assert!(hold(&["list"]).contains("no holds in force"));
    apply(&["--allow-short-retention"]);
    assert_eq!(q("true"), 0);

    // The chain still verifies, and shows the history: holds, releases, removals.
    let out = ok(rampart().args(["verify", "--archive"]).arg(&archive));
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(report.contains("archive intact"), "{report}");
}

#[test]
fn hold_requests_that_cannot_work_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(300, 12));
    let archive = dir.path().join("archive");
    run_pipeline(&g.path, &archive);
    let hold = |args: &[&str]| {
        fails(
            rampart()
                .arg("hold")
                .args(args)
                .arg("--archive")
                .arg(&archive),
        )
    };
    let err = hold(&["add", "bad name", "--where", "true"]);
    assert!(err.contains("not a usable hold name"), "{err}");
    let err = hold(&[
        "add",
        "h",
        "--where",
        "no_such_column = 1",
        "--tables",
        "events",
    ]);
    assert!(
        err.contains("no_such_column") && err.contains("events"),
        "{err}"
    );
    let err = hold(&["add", "h", "--where", "no_such_column = 1"]);
    assert!(err.contains("fits no table"), "{err}");
    let err = hold(&["release", "never-placed"]);
    assert!(err.contains("no hold named `never-placed`"), "{err}");
    ok(rampart()
        .args(["hold", "add", "h", "--where", "true", "--archive"])
        .arg(&archive));
    let err = hold(&["add", "h", "--where", "true"]);
    assert!(err.contains("already in force"), "{err}");
}

#[test]
fn every_query_is_recorded_in_the_access_log() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(500, 13));
    let archive = dir.path().join("archive");
    run_pipeline(&g.path, &archive);
    let sql = "SELECT category, count(*) FROM events GROUP BY category";
    let out = ok(rampart()
        .env("USER", "auditor-7")
        .args(["query", "--format", "json", "--archive"])
        .arg(&archive)
        .arg(sql));
    let returned = String::from_utf8(out.stdout).unwrap().lines().count() as u64;
    fails(
        rampart()
            .env("USER", "auditor-7")
            .args(["query", "--archive"])
            .arg(&archive)
            .arg("DROP TABLE events"),
    );
    let log = query_json(
        &archive,
        "SELECT kind, \"user\", statement, rows, outcome FROM access_log ORDER BY at",
    );
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0]["kind"], "query");
    assert_eq!(log[0]["user"], "auditor-7");
    assert_eq!(log[0]["statement"], sql);
    assert_eq!(log[0]["rows"].as_u64(), Some(returned));
    assert_eq!(log[0]["outcome"], "ok");
    assert_eq!(log[1]["statement"], "DROP TABLE events");
    assert!(log[1]["outcome"].as_str().unwrap().starts_with("refused"));
}

#[test]
fn a_hold_on_partition_columns_is_refused_with_the_alternative() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(300, 14));
    let archive = dir.path().join("archive");
    run_pipeline(&g.path, &archive);
    // Retention evaluates holds per file, where date and hour are not columns.
    let err = fails(
        rampart()
            .args([
                "hold", "add", "h", "--where", "hour = 1", "--tables", "events",
            ])
            .arg("--archive")
            .arg(&archive),
    );
    assert!(
        err.contains("partition columns") && err.contains("ts >="),
        "{err}"
    );
}
