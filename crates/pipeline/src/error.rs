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

    /// A stage stopped unexpectedly (a bug).
    #[error("internal error: pipeline stage `{stage}` {message}")]
    Stage {
        stage: &'static str,
        message: String,
    },
}

/// Result with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
