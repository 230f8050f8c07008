//! A deterministic generator of synthetic security events, as JSON lines.
//!
//! It feeds the `rampart gen` command, the tests and the benchmarks with a stream that
//! follows the event contract (`spec/events.md`): Azure-style resources of every type,
//! every category, optional fields filled plausibly (sometimes `null`), fields outside
//! the contract, the odd timestamp with an offset, attack campaigns whose volume rises
//! by half window over window, events that arrive out of order by up to `disorder`, and
//! a share of malformed messages, each labelled with the reason the decoder must give.
//!
//! ```
//! use rampart_gen::{GenConfig, Generator, MessageKind, write_lines};
//!
//! let cfg = GenConfig { events: 1_000, bad_rate: 0.01, ..GenConfig::default() };
//! let first = Generator::new(cfg.clone()).unwrap().next().unwrap();
//! assert!(matches!(first.kind, MessageKind::Good | MessageKind::Bad(_)));
//!
//! let mut out = Vec::new();
//! let stats = write_lines(cfg, &mut out).unwrap();
//! assert_eq!(stats.total(), 1_000);
//! assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1_000);
//! ```
//!
//! Guarantees:
//! - **Deterministic**: the same [`GenConfig`] gives the same bytes, on any machine; no
//!   wall clock and no OS randomness are used.
//! - **Exact**: exactly `events` messages, good and malformed together; no payload
//!   contains a `\n`.
//! - **Bounded memory**: events are drafted one epoch-aligned window at a time (cut into
//!   slices of at most 65 536 events), and held only while within `disorder` of the
//!   next event to be drafted. Arrival order therefore differs from event-time order by
//!   at most `disorder`.

#![warn(missing_docs)]

mod campaign;
mod config;
mod disorder;
mod event;
mod generator;
mod json;
mod malformed;
mod message;
mod resources;
mod stats;
mod timeline;
mod timestamp;

use std::io::{self, BufWriter, Write};

pub use config::GenConfig;
pub use generator::Generator;
pub use message::{Message, MessageKind};
pub use stats::GenStats;

