//! `rampart export`: the bundle checks out with coreutils, holds exactly the rows the
//! input itself selects, names real archive manifests with their true hashes, is read by
//! DuckDB, and never writes outside its directory.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use crate::*;

/// Microseconds of RFC 3339 text.
fn micros(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_micros()
}

/// A good input line, parsed here, independently of Rampart.
#[derive(Debug, Clone, PartialEq)]
struct InputEvent {
    line: u64,
    ts: i64,
    resource_id: String,
    category: String,
}

fn input_events(g: &Generated) -> Vec<InputEvent> {
    input_lines(&g.path)
        .into_iter()
        .filter(|(line, _)| matches!(g.kinds[*line as usize - 1], MessageKind::Good))
        .map(|(line, raw)| {
            let v: serde_json::Map<String, Value> = serde_json::from_slice(&raw).unwrap();
            InputEvent {
                line,
                ts: micros(v["ts"].as_str().unwrap()),
                resource_id: v["resource_id"].as_str().unwrap().to_string(),
                category: v["category"].as_str().unwrap().to_string(),
            }
        })
        .collect()
}

/// `rampart export --archive A --from F --to T --out O`, more flags to add.
fn export(archive: &Path, from: &str, to: &str, out: &Path) -> Command {
    let mut c = rampart();
    c.args(["export", "--archive"])
        .arg(archive)
        .args(["--from", from, "--to", to, "--out"])
        .arg(out);
    c
}

fn manifest(bundle: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap()
}

/// Every file under `dir`, relative, with `/`.
fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            assert!(
                !t.is_symlink(),
                "link in the bundle: {}",
                e.path().display()
            );
            if t.is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().to_owned();
                out.insert(rel.to_str().unwrap().replace('\\', "/"));
            }
        }
    }
    out
}

/// `sha256sum -c --strict SHA256SUMS` in the bundle succeeds, and the list covers every
/// file of the bundle but itself, sorted by path.
fn sha256sum_checks_out(bundle: &Path) {
    let out = Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(bundle)
        .output()
        .expect("run sha256sum (coreutils)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sha256sum -c failed in {}:\n{stdout}\n{}",
        bundle.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let sums = std::fs::read_to_string(bundle.join("SHA256SUMS")).unwrap();
    let listed: Vec<&str> = sums
        .lines()
        .map(|l| {
            let (hash, path) = l.split_once("  ").unwrap();
            assert!(
                hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                "{l}"
            );
            path
        })
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "SHA256SUMS is sorted by path");
    let mut expected = files_under(bundle);
    assert!(expected.remove("SHA256SUMS"));
    assert!(expected.contains("README.txt") && expected.contains("manifest.json"));
    assert_eq!(
        listed
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>(),
        expected
    );
    assert_eq!(stdout.lines().count(), listed.len());
}

/// The rows of `data/<table>/*.parquet`, read with the parquet crate, file by file.
fn bundle_batches(bundle: &Path, table: &str) -> Vec<(String, Vec<RecordBatch>)> {
    let dir = bundle.join("data").join(table);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let file = std::fs::File::open(dir.join(&n)).unwrap();
            let batches = ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap()
                .map(|b| b.unwrap())
                .collect();
            (format!("data/{table}/{n}"), batches)
        })
        .collect()
}

/// The `events` rows of a bundle as [`InputEvent`]s, by line.
fn bundle_events(bundle: &Path) -> Vec<InputEvent> {
    let mut out = Vec::new();
    for (_, batches) in bundle_batches(bundle, "events") {
        for b in batches {
            let line = b["source_line"].as_primitive::<Int64Type>();
            let ts = b["ts"].as_primitive::<TimestampMicrosecondType>();
            let rid = b["resource_id"].as_string::<i32>();
            let cat = b["category"].as_string::<i32>();
            for i in 0..b.num_rows() {
                out.push(InputEvent {
                    line: line.value(i) as u64,
                    ts: ts.value(i),
                    resource_id: rid.value(i).to_string(),
                    category: cat.value(i).to_string(),
                });
            }
        }
    }
    out.sort_by_key(|e| e.line);
    out
}

