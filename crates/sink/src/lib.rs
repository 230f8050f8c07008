//! The archive's write side: record batches in, hive-partitioned Parquet files out.
//!
//! A [`TableWriter`] splits each batch by the UTC hour of the table's time column and
//! appends it to that hour's open file under
//! `<archive>/<table>/date=YYYY-MM-DD/hour=HH/part-<uuid>.parquet`. Files are Parquet
//! with zstd, timestamps in microseconds UTC, and row groups bounded in rows and bytes.
//!
//! **Visibility.** A file is written through `object_store`'s buffered writer: a small
//! file is one `put`, a large one a multipart upload; on S3, GCS and Azure neither is
//! visible before it completes, and on the local disk both go to a staging name and are
//! renamed into place. No reader ever sees a partial file.
//!
//! **Rolling.** A file is closed when it reaches `sink.max-file-rows` or about
//! `sink.max-file-bytes`, when it has been open for `sink.roll-interval`, when opening
//! another would exceed `sink.max-open-files`, and at the end of the run.
//!
//! **Memory.** At most `max-open-files` row groups are buffered, each bounded by
//! `sink.row-group-rows` and 64 MiB.
//!
//! ```no_run
//! # async fn demo(batch: arrow::record_batch::RecordBatch) -> rampart_sink::Result<()> {
//! use std::sync::Arc;
//! use rampart_core::{config::SinkConfig, schema, store, SystemClock};
//! let archive = store::open("./archive", Vec::<(String, String)>::new()).unwrap();
//! let table = schema::table(schema::EVENTS).unwrap();
//! let mut w = rampart_sink::TableWriter::new(table, archive, &SinkConfig::default(), Arc::new(SystemClock))?;
//! w.write(&batch).await?;
//! w.close_all().await?;
//! for f in w.take_written() { println!("{} rows in {}", f.rows, f.path); }
//! # Ok(()) }
//! ```

mod encode;
mod error;
mod orphans;
mod partition;
mod writer;

pub use error::{Error, Result};
pub use orphans::{Orphan, find_orphans, remove_orphans};
pub use partition::split_by_hour;
pub use writer::{PLAIN_BY_DEFAULT, TableWriter, UNSORTED_NO_STATISTICS, WrittenFile};
