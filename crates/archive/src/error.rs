//! Errors of the read side.

/// An error answering a query.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The statement would change something; the archive is read-only through Rampart.
    #[error(
        "refused: `{statement}` is not a read. `rampart query` runs one read-only statement (SELECT, WITH ... SELECT, EXPLAIN, SHOW TABLES, SHOW COLUMNS); the archive is evidence and cannot be changed through it"
    )]
    ReadOnly { statement: String },

    /// More than one statement was given.
    #[error("refused: {count} statements given; run one statement at a time")]
    MultipleStatements { count: usize },

    /// The SQL does not parse, names an unknown table or column, or failed to run.
    #[error("query failed: {source}")]
    Query {
        #[source]
        source: datafusion::error::DataFusionError,
    },

    /// A statement needed more memory than `query.memory-limit`.
    #[error(
        "the query needs more memory than query.memory-limit ({limit}) allows: narrow it (a time range, a resource, fewer columns) or raise the limit ({source})"
    )]
    QueryMemory {
        limit: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },

    /// A statement ran longer than `query.timeout`.
    #[error(
        "the query was stopped after query.timeout ({limit}): narrow it (a time range, a resource) or raise the limit"
    )]
    QueryTimeout { limit: String },

    /// Registering the archive's tables failed.
    #[error("cannot open archive {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },

    /// The archive's manifests cannot be read.
    #[error("cannot read the archive's manifests: {source}")]
    Ledger {
        #[source]
        source: rampart_core::ledger::LedgerError,
    },

    /// The access log could not be written.
    #[error(
        "cannot record this access in the archive's access log (results are withheld): {message}"
    )]
    Access { message: String },

    /// A hold or retention request is unusable or cannot be carried out.
    #[error("{message}")]
    Governance { message: String },

    /// The store failed.
    #[error("archive store error at {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: object_store::Error,
    },

    /// A bundle directory or file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Writing results failed.
    #[error("cannot write results: {source}")]
    Output {
        #[source]
        source: arrow::error::ArrowError,
    },
}

/// Result with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
