//! The pipeline: source -> decoder -> (windows and rules) -> archive sinks.
//!
//! [`run`] wires the stages of `rampart-ingest`, `rampart-window` and `rampart-sink`
//! with bounded channels (`pipeline.channel-capacity` batches per edge), so a slow
//! stage slows its upstream instead of growing memory:
//!
//! ```text
//! source task --chunks--> decode thread --batches--> window task --batches--> sink task
//!                                                     (rules, alerts)          (all tables)
//! ```
//!
//! Decoding is CPU work and runs on a blocking thread, off the source's I/O task. The
//! sink closes files on size, age and at the end; a bounded source ends the run when it
//! is exhausted, and Ctrl-C or SIGTERM stops reading and drains what was read.
//!
//! **Delivery.** Every message read becomes exactly one row of `events` or
//! `dead_letters`. With a file source there are no offsets to commit; the Kafka source
//! will advance its offsets only after the files holding them are complete.
//!
//! **Metrics.** Every stage records into one registry (`metrics.rs`); with `[metrics]
//! addr` set, `run` serves it for Prometheus at `/metrics`, with `/healthz` beside it.
//!
//! **Topics.** With `[kafka] alerts-topic` or `dead-letter-topic`, alerts and dead
//! letters also go to Kafka (the `topics` module): sent from the window stage, and
//! delivered before every archive commit, so no source offset is committed past an
//! undelivered one. The topics are at least once; the archive stays exactly once.
//!
//! **Compaction.** [`compact()`] rewrites the small files of hours that are over into few
//! large sorted ones, one manifest per hour; `run` does it every `compact.interval` in
//! the background (see [`mod@compact`]).

mod alerts;
mod commit;
pub mod compact;
mod error;
mod metrics;
mod run;
mod summary;
mod task;
mod topics;
mod violations;
mod window_stage;

pub use compact::{CompactReport, compact};
pub use error::{Error, Result};
pub use run::{RunOptions, run};
pub use summary::{CompactionSummary, LatencySummary, Summary, TableSummary, WindowSummary};
