//! The contract every Rampart crate shares.
//!
//! `rampart-core` sits at the bottom of the workspace: the event contract and the Arrow
//! schemas of the archive tables ([`schema`]), the archive's on-storage layout
//! ([`layout`]), where the archive lives ([`store`]), the pipeline configuration
//! ([`config`]), the schema presets' field tables ([`preset`]), source coordinates ([`source`]), dead-letter reasons ([`reason`]) and
//! the [`Clock`] that every time-dependent component takes. The write side (`rampart-sink`)
//! and the read side (`rampart-archive`) both agree through this crate and never import
//! each other.
//!
//! ```
//! use rampart_core::{layout, schema};
//! let events = schema::table(schema::EVENTS).unwrap();
//! assert_eq!(events.schema().field(0).name(), "ts");
//! assert_eq!(layout::partition_dir("events", 0), "events/date=1970-01-01/hour=00");
//! ```

pub mod clock;
pub mod config;
pub mod error;
pub mod layout;
pub mod ledger;
pub mod preset;
pub mod reason;
pub mod schema;
pub mod source;
pub mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use error::{Error, Result};
pub use reason::DeadLetterReason;
pub use source::SourcePos;

/// The directory of the package whose tests or benches are running, for reading the
/// repository's own files (fixtures, SQL, the README) from them. Cargo sets
/// `CARGO_MANIFEST_DIR` when it runs a test or bench, and that comes first: a binary in
/// a target directory shared by several checkouts (as `.ci/run`'s is) may have been
/// built in another one, and the path compiled into it (`built_in`, the caller's
/// `env!("CARGO_MANIFEST_DIR")`) then names that checkout, which may be gone.
#[doc(hidden)]
pub fn package_dir(built_in: &str) -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| built_in.into(), Into::into)
}
