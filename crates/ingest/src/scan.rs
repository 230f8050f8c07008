//! The decoder's fast path: one pass over a message that is a flat JSON object of
//! contract fields, the shape of nearly every event.
//!
//! [`contract_object`] reads such a message straight into [`Fields`], each string
//! borrowed from the message unless it has escapes; a field outside the contract is
//! checked for well-formed JSON as it is skipped and its text goes to `extra`. It judges
//! nothing: at the first thing it does not handle, valid or not (a key with an escape, a
//! `\u` escape, a number with an exponent or over 300 characters, nesting deeper than
//! [`MAX_DEPTH`], more than [`MAX_EXTRA`] fields outside the contract, a port that is
//! not a plain integer, a wrong type, a duplicate key, anything malformed), it returns
//! `None` and the message is read again by
//! `serde_json` ([`crate::decode::parse_general`]), which gives every rejection its
//! reason. So for any message the fast path either hands over or produces what the
//! general path would: the unit tests below and the `decode` fuzz target compare the two
//! on every input.

use std::borrow::Cow;

use crate::decode::{Fields, Known};

/// The deepest nesting of a field outside the contract that the fast path reads (the
/// general path takes deeper ones, up to its limit).
const MAX_DEPTH: usize = 32;

/// The most fields outside the contract that the fast path reads in one message.
const MAX_EXTRA: usize = 16;

/// The fields of `text` (valid UTF-8, as checked before) when it is one JSON object of
/// contract fields only, with no key twice; `None` for anything else.
pub(crate) fn contract_object(text: &str) -> Option<Fields<'_>> {
    let mut s = Scanner { text, i: 0 };
    let mut fields = Fields::default();
    let mut seen = 0u32;
    let mut extra_keys = [""; MAX_EXTRA];
    let mut extra_count = 0;
    s.whitespace();
    s.expect(b'{')?;
    s.whitespace();
    loop {
        let key = s.plain_key()?;
        s.whitespace();
        s.expect(b':')?;
        s.whitespace();
        match Known::of(key) {
            Some(known) => {
                let bit = 1u32 << known.bit();
                if seen & bit != 0 {
                    return None;
                }
                seen |= bit;
                match known {
                    Known::DstPort => fields.dst_port = s.port()?,
                    Known::Patched => fields.patched = s.boolean()?,
                    Known::PolicyAllowed => fields.policy_allowed = s.boolean()?,
                    _ => *fields.string_mut(known)? = s.string_or_null()?,
                }
            }
            None => {
                if extra_count == MAX_EXTRA || extra_keys[..extra_count].contains(&key) {
                    return None;
                }
                extra_keys[extra_count] = key;
                extra_count += 1;
                let start = s.i;
                s.value(0)?;
                // The same text as the general path's: the key had no escapes.
                let value = &text[start..s.i];
                let extra = &mut fields.extra;
                if extra.is_empty() {
                    // Room for this and every later field: one allocation per message.
                    extra.reserve(key.len() + 5 + text.len() - start);
                }
                extra.push(if extra.is_empty() { '{' } else { ',' });
                extra.push('"');
                extra.push_str(key);
                extra.push_str("\":");
                extra.push_str(value);
            }
        }
        s.whitespace();
        match s.next()? {
            b',' => s.whitespace(),
            b'}' => break,
            _ => return None,
        }
    }
    s.whitespace();
    (s.i == text.len()).then_some(fields)
}

struct Scanner<'a> {
    text: &'a str,
    i: usize,
}

