//! Writing JSON text by hand: string escaping and an object writer that can apply one
//! edit (drop, null or replace a field) for the malformed messages.

/// Appends `s` as a JSON string literal, quotes included.
pub(crate) fn push_str(out: &mut String, s: &str) {
    out.push('"');
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if u32::from(c) < 0x20 => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    let b = u32::from(c) as usize;
                    out.push_str("\\u00");
                    out.push(char::from(HEX[b >> 4]));
                    out.push(char::from(HEX[b & 0xf]));
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

/// One change to a field while an object is written; how malformed messages are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Edit {
    /// Write the object as it is.
    None,
    /// Leave the field out.
    Omit(&'static str),
    /// Write the field as `null`.
    Null(&'static str),
    /// Write this raw JSON text as the field's value; added at the end when the object
    /// would not have had the field.
    Replace(&'static str, String),
}

/// Writes one JSON object field by field, applying an [`Edit`].
pub(crate) struct ObjectWriter<'a> {
    out: &'a mut String,
    edit: &'a Edit,
    first: bool,
    replaced: bool,
}

impl<'a> ObjectWriter<'a> {
    /// Opens an object at the end of `out`.
    pub(crate) fn begin(out: &'a mut String, edit: &'a Edit) -> Self {
        out.push('{');
        Self {
            out,
            edit,
            first: true,
            replaced: false,
        }
    }

    /// The text written so far, to append a value to after [`field`](Self::field).
    pub(crate) fn out(&mut self) -> &mut String {
        self.out
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    /// Starts field `key`; true when the caller should now write its value, false when
    /// the edit took care of the field.
    pub(crate) fn field(&mut self, key: &'static str) -> bool {
        match self.edit {
            Edit::Omit(k) if *k == key => return false,
            Edit::Null(k) if *k == key => {
                self.key(key);
                self.out.push_str("null");
                return false;
            }
            Edit::Replace(k, raw) if *k == key => {
                self.key(key);
                self.out.push_str(raw);
                self.replaced = true;
                return false;
            }
            _ => {}
        }
        self.key(key);
        true
    }

    /// A string field.
    pub(crate) fn str(&mut self, key: &'static str, value: &str) {
        if self.field(key) {
            push_str(self.out, value);
        }
    }

    /// A field whose value is raw JSON text.
    pub(crate) fn raw(&mut self, key: &'static str, value: &str) {
        if self.field(key) {
            self.out.push_str(value);
        }
    }

    /// Closes the object.
    pub(crate) fn finish(mut self) {
        if let Edit::Replace(key, raw) = self.edit
            && !self.replaced
        {
            self.key(key);
            self.out.push_str(raw);
        }
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip_through_serde_json() {
        for s in [
            "plain",
            "q\"uote",
            "back\\slash",
            "line\nbreak\ttab\r",
            "\u{1}\u{1f}",
            "caf\u{e9}",
        ] {
            let mut out = String::new();
            push_str(&mut out, s);
            assert!(!out.contains('\n'));
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
        }
    }

    #[test]
    fn edits_apply_to_one_field() {
        let render = |edit: &Edit| {
            let mut out = String::new();
            let mut w = ObjectWriter::begin(&mut out, edit);
            w.str("a", "x");
            w.raw("b", "1");
            w.finish();
            out
        };
        assert_eq!(render(&Edit::None), r#"{"a":"x","b":1}"#);
        assert_eq!(render(&Edit::Omit("a")), r#"{"b":1}"#);
        assert_eq!(render(&Edit::Null("b")), r#"{"a":"x","b":null}"#);
        assert_eq!(render(&Edit::Replace("a", "2".into())), r#"{"a":2,"b":1}"#);
        assert_eq!(
            render(&Edit::Replace("c", "[]".into())),
            r#"{"a":"x","b":1,"c":[]}"#
        );
    }
}
