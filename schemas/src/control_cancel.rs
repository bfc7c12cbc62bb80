//! `control.cancel`: cancel a run, or one command of it.
//!
//! Published on `runfleet.ctl.<tenant>.<run_id>`. Cancelling a run cancels
//! its pending commands, stops its running one and makes the run terminal;
//! cancelling a command stops it if it runs and makes sure it never starts
//! otherwise.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kind::kind_marker;
use crate::{CommandId, Contract, MessageKind, RunId, SchemaVersion, Tenant};

kind_marker!(
    /// The `schema` field of a [`ControlCancel`]: always `"control.cancel"`.
    ControlCancelKind,
    MessageKind::ControlCancel
);

/// Cancels a run or one of its commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "control.cancel")]
pub struct ControlCancel {
    /// Always `"control.cancel"`.
    pub schema: ControlCancelKind,
    /// Always `1`.
    pub version: SchemaVersion,
    /// The tenant that owns the run.
    pub tenant: Tenant,
    /// The run to cancel (or whose command to cancel).
    pub run_id: RunId,
    /// Only this command; the whole run when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<CommandId>,
    /// Why, for the receipt and the event log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub reason: Option<String>,
    /// Binding idempotency key; also the `Nats-Msg-Id` header. 1–256 characters.
    #[schemars(length(min = 1, max = 256))]
    pub idempotency_key: String,
    /// When the producer created the message (RFC 3339).
    #[serde(deserialize_with = "crate::timestamp::strict")]
    pub created_at: DateTime<Utc>,
}

impl Contract for ControlCancel {
    const KIND: MessageKind = MessageKind::ControlCancel;

    fn meets_schema_constraints(&self) -> Option<bool> {
        Some(
            crate::kind::length_within(&self.idempotency_key, 1, 256)
                && self
                    .reason
                    .as_deref()
                    .is_none_or(|r| crate::kind::length_within(r, 0, 1024)),
        )
    }
}
