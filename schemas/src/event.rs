//! `event`: one entry of a run's ordered event log.
//!
//! Published on `runfleet.evt.<tenant>.<run_id>` with `Nats-Msg-Id` =
//! `event:<run_id>:<seq>`. `seq` is per run, starts at 1 and has no gaps;
//! the log in PostgreSQL is the authority, the events stream a bounded copy
//! for live followers. A command's events are appended while it executes
//! (in batches about every 100 ms), each marked with its `attempt`: an
//! attempt that ends without a receipt leaves its events in the log, and the
//! receipt's `events` range names the seqs of the attempt that counted.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kind::kind_marker;
use crate::{
    CommandId, Contract, FailureKind, MessageKind, RunId, SchemaVersion, Tenant,
    TerminalCommandStatus,
};

kind_marker!(
    /// The `schema` field of an [`Event`]: always `"event"`.
    EventKind,
    MessageKind::Event
);

/// One entry of a run's event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "event")]
pub struct Event {
    /// Always `"event"`.
    pub schema: EventKind,
    /// Always `1`.
    pub version: SchemaVersion,
    /// The tenant that owns the run.
    pub tenant: Tenant,
    /// The run whose log this entry belongs to.
    pub run_id: RunId,
    /// The command that produced it (absent for run-level events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<CommandId>,
    /// Position in the run's log: starts at 1, increases by 1.
    #[schemars(range(min = 1))]
    pub seq: u64,
    /// The delivery of the command that produced it (absent for run-level
    /// events): events of an attempt that ended without a receipt stay in
    /// the log; the receipt's `events` range names the attempt that counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub attempt: Option<u64>,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    pub body: EventBody,
}

impl Contract for Event {
    const KIND: MessageKind = MessageKind::Event;
}

/// What an event says, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EventBody {
    /// The backend's own status line (starting, ready, closing…).
    BackendStatus {
        /// A short status word.
        status: String,
        /// Details, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// A message from an assistant (agent CLIs).
    AssistantMessage {
        /// The message text.
        text: String,
    },
    /// Output of a program the backend ran.
    CommandOutput {
        /// Which stream it came from.
        stream: OutputStream,
        /// The text (redacted).
        text: String,
    },
    /// A change to files in the run's working directory.
    Diff {
        /// The file changed, when the diff is about one file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// A unified diff.
        patch: String,
    },
    /// How far along the command is.
    Progress {
        /// Units done.
        done: u64,
        /// Units in all, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
    },
    /// The command entered a named phase.
    Phase {
        /// The phase's name.
        name: String,
    },
    /// A journaled step changed state.
    Step {
        /// The step's name, unique within the command.
        name: String,
        /// What happened to it.
        status: StepStatus,
    },
    /// A measurement; `cost.<currency>` metrics draw down the run's budgets.
    Metric {
        /// The metric's name, e.g. `cost.usd` or `tokens.input`.
        name: String,
        /// Its value.
        value: f64,
    },
    /// Something went wrong (the command may still recover).
    Error {
        /// What went wrong (redacted).
        message: String,
        /// The failure kind, when it is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure_kind: Option<FailureKind>,
    },
    /// One piece of a result too large for its receipt
    /// ([`crate::result_chunks`]): bytes `index × 196,608` onwards of the
    /// result's JSON text.
    ResultChunk {
        /// Its position, from 0.
        index: u64,
        /// How many chunks the result has.
        #[schemars(range(min = 1))]
        count: u64,
        /// `sha256:<hex>` of the whole result's JSON text.
        #[schemars(regex(pattern = r"^sha256:[0-9a-f]{64}$"))]
        digest: String,
        /// The bytes, base64 (standard alphabet, padded).
        data: String,
    },
    /// The command reached its terminal status (the last event of a command).
    TerminalStatus {
        /// The status its receipt carries.
        status: TerminalCommandStatus,
        /// The failure kind, when it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure_kind: Option<FailureKind>,
    },
}

/// Which output stream a [`EventBody::CommandOutput`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// What happened to a journaled step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// The step began executing.
    Started,
    /// The step finished and its result was journaled.
    Completed,
    /// The step's result was returned from the journal without executing it.
    Replayed,
    /// The step failed.
    Failed,
}
