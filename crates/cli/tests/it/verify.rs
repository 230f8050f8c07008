//! `rampart verify`: an archive built by real runs is damaged by hand, one way at a time,
//! and each damage is reported at the path that was damaged; the expected paths and
//! hashes come from the test's own reading of the files, never from rampart. Export
//! bundles are made by hand to the `rampart-export/1` format and checked by
//! `sha256sum -c` as well.

use std::process::Command;

use sha2::{Digest, Sha256};

use crate::*;

const MANIFESTS: &str = "_rampart/manifests";

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn manifest(archive: &Path, sequence: u64) -> PathBuf {
    archive.join(format!("{MANIFESTS}/{sequence:020}.json"))
}

fn manifest_rel(sequence: u64) -> String {
    format!("{MANIFESTS}/{sequence:020}.json")
}

/// An archive written by three runs over three inputs: three manifests.
fn archive_of_three_runs() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    for seed in 1..=3u64 {
        let g = generate(
            dir.path(),
            &format!("in-{seed}.jsonl"),
            rampart_gen::GenConfig {
                bad_rate: 0.01,
                ..small(1_500, 70 + seed)
            },
        );
        run_pipeline(&g.path, &archive);
    }
    let manifests = std::fs::read_dir(archive.join(MANIFESTS)).unwrap().count();
    assert_eq!(manifests, 3, "one commit per run");
    (dir, archive)
}

/// Every data file on disk, relative to the archive, by walking the folders.
fn data_files(archive: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![archive.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if !p.ends_with("_rampart") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let rel = p.strip_prefix(archive).unwrap().to_string_lossy();
                out.push(rel.into_owned());
            }
        }
    }
    out.sort();
    out
}

/// The largest `events` data file: big enough that its middle byte is column data.
fn largest_events_file(archive: &Path) -> String {
    data_files(archive)
        .into_iter()
        .filter(|p| p.starts_with("events/"))
        .max_by_key(|p| std::fs::metadata(archive.join(p)).unwrap().len())
        .unwrap()
}

/// `rampart verify` with `args` and `env`: (exit code, stdout).
fn verify_env<const N: usize>(args: &[&str], env: [(&str, &str); N]) -> (i32, String) {
    let out = rampart()
        .envs(env)
        .arg("verify")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "exit {code}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, stdout)
}

fn verify_archive(archive: &Path) -> (i32, String) {
    verify_env(&["--archive", archive.to_str().unwrap()], [])
}

/// Whether the text report names `path` with `kind`: a line `  <kind>   <path>`.
fn reported(report: &str, kind: &str, path: &str) -> bool {
    report.lines().any(|l| {
        l.trim_start()
            .strip_prefix(kind)
            .is_some_and(|rest| rest.starts_with(' ') && rest.trim() == path)
    })
}

/// The number of problems the verdict line gives.
fn problems(report: &str) -> usize {
    let last = report.lines().last().unwrap_or_default();
    if last == "archive intact" || last == "bundle intact" {
        return 0;
    }
    last.rsplit(": ")
        .next()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no verdict on the last line:\n{report}"))
}

#[test]
fn an_untouched_archive_is_intact_and_reports_its_head() {
    let (_dir, archive) = archive_of_three_runs();
    let (code, report) = verify_archive(&archive);
    assert_eq!(code, 0, "{report}");
    assert!(report.ends_with("archive intact\n"), "{report}");
    let head = sha256(&std::fs::read(manifest(&archive, 3)).unwrap());
    assert!(
        report.contains(&format!(
            "head: manifest 3 ({}) sha256 {head}",
            manifest_rel(3)
        )),
        "{report}"
    );

    // JSON: the counts agree with the files on disk.
    let (code, json) = verify_env(
        &["--archive", archive.to_str().unwrap(), "--format", "json"],
        [],
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["intact"], true);
    assert_eq!(v["counts"]["manifests"], 3);
    assert_eq!(v["counts"]["append"], 3);
    assert_eq!(v["counts"]["files"], data_files(&archive).len());
    assert_eq!(v["head"]["sha256"], head.as_str());

    // The head recorded now passes; a hash no manifest has fails.
    let (code, report) = verify_env(
        &[
            "--archive",
            archive.to_str().unwrap(),
            "--expect-head",
            &head,
        ],
        [],
    );
    assert_eq!(code, 0, "{report}");
    let wrong = sha256(b"not a manifest");
    let (code, report) = verify_env(
        &[
            "--archive",
            archive.to_str().unwrap(),
            "--expect-head",
            &wrong,
        ],
        [],
    );
    assert_eq!(code, 1, "{report}");
    assert!(
        reported(&report, "head-mismatch", &manifest_rel(3)),
        "{report}"
    );
    assert!(report.contains(&wrong), "{report}");
    let err = fails(rampart().args([
        "verify",
        "--archive",
        archive.to_str().unwrap(),
        "--expect-head",
        "abc",
    ]));
    assert!(err.contains("not a SHA-256"), "{err}");
}

