//! Where a message came from: its coordinates in the source, kept with every archived row.

use std::sync::Arc;

/// The position of one message in its source. Stored in the `source_*` and `kafka_*`
/// columns of `events` and `dead_letters`, so that the original message can be found
/// again and so that the archive's commit step knows which positions are durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourcePos {
    /// A line of a JSON-lines file (`-` for standard input); lines count from 1.
    File { path: Arc<str>, line: u64 },
    /// A Kafka record.
    Kafka {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        /// The record's timestamp, milliseconds since the epoch, when it has one.
        timestamp_ms: Option<i64>,
        /// The record's key bytes, when it has one.
        key: Option<Arc<[u8]>>,
    },
}
