//! Schema presets: Elastic Common Schema and OCSF field paths mapped onto the event
//! contract (`[input] preset`).
//!
//! A preset is data: one table per schema ([`ECS`], [`OCSF`], kept in
//! `rampart_core::preset` so the read side shares them) from each contract field to the
//! source paths it is read from, first present one wins, and how the value is
//! converted. A message is parsed into a JSON value, the contract object is built from
//! the table, and that object goes through the native checks of [`crate::decode`], so
//! the contract's rules (types, RFC 3339, port range, required fields) are the same for
//! every preset. A failure names the source path as well as the contract field.
//!
//! Nothing is lost: a value copied verbatim into a contract column from the field's
//! first path, in nested form, is taken out of the message; everything that is left
//! (fields outside the mapping, values found at a fallback path or under a flattened
//! key, and the source values that were converted, such as OCSF `time` or `status`) is
//! kept in `extra`. The original is the columns put back at their first paths, unless
//! `extra` already holds the field at one of its paths, merged with `extra`.
//!
//! With the `native` preset none of this runs: the decoder parses the message directly.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat};
use rampart_core::DeadLetterReason;
use rampart_core::config::Preset;
pub use rampart_core::preset::{Conversion, ECS, FieldMapping, OCSF, table};
use rampart_core::preset::{Part, get, parse_path};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::decode::{Event, Rejection, object_text, parse};

/// A message mapped onto the contract: the contract object as JSON text, and what is
/// left of the message.
#[derive(Debug)]
pub(crate) struct Mapped {
    preset: Preset,
    table: &'static [FieldMapping],
    contract: String,
    extra: Option<String>,
}

impl Mapped {
    /// Maps `message` by the table of `preset` (not `native`).
    pub(crate) fn new(
        message: &[u8],
        max_message_bytes: usize,
        preset: Preset,
        table: &'static [FieldMapping],
    ) -> Result<Self, Rejection> {
        let text = object_text(message, max_message_bytes)?;
        let Strict(mut source) = serde_json::from_str(text).map_err(|e| {
            let text = e.to_string();
            let reason = if text.starts_with(DUPLICATE) {
                DeadLetterReason::DuplicateField
            } else if text.starts_with("number out of range") || text.contains("surrogate") {
                // Well-formed JSON, as the native decoder classes these too.
                DeadLetterReason::InvalidValue
            } else {
                DeadLetterReason::NotJson
            };
            Rejection::new(reason, format!("not JSON: {e}"))
        })?;
        let mut contract = Map::new();
        for m in table {
            let Some((n, path, parts)) = m.paths.iter().enumerate().find_map(|(n, p)| {
                let parts = parse_path(p);
                get(&source, &parts)
                    .is_some_and(|v| !v.is_null())
                    .then_some((n, *p, parts))
            }) else {
                continue;
            };
            let value = match m.conversion {
                // Taken out only from the first path in nested form, so that the
                // original is the columns put back there plus `extra`: a value found at
                // a fallback path or under a flattened key stays in `extra` as well.
                Conversion::Verbatim if n == 0 => {
                    take(&mut source, &parts).or_else(|| get(&source, &parts).cloned())
                }
                Conversion::Verbatim => get(&source, &parts).cloned(),
                c => get(&source, &parts)
                    .map(|v| convert(v, c, preset, path, m.field))
                    .transpose()?,
            };
            if let Some(value) = value {
                contract.insert(m.field.to_string(), value);
            }
        }
        let extra = match &source {
            Value::Object(o) if o.is_empty() => None,
            v => Some(v.to_string()),
        };
        Ok(Self {
            preset,
            table,
            contract: Value::Object(contract).to_string(),
            extra,
        })
    }

    /// The contract checks over the mapped object; a failure names the source paths of
    /// the field it is about.
    pub(crate) fn event(&self) -> Result<Event<'_>, Rejection> {
        match parse(self.contract.as_bytes(), usize::MAX) {
            Ok(mut event) => {
                event.extra = self.extra.clone();
                Ok(event)
            }
            Err(mut r) => {
                if let Some(m) = self
                    .table
                    .iter()
                    .find(|m| r.message.contains(&format!("`{}`", m.field)))
                {
                    let _ = write!(r.message, " (from {} ", self.preset);
                    for (i, p) in m.paths.iter().enumerate() {
                        let sep = if i == 0 { "" } else { " or " };
                        let _ = write!(r.message, "{sep}`{p}`");
                    }
                    r.message.push(')');
                }
                Err(r)
            }
        }
    }
}

