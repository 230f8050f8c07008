//! Nothing is lost: every accepted event, unknown fields included, is rebuilt from the
//! archive and equals the input line as JSON.

use std::collections::HashMap;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use rampart_archive::Archive;
use rampart_archive::reconstruct::event_json;
use rampart_core::schema::OPTIONAL_STRING_FIELDS;
use serde_json::{Map, Value};

use crate::*;

/// The input event as the contract sees it: an optional contract field given as `null`
/// is absent.
fn canonical(line: &[u8]) -> Map<String, Value> {
    let mut v: Map<String, Value> = serde_json::from_slice(line).unwrap();
    let optional =
        OPTIONAL_STRING_FIELDS
            .iter()
            .copied()
            .chain(["dst_port", "patched", "policy_allowed"]);
    for k in optional {
        if v.get(k) == Some(&Value::Null) {
            v.remove(k);
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_is_rebuilt_exactly_from_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "in.jsonl", small(8_000, 11));
    let archive_dir = dir.path().join("archive");
    run_pipeline(&g.path, &archive_dir);

    let lines: HashMap<u64, Vec<u8>> = input_lines(&g.path).into_iter().collect();
    let good: Vec<u64> = g
        .kinds
        .iter()
        .enumerate()
        .filter(|(_, k)| matches!(k, MessageKind::Good))
        .map(|(i, _)| i as u64 + 1)
        .collect();

    let (mut seen, mut with_extra, mut with_ts_raw) = (Vec::new(), 0, 0);
    for_each_event(&archive_dir, |batch, row, line| {
        let rebuilt = event_json(batch, row).unwrap();
        let original = canonical(&lines[&line]);
        assert_eq!(
            Value::Object(rebuilt.clone()),
            Value::Object(original),
            "line {line}: {}",
            String::from_utf8_lossy(&lines[&line])
        );
        with_extra += usize::from(rebuilt.keys().any(|k| {
            ![
                "ts",
                "resource_id",
                "resource_type",
                "category",
                "dst_port",
                "patched",
                "policy_allowed",
            ]
            .contains(&k.as_str())
                && !OPTIONAL_STRING_FIELDS.contains(&k.as_str())
        }));
        with_ts_raw += usize::from(!rebuilt["ts"].as_str().unwrap().ends_with('Z'));
        seen.push(line);
    })
    .await;
    seen.sort_unstable();
    assert_eq!(seen, good, "every good line exactly once");
    assert!(
        with_extra > 100,
        "the stream must exercise unknown fields ({with_extra})"
    );
    assert!(
        with_ts_raw > 10,
        "the stream must exercise non-UTC offsets ({with_ts_raw})"
    );
}

/// Calls `f(batch, row, source_line)` for every committed row of `events` in the archive
/// at `archive_dir`.
pub(crate) async fn for_each_event(
    archive_dir: &std::path::Path,
    mut f: impl FnMut(&arrow::array::RecordBatch, usize, u64),
) {
    let location = rampart_core::store::open(
        archive_dir.to_str().unwrap(),
        Vec::<(String, String)>::new(),
    )
    .unwrap();
    let archive = Archive::open(location).await.unwrap();
    let out = archive.query("SELECT * FROM events").await.unwrap();
    for batch in &out.batches {
        let lines = batch
            .column_by_name("source_line")
            .unwrap()
            .as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            f(batch, row, lines.value(row) as u64);
        }
    }
}
