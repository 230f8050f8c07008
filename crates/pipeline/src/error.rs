//! Errors that stop a pipeline.

/// An error that stops a pipeline. Bad events never do: they are dead letters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] rampart_core::Error),

    /// The source failed.
    #[error(transparent)]
    Source(#[from] rampart_ingest::Error),

    /// Writing the archive failed.
    #[error(transparent)]
    Sink(#[from] rampart_sink::Error),

    /// The window stage failed (rules that do not plan, or a failed query).
    #[error(transparent)]
    Window(#[from] rampart_window::Error),

    /// Alerts could not be written.
    #[error("cannot write alerts to {path}: {source}")]
    Alerts {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// The open violations could not be read back from the archive.
    #[error("cannot restore open violations from the archive: {message}")]
    Restore { message: String },

    /// The archive's manifests could not be read or extended.
    #[error(transparent)]
    Ledger {
        #[from]
        source: rampart_core::ledger::LedgerError,
    },

    /// A stage stopped unexpectedly (a bug).
    #[error("internal error: pipeline stage `{stage}` {message}")]
    Stage {
        stage: &'static str,
        message: String,
    },
}

/// Result with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
