//! Errors of sources and the decoder. A malformed message is not an error: it becomes a
//! dead letter. These are the faults that stop a source.

/// An error that stops a source or the decoder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The source location is not one this build can read.
    #[error("unsupported source `{location}`: {message}")]
    UnsupportedSource { location: String, message: String },

    /// The source file could not be opened.
    #[error("cannot open source file {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// Reading from the source failed.
    #[error("cannot read source {path} after line {line}: {source}")]
    Read {
        path: String,
        line: u64,
        #[source]
        source: std::io::Error,
    },

    /// The Kafka client failed (it retries by itself; this is what it could not).
    #[error("kafka source {location}: {message}")]
    Kafka { location: String, message: String },

    /// Assembling decoded rows into Arrow arrays failed (a bug: the columns disagree with
    /// the schema).
    #[error("internal error building {table} batch: {source}")]
    Batch {
        table: &'static str,
        #[source]
        source: arrow::error::ArrowError,
    },
}

/// Result with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