impl<'a> Scanner<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.i) {
            self.i += 1;
        }
    }

    fn next(&mut self) -> Option<u8> {
        let c = *self.bytes().get(self.i)?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// `word` (a JSON literal) when the text continues with it.
    fn literal(&mut self, word: &str) -> bool {
        let found = self.bytes()[self.i..].starts_with(word.as_bytes());
        if found {
            self.i += word.len();
        }
        found
    }

    /// A key: a string without escapes.
    fn plain_key(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.i;
        let end = self.plain_run();
        self.i = end;
        self.expect(b'"')?;
        Some(&self.text[start..end])
    }

    /// Where the run of string bytes from the current position ends: at the closing
    /// quote, a backslash, a control character (not allowed in a JSON string) or the end.
    fn plain_run(&self) -> usize {
        let b = self.bytes();
        let mut j = self.i;
        while let Some(chunk) = b.get(j..).and_then(<[u8]>::first_chunk::<RUN_STEP>) {
            if let Some(k) = first_special(chunk) {
                return j + k;
            }
            j += RUN_STEP;
        }
        while j < b.len() && !matches!(b[j], b'"' | b'\\' | 0..=0x1f) {
            j += 1;
        }
        j
    }

    /// Skips a string whose opening quote was read: escapes other than `\u` are
    /// allowed, control characters are not.
    fn skip_string(&mut self) -> Option<()> {
        loop {
            self.i = self.plain_run();
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    _ => return None,
                },
                _ => return None,
            }
        }
    }

    /// Skips one JSON value of any type, nested `depth` levels in a field outside the
    /// contract, checking that it is well-formed.
    fn value(&mut self, depth: usize) -> Option<()> {
        match *self.bytes().get(self.i)? {
            b'"' => {
                self.i += 1;
                self.skip_string()
            }
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal("true").then_some(()),
            b'f' => self.literal("false").then_some(()),
            b'n' => self.literal("null").then_some(()),
            open @ (b'[' | b'{') if depth < MAX_DEPTH => {
                let (object, close) = (open == b'{', if open == b'{' { b'}' } else { b']' });
                self.i += 1;
                self.whitespace();
                if self.bytes().get(self.i) == Some(&close) {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    if object {
                        self.expect(b'"')?;
                        self.skip_string()?;
                        self.whitespace();
                        self.expect(b':')?;
                        self.whitespace();
                    }
                    self.value(depth + 1)?;
                    self.whitespace();
                    match self.next()? {
                        b',' => self.whitespace(),
                        c if c == close => return Some(()),
                        _ => return None,
                    }
                }
            }
            _ => None,
        }
    }

    /// Skips a number without exponent, of at most 300 characters (what the general
    /// path reads back without a second parse).
    fn number(&mut self) -> Option<()> {
        let start = self.i;
        let digits = |s: &mut Self| {
            let from = s.i;
            while let Some(b'0'..=b'9') = s.bytes().get(s.i) {
                s.i += 1;
            }
            s.i - from
        };
        if self.bytes().get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.bytes().get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                digits(self);
            }
            _ => return None,
        }
        if self.bytes().get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        let plain = !matches!(self.bytes().get(self.i), Some(b'e' | b'E'));
        (plain && self.i - start <= 300).then_some(())
    }

    /// `null`, or a string: borrowed without escapes, unescaped otherwise (all but
    /// `\u`, which hands over to the general path).
    fn string_or_null(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.literal("null") {
            return Some(None);
        }
        self.expect(b'"')?;
        let start = self.i;
        self.i = self.plain_run();
        if self.next()? == b'"' {
            return Some(Some(Cow::Borrowed(&self.text[start..self.i - 1])));
        }
        // A backslash (a control character fails below): unescape into a copy.
        self.i -= 1;
        let mut out = String::with_capacity(self.i - start + 16);
        out.push_str(&self.text[start..self.i]);
        loop {
            match self.next()? {
                b'"' => return Some(Some(Cow::Owned(out))),
                b'\\' => out.push(match self.next()? {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    _ => return None,
                }),
                _ => {
                    self.i -= 1;
                    let run = self.plain_run();
                    if run == self.i {
                        return None; // a control character
                    }
                    out.push_str(&self.text[self.i..run]);
                    self.i = run;
                }
            }
        }
    }

    /// `true`, `false` or `null`.
    fn boolean(&mut self) -> Option<Option<bool>> {
        if self.literal("true") {
            Some(Some(true))
        } else if self.literal("false") {
            Some(Some(false))
        } else if self.literal("null") {
            Some(None)
        } else {
            None
        }
    }

    /// `null`, or a port: a JSON integer in 0..=65535 without sign, fraction or
    /// exponent.
    fn port(&mut self) -> Option<Option<i32>> {
        if self.literal("null") {
            return Some(None);
        }
        let b = self.bytes();
        let start = self.i;
        let mut value: i32 = 0;
        while let Some(c @ b'0'..=b'9') = b.get(self.i) {
            value = value * 10 + i32::from(c - b'0');
            self.i += 1;
            if self.i - start > 5 || (self.i - start == 2 && b[start] == b'0') {
                return None; // too long for a port, or a leading zero (not JSON)
            }
        }
        let well_formed = self.i > start && !matches!(b.get(self.i), Some(b'.' | b'e' | b'E'));
        (well_formed && value <= 65_535).then_some(Some(value))
    }
}