#[test]
fn a_flipped_byte_in_a_data_file_is_reported_with_both_hashes() {
    let (_dir, archive) = archive_of_three_runs();
    let victim = largest_events_file(&archive);
    let mut bytes = std::fs::read(archive.join(&victim)).unwrap();
    let original = sha256(&bytes);
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(archive.join(&victim), &bytes).unwrap();
    let (code, report) = verify_archive(&archive);
    assert_eq!(code, 1, "{report}");
    assert!(reported(&report, "altered", &victim), "{report}");
    assert!(
        report.contains(&sha256(&bytes)) && report.contains(&original),
        "{report}"
    );
    assert_eq!(problems(&report), 1, "{report}");
}

#[test]
fn a_deleted_data_file_is_reported_missing() {
    let (_dir, archive) = archive_of_three_runs();
    let victim = data_files(&archive)
        .into_iter()
        .find(|p| p.starts_with("policy_hits/"))
        .unwrap();
    std::fs::remove_file(archive.join(&victim)).unwrap();
    let (code, report) = verify_archive(&archive);
    assert_eq!(code, 1, "{report}");
    assert!(reported(&report, "missing", &victim), "{report}");
    assert_eq!(problems(&report), 1, "{report}");
}

#[test]
fn an_edited_middle_manifest_is_reported_altered_at_its_path() {
    let (_dir, archive) = archive_of_three_runs();
    let path = manifest(&archive, 2);
    let text = std::fs::read_to_string(&path).unwrap();
    let original_hash = sha256(text.as_bytes());
    // Raise the first row count by one, leaving every other byte as it was.
    let at = text.find("\"rows\": ").unwrap() + "\"rows\": ".len();
    let end = at + text[at..].find(|c: char| !c.is_ascii_digit()).unwrap();
    let rows: u64 = text[at..end].parse().unwrap();
    let edited = format!("{}{}{}", &text[..at], rows + 1, &text[end..]);
    let v: serde_json::Value = serde_json::from_str(&edited).unwrap();
    assert_eq!(
        v["add"][0]["rows"],
        rows + 1,
        "the edit hit the first file's rows"
    );
    let file = v["add"][0]["path"].as_str().unwrap().to_string();
    std::fs::write(&path, &edited).unwrap();

    let (code, report) = verify_archive(&archive);
    assert_eq!(code, 1, "{report}");
    assert!(
        reported(&report, "altered-manifest", &manifest_rel(2)),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "manifest 2 was altered (its SHA-256 is {}; manifest 3 records {original_hash})",
            sha256(edited.as_bytes())
        )),
        "{report}"
    );
    // The file itself is untouched, so its footer contradicts the edited count.
    assert!(reported(&report, "rows-mismatch", &file), "{report}");
    assert_eq!(problems(&report), 2, "{report}");
}

