//! Strict JSON to Arrow: one message in, one `events` row or one `dead_letters` row out.
//!
//! A flat object of contract fields, nearly every event, is read in one pass by the fast
//! path ([`crate::scan`]), its strings borrowed from the message. Any other message is
//! parsed once with `serde_json` into borrowed field slices ([`RawValue`]), then every
//! contract field is checked for its type and value; the fast path never rejects a
//! message itself, it hands it to this general path, so the reasons below are the
//! general path's. The checks, in order, and the reason code each failure gets:
//!
//! | check | code |
//! |---|---|
//! | size within `decode.max-message-bytes` | `too_large` |
//! | valid UTF-8 | `not_utf8` |
//! | one well-formed JSON value, nothing after it, not empty, nested at most [`MAX_NESTING`] levels | `not_json` |
//! | that value is an object | `not_object` |
//! | no key twice | `duplicate_field` |
//! | `ts`, `resource_id`, `resource_type`, `category` present and not null | `missing_field` |
//! | each contract field of its JSON type | `wrong_type` |
//! | `ts` is RFC 3339 with an offset; `dst_port` in 0..=65535; required strings not empty | `invalid_value` |
//! | fields outside the contract can be read back: numbers within a 64-bit float, no `\u` escape of half a surrogate pair | `invalid_value` |
//!
//! An optional field given as `null` counts as absent. Fields outside the contract are
//! kept verbatim in `extra`; `ts` keeps its original text in `ts_raw` when the stored
//! microseconds would not render back to the same text.
//!
//! Hostile input. The size limit is checked first, on the length alone, so an oversized
//! message is never parsed. A line of a JSON-lines source over the limit is dead-lettered
//! with only its first `decode.max-message-bytes` bytes in `raw` (its `reason` gives the
//! true length); the source does not even buffer such a line whole, it hands on its start
//! and the true length ([`LineChunk::oversized`], see [`crate::file`]). A Kafka record
//! over the limit keeps its whole payload in `raw`. Within the limit, nothing is recursive on the input's depth
//! (the object's values are skipped over, not built), and the work is linear in the
//! size, however many keys there are. The contract sets no length for a string: a string
//! of any length that fits within `decode.max-message-bytes` is accepted, so the limit
//! (at most 256 MiB, see `Config::validate`) bounds it; decoding holds a few copies of a
//! message at most (the message, its unescaped strings, the row's columns). Nesting and
//! numbers are limited only where `extra` would otherwise keep what the archive's JSON
//! reader (`serde_json`, with its depth limit of 128 and 64-bit floats) could not read
//! back when it rebuilds the event; the presets, which parse the whole message with that
//! reader, refuse such messages as well.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use arrow::record_batch::RecordBatch;
use chrono::{DateTime, SecondsFormat, Utc};
use rampart_core::config::{DecodeConfig, Preset};
use rampart_core::schema::{OPTIONAL_STRING_FIELDS, events as col};
use rampart_core::{DeadLetterReason, SourcePos};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::Result;
use crate::columns::{DeadLetterColumns, EventColumns};
use crate::file::LineChunk;
use crate::preset::{self, FieldMapping, Mapped};

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It is a row of `events`.
    Accepted,
    /// It is a row of `dead_letters`, for this reason.
    DeadLettered(DeadLetterReason),
}

/// Why a message was refused: a stable code and a sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The class of the failure.
    pub reason: DeadLetterReason,
    /// What exactly was wrong, naming the field and what was expected.
    pub message: String,
}

impl Rejection {
    pub(crate) fn new(reason: DeadLetterReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

/// A message that passed every check, borrowing from the message text where it can.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    /// Event time, microseconds since the epoch, UTC.
    pub ts_micros: i64,
    /// The original `ts` text when it is not the canonical rendering of `ts_micros`.
    pub ts_raw: Option<Cow<'a, str>>,
    pub resource_id: Cow<'a, str>,
    pub resource_type: Cow<'a, str>,
    pub category: Cow<'a, str>,
    /// The optional string fields, in the order of [`OPTIONAL_STRING_FIELDS`].
    pub strings: [Option<Cow<'a, str>>; OPTIONAL_STRING_FIELDS.len()],
    pub dst_port: Option<i32>,
    pub patched: Option<bool>,
    pub policy_allowed: Option<bool>,
    /// Fields outside the contract, as the text of one JSON object.
    pub extra: Option<String>,
}

/// The rows decoded since the last flush, one batch per table.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Rows of `events`.
    pub events: RecordBatch,
    /// Rows of `dead_letters`.
    pub dead_letters: RecordBatch,
}

/// Decodes messages into `events` and `dead_letters` rows (see the module docs).
#[derive(Debug)]
pub struct Decoder {
    max_message_bytes: usize,
    /// The mapping of `[input] preset`; `None` for `native`.
    preset: Option<(Preset, &'static [FieldMapping])>,
    events: EventColumns,
    dead: DeadLetterColumns,
}

impl Decoder {
    /// A decoder with the limits of `config`.
    pub fn new(config: &DecodeConfig) -> Self {
        Self {
            max_message_bytes: usize::try_from(config.max_message_bytes.as_u64())
                .unwrap_or(usize::MAX),
            preset: None,
            events: EventColumns::default(),
            dead: DeadLetterColumns::default(),
        }
    }

    /// Reads messages in the shape of `preset` (see [`crate::preset`]); `native`, the
    /// default, maps nothing.
    pub fn with_preset(mut self, preset: Preset) -> Self {
        self.preset = preset::table(preset).map(|t| (preset, t));
        self
    }

