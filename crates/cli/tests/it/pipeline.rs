//! The whole pipeline through the binary: counts against the generator's ground truth,
//! every malformed kind, stdin (with a 300 MB line), and the bundled demo.

use std::collections::BTreeMap;
use std::path::Path;

use crate::*;

#[test]
fn counts_equal_the_generators_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(
        dir.path(),
        "in.jsonl",
        rampart_gen::GenConfig {
            bad_rate: 0.01,
            ..small(30_000, 7)
        },
    );
    assert!(g.stats.bad_total() > 200, "{:?}", g.stats);
    let archive = dir.path().join("archive");
    let summary = run_pipeline(&g.path, &archive);
    let reported = |label: &str| summary_count(&summary, label);
    assert_eq!(reported("accepted"), g.stats.good);
    assert_eq!(reported("dead-lettered"), g.stats.bad_total());
    assert_eq!(reported("messages"), 30_000);

    let events = query_json(&archive, "SELECT count(*) AS n FROM events");
    assert_eq!(events[0]["n"], g.stats.good);
    let by_reason: BTreeMap<String, u64> = query_json(
        &archive,
        "SELECT reason_code, count(*) AS n FROM dead_letters GROUP BY 1",
    )
    .into_iter()
    .map(|r| {
        (
            r["reason_code"].as_str().unwrap().to_string(),
            r["n"].as_u64().unwrap(),
        )
    })
    .collect();
    let expected: BTreeMap<String, u64> = g
        .stats
        .bad
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    assert_eq!(by_reason, expected);

    // Every input line is in exactly one table, once.
    let lines = query_json(
        &archive,
        "SELECT count(DISTINCT source_line) AS d, count(*) AS n FROM \
         (SELECT source_line FROM events UNION ALL SELECT source_line FROM dead_letters)",
    );
    assert_eq!(lines[0]["d"], 30_000);
    assert_eq!(lines[0]["n"], 30_000);
}

#[test]
fn every_malformed_kind_is_dead_lettered_with_reason_raw_bytes_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"ts":"2026-11-01T00:00:00Z","resource_id":"r1","resource_type":"vm","category":"auth"}"#;
    let huge = format!(
        r#"{{"ts":"2026-11-01T00:00:00Z","resource_id":"r1","resource_type":"vm","category":"auth","message":"{}"}}"#,
        "x".repeat(1 << 20)
    );
    let cases: Vec<(Vec<u8>, Option<&str>)> = vec![
        (good.as_bytes().to_vec(), None),
        (
            b"{\"ts\":\"2026-11-01T00:00:00Z\",\"x\":\"\xc3\x28\"}".to_vec(),
            Some("not_utf8"),
        ),
        (b"{\"ts\": \"2026".to_vec(), Some("not_json")),
        (b"".to_vec(), Some("not_json")),
        (b"[1,2,3]".to_vec(), Some("not_object")),
        (huge.into_bytes(), Some("too_large")),
        (
            good.replace(
                "\"category\":\"auth\"",
                "\"category\":\"auth\",\"category\":\"x\"",
            )
            .into_bytes(),
            Some("duplicate_field"),
        ),
        (
            good.replace("\"resource_type\":\"vm\",", "").into_bytes(),
            Some("missing_field"),
        ),
        (
            good.replace("}", ",\"dst_port\":\"22\"}").into_bytes(),
            Some("wrong_type"),
        ),
        (
            good.replace("2026-11-01T00:00:00Z", "01/11/2026")
                .into_bytes(),
            Some("invalid_value"),
        ),
        (good.as_bytes().to_vec(), None),
    ];
    let mut data = Vec::new();
    for (line, _) in &cases {
        data.extend_from_slice(line);
        data.push(b'\n');
    }
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, &data).unwrap();
    let archive = dir.path().join("archive");
    run_pipeline(&path, &archive);

    let rows = query_json(
        &archive,
        "SELECT source_line, reason_code, reason, encode(raw, 'hex') AS raw_hex, source_file \
         FROM dead_letters ORDER BY source_line",
    );
    let expected: Vec<(u64, &str, &[u8])> = cases
        .iter()
        .enumerate()
        .filter_map(|(i, (line, code))| code.map(|c| (i as u64 + 1, c, line.as_slice())))
        // A line over decode.max-message-bytes (1 MiB) keeps only its first 1 MiB.
        .map(|(n, c, line)| (n, c, &line[..line.len().min(1 << 20)]))
        .collect();
    assert_eq!(rows.len(), expected.len(), "{rows:?}");
    for (row, (line, code, raw)) in rows.iter().zip(expected) {
        assert_eq!(row["source_line"], line);
        assert_eq!(row["reason_code"], code, "line {line}: {}", row["reason"]);
        assert!(!row["reason"].as_str().unwrap().is_empty());
        let raw_hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(row["raw_hex"].as_str().unwrap(), raw_hex, "line {line}");
        assert_eq!(row["source_file"], path.to_str().unwrap());
    }
    let ok = query_json(&archive, "SELECT source_line FROM events ORDER BY 1");
    let ok_lines: Vec<u64> = ok
        .iter()
        .map(|r| r["source_line"].as_u64().unwrap())
        .collect();
    assert_eq!(ok_lines, vec![1, cases.len() as u64]);
}

