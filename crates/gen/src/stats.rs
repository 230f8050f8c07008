//! Counts of generated messages by kind.

use std::collections::BTreeMap;

use crate::message::MessageKind;

/// How many good messages and how many malformed ones per reason code were generated.
#[derive(Default, Debug, Clone, PartialEq)]
pub struct GenStats {
    /// Valid events.
    pub good: u64,
    /// Malformed messages by reason code ([`rampart_core::DeadLetterReason::as_str`]).
    pub bad: BTreeMap<&'static str, u64>,
}

impl GenStats {
    /// Counts one message.
    pub fn record(&mut self, kind: &MessageKind) {
        match kind {
            MessageKind::Good => self.good += 1,
            MessageKind::Bad(reason) => *self.bad.entry(reason.as_str()).or_default() += 1,
        }
    }

    /// All messages counted.
    pub fn total(&self) -> u64 {
        self.good + self.bad_total()
    }

    /// Malformed messages counted.
    pub fn bad_total(&self) -> u64 {
        self.bad.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_core::DeadLetterReason;

    #[test]
    fn counts_by_kind() {
        let mut s = GenStats::default();
        s.record(&MessageKind::Good);
        s.record(&MessageKind::Bad(DeadLetterReason::NotJson));
        s.record(&MessageKind::Bad(DeadLetterReason::NotJson));
        s.record(&MessageKind::Bad(DeadLetterReason::TooLarge));
        assert_eq!((s.good, s.bad_total(), s.total()), (1, 3, 4));
        assert_eq!(s.bad["not_json"], 2);
    }
}
