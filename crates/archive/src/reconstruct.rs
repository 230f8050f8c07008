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
use rampart_core::schema::{OPTIONAL_STRING_FIELDS, events as col};
use serde_json::{Map, Value};

/// Rebuilds the event at `row` of a batch with the `events` columns (extra columns,
/// such as partition columns, are ignored). Returns `None` when a required column is
/// missing from the batch or `extra` is not a JSON object.
pub fn event_json(batch: &RecordBatch, row: usize) -> Option<Map<String, Value>> {
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
    if let Some(extra) = string(col::EXTRA)? {
        // The writer stores a JSON object here; anything else cannot be rebuilt.
        let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&extra) else {
            return None;
        };
        out.extend(fields);
    }
    Some(out)
}
