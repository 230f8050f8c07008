//! One generated message and whether it is meant to be accepted.

use rampart_core::DeadLetterReason;

/// One message of the stream, as a producer would send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The Kafka key: the event's `resource_id`, or `""` for a malformed message whose
    /// payload no longer carries a usable one (not an object, `resource_id` missing or
    /// empty).
    pub key: String,
    /// The message bytes; never contains a `\n`.
    pub payload: Vec<u8>,
    /// Ground truth: what the decoder must make of the payload.
    pub kind: MessageKind,
}

/// What a message is meant to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// A valid event under the contract.
    Good,
    /// A malformed message that the decoder dead-letters for this reason (with the
    /// default 1 MiB `decode.max-message-bytes`).
    Bad(DeadLetterReason),
}