#[test]
fn a_removed_middle_manifest_is_reported_missing_and_its_files_extra() {
    let (_dir, archive) = archive_of_three_runs();
    let path = manifest(&archive, 2);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let added: Vec<String> = v["add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    assert!(!added.is_empty());
    std::fs::remove_file(&path).unwrap();

    let (code, report) = verify_env(
        &["--archive", archive.to_str().unwrap()],
        [("RAMPART_ARCHIVE__ORPHAN_GRACE", "0s")],
    );
    assert_eq!(code, 1, "{report}");
    assert!(
        reported(&report, "missing-manifest", &manifest_rel(2)),
        "{report}"
    );
    for f in &added {
        assert!(reported(&report, "extra", f), "{f}:\n{report}");
    }
    assert_eq!(problems(&report), 1 + added.len(), "{report}");
}

#[test]
fn an_extra_data_file_is_a_problem_once_older_than_the_grace_period() {
    let (_dir, archive) = archive_of_three_runs();
    let source = largest_events_file(&archive);
    let extra = format!(
        "{}/part-put-there-by-hand.parquet",
        Path::new(&source).parent().unwrap().to_str().unwrap()
    );
    std::fs::copy(archive.join(&source), archive.join(&extra)).unwrap();

    // Just written: within the default hour of grace, a running writer may commit it.
    let (code, report) = verify_archive(&archive);
    assert_eq!(code, 0, "{report}");
    assert!(reported(&report, "recent-extra", &extra), "{report}");
    // No grace: a problem.
    let (code, report) = verify_env(
        &["--archive", archive.to_str().unwrap()],
        [("RAMPART_ARCHIVE__ORPHAN_GRACE", "0s")],
    );
    assert_eq!(code, 1, "{report}");
    assert!(reported(&report, "extra", &extra), "{report}");
    assert_eq!(problems(&report), 1, "{report}");
    // Two hours old: a problem under the default grace too.
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(archive.join(&extra))
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    let (code, report) = verify_archive(&archive);
    assert_eq!(code, 1, "{report}");
    assert!(reported(&report, "extra", &extra), "{report}");
}

#[test]
fn an_edit_of_the_head_is_found_against_the_recorded_head() {
    let (_dir, archive) = archive_of_three_runs();
    let path = manifest(&archive, 3);
    let text = std::fs::read_to_string(&path).unwrap();
    let recorded = sha256(text.as_bytes());
    // A change no file contradicts: who committed it.
    let edited = text.replacen("\"tool\": \"rampart ", "\"tool\": \"rampart-forged ", 1);
    assert_ne!(edited, text);
    std::fs::write(&path, &edited).unwrap();

    let (code, report) = verify_archive(&archive);
    assert_eq!(
        code, 0,
        "without a recorded head nothing can tell:\n{report}"
    );
    let (code, report) = verify_env(
        &[
            "--archive",
            archive.to_str().unwrap(),
            "--expect-head",
            &recorded,
        ],
        [],
    );
    assert_eq!(code, 1, "{report}");
    assert!(
        reported(&report, "head-mismatch", &manifest_rel(3)),
        "{report}"
    );
}

#[test]
fn a_missing_local_archive_is_an_error_not_an_empty_archive() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(
        rampart()
            .args(["verify", "--archive"])
            .arg(dir.path().join("no-such-archive")),
    );
    assert!(err.contains("no archive at"), "{err}");
    assert!(!dir.path().join("no-such-archive").exists());
}

