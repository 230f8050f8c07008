//! Parquet encoding spread over threads.
//!
//! [`ParallelWriter`] writes the same files as Parquet's `ArrowWriter` (row groups
//! bounded by the same row and byte limits, columns in schema order), but encodes each
//! batch's columns on several threads, each column by its own `ArrowColumnWriter`: the
//! threads take the columns largest first, each the next one as it becomes free, and
//! close them (their last page and dictionary compressed) the same way at the end of
//! each row group. Encoding and compression are most of the sink's
//! work, and one thread doing it all was the pipeline's critical path on 2 cores.
//! The bytes produced are taken with [`ParallelWriter::take_bytes`] after each call, for
//! the caller to send to the object store.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

/// A batch with fewer rows is encoded on the calling thread alone: starting a thread
/// would cost more than it saves.
const PARALLEL_FROM_ROWS: usize = 1024;

/// The file's bytes as the writer produces them.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Shared {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes one Parquet file, encoding the columns of each batch on up to `threads`
/// threads (see the module docs).
pub(crate) struct ParallelWriter {
    file: SerializedFileWriter<Shared>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    buffer: Shared,
    /// The column writers of the row group in progress.
    columns: Option<Vec<ArrowColumnWriter>>,
    /// Rows in the row group in progress.
    rows: usize,
    row_groups: usize,
    max_rows: usize,
    max_bytes: usize,
    threads: usize,
    /// Bytes taken so far.
    taken: u64,
}

impl ParallelWriter {
    pub(crate) fn try_new(
        schema: SchemaRef,
        props: WriterProperties,
        threads: usize,
    ) -> Result<Self> {
        let max_rows = props.max_row_group_row_count().unwrap_or(usize::MAX);
        let max_bytes = props.max_row_group_bytes().unwrap_or(usize::MAX);
        let buffer = Shared::default();
        let (file, factory) =
            ArrowWriter::try_new(buffer.clone(), Arc::clone(&schema), Some(props))?
                .into_serialized_writer()?;
        Ok(Self {
            file,
            factory,
            schema,
            buffer,
            columns: None,
            rows: 0,
            row_groups: 0,
            max_rows: max_rows.max(1),
            max_bytes: max_bytes.max(1),
            threads: threads.max(1),
            taken: 0,
        })
    }

    /// Appends `batch`, starting new row groups at the row and byte limits where
    /// `ArrowWriter::write` does: before the row limit; and, once a row group holds rows,
    /// before the rows that would take it past the byte limit at its average row size.
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        if self.rows + n > self.max_rows {
            let fit = self.max_rows - self.rows;
            self.write(&batch.slice(0, fit))?;
            return self.write(&batch.slice(fit, n - fit));
        }
        if self.rows > 0 {
            let current = self.in_progress_bytes();
            if current >= self.max_bytes {
                self.flush()?;
                return self.write(batch);
            }
            if let Some(average) = current.checked_div(self.rows).filter(|a| *a > 0) {
                let fit = (self.max_bytes - current) / average;
                if n > fit {
                    if fit == 0 {
                        self.flush()?;
                        return self.write(batch);
                    }
                    self.write(&batch.slice(0, fit))?;
                    return self.write(&batch.slice(fit, n - fit));
                }
            }
        }
        self.encode(batch)?;
        if self.rows >= self.max_rows || self.in_progress_bytes() >= self.max_bytes {
            self.flush()?;
        }
        Ok(())
    }

    fn encode(&mut self, batch: &RecordBatch) -> Result<()> {
        let columns = match &mut self.columns {
            Some(c) => c,
            slot => slot.insert(self.factory.create_column_writers(self.row_groups)?),
        };
        let mut leaves: Vec<ArrowLeafColumn> = Vec::with_capacity(columns.len());
        for (field, array) in self.schema.fields().iter().zip(batch.columns()) {
            leaves.extend(compute_leaves(field, array)?);
        }
        if leaves.len() != columns.len() {
            return Err(ParquetError::General(format!(
                "{} leaf columns for {} column writers",
                leaves.len(),
                columns.len()
            )));
        }
        let threads = if batch.num_rows() < PARALLEL_FROM_ROWS {
            1
        } else {
            self.threads
        };
        // Largest first: a column's cost follows its size, and the big ones (free text,
        // times) started last would leave the other threads idle at the end.
        let mut work: Vec<(usize, (&mut ArrowColumnWriter, &ArrowLeafColumn))> =
            if leaves.len() == batch.num_columns() {
                batch
                    .columns()
                    .iter()
                    .map(|a| a.get_array_memory_size())
                    .zip(columns.iter_mut().zip(&leaves))
                    .collect()
            } else {
                columns
                    .iter_mut()
                    .zip(&leaves)
                    .map(|pair| (0, pair))
                    .collect()
            };
        work.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
        in_parallel(
            work.into_iter().map(|(_, pair)| pair).collect(),
            threads,
            |(writer, leaf)| writer.write(leaf),
        )?;
        self.rows += batch.num_rows();
        Ok(())
    }

    /// Estimated bytes of the row group in progress, once encoded.
    pub(crate) fn in_progress_bytes(&self) -> usize {
        self.columns
            .iter()
            .flatten()
            .map(ArrowColumnWriter::get_estimated_total_bytes)
            .sum()
    }

    /// Ends the row group in progress, if any, appending its columns to the file.
    fn flush(&mut self) -> Result<()> {
        let Some(columns) = self.columns.take() else {
            return Ok(());
        };
        // Closing a column compresses its last page and its dictionary: on every thread,
        // largest first, then appended in schema order.
        let mut work: Vec<(usize, usize, ArrowColumnWriter)> = columns
            .into_iter()
            .enumerate()
            .map(|(i, c)| (c.get_estimated_total_bytes(), i, c))
            .collect();
        work.sort_by_key(|(size, _, _)| std::cmp::Reverse(*size));
        let mut chunks = in_parallel(work, self.threads, |(_, i, column)| {
            column.close().map(|chunk| (i, chunk))
        })?;
        chunks.sort_by_key(|(i, _)| *i);
        let mut group = self.file.next_row_group()?;
        for (_, chunk) in chunks {
            chunk.append_to_row_group(&mut group)?;
        }
        group.close()?;
        self.rows = 0;
        self.row_groups += 1;
        Ok(())
    }

    /// Ends the file: the last row group and the footer.
    pub(crate) fn finish(&mut self) -> Result<()> {
        self.flush()?;
        self.file.finish()?;
        Ok(())
    }

    /// The bytes produced since the last call.
    pub(crate) fn take_bytes(&mut self) -> Bytes {
        let bytes = self.buffer.take();
        self.taken += bytes.len() as u64;
        Bytes::from(bytes)
    }

    /// Bytes taken so far (the file's size once finished and taken).
    pub(crate) fn bytes_taken(&self) -> u64 {
        self.taken
    }
}