/// Writes every message of `cfg` to `out` as a line (payload and `\n`), and returns
/// the counts by kind. An invalid `cfg` is an [`io::ErrorKind::InvalidInput`] error.
pub fn write_lines(cfg: GenConfig, out: &mut dyn Write) -> io::Result<GenStats> {
    let generator =
        Generator::new(cfg).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let mut stats = GenStats::default();
    for message in generator {
        out.write_all(&message.payload)?;
        out.write_all(b"\n")?;
        stats.record(&message.kind);
    }
    out.flush()?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
    use std::fmt;
    use std::time::Duration;

    use chrono::DateTime;
    use rampart_core::DeadLetterReason::{self, *};
    use serde::de::{Deserializer, MapAccess, Visitor};
    use serde_json::Value;
    use serde_json::value::RawValue;

    use super::*;

    /// Top-level fields in order, duplicates kept.
    struct Fields(Vec<(String, Box<RawValue>)>);

    impl<'de> serde::Deserialize<'de> for Fields {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Fields;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                    let mut out = Vec::new();
                    while let Some(entry) = map.next_entry()? {
                        out.push(entry);
                    }
                    Ok(Fields(out))
                }
            }
            d.deserialize_map(V)
        }
    }

    const REQUIRED: [&str; 4] = ["ts", "resource_id", "resource_type", "category"];
    const STRINGS: [&str; 10] = [
        "workload",
        "outcome",
        "severity",
        "src_ip",
        "dst_ip",
        "protocol",
        "user",
        "classification",
        "vuln_id",
        "message",
    ];

    /// Every way `msg` breaks the contract, by an independent reading of the decoder's
    /// rules. A well-made malformed message breaks it in exactly one way.
    fn defects(msg: &[u8]) -> BTreeSet<DeadLetterReason> {
        let mut found = BTreeSet::new();
        if msg.len() > 1 << 20 {
            found.insert(TooLarge);
        }
        let text = match std::str::from_utf8(msg) {
            Ok(t) => t.to_owned(),
            Err(_) => {
                found.insert(NotUtf8);
                String::from_utf8_lossy(msg).into_owned()
            }
        };
        if !text.trim_start().starts_with('{') {
            found.insert(match serde_json::from_str::<Value>(&text) {
                Ok(_) => NotObject,
                Err(_) => NotJson,
            });
            return found;
        }
        let Ok(Fields(fields)) = serde_json::from_str::<Fields>(&text) else {
            found.insert(NotJson);
            return found;
        };
        let mut seen = HashSet::new();
        let mut map = HashMap::new();
        for (k, v) in &fields {
            if !seen.insert(k.as_str()) {
                found.insert(DuplicateField);
            }
            map.insert(k.as_str(), v.get());
        }
        for key in REQUIRED {
            if map.get(key).is_none_or(|v| *v == "null") {
                found.insert(MissingField);
            }
        }
        for (key, raw) in &map {
            let v: Value = serde_json::from_str(raw).unwrap();
            if v.is_null() {
                continue;
            }
            if REQUIRED.contains(key) || STRINGS.contains(key) {
                match v.as_str() {
                    None => {
                        found.insert(WrongType);
                    }
                    Some(s) if REQUIRED.contains(key) && s.is_empty() => {
                        found.insert(InvalidValue);
                    }
                    Some(s) if *key == "ts" && DateTime::parse_from_rfc3339(s).is_err() => {
                        found.insert(InvalidValue);
                    }
                    Some(_) => {}
                }
            } else if *key == "patched" || *key == "policy_allowed" {
                if !v.is_boolean() {
                    found.insert(WrongType);
                }
            } else if *key == "dst_port" {
                if !v.is_number() || raw.contains(['.', 'e', 'E']) {
                    found.insert(WrongType);
                } else if !raw.parse::<i64>().is_ok_and(|p| (0..=65535).contains(&p)) {
                    found.insert(InvalidValue);
                }
            }
        }
        found
    }

    fn cfg(events: u64) -> GenConfig {
        GenConfig {
            events,
            ..GenConfig::default()
        }
    }

    fn run(cfg: GenConfig) -> Vec<Message> {
        Generator::new(cfg).unwrap().collect()
    }

    fn good_events(messages: &[Message]) -> Vec<Value> {
        messages
            .iter()
            .filter(|m| m.kind == MessageKind::Good)
            .map(|m| serde_json::from_slice(&m.payload).unwrap())
            .collect()
    }

    fn ts_millis(v: &Value) -> i64 {
        DateTime::parse_from_rfc3339(v["ts"].as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn same_config_same_bytes() {
        let c = GenConfig {
            events: 20_000,
            bad_rate: 0.01,
            ..GenConfig::default()
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let sa = write_lines(c.clone(), &mut a).unwrap();
        let sb = write_lines(c.clone(), &mut b).unwrap();
        assert_eq!(sa, sb);
        assert!(a == b, "outputs differ");
        let mut other = Vec::new();
        write_lines(GenConfig { seed: 7, ..c }, &mut other).unwrap();
        assert!(a != other);
    }

    #[test]
    fn emits_exactly_the_requested_count() {
        for n in [0, 1, 9, 64, 1_000, 20_001] {
            assert_eq!(Generator::new(cfg(n)).unwrap().count() as u64, n, "{n}");
        }
        let odd = GenConfig {
            events: 5_000,
            start: DateTime::from_timestamp_millis(1_793_491_623_123).unwrap(),
            span: Duration::from_millis(1_234_567),
            window: Duration::from_secs(60),
            ..GenConfig::default()
        };
        let messages = run(odd.clone());
        assert_eq!(messages.len(), 5_000);
        let (from, to) = (1_793_491_623_123, 1_793_491_623_123 + 1_234_567);
        for e in good_events(&messages) {
            assert!((from..to).contains(&ts_millis(&e)), "{e}");
        }
        let tiny = GenConfig {
            span: Duration::from_millis(3),
            window: Duration::from_millis(1),
            ..cfg(1_000)
        };
        assert_eq!(Generator::new(tiny).unwrap().count(), 1_000);
    }

    #[test]
    fn invalid_config_is_refused() {
        let err = Generator::new(GenConfig {
            bad_rate: 1.5,
            ..cfg(10)
        })
        .unwrap_err();
        assert_eq!(err, "--bad-rate must be between 0 and 1, got 1.5");
        let e = write_lines(
            GenConfig {
                resources: 3,
                ..cfg(10)
            },
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    }

    #[test]
    fn every_message_fails_exactly_as_labelled() {
        let messages = run(GenConfig {
            events: 40_000,
            bad_rate: 0.1,
            ..GenConfig::default()
        });
        let mut stats = GenStats::default();
        for m in &messages {
            stats.record(&m.kind);
            let expected: BTreeSet<_> = match m.kind {
                MessageKind::Good => BTreeSet::new(),
                MessageKind::Bad(r) => BTreeSet::from([r]),
            };
            assert_eq!(
                defects(&m.payload),
                expected,
                "{}",
                String::from_utf8_lossy(&m.payload[..m.payload.len().min(600)])
            );
            assert!(!m.payload.contains(&b'\n') && !m.payload.contains(&b'\r'));
            if m.kind == MessageKind::Good {
                let v: Value = serde_json::from_slice(&m.payload).unwrap();
                assert_eq!(v["resource_id"].as_str(), Some(m.key.as_str()));
            }
        }
        for r in DeadLetterReason::ALL {
            assert!(
                stats.bad.get(r.as_str()).is_some_and(|n| *n > 0),
                "{r}: {stats:?}"
            );
        }
        let too_large = stats.bad["too_large"];
        assert_eq!(too_large, stats.bad_total() / 64, "{stats:?}");
    }

    #[test]
    fn bad_share_follows_bad_rate() {
        let stats = |bad_rate, events| {
            let mut s = GenStats::default();
            for m in Generator::new(GenConfig {
                events,
                bad_rate,
                ..GenConfig::default()
            })
            .unwrap()
            {
                s.record(&m.kind);
            }
            s
        };
        let s = stats(0.01, 100_000);
        assert_eq!(s.total(), 100_000);
        assert!((850..=1150).contains(&s.bad_total()), "{s:?}");
        let s = stats(0.002, 100_000);
        assert!((140..=260).contains(&s.bad_total()), "{s:?}");
        assert_eq!(stats(0.0, 10_000).bad_total(), 0);
        assert_eq!(stats(1.0, 200).good, 0);
    }

    #[test]
    fn default_run_covers_the_contract() {
        let messages = run(cfg(20_000));
        assert!(messages.iter().all(|m| !m.payload.contains(&b'\n')));
        let events = good_events(&messages);
        let values = |field: &str| -> BTreeMap<String, usize> {
            let mut out = BTreeMap::new();
            for e in &events {
                let key = match e.get(field) {
                    None => "<absent>".to_owned(),
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                };
                *out.entry(key).or_default() += 1;
            }
            out
        };
        let categories = values("category");
        for c in [
            "auth",
            "data_access",
            "network_access",
            "brute_force",
            "ddos",
            "malware",
            "vulnerability",
            "patch",
            "classification_change",
        ] {
            assert!(categories.contains_key(c), "{c}: {categories:?}");
        }
        let types = values("resource_type");
        for t in ["vm", "storage", "database", "network", "app"] {
            assert!(types.contains_key(t), "{t}: {types:?}");
        }
        let share = |n: usize| n as f64 / events.len() as f64;
        assert!((0.3..0.5).contains(&share(types["vm"])), "{types:?}");

        let data: Vec<&Value> = events
            .iter()
            .filter(|e| matches!(e["resource_type"].as_str(), Some("storage" | "database")))
            .collect();
        let has = |f: &dyn Fn(&Value) -> bool| data.iter().any(|e| f(e));
        assert!(has(&|e| e.get("classification").is_none()));
        assert!(has(&|e| e.get("classification") == Some(&Value::Null)));
        assert!(has(&|e| e["classification"] == ""));
        assert!(has(&|e| e["classification"] == "restricted"));
        assert!(events.iter().all(|e| matches!(
            e["resource_type"].as_str(),
            Some("storage" | "database")
        ) || e.get("classification").is_none()));
        for e in events
            .iter()
            .filter(|e| e["category"] == "classification_change")
        {
            assert!(
                e["classification"].as_str().is_some_and(|c| !c.is_empty()),
                "{e}"
            );
        }

        let ids = values("resource_id");
        assert!(ids.len() >= 190 && ids.len() <= 200, "{}", ids.len());
        assert!(
            ids.keys()
                .any(|id| id.contains("/providers/Microsoft.Sql/servers/")
                    && id.contains("/databases/db-"))
        );
        for e in &events {
            let id = e["resource_id"].as_str().unwrap();
            let provider = match e["resource_type"].as_str().unwrap() {
                "vm" => "Microsoft.Compute/virtualMachines/",
                "storage" => "Microsoft.Storage/storageAccounts/",
                "database" => "Microsoft.Sql/servers/",
                "network" => "Microsoft.Network/networkSecurityGroups/",
                _ => "Microsoft.Web/sites/",
            };
            assert!(
                id.starts_with("/subscriptions/") && id.contains(provider),
                "{id}"
            );
        }

        let count = |f: &dyn Fn(&Value) -> bool| events.iter().filter(|e| f(e)).count();
        let offset_ts = count(&|e| !e["ts"].as_str().unwrap().ends_with('Z'));
        assert!((0.005..0.02).contains(&share(offset_ts)), "{offset_ts}");
        let known: HashSet<&str> = REQUIRED
            .iter()
            .chain(&STRINGS)
            .copied()
            .chain(["dst_port", "patched", "policy_allowed"])
            .collect();
        let extra = count(&|e| {
            e.as_object()
                .unwrap()
                .keys()
                .any(|k| !known.contains(k.as_str()))
        });
        assert!((0.15..0.25).contains(&share(extra)), "{extra}");
        let nested = count(&|e| {
            e.get("cloud").is_some_and(Value::is_object)
                || e.get("tags").is_some_and(Value::is_array)
        });
        assert!(nested > 0);
        let nulls = count(&|e| {
            e.as_object()
                .unwrap()
                .iter()
                .any(|(k, v)| v.is_null() && k != "classification" && known.contains(k.as_str()))
        });
        assert!((0.03..0.08).contains(&share(nulls)), "{nulls}");
        assert!(count(&|e| e["src_ip"].as_str().is_some_and(|ip| ip.contains(':'))) > 0);
        assert!(count(&|e| e["dst_port"].is_u64()) > events.len() / 2);
        assert!(
            events
                .iter()
                .all(|e| e["workload"].is_null() || e["workload"].is_string())
        );
        for e in events
            .iter()
            .filter(|e| e.get("vuln_id").is_some_and(|v| !v.is_null()))
        {
            let id = e["vuln_id"].as_str().unwrap();
            assert!(id.len() == 14 && id.starts_with("CVE-2026-"), "{id}");
        }
        let patches = count(&|e| e["category"] == "patch");
        let patched = count(&|e| e["category"] == "patch" && e["patched"] == true);
        assert!(patched * 10 > patches * 7, "{patched}/{patches}");
        let net = count(&|e| e["category"] == "network_access");
        let denied = count(&|e| e["category"] == "network_access" && e["policy_allowed"] == false);
        assert!(
            (0.05..0.15).contains(&(denied as f64 / net as f64)),
            "{denied}/{net}"
        );
        let malware = count(&|e| e["category"] == "malware");
        let malware_vm = count(&|e| e["category"] == "malware" && e["resource_type"] == "vm");
        assert!(malware_vm * 2 > malware);
    }

    #[test]
    fn arrival_disorder_is_bounded() {
        for c in [
            cfg(20_000),
            GenConfig {
                span: Duration::from_secs(300),
                disorder: Duration::from_secs(3),
                ..cfg(150_000)
            },
        ] {
            let disorder = c.disorder.as_millis() as i64;
            let events = good_events(&run(c));
            let mut max_seen = i64::MIN;
            let mut out_of_order = 0;
            for e in &events {
                let ts = ts_millis(e);
                assert!(
                    ts >= max_seen.saturating_sub(disorder),
                    "{ts} after {max_seen}"
                );
                out_of_order += usize::from(ts < max_seen);
                max_seen = max_seen.max(ts);
            }
            assert!(out_of_order > events.len() / 10, "{out_of_order}");
        }
    }

    #[test]
    fn campaigns_rise_window_over_window() {
        let events = good_events(&run(cfg(20_000)));
        let mut counts: HashMap<(String, String, i64), u64> = HashMap::new();
        for e in &events {
            let category = e["category"].as_str().unwrap();
            if category == "brute_force" || category == "ddos" {
                let window = ts_millis(e).div_euclid(300_000);
                let key = (
                    e["resource_id"].as_str().unwrap().to_owned(),
                    category.to_owned(),
                    window,
                );
                *counts.entry(key).or_default() += 1;
            }
        }
        let rising: Vec<_> = counts
            .iter()
            .filter(|((r, c, w), n)| {
                let prev = counts
                    .get(&(r.clone(), c.clone(), w - 1))
                    .copied()
                    .unwrap_or(0);
                prev >= 10 && **n * 4 >= prev * 5
            })
            .collect();
        assert!(rising.len() >= 5, "{rising:?}");
        let resources: HashSet<_> = rising.iter().map(|((r, _, _), _)| r).collect();
        assert!(resources.len() >= 3, "{resources:?}");
    }
}