#[test]
fn on_s3_an_altered_file_is_found() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(2_000, 77));
    let bucket = std::env::var("RAMPART_TEST_S3_BUCKET").unwrap();
    let prefix = format!(
        "verify-{}",
        dir.path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_start_matches('.')
    );
    let options = [
        ("aws_endpoint", endpoint.clone()),
        ("aws_allow_http", "true".to_string()),
        ("aws_virtual_hosted_style_request", "false".to_string()),
        ("aws_region", "us-east-1".to_string()),
    ];
    let config = dir.path().join("s3.toml");
    let mut toml = format!("[archive]\nurl = \"s3://{bucket}/{prefix}\"\n[archive.options]\n");
    for (k, v) in &options {
        toml.push_str(&format!("{k} = \"{v}\"\n"));
    }
    std::fs::write(&config, toml).unwrap();
    ok(rampart()
        .args(["run", "--config"])
        .arg(&config)
        .arg("--source")
        .arg(&g.path));
    let config_arg = config.to_str().unwrap();
    let (code, report) = verify_env(&["--config", config_arg], []);
    assert_eq!(code, 0, "{report}");

    // Flip a byte of one stored events file through the S3 API.
    let location = rampart_core::store::open(&format!("s3://{bucket}/{prefix}"), options).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let victim = rt.block_on(async {
        use object_store::ObjectStoreExt;
        let read = |path: String| {
            let location = &location;
            async move {
                location
                    .store
                    .get(&location.child(&path))
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap()
                    .to_vec()
            }
        };
        let first: serde_json::Value =
            serde_json::from_slice(&read(manifest_rel(1)).await).unwrap();
        let victim = first["add"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_string())
            .find(|p| p.starts_with("events/"))
            .unwrap();
        let mut bytes = read(victim.clone()).await;
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        location
            .store
            .put(&location.child(&victim), bytes.into())
            .await
            .unwrap();
        victim
    });
    let (code, report) = verify_env(&["--config", config_arg], []);
    assert_eq!(code, 1, "{report}");
    assert!(reported(&report, "altered", &victim), "{report}");
    assert_eq!(problems(&report), 1, "{report}");
}

/// A Parquet file of `rows` rows, written with arrow/parquet directly.
fn parquet_file(path: &Path, rows: i64) {
    use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let n: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows));
    let s: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..rows).map(|i| format!("row {i}")),
    ));
    let batch = RecordBatch::try_from_iter([("n", n), ("s", s)]).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

use std::sync::Arc;

/// Data files of the hand-made bundle: (path, table, rows).
const BUNDLE_FILES: [(&str, &str, i64); 3] = [
    ("data/dead_letters/part-00000.parquet", "dead_letters", 7),
    ("data/events/part-00000.parquet", "events", 500),
    ("data/events/part-00001.parquet", "events", 123),
];

/// Writes a `rampart-export/1` bundle into `dir` by hand, to the format's text.
fn make_bundle(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut files = Vec::new();
    for (path, table, rows) in BUNDLE_FILES {
        parquet_file(&dir.join(path), rows);
        let bytes = std::fs::read(dir.join(path)).unwrap();
        files.push(serde_json::json!({
            "path": path, "table": table, "rows": rows,
            "bytes": bytes.len(), "sha256": sha256(&bytes),
        }));
    }
    let manifest = serde_json::json!({
        "format": "rampart-export/1",
        "exported_at": "2026-11-28T10:00:00Z",
        "tool": "rampart 0.1.0",
        "user": "auditor",
        "query": {
            "from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z",
            "where": "category = 'auth'", "tables": ["events", "dead_letters"],
        },
        "archive": {"url": "s3://audit/rampart", "head_sequence": 12, "head_sha256": "ab".repeat(32)},
        "source_manifests": [{"sequence": 3, "sha256": "cd".repeat(32)}],
        "files": files,
        "rows_total": BUNDLE_FILES.iter().map(|f| f.2).sum::<i64>(),
    });
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("README.txt"),
        "An export of the Rampart archive.\n",
    )
    .unwrap();
    write_sums(dir);
}

/// SHA256SUMS over every file but itself, sorted by path.
fn write_sums(dir: &Path) {
    let mut paths: Vec<String> = ["README.txt", "manifest.json"]
        .into_iter()
        .map(String::from)
        .chain(BUNDLE_FILES.iter().map(|f| f.0.to_string()))
        .collect();
    paths.sort();
    let sums: String = paths
        .iter()
        .map(|p| format!("{}  {p}\n", sha256(&std::fs::read(dir.join(p)).unwrap())))
        .collect();
    std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
}

fn verify_bundle(dir: &Path) -> (i32, String) {
    verify_env(&["--bundle", dir.to_str().unwrap()], [])
}

/// Whether `sha256sum -c SHA256SUMS` in `dir` passes.
fn sha256sum_passes(dir: &Path) -> bool {
    Command::new("sha256sum")
        .args(["--check", "--quiet", "SHA256SUMS"])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("sha256sum (coreutils) runs")
        .success()
}

