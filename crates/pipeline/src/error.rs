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

    /// The producer of the alert and dead-letter topics could not be created (its
    /// settings are wrong: delivery problems are retried, never an error).
    #[error("cannot create the Kafka producer for {brokers}: {source}")]
    Producer {
        brokers: String,
        #[source]
        source: rdkafka::error::KafkaError,
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

    /// The files of a partition could not be read and sorted for compaction.
    #[error("cannot read {partition} for compaction: {source}")]
    CompactRead {
        partition: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },

    /// A compaction wrote a different number of rows than its inputs hold.
    #[error(
        "compaction of {partition} wrote {written} rows but the manifests say its files hold \
         {expected}; nothing was committed; run `rampart verify` on the archive"
    )]
    CompactRowCount {
        partition: String,
        expected: u64,
        written: u64,
    },

    /// The metrics endpoint cannot listen on its address (taken, or not this machine's).
    #[error(
        "cannot serve metrics on {addr}: {source}; choose another address with \
         --metrics-addr or [metrics] addr, or leave it empty to serve no metrics"
    )]
    MetricsListen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
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
