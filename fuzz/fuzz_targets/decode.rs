//! Arbitrary bytes through the decoder, under each preset.
//!
//! For every input and preset:
//! - decoding never panics and `flush` succeeds;
//! - the message becomes exactly one row: an `events` row when accepted, or a
//!   `dead_letters` row with the reason code returned, a reason text and the raw bytes as
//!   they came;
//! - a limit one byte below the message's size refuses it as `too_large`;
//! - an accepted message is UTF-8 JSON nested at most 127 levels deep; its required
//!   strings are not empty, `dst_port` is in 0..=65535, `ts_raw` (when kept) is RFC 3339
//!   text for the stored `ts`, and `extra` reads back as a JSON object;
//! - under `native`, nothing is lost: every field of the message is in its column or in
//!   `extra`, with the same JSON value, and `extra` holds nothing else;
//! - the decoder's fast path and its general path (`serde_json` alone) give the same
//!   event or the same rejection.

#![no_main]

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, TimestampMicrosecondType};
use bytesize::ByteSize;
use libfuzzer_sys::fuzz_target;
use rampart_core::config::{DecodeConfig, Preset};
use rampart_core::schema::{OPTIONAL_STRING_FIELDS, dead_letters as dl, events as col};
use rampart_core::{DeadLetterReason, SourcePos};
use rampart_ingest::{Decoder, Outcome, decode};
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    for preset in [Preset::Native, Preset::Ecs, Preset::Ocsf] {
        check(data, preset);
    }
    let limit = DecodeConfig::default().max_message_bytes.as_u64() as usize;
    assert_eq!(
        decode::parse(data, limit),
        decode::parse_general(data, limit),
        "fast path and general path disagree"
    );
});

fn check(data: &[u8], preset: Preset) {
    let pos = SourcePos::File {
        path: "fuzz".into(),
        line: 1,
    };
    let mut d = Decoder::new(&DecodeConfig::default()).with_preset(preset);
    let outcome = d.push(data, &pos, 0);
    let out = d.flush().expect("flush");
    let rows = (out.events.num_rows(), out.dead_letters.num_rows());
    match outcome {
        Outcome::Accepted => {
            assert_eq!(rows, (1, 0), "{preset}: accepted");
            accepted(data, preset, &out.events);
        }
        Outcome::DeadLettered(reason) => {
            assert_eq!(rows, (0, 1), "{preset}: dead-lettered");
            let row = &out.dead_letters;
            let code = row
                .column_by_name(dl::REASON_CODE)
                .unwrap()
                .as_string::<i32>();
            assert_eq!(code.value(0), reason.as_str(), "{preset}");
            let text = row.column_by_name(dl::REASON).unwrap().as_string::<i32>();
            assert!(!text.is_null(0) && !text.value(0).is_empty(), "{preset}");
            let raw = row.column_by_name(dl::RAW).unwrap().as_binary::<i32>();
            assert_eq!(raw.value(0), data, "{preset}: raw bytes");
        }
    }
    if let Some(limit) = (data.len() as u64).checked_sub(1) {
        let config = DecodeConfig {
            max_message_bytes: ByteSize::b(limit),
        };
        let mut small = Decoder::new(&config).with_preset(preset);
        assert_eq!(
            small.push(data, &pos, 0),
            Outcome::DeadLettered(DeadLetterReason::TooLarge),
            "{preset}: over the limit"
        );
    }
}

fn accepted(data: &[u8], preset: Preset, events: &RecordBatch) {
    let text = std::str::from_utf8(data).expect("accepted, so UTF-8");
    assert!(
        depth(text) <= 127,
        "{preset}: accepted, nested too deep to read back"
    );
    let string = |name: &str| {
        let c = events.column_by_name(name).unwrap().as_string::<i32>();
        (!c.is_null(0)).then(|| c.value(0).to_string())
    };
    for name in [col::RESOURCE_ID, col::RESOURCE_TYPE, col::CATEGORY] {
        let v = string(name).unwrap_or_else(|| panic!("{preset}: {name} is null"));
        assert!(!v.is_empty(), "{preset}: {name} is empty");
    }
    let ts = events
        .column_by_name(col::TS)
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    assert!(!ts.is_null(0), "{preset}: ts is null");
    let ts = ts.value(0);
    if let Some(raw) = string(col::TS_RAW) {
        let parsed = chrono::DateTime::parse_from_rfc3339(&raw)
            .unwrap_or_else(|e| panic!("{preset}: ts_raw {raw:?}: {e}"));
        assert_eq!(parsed.timestamp_micros(), ts, "{preset}: ts_raw {raw:?}");
    }
    let port = events
        .column_by_name(col::DST_PORT)
        .unwrap()
        .as_primitive::<Int32Type>();
    let port = (!port.is_null(0)).then(|| port.value(0));
    if let Some(p) = port {
        assert!((0..=65535).contains(&p), "{preset}: dst_port {p}");
    }
    let extra = match string(col::EXTRA) {
        None => Map::new(),
        Some(e) => match serde_json::from_str::<Value>(&e) {
            Ok(Value::Object(m)) if !m.is_empty() => m,
            other => panic!("{preset}: extra {e:?} does not read back as an object: {other:?}"),
        },
    };
    if preset != Preset::Native {
        return;
    }
    // Nothing lost: each field is in its column or in `extra`, with the same value.
    let original: Map<String, Value> = match serde_json::from_str(text) {
        Ok(Value::Object(m)) => m,
        other => panic!("native: accepted, but not a JSON object to serde_json: {other:?}"),
    };
    let boolean = |name: &str| {
        let c = events.column_by_name(name).unwrap().as_boolean();
        (!c.is_null(0)).then(|| c.value(0))
    };
    for (key, value) in &original {
        let k = key.as_str();
        let column: Option<Value> = if k == col::TS {
            None // checked above through ts_raw and below through the fast path
        } else if k == col::DST_PORT {
            Some(port.map_or(Value::Null, Value::from))
        } else if k == col::PATCHED || k == col::POLICY_ALLOWED {
            Some(boolean(k).map_or(Value::Null, Value::from))
        } else if [col::RESOURCE_ID, col::RESOURCE_TYPE, col::CATEGORY].contains(&k)
            || OPTIONAL_STRING_FIELDS.contains(&k)
        {
            Some(string(k).map_or(Value::Null, Value::from))
        } else {
            assert_eq!(extra.get(k), Some(value), "native: field {k:?} lost");
            continue;
        };
        if let Some(c) = column {
            assert_eq!(&c, value, "native: column {k}");
        }
    }
    for k in extra.keys() {
        assert!(
            original.contains_key(k),
            "native: extra has {k:?}, not in the message"
        );
    }
    if let Some(Value::String(t)) = original.get(col::TS) {
        let parsed = chrono::DateTime::parse_from_rfc3339(t).expect("native: ts accepted");
        assert_eq!(parsed.timestamp_micros(), ts, "native: ts {t:?}");
        if string(col::TS_RAW).is_none() {
            let canonical = chrono::DateTime::from_timestamp_micros(ts)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
            assert_eq!(
                &canonical, t,
                "native: ts_raw dropped for a non-canonical ts"
            );
        }
    }
}

/// The deepest nesting of arrays and objects in JSON text (the top-level object is 1).
fn depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}
