//! The archive's layout on storage, shared by writer and readers.
//!
//! ```text
//! <archive>/<table>/date=YYYY-MM-DD/hour=HH/part-<id>.parquet
//! ```
//!
//! `date` and `hour` are the UTC date and hour of the row's time column (event time for
//! `events`, receive time for `dead_letters`). They are hive partition keys: DuckDB
//! (`hive_partitioning = true`), Spark, Trino, Athena and DataFusion read them from the
//! path, so the files do not repeat them.

use arrow::datatypes::DataType;

/// Microseconds in one hour.
pub const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// Extension of every data file.
pub const DATA_FILE_EXTENSION: &str = ".parquet";

/// Folder of the stored audit reports (`reports/period=2026-10/report-<time>.html` and
/// `.json`), and the `table` their manifest entries name. Not a queryable table: the
/// files are HTML and JSON, committed like data files so that the chain covers them.
pub const REPORTS: &str = "reports";

/// Every top-level folder whose files the manifests list: the tables' and
/// [`REPORTS`]. A file in one of them that no manifest lists is not part of the archive.
pub fn committed_folders() -> Vec<&'static str> {
    crate::schema::tables()
        .iter()
        .map(crate::schema::TableDef::name)
        .chain([REPORTS])
        .collect()
}

/// The hive partition columns, outermost first, with the type readers give them.
pub fn partition_columns() -> Vec<(String, DataType)> {
    vec![
        ("date".to_string(), DataType::Date32),
        ("hour".to_string(), DataType::Int32),
    ]
}

/// The hour a timestamp (microseconds since the epoch, UTC) falls in, counted in hours
/// since the epoch. Negative timestamps round down, so every hour is 3600 s long.
pub fn hour_bucket(ts_micros: i64) -> i64 {
    ts_micros.div_euclid(MICROS_PER_HOUR)
}

/// `"<table>/date=YYYY-MM-DD/hour=HH"` for an hour bucket (see [`hour_bucket`]).
pub fn partition_dir(table: &str, hour_bucket: i64) -> String {
    let secs = hour_bucket.saturating_mul(3600);
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(t) => format!(
            "{table}/date={}/hour={}",
            t.format("%Y-%m-%d"),
            t.format("%H")
        ),
        // Out of chrono's range (beyond year 262143): keep the row, in a partition of its own.
        None => format!("{table}/date=out-of-range/hour={hour_bucket}"),
    }
}

/// The name of a data file with the writer-chosen unique `id`.
pub fn data_file_name(id: &str) -> String {
    format!("part-{id}{DATA_FILE_EXTENSION}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_buckets_floor_towards_minus_infinity() {
        assert_eq!(hour_bucket(0), 0);
        assert_eq!(hour_bucket(MICROS_PER_HOUR - 1), 0);
        assert_eq!(hour_bucket(MICROS_PER_HOUR), 1);
        assert_eq!(hour_bucket(-1), -1);
    }

    #[test]
    fn partition_dirs_are_hive_style_utc() {
        // 2026-11-28T09:41:07Z
        let ts = 1_795_858_867_000_000_i64;
        assert_eq!(
            partition_dir("events", hour_bucket(ts)),
            "events/date=2026-11-28/hour=09"
        );
        assert_eq!(
            partition_dir("events", -1),
            "events/date=1969-12-31/hour=23"
        );
    }
}