#[test]
fn stdin_is_a_source() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(2_000, 3));
    let archive = dir.path().join("archive");
    let mut child = rampart()
        .args(["run", "--source", "-", "--archive"])
        .arg(&archive)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(&g.path).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let n = query_json(
        &archive,
        "SELECT count(*) AS n, min(source_file) AS f FROM events",
    );
    assert_eq!(n[0]["n"], g.stats.good);
    assert_eq!(n[0]["f"], "-");
}

/// Runs `rampart run --source -` over `lines` written to its stdin (each a list of
/// pieces, ended by `\n`); returns the child's peak resident memory in KiB (`VmHWM`,
/// read once everything is written, before stdin closes) and its output.
fn stdin_run_peak_kib(archive: &Path, lines: &[Vec<&[u8]>]) -> (u64, std::process::Output) {
    use std::io::Write;
    let mut child = rampart()
        .args(["run", "--source", "-", "--archive"])
        .arg(archive)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Written from another thread, so that a child that stops reading (or reads ever more
    // slowly) fails the test instead of hanging it.
    let (done, written) = std::sync::mpsc::channel();
    let stdin = std::thread::scope(|s| {
        s.spawn(move || {
            let result: std::io::Result<()> = (|| {
                for line in lines {
                    for piece in line {
                        stdin.write_all(piece)?;
                    }
                    stdin.write_all(b"\n")?;
                }
                stdin.flush()
            })();
            let _ = done.send(result.map(|()| stdin));
        });
        match written.recv_timeout(std::time::Duration::from_secs(120)) {
            Ok(result) => result.expect("write to the child's stdin"),
            Err(_) => {
                let _ = child.kill();
                panic!("the child did not read its input within 120 s");
            }
        }
    });
    // The pipe holds at most 64 KiB: the child has read all but the end of the input.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let peak = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in\n{status}"));
    drop(stdin);
    (peak, child.wait_with_output().unwrap())
}

#[test]
fn a_300_mb_line_on_stdin_is_one_dead_letter_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let good: &[u8] =
        br#"{"ts":"2026-11-01T00:00:00Z","resource_id":"r1","resource_type":"vm","category":"auth"}"#;
    // What an ordinary run needs, to compare against.
    let (normal, out) = stdin_run_peak_kib(&dir.path().join("normal"), &[vec![good]]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    const MIB: usize = 1 << 20;
    let piece = vec![b'x'; MIB];
    let huge: Vec<&[u8]> = vec![&piece; 300];
    let archive = dir.path().join("archive");
    let (peak, out) = stdin_run_peak_kib(&archive, &[huge, vec![good]]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("peak resident memory {peak} KiB, {normal} KiB for an ordinary run");
    // Buffering the line would need 300 MB more; the limit (1 MiB) and a few 4 MiB reads
    // are all the source may hold.
    assert!(
        peak < normal + 100 * 1024,
        "peak resident memory {peak} KiB against {normal} KiB for an ordinary run"
    );
    let dead = query_json(
        &archive,
        "SELECT source_line, reason_code, reason, octet_length(CAST(raw AS VARCHAR)) AS raw_len, \
         CAST(raw AS VARCHAR) = repeat('x', 1048576) AS raw_is_the_start FROM dead_letters",
    );
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["source_line"], 1);
    assert_eq!(dead[0]["reason_code"], "too_large");
    assert_eq!(
        dead[0]["reason"],
        "line is 314572800 bytes, over the limit of 1048576 (decode.max-message-bytes); \
         raw holds only its first 1048576 bytes"
    );
    assert_eq!(dead[0]["raw_len"], MIB);
    assert_eq!(dead[0]["raw_is_the_start"], true);
    let events = query_json(&archive, "SELECT source_line, resource_id FROM events");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (&events[0]["source_line"], &events[0]["resource_id"]),
        (&2.into(), &"r1".into())
    );
}