/// `sha256sum FILE`, the hash only.
fn sha256sum(path: &Path) -> String {
    let out = ok(Command::new("sha256sum").arg(path));
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The time column of each archive table, as the schema documentation states it.
fn time_column(table: &str) -> &'static str {
    match table {
        "events" => "ts",
        "dead_letters" => "received_at",
        "attack_rates" | "policy_hits" => "window_start",
        "violations" => "changed_at",
        other => panic!("no time column known for {other}"),
    }
}

/// The archive manifests, read from their files here: (sequence, parsed, sha256sum).
fn archive_manifests(archive: &Path) -> Vec<(u64, Value, String)> {
    let dir = archive.join("_rampart/manifests");
    let mut out: Vec<(u64, Value, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let seq: u64 = p.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (seq, v, sha256sum(&p))
        })
        .collect();
    out.sort_by_key(|m| m.0);
    out
}

/// Which manifests added a file (of `tables`) holding a row with its time column in
/// `[from, to)` and satisfying `keep`: computed by reading the archive's files here.
fn contributing_manifests(
    archive: &Path,
    tables: &[&str],
    from: i64,
    to: i64,
    keep: impl Fn(&str, &RecordBatch, usize) -> bool,
) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for (seq, m, _) in archive_manifests(archive) {
        for add in m["add"].as_array().into_iter().flatten() {
            let table = add["table"].as_str().unwrap();
            if !tables.contains(&table) {
                continue;
            }
            let file = std::fs::File::open(archive.join(add["path"].as_str().unwrap())).unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap();
            for b in reader {
                let b = b.unwrap();
                let t = b[time_column(table)].as_primitive::<TimestampMicrosecondType>();
                if (0..b.num_rows()).any(|i| (from..to).contains(&t.value(i)) && keep(table, &b, i))
                {
                    out.insert(seq);
                }
            }
        }
    }
    out
}

