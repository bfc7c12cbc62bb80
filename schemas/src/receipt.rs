//! `receipt`: the stored outcome of a command.
//!
//! Written once to the journal in PostgreSQL, then published on
//! `runfleet.receipt.<tenant>.<run_id>` with `Nats-Msg-Id` =
//! `receipt:<run_id>:<command_id>`, so a replay republishes the very same
//! receipt and JetStream deduplicates it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kind::kind_marker;
use crate::result_chunks::OutputChunks;
use crate::{
    CommandId, Contract, FailureKind, MessageKind, RunId, SchemaVersion, Tenant,
    TerminalCommandStatus,
};

kind_marker!(
    /// The `schema` field of a [`Receipt`]: always `"receipt"`.
    ReceiptKind,
    MessageKind::Receipt
);

/// The one and only outcome of a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "receipt")]
pub struct Receipt {
    /// Always `"receipt"`.
    pub schema: ReceiptKind,
    /// Always `1`.
    pub version: SchemaVersion,
    /// The tenant that owns the run.
    pub tenant: Tenant,
    /// The command's run.
    pub run_id: RunId,
    /// The command this receipt closes.
    pub command_id: CommandId,
    /// The command's position in its run.
    #[schemars(range(min = 1))]
    pub seq: u64,
    /// The idempotency key the command was accepted under.
    #[schemars(length(min = 1, max = 256))]
    pub idempotency_key: String,
    /// The terminal status.
    pub status: TerminalCommandStatus,
    /// Why the command did not complete; absent when `status` is `completed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// The backend's result (redacted), when its JSON text is at most 64 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// Present instead of `output` when the result is larger than a
    /// receipt carries: it travels as this many `result_chunk` events
    /// ([`crate::result_chunks`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_chunks: Option<OutputChunks>,
    /// Whether `output` was cut to its tail to fit (a result over 64 MiB).
    #[serde(default)]
    pub output_truncated: bool,
    /// The run events this command produced, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventRange>,
    /// The delivery (JetStream delivery count) that produced this receipt.
    #[schemars(range(min = 1))]
    pub attempt: u64,
    /// The worker that produced it.
    #[schemars(length(min = 1))]
    pub worker_id: String,
    /// The run claim's fencing token the receipt was written under.
    pub fencing_token: u64,
    /// When execution started (absent when nothing was executed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When the outcome was committed.
    pub finished_at: DateTime<Utc>,
    /// The W3C trace context of the command, carried through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// What is left of each of the run's budgets after this command (absent
    /// when the run has none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub budget_remaining: BTreeMap<String, f64>,
}

impl Contract for Receipt {
    const KIND: MessageKind = MessageKind::Receipt;
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    /// The failure kind (a closed set).
    pub kind: FailureKind,
    /// A human-readable explanation (redacted), naming the field, phase or cause.
    pub message: String,
}

/// An inclusive range of run event sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventRange {
    /// The first event's `seq`.
    #[schemars(range(min = 1))]
    pub first_seq: u64,
    /// The last event's `seq` (≥ `first_seq`).
    #[schemars(range(min = 1))]
    pub last_seq: u64,
}
