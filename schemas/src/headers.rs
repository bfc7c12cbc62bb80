//! NATS header names of the contract.
//!
//! | header            | on                     | value                                             |
//! |-------------------|------------------------|---------------------------------------------------|
//! | `Nats-Msg-Id`     | producer messages       | `<idempotency_key>~<payload digest>` ([`producer_msg_id`]) |
//! | `Nats-Msg-Id`     | fleet messages          | derived from identity ([`crate::Routed::msg_id`]) |
//! | `Runfleet-Schema` | every published message | the message kind (`command.create`, …)           |
//! | `traceparent`     | optional                | W3C trace context, carried to events and receipts |
//! | `Runfleet-Waiting-Since` | parked commands published again | when the fleet first saw the command |
//! | `Runfleet-Signer`, `Runfleet-Signed-At`, `Runfleet-Signature` | signed `control.cancel` | [`crate::control_signature`] |

use sha2::{Digest, Sha256};

/// JetStream's deduplication header.
pub const MSG_ID: &str = "Nats-Msg-Id";

/// The `Nats-Msg-Id` of a producer message: the idempotency key, `~`, and
/// the first 16 hex digits of the SHA-256 of the exact payload bytes.
///
/// A retry of the same bytes is dropped by JetStream inside its window.
/// The same key with *another* payload gets another id, so it reaches a
/// worker and is refused as `idempotency-conflict`, instead of being
/// silently dropped as a duplicate. (PostgreSQL enforces the key forever;
/// this only keeps JetStream's window from hiding a conflict.)
///
/// ```
/// assert_eq!(
///     runfleet_schemas::headers::producer_msg_id("cmd:r1:1", b"{}"),
///     "cmd:r1:1~44136fa355b3678a"
/// );
/// ```
pub fn producer_msg_id(idempotency_key: &str, payload: &[u8]) -> String {
    let digest = Sha256::digest(payload);
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{idempotency_key}~{hex}")
}
/// The message kind, so consumers can route without parsing the body.
pub const SCHEMA: &str = "Runfleet-Schema";
/// On a parked command published again by the fleet: when the fleet first
/// saw the command (RFC 3339), so its wait for its turn is counted from then.
pub const WAITING_SINCE: &str = "Runfleet-Waiting-Since";

/// The time a [`WAITING_SINCE`] header carries; `None` unless it is RFC 3339.
pub fn waiting_since(value: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.to_utc())
}

/// On a timer and the wake it produces: the command's `not_before`, in
/// microseconds since the epoch (names the wake-up in its `Nats-Msg-Id`).
pub const NOT_BEFORE: &str = "Runfleet-Not-Before";

/// The W3C trace context of the message's trace.
pub const TRACEPARENT: &str = "traceparent";

/// The idempotency key inside a `Nats-Msg-Id` made by [`producer_msg_id`]
/// (or the whole id, when it has no digest suffix).
pub fn idempotency_key_of(msg_id: &str) -> &str {
    match msg_id.rsplit_once('~') {
        Some((key, digest))
            if digest.len() == 16 && digest.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            key
        }
        _ => msg_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_recovered_from_the_msg_id() {
        let id = producer_msg_id("cmd:r~1:1", b"payload");
        assert_eq!(idempotency_key_of(&id), "cmd:r~1:1");
        assert_eq!(idempotency_key_of("plain-key"), "plain-key");
        assert_ne!(producer_msg_id("k", b"a"), producer_msg_id("k", b"b"));
    }
}
