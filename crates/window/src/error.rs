//! Errors of the window stage.

use std::path::PathBuf;

/// An error loading rules or computing windows.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The window size is not a positive whole number of microseconds.
    #[error("invalid window size {size:?}: {message}")]
    Size {
        size: std::time::Duration,
        message: String,
    },

    /// A rules directory or SQL file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A rule file's header is wrong (missing, unknown or bad key).
    #[error("{path}:{line}: {message}")]
    Header {
        path: PathBuf,
        line: usize,
        message: String,
    },

    /// A rule's SQL does not parse or plan against the tables it runs on.
    #[error("{path}{position}: {message}")]
    Plan {
        path: PathBuf,
        /// `:line:column` when DataFusion reports where, else empty.
        position: String,
        message: String,
    },

    /// Running a planned rule failed (a bug or resource exhaustion, not user input).
    #[error("running {what} failed: {source}")]
    Execute {
        what: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },

    /// A batch or result does not have the columns the engine needs.
    #[error("internal error in the window stage: {message}")]
    Internal { message: String },
}

/// Result with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
