//! A run killed at any instant (SIGKILL, no chance to clean up) and restarted leaves
//! every input line in the archive exactly once, and nothing that no manifest lists.

use std::time::{Duration, Instant};

use crate::*;

/// Settings for a run that commits every second and rolls files often, so a kill lands
/// between commits with files written but not yet committed.
const ENV: [(&str, &str); 3] = [
    ("RAMPART_SINK__ROLL_INTERVAL", "1s"),
    ("RAMPART_SINK__MAX_FILE_ROWS", "15000"),
    ("RAMPART_ARCHIVE__ORPHAN_GRACE", "1s"),
];

fn manifests(archive: &Path) -> usize {
    std::fs::read_dir(archive.join("_rampart/manifests")).map_or(0, |d| d.count())
}

#[test]
fn a_killed_run_restarted_archives_every_line_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(
        dir.path(),
        "in.jsonl",
        rampart_gen::GenConfig {
            bad_rate: 0.01,
            // Large enough that the third run is still going after its three commits
            // (a run commits about every second; 300,000 lines were all archived by
            // then on a quiet machine, with the debug build).
            ..small(600_000, 41)
        },
    );
    let total = g.stats.total();
    let archive = dir.path().join("archive");
    let mut killed_mid_run = 0;
    // Kill at different moments: before the first commit, between commits, late.
    for wait_for_manifests in [0, 1, 3] {
        let mut child = rampart()
            .envs(ENV)
            .arg("run")
            .arg("--source")
            .arg(&g.path)
            .arg("--archive")
            .arg(&archive)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let before = manifests(&archive);
        let started = Instant::now();
        while manifests(&archive) < before + wait_for_manifests
            && started.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(150));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed_mid_run += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        killed_mid_run >= 2,
        "only {killed_mid_run} runs were still going when killed: make the input larger"
    );
    let (n, _, _, _) = line_coverage(&archive);
    assert!(
        n < total,
        "the kills left {n} of {total} lines: nothing was left to resume"
    );

    // Past the grace period, what the kills left is no running writer's any more.
    std::thread::sleep(Duration::from_millis(1100));
    let summary = run_pipeline_env(&g.path, &archive, ENV);
    assert!(summary.contains("resumed"), "{summary}");
    assert_eq!(
        line_coverage(&archive),
        (total, total, 1, total),
        "every line exactly once"
    );
    let accepted = query_json(&archive, "SELECT count(*) AS n FROM events");
    assert_eq!(accepted[0]["n"].as_u64(), Some(g.stats.good));

    // The windows continued across the kills from the state stored with each commit:
    // their results are those of one uninterrupted run over the same file.
    let whole = dir.path().join("uninterrupted");
    run_pipeline_env(&g.path, &whole, ENV);
    let expected = window_results(&whole);
    assert!(
        expected.iter().any(|r| r.starts_with("policy_hits"))
            && expected.iter().any(|r| r.starts_with("attack_rates")),
        "the input produces window results"
    );
    assert_window_results(
        &archive,
        &expected,
        "window results differ from the uninterrupted run",
    );

    // What the kills left uncommitted was removed at restart: every data file on disk
    // is one a manifest lists, and no staging file remains.
    let (on_disk, listed) = crate::faults::on_disk_and_listed(&archive);
    assert_eq!(
        on_disk, listed,
        "files on disk are exactly the committed ones"
    );
}

#[test]
fn rerunning_a_finished_source_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(2_000, 42));
    let archive = dir.path().join("archive");
    run_pipeline(&g.path, &archive);
    let again = run_pipeline(&g.path, &archive);
    assert!(
        again.contains(&format!("resumed       after line {}", g.stats.total())),
        "{again}"
    );
    assert_eq!(summary_count(&again, "messages"), 0, "{again}");
    let total = g.stats.total();
    assert_eq!(line_coverage(&archive), (total, total, 1, total));
}

#[test]
fn two_instances_commit_to_one_archive_at_once_without_losing_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let inputs: Vec<Generated> = (0..2)
        .map(|i| {
            generate(
                dir.path(),
                &format!("in-{i}.jsonl"),
                rampart_gen::GenConfig {
                    bad_rate: 0.01,
                    ..small(60_000, 50 + i)
                },
            )
        })
        .collect();
    let archive = dir.path().join("archive");
    // Commit every second from both processes: they race for manifest numbers.
    let children: Vec<_> = inputs
        .iter()
        .map(|g| {
            rampart()
                .envs(ENV)
                .env("RAMPART_RULES__ENABLED", "false")
                .arg("run")
                .arg("--source")
                .arg(&g.path)
                .arg("--archive")
                .arg(&archive)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for g in &inputs {
        let total = g.stats.total();
        let rows = query_json(
            &archive,
            &format!(
                "SELECT count(*) AS n, count(DISTINCT source_line) AS d FROM \
                 (SELECT source_line, source_file FROM events UNION ALL \
                  SELECT source_line, source_file FROM dead_letters) \
                 WHERE source_file = '{}'",
                g.path.display()
            ),
        );
        assert_eq!(rows[0]["n"].as_u64(), Some(total), "{}", g.path.display());
        assert_eq!(rows[0]["d"].as_u64(), Some(total));
    }
    // The manifests are numbered without gaps, each linked to the one before.
    let mut names: Vec<PathBuf> = std::fs::read_dir(archive.join("_rampart/manifests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut previous: Option<String> = None;
    for (i, path) in names.iter().enumerate() {
        let bytes = std::fs::read(path).unwrap();
        let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(m["sequence"].as_u64(), Some(i as u64 + 1));
        assert_eq!(m["previous_sha256"].as_str(), previous.as_deref());
        previous = Some(sha256_hex(&bytes));
    }
    let writers: std::collections::BTreeSet<String> = names
        .iter()
        .map(|p| {
            let m: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            m["writer"]["instance"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(writers.len() >= 2, "both instances committed");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn a_file_replaced_at_the_same_path_is_read_from_its_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let first = generate(dir.path(), "in.jsonl", small(3_000, 61));
    let archive = dir.path().join("archive");
    run_pipeline(&first.path, &archive);
    // Rotated: a shorter, different file now has the same path.
    let second = generate(dir.path(), "in.jsonl", small(1_000, 62));
    let summary = run_pipeline(&second.path, &archive);
    assert!(!summary.contains("resumed"), "{summary}");
    let (n, _, _, _) = line_coverage(&archive);
    assert_eq!(n, first.stats.total() + second.stats.total());
    // The second file, run again, is recognised and adds nothing.
    let again = run_pipeline(&second.path, &archive);
    assert!(
        again.contains(&format!(
            "resumed       after line {}",
            second.stats.total()
        )),
        "{again}"
    );
    assert_eq!(line_coverage(&archive).0, n);
}
