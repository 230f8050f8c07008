//! Faults of what a run depends on, with the real services: the object store stopped
//! mid-run, the local archive's disk full, a graceful stop by SIGTERM. (A broker outage
//! is in kafka.rs, with the broker.) See docs/archive.md, "Faults".

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::metrics::{free_addr, scrape, value};
use crate::*;

const BUCKET: &str = "fault";
const KEY: &str = "fault-key";
const SECRET: &str = "fault-secret";

/// An S3 server of the test's own (`RAMPART_TEST_S3S`, see `scripts/services.sh`) over a
/// folder of its own, on a port of its own, that the test stops and starts again.
struct S3Server {
    bin: String,
    /// The folder it serves: bucket `fault` is `root/fault`, and an object is the file
    /// at its key under it.
    root: PathBuf,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl S3Server {
    /// `None` when the services are not there (refused when they are required).
    fn start(dir: &Path) -> Option<Self> {
        let Ok(bin) = std::env::var("RAMPART_TEST_S3S") else {
            assert!(
                std::env::var_os("RAMPART_REQUIRE_SERVICES").is_none(),
                "RAMPART_REQUIRE_SERVICES is set but RAMPART_TEST_S3S is not: run scripts/test.sh"
            );
            return None;
        };
        let root = dir.join("s3");
        std::fs::create_dir_all(root.join(BUCKET)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            bin,
            root,
            port,
            log: dir.join("s3s.log"),
            child: None,
        };
        server.up();
        Some(server)
    }

    /// Starts the server (again) on its port, over its folder.
    fn up(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.bin)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", KEY, "--secret-key", SECRET])
            .arg(&self.root)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the S3 server did not listen within 20 s:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server: connections are reset and new ones refused.
    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A config file whose archive is `s3://fault/<prefix>` on this server, followed by
    /// `more` (TOML).
    fn config(&self, dir: &Path, prefix: &str, more: &str) -> PathBuf {
        let path = dir.join(format!("{prefix}.toml"));
        std::fs::write(
            &path,
            format!(
                "[archive]\nurl = \"s3://{BUCKET}/{prefix}\"\n[archive.options]\n\
                 aws_endpoint = \"http://127.0.0.1:{}\"\naws_allow_http = \"true\"\n\
                 aws_virtual_hosted_style_request = \"false\"\naws_region = \"us-east-1\"\n\
                 aws_access_key_id = \"{KEY}\"\naws_secret_access_key = \"{SECRET}\"\n{more}",
                self.port
            ),
        )
        .unwrap();
        path
    }

    /// The archive at `prefix` as the server stores it: a local archive of the same
    /// objects, readable while the server is down.
    fn folder(&self, prefix: &str) -> PathBuf {
        self.root.join(BUCKET).join(prefix)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.down();
    }
}

/// The manifests of the archive in `dir`, parsed, by sequence.
fn manifests(archive: &Path) -> Vec<serde_json::Value> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(archive.join("_rampart/manifests"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    names.retain(|p| p.extension().is_some_and(|e| e == "json"));
    names.sort();
    names
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

/// The last file line the manifests of `archive` commit (0 for none).
fn committed_through(archive: &Path) -> u64 {
    manifests(archive)
        .iter()
        .flat_map(|m| m["sources"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s["last_line"].as_u64())
        .max()
        .unwrap_or(0)
}

/// Waits for `child` at most `secs` seconds (then kills it and fails with `log`).
fn wait_within(child: &mut Child, secs: u64, log: &dyn Fn() -> String) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > Duration::from_secs(secs) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the run did not end within {secs} s:\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// 300 000 lines, 1 % malformed: a run of several seconds over several commits.
fn input(dir: &Path, seed: u64) -> Generated {
    let cfg = rampart_gen::GenConfig {
        bad_rate: 0.01,
        ..small(300_000, seed)
    };
    generate(dir, "in.jsonl", cfg)
}

/// Runs `cmd` (a `rampart run` on `s3`'s archive at `folder`) through an outage of the
/// store: down once the first commit is stored, for about 14 s, then up again. Checks
/// that meanwhile the run stays up and waits: its read count flat and short of `total`,
/// every queue full, no manifest added, `during` (called 4 s and 14 s in) satisfied;
/// that it then completes with exit 0; and that it warned of the failed requests.
fn run_through_store_outage(
    s3: &mut S3Server,
    folder: &Path,
    dir: &Path,
    cmd: &mut Command,
    total: u64,
    mut during: impl FnMut(),
) {
    let addr = free_addr();
    let run_log = RunLog::in_dir(dir);
    let log = || run_log.text();
    let mut run = run_log.spawn(
        cmd.args(["--metrics-addr", &addr.to_string()])
            .stdout(Stdio::null()),
    );
    let started = Instant::now();
    while manifests(folder).is_empty() && started.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let scrape_running = |run: &mut Child, when: &str| {
        assert!(
            run.try_wait().unwrap().is_none(),
            "the run ended {when}:\n{}",
            log()
        );
        scrape(addr).unwrap_or_else(|| panic!("no metrics {when}:\n{}", log()))
    };
    scrape_running(
        &mut run,
        "before the store went down: make the input larger",
    );

    s3.down();
    let down = Instant::now();
    let committed_at_outage = manifests(folder).len();
    std::thread::sleep(Duration::from_secs(4));
    let early = scrape_running(&mut run, "during the outage: it must wait for the store");
    during();
    std::thread::sleep(Duration::from_secs(10));
    let late = scrape_running(&mut run, "during the outage: it must wait for the store");
    during();
    // Backpressure: the run stopped reading, with every queue full, short of the end.
    let read = value(&late, "rampart_messages_read_total");
    assert_eq!(
        value(&early, "rampart_messages_read_total"),
        read,
        "the run kept reading while the store was down"
    );
    assert!(
        read < total as f64,
        "the run read all {total} messages during the outage: nothing was held back"
    );
    for queue in ["raw", "decoded", "sink"] {
        let depth = value(&late, &format!("rampart_queue_depth{{queue=\"{queue}\"}}"));
        let capacity = value(
            &late,
            &format!("rampart_queue_capacity{{queue=\"{queue}\"}}"),
        );
        assert!(
            capacity > 0.0 && depth == capacity,
            "queue {queue}: {depth} of {capacity} during the outage"
        );
    }
    // Nothing was committed while nothing could be made durable.
    assert_eq!(manifests(folder).len(), committed_at_outage);
    let outage = down.elapsed();

    s3.up();
    let back = Instant::now();
    let status = wait_within(&mut run, 240, &log);
    assert!(status.success(), "the run failed ({status}):\n{}", log());
    assert!(
        log().contains("archive store request failed"),
        "no warning of the outage in the log:\n{}",
        log()
    );
    eprintln!(
        "store outage: {:.1} s; {read} of {total} messages read when reading stopped; \
         run finished {:.1} s after the store's return",
        outage.as_secs_f64(),
        back.elapsed().as_secs_f64()
    );
}

#[test]
fn an_object_store_outage_mid_run_is_waited_out_with_backpressure_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut s3) = S3Server::start(dir.path()) else {
        return;
    };
    let g = input(dir.path(), 91);
    let total = g.stats.total();
    let config = s3.config(dir.path(), "outage", "");
    let folder = s3.folder("outage");
    run_through_store_outage(
        &mut s3,
        &folder,
        dir.path(),
        rampart()
            .env("RAMPART_SINK__ROLL_INTERVAL", "1s")
            .env("RAMPART_RULES__ENABLED", "false")
            .arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--source")
            .arg(&g.path),
        total,
        || {},
    );

    // Every line exactly once, and the chain intact (verified through the S3 server).
    assert_eq!(
        line_coverage(&folder),
        (total, total, 1, total),
        "every line exactly once"
    );
    assert_eq!(committed_through(&folder), total);
    // `verify` through the S3 server: exit 0 only when intact.
    ok(rampart().args(["verify", "--config"]).arg(&config));
}

#[test]
fn a_store_down_past_the_retry_timeout_fails_the_run_clearly_and_a_rerun_completes_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut s3) = S3Server::start(dir.path()) else {
        return;
    };
    let g = generate(dir.path(), "in.jsonl", small(100_000, 97));
    let total = g.stats.total();
    let config = s3.config(dir.path(), "timeout", "");
    let folder = s3.folder("timeout");
    let run = || {
        let mut c = rampart();
        c.env("RAMPART_SINK__ROLL_INTERVAL", "1s")
            .env("RAMPART_ARCHIVE__ORPHAN_GRACE", "1s")
            .env("RAMPART_ARCHIVE__RETRY_TIMEOUT", "3s")
            .env("RAMPART_RULES__ENABLED", "false")
            .arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--source")
            .arg(&g.path);
        c
    };
    let run_log = RunLog::in_dir(dir.path());
    let log = || run_log.text();
    let mut first = run_log.spawn(run().stdout(Stdio::null()));
    let started = Instant::now();
    while manifests(&folder).is_empty() && started.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        first.try_wait().unwrap().is_none(),
        "the run ended before the store went down: make the input larger:\n{}",
        log()
    );
    s3.down();
    let down = Instant::now();
    let status = wait_within(&mut first, 60, &log);
    assert!(!status.success(), "the run succeeded without its store");
    assert!(
        down.elapsed() >= Duration::from_secs(3),
        "the run gave up {:.1} s into the outage, before archive.retry-timeout",
        down.elapsed().as_secs_f64()
    );
    let err = log();
    for needed in [
        "the archive store (s3://fault/timeout) did not answer within archive.retry-timeout (3s)",
        "run again; it resumes after the last commit, and nothing past that was committed",
        "Connection refused",
    ] {
        assert!(err.contains(needed), "the error lacks `{needed}`:\n{err}");
    }
    let committed = committed_through(&folder);
    assert!(committed > 0 && committed < total, "{committed} of {total}");

    // The store is back: the same command resumes after the last commit and completes.
    s3.up();
    std::thread::sleep(Duration::from_millis(1100)); // past the orphan grace
    let summary = String::from_utf8(ok(&mut run()).stdout).unwrap();
    assert!(
        summary.contains(&format!("resumed       after line {committed}")),
        "{summary}"
    );
    assert_eq!(line_coverage(&folder), (total, total, 1, total));
    // `verify` through the S3 server: exit 0 only when intact.
    ok(rampart().args(["verify", "--config"]).arg(&config));
}

