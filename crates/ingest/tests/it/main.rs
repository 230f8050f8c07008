//! Integration tests of the ingest crate: the decoder over the fixtures in `fixtures/`.

mod presets;
