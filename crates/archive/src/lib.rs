//! The archive's read side: read-only SQL over the audit history.
//!
//! [`Archive::open`] registers every archive table (`events`, `dead_letters`, ...) with
//! DataFusion as a hive-partitioned Parquet listing with the schema from
//! `rampart-core`, so a query needs no schema inference and a filter on `date` or
//! `hour` skips whole folders. [`Archive::query`] runs one statement and refuses anything
//! that is not a read: `rampart query` can never change the evidence.
//!
//! ```no_run
//! # async fn demo() -> rampart_archive::Result<()> {
//! use rampart_archive::{Archive, OutputFormat};
//! let loc = rampart_core::store::open("./archive", Vec::<(String, String)>::new()).unwrap();
//! let archive = Archive::open(loc).await?;
//! let out = archive.query("SELECT category, count(*) FROM events GROUP BY category").await?;
//! rampart_archive::write_results(&out, OutputFormat::Table, &mut std::io::stdout())?;
//! # Ok(()) }
//! ```

pub mod access;
pub mod bundle_verify;
mod error;
pub mod export;
mod format;
pub mod holds;
mod query;
mod readonly;
pub mod reconstruct;
pub mod report;
pub mod retention;
mod table;
pub mod verify;

pub use error::{Error, Result};
pub use format::{OutputFormat, write_results};
pub use query::{Archive, QueryOutput};
pub use readonly::check_read_only;