/// Per partition, the last Kafka offset the manifests of `archive` commit.
fn archived_offsets(archive: &Path) -> BTreeMap<i32, i64> {
    let mut last = BTreeMap::new();
    for m in manifests(archive) {
        for s in m["sources"].as_array().into_iter().flatten() {
            if s["kind"] == "kafka" {
                let p = s["partition"].as_i64().unwrap() as i32;
                let o = s["last_offset"].as_i64().unwrap();
                let e = last.entry(p).or_insert(o);
                *e = (*e).max(o);
            }
        }
    }
    last
}

/// The group's committed offsets are at most the archive's: none past a record that no
/// manifest holds. Returns how many partitions the group has offsets for.
fn assert_group_within_archive(brokers: &str, group: &str, topic: &str, archive: &Path) -> usize {
    let (group_at, archived) = (
        group_offsets(brokers, group, topic),
        archived_offsets(archive),
    );
    for (p, next) in &group_at {
        assert!(
            archived.get(p).is_some_and(|last| *next <= last + 1),
            "partition {p}: the group is at {next}, the archive holds up to {:?}",
            archived.get(p)
        );
    }
    group_at.len()
}

#[test]
fn an_object_store_outage_under_a_kafka_run_commits_no_group_offset_past_the_archive() {
    use crate::kafka::{GROUP_SETTINGS, broker, coverage, create_topic};
    const EVENTS: u64 = 150_000;
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(mut s3) = S3Server::start(dir.path()) else {
        return;
    };
    let topic = create_topic(&brokers, 4);
    // Records keep arriving (about 7 s of them), so the run is still reading when the
    // store goes down.
    let producer = rampart()
        .args(["gen", "--events", &EVENTS.to_string(), "--seed", "96"])
        .args(["--rate", "20000", "--kafka", &format!("{brokers}/{topic}")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let group = format!("g-{topic}");
    let config = s3.config(dir.path(), "kafka", GROUP_SETTINGS);
    let folder = s3.folder("kafka");
    let mut compared = 0;
    run_through_store_outage(
        &mut s3,
        &folder,
        dir.path(),
        rampart()
            .env("RAMPART_SINK__ROLL_INTERVAL", "1s")
            .env("RAMPART_ARCHIVE__ORPHAN_GRACE", "1s")
            .env("RAMPART_RULES__ENABLED", "false")
            // Batches of 1000 records: the three queues of 8 batches hold about 25 000,
            // so the run stops reading well short of the end.
            .env("RAMPART_KAFKA__BATCH_RECORDS", "1000")
            .env("RAMPART_LOG", "info")
            .arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--source")
            .arg(format!("kafka://{brokers}/{topic}?group={group}"))
            .arg("--until-end"),
        EVENTS,
        || compared = assert_group_within_archive(&brokers, &group, &topic, &folder),
    );
    assert!(
        compared > 0,
        "the group committed nothing before the outage: nothing was compared"
    );
    assert!(producer.wait_with_output().unwrap().status.success());
    assert_eq!(
        coverage(&folder, &topic),
        (EVENTS, EVENTS, 0),
        "every record once"
    );
    // At the end the group holds exactly what the archive holds.
    let next: BTreeMap<i32, i64> = archived_offsets(&folder)
        .into_iter()
        .map(|(p, last)| (p, last + 1))
        .collect();
    assert_eq!(group_offsets(&brokers, &group, &topic), next);
}

/// `rampart verify --archive DIR`: its exit status and its report.
fn verify(archive: &Path) -> (bool, String) {
    let out = rampart()
        .args(["verify", "--archive"])
        .arg(archive)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                found.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    found
}

/// Runs `script` with `sh` in a user and mount namespace of its own (`unshare -rm`),
/// where it can mount a small tmpfs; `None` when the system refuses that (the script
/// exits 97 when its mount is refused), which fails the test when the services are
/// required.
fn in_mount_namespace(script: &str, env: &[(&str, &Path)]) -> Option<std::process::Output> {
    let out = Command::new("unshare")
        .args(["-rm", "sh", "-c", script])
        .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
        .env("BIN", env!("CARGO_BIN_EXE_rampart"))
        .current_dir(repo_root())
        .output();
    let refused = match &out {
        Err(e) => format!("cannot run unshare: {e}"),
        Ok(o) if o.status.code() == Some(97) || (!o.status.success() && o.stdout.is_empty()) => {
            format!(
                "unshare -rm or the tmpfs mount was refused: {}",
                String::from_utf8_lossy(&o.stderr)
            )
        }
        Ok(_) => return out.ok(),
    };
    assert!(
        std::env::var_os("RAMPART_REQUIRE_SERVICES").is_none(),
        "RAMPART_REQUIRE_SERVICES is set but the disk-full test cannot make a small disk \
         ({refused}); it needs user and mount namespaces (`unshare -rm`, as root or with \
         unprivileged user namespaces allowed)"
    );
    eprintln!("skipped: {refused}");
    None
}

#[test]
fn a_full_disk_under_the_archive_fails_clearly_commits_only_what_is_durable_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    // About 44 MB of input, about 3.7 MB of archive: a 1 MiB disk fills after a commit
    // or two.
    let g = generate(dir.path(), "in.jsonl", small(100_000, 93));
    let total = g.stats.total();
    let (mnt, out) = (dir.path().join("mnt"), dir.path().join("out"));
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    // A first run over the first 2,000 lines fits and commits; then the rest of the lines
    // are appended to the same file and the next run fills the disk. (Waiting for a timed
    // commit instead depends on how fast the machine is: a fast one wrote more than the
    // disk holds before its first commit.)
    let text = std::fs::read(&g.path).unwrap();
    let cut = text
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1_999)
        .unwrap()
        .0
        + 1;
    let (grow, rest) = (dir.path().join("grow.jsonl"), dir.path().join("rest.jsonl"));
    std::fs::write(&grow, &text[..cut]).unwrap();
    std::fs::write(&rest, &text[cut..]).unwrap();
    // The tmpfs lives as long as the namespace: everything that needs it is in the
    // script, and copies of the archive are taken out for the checks.
    let script = r#"
        mount -t tmpfs -o size=1m none "$MNT" || exit 97
        export RAMPART_LOG=warn RAMPART_RULES__ENABLED=true \
            RAMPART_SINK__ROLL_INTERVAL=1s RAMPART_ARCHIVE__ORPHAN_GRACE=1s
        "$BIN" run --source "$IN" --archive "$MNT/archive" >"$OUT/head.out" 2>"$OUT/head.err"
        echo $? >"$OUT/head.rc"
        cat "$REST" >>"$IN"
        "$BIN" run --source "$IN" --archive "$MNT/archive" >"$OUT/full.out" 2>"$OUT/full.err"
        echo $? >"$OUT/full.rc"
        cp -a "$MNT/archive" "$OUT/after-full"
        # Room again (past the orphan grace): the same command resumes.
        mount -o remount,size=64m "$MNT" || exit 98
        sleep 1.2
        "$BIN" run --source "$IN" --archive "$MNT/archive" >"$OUT/again.out" 2>"$OUT/again.err"
        echo $? >"$OUT/again.rc"
        cp -a "$MNT/archive" "$OUT/final"
    "#;
    let vars = [
        ("MNT", mnt.as_path()),
        ("OUT", out.as_path()),
        ("IN", grow.as_path()),
        ("REST", rest.as_path()),
    ];
    let Some(ran) = in_mount_namespace(script, &vars) else {
        return;
    };
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap_or_default();
    assert!(
        ran.status.success(),
        "the script failed ({}): {}",
        ran.status,
        String::from_utf8_lossy(&ran.stderr)
    );

    assert_eq!(read("head.rc").trim(), "0", "{}", read("head.err"));
    // A clear error: the disk is full, where, and what to do.
    let err = read("full.err");
    assert_ne!(
        read("full.rc").trim(),
        "0",
        "the run succeeded on a full disk"
    );
    let archive = mnt.join("archive");
    for needed in [
        "No space left on device",
        "the archive's disk is full",
        archive.to_str().unwrap(),
        "free space there",
        "resumes after the last commit",
    ] {
        assert!(err.contains(needed), "the error lacks `{needed}`:\n{err}");
    }

    // Nothing partial is visible: no staging file, every listed file whole (verify checks
    // each one's size, SHA-256 and rows), and the committed lines are exactly the rows of
    // the committed files, each once.
    let after = out.join("after-full");
    let committed = committed_through(&after);
    assert!(
        committed > 0 && committed < total,
        "{committed} of {total} lines committed before the disk filled: resize the disk"
    );
    let staging: Vec<String> = files_under(&after)
        .into_iter()
        .filter(|f| f.contains('#'))
        .collect();
    assert!(staging.is_empty(), "partial files left: {staging:?}");
    let (intact, report) = verify(&after);
    assert!(intact && report.contains("archive intact"), "{report}");
    assert_eq!(
        line_coverage(&after),
        (committed, committed, 1, committed),
        "the committed lines, each once, and no more"
    );

    // With room again, the same command resumes and completes: every line exactly once.
    assert_eq!(read("again.rc").trim(), "0", "{}", read("again.err"));
    let summary = read("again.out");
    assert!(
        summary.contains(&format!("resumed       after line {committed}")),
        "{summary}"
    );
    let last = out.join("final");
    assert_eq!(line_coverage(&last), (total, total, 1, total));
    let (intact, report) = verify(&last);
    assert!(intact && report.contains("archive intact"), "{report}");
}