    /// Decodes one message found at `pos`, received at `received_at` (microseconds since
    /// the epoch).
    pub fn push(&mut self, message: &[u8], pos: &SourcePos, received_at: i64) -> Outcome {
        let mapped;
        let result = match self.preset {
            None => parse(message, self.max_message_bytes),
            Some((preset, table)) => {
                match Mapped::new(message, self.max_message_bytes, preset, table) {
                    Ok(m) => {
                        mapped = m;
                        mapped.event()
                    }
                    Err(r) => Err(r),
                }
            }
        };
        match result {
            Ok(event) => {
                self.events.append(&event, pos, received_at);
                Outcome::Accepted
            }
            Err(rejection) => {
                self.dead.append(message, &rejection, pos, received_at);
                Outcome::DeadLettered(rejection.reason)
            }
        }
    }

    /// Decodes every line of a chunk of a JSON-lines source. A trailing `\r` is removed
    /// from each line. Returns the number of lines accepted and dead-lettered: every
    /// line is one or the other, so their sum is the chunk's line count.
    ///
    /// A line over `decode.max-message-bytes` (whether the source read it whole or
    /// handed on only its start, [`LineChunk::oversized`]) is one `too_large` dead
    /// letter whose `raw` is the line's first `max-message-bytes` bytes; its `reason`
    /// gives the line's true length and says that `raw` is truncated.
    pub fn push_lines(&mut self, chunk: &LineChunk, received_at: i64) -> (u64, u64) {
        let (mut accepted, mut dead) = (0, 0);
        // One position for the chunk, its line number moved on for each line: a new one
        // per line cost a reference count taken and dropped on the path each time.
        let mut pos = SourcePos::File {
            path: chunk.path.clone(),
            line: chunk.first_line,
        };
        for (i, line) in chunk.lines().enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let SourcePos::File { line: n, .. } = &mut pos {
                *n = chunk.first_line + i as u64;
            }
            let true_len = chunk.oversized.unwrap_or(line.len() as u64);
            if chunk.oversized.is_some() || true_len > self.max_message_bytes as u64 {
                let kept = &line[..line.len().min(self.max_message_bytes)];
                let why = Rejection::new(
                    DeadLetterReason::TooLarge,
                    format!(
                        "line is {true_len} bytes, over the limit of {} (decode.max-message-bytes); raw holds only its first {} bytes",
                        self.max_message_bytes,
                        kept.len()
                    ),
                );
                self.dead.append(kept, &why, &pos, received_at);
                dead += 1;
                continue;
            }
            match self.push(line, &pos, received_at) {
                Outcome::Accepted => accepted += 1,
                Outcome::DeadLettered(_) => dead += 1,
            }
        }
        (accepted, dead)
    }

    /// Decodes every record of a Kafka batch, with its coordinates. Returns the number
    /// of records accepted and dead-lettered.
    pub fn push_kafka(&mut self, batch: &crate::KafkaBatch, received_at: i64) -> (u64, u64) {
        let (mut accepted, mut dead) = (0, 0);
        for r in &batch.records {
            let pos = SourcePos::Kafka {
                topic: std::sync::Arc::clone(&batch.topic),
                partition: r.partition,
                offset: r.offset,
                timestamp_ms: r.timestamp_ms,
                key: r.key.clone(),
            };
            match self.push(&r.payload, &pos, received_at) {
                Outcome::Accepted => accepted += 1,
                Outcome::DeadLettered(_) => dead += 1,
            }
        }
        (accepted, dead)
    }

    /// Rows pushed since the last flush.
    pub fn pending_rows(&self) -> usize {
        self.events.len() + self.dead.len()
    }

    /// Takes the rows pushed since the last flush as record batches.
    pub fn flush(&mut self) -> Result<Decoded> {
        Ok(Decoded {
            events: self.events.finish()?,
            dead_letters: self.dead.finish()?,
        })
    }
}

/// Checks one message against the event contract.
///
/// Most messages take the fast path, [`crate::scan`]: one pass over a flat object of
/// contract fields. Any other message (fields outside the contract, `\u` escapes,
/// anything malformed) is read by `serde_json` ([`parse_general`]), which also gives
/// every rejection its reason; the fast path hands over instead of judging.
pub fn parse(message: &[u8], max_message_bytes: usize) -> Result<Event<'_>, Rejection> {
    let text = object_text(message, max_message_bytes)?;
    match crate::scan::contract_object(text) {
        Some(fields) => fields.finish(),
        None => general(text),
    }
}

/// [`parse`] without its fast path: every message read by `serde_json`. The reference
/// the fast path is checked against (unit tests, the `decode` fuzz target).
pub fn parse_general(message: &[u8], max_message_bytes: usize) -> Result<Event<'_>, Rejection> {
    general(object_text(message, max_message_bytes)?)
}

fn general(text: &str) -> Result<Event<'_>, Rejection> {
    let fields: RawFields<'_> = serde_json::from_str(text)
        .map_err(|e| Rejection::new(DeadLetterReason::NotJson, format!("not JSON: {e}")))?;
    check(fields)
}

/// The first checks, shared by every preset: size, UTF-8, and a JSON text that starts
/// as an object. Returns the message as text.
pub(crate) fn object_text(message: &[u8], max_message_bytes: usize) -> Result<&str, Rejection> {
    use DeadLetterReason::*;
    if message.len() > max_message_bytes {
        return Err(Rejection::new(
            TooLarge,
            format!(
                "message is {} bytes, over the limit of {max_message_bytes} (decode.max-message-bytes)",
                message.len()
            ),
        ));
    }
    // `simdutf8` checks a few times faster than `std`; only a message it refuses is
    // checked again by `std`, for the offset of the bad byte.
    let text = simdutf8::basic::from_utf8(message).or_else(|_| {
        std::str::from_utf8(message).map_err(|e| {
            Rejection::new(
                NotUtf8,
                format!("not valid UTF-8: bad byte at offset {}", e.valid_up_to()),
            )
        })
    })?;
    let trimmed = text.trim_start_matches([' ', '\t', '\n', '\r']);
    match trimmed.as_bytes().first() {
        None => Err(Rejection::new(NotJson, "empty message")),
        Some(b'{') => Ok(text),
        Some(_) => Err(match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => Rejection::new(
                NotObject,
                format!(
                    "a JSON {} is not an event; each message must be one JSON object",
                    json_type(trimmed)
                ),
            ),
            Err(e) => Rejection::new(NotJson, format!("not JSON: {e}")),
        }),
    }
}

