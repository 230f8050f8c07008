//! The Arrow schemas of the archive tables: the contract between writer and readers.
//!
//! Column names of `events` are the event contract's field names. Timestamps are
//! microseconds in UTC (`timestamp[us, tz=UTC]`), which DuckDB, Spark, Trino and Athena
//! all read natively. The hive partition columns `date` and `hour` are not stored in the
//! files; readers derive them from the path (see [`crate::layout`]).

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Table of accepted events.
pub const EVENTS: &str = "events";
/// Table of rejected messages with the reason and their raw bytes.
pub const DEAD_LETTERS: &str = "dead_letters";
/// Per-window attack counts and rates, per resource and attack category.
pub const ATTACK_RATES: &str = "attack_rates";
/// Per-window rule hits, per resource and rule.
pub const POLICY_HITS: &str = "policy_hits";
/// Violation changes: a violation opening or being resolved.
pub const VIOLATIONS: &str = "violations";
/// Every query and export run against the archive: who, when, what, how many rows.
pub const ACCESS_LOG: &str = "access_log";

/// Columns of `events`, in schema order.
pub mod events {
    pub const TS: &str = "ts";
    pub const RESOURCE_ID: &str = "resource_id";
    pub const RESOURCE_TYPE: &str = "resource_type";
    pub const CATEGORY: &str = "category";
    pub const WORKLOAD: &str = "workload";
    pub const OUTCOME: &str = "outcome";
    pub const SEVERITY: &str = "severity";
    pub const SRC_IP: &str = "src_ip";
    pub const DST_IP: &str = "dst_ip";
    pub const DST_PORT: &str = "dst_port";
    pub const PROTOCOL: &str = "protocol";
    pub const USER: &str = "user";
    pub const CLASSIFICATION: &str = "classification";
    pub const VULN_ID: &str = "vuln_id";
    pub const PATCHED: &str = "patched";
    pub const POLICY_ALLOWED: &str = "policy_allowed";
    pub const MESSAGE: &str = "message";
    /// Fields outside the contract, as the text of one JSON object (null when none).
    pub const EXTRA: &str = "extra";
    /// The original text of `ts` when it differs from the canonical UTC rendering of the
    /// stored microseconds (an offset other than `Z`, sub-microsecond digits, ...).
    pub const TS_RAW: &str = "ts_raw";
    /// Wall-clock time at which Rampart decoded the event.
    pub const INGESTED_AT: &str = "ingested_at";
}

/// Columns of `dead_letters`, in schema order (the source columns follow).
pub mod dead_letters {
    /// Wall-clock time at which Rampart received the message; the table is partitioned by it.
    pub const RECEIVED_AT: &str = "received_at";
    /// A stable code, see [`crate::DeadLetterReason`].
    pub const REASON_CODE: &str = "reason_code";
    /// What was wrong, for a person.
    pub const REASON: &str = "reason";
    /// The message exactly as received.
    pub const RAW: &str = "raw";
}

/// Columns of `attack_rates`.
pub mod attack_rates {
    pub const WINDOW_START: &str = "window_start";
    pub const WINDOW_END: &str = "window_end";
    pub const RESOURCE_ID: &str = "resource_id";
    pub const WORKLOAD: &str = "workload";
    pub const CATEGORY: &str = "category";
    pub const EVENT_COUNT: &str = "event_count";
    pub const RATE_PER_MIN: &str = "rate_per_min";
}

/// Columns of `policy_hits`.
pub mod policy_hits {
    pub const WINDOW_START: &str = "window_start";
    pub const WINDOW_END: &str = "window_end";
    pub const RESOURCE_ID: &str = "resource_id";
    pub const WORKLOAD: &str = "workload";
    pub const RULE_ID: &str = "rule_id";
    pub const RULE_VERSION: &str = "rule_version";
    pub const ACTION: &str = "action";
    /// The attack category for `attack_increase`; null for event rules.
    pub const CATEGORY: &str = "category";
    pub const HIT_COUNT: &str = "hit_count";
    pub const PREV_COUNT: &str = "prev_count";
    pub const INCREASE_PCT: &str = "increase_pct";
}