#[test]
fn the_bundled_demo_runs_and_lands_in_hive_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let root = rampart_core::package_dir(env!("CARGO_MANIFEST_DIR")).join("../..");
    let archive = dir.path().join("archive");
    let alerts = dir.path().join("alerts.jsonl");
    let out = ok(rampart()
        .current_dir(&root)
        .env("RAMPART_ALERTS__PATH", &alerts)
        .args(["run", "--config", "pipelines/demo.toml", "--archive"])
        .arg(&archive));
    assert!(
        std::fs::read_to_string(&alerts).unwrap().lines().count() > 0,
        "the demo raises alerts"
    );
    let summary = String::from_utf8(out.stdout).unwrap();
    let fixture_lines = input_lines(&root.join("fixtures/demo.jsonl")).len() as u64;
    let counts = query_json(
        &archive,
        "SELECT (SELECT count(*) FROM events) AS e, (SELECT count(*) FROM dead_letters) AS d",
    );
    let (e, d) = (
        counts[0]["e"].as_u64().unwrap(),
        counts[0]["d"].as_u64().unwrap(),
    );
    assert_eq!(e + d, fixture_lines, "{summary}");
    assert!(e > 0 && d > 0, "{summary}");
    // Layout: <archive>/events/date=YYYY-MM-DD/hour=HH/part-*.parquet
    let mut files = 0;
    for date in std::fs::read_dir(archive.join("events")).unwrap() {
        let date = date.unwrap().path();
        let name = date.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with("date=") && name.len() == 15, "{name}");
        for hour in std::fs::read_dir(&date).unwrap() {
            let hour = hour.unwrap().path();
            let h = hour.file_name().unwrap().to_str().unwrap().to_string();
            assert!(h.starts_with("hour=") && h.len() == 7, "{h}");
            for f in std::fs::read_dir(&hour).unwrap() {
                let f = f.unwrap().file_name().into_string().unwrap();
                assert!(f.starts_with("part-") && f.ends_with(".parquet"), "{f}");
                files += 1;
            }
        }
    }
    assert!(files > 0);
}

#[test]
fn the_archive_works_on_s3_through_the_same_code_path() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(3_000, 21));
    let bucket = std::env::var("RAMPART_TEST_S3_BUCKET").unwrap();
    let prefix = dir
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_start_matches('.');
    let config = dir.path().join("s3.toml");
    std::fs::write(
        &config,
        format!(
            "[archive]\nurl = \"s3://{bucket}/{prefix}\"\n[archive.options]\n\
             aws_endpoint = \"{endpoint}\"\naws_allow_http = \"true\"\n\
             aws_virtual_hosted_style_request = \"false\"\naws_region = \"us-east-1\"\n\
             aws_access_key_id = \"{}\"\naws_secret_access_key = \"{}\"\n",
            std::env::var("AWS_ACCESS_KEY_ID").unwrap(),
            std::env::var("AWS_SECRET_ACCESS_KEY").unwrap()
        ),
    )
    .unwrap();
    let summary = String::from_utf8(
        ok(rampart()
            .args(["run", "--config"])
            .arg(&config)
            .arg("--source")
            .arg(&g.path))
        .stdout,
    )
    .unwrap();
    assert_eq!(
        summary_count(&summary, "accepted"),
        g.stats.good,
        "{summary}"
    );
    let out = ok(rampart()
        .args(["query", "--format", "json", "--config"])
        .arg(&config)
        .arg(
            "SELECT (SELECT count(*) FROM events) AS e, (SELECT count(*) FROM dead_letters) AS d, \
             (SELECT count(*) FROM policy_hits) AS p",
        ));
    let row: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(row["e"], g.stats.good);
    assert_eq!(row["d"], g.stats.bad_total());
    assert!(row["p"].as_u64().unwrap() > 0);

    // The same archive with nothing but the provider's usual environment variables.
    let by_env = query_json_env(
        &format!("s3://{bucket}/{prefix}"),
        "SELECT count(*) AS e FROM events",
        [
            ("AWS_ENDPOINT", endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
        ],
    );
    assert_eq!(by_env[0]["e"], g.stats.good);
}