/// The contract fields, by position in the parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    Ts,
    ResourceId,
    ResourceType,
    Category,
    Str(usize),
    DstPort,
    Patched,
    PolicyAllowed,
}

impl Known {
    /// The field named `key`. One `match` of every name (the optional strings at their
    /// index in [`OPTIONAL_STRING_FIELDS`], which a test checks): it runs for every key
    /// of every message, and searching the list compared the key with each name in turn.
    pub(crate) fn of(key: &str) -> Option<Self> {
        Some(match key {
            col::TS => Self::Ts,
            col::RESOURCE_ID => Self::ResourceId,
            col::RESOURCE_TYPE => Self::ResourceType,
            col::CATEGORY => Self::Category,
            col::DST_PORT => Self::DstPort,
            col::PATCHED => Self::Patched,
            col::POLICY_ALLOWED => Self::PolicyAllowed,
            col::WORKLOAD => Self::Str(0),
            col::OUTCOME => Self::Str(1),
            col::SEVERITY => Self::Str(2),
            col::SRC_IP => Self::Str(3),
            col::DST_IP => Self::Str(4),
            col::PROTOCOL => Self::Str(5),
            col::USER => Self::Str(6),
            col::CLASSIFICATION => Self::Str(7),
            col::VULN_ID => Self::Str(8),
            col::MESSAGE => Self::Str(9),
            _ => return None,
        })
    }

    /// A distinct bit per field, for duplicate detection.
    pub(crate) fn bit(self) -> u32 {
        match self {
            Self::Ts => 0,
            Self::ResourceId => 1,
            Self::ResourceType => 2,
            Self::Category => 3,
            Self::DstPort => 4,
            Self::Patched => 5,
            Self::PolicyAllowed => 6,
            Self::Str(i) => 7 + i as u32,
        }
    }
}

/// The contract fields of one message as read, before the checks on the whole event
/// (required fields present and not empty, `ts` a timestamp): what both ways of reading
/// a message ([`check`] after `serde_json`, and [`crate::scan`]) produce.
#[derive(Default)]
pub(crate) struct Fields<'a> {
    pub(crate) ts: Option<Cow<'a, str>>,
    pub(crate) resource_id: Option<Cow<'a, str>>,
    pub(crate) resource_type: Option<Cow<'a, str>>,
    pub(crate) category: Option<Cow<'a, str>>,
    pub(crate) strings: [Option<Cow<'a, str>>; OPTIONAL_STRING_FIELDS.len()],
    pub(crate) dst_port: Option<i32>,
    pub(crate) patched: Option<bool>,
    pub(crate) policy_allowed: Option<bool>,
    /// The fields outside the contract as the text of one JSON object; empty for none.
    pub(crate) extra: String,
}

impl<'a> Fields<'a> {
    /// Where a string field of the contract goes; `None` for the fields of other types.
    pub(crate) fn string_mut(&mut self, known: Known) -> Option<&mut Option<Cow<'a, str>>> {
        Some(match known {
            Known::Ts => &mut self.ts,
            Known::ResourceId => &mut self.resource_id,
            Known::ResourceType => &mut self.resource_type,
            Known::Category => &mut self.category,
            Known::Str(i) => &mut self.strings[i],
            Known::DstPort | Known::Patched | Known::PolicyAllowed => return None,
        })
    }

    /// The checks on the whole event, in the order of the module docs' table.
    pub(crate) fn finish(mut self) -> Result<Event<'a>, Rejection> {
        if !self.extra.is_empty() {
            self.extra.push('}');
        }
        let ts_text = required(col::TS, self.ts)?;
        let resource_id = required(col::RESOURCE_ID, self.resource_id)?;
        let resource_type = required(col::RESOURCE_TYPE, self.resource_type)?;
        let category = required(col::CATEGORY, self.category)?;
        let (ts_micros, canonical) = parse_ts(&ts_text)?;

        Ok(Event {
            ts_micros,
            ts_raw: (!canonical).then_some(ts_text),
            resource_id,
            resource_type,
            category,
            strings: self.strings,
            dst_port: self.dst_port,
            patched: self.patched,
            policy_allowed: self.policy_allowed,
            extra: (!self.extra.is_empty()).then_some(self.extra),
        })
    }
}

fn check(fields: RawFields<'_>) -> Result<Event<'_>, Rejection> {
    let fields = fields.0;
    let mut seen: u32 = 0;
    let mut out = Fields::default();
    let mut extra_keys = KeySet::default();

    for (key, value) in &fields {
        let value: &RawValue = value;
        let Some(known) = Known::of(key) else {
            if !extra_keys.insert(key) {
                return Err(duplicate(key));
            }
            check_extra(key, value.get())?;
            let extra = &mut out.extra;
            extra.push(if extra.is_empty() { '{' } else { ',' });
            push_json_key(extra, key);
            extra.push(':');
            extra.push_str(value.get());
            continue;
        };
        let bit = 1u32 << known.bit();
        if seen & bit != 0 {
            return Err(duplicate(key));
        }
        seen |= bit;
        match known {
            Known::DstPort => out.dst_port = port_field(key, value)?,
            Known::Patched => out.patched = bool_field(key, value)?,
            Known::PolicyAllowed => out.policy_allowed = bool_field(key, value)?,
            _ => {
                if let Some(slot) = out.string_mut(known) {
                    *slot = string_field(key, value)?;
                }
            }
        }
    }
    out.finish()
}

/// The keys seen so far: a list while there are few, a hash set once there are many,
/// so that a message of many thousand keys costs linear time, not quadratic.
#[derive(Default)]
struct KeySet<'k> {
    few: Vec<&'k str>,
    many: Option<HashSet<&'k str>>,
}