/// Checks the manifest's provenance against the archive's own files: the head, and the
/// source manifests (real, right hashes, sorted, exactly `expected`).
fn provenance_is_real(bundle: &Value, archive: &Path, expected: &BTreeSet<u64>) {
    let manifests = archive_manifests(archive);
    // The head at the time of export; since then only access-log records were added
    // (the export's own among them).
    let head_seq = bundle["archive"]["head_sequence"].as_u64().unwrap();
    let (_, _, head_sha) = manifests.iter().find(|m| m.0 == head_seq).unwrap();
    assert_eq!(bundle["archive"]["head_sha256"], head_sha.as_str());
    for (seq, m, _) in manifests.iter().filter(|m| m.0 > head_seq) {
        let note = m["note"].as_str().unwrap_or_default();
        assert!(
            note.starts_with("access log"),
            "manifest {seq} after the head: {m}"
        );
    }
    let by_seq: BTreeMap<u64, &String> = manifests.iter().map(|(s, _, h)| (*s, h)).collect();
    let sources = bundle["source_manifests"].as_array().unwrap();
    let seqs: Vec<u64> = sources
        .iter()
        .map(|s| s["sequence"].as_u64().unwrap())
        .collect();
    for s in sources {
        let seq = s["sequence"].as_u64().unwrap();
        assert_eq!(
            s["sha256"].as_str().unwrap(),
            by_seq[&seq].as_str(),
            "hash of manifest {seq}"
        );
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
    assert_eq!(seqs.into_iter().collect::<BTreeSet<_>>(), *expected);
}

/// The `files` of manifest.json agree with the files on disk and with `rows_total`.
fn files_agree(bundle: &Path, m: &Value) {
    let mut total = 0;
    for f in m["files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        let on_disk = bundle.join(path);
        assert_eq!(
            f["bytes"].as_u64().unwrap(),
            std::fs::metadata(&on_disk).unwrap().len()
        );
        assert_eq!(f["sha256"].as_str().unwrap(), sha256sum(&on_disk));
        let table = f["table"].as_str().unwrap();
        assert!(path.starts_with(&format!("data/{table}/part-")), "{path}");
        let rows: usize = bundle_batches(bundle, table)
            .into_iter()
            .filter(|(p, _)| p == path)
            .flat_map(|(_, b)| b)
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(f["rows"].as_u64().unwrap(), rows as u64, "{path}");
        total += rows as u64;
    }
    assert_eq!(m["rows_total"], total);
}

#[test]
fn a_bundle_holds_the_rows_the_input_selects_and_checks_out() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(
        dir.path(),
        "in.jsonl",
        rampart_gen::GenConfig {
            span: std::time::Duration::from_secs(6 * 3600),
            bad_rate: 0.01,
            ..small(4_000, 3)
        },
    );
    let archive = dir.path().join("archive");
    run_pipeline(&g.path, &archive);
    let input = input_events(&g);

    // A range that cuts partitions in the middle, every default table.
    let (from, to) = ("2026-11-01T01:30:00Z", "2026-11-01T04:00:00Z");
    let bundle = dir.path().join("a");
    let out = ok(&mut export(&archive, from, to, &bundle));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    sha256sum_checks_out(&bundle);
    let m = manifest(&bundle);
    assert_eq!(m["format"], "rampart-export/1");
    assert!(m["tool"].as_str().unwrap().starts_with("rampart "));
    assert!(chrono::DateTime::parse_from_rfc3339(m["exported_at"].as_str().unwrap()).is_ok());
    assert_eq!(micros(m["query"]["from"].as_str().unwrap()), micros(from));
    assert_eq!(micros(m["query"]["to"].as_str().unwrap()), micros(to));
    assert_eq!(m["query"]["where"], Value::Null);
    assert_eq!(
        m["query"]["tables"],
        serde_json::json!([
            "events",
            "dead_letters",
            "attack_rates",
            "policy_hits",
            "violations"
        ])
    );
    files_agree(&bundle, &m);
    let (f, t) = (micros(from), micros(to));
    let expected: Vec<InputEvent> = input
        .iter()
        .filter(|e| (f..t).contains(&e.ts))
        .cloned()
        .collect();
    assert!(expected.len() > 100, "{}", expected.len());
    assert_eq!(bundle_events(&bundle), expected);
    for table in ["attack_rates", "policy_hits", "violations"] {
        // The derived tables have no independent truth here: they agree with the archive.
        let n = query_json(
            &archive,
            &format!(
                "SELECT count(*) AS n FROM {table} WHERE {} >= '{from}' AND {} < '{to}'",
                time_column(table),
                time_column(table)
            ),
        );
        let rows: usize = bundle_batches(&bundle, table)
            .into_iter()
            .flat_map(|(_, b)| b)
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(n[0]["n"], rows as u64, "{table}");
    }
    let tables = [
        "events",
        "dead_letters",
        "attack_rates",
        "policy_hits",
        "violations",
    ];
    provenance_is_real(
        &m,
        &archive,
        &contributing_manifests(&archive, &tables, f, t, |_, _, _| true),
    );
    assert!(!m["source_manifests"].as_array().unwrap().is_empty());
    let readme = std::fs::read_to_string(bundle.join("README.txt")).unwrap();
    assert!(
        readme.contains("sha256sum -c SHA256SUMS")
            && readme.contains("read_parquet('data/events/*.parquet')")
            && readme.contains(m["query"]["from"].as_str().unwrap())
            && readme.contains("UTC"),
        "{readme}"
    );
    let real = std::fs::canonicalize(&bundle).unwrap();
    assert!(
        stdout.contains(&format!(
            "exported {} rows to {}",
            m["rows_total"],
            real.display()
        )) && stdout.contains(&format!("cd {} && sha256sum -c SHA256SUMS", real.display())),
        "{stdout}"
    );

    // DuckDB reads the bundle as its README says, from inside it.
    if let Ok(python) = std::env::var("RAMPART_TEST_PYTHON") {
        let script =
            rampart_core::package_dir(env!("CARGO_MANIFEST_DIR")).join("tests/it/read_bundle.py");
        let out = ok(Command::new(python).arg(&script).current_dir(&bundle));
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["ts_type"], "TIMESTAMP WITH TIME ZONE");
        let lines: Vec<u64> = expected.iter().map(|e| e.line).collect();
        assert_eq!(r["lines"], serde_json::json!(lines));
        let ts: Vec<i64> = expected.iter().map(|e| e.ts).collect();
        assert_eq!(r["ts_us"], serde_json::json!(ts));
    } else {
        assert!(
            std::env::var_os("RAMPART_REQUIRE_SERVICES").is_none(),
            "RAMPART_TEST_PYTHON is not set: run the suite with scripts/test.sh"
        );
    }

    // One table, a predicate, small files: the rows roll over several part files.
    let rid = input[0].resource_id.clone();
    let predicate = format!("category = 'malware' OR resource_id = '{rid}'");
    let bundle = dir.path().join("b");
    ok(
        export(&archive, "2026-11-01", "2026-11-01T06:00:00Z", &bundle)
            .args(["--tables", "events", "--rows-per-file", "40", "--where"])
            .arg(&predicate),
    );
    sha256sum_checks_out(&bundle);
    let m = manifest(&bundle);
    assert_eq!(m["query"]["where"], predicate.as_str());
    assert_eq!(m["query"]["tables"], serde_json::json!(["events"]));
    files_agree(&bundle, &m);
    let (f, t) = (
        micros("2026-11-01T00:00:00Z"),
        micros("2026-11-01T06:00:00Z"),
    );
    let selected = |e: &InputEvent| {
        (f..t).contains(&e.ts) && (e.category == "malware" || e.resource_id == rid)
    };
    let expected: Vec<InputEvent> = input.iter().filter(|e| selected(e)).cloned().collect();
    assert!(expected.len() > 80, "{}", expected.len());
    assert_eq!(bundle_events(&bundle), expected);
    let parts = bundle_batches(&bundle, "events");
    assert_eq!(parts.len(), expected.len().div_ceil(40), "{stdout}");
    for (i, (path, batches)) in parts.iter().enumerate() {
        assert_eq!(path, &format!("data/events/part-{i:05}.parquet"));
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if i + 1 < parts.len() {
            assert_eq!(rows, 40, "{path}");
        }
    }
    let keep = |_: &str, b: &RecordBatch, i: usize| {
        b["category"].as_string::<i32>().value(i) == "malware"
            || b["resource_id"].as_string::<i32>().value(i) == rid
    };
    provenance_is_real(
        &m,
        &archive,
        &contributing_manifests(&archive, &["events"], f, t, keep),
    );

    // Default tables with a predicate on `category`: the tables without it are skipped
    // and say so.
    let bundle = dir.path().join("c");
    let out = ok(export(&archive, from, to, &bundle).args(["--where", "category = 'malware'"]));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("not exported: dead_letters (it has no column `category`")
            && stdout.contains("not exported: violations"),
        "{stdout}"
    );
    sha256sum_checks_out(&bundle);
    let m = manifest(&bundle);
    assert_eq!(
        m["query"]["tables"],
        serde_json::json!(["events", "attack_rates", "policy_hits"])
    );
    assert!(!bundle.join("data/dead_letters").exists());
    let (f, t) = (micros(from), micros(to));
    let expected: Vec<InputEvent> = input
        .iter()
        .filter(|e| (f..t).contains(&e.ts) && e.category == "malware")
        .cloned()
        .collect();
    assert_eq!(bundle_events(&bundle), expected);
    let readme = std::fs::read_to_string(bundle.join("README.txt")).unwrap();
    assert!(
        readme.contains("dead_letters (it has no column `category`"),
        "{readme}"
    );

    // Dead letters are partitioned by receive time: all of them, with their raw bytes.
    let bundle = dir.path().join("d");
    ok(export(&archive, "2000-01-01", "2100-01-01", &bundle).args(["--tables", "dead_letters"]));
    sha256sum_checks_out(&bundle);
    let lines: BTreeMap<u64, Vec<u8>> = input_lines(&g.path).into_iter().collect();
    let mut got = BTreeMap::new();
    for (_, batches) in bundle_batches(&bundle, "dead_letters") {
        for b in batches {
            let line = b["source_line"].as_primitive::<Int64Type>();
            let raw = b["raw"].as_binary::<i32>();
            for i in 0..b.num_rows() {
                got.insert(line.value(i) as u64, raw.value(i).to_vec());
            }
        }
    }
    let expected: BTreeMap<u64, Vec<u8>> = g
        .kinds
        .iter()
        .enumerate()
        .filter(|(_, k)| matches!(k, MessageKind::Bad(_)))
        .map(|(i, _)| (i as u64 + 1, lines[&(i as u64 + 1)].clone()))
        .collect();
    assert_eq!(got.len() as u64, g.stats.bad_total());
    assert_eq!(got, expected);
}