fn query_json_env<const N: usize>(
    archive: &str,
    sql: &str,
    env: [(&str, &str); N],
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let out =
        ok(rampart()
            .envs(env)
            .args(["query", "--format", "json", "--archive", archive, sql]));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn secrets_never_appear_in_logs_summaries_errors_or_metrics() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(500, 22));
    let bucket = std::env::var("RAMPART_TEST_S3_BUCKET").unwrap();
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap();
    let kafka_password = "kafka-pass-7f3e91";
    let wrong = "wrong-secret-9c1d55";
    let config = |secret: &str| {
        let path = dir.path().join(format!("{secret}.toml"));
        std::fs::write(
            &path,
            format!(
                "[archive]\nurl = \"s3://{bucket}/secrets-{}\"\n[archive.options]\n\
                 aws_endpoint = \"{endpoint}\"\naws_allow_http = \"true\"\n\
                 aws_virtual_hosted_style_request = \"false\"\naws_region = \"us-east-1\"\n\
                 aws_access_key_id = \"{}\"\naws_secret_access_key = \"{secret}\"\n\
                 [kafka.rdkafka]\n\"sasl.password\" = \"{kafka_password}\"\n",
                std::process::id(),
                std::env::var("AWS_ACCESS_KEY_ID").unwrap(),
            ),
        )
        .unwrap();
        path
    };
    let good = config(&secret);
    let mut outputs = Vec::new();
    // Everything a run and a query print, at the most verbose log level Rampart's own
    // crates have.
    for cmd in [
        rampart()
            .env("RAMPART_LOG", "debug")
            .args(["run", "--config"])
            .arg(&good)
            .arg("--source")
            .arg(&g.path),
        rampart()
            .env("RAMPART_LOG", "debug")
            .args(["query", "--config"])
            .arg(&good)
            .arg("SELECT count(*) AS n FROM events"),
    ] {
        let out = ok(cmd);
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
        outputs.push(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    // The metrics endpoint of a live run with the same configuration, once its rows
    // are committed (so every series has been touched), and its /healthz.
    let addr = crate::metrics::free_addr();
    let mut live = rampart()
        .env("RAMPART_LOG", "debug")
        .env("RAMPART_SINK__ROLL_INTERVAL", "1s")
        .args(["run", "--config"])
        .arg(&good)
        .args(["--source", "-", "--metrics-addr", &addr.to_string()])
        .stdin(std::process::Stdio::piped())
        // To files: a full pipe would stop the run (and its reading of stdin).
        .stdout(std::fs::File::create(dir.path().join("live.out")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("live.err")).unwrap())
        .spawn()
        .unwrap();
    let mut stdin = live.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, &std::fs::read(&g.path).unwrap()).unwrap();
    let started = std::time::Instant::now();
    let body = loop {
        let committed = crate::metrics::get(addr, "/metrics")
            .filter(|(_, body)| body.contains("rampart_rows_committed_total{table=\"events\"}"));
        if let Some((_, body)) = committed {
            break body;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no commit showed in the metrics within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    outputs.push(body);
    outputs.push(crate::metrics::get(addr, "/healthz").unwrap().1);
    drop(stdin);
    assert!(live.wait().unwrap().success());
    for log in ["live.out", "live.err"] {
        outputs.push(std::fs::read_to_string(dir.path().join(log)).unwrap());
    }
    // A wrong secret: the store refuses the request, and the error says so without it.
    let err = fails(
        rampart()
            .env("RAMPART_LOG", "debug")
            .args(["query", "--config"])
            .arg(config(wrong))
            .arg("SELECT count(*) AS n FROM events"),
    );
    outputs.push(err);
    assert!(
        outputs.iter().any(|o| o.contains("accepted")),
        "the run's summary was read"
    );
    for (i, out) in outputs.iter().enumerate() {
        for s in [secret.as_str(), kafka_password, wrong] {
            assert!(!out.contains(s), "output {i} shows a secret:\n{out}");
        }
    }
}

/// The names of the threads of process `pid`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect()
}

/// `pipeline.heap-trim-interval`: a run hands glibc's freed memory back on a thread of
/// its own (the resident set of a long run stays level, docs/performance.md), and `0s`
/// turns it off.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_run_trims_the_heap_on_a_thread_of_its_own_unless_turned_off() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    for (interval, expected) in [(None, true), (Some("0s"), false)] {
        let mut cmd = rampart();
        if let Some(i) = interval {
            cmd.env("RAMPART_PIPELINE__HEAP_TRIM_INTERVAL", i);
        }
        let mut child = cmd
            .env("RAMPART_LOG", "info")
            .args(["run", "--source", "-", "--archive"])
            .arg(dir.path().join("archive"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The pipeline starts after the trimming thread would have.
        let mut log = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let started = log
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("pipeline starting"));
        assert!(started, "the run did not start");
        let names = thread_names(child.id());
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            names.iter().any(|n| n == "malloc-trim"),
            expected,
            "heap-trim-interval {interval:?}: threads {names:?}"
        );
    }
}
