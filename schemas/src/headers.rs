//! NATS header names of the contract.
//!
//! | header            | on                     | value                                             |
//! |-------------------|------------------------|---------------------------------------------------|
//! | `Nats-Msg-Id`     | every published message | the idempotency key; JetStream drops duplicates  |
//! | `Runfleet-Schema` | every published message | the message kind (`command.create`, …)           |
//! | `traceparent`     | optional                | W3C trace context, carried to events and receipts |

/// JetStream's deduplication header: runfleet sets it to the idempotency key.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// The message kind, so consumers can route without parsing the body.
pub const SCHEMA: &str = "Runfleet-Schema";
/// The W3C trace context of the message's trace.
pub const TRACEPARENT: &str = "traceparent";