/// Sends SIGTERM to `child` and waits for it, at most a minute (then kills it and
/// fails); it must exit with status 0.
fn sigterm_exits_0(child: &mut Child, log: &dyn Fn() -> String) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "the run was not running:\n{}", log());
    let status = wait_within(child, 60, log);
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM: not a clean stop:\n{}",
        log()
    );
}

/// The data files under `archive` (not under `_rampart/`), and the ones its manifests
/// list, both sorted: equal when nothing written was left uncommitted.
pub(crate) fn on_disk_and_listed(archive: &Path) -> (Vec<String>, Vec<String>) {
    let mut on_disk: Vec<String> = files_under(archive)
        .into_iter()
        .filter(|f| !f.starts_with("_rampart"))
        .collect();
    let mut listed: Vec<String> = manifests(archive)
        .iter()
        .flat_map(|m| m["add"].as_array().cloned().unwrap_or_default())
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    on_disk.sort();
    listed.sort();
    (on_disk, listed)
}

/// Long enough that no commit falls due while the tests below run: what is committed
/// when they stop the run is committed by the stop.
const NO_TIMED_COMMIT: [(&str, &str); 2] = [
    ("RAMPART_SINK__ROLL_INTERVAL", "10m"),
    ("RAMPART_ARCHIVE__ORPHAN_GRACE", "10m"),
];

