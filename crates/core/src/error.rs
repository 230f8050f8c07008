//! Errors of the shared layer: configuration and archive locations.

/// An error raised while reading configuration or resolving an archive location.
///
/// All variants are user-input errors: the message says what is wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pipeline file passed to [`Config::load`](crate::Config::load) does not exist.
    #[error(
        "config file {path} not found; pass --config with the path of a pipeline file such as pipelines/demo.toml"
    )]
    ConfigFile { path: String },

    /// The configuration text (or a `RAMPART_*` variable) could not be read into a
    /// [`Config`](crate::Config): bad TOML, an unknown key, a value of the wrong type.
    #[error("invalid configuration in {origin}: {}", messages.join("; "))]
    ConfigLoad {
        /// Where the configuration came from, as in `pipelines/demo.toml or RAMPART_*
        /// environment`.
        origin: String,
        /// One message per problem found, none empty, at least one.
        messages: Vec<String>,
    },

    /// A configuration value is out of its allowed range or inconsistent with another.
    #[error("invalid configuration `{key}`: {message}")]
    Config { key: String, message: String },

    /// An archive or source location could not be parsed as a URL or path.
    #[error("cannot use `{location}` as a storage location: {message}")]
    Location { location: String, message: String },

    /// The object store for a location could not be built (unknown scheme, bad option).
    #[error("cannot open object store for `{location}`: {source}")]
    Store {
        location: String,
        #[source]
        source: object_store::Error,
    },
}

/// Result with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