fn convert(
    value: &Value,
    conversion: Conversion,
    preset: Preset,
    path: &str,
    field: &str,
) -> Result<Value, Rejection> {
    Ok(match (conversion, value) {
        (Conversion::Verbatim, v) => v.clone(),
        (Conversion::EpochMillis, v) => {
            let ms = v.as_i64().filter(|_| !v.is_f64()).ok_or_else(|| {
                Rejection::new(
                    DeadLetterReason::WrongType,
                    format!(
                        "{preset} field `{path}` (for `{field}`) must be an integer of milliseconds since the epoch, got {}",
                        type_name(v)
                    ),
                )
            })?;
            let t = DateTime::from_timestamp_millis(ms).ok_or_else(|| {
                Rejection::new(
                    DeadLetterReason::InvalidValue,
                    format!(
                        "{preset} field `{path}` (for `{field}`) is {ms}, not a representable time"
                    ),
                )
            })?;
            Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        }
        (Conversion::Lowercase, Value::String(s)) => Value::String(s.to_lowercase()),
        (Conversion::OcsfSeverity, Value::String(s)) => {
            let s = s.to_lowercase();
            Value::String(if s == "informational" {
                "info".into()
            } else {
                s
            })
        }
        // Not a string: the contract check reports the wrong type with the path.
        (Conversion::Lowercase | Conversion::OcsfSeverity, v) => v.clone(),
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Removes the value at `parts` in nested form (no flattened keys), and the objects it
/// leaves empty (array elements stay, so that the positions of the others do not move).
fn take(value: &mut Value, parts: &[Part<'_>]) -> Option<Value> {
    let (first, rest) = parts.split_first()?;
    let obj = value.as_object_mut()?;
    match (first.index, rest.is_empty()) {
        (None, true) => obj.remove(first.key),
        (None, false) => {
            let child = obj.get_mut(first.key)?;
            let taken = take(child, rest);
            if taken.is_some() && child.as_object().is_some_and(Map::is_empty) {
                obj.remove(first.key);
            }
            taken
        }
        (Some(_), true) => None,
        (Some(i), false) => obj
            .get_mut(first.key)?
            .as_array_mut()?
            .get_mut(i)
            .and_then(|el| take(el, rest)),
    }
}

const DUPLICATE: &str = "duplicate field";

/// A JSON value that refuses an object with a key twice, at any depth (a map would keep
/// only the last, and the archive must not lose the other).
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Strict(Value::Array(out)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("{DUPLICATE} `{key}`")));
            }
            out.insert(key, v);
        }
        Ok(Strict(Value::Object(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::schema::events as col;

    fn mapped(preset: Preset, msg: &str) -> Result<Mapped, Rejection> {
        Mapped::new(msg.as_bytes(), 1 << 20, preset, table(preset).unwrap())
    }

    #[test]
    fn every_table_maps_each_contract_field_once() {
        let mut fields: Vec<&str> = rampart_core::schema::OPTIONAL_STRING_FIELDS.to_vec();
        fields.extend([
            col::TS,
            col::RESOURCE_ID,
            col::RESOURCE_TYPE,
            col::CATEGORY,
            col::DST_PORT,
            col::PATCHED,
            col::POLICY_ALLOWED,
        ]);
        fields.sort_unstable();
        for t in [ECS, OCSF] {
            let mut mapped: Vec<&str> = t.iter().map(|m| m.field).collect();
            mapped.sort_unstable();
            assert_eq!(mapped, fields);
        }
    }

    #[test]
    fn nested_and_flattened_ecs_paths_give_the_same_event() {
        let nested = r#"{"@timestamp":"2026-11-28T09:41:07.123Z","cloud":{"instance":{"id":"vm-1"},"provider":"azure"},"rampart":{"resource_type":"vm"},"event":{"action":"malware","kind":"alert"},"destination":{"port":22}}"#;
        let flat = r#"{"@timestamp":"2026-11-28T09:41:07.123Z","cloud.instance.id":"vm-1","cloud.provider":"azure","rampart.resource_type":"vm","event.action":"malware","event":{"kind":"alert"},"destination.port":22}"#;
        let a = mapped(Preset::Ecs, nested).unwrap();
        let b = mapped(Preset::Ecs, flat).unwrap();
        let (a, b) = (a.event().unwrap(), b.event().unwrap());
        assert_eq!(a.resource_id, "vm-1");
        assert_eq!(a.dst_port, Some(22));
        assert_eq!(
            (&a.resource_id, &a.category, a.dst_port),
            (&b.resource_id, &b.category, b.dst_port)
        );
        // What is not mapped stays, and what is mapped verbatim leaves.
        assert_eq!(
            a.extra.as_deref(),
            Some(r#"{"cloud":{"provider":"azure"},"event":{"kind":"alert"}}"#)
        );
        // Flattened keys stay: the original form is not the table's nested one.
        let flat_extra: Value = serde_json::from_str(b.extra.as_deref().unwrap()).unwrap();
        let original: Value = serde_json::from_str(flat).unwrap();
        let mut without_ts = original.clone();
        without_ts.as_object_mut().unwrap().remove("@timestamp");
        assert_eq!(flat_extra, without_ts);
    }

    #[test]
    fn a_fallback_path_is_used_when_the_first_is_absent() {
        let m = r#"{"@timestamp":"2026-11-28T09:41:07Z","host":{"id":"h-9"},"rampart":{"resource_type":"vm"},"event":{"action":"auth"}}"#;
        let m = mapped(Preset::Ecs, m).unwrap();
        let e = m.event().unwrap();
        assert_eq!(e.resource_id, "h-9");
        // Kept where it was found: the column alone would not say which path it had.
        assert_eq!(e.extra.as_deref(), Some(r#"{"host":{"id":"h-9"}}"#));
    }

    #[test]
    fn ocsf_time_and_captions_are_converted_and_kept() {
        let m = r#"{"time":1795858867123,"class_uid":2004,"status":"Failure","severity":"Informational","resources":[{"uid":"sa-1","type":"storage","data_classification":{"classification":"Confidential"}}],"unmapped":{"category":"data_access"}}"#;
        let m = mapped(Preset::Ocsf, m).unwrap();
        let e = m.event().unwrap();
        assert_eq!(e.ts_micros, 1_795_858_867_123_000);
        assert_eq!(e.ts_raw, None);
        let s = |f: &str| {
            let i = rampart_core::schema::OPTIONAL_STRING_FIELDS
                .iter()
                .position(|x| *x == f)
                .unwrap();
            e.strings[i].as_deref().map(str::to_string)
        };
        assert_eq!(s(col::OUTCOME).as_deref(), Some("failure"));
        assert_eq!(s(col::SEVERITY).as_deref(), Some("info"));
        assert_eq!(s(col::CLASSIFICATION).as_deref(), Some("confidential"));
        let extra: Value = serde_json::from_str(e.extra.as_deref().unwrap()).unwrap();
        assert_eq!(extra["time"], 1_795_858_867_123_i64);
        assert_eq!(extra["status"], "Failure");
        assert_eq!(
            extra["resources"][0]["data_classification"]["classification"],
            "Confidential"
        );
        assert_eq!(extra["class_uid"], 2004);
        assert!(extra["resources"][0].get("uid").is_none(), "{extra}");
        assert!(extra.get("unmapped").is_none(), "{extra}");
    }

    #[test]
    fn failures_name_the_source_path() {
        use DeadLetterReason::*;
        let cases = [
            (
                Preset::Ecs,
                r#"{"@timestamp":"2026-11-28T09:41:07Z","rampart":{"resource_type":"vm"},"event":{"action":"auth"}}"#,
                MissingField,
                "`resource_id` is missing or null (from ecs `cloud.instance.id` or `host.id`)",
            ),
            (
                Preset::Ecs,
                r#"{"@timestamp":"2026-11-28T09:41:07Z","cloud":{"instance":{"id":"v"}},"rampart":{"resource_type":"vm"},"event":{"action":"auth"},"destination":{"port":"22"}}"#,
                WrongType,
                "(from ecs `destination.port`)",
            ),
            (
                Preset::Ocsf,
                r#"{"time":"2026-11-28T09:41:07Z","resources":[{"uid":"r","type":"vm"}],"unmapped":{"category":"auth"}}"#,
                WrongType,
                "ocsf field `time` (for `ts`) must be an integer",
            ),
            (
                Preset::Ocsf,
                r#"{"time":1795858867123,"resources":[{"type":"vm"}],"unmapped":{"category":"auth"}}"#,
                MissingField,
                "(from ocsf `resources[0].uid`)",
            ),
            (
                Preset::Ocsf,
                r#"{"time":1,"resources":[{"uid":"r","type":"vm","uid":"s"}]}"#,
                DuplicateField,
                "`uid`",
            ),
            (Preset::Ocsf, "[1]", NotObject, "array"),
            (Preset::Ecs, "{\"a\":", NotJson, "not JSON"),
        ];
        for (preset, msg, reason, needle) in cases {
            let r = mapped(preset, msg)
                .and_then(|m| m.event().map(|_| ()))
                .unwrap_err();
            assert_eq!(r.reason, reason, "{msg}: {r}");
            assert!(r.message.contains(needle), "{msg}: {r} lacks {needle:?}");
        }
    }
}