#[test]
fn the_bundle_never_writes_outside_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(500, 8));
    let archive = dir.path().join("archive");
    run_pipeline(&g.path, &archive);
    let (from, to) = ("2026-11-01", "2026-11-02");

    // A directory that holds something is refused and left as it was.
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("notes.txt"), "mine").unwrap();
    let err = fails(&mut export(&archive, from, to, &full));
    assert!(
        err.contains("not empty") && err.contains("notes.txt"),
        "{err}"
    );
    assert_eq!(
        files_under(&full),
        BTreeSet::from(["notes.txt".to_string()])
    );

    // `data` planted as a link to elsewhere: refused, nothing written there.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let planted = dir.path().join("planted");
    std::fs::create_dir(&planted).unwrap();
    std::os::unix::fs::symlink(&elsewhere, planted.join("data")).unwrap();
    let err = fails(&mut export(&archive, from, to, &planted));
    assert!(
        err.contains("not empty") && err.contains("data (a symbolic link)"),
        "{err}"
    );
    assert!(files_under(&elsewhere).is_empty());

    // The out directory given as a link: refused.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let err = fails(&mut export(&archive, from, to, &link));
    assert!(err.contains("symbolic link"), "{err}");
    assert!(files_under(&elsewhere).is_empty());

    // `..` is resolved on the real file system: `sub/../b` is `b`, and `sub` stays empty.
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let out = ok(&mut export(&archive, from, to, &sub.join("../b")));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let real_b = std::fs::canonicalize(dir.path()).unwrap().join("b");
    assert!(stdout.contains(&real_b.display().to_string()), "{stdout}");
    sha256sum_checks_out(&real_b);
    assert!(files_under(&sub).is_empty());
    // `..` through a link leaves the link's target, as the kernel does: the bundle lands
    // next to `elsewhere`, not next to the link, and the summary says where.
    std::fs::create_dir(elsewhere.join("deep")).unwrap();
    let deep_link = sub.join("deep");
    std::os::unix::fs::symlink(elsewhere.join("deep"), &deep_link).unwrap();
    let out = ok(&mut export(&archive, from, to, &deep_link.join("../c")));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let real_c = std::fs::canonicalize(&elsewhere).unwrap().join("c");
    assert!(
        stdout.contains(&format!("to {}\n", real_c.display())),
        "{stdout}"
    );
    sha256sum_checks_out(&real_c);
    // Going up from a directory that does not exist is refused before anything is made.
    let err = fails(&mut export(
        &archive,
        from,
        to,
        &dir.path().join("nope/../d"),
    ));
    assert!(err.contains("does not exist"), "{err}");
    assert!(!dir.path().join("nope").exists() && !dir.path().join("d").exists());

    // A file:// URL is a directory too.
    let url_dir = dir.path().join("by-url");
    let url = format!("file://{}", url_dir.display());
    let mut cmd = rampart();
    cmd.args(["export", "--archive"])
        .arg(&archive)
        .args(["--from", from, "--to", to, "--out", &url]);
    ok(&mut cmd);
    sha256sum_checks_out(&url_dir);
}

