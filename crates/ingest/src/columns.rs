//! Arrow builders for the two tables the decoder writes, in the core schemas' order.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryBuilder, BooleanBuilder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use rampart_core::SourcePos;
use rampart_core::schema::{
    self, OPTIONAL_STRING_FIELDS, dead_letters as dl, events as ev, source as src,
};

use crate::decode::{Event, Rejection};
use crate::{Error, Result};

fn ts_builder() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

/// Finishes `b` into an array and leaves in its place a builder with room for as many
/// rows and bytes and an eighth more: the next chunk, about the same size, then appends
/// without the builder growing (and copying) its buffers again and again.
fn finish_sized(b: &mut StringBuilder) -> ArrayRef {
    let array = b.finish();
    let (rows, bytes) = (array.len(), array.value_data().len());
    *b = StringBuilder::with_capacity(rows + rows / 8, bytes + bytes / 8);
    Arc::new(array)
}

/// Assembles named columns in the order of `schema`.
fn assemble(
    table: &'static str,
    schema: SchemaRef,
    mut columns: HashMap<&'static str, ArrayRef>,
) -> Result<RecordBatch> {
    let ordered = schema
        .fields()
        .iter()
        .map(|f| {
            columns
                .remove(f.name().as_str())
                .ok_or_else(|| Error::Batch {
                    table,
                    source: arrow::error::ArrowError::SchemaError(format!(
                        "decoder has no column {}",
                        f.name()
                    )),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(schema, ordered).map_err(|source| Error::Batch { table, source })
}

/// The source coordinate columns shared by both tables. A row has either the file's
/// columns or the Kafka ones, the others null; those nulls are counted and appended a
/// run at a time (before the next row of the other kind, or at the end), not five per
/// row.
#[derive(Debug)]
struct SourceColumns {
    file: StringBuilder,
    line: Int64Builder,
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    timestamp: TimestampMicrosecondBuilder,
    key: BinaryBuilder,
    /// Rows (of Kafka records) whose file columns are still to be appended, as nulls:
    /// they are, before the next file line's values.
    file_nulls: usize,
    /// Rows (of file lines) whose Kafka columns are still to be appended, as nulls:
    /// they are, before the next Kafka record's values.
    kafka_nulls: usize,
}

impl Default for SourceColumns {
    fn default() -> Self {
        Self {
            file: StringBuilder::new(),
            line: Int64Builder::new(),
            topic: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            timestamp: ts_builder(),
            key: BinaryBuilder::new(),
            file_nulls: 0,
            kafka_nulls: 0,
        }
    }
}

impl SourceColumns {
    fn append(&mut self, pos: &SourcePos) {
        match pos {
            SourcePos::File { path, line } => {
                self.append_file_nulls();
                self.file.append_value(path);
                self.line
                    .append_value(i64::try_from(*line).unwrap_or(i64::MAX));
                self.kafka_nulls += 1;
            }
            SourcePos::Kafka {
                topic,
                partition,
                offset,
                timestamp_ms,
                key,
            } => {
                self.append_kafka_nulls();
                self.topic.append_value(topic);
                self.partition.append_value(*partition);
                self.offset.append_value(*offset);
                self.timestamp
                    .append_option(timestamp_ms.map(|ms| ms.saturating_mul(1000)));
                self.key.append_option(key.as_deref());
                self.file_nulls += 1;
            }
        }
    }

    fn append_file_nulls(&mut self) {
        let n = std::mem::take(&mut self.file_nulls);
        if n > 0 {
            self.file.append_nulls(n);
            self.line.append_nulls(n);
        }
    }

    fn append_kafka_nulls(&mut self) {
        let n = std::mem::take(&mut self.kafka_nulls);
        if n > 0 {
            self.topic.append_nulls(n);
            self.partition.append_nulls(n);
            self.offset.append_nulls(n);
            self.timestamp.append_nulls(n);
            self.key.append_nulls(n);
        }
    }

    fn finish_into(&mut self, out: &mut HashMap<&'static str, ArrayRef>) {
        self.append_file_nulls();
        self.append_kafka_nulls();
        out.insert(src::SOURCE_FILE, finish_sized(&mut self.file));
        out.insert(src::SOURCE_LINE, Arc::new(self.line.finish()));
        out.insert(src::KAFKA_TOPIC, Arc::new(self.topic.finish()));
        out.insert(src::KAFKA_PARTITION, Arc::new(self.partition.finish()));
        out.insert(src::KAFKA_OFFSET, Arc::new(self.offset.finish()));
        out.insert(src::KAFKA_TIMESTAMP, Arc::new(self.timestamp.finish()));
        out.insert(src::KAFKA_KEY, Arc::new(self.key.finish()));
    }
}

/// Builders for `events`.
#[derive(Debug)]
pub(crate) struct EventColumns {
    ts: TimestampMicrosecondBuilder,
    resource_id: StringBuilder,
    resource_type: StringBuilder,
    category: StringBuilder,
    strings: [StringBuilder; OPTIONAL_STRING_FIELDS.len()],
    dst_port: Int32Builder,
    patched: BooleanBuilder,
    policy_allowed: BooleanBuilder,
    extra: StringBuilder,
    ts_raw: StringBuilder,
    source: SourceColumns,
    ingested_at: TimestampMicrosecondBuilder,
    len: usize,
}

impl Default for EventColumns {
    fn default() -> Self {
        Self {
            ts: ts_builder(),
            resource_id: StringBuilder::new(),
            resource_type: StringBuilder::new(),
            category: StringBuilder::new(),
            strings: std::array::from_fn(|_| StringBuilder::new()),
            dst_port: Int32Builder::new(),
            patched: BooleanBuilder::new(),
            policy_allowed: BooleanBuilder::new(),
            extra: StringBuilder::new(),
            ts_raw: StringBuilder::new(),
            source: SourceColumns::default(),
            ingested_at: ts_builder(),
            len: 0,
        }
    }
}

impl EventColumns {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn append(&mut self, e: &Event<'_>, pos: &SourcePos, ingested_at: i64) {
        self.ts.append_value(e.ts_micros);
        self.resource_id.append_value(&e.resource_id);
        self.resource_type.append_value(&e.resource_type);
        self.category.append_value(&e.category);
        for (b, v) in self.strings.iter_mut().zip(&e.strings) {
            b.append_option(v.as_deref());
        }
        self.dst_port.append_option(e.dst_port);
        self.patched.append_option(e.patched);
        self.policy_allowed.append_option(e.policy_allowed);
        self.extra.append_option(e.extra.as_deref());
        self.ts_raw.append_option(e.ts_raw.as_deref());
        self.source.append(pos);
        self.ingested_at.append_value(ingested_at);
        self.len += 1;
    }

    pub(crate) fn finish(&mut self) -> Result<RecordBatch> {
        let mut c: HashMap<&'static str, ArrayRef> = HashMap::new();
        c.insert(ev::TS, Arc::new(self.ts.finish()));
        c.insert(ev::RESOURCE_ID, finish_sized(&mut self.resource_id));
        c.insert(ev::RESOURCE_TYPE, finish_sized(&mut self.resource_type));
        c.insert(ev::CATEGORY, finish_sized(&mut self.category));
        for (name, b) in OPTIONAL_STRING_FIELDS.iter().zip(self.strings.iter_mut()) {
            c.insert(name, finish_sized(b));
        }
        c.insert(ev::DST_PORT, Arc::new(self.dst_port.finish()));
        c.insert(ev::PATCHED, Arc::new(self.patched.finish()));
        c.insert(ev::POLICY_ALLOWED, Arc::new(self.policy_allowed.finish()));
        c.insert(ev::EXTRA, finish_sized(&mut self.extra));
        c.insert(ev::TS_RAW, Arc::new(self.ts_raw.finish()));
        self.source.finish_into(&mut c);
        c.insert(ev::INGESTED_AT, Arc::new(self.ingested_at.finish()));
        self.len = 0;
        assemble(schema::EVENTS, schema::events_schema(), c)
    }
}

/// Builders for `dead_letters`.
#[derive(Debug)]
pub(crate) struct DeadLetterColumns {
    received_at: TimestampMicrosecondBuilder,
    reason_code: StringBuilder,
    reason: StringBuilder,
    raw: BinaryBuilder,
    source: SourceColumns,
    len: usize,
}

impl Default for DeadLetterColumns {
    fn default() -> Self {
        Self {
            received_at: ts_builder(),
            reason_code: StringBuilder::new(),
            reason: StringBuilder::new(),
            raw: BinaryBuilder::new(),
            source: SourceColumns::default(),
            len: 0,
        }
    }
}

impl DeadLetterColumns {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn append(
        &mut self,
        raw: &[u8],
        why: &Rejection,
        pos: &SourcePos,
        received_at: i64,
    ) {
        self.received_at.append_value(received_at);
        self.reason_code.append_value(why.reason.as_str());
        self.reason.append_value(&why.message);
        self.raw.append_value(raw);
        self.source.append(pos);
        self.len += 1;
    }

    pub(crate) fn finish(&mut self) -> Result<RecordBatch> {
        let mut c: HashMap<&'static str, ArrayRef> = HashMap::new();
        c.insert(dl::RECEIVED_AT, Arc::new(self.received_at.finish()));
        c.insert(dl::REASON_CODE, Arc::new(self.reason_code.finish()));
        c.insert(dl::REASON, Arc::new(self.reason.finish()));
        c.insert(dl::RAW, Arc::new(self.raw.finish()));
        self.source.finish_into(&mut c);
        self.len = 0;
        assemble(schema::DEAD_LETTERS, schema::dead_letters_schema(), c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};

    /// Rows of both kinds, interleaved: each row has its own kind's columns and nulls in
    /// the other's, in order, however the nulls were appended.
    #[test]
    fn source_columns_hold_each_rows_coordinates_in_order() {
        let file = |line| SourcePos::File {
            path: Arc::from("/f.jsonl"),
            line,
        };
        let kafka = |offset, key: Option<&[u8]>| SourcePos::Kafka {
            topic: Arc::from("t"),
            partition: 3,
            offset,
            timestamp_ms: Some(offset * 10),
            key: key.map(Arc::from),
        };
        let rows = [
            file(1),
            kafka(7, Some(b"k")),
            kafka(8, None),
            file(2),
            file(3),
            kafka(9, Some(b"j")),
        ];
        let mut columns = SourceColumns::default();
        for pos in &rows {
            columns.append(pos);
        }
        let mut out = HashMap::new();
        columns.finish_into(&mut out);
        let col = |name: &str| Arc::clone(&out[name]);
        for a in out.values() {
            assert_eq!(a.len(), rows.len());
        }
        let (files, lines) = (col(src::SOURCE_FILE), col(src::SOURCE_LINE));
        let (topics, parts) = (col(src::KAFKA_TOPIC), col(src::KAFKA_PARTITION));
        let (offsets, times) = (col(src::KAFKA_OFFSET), col(src::KAFKA_TIMESTAMP));
        let keys = col(src::KAFKA_KEY);
        for (i, pos) in rows.iter().enumerate() {
            match pos {
                SourcePos::File { path, line } => {
                    assert_eq!(files.as_string::<i32>().value(i), &**path);
                    assert_eq!(lines.as_primitive::<Int64Type>().value(i), *line as i64);
                    for kafka_column in [&topics, &parts, &offsets, &times, &keys] {
                        assert!(kafka_column.is_null(i), "row {i}: {kafka_column:?}");
                    }
                }
                SourcePos::Kafka {
                    offset,
                    timestamp_ms,
                    key,
                    ..
                } => {
                    assert!(files.is_null(i) && lines.is_null(i), "row {i}");
                    assert_eq!(topics.as_string::<i32>().value(i), "t");
                    assert_eq!(parts.as_primitive::<Int32Type>().value(i), 3);
                    assert_eq!(offsets.as_primitive::<Int64Type>().value(i), *offset);
                    let micros = timestamp_ms.unwrap() * 1000;
                    let ts = times.as_primitive::<TimestampMicrosecondType>();
                    assert_eq!(ts.value(i), micros);
                    let got = (!keys.is_null(i)).then(|| keys.as_binary::<i32>().value(i));
                    assert_eq!(got, key.as_deref(), "row {i}");
                }
            }
        }
    }
}
