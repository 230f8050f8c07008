//! Schema presets: where Elastic Common Schema and OCSF carry the event contract's
//! fields (`[input] preset`).
//!
//! The tables are the contract between the decoder, which maps a message onto the
//! contract by them, and the read side, which puts an archived row back into the
//! message's shape by them ([`ECS`], [`OCSF`]; the README lists both). Each contract
//! field has source paths, tried in order (the first present and not null is used), and
//! a [`Conversion`].
//!
//! Paths are dotted (`destination.port`), with `[n]` for an array element
//! (`resources[0].uid`). ECS documents are often flattened (`"event.action": "x"`):
//! [`get`] finds a dotted key as well as nested objects.
//!
//! ```
//! use rampart_core::config::Preset;
//! use rampart_core::preset::{get, parse_path, table};
//! let ecs = table(Preset::Ecs).unwrap();
//! assert_eq!(ecs[0].paths, ["@timestamp"]);
//! let v = serde_json::json!({"destination": {"port": 22}, "event.action": "auth"});
//! assert_eq!(get(&v, &parse_path("destination.port")), Some(&serde_json::json!(22)));
//! assert_eq!(get(&v, &parse_path("event.action")), Some(&serde_json::json!("auth")));
//! assert!(table(Preset::Native).is_none());
//! ```

use serde_json::Value;

use crate::config::Preset;
use crate::schema::events as col;

/// How a source value becomes the contract field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// Copied as it is (and taken out of `extra`).
    Verbatim,
    /// An integer of milliseconds since the epoch, rendered as RFC 3339 UTC.
    EpochMillis,
    /// A string, lowercased (OCSF captions such as `Success`, `Confidential`).
    Lowercase,
    /// An OCSF severity caption, lowercased, with `Informational` as `info`.
    OcsfSeverity,
}

/// One contract field and where a schema carries it.
#[derive(Debug, Clone, Copy)]
pub struct FieldMapping {
    /// The contract field.
    pub field: &'static str,
    /// Source paths, tried in order; the first present and not null is used.
    pub paths: &'static [&'static str],
    /// How its value is converted.
    pub conversion: Conversion,
}

const fn map(field: &'static str, paths: &'static [&'static str]) -> FieldMapping {
    FieldMapping {
        field,
        paths,
        conversion: Conversion::Verbatim,
    }
}

const fn conv(
    field: &'static str,
    paths: &'static [&'static str],
    conversion: Conversion,
) -> FieldMapping {
    FieldMapping {
        field,
        paths,
        conversion,
    }
}

/// Elastic Common Schema. What ECS has no field for (the contract's resource type,
/// category-independent severity, data classification, patch state, network policy) is
/// read from the custom field set `rampart.*`; the owning workload from `labels.workload`.
pub const ECS: &[FieldMapping] = &[
    map(col::TS, &["@timestamp"]),
    map(col::RESOURCE_ID, &["cloud.instance.id", "host.id"]),
    map(col::RESOURCE_TYPE, &["rampart.resource_type"]),
    map(col::CATEGORY, &["event.action"]),
    map(col::WORKLOAD, &["labels.workload"]),
    map(col::OUTCOME, &["event.outcome"]),
    map(col::SEVERITY, &["rampart.severity"]),
    map(col::SRC_IP, &["source.ip"]),
    map(col::DST_IP, &["destination.ip"]),
    map(col::DST_PORT, &["destination.port"]),
    map(col::PROTOCOL, &["network.transport"]),
    map(col::USER, &["user.name"]),
    map(col::CLASSIFICATION, &["rampart.classification"]),
    map(col::VULN_ID, &["vulnerability.id"]),
    map(col::PATCHED, &["rampart.patched"]),
    map(col::POLICY_ALLOWED, &["rampart.policy_allowed"]),
    map(col::MESSAGE, &["message"]),
];

/// Open Cybersecurity Schema Framework. The resource is the first of `resources`; what
/// OCSF has no attribute for (the contract's category, patch state, network policy) is
/// read from `unmapped`, OCSF's place for source-specific attributes.
pub const OCSF: &[FieldMapping] = &[
    conv(col::TS, &["time"], Conversion::EpochMillis),
    map(col::RESOURCE_ID, &["resources[0].uid"]),
    map(col::RESOURCE_TYPE, &["resources[0].type"]),
    map(col::CATEGORY, &["unmapped.category"]),
    map(col::WORKLOAD, &["resources[0].group.name"]),
    conv(col::OUTCOME, &["status"], Conversion::Lowercase),
    conv(col::SEVERITY, &["severity"], Conversion::OcsfSeverity),
    map(col::SRC_IP, &["src_endpoint.ip"]),
    map(col::DST_IP, &["dst_endpoint.ip"]),
    map(col::DST_PORT, &["dst_endpoint.port"]),
    map(col::PROTOCOL, &["connection_info.protocol_name"]),
    map(col::USER, &["actor.user.name"]),
    conv(
        col::CLASSIFICATION,
        &["resources[0].data_classification.classification"],
        Conversion::Lowercase,
    ),
    map(col::VULN_ID, &["vulnerabilities[0].cve.uid"]),
    map(col::PATCHED, &["unmapped.patched"]),
    map(col::POLICY_ALLOWED, &["unmapped.policy_allowed"]),
    map(col::MESSAGE, &["message"]),
];

/// The table of a preset; `None` for `native`, which maps nothing.
pub fn table(preset: Preset) -> Option<&'static [FieldMapping]> {
    match preset {
        Preset::Native => None,
        Preset::Ecs => Some(ECS),
        Preset::Ocsf => Some(OCSF),
    }
}

/// One step of a path: an object key, optionally followed by an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// The object key.
    pub key: &'a str,
    /// The array element under it, if any.
    pub index: Option<usize>,
}

/// Splits a dotted path with `[n]` indexes into its steps.
pub fn parse_path(path: &str) -> Vec<Part<'_>> {
    path.split('.')
        .map(|seg| match seg.split_once('[') {
            Some((key, rest)) => Part {
                key,
                index: rest.trim_end_matches(']').parse().ok(),
            },
            None => Part {
                key: seg,
                index: None,
            },
        })
        .collect()
}

/// The keys under which `parts` may be found in one object: `a`, then `a.b`, ... (ECS
/// documents may flatten any prefix of a path into one dotted key). A part with an
/// index ends the candidates.
fn candidates<'p>(parts: &'p [Part<'p>]) -> impl Iterator<Item = (String, usize)> + 'p {
    let mut key = String::new();
    let mut done = false;
    parts.iter().enumerate().map_while(move |(i, p)| {
        if done {
            return None;
        }
        if i > 0 {
            key.push('.');
        }
        key.push_str(p.key);
        done = p.index.is_some();
        Some((key.clone(), i + 1))
    })
}

/// The value at `parts`, nested or under flattened dotted keys.
pub fn get<'v>(value: &'v Value, parts: &[Part<'_>]) -> Option<&'v Value> {
    if parts.is_empty() {
        return Some(value);
    }
    let obj = value.as_object()?;
    candidates(parts).find_map(|(key, used)| {
        let mut v = obj.get(&key)?;
        if let Some(i) = parts[used - 1].index {
            v = v.as_array()?.get(i)?;
        }
        get(v, &parts[used..])
    })
}
