//! The report's SQL: the files of `sql/report/`, their placeholders, and reading their
//! results.
//!
//! The files are compiled into the binary (a report must not change with the working
//! directory it is made from), and each stored report names them with their SHA-256, so
//! an auditor can tell which SQL made it.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use chrono::NaiveDate;
use rampart_core::ledger::{rfc3339, sha256_hex};

use super::ReportError;
use crate::Archive;

/// One of the report's queries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Query {
    /// The file name without `.sql`.
    pub(crate) name: &'static str,
    text: &'static str,
}

macro_rules! report_sql {
    ($name:literal) => {
        Query {
            name: $name,
            text: include_str!(concat!("../../../../sql/report/", $name, ".sql")),
        }
    };
}

pub(crate) const EVENTS: Query = report_sql!("events");
pub(crate) const POLICY_HITS: Query = report_sql!("policy_hits");
pub(crate) const VIOLATIONS: Query = report_sql!("violations");
pub(crate) const OPEN_VIOLATIONS: Query = report_sql!("open_violations");
pub(crate) const ADHERENCE: Query = report_sql!("adherence");
pub(crate) const ATTACK_INCREASES: Query = report_sql!("attack_increases");
pub(crate) const DEAD_LETTERS: Query = report_sql!("dead_letters");
pub(crate) const DAILY: Query = report_sql!("daily");

/// Every query, in the order the report runs them.
pub(crate) const ALL: [Query; 8] = [
    EVENTS,
    POLICY_HITS,
    VIOLATIONS,
    OPEN_VIOLATIONS,
    ADHERENCE,
    ATTACK_INCREASES,
    DEAD_LETTERS,
    DAILY,
];

impl Query {
    /// `sql/report/<name>.sql`, as a report names it.
    pub(crate) fn path(&self) -> String {
        format!("sql/report/{}.sql", self.name)
    }

    /// SHA-256 of the file's text.
    pub(crate) fn sha256(&self) -> String {
        sha256_hex(self.text.as_bytes())
    }
}

/// The values of the placeholders. Besides these, `$open_violations` stands for the
/// query of `open_violations.sql`, so that "open at the end" has one definition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    /// `$start`, included (µs since the epoch).
    pub(crate) start: i64,
    /// `$end`, excluded.
    pub(crate) end: i64,
    /// `$top`.
    pub(crate) top: usize,
}

impl Params {
    /// `query`'s text with every placeholder replaced.
    fn apply(&self, query: &Query) -> Result<String, ReportError> {
        let date = |d: NaiveDate| format!("DATE '{}'", d.format("%Y-%m-%d"));
        let timestamp = |micros: i64| format!("TIMESTAMP '{}'", rfc3339(micros));
        let last_day = super::period::utc_date(self.end.saturating_sub(1));
        let first_day = super::period::utc_date(self.start);
        // `$open_violations` first: the query it stands for has placeholders of its own.
        let mut sql = query.text.replace(
            "$open_violations",
            &format!("(\n{}\n)", OPEN_VIOLATIONS.text),
        );
        for (name, value) in [
            ("$first_day", date(first_day)),
            ("$last_day", date(last_day)),
            ("$start", timestamp(self.start)),
            ("$end", timestamp(self.end)),
            ("$top", self.top.to_string()),
        ] {
            sql = sql.replace(name, &value);
        }
        if let Some(at) = sql.find('$') {
            let rest: String = sql[at..].chars().take(20).collect();
            return Err(ReportError::Sql {
                query: query.path(),
                message: format!("unknown placeholder at `{rest}`"),
            });
        }
        Ok(sql)
    }
}

/// Runs `query` over `archive` with `params`; the rows as one batch.
pub(crate) async fn run(
    archive: &Archive,
    query: &Query,
    params: &Params,
) -> Result<Rows, ReportError> {
    let sql = params.apply(query)?;
    let out = archive
        .query(&sql)
        .await
        .map_err(|source| ReportError::Query {
            query: query.path(),
            source: Box::new(source),
        })?;
    let batch = concat_batches(&out.schema, &out.batches).map_err(|e| ReportError::Sql {
        query: query.path(),
        message: e.to_string(),
    })?;
    Ok(Rows {
        query: query.path(),
        batch,
    })
}

/// A query's result, read by column name with the type the report needs.
pub(crate) struct Rows {
    query: String,
    batch: RecordBatch,
}

impl Rows {
    /// How many rows.
    pub(crate) fn len(&self) -> usize {
        self.batch.num_rows()
    }

    fn column(&self, name: &str, to: &DataType) -> Result<ArrayRef, ReportError> {
        let col = self
            .batch
            .column_by_name(name)
            .ok_or_else(|| ReportError::Sql {
                query: self.query.clone(),
                message: format!("it returns no column `{name}`"),
            })?;
        cast(col, to).map_err(|e| ReportError::Sql {
            query: self.query.clone(),
            message: format!("column `{name}` cannot be read as {to}: {e}"),
        })
    }

