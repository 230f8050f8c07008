//! Why a message was dead-lettered: a stable code for metrics and queries.

use std::fmt;

/// The class of a dead-lettered message. The code (`as_str`) is stored in the
/// `dead_letters.reason_code` column and labels the dead-letter metric; the human
/// message beside it says exactly what was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DeadLetterReason {
    /// The message is larger than `decode.max-message-bytes`.
    TooLarge,
    /// The bytes are not valid UTF-8.
    NotUtf8,
    /// The text is not one well-formed JSON value (or is empty).
    NotJson,
    /// Well-formed JSON, but not an object.
    NotObject,
    /// The same key appears twice in the object.
    DuplicateField,
    /// A required field is absent or null.
    MissingField,
    /// A field has the wrong JSON type.
    WrongType,
    /// A field has the right type but a value outside the contract (bad timestamp,
    /// port out of range, empty required string).
    InvalidValue,
}

impl DeadLetterReason {
    /// Every reason, in a stable order.
    pub const ALL: [DeadLetterReason; 8] = [
        Self::TooLarge,
        Self::NotUtf8,
        Self::NotJson,
        Self::NotObject,
        Self::DuplicateField,
        Self::MissingField,
        Self::WrongType,
        Self::InvalidValue,
    ];

    /// The stable snake_case code.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::NotUtf8 => "not_utf8",
            Self::NotJson => "not_json",
            Self::NotObject => "not_object",
            Self::DuplicateField => "duplicate_field",
            Self::MissingField => "missing_field",
            Self::WrongType => "wrong_type",
            Self::InvalidValue => "invalid_value",
        }
    }

    /// Parses a code written by [`as_str`](Self::as_str).
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == code)
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in DeadLetterReason::ALL {
            assert!(seen.insert(r.as_str()));
            assert_eq!(DeadLetterReason::from_code(r.as_str()), Some(r));
        }
        assert_eq!(DeadLetterReason::from_code("nope"), None);
    }
}
