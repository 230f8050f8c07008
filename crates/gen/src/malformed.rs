//! Malformed messages: each fails the decoder's checks for exactly one reason.
//!
//! The decoder checks, in order: size (`too_large`), UTF-8 (`not_utf8`), JSON syntax
//! (`not_json`), object-ness (`not_object`), duplicate keys (`duplicate_field`),
//! required fields (`missing_field`), JSON types (`wrong_type`) and values
//! (`invalid_value`). Every message here starts from a good event and breaks it in one
//! way only, so its reason is unambiguous.

use rampart_core::DeadLetterReason;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::event::Event;
use crate::json::{self, Edit};
use crate::resources::Resource;
use crate::timestamp;

/// The decoder's default `decode.max-message-bytes` (1 MiB).
pub(crate) const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// The reasons the malformed messages cycle through; `too_large` only replaces every
/// 64th, as each such message is over a mebibyte.
const CYCLE: [Fault; 7] = [
    Fault::NotJson,
    Fault::NotObject,
    Fault::NotUtf8,
    Fault::MissingField,
    Fault::WrongType,
    Fault::InvalidValue,
    Fault::DuplicateField,
];

/// The ways a message is broken, one per dead-letter reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    TooLarge,
    NotUtf8,
    NotJson,
    NotObject,
    DuplicateField,
    MissingField,
    WrongType,
    InvalidValue,
}

impl Fault {
    fn reason(self) -> DeadLetterReason {
        match self {
            Self::TooLarge => DeadLetterReason::TooLarge,
            Self::NotUtf8 => DeadLetterReason::NotUtf8,
            Self::NotJson => DeadLetterReason::NotJson,
            Self::NotObject => DeadLetterReason::NotObject,
            Self::DuplicateField => DeadLetterReason::DuplicateField,
            Self::MissingField => DeadLetterReason::MissingField,
            Self::WrongType => DeadLetterReason::WrongType,
            Self::InvalidValue => DeadLetterReason::InvalidValue,
        }
    }
}

const REQUIRED: [&str; 4] = ["ts", "resource_id", "resource_type", "category"];

/// A malformed message and the reason the decoder must give for it.
#[derive(Debug, Clone)]
pub(crate) struct Malformed {
    pub(crate) reason: DeadLetterReason,
    pub(crate) payload: Vec<u8>,
    /// Whether the payload still names the resource, so the message is keyed by it.
    pub(crate) keyed: bool,
}

/// The fault of the `j`-th malformed message of a run (from 0).
fn fault_of(j: u64) -> Fault {
    if j % 64 == 63 {
        Fault::TooLarge
    } else {
        CYCLE[(j % CYCLE.len() as u64) as usize]
    }
}