/// Columns of `violations`: one row per change (opened or resolved).
pub mod violations {
    /// Event time of the change: the opening hit or the remedy. Partitions the table.
    pub const CHANGED_AT: &str = "changed_at";
    pub const RESOURCE_ID: &str = "resource_id";
    pub const WORKLOAD: &str = "workload";
    pub const RULE_ID: &str = "rule_id";
    pub const RULE_VERSION: &str = "rule_version";
    pub const ACTION: &str = "action";
    /// `open` or `resolved`.
    pub const STATE: &str = "state";
    pub const OPENED_AT: &str = "opened_at";
    pub const RESOLVED_AT: &str = "resolved_at";
    /// The event that opened the violation, as a source reference (see `SourcePos`).
    pub const OPENED_BY: &str = "opened_by";
    /// The event that remedied it (resolved rows only).
    pub const RESOLVED_BY: &str = "resolved_by";
}

/// Columns of `access_log`, in schema order.
pub mod access_log {
    pub const AT: &str = "at";
    /// `query` or `export`.
    pub const KIND: &str = "kind";
    /// The user name the tool ran as, if known.
    pub const USER: &str = "user";
    /// The SQL statement (or the export's selection).
    pub const STATEMENT: &str = "statement";
    pub const ROWS: &str = "rows";
    /// `ok`, or the error's message.
    pub const OUTCOME: &str = "outcome";
    pub const TOOL: &str = "tool";
}

/// Source coordinate columns, shared by `events` and `dead_letters`.
pub mod source {
    pub const SOURCE_FILE: &str = "source_file";
    pub const SOURCE_LINE: &str = "source_line";
    pub const KAFKA_TOPIC: &str = "kafka_topic";
    pub const KAFKA_PARTITION: &str = "kafka_partition";
    pub const KAFKA_OFFSET: &str = "kafka_offset";
    pub const KAFKA_TIMESTAMP: &str = "kafka_timestamp";
    pub const KAFKA_KEY: &str = "kafka_key";
}

/// The contract fields of an event that are plain optional strings, in schema order
/// after the four required ones. `dst_port`, `patched` and `policy_allowed` are typed.
pub const OPTIONAL_STRING_FIELDS: [&str; 10] = [
    events::WORKLOAD,
    events::OUTCOME,
    events::SEVERITY,
    events::SRC_IP,
    events::DST_IP,
    events::PROTOCOL,
    events::USER,
    events::CLASSIFICATION,
    events::VULN_ID,
    events::MESSAGE,
];

/// Timestamp type of every time column: microseconds, UTC.
pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn source_fields() -> Vec<Field> {
    vec![
        Field::new(source::SOURCE_FILE, DataType::Utf8, true),
        Field::new(source::SOURCE_LINE, DataType::Int64, true),
        Field::new(source::KAFKA_TOPIC, DataType::Utf8, true),
        Field::new(source::KAFKA_PARTITION, DataType::Int32, true),
        Field::new(source::KAFKA_OFFSET, DataType::Int64, true),
        Field::new(source::KAFKA_TIMESTAMP, ts_type(), true),
        Field::new(source::KAFKA_KEY, DataType::Binary, true),
    ]
}

static EVENTS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use events::*;
    let s = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    let mut fields = vec![
        Field::new(TS, ts_type(), false),
        s(RESOURCE_ID, false),
        s(RESOURCE_TYPE, false),
        s(CATEGORY, false),
        s(WORKLOAD, true),
        s(OUTCOME, true),
        s(SEVERITY, true),
        s(SRC_IP, true),
        s(DST_IP, true),
        Field::new(DST_PORT, DataType::Int32, true),
        s(PROTOCOL, true),
        s(USER, true),
        s(CLASSIFICATION, true),
        s(VULN_ID, true),
        Field::new(PATCHED, DataType::Boolean, true),
        Field::new(POLICY_ALLOWED, DataType::Boolean, true),
        s(MESSAGE, true),
        s(EXTRA, true),
        s(TS_RAW, true),
    ];
    fields.extend(source_fields());
    fields.push(Field::new(INGESTED_AT, ts_type(), false));
    Arc::new(Schema::new(fields))
});

