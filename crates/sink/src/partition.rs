//! Splitting a batch by the UTC hour of its time column.

use std::collections::BTreeSet;

use arrow::array::{AsArray, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::TimestampMicrosecondType;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use rampart_core::layout::hour_bucket;

/// Splits `batch` into one batch per hour bucket of the timestamp column at `ts_index`
/// (microseconds), in ascending hour order. Row order within each hour is kept. A
/// batch that lies within one hour is returned as it is, without copying.
pub fn split_by_hour(
    batch: &RecordBatch,
    ts_index: usize,
) -> Result<Vec<(i64, RecordBatch)>, ArrowError> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let ts = batch
        .column(ts_index)
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| {
            ArrowError::SchemaError(format!("column {ts_index} is not a microsecond timestamp"))
        })?;
    let values = ts.values();
    let first = hour_bucket(values[0]);
    if values.iter().all(|v| hour_bucket(*v) == first) {
        return Ok(vec![(first, batch.clone())]);
    }
    let hours: BTreeSet<i64> = values.iter().map(|v| hour_bucket(*v)).collect();
    hours
        .into_iter()
        .map(|h| {
            let mask: BooleanArray = values.iter().map(|v| Some(hour_bucket(*v) == h)).collect();
            Ok((h, filter_record_batch(batch, &mask)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use rampart_core::layout::MICROS_PER_HOUR;

    fn batch(ts: Vec<i64>) -> RecordBatch {
        let ids: Vec<i64> = (0..ts.len() as i64).collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new(
                    "ts",
                    DataType::Timestamp(TimeUnit::Microsecond, None),
                    false,
                ),
                Field::new("id", DataType::Int64, false),
            ])),
            vec![
                Arc::new(TimestampMicrosecondArray::from(ts)),
                Arc::new(Int64Array::from(ids)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn rows_go_to_their_hour_in_order() {
        let h = MICROS_PER_HOUR;
        let b = batch(vec![5, 2 * h + 1, 7, h, -1, 2 * h]);
        let parts = split_by_hour(&b, 0).unwrap();
        let got: Vec<(i64, Vec<i64>)> = parts
            .iter()
            .map(|(hour, p)| {
                let ids = p.column(1).as_primitive::<arrow::datatypes::Int64Type>();
                (*hour, ids.values().to_vec())
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (-1, vec![4]),
                (0, vec![0, 2]),
                (1, vec![3]),
                (2, vec![1, 5])
            ]
        );
        let total: usize = parts.iter().map(|(_, p)| p.num_rows()).sum();
        assert_eq!(total, b.num_rows());
    }

    #[test]
    fn one_hour_and_empty_batches() {
        assert_eq!(split_by_hour(&batch(vec![1, 2, 3]), 0).unwrap().len(), 1);
        assert!(split_by_hour(&batch(vec![]), 0).unwrap().is_empty());
        assert!(split_by_hour(&batch(vec![1]), 1).is_err());
    }
}
