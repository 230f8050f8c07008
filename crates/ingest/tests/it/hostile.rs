//! Hostile input under every preset: oversized messages, deep nesting, huge strings and
//! numbers out of range become dead letters with the reason they deserve (or, for a
//! string within the size limit, an event), never a crash.

use arrow::array::AsArray;
use bytesize::ByteSize;
use rampart_core::config::{DecodeConfig, Preset};
use rampart_core::schema::{dead_letters as dl, events as col};
use rampart_core::{DeadLetterReason, SourcePos};
use rampart_ingest::{Decoder, FileSource, Outcome};
use serde_json::Value;

use DeadLetterReason::*;

const PRESETS: [Preset; 3] = [Preset::Native, Preset::Ecs, Preset::Ocsf];

fn pos() -> SourcePos {
    SourcePos::File {
        path: "hostile".into(),
        line: 1,
    }
}

/// The first event of `fixtures/preset-{preset}.jsonl`, which every decoder accepts.
fn fixture_event(preset: Preset) -> Value {
    let path = rampart_core::package_dir(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../fixtures/preset-{preset}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}

/// The preset's first source path of contract `field`.
fn first_path(preset: Preset, field: &str) -> &str {
    match rampart_core::preset::table(preset) {
        None => field,
        Some(t) => t.iter().find(|m| m.field == field).unwrap().paths[0],
    }
}

/// The fixture event of `preset` with `raw` (JSON text, kept as written) at the first
/// source path of `field`.
fn with_field(preset: Preset, field: &str, raw: &str) -> Vec<u8> {
    const MARK: &str = "\u{1}hostile\u{1}";
    let mut event = fixture_event(preset);
    let parts = rampart_core::preset::parse_path(first_path(preset, field));
    let mut at = &mut event;
    for (i, p) in parts.iter().enumerate() {
        let obj = at.as_object_mut().unwrap();
        if i + 1 == parts.len() && p.index.is_none() {
            obj.insert(p.key.to_string(), Value::from(MARK));
            break;
        }
        at = obj
            .entry(p.key)
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(n) = p.index {
            at = &mut at.as_array_mut().unwrap()[n];
        }
    }
    let text = event.to_string();
    let quoted = serde_json::to_string(MARK).unwrap();
    assert_eq!(text.matches(&quoted).count(), 1);
    text.replacen(&quoted, raw, 1).into_bytes()
}

/// Decodes one message; returns its outcome and the `reason` of its dead letter.
fn decode(preset: Preset, max: ByteSize, message: &[u8]) -> (Outcome, Option<String>) {
    let config = DecodeConfig {
        max_message_bytes: max,
    };
    let mut d = Decoder::new(&config).with_preset(preset);
    let outcome = d.push(message, &pos(), 0);
    let out = d.flush().unwrap();
    let rows = out.events.num_rows() + out.dead_letters.num_rows();
    assert_eq!(rows, 1, "{preset}: one message, one row");
    if out.dead_letters.num_rows() == 0 {
        return (outcome, None);
    }
    let raw = out.dead_letters.column_by_name(dl::RAW).unwrap();
    assert!(
        raw.as_binary::<i32>().value(0) == message,
        "{preset}: raw bytes kept"
    );
    let code = out.dead_letters.column_by_name(dl::REASON_CODE).unwrap();
    let Outcome::DeadLettered(reason) = outcome else {
        panic!("{preset}: a dead-letter row for an accepted message")
    };
    assert_eq!(code.as_string::<i32>().value(0), reason.as_str());
    let text = out.dead_letters.column_by_name(dl::REASON).unwrap();
    (outcome, Some(text.as_string::<i32>().value(0).to_string()))
}

fn dead(preset: Preset, max: ByteSize, message: &[u8]) -> (DeadLetterReason, String) {
    match decode(preset, max, message) {
        (Outcome::DeadLettered(r), Some(text)) => (r, text),
        other => panic!("{preset}: accepted: {other:?}"),
    }
}

#[test]
fn the_fixture_events_are_accepted_as_they_are() {
    for preset in PRESETS {
        let msg = fixture_event(preset).to_string();
        let (outcome, reason) = decode(preset, ByteSize::mib(1), msg.as_bytes());
        assert_eq!(outcome, Outcome::Accepted, "{preset}: {reason:?}");
    }
}

#[test]
fn an_oversized_message_is_too_large_without_being_parsed() {
    for preset in PRESETS {
        // A valid event one byte over the limit.
        let base = with_field(preset, col::MESSAGE, "\"\"");
        let pad = (1 << 20) + 1 - base.len();
        let msg = with_field(preset, col::MESSAGE, &format!("\"{}\"", "a".repeat(pad)));
        assert_eq!(msg.len(), (1 << 20) + 1);
        let (reason, text) = dead(preset, ByteSize::mib(1), &msg);
        assert_eq!(reason, TooLarge, "{preset}: {text}");
        assert!(
            text.contains("1048577 bytes, over the limit of 1048576 (decode.max-message-bytes)"),
            "{preset}: {text}"
        );
        assert_eq!(
            decode(preset, ByteSize::b(msg.len() as u64), &msg).0,
            Outcome::Accepted,
            "{preset}: at the limit"
        );
        // 16 MiB that are neither UTF-8 nor JSON: the size is all that is looked at.
        let junk = vec![0xff_u8; 16 << 20];
        assert_eq!(
            dead(preset, ByteSize::mib(1), &junk).0,
            TooLarge,
            "{preset}"
        );
    }
}

#[test]
fn deep_nesting_is_not_json_without_a_stack_overflow() {
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    let unclosed = "{\"a\":".repeat(100_000);
    for preset in PRESETS {
        let mut event = fixture_event(preset).to_string();
        event.insert_str(1, &format!("\"deep\":{deep},"));
        for msg in [event.as_bytes(), unclosed.as_bytes()] {
            let (reason, text) = dead(preset, ByteSize::mib(1), msg);
            assert_eq!(reason, NotJson, "{preset}: {text}");
        }
        // Well-formed, read without being built: not an object.
        let (reason, text) = dead(preset, ByteSize::mib(1), deep.as_bytes());
        assert_eq!(reason, NotObject, "{preset}: {text}");
    }
}

#[test]
fn a_huge_string_within_the_limit_is_accepted_whole() {
    // The contract sets no length for strings: the message size limit bounds them.
    let huge = "r".repeat(50 << 20);
    for preset in PRESETS {
        let msg = with_field(preset, col::RESOURCE_ID, &format!("\"{huge}\""));
        let mut d = Decoder::new(&DecodeConfig {
            max_message_bytes: ByteSize::mib(64),
        })
        .with_preset(preset);
        assert_eq!(d.push(&msg, &pos(), 0), Outcome::Accepted, "{preset}");
        let out = d.flush().unwrap();
        let id = out.events.column_by_name(col::RESOURCE_ID).unwrap();
        assert!(id.as_string::<i32>().value(0) == huge, "{preset}");
        let (reason, _) = dead(preset, ByteSize::mib(50), &msg);
        assert_eq!(reason, TooLarge, "{preset}: over a 50 MiB limit");
    }
}

#[test]
fn numbers_out_of_range_are_invalid_or_of_the_wrong_type() {
    // (value of `dst_port`, reason natively, reason under a preset). A preset reads
    // numbers as serde_json does: an integer beyond u64 becomes a float.
    let cases = [
        ("70000", InvalidValue, InvalidValue),
        ("65536", InvalidValue, InvalidValue),
        ("-1", InvalidValue, InvalidValue),
        ("-9223372036854775809", InvalidValue, WrongType),
        ("18446744073709551616", InvalidValue, WrongType),
        ("1e400", WrongType, InvalidValue),
        ("-1e400", WrongType, InvalidValue),
        ("443.0", WrongType, WrongType),
        ("4.43e2", WrongType, WrongType),
    ];
    for preset in PRESETS {
        for (value, native, other) in cases {
            let msg = with_field(preset, col::DST_PORT, value);
            let expected = if preset == Preset::Native {
                native
            } else {
                other
            };
            let (reason, text) = dead(preset, ByteSize::mib(1), &msg);
            assert_eq!(reason, expected, "{preset} dst_port {value}: {text}");
        }
        for value in ["0", "65535"] {
            let msg = with_field(preset, col::DST_PORT, value);
            let (outcome, text) = decode(preset, ByteSize::mib(1), &msg);
            assert_eq!(outcome, Outcome::Accepted, "{preset} {value}: {text:?}");
        }
    }
}

#[test]
fn timestamps_out_of_range_are_invalid_values() {
    for preset in [Preset::Native, Preset::Ecs] {
        for ts in [
            "99999-01-01T00:00:00Z",
            "+10000-01-01T00:00:00Z",
            "-0001-01-01T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-28T09:41:07+24:00",
            "2026-11-28T09:41:61Z",
        ] {
            let msg = with_field(preset, col::TS, &format!("\"{ts}\""));
            let (reason, text) = dead(preset, ByteSize::mib(1), &msg);
            assert_eq!(reason, InvalidValue, "{preset} {ts}: {text}");
            assert!(text.contains("RFC 3339"), "{preset} {ts}: {text}");
        }
        let msg = with_field(preset, col::TS, "1795858867123");
        assert_eq!(
            dead(preset, ByteSize::mib(1), &msg).0,
            WrongType,
            "{preset}"
        );
    }
    // OCSF `time` is milliseconds since the epoch.
    for (ms, reason) in [
        ("9223372036854775807", InvalidValue),
        ("-9223372036854775808", InvalidValue),
        ("1e400", InvalidValue),
        ("18446744073709551616", WrongType),
        ("1795858867123.5", WrongType),
    ] {
        let msg = with_field(Preset::Ocsf, col::TS, ms);
        let (got, text) = dead(Preset::Ocsf, ByteSize::mib(1), &msg);
        assert_eq!(got, reason, "ocsf time {ms}: {text}");
    }
}

#[test]
fn an_extra_number_out_of_range_is_an_invalid_value_under_every_preset() {
    for preset in PRESETS {
        let mut event = fixture_event(preset).to_string();
        event.insert_str(1, "\"x\":1e400,");
        let (reason, text) = dead(preset, ByteSize::mib(1), event.as_bytes());
        assert_eq!(reason, InvalidValue, "{preset}: {text}");
        assert!(text.contains("out of range"), "{preset}: {text}");
    }
}

#[tokio::test]
async fn hostile_lines_through_the_file_source_each_become_one_row() {
    let good = fixture_event(Preset::Native).to_string();
    let lines = [
        good.clone(),
        "x".repeat(3 << 20),
        "[".repeat(200_000),
        String::from_utf8(with_field(Preset::Native, col::DST_PORT, "1e400")).unwrap(),
        "\u{0}\u{1}\u{2}".into(),
        good,
    ];
    let data = lines.join("\n").into_bytes();
    let reader = Box::new(std::io::Cursor::new(data));
    let mut source = FileSource::from_reader("hostile", reader, 64 << 10);
    let mut d = Decoder::new(&DecodeConfig::default());
    let (mut accepted, mut dead) = (0, 0);
    while let Some(chunk) = source.next_chunk().await.unwrap() {
        let (a, r) = d.push_lines(&chunk, 0);
        accepted += a;
        dead += r;
    }
    assert_eq!((accepted, dead), (2, 4));
    let out = d.flush().unwrap();
    let codes = out.dead_letters.column_by_name(dl::REASON_CODE).unwrap();
    let codes: Vec<_> = codes.as_string::<i32>().iter().flatten().collect();
    assert_eq!(codes, ["too_large", "not_json", "wrong_type", "not_json"]);
    let lines = out.dead_letters.column_by_name("source_line").unwrap();
    let lines = lines.as_primitive::<arrow::datatypes::Int64Type>();
    assert_eq!(lines.values().to_vec(), [2, 3, 4, 5]);
}