impl<'k> KeySet<'k> {
    const FEW: usize = 16;

    /// Adds `key`; false when it was there already.
    fn insert(&mut self, key: &'k str) -> bool {
        if let Some(many) = &mut self.many {
            return many.insert(key);
        }
        if self.few.contains(&key) {
            return false;
        }
        self.few.push(key);
        if self.few.len() > Self::FEW {
            self.many = Some(self.few.drain(..).collect());
        }
        true
    }
}

/// The deepest nesting of arrays and objects that the archive's readers accept in a
/// message, counting the message's own object as 1: `serde_json`'s limit, which
/// rebuilding an event from its `extra` column runs into.
pub const MAX_NESTING: usize = 127;

/// Checks a field outside the contract (one raw JSON value, well-formed) for what
/// `serde_json` would refuse when the event is rebuilt from `extra`: nesting deeper than
/// [`MAX_NESTING`] (`not_json`), a number out of the range of a 64-bit float or a
/// `\u` escape of half a surrogate pair (`invalid_value`). One pass over the text; the
/// exact check by `serde_json` runs only on the rare value that holds an exponent, a
/// very long number or a `\u` escape.
fn check_extra(key: &str, text: &str) -> Result<(), Rejection> {
    let b = text.as_bytes();
    let (mut depth, mut deepest, mut suspect) = (0usize, 0usize, false);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        suspect |= b.get(i + 1) == Some(&b'u');
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i + 1 < b.len()
                    && matches!(b[i + 1], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                let number = &b[start..=i];
                suspect |= number.len() > 300 || number.iter().any(|c| matches!(c, b'e' | b'E'));
            }
            _ => {}
        }
        i += 1;
    }
    if deepest + 1 > MAX_NESTING {
        return Err(Rejection::new(
            DeadLetterReason::NotJson,
            format!(
                "field `{}` is nested {} levels deep; a message may nest at most {MAX_NESTING}",
                truncate(key, 80),
                deepest + 1
            ),
        ));
    }
    if suspect && let Err(e) = serde_json::from_str::<serde_json::Value>(text) {
        return Err(Rejection::new(
            DeadLetterReason::InvalidValue,
            format!("field `{}` cannot be read back: {e}", truncate(key, 80)),
        ));
    }
    Ok(())
}

fn required<'a>(name: &str, value: Option<Cow<'a, str>>) -> Result<Cow<'a, str>, Rejection> {
    let value = value.ok_or_else(|| {
        Rejection::new(
            DeadLetterReason::MissingField,
            format!("required field `{name}` is missing or null"),
        )
    })?;
    if value.is_empty() {
        return Err(Rejection::new(
            DeadLetterReason::InvalidValue,
            format!("required field `{name}` is an empty string"),
        ));
    }
    Ok(value)
}

fn duplicate(key: &str) -> Rejection {
    Rejection::new(
        DeadLetterReason::DuplicateField,
        format!("field `{}` appears more than once", truncate(key, 80)),
    )
}

/// Parses an RFC 3339 timestamp; also tells whether the text is exactly the canonical
/// rendering of the microseconds kept (so that `ts_raw` need not be stored).
fn parse_ts(text: &str) -> Result<(i64, bool), Rejection> {
    let invalid = || {
        Rejection::new(
            DeadLetterReason::InvalidValue,
            format!(
                "field `ts` is not an RFC 3339 timestamp with offset (like 2026-11-28T09:41:07.123Z): {:?}",
                truncate(text, 80)
            ),
        )
    };
    if let Some(micros) = canonical_utc_micros(text) {
        return Ok((micros, true));
    }
    let parsed = DateTime::parse_from_rfc3339(text).map_err(|_| invalid())?;
    let micros = parsed.timestamp_micros();
    let canonical = DateTime::<Utc>::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true) == text)
        .unwrap_or(false);
    Ok((micros, canonical))
}