/// Bytes [`first_special`] looks at in one step.
const RUN_STEP: usize = if cfg!(target_arch = "x86_64") { 16 } else { 8 };

/// Where in `chunk` the first byte that ends a run of plain string bytes is: a quote, a
/// backslash or a control character. The run scan is most of the fast path's time
/// (resource ids and messages are long): on x86-64, SSE2 (part of every such processor)
/// compares sixteen bytes at once.
#[cfg(target_arch = "x86_64")]
#[expect(
    unsafe_code,
    reason = "SSE2 intrinsics; safe to call only inside an unsafe block without #[target_feature]"
)]
fn first_special(chunk: &[u8; RUN_STEP]) -> Option<usize> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of the x86-64 baseline, so every instruction used here exists
    // on every processor this code is built for; the load reads the 16 bytes of `chunk`
    // and needs no alignment.
    let marks = unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned `v <= 0x1f`: the smaller of the two is `v` itself.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
    };
    (marks != 0).then(|| marks.trailing_zeros() as usize)
}

/// Elsewhere, [`first_special_in_word`].
#[cfg(not(target_arch = "x86_64"))]
fn first_special(chunk: &[u8; RUN_STEP]) -> Option<usize> {
    first_special_in_word(chunk)
}

/// [`first_special`] over eight bytes read as one word: a byte's high bit is set in
/// `special` when it is a quote, a backslash or below 0x20 (the zero-byte and less-than
/// tricks of "Bit Twiddling Hacks"; a false mark can only follow a true one, so the
/// lowest is exact). Built on x86-64 for its test only.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn first_special_in_word(chunk: &[u8; 8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let w = u64::from_le_bytes(*chunk);
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let special = ((quote.wrapping_sub(ONES) & !quote)
        | (backslash.wrapping_sub(ONES) & !backslash)
        | (w.wrapping_sub(ONES * 0x20) & !w))
        & HIGH;
    (special != 0).then(|| (special.trailing_zeros() / 8) as usize)
}

#[cfg(test)]
mod tests {
    use super::Scanner;
    use crate::decode::{parse, parse_general};

    const LIMIT: usize = 1 << 20;

    #[test]
    fn a_run_ends_at_the_first_quote_backslash_or_control_character_wherever_it_is() {
        // Every end at every position of a run long enough for whole steps and a tail,
        // from every start, against a byte-by-byte search; with bytes beside the ends
        // that must not end a run (space, DEL, multi-byte UTF-8, 0x80..).
        let filler = "ab é\u{7f}€ 0123456789xyz";
        for end in ['"', '\\', '\u{0}', '\u{1f}', '\n'] {
            for at in 0..48 {
                let mut text: String = filler.chars().cycle().take(at).collect();
                text.push(end);
                text.push_str("tail\"");
                let expected = text
                    .bytes()
                    .position(|b| matches!(b, b'"' | b'\\' | 0..=0x1f))
                    .unwrap_or(text.len());
                for (start, _) in text.char_indices().filter(|(i, _)| *i <= expected) {
                    let s = Scanner {
                        text: &text,
                        i: start,
                    };
                    assert_eq!(
                        s.plain_run(),
                        expected,
                        "end {end:?} after {at} chars from {start}"
                    );
                }
            }
        }
        // The eight-byte word of other targets, on every window of the same texts.
        for end in ['"', '\\', '\u{0}', '\u{1f}', '\n', 'a', '\u{7f}', 'é'] {
            for at in 0..8 {
                let mut text: String = "ab é\u{7f}€ 01".chars().cycle().take(at).collect();
                text.push(end);
                text.push_str("0123456789");
                for window in text.as_bytes().windows(8) {
                    let expected = window
                        .iter()
                        .position(|b| matches!(b, b'"' | b'\\' | 0..=0x1f));
                    let word = window.try_into().unwrap();
                    assert_eq!(super::first_special_in_word(word), expected, "{window:?}");
                }
            }
        }
        let plain: String = filler.chars().cycle().take(70).collect();
        for start in 0..plain.len() {
            if plain.is_char_boundary(start) {
                let s = Scanner {
                    text: &plain,
                    i: start,
                };
                assert_eq!(s.plain_run(), plain.len(), "no end, from {start}");
            }
        }
    }

