//! Rebuilding the original event from an `events` row: the proof that nothing was lost.
//!
//! The contract fields come from their columns (a null column is an absent field, as the
//! contract treats `null` and absent alike), `ts` from `ts_raw` when the producer's text
//! was not canonical, and every other field from `extra`, verbatim. The result equals
//! the original JSON object as a JSON value, up to key order, whitespace and `null`
//! given for an optional contract field.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int32Type, TimestampMicrosecondType};
use chrono::{DateTime, SecondsFormat, Utc};
use rampart_core::config::Preset;
use rampart_core::preset::{Conversion, Part, get, parse_path};
use rampart_core::schema::{OPTIONAL_STRING_FIELDS, events as col};
use serde_json::{Map, Value};

/// Rebuilds the event at `row` of a batch with the `events` columns (extra columns,
/// such as partition columns, are ignored). Returns `None` when a required column is
/// missing from the batch or `extra` is not a JSON object.
pub fn event_json(batch: &RecordBatch, row: usize) -> Option<Map<String, Value>> {
    let mut out = contract_json(batch, row)?;
    out.extend(extra_json(batch, row)?);
    Some(out)
}

/// Rebuilds the event at `row` in the shape it was read in under `preset` (`[input]
/// preset`): `extra`, with each contract column the preset copied verbatim put back at
/// its field's first path, unless `extra` already holds the field at one of its paths
/// (the decoder leaves a value there when it came from a fallback path or a flattened
/// key). Converted values (OCSF `time`, `status`, ...) are in `extra` as they came.
/// For `native` this is [`event_json`].
pub fn event_json_as(
    batch: &RecordBatch,
    row: usize,
    preset: Preset,
) -> Option<Map<String, Value>> {
    let Some(table) = rampart_core::preset::table(preset) else {
        return event_json(batch, row);
    };
    let contract = contract_json(batch, row)?;
    let mut out = Value::Object(extra_json(batch, row)?);
    for m in table {
        let Some(value) = contract.get(m.field) else {
            continue;
        };
        let held = m.paths.iter().any(|p| get(&out, &parse_path(p)).is_some());
        if m.conversion == Conversion::Verbatim && !held {
            insert(&mut out, &parse_path(m.paths[0]), value.clone());
        }
    }
    match out {
        Value::Object(o) => Some(o),
        _ => None,
    }
}

/// Sets `value` at `parts`, creating the objects and array elements on the way.
fn insert(at: &mut Value, parts: &[Part<'_>], value: Value) {
    let Some((first, rest)) = parts.split_first() else {
        *at = value;
        return;
    };
    if !at.is_object() {
        *at = Value::Object(Map::new());
    }
    let Value::Object(obj) = at else {
        return;
    };
    let mut child = obj.entry(first.key).or_insert(Value::Null);
    if let Some(i) = first.index {
        if !child.is_array() {
            *child = Value::Array(Vec::new());
        }
        let Value::Array(items) = child else {
            return;
        };
        if items.len() <= i {
            items.resize(i + 1, Value::Object(Map::new()));
        }
        child = &mut items[i];
    }
    insert(child, rest, value);
}

/// The fields outside the contract, from `extra` (empty when null); `None` when `extra`
/// is missing from the batch or not a JSON object.
fn extra_json(batch: &RecordBatch, row: usize) -> Option<Map<String, Value>> {
    let c = batch.column_by_name(col::EXTRA)?;
    let text = match c.data_type() {
        DataType::Utf8 => {
            let v = c.as_string::<i32>();
            (!v.is_null(row)).then(|| v.value(row))
        }
        DataType::Utf8View => {
            let v = c.as_string_view();
            (!v.is_null(row)).then(|| v.value(row))
        }
        DataType::LargeUtf8 => {
            let v = c.as_string::<i64>();
            (!v.is_null(row)).then(|| v.value(row))
        }
        _ => return None,
    };
    match text {
        None => Some(Map::new()),
        // The writer stores a JSON object here; anything else cannot be rebuilt.
        Some(t) => match serde_json::from_str::<Value>(t) {
            Ok(Value::Object(fields)) => Some(fields),
            _ => None,
        },
    }
}

/// The contract fields of the row, by their contract names.
fn contract_json(batch: &RecordBatch, row: usize) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    let string = |name: &str| -> Option<Option<String>> {
        let c = batch.column_by_name(name)?;
        let v = match c.data_type() {
            DataType::Utf8 => c.as_string::<i32>(),
            DataType::Utf8View => {
                let v = c.as_string_view();
                return Some((!v.is_null(row)).then(|| v.value(row).to_string()));
            }
            DataType::LargeUtf8 => {
                let v = c.as_string::<i64>();
                return Some((!v.is_null(row)).then(|| v.value(row).to_string()));
            }
            _ => return None,
        };
        Some((!v.is_null(row)).then(|| v.value(row).to_string()))
    };
    let boolean = |name: &str| -> Option<Option<bool>> {
        let c = batch.column_by_name(name)?.as_boolean_opt()?;
        Some((!c.is_null(row)).then(|| c.value(row)))
    };

    let ts = match string(col::TS_RAW)? {
        Some(raw) => raw,
        None => {
            let c = batch
                .column_by_name(col::TS)?
                .as_primitive_opt::<TimestampMicrosecondType>()?;
            DateTime::<Utc>::from_timestamp_micros(c.value(row))?
                .to_rfc3339_opts(SecondsFormat::AutoSi, true)
        }
    };
    out.insert(col::TS.into(), Value::String(ts));
    for name in [col::RESOURCE_ID, col::RESOURCE_TYPE, col::CATEGORY]
        .into_iter()
        .chain(OPTIONAL_STRING_FIELDS)
    {
        if let Some(v) = string(name)? {
            out.insert(name.into(), Value::String(v));
        }
    }
    let port = batch
        .column_by_name(col::DST_PORT)?
        .as_primitive_opt::<Int32Type>()?;
    if !port.is_null(row) {
        out.insert(col::DST_PORT.into(), Value::from(port.value(row)));
    }
    for name in [col::PATCHED, col::POLICY_ALLOWED] {
        if let Some(v) = boolean(name)? {
            out.insert(name.into(), Value::Bool(v));
        }
    }
    Some(out)
}