#[test]
fn bad_requests_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(300, 4));
    let archive = dir.path().join("archive");
    run_pipeline(&g.path, &archive);
    let out = dir.path().join("out");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--from", "2026-11-02", "--to", "2026-11-01"],
            vec!["is not before --to"],
        ),
        (
            vec!["--from", "2026-11-01", "--to", "2026-11-01"],
            vec!["is not before --to"],
        ),
        (
            vec!["--from", "yesterday", "--to", "2026-11-01"],
            vec!["--from `yesterday` is not a time", "RFC 3339"],
        ),
        (
            vec!["--from", "2026-11-01", "--to", "2026-11-01 12:00"],
            vec!["--to `2026-11-01 12:00` is not a time"],
        ),
        (
            vec![
                "--from",
                "2026-11-01",
                "--to",
                "2026-11-02",
                "--tables",
                "events,evnts",
            ],
            vec!["unknown table `evnts`", "dead_letters"],
        ),
        (
            vec![
                "--from",
                "2026-11-01",
                "--to",
                "2026-11-02",
                "--where",
                "category = ",
            ],
            vec!["--where `category = ` cannot be evaluated"],
        ),
        (
            vec![
                "--from",
                "2026-11-01",
                "--to",
                "2026-11-02",
                "--where",
                "dst_port + 1",
            ],
            vec!["not a condition"],
        ),
        (
            vec![
                "--from",
                "2026-11-01",
                "--to",
                "2026-11-02",
                "--tables",
                "events,dead_letters",
                "--where",
                "category = 'malware'",
            ],
            vec![
                "column `category`",
                "table `dead_letters` does not have",
                "reason_code",
            ],
        ),
        (
            vec![
                "--from",
                "2026-11-01",
                "--to",
                "2026-11-02",
                "--where",
                "categry = 'malware'",
            ],
            vec![
                "fits none of the selected tables",
                "events has no column `categry`",
            ],
        ),
        (
            vec![
                "--from",
                "2026-11-01",
                "--to",
                "2026-11-02",
                "--where",
                "resource_id IN (SELECT resource_id FROM events)",
            ],
            vec!["cannot be evaluated on table `events`"],
        ),
    ];
    for (flags, needles) in cases {
        let err = fails(
            rampart()
                .args(["export", "--archive"])
                .arg(&archive)
                .args(&flags)
                .arg("--out")
                .arg(&out),
        );
        for n in needles {
            assert!(err.contains(n), "{flags:?}: `{n}` not in: {err}");
        }
        assert!(!out.exists(), "{flags:?} created the bundle directory");
    }
    // A destination scheme that is not a store.
    let err = fails(
        rampart()
            .args(["export", "--archive"])
            .arg(&archive)
            .args(["--from", "2026-11-01", "--to", "2026-11-02"])
            .args(["--out", "ftp://example.com/x"]),
    );
    assert!(err.contains("not a supported destination"), "{err}");
}

