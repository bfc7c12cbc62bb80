//! The operator API's answers, one type per endpoint.
//!
//! Absent values are `null`, never left out: a reader refuses an answer
//! missing a field (so a renamed field fails loudly instead of reading as
//! `null`), and the schemas, which describe what the workers write, list
//! every field as required. The contract's own messages
//! embedded in an answer (a command as received, a receipt, events, a dead
//! letter) are carried as JSON values: their schemas are the messages'
//! own. Answers may gain fields; readers ignore the ones they do not know.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// An `Option` field that must be present (as a value or `null`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)
}

/// `run.status`: a run and its most recent commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunStatusAnswer {
    /// The run's tenant.
    pub tenant: String,
    /// The run.
    pub run_id: String,
    /// The run's status (`pending`, `claimed`, `completed`, `failed`, `blocked`, `cancelled`).
    pub status: String,
    /// Its backend profile.
    pub profile: String,
    /// Its project.
    pub project: String,
    /// Its session, if any.
    #[serde(deserialize_with = "present")]
    pub session_id: Option<String>,
    /// Why it ended, when it failed or was blocked.
    #[serde(deserialize_with = "present")]
    pub failure_kind: Option<String>,
    /// The reason given with its last status change.
    #[serde(deserialize_with = "present")]
    pub status_reason: Option<String>,
    /// The seq its next command must have.
    pub next_seq: i64,
    /// What it has spent so far, per currency.
    pub spent: Value,
    /// Its budgets, from its `run.create` (`{}` when none).
    pub budgets: Value,
    /// Its `run.create` message as accepted (`null` from a worker older
    /// than this field).
    #[serde(default)]
    pub spec: Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The worker holding its lease, if any.
    #[serde(deserialize_with = "present")]
    pub lease_holder: Option<String>,
    /// When that lease expires.
    #[serde(deserialize_with = "present")]
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// How many commands it has recorded.
    pub commands_total: i64,
    /// Its last 1000 commands, in seq order.
    pub commands: Vec<CommandSummary>,
}

/// One command of [`RunStatusAnswer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommandSummary {
    /// The command.
    pub command_id: String,
    /// Its seq in the run.
    pub seq: i64,
    /// `turn`, `steer` or `close`.
    pub kind: String,
    /// Its status.
    pub status: String,
    /// The attempt that last claimed it.
    #[serde(deserialize_with = "present")]
    pub attempt: Option<i64>,
    /// The worker that last claimed it.
    #[serde(deserialize_with = "present")]
    pub worker_id: Option<String>,
    /// When it started.
    #[serde(deserialize_with = "present")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(deserialize_with = "present")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Its receipt's `failure` (`{"kind", "message"}`), if it failed.
    #[serde(deserialize_with = "present")]
    pub failure: Option<Value>,
}

/// `command.get`: a command, its receipt and its journaled steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommandAnswer {
    /// The run's tenant.
    pub tenant: String,
    /// The run.
    pub run_id: String,
    /// The command.
    pub command_id: String,
    /// Its seq in the run.
    pub seq: i64,
    /// `turn`, `steer` or `close`.
    pub kind: String,
    /// Its status.
    pub status: String,
    /// The attempt that last claimed it.
    #[serde(deserialize_with = "present")]
    pub attempt: Option<i64>,
    /// The worker that last claimed it.
    #[serde(deserialize_with = "present")]
    pub worker_id: Option<String>,
    /// The fencing token of its last claim.
    #[serde(deserialize_with = "present")]
    pub fencing_token: Option<i64>,
    /// Its idempotency key.
    pub idempotency_key: String,
    /// The `command.create` as received.
    pub message: Value,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When it started.
    #[serde(deserialize_with = "present")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(deserialize_with = "present")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The journaled `receipt`, once there is one.
    #[serde(deserialize_with = "present")]
    pub receipt: Option<Value>,
    /// The journaled step names, in the order written.
    pub steps: Vec<String>,
}

/// `events.after`: a page of a run's events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventsPage {
    /// The run's tenant.
    pub tenant: String,
    /// The run.
    pub run_id: String,
    /// The request's `after_seq`.
    pub after_seq: u64,
    /// The run's last event seq (0 before its first event).
    pub last_seq: i64,
    /// Ask again with this `after_seq` for the next page.
    pub next_after_seq: i64,
    /// Whether there are events after this page.
    pub more: bool,
    /// The events (`event` messages), in seq order.
    pub events: Vec<Value>,
}

/// `dlq.list`: dead letters, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetterList {
    /// Whether there are more than were listed.
    pub more: bool,
    /// The dead letters.
    pub dead_letters: Vec<DeadLetterSummary>,
}

/// One dead letter of [`DeadLetterList`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetterSummary {
    /// The dead letter.
    pub dead_letter_id: String,
    /// The tenant of its original subject.
    pub tenant: String,
    /// Its failure kind.
    pub reason: String,
    /// Its explanation.
    #[serde(deserialize_with = "present")]
    pub message: Option<String>,
    /// Its original subject.
    pub subject: String,
    /// When it was dead-lettered.
    pub created_at: DateTime<Utc>,
    /// When it was re-driven, if it was.
    #[serde(deserialize_with = "present")]
    pub redriven_at: Option<DateTime<Utc>>,
}

/// `dlq.show`: one stored dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetterShown {
    /// The dead letter.
    pub dead_letter_id: String,
    /// When it was dead-lettered.
    pub created_at: DateTime<Utc>,
    /// When it was re-driven, if it was.
    #[serde(deserialize_with = "present")]
    pub redriven_at: Option<DateTime<Utc>>,
    /// The stored `dead-letter` message.
    pub dead_letter: Value,
}

/// `dlq.redrive`: where JetStream stored the re-driven message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Redriven {
    /// The dead letter.
    pub dead_letter_id: String,
    /// The subject it was published on (its original one).
    pub subject: String,
    /// The stream that stored it.
    pub stream: String,
    /// Its sequence there.
    pub sequence: u64,
    /// Whether JetStream took it for a duplicate of an earlier redrive.
    pub duplicate: bool,
    /// When the dead letter was marked re-driven.
    pub redriven_at: DateTime<Utc>,
}

/// `fleet.stats`: workers, commands, runs and dead letters, from one snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FleetStats {
    /// When the snapshot was taken.
    pub at: DateTime<Utc>,
    /// The workers seen in the last 24 h.
    pub workers: Vec<WorkerSummary>,
    /// Commands per status; every status is listed, 0 when it has none.
    pub commands_by_status: BTreeMap<String, i64>,
    /// Runs per status; every status is listed, 0 when it has none.
    pub runs_by_status: BTreeMap<String, i64>,
    /// Dead letters.
    pub dead_letters: DeadLetterCounts,
    /// Concurrency keys with work recorded and not finished (pending,
    /// delayed, running or limited) or with a limit of their own, the
    /// busiest first (at most 100).
    pub keys: Vec<super::KeyStats>,
}

/// One worker of [`FleetStats`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkerSummary {
    /// The worker.
    pub worker_id: String,
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: i32,
    /// Its version.
    pub version: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it last registered.
    pub last_seen: DateTime<Utc>,
    /// When it stopped, if it stopped cleanly.
    #[serde(deserialize_with = "present")]
    pub stopped_at: Option<DateTime<Utc>>,
    /// Seen within 30 s and not stopped.
    pub alive: bool,
    /// Its `running` commands.
    pub in_flight: i64,
}

/// Dead letters of [`FleetStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetterCounts {
    /// Not re-driven.
    pub pending: i64,
    /// Re-driven.
    pub redriven: i64,
}