static DEAD_LETTERS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use dead_letters::*;
    let mut fields = vec![
        Field::new(RECEIVED_AT, ts_type(), false),
        Field::new(REASON_CODE, DataType::Utf8, false),
        Field::new(REASON, DataType::Utf8, false),
        Field::new(RAW, DataType::Binary, false),
    ];
    fields.extend(source_fields());
    Arc::new(Schema::new(fields))
});

static ATTACK_RATES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use attack_rates::*;
    Arc::new(Schema::new(vec![
        Field::new(WINDOW_START, ts_type(), false),
        Field::new(WINDOW_END, ts_type(), false),
        Field::new(RESOURCE_ID, DataType::Utf8, false),
        Field::new(WORKLOAD, DataType::Utf8, true),
        Field::new(CATEGORY, DataType::Utf8, false),
        Field::new(EVENT_COUNT, DataType::Int64, false),
        Field::new(RATE_PER_MIN, DataType::Float64, false),
    ]))
});

static POLICY_HITS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use policy_hits::*;
    Arc::new(Schema::new(vec![
        Field::new(WINDOW_START, ts_type(), false),
        Field::new(WINDOW_END, ts_type(), false),
        Field::new(RESOURCE_ID, DataType::Utf8, false),
        Field::new(WORKLOAD, DataType::Utf8, true),
        Field::new(RULE_ID, DataType::Utf8, false),
        Field::new(RULE_VERSION, DataType::Int32, false),
        Field::new(ACTION, DataType::Utf8, false),
        Field::new(CATEGORY, DataType::Utf8, true),
        Field::new(HIT_COUNT, DataType::Int64, false),
        Field::new(PREV_COUNT, DataType::Int64, true),
        Field::new(INCREASE_PCT, DataType::Float64, true),
    ]))
});

static VIOLATIONS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use violations::*;
    Arc::new(Schema::new(vec![
        Field::new(CHANGED_AT, ts_type(), false),
        Field::new(RESOURCE_ID, DataType::Utf8, false),
        Field::new(WORKLOAD, DataType::Utf8, true),
        Field::new(RULE_ID, DataType::Utf8, false),
        Field::new(RULE_VERSION, DataType::Int32, false),
        Field::new(ACTION, DataType::Utf8, false),
        Field::new(STATE, DataType::Utf8, false),
        Field::new(OPENED_AT, ts_type(), false),
        Field::new(RESOLVED_AT, ts_type(), true),
        Field::new(OPENED_BY, DataType::Utf8, false),
        Field::new(RESOLVED_BY, DataType::Utf8, true),
    ]))
});

static ACCESS_LOG_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use access_log::*;
    Arc::new(Schema::new(vec![
        Field::new(AT, ts_type(), false),
        Field::new(KIND, DataType::Utf8, false),
        Field::new(USER, DataType::Utf8, true),
        Field::new(STATEMENT, DataType::Utf8, false),
        Field::new(ROWS, DataType::Int64, false),
        Field::new(OUTCOME, DataType::Utf8, false),
        Field::new(TOOL, DataType::Utf8, false),
    ]))
});

/// One archive table: its name, its Arrow schema and the timestamp column whose UTC
/// date and hour partition it.
#[derive(Debug, Clone)]
pub struct TableDef {
    name: &'static str,
    schema: SchemaRef,
    time_column: &'static str,
}

impl TableDef {
    /// The table's name, also its top-level folder in the archive.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The Arrow schema of the table's files (without the partition columns).
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// The column whose UTC date and hour choose the partition of a row.
    pub fn time_column(&self) -> &'static str {
        self.time_column
    }

    /// Index of [`time_column`](Self::time_column) in the schema: by convention the
    /// partitioning time column is the first column of every table.
    pub fn time_column_index(&self) -> usize {
        0
    }
}