#[test]
fn a_hand_made_bundle_is_intact_and_sha256sum_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    make_bundle(&bundle);
    assert!(sha256sum_passes(&bundle));
    let (code, report) = verify_bundle(&bundle);
    assert_eq!(code, 0, "{report}");
    assert!(report.ends_with("bundle intact\n"), "{report}");
    assert!(
        report.contains("5 files match SHA256SUMS; 3 data files with 630 rows"),
        "{report}"
    );

    let (_, json) = verify_env(
        &["--bundle", bundle.to_str().unwrap(), "--format", "json"],
        [],
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["intact"], true);
    assert_eq!(v["data_rows"], 630);

    let err = fails(
        rampart()
            .args(["verify", "--archive", "x", "--bundle"])
            .arg(&bundle),
    );
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn a_flipped_byte_in_a_bundle_is_reported_and_sha256sum_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    make_bundle(&bundle);
    let victim = BUNDLE_FILES[1].0;
    let mut bytes = std::fs::read(bundle.join(victim)).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(bundle.join(victim), &bytes).unwrap();
    assert!(!sha256sum_passes(&bundle));
    let (code, report) = verify_bundle(&bundle);
    assert_eq!(code, 1, "{report}");
    assert!(reported(&report, "altered", victim), "{report}");
    assert!(report.contains(&sha256(&bytes)), "{report}");
}

#[test]
fn a_missing_bundle_file_is_reported_and_sha256sum_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    make_bundle(&bundle);
    let victim = BUNDLE_FILES[0].0;
    std::fs::remove_file(bundle.join(victim)).unwrap();
    assert!(!sha256sum_passes(&bundle));
    let (code, report) = verify_bundle(&bundle);
    assert_eq!(code, 1, "{report}");
    assert!(reported(&report, "missing", victim), "{report}");
    assert_eq!(problems(&report), 1, "{report}");
}

#[test]
fn an_extra_bundle_file_is_reported_where_sha256sum_sees_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    make_bundle(&bundle);
    let extra = "data/events/part-00002.parquet";
    parquet_file(&bundle.join(extra), 5);
    assert!(
        sha256sum_passes(&bundle),
        "sha256sum checks listed files only"
    );
    let (code, report) = verify_bundle(&bundle);
    assert_eq!(code, 1, "{report}");
    assert!(reported(&report, "extra", extra), "{report}");
}

#[test]
fn a_bundle_manifest_that_disagrees_with_its_files_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    make_bundle(&bundle);
    // One more row recorded than the file holds, with SHA256SUMS rewritten to match:
    // only the Parquet footer can tell.
    let path = bundle.join("manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["files"][2]["rows"] = 124.into();
    v["rows_total"] = 631.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    write_sums(&bundle);
    assert!(sha256sum_passes(&bundle));
    let (code, report) = verify_bundle(&bundle);
    assert_eq!(code, 1, "{report}");
    assert!(
        reported(&report, "rows-mismatch", BUNDLE_FILES[2].0),
        "{report}"
    );
    assert_eq!(problems(&report), 1, "{report}");
}

#[test]
fn bundle_paths_outside_the_bundle_are_reported_and_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    make_bundle(&bundle);
    let outside = dir.path().join("secret.txt");
    std::fs::write(&outside, "not part of the bundle").unwrap();
    let mut sums = std::fs::read_to_string(bundle.join("SHA256SUMS")).unwrap();
    sums.push_str(&format!(
        "{}  ../secret.txt\n",
        sha256(b"not part of the bundle")
    ));
    sums.push_str(&format!("{}  {}\n", "0".repeat(64), outside.display()));
    std::fs::write(bundle.join("SHA256SUMS"), sums).unwrap();
    let (code, report) = verify_bundle(&bundle);
    assert_eq!(code, 1, "{report}");
    assert!(
        reported(&report, "unsafe-path", "../secret.txt"),
        "{report}"
    );
    assert!(
        reported(&report, "unsafe-path", outside.to_str().unwrap()),
        "{report}"
    );
    assert_eq!(problems(&report), 2, "{report}");
}
