//! Integration tests of the ingest crate: the decoder over the fixtures in `fixtures/`,
//! and over hostile input.

mod hostile;
mod long_lines;
mod presets;