/// Every archive table, in a stable order.
pub fn tables() -> Vec<TableDef> {
    vec![
        TableDef {
            name: EVENTS,
            schema: Arc::clone(&EVENTS_SCHEMA),
            time_column: events::TS,
        },
        TableDef {
            name: DEAD_LETTERS,
            schema: Arc::clone(&DEAD_LETTERS_SCHEMA),
            time_column: dead_letters::RECEIVED_AT,
        },
        TableDef {
            name: ATTACK_RATES,
            schema: Arc::clone(&ATTACK_RATES_SCHEMA),
            time_column: attack_rates::WINDOW_START,
        },
        TableDef {
            name: POLICY_HITS,
            schema: Arc::clone(&POLICY_HITS_SCHEMA),
            time_column: policy_hits::WINDOW_START,
        },
        TableDef {
            name: VIOLATIONS,
            schema: Arc::clone(&VIOLATIONS_SCHEMA),
            time_column: violations::CHANGED_AT,
        },
        TableDef {
            name: ACCESS_LOG,
            schema: Arc::clone(&ACCESS_LOG_SCHEMA),
            time_column: access_log::AT,
        },
    ]
}

/// The table called `name`, if there is one.
pub fn table(name: &str) -> Option<TableDef> {
    tables().into_iter().find(|t| t.name == name)
}

/// A batch of `schema` with `rows` rows, each column as `column` gives it for the
/// column's name, or all null where it gives none. For tests and examples that set a
/// few columns of a wide table.
#[doc(hidden)]
pub fn batch_with(
    schema: SchemaRef,
    rows: usize,
    mut column: impl FnMut(&str) -> Option<arrow::array::ArrayRef>,
) -> Result<arrow::record_batch::RecordBatch, arrow::error::ArrowError> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            column(f.name()).unwrap_or_else(|| arrow::array::new_null_array(f.data_type(), rows))
        })
        .collect();
    arrow::record_batch::RecordBatch::try_new(schema, columns)
}

/// Schema of `access_log`.
pub fn access_log_schema() -> SchemaRef {
    Arc::clone(&ACCESS_LOG_SCHEMA)
}

/// Schema of `events`.
pub fn events_schema() -> SchemaRef {
    Arc::clone(&EVENTS_SCHEMA)
}

/// Schema of `dead_letters`.
pub fn dead_letters_schema() -> SchemaRef {
    Arc::clone(&DEAD_LETTERS_SCHEMA)
}

/// Schema of `attack_rates`.
pub fn attack_rates_schema() -> SchemaRef {
    Arc::clone(&ATTACK_RATES_SCHEMA)
}

/// Schema of `policy_hits`.
pub fn policy_hits_schema() -> SchemaRef {
    Arc::clone(&POLICY_HITS_SCHEMA)
}

/// Schema of `violations`.
pub fn violations_schema() -> SchemaRef {
    Arc::clone(&VIOLATIONS_SCHEMA)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_string_fields_are_utf8_nullable_columns_of_events() {
        let schema = events_schema();
        for name in OPTIONAL_STRING_FIELDS {
            let f = schema.field_with_name(name).unwrap();
            assert_eq!(f.data_type(), &DataType::Utf8, "{name}");
            assert!(f.is_nullable(), "{name}");
        }
    }

    #[test]
    fn time_columns_are_first_microsecond_utc_and_not_null() {
        for t in tables() {
            assert_eq!(
                t.schema().index_of(t.time_column()).unwrap(),
                t.time_column_index()
            );
            let f = t.schema().field(t.time_column_index()).clone();
            assert_eq!(f.data_type(), &ts_type(), "{}", t.name());
            assert!(!f.is_nullable());
        }
    }

    #[test]
    fn source_columns_are_shared() {
        let e = events_schema();
        let d = dead_letters_schema();
        for f in source_fields() {
            assert_eq!(e.field_with_name(f.name()).unwrap(), &f);
            assert_eq!(d.field_with_name(f.name()).unwrap(), &f);
        }
    }
}