/// The `j`-th malformed message of a run, made from `event` about `res`.
pub(crate) fn malformed(j: u64, event: &Event, res: &Resource, rng: &mut ChaCha8Rng) -> Malformed {
    use Fault::*;
    let render = |edit: &Edit| {
        let mut s = String::with_capacity(512);
        event.render(res, edit, &mut s);
        s
    };
    let fault = fault_of(j);
    let mut keyed = true;
    let payload: Vec<u8> = match fault {
        TooLarge => {
            const PAD: &str = "oversized agent payload, ";
            let mut s = render(&Edit::Omit("message"));
            s.pop();
            s.reserve(MAX_MESSAGE_BYTES + PAD.len() + 16);
            s.push_str(",\"message\":\"");
            let from = s.len();
            while s.len() - from <= MAX_MESSAGE_BYTES {
                s.push_str(PAD);
            }
            s.push_str("\"}");
            s.into_bytes()
        }
        NotUtf8 => {
            const BYTES: [&[u8]; 5] = [
                b"caf\xe9 cr\xe8me br\xfbl\xe9e",
                b"agent buffer \xff\xfe garbage",
                b"cut in the middle \xe2\x82",
                b"stray continuation \x80 byte",
                b"\xff\xff\xff\xff",
            ];
            let mut b = render(&Edit::Omit("message")).into_bytes();
            b.pop();
            b.extend_from_slice(b",\"message\":\"");
            b.extend_from_slice(BYTES[rng.random_range(0..BYTES.len())]);
            b.extend_from_slice(b"\"}");
            b
        }
        NotJson => match rng.random_range(0..6) {
            0 => {
                let mut s = render(&Edit::None);
                let mut cut = rng.random_range(1..s.len());
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                s.truncate(cut);
                s.into_bytes()
            }
            1 => (render(&Edit::None) + "}").into_bytes(),
            2 => {
                let s = render(&Edit::None);
                format!("{s}{s}").into_bytes()
            }
            3 => {
                let mut s = String::from("<134>1 ");
                timestamp::push_utc_millis(&mut s, event.ts_ms);
                s.push_str(" agent rampart - - category=");
                s.push_str(event.category.as_str());
                s.push_str(" resource=");
                s.push_str(&res.id);
                s.into_bytes()
            }
            4 => render(&Edit::None).replace('"', "'").into_bytes(),
            _ => render(&Edit::Replace("risk_score", "NaN".into())).into_bytes(),
        },
        NotObject => match rng.random_range(0..6) {
            0 => format!("[{}]", render(&Edit::None)).into_bytes(),
            1 => {
                keyed = false;
                let mut text = String::new();
                timestamp::push_utc_millis(&mut text, event.ts_ms);
                text.push(' ');
                text.push_str(event.category.as_str());
                text.push_str(" on ");
                text.push_str(&res.id);
                let mut s = String::new();
                json::push_str(&mut s, &text);
                s.into_bytes()
            }
            2 => {
                keyed = false;
                (event.ts_ms / 1000).to_string().into_bytes()
            }
            3 => {
                keyed = false;
                b"null".to_vec()
            }
            4 => {
                keyed = false;
                b"[]".to_vec()
            }
            _ => {
                keyed = false;
                b"true".to_vec()
            }
        },
        MissingField => {
            let field = REQUIRED[rng.random_range(0..REQUIRED.len())];
            keyed = field != "resource_id";
            let edit = if rng.random_ratio(3, 10) {
                Edit::Null(field)
            } else {
                Edit::Omit(field)
            };
            render(&edit).into_bytes()
        }
        WrongType => {
            let edit = match rng.random_range(0..10) {
                0 => Edit::Replace("dst_port", "\"443\"".into()),
                1 => Edit::Replace("dst_port", "443.0".into()),
                2 => Edit::Replace("severity", "3".into()),
                3 => Edit::Replace("patched", "\"yes\"".into()),
                4 => Edit::Replace("policy_allowed", "1".into()),
                5 => Edit::Replace("ts", (event.ts_ms / 1000).to_string()),
                6 => Edit::Replace("classification", "[\"confidential\"]".into()),
                7 => Edit::Replace("user", "1001".into()),
                8 => Edit::Replace("resource_type", "{\"name\":\"vm\"}".into()),
                _ => Edit::Replace("workload", "[\"payments\"]".into()),
            };
            render(&edit).into_bytes()
        }
        InvalidValue => {
            let edit = match rng.random_range(0..10) {
                0 => Edit::Replace("ts", "\"yesterday\"".into()),
                1 => {
                    let mut s = String::from("\"");
                    timestamp::push_utc_millis(&mut s, event.ts_ms);
                    s.pop();
                    s.push('"');
                    Edit::Replace("ts", s)
                }
                2 => Edit::Replace("ts", "\"2026-02-30T10:00:00Z\"".into()),
                3 => Edit::Replace("ts", "\"\"".into()),
                4 => Edit::Replace("dst_port", "70000".into()),
                5 => Edit::Replace("dst_port", "-1".into()),
                6 => Edit::Replace("dst_port", "65536".into()),
                7 => Edit::Replace("resource_type", "\"\"".into()),
                8 => Edit::Replace("category", "\"\"".into()),
                _ => {
                    keyed = false;
                    Edit::Replace("resource_id", "\"\"".into())
                }
            };
            render(&edit).into_bytes()
        }
        DuplicateField => {
            let mut s = render(&Edit::None);
            s.pop();
            match rng.random_range(0..5) {
                0 => {
                    s.push_str(",\"category\":");
                    json::push_str(&mut s, event.category.as_str());
                }
                1 => {
                    s.push_str(",\"resource_type\":");
                    json::push_str(&mut s, res.kind.as_str());
                }
                2 => {
                    s.push_str(",\"ts\":\"");
                    timestamp::push_utc_millis(&mut s, event.ts_ms + 1);
                    s.push('"');
                }
                3 => {
                    s.push_str(",\"resource_id\":");
                    json::push_str(&mut s, &res.id);
                }
                _ => s.push_str(",\"agent_id\":\"a-17\",\"agent_id\":\"a-17\""),
            }
            s.push('}');
            s.into_bytes()
        }
    };
    Malformed {
        reason: fault.reason(),
        payload,
        keyed,
    }
}
