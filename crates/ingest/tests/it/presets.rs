//! The same events in native, ECS and OCSF shape (`fixtures/preset-*.jsonl`, written by
//! `scripts/preset-fixtures.py` from the native file) decode to the same `events` rows.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::record_batch::RecordBatch;
use rampart_core::config::{DecodeConfig, Preset};
use rampart_core::schema::{OPTIONAL_STRING_FIELDS, events as col};
use rampart_ingest::{Decoded, Decoder, LineChunk};

/// Every contract column of `events`, and `ts_raw` (which must not differ either).
const CONTRACT: [&str; 18] = [
    col::TS,
    col::RESOURCE_ID,
    col::RESOURCE_TYPE,
    col::CATEGORY,
    col::WORKLOAD,
    col::OUTCOME,
    col::SEVERITY,
    col::SRC_IP,
    col::DST_IP,
    col::DST_PORT,
    col::PROTOCOL,
    col::USER,
    col::CLASSIFICATION,
    col::VULN_ID,
    col::PATCHED,
    col::POLICY_ALLOWED,
    col::MESSAGE,
    col::TS_RAW,
];

fn decode(preset: Preset) -> Decoded {
    let path = rampart_core::package_dir(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../fixtures/preset-{preset}.jsonl"));
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let chunk = LineChunk {
        path: Arc::from("fixture"),
        first_line: 1,
        data: data.into(),
        oversized: None,
    };
    let mut d = Decoder::new(&DecodeConfig::default()).with_preset(preset);
    assert_eq!(d.push_lines(&chunk, 0), (20, 1), "{preset}");
    d.flush().unwrap()
}

fn contract_columns(batch: &RecordBatch) -> RecordBatch {
    let idx: Vec<usize> = CONTRACT
        .iter()
        .map(|c| batch.schema().index_of(c).unwrap())
        .collect();
    batch.project(&idx).unwrap()
}

fn strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    batch
        .column_by_name(column)
        .unwrap()
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

#[test]
fn native_ecs_and_ocsf_fixtures_decode_to_the_same_events() {
    let native = decode(Preset::Native);
    let expected = contract_columns(&native.events);
    assert_eq!(expected.num_rows(), 20);
    for preset in [Preset::Ecs, Preset::Ocsf] {
        let got = contract_columns(&decode(preset).events);
        for (i, name) in CONTRACT.iter().enumerate() {
            assert_eq!(
                got.column(i).as_ref(),
                expected.column(i).as_ref(),
                "{preset}: column {name} differs"
            );
        }
        assert_eq!(got, expected, "{preset}");
    }
}

#[test]
fn the_fixtures_cover_the_contract() {
    let events = decode(Preset::Native).events;
    let set = |c: &str| -> BTreeSet<String> { strings(&events, c).into_iter().flatten().collect() };
    let categories = set(col::CATEGORY);
    for c in [
        "brute_force",
        "ddos",
        "malware",
        "vulnerability",
        "patch",
        "network_access",
        "data_access",
        "classification_change",
        "auth",
    ] {
        assert!(categories.contains(c), "no {c} event");
    }
    assert_eq!(
        set(col::RESOURCE_TYPE),
        ["app", "database", "network", "storage", "vm"]
            .map(String::from)
            .into()
    );
    // Every optional column is set somewhere, and the empty classification is kept.
    for c in OPTIONAL_STRING_FIELDS {
        assert!(!set(c).is_empty(), "{c} never set");
    }
    assert!(set(col::CLASSIFICATION).contains(""));
    let patched = events.column_by_name(col::PATCHED).unwrap().as_boolean();
    let allowed = events
        .column_by_name(col::POLICY_ALLOWED)
        .unwrap()
        .as_boolean();
    let categories = strings(&events, col::CATEGORY);
    let types = strings(&events, col::RESOURCE_TYPE);
    let row = |cat: &str, ty: &str| {
        (0..events.num_rows())
            .filter(|&i| categories[i].as_deref() == Some(cat) && types[i].as_deref() == Some(ty))
            .collect::<Vec<_>>()
    };
    assert!(
        row("malware", "vm").iter().any(|&i| !patched.value(i)),
        "an unpatched VM"
    );
    assert!(
        row("patch", "vm").iter().any(|&i| patched.value(i)),
        "a patch remedy"
    );
    assert!(
        row("network_access", "network")
            .iter()
            .any(|&i| allowed.is_valid(i) && !allowed.value(i)),
        "a disallowed network access"
    );
    let classification = strings(&events, col::CLASSIFICATION);
    assert!(
        row("data_access", "storage")
            .iter()
            .any(|&i| classification[i].is_none()),
        "an unclassified storage"
    );
    assert!(
        row("classification_change", "storage")
            .iter()
            .any(|&i| classification[i].is_some()),
        "a classification remedy"
    );
}

#[test]
fn the_malformed_line_is_a_dead_letter_naming_the_source_path() {
    for (preset, path) in [
        (Preset::Native, "`resource_id`"),
        (Preset::Ecs, "`cloud.instance.id` or `host.id`"),
        (Preset::Ocsf, "`resources[0].uid`"),
    ] {
        let dl = decode(preset).dead_letters;
        assert_eq!(dl.num_rows(), 1, "{preset}");
        assert_eq!(strings(&dl, "reason_code"), [Some("missing_field".into())]);
        let reason = strings(&dl, "reason").remove(0).unwrap();
        assert!(reason.contains(path), "{preset}: {reason}");
        let line = dl
            .column_by_name("source_line")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0);
        assert_eq!(line, 21, "{preset}");
    }
}

#[test]
fn preset_rows_keep_what_the_mapping_does_not_carry() {
    let native = decode(Preset::Native).events;
    assert!(strings(&native, col::EXTRA).iter().all(Option::is_none));
    let ecs = strings(&decode(Preset::Ecs).events, col::EXTRA);
    let first: serde_json::Value = serde_json::from_str(ecs[0].as_deref().unwrap()).unwrap();
    assert_eq!(
        first,
        serde_json::json!({"event": {"kind": "event"}, "ecs": {"version": "8.11.0"}})
    );
    let ocsf = strings(&decode(Preset::Ocsf).events, col::EXTRA);
    let third: serde_json::Value = serde_json::from_str(ocsf[2].as_deref().unwrap()).unwrap();
    assert_eq!(third["time"], 1_795_856_402_500_i64);
    assert_eq!(third["status"], "Blocked");
    assert_eq!(third["class_uid"], 2004);
    assert!(third.get("unmapped").is_none(), "{third}");
}