#[test]
fn an_altered_archive_file_is_refused_and_the_partial_bundle_named() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(500, 6));
    let archive = dir.path().join("archive");
    run_pipeline(&g.path, &archive);
    let (_, m, _) = archive_manifests(&archive)
        .into_iter()
        .find(|(_, m, _)| {
            m["add"]
                .as_array()
                .is_some_and(|a| a.iter().any(|f| f["table"] == "events"))
        })
        .unwrap();
    let victim = m["add"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["table"] == "events")
        .unwrap()["path"]
        .as_str()
        .unwrap()
        .to_string();
    // Same length, one byte changed in the middle.
    let path = archive.join(&victim);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let out = dir.path().join("out");
    let err = fails(&mut export(&archive, "2026-11-01", "2026-11-02", &out));
    assert!(
        err.contains(&victim)
            && err.contains("does not match manifest")
            && err.contains("rampart verify")
            && err.contains("incomplete"),
        "{err}"
    );
    assert!(!out.join("SHA256SUMS").exists());
}

#[test]
fn a_bundle_can_be_written_to_s3() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(800, 12));
    let archive = dir.path().join("archive");
    run_pipeline(&g.path, &archive);
    let bucket = std::env::var("RAMPART_TEST_S3_BUCKET").unwrap();
    let prefix = format!(
        "export-{}",
        dir.path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_start_matches('.')
    );
    let url = format!("s3://{bucket}/{prefix}");
    let env = [
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
    ];
    let (from, to) = ("2026-11-01T00:30:00Z", "2026-11-01T01:30:00Z");
    let out = ok(rampart()
        .envs(env)
        .args(["export", "--archive"])
        .arg(&archive)
        .args(["--from", from, "--to", to, "--out", &url]));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains(&format!("download {url}")), "{stdout}");
    // A second export to the same prefix is refused: it is not empty.
    let err = fails(
        rampart()
            .envs(env)
            .args(["export", "--archive"])
            .arg(&archive)
            .args(["--from", from, "--to", to, "--out", &url]),
    );
    assert!(err.contains("not empty"), "{err}");

    // Download it and check it as a recipient would.
    let local = dir.path().join("downloaded");
    let location = rampart_core::store::open(
        &url,
        [
            ("aws_endpoint", endpoint.clone()),
            ("aws_allow_http", "true".into()),
            ("aws_virtual_hosted_style_request", "false".into()),
        ],
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use futures::TryStreamExt;
        use object_store::ObjectStoreExt;
        let listed: Vec<_> = location
            .store
            .list(Some(&location.prefix))
            .try_collect()
            .await
            .unwrap();
        assert!(listed.len() >= 4, "{listed:?}");
        for meta in listed {
            let full = meta.location.to_string();
            let rel = full.strip_prefix(&format!("{prefix}/")).unwrap();
            let bytes = location
                .store
                .get(&meta.location)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let target = local.join(rel);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(target, bytes).unwrap();
        }
    });
    sha256sum_checks_out(&local);
    let m = manifest(&local);
    files_agree(&local, &m);
    let input = input_events(&g);
    let (f, t) = (micros(from), micros(to));
    let expected: Vec<InputEvent> = input
        .iter()
        .filter(|e| (f..t).contains(&e.ts))
        .cloned()
        .collect();
    assert_eq!(bundle_events(&local), expected);
}