/// `f` applied to every item on up to `threads` threads (the calling one among them),
/// each thread taking the next item in order as it becomes free; the results in order
/// of completion, or the first error.
fn in_parallel<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let threads = threads.clamp(1, items.len().max(1));
    let queue = Mutex::new(items.into_iter());
    let work = || -> Result<Vec<R>> {
        let mut done = Vec::new();
        loop {
            let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
            match next {
                Some(item) => done.push(f(item)?),
                None => return Ok(done),
            }
        }
    };
    std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut result = work();
        for handle in others {
            let joined = handle
                .join()
                .unwrap_or_else(|_| Err(ParquetError::General("encoder thread panicked".into())));
            result = match (result, joined) {
                (Ok(mut a), Ok(b)) => {
                    a.extend(b);
                    Ok(a)
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn batch(schema: &SchemaRef, from: i64, rows: i64) -> RecordBatch {
        let n: Vec<i64> = (from..from + rows).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(n.clone())),
            Arc::new(StringArray::from_iter(
                n.iter()
                    .map(|i| (i % 7 != 0).then(|| format!("resource-{}", i % 300))),
            )),
            Arc::new(StringArray::from_iter_values(n.iter().map(|i| {
                format!("message {i} {}", "x".repeat((i % 50) as usize))
            }))),
        ];
        RecordBatch::try_new(Arc::clone(schema), columns).unwrap()
    }

    /// The same bytes as Parquet's own `ArrowWriter` given the same batches, however many
    /// threads encode them, across several row groups (split by rows and by bytes).
    #[test]
    fn files_are_the_bytes_arrow_writer_writes_on_any_number_of_threads() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("resource", DataType::Utf8, true),
            Field::new("message", DataType::Utf8, false),
        ]));
        let batches: Vec<RecordBatch> = [(0, 100), (100, 3000), (3100, 4000), (7100, 5)]
            .iter()
            .map(|(from, rows)| batch(&schema, *from, *rows))
            .collect();
        for (max_rows, max_bytes) in [(1024, usize::MAX), (1_000_000, 64 << 10)] {
            let props = WriterProperties::builder()
                .set_max_row_group_row_count(Some(max_rows))
                .set_max_row_group_bytes(Some(max_bytes))
                .build();
            let mut reference = Vec::new();
            let mut w =
                ArrowWriter::try_new(&mut reference, Arc::clone(&schema), Some(props.clone()))
                    .unwrap();
            for b in &batches {
                w.write(b).unwrap();
            }
            w.close().unwrap();
            for threads in [1, 2, 3] {
                let mut p =
                    ParallelWriter::try_new(Arc::clone(&schema), props.clone(), threads).unwrap();
                let mut out = Vec::new();
                for b in &batches {
                    p.write(b).unwrap();
                    out.extend_from_slice(&p.take_bytes());
                }
                p.finish().unwrap();
                out.extend_from_slice(&p.take_bytes());
                assert_eq!(p.bytes_taken(), out.len() as u64);
                let groups = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(out.clone()))
                    .unwrap()
                    .metadata()
                    .num_row_groups();
                assert!(groups > 2, "{groups} row groups");
                assert!(
                    out == reference,
                    "{threads} threads, limits {max_rows} rows / {max_bytes} bytes: \
                     {} bytes against ArrowWriter's {}",
                    out.len(),
                    reference.len()
                );
            }
        }
    }
}
