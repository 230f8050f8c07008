//! Bad flags and bad configuration are refused with a message that names the problem.

use crate::*;

#[test]
fn every_command_has_help_with_examples() {
    for cmd in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["query", "--help"],
        vec!["gen", "--help"],
        vec!["verify", "--help"],
    ] {
        let out = ok(rampart().args(&cmd));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Examples:"), "{cmd:?}:\n{text}");
    }
}

fn config_error(toml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, toml).unwrap();
    let src = dir.path().join("in.jsonl");
    std::fs::write(&src, "").unwrap();
    fails(
        rampart()
            .args(["run", "--config"])
            .arg(&path)
            .arg("--source")
            .arg(&src)
            .arg("--archive")
            .arg(dir.path().join("a")),
    )
}

#[test]
fn bad_configuration_names_the_key_and_the_file() {
    let err = config_error("[sink]\nroll-intervall = \"5m\"\n");
    assert!(
        err.contains("roll-intervall") && err.contains("p.toml"),
        "{err}"
    );
    let err = config_error("[window]\nsize = \"five minutes\"\n");
    assert!(err.contains("size"), "{err}");
    let err = config_error("[sink]\nzstd-level = 40\n");
    assert!(
        err.contains("sink.zstd-level") && err.contains("1 ..= 22"),
        "{err}"
    );
    let err = config_error("[decode]\nmax-message-bytes = \"1 KiB\"\nbogus = 1\n");
    assert!(err.contains("bogus"), "{err}");
    // A topic for alerts, a file source, and no brokers to send to.
    let err = config_error("[kafka]\nalerts-topic = \"alerts\"\n");
    assert!(
        err.contains("kafka.brokers") && err.contains("required"),
        "{err}"
    );
}

#[test]
fn environment_overrides_the_file_and_is_checked_too() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.jsonl");
    std::fs::write(&src, "").unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(&config, "[sink]\nzstd-level = 3\n").unwrap();
    let err = fails(
        rampart()
            .env("RAMPART_SINK__ZSTD_LEVEL", "99")
            .args(["run", "--config"])
            .arg(&config)
            .arg("--source")
            .arg(&src)
            .arg("--archive")
            .arg(dir.path().join("a")),
    );
    assert!(err.contains("sink.zstd-level"), "{err}");
    // A too-small message limit set through the environment takes effect.
    let g = generate(dir.path(), "g.jsonl", small(50, 1));
    let archive = dir.path().join("b");
    ok(rampart()
        .env("RAMPART_DECODE__MAX_MESSAGE_BYTES", "64")
        .args(["run", "--source"])
        .arg(&g.path)
        .arg("--archive")
        .arg(&archive));
    let rows = query_json(
        &archive,
        "SELECT count(*) AS n FROM dead_letters WHERE reason_code = 'too_large'",
    );
    assert_eq!(rows[0]["n"], 50);
}

#[test]
fn missing_inputs_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(rampart().args(["run", "--config", "/nonexistent/p.toml"]));
    assert!(
        err.contains("/nonexistent/p.toml") && err.contains("not found"),
        "{err}"
    );
    let err = fails(
        rampart()
            .args(["run", "--source", "/nonexistent/in.jsonl", "--archive"])
            .arg(dir.path()),
    );
    assert!(
        err.contains("cannot open source file /nonexistent/in.jsonl"),
        "{err}"
    );
    let err = fails(rampart().args(["run", "--archive"]).arg(dir.path()));
    assert!(err.contains("--source"), "{err}");
    let err = fails(
        rampart()
            .args(["run", "--source", "kafka://h/t", "--archive"])
            .arg(dir.path()),
    );
    assert!(
        err.contains("each broker needs HOST:PORT") && err.contains("kafka://HOST:PORT"),
        "{err}"
    );
    let err = fails(rampart().args(["gen", "--events", "10", "--bad-rate", "1.5"]));
    assert!(
        err.contains("bad-rate") || err.contains("bad_rate"),
        "{err}"
    );
    let err = fails(
        rampart()
            .args(["query", "--archive"])
            .arg(dir.path())
            .arg("SELECT nope FROM events"),
    );
    assert!(err.contains("nope"), "{err}");
    let err = fails(rampart().args(["query", "--format", "xml", "SELECT 1"]));
    assert!(err.contains("xml"), "{err}");
}