#[test]
fn sigterm_stops_a_file_run_that_commits_what_it_read_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let g = input(dir.path(), 94);
    let total = g.stats.total();
    let archive = dir.path().join("archive");
    let (out_path, run_log) = (dir.path().join("run.out"), RunLog::in_dir(dir.path()));
    let log = || run_log.text();
    let mut run = run_log.spawn(
        rampart()
            .envs(NO_TIMED_COMMIT)
            .arg("run")
            .arg("--source")
            .arg(&g.path)
            .arg("--archive")
            .arg(&archive)
            .stdout(std::fs::File::create(&out_path).unwrap()),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        run.try_wait().unwrap().is_none(),
        "the run ended before SIGTERM: make the input larger:\n{}",
        log()
    );
    assert!(manifests(&archive).is_empty(), "a commit before the stop");

    sigterm_exits_0(&mut run, &log);
    let summary = std::fs::read_to_string(&out_path).unwrap();
    assert!(
        summary.contains("rampart run stopped by signal"),
        "{summary}"
    );
    let read = summary_count(&summary, "messages");
    assert!(
        read > 0 && read < total,
        "{read} of {total} lines read when stopped: the stop did not land mid-run"
    );
    // What was read is committed, once, and nothing written is left out of the archive.
    assert_eq!(committed_through(&archive), read, "{summary}");
    assert_eq!(line_coverage(&archive), (read, read, 1, read));
    let (on_disk, listed) = on_disk_and_listed(&archive);
    assert!(!listed.is_empty());
    assert_eq!(on_disk, listed, "files written but not committed");
    let (intact, report) = verify(&archive);
    assert!(intact, "{report}");

    // The same command again continues from there and completes: every line once.
    let again = run_pipeline_env(&g.path, &archive, NO_TIMED_COMMIT);
    assert!(
        again.contains(&format!("resumed       after line {read}")),
        "{again}"
    );
    assert_eq!(line_coverage(&archive), (total, total, 1, total));
}

