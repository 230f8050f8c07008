//! Sources and the decoder: the first stage of every Rampart pipeline.
//!
//! A source yields raw messages with their coordinates ([`FileSource`] for JSON-lines
//! files and standard input); the [`Decoder`] turns each message into a row of the
//! `events` table or, when it breaks the event contract, a row of `dead_letters` with a
//! reason a person can act on, its raw bytes and its coordinates. Nothing is dropped:
//! every message becomes exactly one row of one of the two tables, and fields outside
//! the contract are kept in the `extra` column so the original event can be rebuilt.
//!
//! ```
//! use rampart_core::{config::DecodeConfig, SourcePos};
//! use rampart_ingest::{Decoder, Outcome};
//!
//! let mut d = Decoder::new(&DecodeConfig::default());
//! let pos = SourcePos::File { path: "-".into(), line: 1 };
//! let ok = br#"{"ts":"2026-11-28T09:41:07.123Z","resource_id":"vm-1","resource_type":"vm","category":"auth"}"#;
//! assert_eq!(d.push(ok, &pos, 0), Outcome::Accepted);
//! assert!(matches!(d.push(b"{oops", &pos, 0), Outcome::DeadLettered(_)));
//! let out = d.flush().unwrap();
//! assert_eq!((out.events.num_rows(), out.dead_letters.num_rows()), (1, 1));
//! ```
//!
//! With `[input] preset = "ecs"` or `"ocsf"` ([`Decoder::with_preset`]), messages in
//! Elastic Common Schema or OCSF shape are mapped onto the contract first (see
//! [`preset`]); the default, `native`, reads the contract's own field names.
//!
//! Memory: a decoder holds the rows pushed since the last [`Decoder::flush`]; the file
//! source holds one read chunk plus the longest line in it.

mod columns;
pub mod decode;
mod error;
pub mod file;
pub mod kafka;
pub mod preset;
mod scan;

pub use decode::{Decoded, Decoder, Outcome, Rejection};
pub use error::{Error, Result};
pub use file::{FileSource, LineChunk, Recycler};
pub use kafka::{ConsumerLag, KafkaBatch, KafkaLocation, KafkaRecord, KafkaSource, UntilEnd};
