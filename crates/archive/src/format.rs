//! Result output: an aligned table for people, CSV and JSON lines for programs.

use std::io::Write;
use std::str::FromStr;

use arrow::array::Array;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::query::QueryOutput;
use crate::{Error, Result};

/// How `rampart query` prints results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// An aligned text table.
    #[default]
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per row (JSON lines).
    Json,
}

impl FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown format `{other}`; use table, csv or json")),
        }
    }
}

/// Writes `output` to `out` in `format`.
pub fn write_results(
    output: &QueryOutput,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<()> {
    let io = |e: std::io::Error| Error::Output {
        source: arrow::error::ArrowError::IoError(e.to_string(), e),
    };
    let arrow_err = |source| Error::Output { source };
    match format {
        OutputFormat::Table => {
            let table =
                arrow::util::pretty::pretty_format_batches(&output.batches).map_err(arrow_err)?;
            if output.batches.iter().all(|b| b.num_rows() == 0) {
                // Still show the column names of an empty result.
                let names: Vec<&str> = output
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                writeln!(out, "{}", names.join(" | ")).map_err(io)?;
                writeln!(out, "(0 rows)").map_err(io)?;
            } else {
                writeln!(out, "{table}").map_err(io)?;
            }
        }
        OutputFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if output.batches.is_empty() {
                w.write(&arrow::record_batch::RecordBatch::new_empty(
                    output.schema.clone(),
                ))
                .map_err(arrow_err)?;
            }
            for b in &output.batches {
                w.write(b).map_err(arrow_err)?;
            }
        }
        OutputFormat::Json => {
            // Rendered by arrow's display formatter so that every type (binary included)
            // has a JSON form: numbers and booleans stay JSON scalars, the rest are strings.
            let opts = FormatOptions::default().with_null("null");
            for b in &output.batches {
                let formatters = b
                    .columns()
                    .iter()
                    .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(arrow_err)?;
                for row in 0..b.num_rows() {
                    let mut obj = serde_json::Map::new();
                    for (i, f) in b.schema().fields().iter().enumerate() {
                        let col = b.column(i);
                        let v = if col.is_null(row) {
                            serde_json::Value::Null
                        } else {
                            let text = formatters[i].value(row).to_string();
                            json_scalar(f.data_type(), text)
                        };
                        obj.insert(f.name().clone(), v);
                    }
                    serde_json::to_writer(&mut *out, &obj)
                        .map_err(|e| io(std::io::Error::other(e)))?;
                    writeln!(out).map_err(io)?;
                }
            }
        }
    }
    Ok(())
}

fn json_scalar(dt: &arrow::datatypes::DataType, text: String) -> serde_json::Value {
    use arrow::datatypes::DataType::*;
    match dt {
        Boolean => text.parse::<bool>().map(Into::into).unwrap_or(text.into()),
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => text
            .parse::<i64>()
            .map(Into::into)
            .or_else(|_| text.parse::<u64>().map(Into::into))
            .unwrap_or(text.into()),
        Float16 | Float32 | Float64 => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(serde_json::Value::Number)
            .unwrap_or(text.into()),
        _ => serde_json::Value::String(text),
    }
}