/// The fast path for the common case: `text` is exactly the canonical UTC rendering of a
/// microsecond timestamp (`YYYY-MM-DDTHH:MM:SS[.mmm|.uuuuuu]Z`, as chrono's `AutoSi`
/// writes it: no fraction when it is zero, 3 digits when the microseconds are whole
/// milliseconds, else 6). Anything else, valid or not, returns `None` and takes the
/// general path.
fn canonical_utc_micros(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if !matches!(b.len(), 20 | 24 | 27) || b[b.len() - 1] != b'Z' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        b.get(range)?.iter().try_fold(0i64, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let micros_frac = match b.len() {
        20 => 0,
        24 => {
            let ms = (b[19] == b'.').then(|| digits(20..23))??;
            if ms == 0 {
                return None; // canonical form would have no fraction
            }
            ms * 1000
        }
        _ => {
            let us = (b[19] == b'.').then(|| digits(20..26))??;
            if us % 1000 == 0 {
                return None; // canonical form would have 3 digits or none
            }
            us
        }
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    // Days since the epoch of a proleptic Gregorian date (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(secs * 1_000_000 + micros_frac)
}

fn json_type(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        Some(b'{') => "object",
        Some(b'[') => "array",
        _ => "number",
    }
}

fn wrong_type(key: &str, expected: &str, value: &RawValue) -> Rejection {
    Rejection::new(
        DeadLetterReason::WrongType,
        format!(
            "field `{key}` must be {expected}, got {}",
            json_type(value.get())
        ),
    )
}

/// A string or null (`None`).
fn string_field<'a>(key: &str, value: &'a RawValue) -> Result<Option<Cow<'a, str>>, Rejection> {
    let text = value.get();
    match text.as_bytes().first() {
        Some(b'n') => Ok(None),
        Some(b'"') => {
            let inner = &text[1..text.len() - 1];
            if !inner.contains('\\') {
                return Ok(Some(Cow::Borrowed(inner)));
            }
            serde_json::from_str::<String>(text)
                .map(|s| Some(Cow::Owned(s)))
                .map_err(|e| {
                    Rejection::new(
                        DeadLetterReason::InvalidValue,
                        format!("field `{key}` has an invalid string escape: {e}"),
                    )
                })
        }
        _ => Err(wrong_type(key, "a string", value)),
    }
}

fn bool_field(key: &str, value: &RawValue) -> Result<Option<bool>, Rejection> {
    match value.get() {
        "null" => Ok(None),
        "true" => Ok(Some(true)),
        "false" => Ok(Some(false)),
        _ => Err(wrong_type(key, "true, false or null", value)),
    }
}

fn port_field(key: &str, value: &RawValue) -> Result<Option<i32>, Rejection> {
    let text = value.get();
    if text == "null" {
        return Ok(None);
    }
    if json_type(text) != "number" || text.contains(['.', 'e', 'E']) {
        return Err(wrong_type(key, "an integer", value));
    }
    match text.parse::<i64>() {
        Ok(n) if (0..=65535).contains(&n) => Ok(Some(n as i32)),
        _ => Err(Rejection::new(
            DeadLetterReason::InvalidValue,
            format!("field `{key}` is {}, outside 0..=65535", truncate(text, 40)),
        )),
    }
}

#[expect(
    clippy::ptr_arg,
    reason = "borrowed vs owned tells whether the key had escapes"
)]
fn push_json_key(out: &mut String, key: &Cow<'_, str>) {
    match key {
        // A borrowed key had no escapes in the input, so it needs none in the output.
        Cow::Borrowed(k) => {
            out.push('"');
            out.push_str(k);
            out.push('"');
        }
        Cow::Owned(k) => {
            // Serializing a str cannot fail.
            out.push_str(&serde_json::to_string(k).unwrap_or_default());
        }
    }
}

fn truncate(s: &str, max_chars: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max_chars) {
        None => Cow::Borrowed(s),
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
    }
}

