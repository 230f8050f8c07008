//! Errors of the archive writer. All are external (the store) or internal (a batch that
//! does not match its table); a bad event never reaches this crate.

/// An error writing the archive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Encoding or uploading a Parquet file failed.
    #[error("cannot write archive file {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: parquet::errors::ParquetError,
    },

    /// A batch does not fit its table (a bug upstream).
    #[error("internal error: batch for table {table} does not fit: {source}")]
    Batch {
        table: &'static str,
        #[source]
        source: arrow::error::ArrowError,
    },

    /// Listing or deleting in the store failed.
    #[error("archive store error at {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: object_store::Error,
    },

    /// A sink setting is unusable.
    #[error("invalid sink configuration: {message}")]
    Config { message: String },
}

/// Result with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
