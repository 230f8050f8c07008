//! Arbitrary text as a pipeline file, loaded by `Config::from_toml_str` (figment over
//! TOML into `Config`, with the extraction and error messages of `Config::load`, which
//! the CLI calls) and then validated.
//!
//! For every input:
//! - loading and validation never panic;
//! - a load error has at least one message, none of them empty;
//! - a validation error says which key is wrong and why;
//! - a configuration that validates can be used: its metrics address parses, its
//!   retention periods answer for every table, and a decoder can be built from it;
//! - the `Debug` form does not depend on the value of any librdkafka setting whose name
//!   holds `password` (so it never shows one).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_core::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let config = match Config::from_toml_str(&text) {
        Ok(c) => c,
        Err(rampart_core::Error::ConfigLoad { origin, messages }) => {
            assert!(!origin.is_empty());
            assert!(!messages.is_empty(), "a load error without a message");
            for m in &messages {
                assert!(!m.trim().is_empty(), "empty load error");
            }
            return;
        }
        Err(other) => panic!("loading text fails only as ConfigLoad: {other:?}"),
    };

    let mut shown = config.clone();
    for (k, v) in shown.kafka.rdkafka.iter_mut() {
        if k.contains("password") {
            v.push_str("-changed");
        }
    }
    assert_eq!(
        format!("{config:?}"),
        format!("{shown:?}"),
        "Debug shows a password"
    );

    match config.validate() {
        Err(e) => {
            let message = e.to_string();
            match &e {
                rampart_core::Error::Config { key, message: m } => {
                    assert!(!key.is_empty() && !m.is_empty(), "{message}");
                    assert!(message.contains(key.as_str()), "{message} lacks {key}");
                }
                other => assert!(!message.is_empty(), "{other:?}"),
            }
        }
        Ok(()) => {
            config
                .metrics
                .socket_addr()
                .expect("validated, so the address parses");
            use rampart_core::schema::*;
            let tables = [
                EVENTS,
                DEAD_LETTERS,
                ATTACK_RATES,
                POLICY_HITS,
                VIOLATIONS,
                ACCESS_LOG,
            ];
            for table in tables.into_iter().chain([rampart_core::layout::REPORTS]) {
                assert!(config.retention.period(table).is_some(), "{table}");
            }
            let _ = config.retention.check_floor(false);
            let _ = rampart_ingest::Decoder::new(&config.decode).with_preset(config.input.preset);
        }
    }
});