/// The top-level object as `(key, raw value)` pairs in input order.
struct RawFields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for RawFields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawFields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(Key(key)) = map.next_key()? {
                    let value: &'de RawValue = map.next_value()?;
                    out.push((key, value));
                }
                Ok(RawFields(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// An object key, borrowed from the input unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeadLetterReason::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::TimestampMicrosecondType;

    const OK: &str = r#"{"ts":"2026-11-28T09:41:07.123Z","resource_id":"vm-1","resource_type":"vm","category":"malware"}"#;

    fn reject(msg: &[u8]) -> Rejection {
        parse(msg, 1024).expect_err("must be rejected")
    }

    fn with(field: &str, value: &str) -> String {
        format!("{},\"{field}\":{value}}}", &OK[..OK.len() - 1])
    }

    #[test]
    fn a_minimal_event_is_accepted() {
        let e = parse(OK.as_bytes(), 1024).unwrap();
        assert_eq!(e.ts_micros, 1_795_858_867_123_000);
        assert_eq!(e.resource_id, "vm-1");
        assert!(matches!(e.resource_id, Cow::Borrowed(_)));
        assert_eq!(e.ts_raw, None);
        assert_eq!(e.extra, None);
    }

    #[test]
    fn each_malformed_kind_gets_its_reason() {
        let cases: Vec<(Vec<u8>, DeadLetterReason, &str)> = vec![
            (vec![b' '; 1025], TooLarge, "1025 bytes"),
            (b"{\"ts\":\"\xff\"}".to_vec(), NotUtf8, "offset 7"),
            (b"".to_vec(), NotJson, "empty"),
            (b"   ".to_vec(), NotJson, "empty"),
            (b"{\"ts\": ".to_vec(), NotJson, "not JSON"),
            (b"hello".to_vec(), NotJson, "not JSON"),
            (format!("{OK} {OK}").into_bytes(), NotJson, "trailing"),
            (b"[1,2]".to_vec(), NotObject, "array"),
            (b"\"text\"".to_vec(), NotObject, "string"),
            (b"42".to_vec(), NotObject, "number"),
            (b"null".to_vec(), NotObject, "null"),
            (with("resource_id", "\"x\"").into_bytes(), DuplicateField, "`resource_id`"),
            (format!("{{\"a\":1,{},\"a\":2}}", &OK[1..OK.len() - 1]).into_bytes(), DuplicateField, "`a`"),
            (br#"{"resource_id":"r","resource_type":"vm","category":"c"}"#.to_vec(), MissingField, "`ts`"),
            (br#"{"ts":"2026-11-28T09:41:07Z","resource_type":"vm","category":"c"}"#.to_vec(), MissingField, "`resource_id`"),
            (br#"{"ts":"2026-11-28T09:41:07Z","resource_id":null,"resource_type":"vm","category":"c"}"#.to_vec(), MissingField, "`resource_id`"),
            (br#"{"ts":"2026-11-28T09:41:07Z","resource_id":"r","resource_type":"vm"}"#.to_vec(), MissingField, "`category`"),
            (br#"{"ts":1795858867,"resource_id":"r","resource_type":"vm","category":"c"}"#.to_vec(), WrongType, "`ts` must be a string, got number"),
            (with("severity", "3").into_bytes(), WrongType, "`severity` must be a string, got number"),
            (with("classification", "{}").into_bytes(), WrongType, "got object"),
            (with("patched", "\"yes\"").into_bytes(), WrongType, "`patched`"),
            (with("policy_allowed", "1").into_bytes(), WrongType, "`policy_allowed`"),
            (with("dst_port", "\"443\"").into_bytes(), WrongType, "`dst_port` must be an integer"),
            (with("dst_port", "443.5").into_bytes(), WrongType, "`dst_port` must be an integer"),
            (with("dst_port", "70000").into_bytes(), InvalidValue, "70000, outside 0..=65535"),
            (with("dst_port", "-1").into_bytes(), InvalidValue, "outside"),
            (with("dst_port", "123456789012345678901234567890").into_bytes(), InvalidValue, "outside"),
            (br#"{"ts":"yesterday","resource_id":"r","resource_type":"vm","category":"c"}"#.to_vec(), InvalidValue, "RFC 3339"),
            (br#"{"ts":"2026-11-28T09:41:07","resource_id":"r","resource_type":"vm","category":"c"}"#.to_vec(), InvalidValue, "with offset"),
            (br#"{"ts":"2026-11-28T09:41:07Z","resource_id":"","resource_type":"vm","category":"c"}"#.to_vec(), InvalidValue, "`resource_id` is an empty string"),
        ];
        for (msg, reason, needle) in cases {
            let r = reject(&msg);
            assert_eq!(
                r.reason,
                reason,
                "{:?} -> {r}",
                String::from_utf8_lossy(&msg)
            );
            assert!(
                r.message.contains(needle),
                "{:?}: {r} lacks {needle:?}",
                String::from_utf8_lossy(&msg)
            );
        }
    }

    /// `depth` levels of arrays, the message's own object counted as the first.
    fn nested(depth: usize) -> String {
        let inner = depth - 1;
        with("x", &format!("{}{}", "[".repeat(inner), "]".repeat(inner)))
    }

    #[test]
    fn nesting_is_limited_to_what_serde_json_reads_back() {
        let msg = nested(MAX_NESTING);
        let e = parse(msg.as_bytes(), usize::MAX).unwrap();
        // What rebuilding an event does with `extra`.
        let extra = e.extra.unwrap();
        serde_json::from_str::<serde_json::Value>(&extra).unwrap();
        let r = parse(nested(MAX_NESTING + 1).as_bytes(), usize::MAX).unwrap_err();
        assert_eq!(r.reason, NotJson, "{r}");
        assert!(r.message.contains("`x` is nested 128 levels deep"), "{r}");
        // One level more is exactly what serde_json refuses.
        assert!(serde_json::from_str::<serde_json::Value>(&format!("[{extra}]")).is_err());
    }

    #[test]
    fn deep_nesting_is_dead_lettered_without_crashing() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        for (msg, reason) in [
            (with("x", &deep), NotJson),
            (with("x", &format!("{{\"a\":{deep}}}")), NotJson),
            (with("dst_port", &deep), WrongType),
            (with("x", &"[".repeat(100_000)), NotJson),
            ("[".repeat(100_000), NotJson),
            (deep.clone(), NotObject),
            ("{\"a\":".repeat(100_000), NotJson),
        ] {
            let r = parse(msg.as_bytes(), usize::MAX).unwrap_err();
            assert_eq!(r.reason, reason, "{}…: {r}", &msg[..40]);
        }
        // Brackets inside strings are text, not nesting.
        let quoted = format!("\"{}\"", "[".repeat(100_000));
        assert!(parse(with("x", &quoted).as_bytes(), usize::MAX).is_ok());
    }

    #[test]
    fn numbers_and_escapes_in_extra_fields_must_read_back() {
        for (value, reason) in [
            ("1e400", Some(InvalidValue)),
            ("[1, {\"a\": -2.5E+999}]", Some(InvalidValue)),
            (&"9".repeat(400), Some(InvalidValue)),
            ("\"\\ud800\"", Some(InvalidValue)),
            ("\"\\udc00 alone\"", Some(InvalidValue)),
            ("1e-400", None),
            ("1.5e300", None),
            ("18446744073709551616", None),
            (&"9".repeat(300), None),
            ("\"\\ud83d\\ude00 \\u00e9\"", None),
            ("\"1e400\"", None),
        ] {
            let msg = with("x", value);
            let got = parse(msg.as_bytes(), usize::MAX);
            match reason {
                Some(reason) => {
                    let r = got.unwrap_err();
                    assert_eq!(r.reason, reason, "{value}: {r}");
                    assert!(r.message.contains("`x` cannot be read back"), "{r}");
                }
                None => {
                    let extra = got
                        .unwrap_or_else(|r| panic!("{value}: {r}"))
                        .extra
                        .unwrap();
                    serde_json::from_str::<serde_json::Value>(&extra).unwrap();
                }
            }
        }
    }

    /// Found by the `decode` fuzz target run against the decoder before `check_extra`
    /// (docs/fuzzing.md, artefact `crash-acc835c0…`): half a surrogate pair in a field
    /// outside the contract was accepted, and `extra` could not be read back.
    #[test]
    fn fuzz_crash_a_lone_surrogate_in_extra() {
        let msg = r#"{"ts":"2026-11-01T00:05:25.532Z","resource_id":"/subscriptions/0000-sub-3/resourceGroups/rg-14/providers/Microsoft.Compute/virtualMachines/vm-0160","resource_type":"vm","category":"brute_force","workload":"data-platform","outcome":"failure","severity":"medium","src_ip":"213.65.136.207","dst_ip":"10.192.0.160","dst_port":3389,"protocol":"tcp","user":"administrator","mdssage":"Failed password for invalid user administrator from 212.65.136.207 port 43840 ssh2","trace_id":null,"span_id":"0a\ud8001c56ef"}"#;
        let r = parse(msg.as_bytes(), 1024).unwrap_err();
        assert_eq!(r.reason, InvalidValue, "{r}");
        assert!(r.message.contains("`span_id` cannot be read back"), "{r}");
        let fixed = msg.replace(r"\ud800", r"\ud800\udc00");
        let e = parse(fixed.as_bytes(), 1024).unwrap();
        serde_json::from_str::<serde_json::Value>(&e.extra.unwrap()).unwrap();
    }

    #[test]
    fn the_key_set_finds_duplicates_on_both_sides_of_its_switch() {
        let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
        for n in [3, KeySet::FEW, KeySet::FEW + 1, 100] {
            let mut set = KeySet::default();
            for k in &keys[..n] {
                assert!(set.insert(k), "{k} of {n}");
            }
            for k in &keys[..n] {
                assert!(!set.insert(k), "{k} again, of {n}");
            }
            assert!(set.insert("new"));
        }
    }

    #[test]
    fn many_keys_cost_linear_time() {
        // About 100,000 keys in 1 MiB: a quadratic duplicate check makes 5 * 10^9
        // comparisons (minutes in a debug build); a linear one takes well under a second.
        let mut msg = OK[..OK.len() - 1].to_string();
        let mut n = 0;
        while msg.len() < (1 << 20) - 16 {
            msg.push_str(&format!(",\"k{n}\":0"));
            n += 1;
        }
        let start = std::time::Instant::now();
        let whole = format!("{msg}}}");
        let e = parse(whole.as_bytes(), 1 << 20).unwrap();
        assert!(e.extra.unwrap().len() > 900_000);
        let r = parse(format!("{msg},\"k7\":1}}").as_bytes(), 2 << 20).unwrap_err();
        assert_eq!(
            (r.reason, r.message.contains("`k7`")),
            (DuplicateField, true),
            "{r}"
        );
        let elapsed = start.elapsed();
        assert!(n > 90_000, "{n} keys");
        assert!(elapsed.as_secs() < 20, "{n} keys took {elapsed:?}");
    }

    /// The general path, for comparison with the fast one.
    fn slow_ts(text: &str) -> Option<(i64, bool)> {
        let parsed = DateTime::parse_from_rfc3339(text).ok()?;
        let micros = parsed.timestamp_micros();
        let canonical = DateTime::<Utc>::from_timestamp_micros(micros)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true) == text)
            .unwrap_or(false);
        Some((micros, canonical))
    }

    #[test]
    fn the_fast_timestamp_path_agrees_with_chrono() {
        let fixed = [
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59.999Z",
            "1900-02-29T00:00:00Z",
            "2100-02-28T12:00:00.000001Z",
            "2024-12-31T23:59:59.123456Z",
            "2024-12-31T23:59:59.120Z",
            "2024-12-31T23:59:59.000Z",
            "2024-12-31T23:59:59.123000Z",
            "2024-12-31T23:59:59.000000Z",
            "2024-13-01T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:60:00Z",
            "2024-01-01T23:59:60Z",
            "2024-01-01 23:59:59Z",
            "2024-01-01T23:59:59z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            "2024-01-01T23:59:5aZ",
            "2024-01-01T23:59:59.12aZ",
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut random = Vec::new();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let micros = (x % 8_000_000_000_000_000) as i64 - 1_000_000_000_000_000;
            let t = DateTime::<Utc>::from_timestamp_micros(micros).unwrap();
            random.push(t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
            random.push(t.to_rfc3339_opts(SecondsFormat::Millis, true));
            random.push(t.to_rfc3339_opts(SecondsFormat::Micros, true));
            random.push(t.to_rfc3339_opts(SecondsFormat::Secs, true));
        }
        for text in fixed.iter().map(|s| s.to_string()).chain(random) {
            let fast = canonical_utc_micros(&text);
            let slow = slow_ts(&text);
            match fast {
                Some(m) => assert_eq!(slow, Some((m, true)), "{text}"),
                None => assert!(
                    !matches!(slow, Some((_, true))),
                    "{text}: canonical but missed"
                ),
            }
            // Whatever path is taken, parse_ts must give chrono's answer.
            assert_eq!(parse_ts(&text).ok(), slow, "{text}");
        }
    }

    #[test]
    fn null_optional_fields_count_as_absent() {
        let m = with("workload", "null");
        let e = parse(m.as_bytes(), 1024).unwrap();
        assert_eq!(e.strings[0], None);
        let m = with("patched", "null");
        let e = parse(m.as_bytes(), 1024).unwrap();
        assert_eq!(e.patched, None);
        let m = with("dst_port", "null");
        let e = parse(m.as_bytes(), 1024).unwrap();
        assert_eq!(e.dst_port, None);
    }

    #[test]
    fn empty_classification_is_kept_distinct_from_absent() {
        let idx = OPTIONAL_STRING_FIELDS
            .iter()
            .position(|f| *f == col::CLASSIFICATION)
            .unwrap();
        let m = with("classification", "\"\"");
        let e = parse(m.as_bytes(), 1024).unwrap();
        assert_eq!(e.strings[idx].as_deref(), Some(""));
        let e = parse(OK.as_bytes(), 1024).unwrap();
        assert_eq!(e.strings[idx], None);
    }

    #[test]
    fn unknown_fields_are_kept_verbatim_in_order() {
        let msg = r#"{"z":[1, 2],"ts":"2026-11-28T09:41:07.123Z","resource_id":"vm-1","a\"b":null,"resource_type":"vm","category":"c","n":1.50e3}"#;
        let e = parse(msg.as_bytes(), 1024).unwrap();
        assert_eq!(
            e.extra.as_deref(),
            Some(r#"{"z":[1, 2],"a\"b":null,"n":1.50e3}"#)
        );
        let v: serde_json::Value = serde_json::from_str(e.extra.as_deref().unwrap()).unwrap();
        assert_eq!(v["a\"b"], serde_json::Value::Null);
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let m = with("message", r#""line\nnext \u00e9""#);
        let e = parse(m.as_bytes(), 1024).unwrap();
        let idx = OPTIONAL_STRING_FIELDS
            .iter()
            .position(|f| *f == col::MESSAGE)
            .unwrap();
        assert_eq!(e.strings[idx].as_deref(), Some("line\nnext é"));
    }

    #[test]
    fn non_canonical_timestamps_keep_their_text() {
        for (text, micros) in [
            ("2026-11-28T10:41:07.123+01:00", 1_795_858_867_123_000),
            ("2026-11-28T09:41:07.123456789Z", 1_795_858_867_123_456),
            ("2026-11-28T09:41:07.000Z", 1_795_858_867_000_000),
            ("2026-11-28t09:41:07Z", 1_795_858_867_000_000),
        ] {
            let msg = OK.replace("2026-11-28T09:41:07.123Z", text);
            let e = parse(msg.as_bytes(), 1024).unwrap();
            assert_eq!(e.ts_micros, micros, "{text}");
            assert_eq!(e.ts_raw.as_deref(), Some(text));
        }
        for canonical in ["2026-11-28T09:41:07Z", "2026-11-28T09:41:07.123456Z"] {
            let msg = OK.replace("2026-11-28T09:41:07.123Z", canonical);
            assert_eq!(
                parse(msg.as_bytes(), 1024).unwrap().ts_raw,
                None,
                "{canonical}"
            );
        }
    }

    #[test]
    fn a_line_over_the_limit_keeps_only_its_start_in_raw() {
        let max = OK.len();
        let mut d = Decoder::new(&DecodeConfig {
            max_message_bytes: bytesize::ByteSize::b(max as u64),
        });
        // Read whole by the source: 36 bytes over the limit and a `\r`, then a good line.
        let long = "y".repeat(max + 36);
        let chunk = LineChunk {
            path: "/data/x.jsonl".into(),
            first_line: 3,
            data: bytes::Bytes::from(format!("{long}\r\n{OK}\n")),
            oversized: None,
        };
        assert_eq!(d.push_lines(&chunk, 0), (1, 1));
        let out = d.flush().unwrap();
        let dl = &out.dead_letters;
        let raw = dl.column_by_name("raw").unwrap().as_binary::<i32>();
        assert_eq!(raw.value(0), &long.as_bytes()[..max]);
        assert_eq!(
            dl.column_by_name("reason")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            format!(
                "line is {} bytes, over the limit of {max} (decode.max-message-bytes); raw holds only its first {max} bytes",
                max + 36
            )
        );
        let line = dl.column_by_name("source_line").unwrap();
        assert_eq!(
            line.as_primitive::<arrow::datatypes::Int64Type>().value(0),
            3
        );
        let line = out.events.column_by_name("source_line").unwrap();
        assert_eq!(
            line.as_primitive::<arrow::datatypes::Int64Type>().value(0),
            4
        );
    }

    #[test]
    fn decoder_builds_both_tables_with_coordinates() {
        let mut d = Decoder::new(&DecodeConfig::default());
        let chunk = LineChunk {
            path: "/data/x.jsonl".into(),
            first_line: 7,
            data: bytes::Bytes::from(format!("{OK}\r\nnot json\n{}\n", with("dst_port", "22"))),
            oversized: None,
        };
        assert_eq!(d.push_lines(&chunk, 42), (2, 1));
        let out = d.flush().unwrap();
        assert_eq!(out.events.num_rows(), 2);
        let lines = out
            .events
            .column_by_name("source_line")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(lines.values().to_vec(), vec![7, 9]);
        let ts = out
            .events
            .column_by_name("ts")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_795_858_867_123_000);
        let port = out
            .events
            .column_by_name("dst_port")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int32Type>();
        assert!(port.is_null(0));
        assert_eq!(port.value(1), 22);
        let dl = &out.dead_letters;
        assert_eq!(dl.num_rows(), 1);
        assert_eq!(
            dl.column_by_name("raw")
                .unwrap()
                .as_binary::<i32>()
                .value(0),
            b"not json"
        );
        assert_eq!(
            dl.column_by_name("source_line")
                .unwrap()
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0),
            8
        );
        assert_eq!(
            dl.column_by_name("reason_code")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "not_json"
        );
        assert_eq!(d.pending_rows(), 0);
        let again = d.flush().unwrap();
        assert_eq!(again.events.num_rows() + again.dead_letters.num_rows(), 0);
    }

    #[test]
    fn every_optional_string_field_is_known_at_its_index() {
        for (i, name) in OPTIONAL_STRING_FIELDS.iter().enumerate() {
            assert_eq!(Known::of(name), Some(Known::Str(i)), "{name}");
        }
        assert_eq!(
            OPTIONAL_STRING_FIELDS.len(),
            10,
            "a new field needs its arm in Known::of"
        );
        assert_eq!(Known::of("workloads"), None);
        assert_eq!(Known::of(""), None);
    }
}