    /// A text column.
    pub(crate) fn strings(&self, name: &str) -> Result<Vec<Option<String>>, ReportError> {
        let col = self.column(name, &DataType::Utf8)?;
        let a = col.as_string::<i32>();
        Ok((0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
            .collect())
    }

    /// A text column without nulls.
    pub(crate) fn required_strings(&self, name: &str) -> Result<Vec<String>, ReportError> {
        self.strings(name)?
            .into_iter()
            .map(|v| {
                v.ok_or_else(|| ReportError::Sql {
                    query: self.query.clone(),
                    message: format!("column `{name}` has a null"),
                })
            })
            .collect()
    }

    /// An integer column; a null (the sum of no rows) is 0.
    pub(crate) fn ints(&self, name: &str) -> Result<Vec<i64>, ReportError> {
        let col = self.column(name, &DataType::Int64)?;
        let a = col.as_primitive::<Int64Type>();
        Ok((0..a.len())
            .map(|i| if a.is_valid(i) { a.value(i) } else { 0 })
            .collect())
    }

    /// A count column: an integer that is never negative.
    pub(crate) fn counts(&self, name: &str) -> Result<Vec<u64>, ReportError> {
        Ok(self
            .ints(name)?
            .into_iter()
            .map(|n| u64::try_from(n).unwrap_or(0))
            .collect())
    }

    /// A floating-point column.
    pub(crate) fn floats(&self, name: &str) -> Result<Vec<Option<f64>>, ReportError> {
        let col = self.column(name, &DataType::Float64)?;
        let a = col.as_primitive::<Float64Type>();
        Ok((0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i)))
            .collect())
    }

    /// A boolean column; null is false.
    pub(crate) fn bools(&self, name: &str) -> Result<Vec<bool>, ReportError> {
        let col = self.column(name, &DataType::Boolean)?;
        let a = col.as_boolean();
        Ok((0..a.len()).map(|i| a.is_valid(i) && a.value(i)).collect())
    }

    /// A timestamp column, as microseconds since the epoch (UTC).
    pub(crate) fn micros(&self, name: &str) -> Result<Vec<i64>, ReportError> {
        let col = self.column(
            name,
            &DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
        )?;
        let a = col.as_primitive::<TimestampMicrosecondType>();
        (0..a.len())
            .map(|i| {
                a.is_valid(i)
                    .then(|| a.value(i))
                    .ok_or_else(|| ReportError::Sql {
                        query: self.query.clone(),
                        message: format!("column `{name}` has a null"),
                    })
            })
            .collect()
    }

    /// A date column.
    pub(crate) fn dates(&self, name: &str) -> Result<Vec<NaiveDate>, ReportError> {
        let col = self.column(name, &DataType::Date32)?;
        let a = col.as_primitive::<Date32Type>();
        (0..a.len())
            .map(|i| {
                a.is_valid(i)
                    .then(|| a.value_as_date(i))
                    .flatten()
                    .ok_or_else(|| ReportError::Sql {
                        query: self.query.clone(),
                        message: format!("column `{name}` has a null or out-of-range date"),
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_of_every_file_is_replaced() {
        let params = Params {
            start: 1_790_812_800_000_000, // 2026-10-01T00:00:00Z
            end: 1_793_491_200_000_000,   // 2026-11-01T00:00:00Z
            top: 10,
        };
        for q in ALL {
            // A placeholder in a `--` comment would put the query it stands for into
            // the comment's line: only the plain ones may be mentioned there.
            for line in q.text.lines() {
                if let Some((_, comment)) = line.split_once("--") {
                    assert!(
                        !comment.contains("$open_violations"),
                        "{}: {line}",
                        q.path()
                    );
                }
            }
            let sql = params.apply(&q).unwrap();
            assert!(!sql.contains('$'), "{}", q.path());
            if q.text.contains("$first_day") {
                assert!(sql.contains("DATE '2026-10-01'"), "{}", q.path());
                assert!(sql.contains("DATE '2026-10-31'"), "{}", q.path());
            }
            assert!(
                sql.contains("TIMESTAMP '2026-11-01T00:00:00.000000Z'"),
                "{}",
                q.path()
            );
        }
    }

    #[test]
    fn every_file_in_sql_report_is_a_query_of_the_report() {
        let dir = rampart_core::package_dir(env!("CARGO_MANIFEST_DIR")).join("../../sql/report");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut ours: Vec<String> = ALL.iter().map(|q| format!("{}.sql", q.name)).collect();
        ours.sort();
        assert_eq!(names, ours);
    }
}