#[test]
fn export_help_has_examples() {
    let out = ok(rampart().args(["export", "--help"]));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Examples:") && text.contains("sha256sum -c SHA256SUMS"),
        "{text}"
    );
}

#[test]
fn an_export_checks_out_with_verify_bundle_and_is_in_the_access_log() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(2_000, 31));
    let archive = dir.path().join("archive");
    run_pipeline(&g.path, &archive);
    let bundle = dir.path().join("bundle");
    ok(export(&archive, "2026-11-01", "2026-11-02", &bundle)
        .env("USER", "counsel-3")
        .args(["--where", "category = 'malware'", "--tables", "events"]));
    // The exporter and the checker were written apart, to one format: they agree.
    let out = ok(rampart().args(["verify", "--bundle"]).arg(&bundle));
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(report.contains("intact"), "{report}");

    let exported = manifest(&bundle)["rows_total"].as_u64().unwrap();
    let (from, to) = (
        micros("2026-11-01T00:00:00Z"),
        micros("2026-11-02T00:00:00Z"),
    );
    let malware = input_events(&g)
        .iter()
        .filter(|e| e.category == "malware" && e.ts >= from && e.ts < to)
        .count() as u64;
    assert!(malware > 0);
    assert_eq!(exported, malware);
    let log = query_json(
        &archive,
        "SELECT \"user\", statement, rows, outcome FROM access_log WHERE kind = 'export' ORDER BY at",
    );
    // Recorded before anything was written, then with its outcome.
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0]["outcome"], "started");
    assert_eq!(log[0]["statement"], log[1]["statement"]);
    assert_eq!(log[1]["user"], "counsel-3");
    assert_eq!(log[1]["rows"].as_u64(), Some(exported));
    assert_eq!(log[1]["outcome"], "ok");
    let log = &log[1..];
    let statement = log[0]["statement"].as_str().unwrap();
    assert!(
        statement.contains("category = 'malware'") && statement.contains("--out"),
        "{statement}"
    );
}
