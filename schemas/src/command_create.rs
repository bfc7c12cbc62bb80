//! `command.create`: one turn of a run.
//!
//! Published on `runfleet.cmd.<tenant>.<run_id>` with `Nats-Msg-Id` set to
//! `idempotency_key`. Commands of one run execute in `seq` order, one at a
//! time, and each ends in exactly one [`crate::Receipt`].

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Priority;
use crate::kind::kind_marker;
use crate::{CommandId, Contract, MessageKind, RunId, SchemaVersion, Tenant};

kind_marker!(
    /// The `schema` field of a [`CommandCreate`]: always `"command.create"`.
    CommandCreateKind,
    MessageKind::CommandCreate
);

/// One turn of a run, executed by the run's backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "command.create")]
pub struct CommandCreate {
    /// Always `"command.create"`.
    pub schema: CommandCreateKind,
    /// Always `1`.
    pub version: SchemaVersion,
    /// The command's identifier, unique within its run (the producer library uses a UUIDv7).
    pub command_id: CommandId,
    /// The tenant that owns the run; must match the run's tenant.
    pub tenant: Tenant,
    /// The run this command belongs to.
    pub run_id: RunId,
    /// Position in the run, starting at 1, without gaps: the fleet executes
    /// seq `n` only after seq `n - 1` has its receipt.
    #[schemars(range(min = 1))]
    pub seq: u64,
    /// What kind of turn this is.
    pub kind: CommandKind,
    /// The backend's input, a JSON object.
    pub payload: serde_json::Map<String, serde_json::Value>,
    /// Binding idempotency key; also the `Nats-Msg-Id` header. 1–256 characters.
    #[schemars(length(min = 1, max = 256))]
    pub idempotency_key: String,
    /// Upper bound on the command's execution, in milliseconds (the worker's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_ms: Option<u64>,
    /// When the producer created the message (RFC 3339).
    #[serde(deserialize_with = "crate::timestamp::strict")]
    pub created_at: DateTime<Utc>,
    /// Run-after (RFC 3339): the command does not start before this instant,
    /// and later seqs of its run wait behind it. Absent: eligible at once.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::timestamp::strict_optional"
    )]
    pub not_before: Option<DateTime<Utc>>,
    /// Schedule-to-start, in milliseconds: a command not started within it
    /// of being scheduled (its `not_before`, or when the fleet first saw it)
    /// ends `timed-out` with `schedule-to-start`, without executing.
    /// Absent: no limit (a command whose profile no worker serves still
    /// ends `no-backend` after the fleet's `RUNFLEET_SCHEDULE_TO_START`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub schedule_to_start_ms: Option<u64>,
    /// Priority (`high`, `normal`, `low`); its subject carries it as a fifth
    /// token (`.high`, `.low`; none for `normal`) and must agree.
    #[serde(default, skip_serializing_if = "Priority::is_normal")]
    pub priority: Priority,
}

impl Contract for CommandCreate {
    const KIND: MessageKind = MessageKind::CommandCreate;

    fn meets_schema_constraints(&self) -> Option<bool> {
        Some(
            self.seq >= 1
                && crate::kind::length_within(&self.idempotency_key, 1, 256)
                && self.timeout_ms.is_none_or(|t| t >= 1)
                && self.schedule_to_start_ms.is_none_or(|t| t >= 1),
        )
    }
}

/// The kinds of turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// A regular turn: the backend acts on the payload.
    Turn,
    /// Steering input for a conversation in progress.
    Steer,
    /// Closes the run as `completed` once the commands before it have receipts.
    Close,
}
