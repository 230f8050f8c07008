//! `[input] preset` through the binary: the ECS and OCSF fixtures, run with
//! `RAMPART_INPUT__PRESET`, archive the same events and give the same window results as
//! the native fixture.

use std::path::{Path, PathBuf};

use crate::*;

/// The contract columns of `events`, one JSON object per row, in input order.
const EVENT_COLUMNS: &str = "ts, resource_id, resource_type, category, workload, outcome, \
     severity, src_ip, dst_ip, dst_port, protocol, \"user\", classification, vuln_id, patched, \
     policy_allowed, message, ts_raw, source_line";

fn fixture(preset: &str) -> PathBuf {
    repo_root().join(format!("fixtures/preset-{preset}.jsonl"))
}

/// Events, dead letters and window results of a run over `fixture(preset)`; the source
/// file's name in `opened_by`/`resolved_by` is replaced by `FIXTURE` so that runs over
/// the three files compare.
fn results(archive: &Path, preset: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let rows = |sql: &str| {
        query_json(archive, sql)
            .into_iter()
            .map(|r| serde_json::Value::Object(r).to_string())
            .collect::<Vec<_>>()
    };
    (
        rows(&format!(
            "SELECT {EVENT_COLUMNS} FROM events ORDER BY source_line"
        )),
        rows("SELECT source_line, reason_code FROM dead_letters ORDER BY source_line"),
        window_results(archive)
            .into_iter()
            .map(|r| r.replace(&format!("preset-{preset}.jsonl"), "FIXTURE"))
            .collect(),
    )
}

#[test]
fn ecs_and_ocsf_runs_archive_what_the_native_run_archives() {
    let dir = tempfile::tempdir().unwrap();
    let native_archive = dir.path().join("native");
    run_pipeline(&fixture("native"), &native_archive);
    let (events, dead, windows) = results(&native_archive, "native");
    assert_eq!(events.len(), 20);
    assert_eq!(
        dead,
        [r#"{"reason_code":"missing_field","source_line":21}"#]
    );
    assert!(
        windows.iter().any(|r| r.contains("unclassified_data"))
            && windows.iter().any(|r| r.contains("security_health"))
            && windows.iter().any(|r| r.contains("network_vulnerability"))
            && windows.iter().any(|r| r.contains("FIXTURE:")),
        "{windows:#?}"
    );

    for preset in ["ecs", "ocsf"] {
        let archive = dir.path().join(preset);
        run_pipeline_env(
            &fixture(preset),
            &archive,
            [("RAMPART_INPUT__PRESET", preset)],
        );
        let (e, d, w) = results(&archive, preset);
        assert_eq!(e, events, "{preset}: events");
        assert_eq!(d, dead, "{preset}: dead letters");
        assert_eq!(w, windows, "{preset}: window results");
    }
}

#[test]
fn the_ecs_fixture_read_as_native_is_all_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a");
    let summary = run_pipeline(&fixture("ecs"), &archive);
    assert_eq!(summary_count(&summary, "accepted"), 0);
    assert_eq!(summary_count(&summary, "dead-lettered"), 21);
}

#[test]
fn an_unknown_preset_is_refused_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(
        rampart()
            .env("RAMPART_INPUT__PRESET", "elastic")
            .arg("run")
            .arg("--source")
            .arg(fixture("native"))
            .arg("--archive")
            .arg(dir.path().join("a"))
            .arg("--until-end"),
    );
    assert!(
        err.contains("input.preset") && err.contains("native, ecs, ocsf"),
        "{err}"
    );
}

/// Nothing is lost under a preset either: every ECS and OCSF event is rebuilt in its own
/// shape from the archive (`event_json_as`) and equals the input line as JSON.
#[tokio::test(flavor = "multi_thread")]
async fn preset_events_are_rebuilt_in_their_own_shape() {
    use rampart_archive::reconstruct::event_json_as;
    use rampart_core::config::Preset;

    let dir = tempfile::tempdir().unwrap();
    for preset in [Preset::Ecs, Preset::Ocsf] {
        let source = fixture(preset.as_str());
        let archive_dir = dir.path().join(preset.as_str());
        run_pipeline_env(
            &source,
            &archive_dir,
            [("RAMPART_INPUT__PRESET", preset.as_str())],
        );
        let lines: std::collections::HashMap<u64, Vec<u8>> =
            input_lines(&source).into_iter().collect();
        let mut seen = 0;
        crate::reconstruct::for_each_event(&archive_dir, |batch, row, line| {
            let rebuilt = event_json_as(batch, row, preset).unwrap();
            let original: serde_json::Value = serde_json::from_slice(&lines[&line]).unwrap();
            assert_eq!(
                serde_json::Value::Object(rebuilt),
                original,
                "{preset} line {line}"
            );
            seen += 1;
        })
        .await;
        assert_eq!(seen, 20, "{preset}");
    }
}
