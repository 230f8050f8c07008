//! The archive read back by independent readers (DuckDB and pyarrow, installed by the
//! test script) gives the rows of the input.

use std::collections::HashMap;

use serde_json::Value;

use crate::*;

fn python() -> String {
    std::env::var("RAMPART_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "RAMPART_TEST_PYTHON is not set: run the suite with scripts/test.sh, which installs \
             DuckDB and pyarrow into a virtualenv and points this variable at its python"
        )
    })
}

#[test]
fn duckdb_and_pyarrow_read_the_rows_of_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(
        dir.path(),
        "in.jsonl",
        rampart_gen::GenConfig {
            bad_rate: 0.02,
            span: std::time::Duration::from_secs(30 * 3600),
            ..small(6_000, 5)
        },
    );
    let archive = dir.path().join("archive");
    run_pipeline(&g.path, &archive);

    let script =
        rampart_core::package_dir(env!("CARGO_MANIFEST_DIR")).join("tests/it/read_archive.py");
    let out = ok(Command::new(python()).arg(&script).arg(&archive));
    let rows: Vec<serde_json::Map<String, Value>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    let meta = &rows[0];
    assert_eq!(meta["reader"], "meta");
    assert_eq!(meta["ts_type"], "timestamp[us, tz=UTC]");
    assert_eq!(meta["ingested_at_type"], "timestamp[us, tz=UTC]");
    assert_eq!(meta["received_at_type"], "timestamp[us, tz=UTC]");
    assert_eq!(meta["events_rows"], g.stats.good);
    assert_eq!(meta["dead_rows"], g.stats.bad_total());

    let lines: HashMap<u64, Vec<u8>> = input_lines(&g.path).into_iter().collect();
    let (mut events, mut dead) = (0u64, 0u64);
    for r in &rows[1..] {
        let line = r["source_line"].as_u64().unwrap();
        let raw = &lines[&line];
        match r["reader"].as_str().unwrap() {
            "duckdb" => {
                events += 1;
                assert!(
                    matches!(g.kinds[line as usize - 1], MessageKind::Good),
                    "line {line}"
                );
                let input: serde_json::Map<String, Value> = serde_json::from_slice(raw).unwrap();
                let ts =
                    chrono::DateTime::parse_from_rfc3339(input["ts"].as_str().unwrap()).unwrap();
                assert_eq!(r["ts_us"], ts.timestamp_micros(), "line {line}");
                assert_eq!(r["date"], r["ts_date"], "partition of line {line}");
                for f in [
                    "resource_id",
                    "resource_type",
                    "category",
                    "workload",
                    "dst_port",
                    "patched",
                    "policy_allowed",
                ] {
                    let expected = input.get(f).cloned().unwrap_or(Value::Null);
                    assert_eq!(r[f], expected, "{f} of line {line}");
                }
                // classification: absent and null are both NULL; "" stays "".
                let class = input.get("classification").cloned().unwrap_or(Value::Null);
                assert_eq!(r["classification"], class, "classification of line {line}");
            }
            "pyarrow-dl" => {
                dead += 1;
                let MessageKind::Bad(reason) = &g.kinds[line as usize - 1] else {
                    panic!("line {line} was good but is a dead letter");
                };
                assert_eq!(r["reason_code"], reason.as_str(), "line {line}");
                // A line over decode.max-message-bytes (1 MiB here) keeps its first 1 MiB.
                let kept = if reason.as_str() == "too_large" {
                    &raw[..raw.len().min(1 << 20)]
                } else {
                    raw
                };
                let hex: String = kept.iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(
                    r["raw_hex"].as_str().unwrap(),
                    hex,
                    "raw bytes of line {line}"
                );
            }
            other => panic!("unexpected reader {other}"),
        }
    }
    assert_eq!(events, g.stats.good);
    assert_eq!(dead, g.stats.bad_total());
}
