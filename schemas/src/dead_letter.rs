//! `dead-letter`: a message the fleet could not process, kept with its reason.
//!
//! Written to PostgreSQL first, then published on `runfleet.dlq.<tenant>`
//! (`runfleet.dlq._unknown` when the tenant cannot be read from the subject).
//! It carries the original subject, headers and payload byte for byte, so it
//! can be inspected and re-driven.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kind::kind_marker;
use crate::{Contract, FailureKind, MessageKind, SchemaVersion};

kind_marker!(
    /// The `schema` field of a [`DeadLetter`]: always `"dead-letter"`.
    DeadLetterKind,
    MessageKind::DeadLetter
);

/// A message that ended without a receipt, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "dead-letter")]
pub struct DeadLetter {
    /// Always `"dead-letter"`.
    pub schema: DeadLetterKind,
    /// Always `1`.
    pub version: SchemaVersion,
    /// The dead letter's own identifier (a UUIDv7).
    #[schemars(length(min = 1, max = 128))]
    pub dead_letter_id: String,
    /// The tenant token of the original subject (`_unknown` when it has none).
    #[schemars(length(min = 1, max = 128))]
    pub tenant: String,
    /// Why the message could not be processed.
    pub reason: FailureKind,
    /// A human-readable explanation naming the field or the cause (redacted).
    pub message: String,
    /// The subject the original message was published on.
    pub original_subject: String,
    /// The original message's headers (redacted).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub original_headers: BTreeMap<String, Vec<String>>,
    /// The original payload, byte for byte, encoded as `payload_encoding` says.
    pub payload: String,
    /// How `payload` is encoded.
    pub payload_encoding: PayloadEncoding,
    /// The original message's idempotency key (`Nats-Msg-Id`), when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The original message's sequence in its stream.
    pub stream_sequence: u64,
    /// Every delivery of the original message, oldest first.
    pub deliveries: Vec<DeliveryRecord>,
    /// When the message was dead-lettered.
    pub dead_lettered_at: DateTime<Utc>,
}

impl Contract for DeadLetter {
    const KIND: MessageKind = MessageKind::DeadLetter;
}

/// How a dead letter's payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayloadEncoding {
    /// The payload was valid UTF-8 without U+0000 and is stored as is.
    Utf8,
    /// The payload was not valid UTF-8, or held a U+0000 (NUL) byte, and is
    /// stored in standard base64.
    Base64,
}

impl PayloadEncoding {
    /// `bytes` as a dead letter's `payload` and its encoding: as is when
    /// they are UTF-8 without U+0000, else standard base64 — so any byte
    /// sequence is carried exactly, and always storable.
    pub fn encode(bytes: &[u8]) -> (String, PayloadEncoding) {
        use base64::Engine;
        match std::str::from_utf8(bytes) {
            Ok(text) if !text.contains('\0') => (text.to_owned(), PayloadEncoding::Utf8),
            _ => (
                base64::engine::general_purpose::STANDARD.encode(bytes),
                PayloadEncoding::Base64,
            ),
        }
    }
}

impl DeadLetter {
    /// The original message's bytes, decoded as `payload_encoding` says.
    ///
    /// # Errors
    /// When a `base64` payload is not valid base64.
    pub fn original_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        use base64::Engine;
        match self.payload_encoding {
            PayloadEncoding::Utf8 => Ok(self.payload.clone().into_bytes()),
            PayloadEncoding::Base64 => {
                base64::engine::general_purpose::STANDARD.decode(&self.payload)
            }
        }
    }
}

/// One delivery of a message to a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryRecord {
    /// The JetStream delivery count of this delivery (1 for the first).
    #[schemars(range(min = 1))]
    pub attempt: u64,
    /// The worker it was delivered to.
    pub worker_id: String,
    /// When the worker received it.
    pub at: DateTime<Utc>,
    /// What came of it (redacted).
    pub outcome: String,
}