#[test]
fn sigterm_stops_a_kafka_run_that_commits_what_it_read_to_the_archive_and_the_group() {
    use crate::kafka::{broker, coverage, create_topic, produce, run_kafka_settings};
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = create_topic(&brokers, 4);
    const EVENTS: u64 = 60_000;
    produce(&brokers, &topic, EVENTS, 95);
    let archive = dir.path().join("archive");
    let group = format!("g-{topic}");
    let addr = free_addr();
    let run_log = RunLog::in_dir(dir.path());
    let log = || run_log.text();
    // A live member (no --until-end): it runs until stopped.
    let mut run = run_log.spawn(
        run_kafka_settings(&brokers, &topic, &archive, &group, "")
            .envs(NO_TIMED_COMMIT)
            .env("RAMPART_LOG", "info")
            .args(["--metrics-addr", &addr.to_string()])
            .stdout(Stdio::null()),
    );
    let started = Instant::now();
    loop {
        let read = scrape(addr).map_or(0.0, |m| value(&m, "rampart_messages_read_total"));
        if read > 0.0 {
            break;
        }
        assert!(
            run.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(60),
            "the run read nothing within a minute:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(manifests(&archive).is_empty(), "a commit before the stop");

    sigterm_exits_0(&mut run, &log);
    // What was read is in the archive, once, with no file left uncommitted...
    let (n, distinct, other) = coverage(&archive, &topic);
    assert!(
        n > 0 && n == distinct && other == 0,
        "{n} {distinct} {other}"
    );
    let (on_disk, listed) = on_disk_and_listed(&archive);
    assert_eq!(on_disk, listed, "files written but not committed");
    // ...and the group's offsets are exactly the archive's: next after the last
    // archived record of each partition, none past it.
    let archived: BTreeMap<i32, i64> = query_json(
        &archive,
        "SELECT kafka_partition AS p, max(kafka_offset) AS o FROM \
         (SELECT kafka_partition, kafka_offset FROM events UNION ALL \
          SELECT kafka_partition, kafka_offset FROM dead_letters) GROUP BY kafka_partition",
    )
    .iter()
    .map(|r| {
        (
            r["p"].as_i64().unwrap() as i32,
            r["o"].as_i64().unwrap() + 1,
        )
    })
    .collect();
    assert_eq!(group_offsets(&brokers, &group, &topic), archived);

    // A run of the same group to the end reads on from there: every record once, and
    // nothing it is given was archived already.
    let again = dir.path().join("again.log");
    let out = run_kafka_settings(&brokers, &topic, &archive, &group, "")
        .arg("--until-end")
        .env("RAMPART_LOG", "info")
        .stderr(std::fs::File::create(&again).unwrap())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let again = std::fs::read_to_string(&again).unwrap();
    assert!(out.success(), "{again}");
    assert_eq!(coverage(&archive, &topic), (EVENTS, EVENTS, 0));
    assert!(
        !again.contains("records already in the archive were skipped"),
        "the group's offsets lagged the archive:\n{again}"
    );
}

/// The offsets `group` has committed for `topic`, by partition (the ones it has).
fn group_offsets(brokers: &str, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    use rdkafka::Offset;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(20))
        .unwrap();
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}