    /// Both paths on one message: the same event or the same rejection.
    fn same(message: &str) {
        let fast = parse(message.as_bytes(), LIMIT);
        let general = parse_general(message.as_bytes(), LIMIT);
        assert_eq!(fast, general, "{message}");
    }

    /// Whether the fast path reads `message` itself (rather than handing over).
    fn takes_fast_path(message: &str) -> bool {
        super::contract_object(message).is_some()
    }

    const BASE: &str = r#""ts":"2026-11-28T09:41:07.123Z","resource_id":"vm-1","resource_type":"vm","category":"auth""#;

    #[test]
    fn a_flat_event_takes_the_fast_path_with_the_general_result() {
        let full = format!(
            r#"{{{BASE},"workload":"w","outcome":"failure","severity":"high","src_ip":"1.2.3.4","dst_ip":"10.0.0.1","dst_port":22,"protocol":"tcp","user":"u","classification":"","vuln_id":"CVE-1","message":"m","patched":false,"policy_allowed":true}}"#
        );
        for m in [
            format!("{{{BASE}}}"),
            full.clone(),
            format!(" \t\r\n{full} \n"),
            r#"{ "ts" : "2026-11-28T09:41:07Z" , "resource_id":"a","resource_type":"b","category":"c" , "dst_port" : 0 }"#.into(),
            format!(r#"{{{BASE},"dst_port":65535,"patched":null,"policy_allowed":null,"user":null}}"#),
            format!(r#"{{{BASE},"message":"say \"hi\" \\ \/ \b\f\n\r\t end"}}"#),
            format!(r#"{{{BASE},"message":"\"","user":"é ✓ 𝄞"}}"#),
            // Fields outside the contract, kept in `extra` as they came.
            format!(
                r#"{{"tags":["a", "b\n"] ,{BASE},"geo":{{"lat":-1.5,"lon":0,"x":{{"y":[true,false,null,{{}},[]]}}}},"n":-0.25}}"#
            ),
            format!(r#"{{{BASE},"n":{}}}"#, "[".repeat(31) + &"]".repeat(31)),
            format!(r#"{{{BASE},"n":{}}}"#, "9".repeat(300)),
            format!(r#"{{{BASE},{}"user":"u"}}"#, (0..16).map(|i| format!(r#""k{i}":{{"k":"v"}},"#)).collect::<String>()),
            // Decoded by the fast path, rejected by the checks on the whole event.
            r#"{"ts":"yesterday","resource_id":"a","resource_type":"b","category":"c"}"#.into(),
            r#"{"ts":"2026-11-28T09:41:07Z","resource_id":"","resource_type":"b","category":"c"}"#.into(),
            r#"{"ts":"2026-11-28T09:41:07Z","resource_type":"b","category":"c"}"#.into(),
            r#"{"ts":"2026-11-28T09:41:07+01:00","resource_id":"a","resource_type":"b","category":"c"}"#.into(),
        ] {
            assert!(takes_fast_path(&m), "{m}");
            same(&m);
        }
    }

    #[test]
    fn anything_else_hands_over_to_the_general_path() {
        for m in [
            format!(r#"{{{BASE},"tags":["a"],"n":1e5}}"#), // exponent
            format!(r#"{{{BASE},"n":-}}"#),                // malformed number
            format!(r#"{{{BASE},"n":1.}}"#),               // malformed number
            format!(r#"{{{BASE},"n":01}}"#),               // leading zero
            format!(r#"{{{BASE},"n":[1,]}}"#),             // trailing comma
            format!(r#"{{{BASE},"n":{{"a" 1}}}}"#),        // no colon
            format!(r#"{{{BASE},"n":{{1:1}}}}"#),          // key not a string
            format!(r#"{{{BASE},"n":"\u0041"}}"#),         // \u escape
            format!(r#"{{{BASE},"n":tru}}"#),              // malformed literal
            format!(r#"{{{BASE},"n":1,"n":2}}"#),          // duplicate
            format!(r#"{{{BASE},"n":{}}}"#, "[".repeat(40) + &"]".repeat(40)), // deep
            format!(r#"{{{BASE},"n":{}}}"#, "[".repeat(200) + &"]".repeat(200)), // too deep
            format!(r#"{{{BASE},"n":{}}}"#, "9".repeat(301)), // long number
            format!(
                r#"{{{BASE},{}"z":0}}"#,
                (0..16).map(|i| format!(r#""k{i}":0,"#)).collect::<String>()
            ),
            format!(r#"{{{BASE},"message":"\u00e9"}}"#), // \u escape
            format!(r#"{{{BASE},"mess\u0061ge":"m"}}"#), // escaped key
            format!(r#"{{{BASE},"category":"x"}}"#),     // duplicate
            format!(r#"{{{BASE},"dst_port":65536}}"#),   // out of range
            format!(r#"{{{BASE},"dst_port":123456}}"#),  // too long
            format!(r#"{{{BASE},"dst_port":-1}}"#),      // sign
            format!(r#"{{{BASE},"dst_port":-0}}"#),      // sign
            format!(r#"{{{BASE},"dst_port":022}}"#),     // leading zero
            format!(r#"{{{BASE},"dst_port":22.0}}"#),    // fraction
            format!(r#"{{{BASE},"dst_port":2e1}}"#),     // exponent
            format!(r#"{{{BASE},"dst_port":"22"}}"#),    // wrong type
            format!(r#"{{{BASE},"dst_port":}}"#),        // no value
            format!(r#"{{{BASE},"patched":"yes"}}"#),    // wrong type
            format!(r#"{{{BASE},"patched":truex}}"#),    // malformed literal
            format!(r#"{{{BASE},"user":nul}}"#),         // malformed literal
            format!(r#"{{{BASE},"user":7}}"#),           // wrong type
            format!(r#"{{{BASE},"message":"a\qb"}}"#),   // bad escape
            format!("{{{BASE},\"message\":\"a\tb\"}}"),  // control character
            format!("{{{BASE},\"message\":\"a\\n\tb\"}}"), // control character after an escape
            format!("{{{BASE},\"message\":\"0123456789\u{1f}abcdefgh\"}}"), // in the 8 bytes read at once
            format!("{{{BASE},\"n\":\"0123456789abcde\u{10}\"}}"),          // outside the contract
            format!(r#"{{{BASE},"message":"open}}"#),                       // unterminated
            format!(r#"{{{BASE},}}"#),                                      // trailing comma
            format!(r#"{{{BASE}}} {{}}"#),                                  // trailing value
            format!(r#"{{{BASE}"#),                                         // unterminated object
            format!(r#"{{{BASE};"user":"u"}}"#),                            // bad separator
            "{}".into(),
            "[]".into(),
            "{\"ts\"}".into(),
        ] {
            assert!(!takes_fast_path(&m), "{m}");
            same(&m);
        }
    }

    #[test]
    fn every_line_of_the_fixtures_gets_the_same_result_on_both_paths() {
        let dir = rampart_core::package_dir(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let mut fast = 0;
        let mut lines = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                let bytes = std::fs::read(&path).unwrap();
                for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    assert_eq!(
                        parse(line, LIMIT),
                        parse_general(line, LIMIT),
                        "{}: {}",
                        path.display(),
                        String::from_utf8_lossy(line)
                    );
                    lines += 1;
                    fast += std::str::from_utf8(line)
                        .is_ok_and(|t| super::contract_object(t).is_some())
                        as usize;
                }
            }
        }
        assert!(lines > 1000, "{lines} fixture lines");
        // The demo fixture is mostly flat contract events: most lines take the fast path.
        assert!(fast * 2 > lines, "{fast} of {lines} lines on the fast path");
    }
}
