//! The journal: every durable state change of runs and commands, as calls
//! to the SQL functions of the migrations (one round trip each).
//!
//! The promise lives here: a command's receipt is inserted once
//! (`journal` is write-once, keyed by command and step); a claim increments
//! the run's fencing token and every outcome is committed only under the
//! token that claimed it.
//!
//! The hot path (begin, complete, run creation, and the fused settle of
//! pure commands) is batched: `batch` gathers concurrent calls of one kind
//! into one prepared statement; `begin`, `complete`, `create_run` and
//! `settle` are those statements. The rest are single calls on the pool,
//! one room per table they own: `lease`, `steps`, `receipts`,
//! `run_events`, `parking`, `dead_letters`, `workers` (which SQL function
//! owns which invariant: `worker/migrations/README.md`).

mod batch;
mod begin;
mod complete;
mod create_run;
mod dead_letters;
mod delayed;
pub use delayed::Delayed;
mod fairness;
pub use fairness::{Diverted, FairShare};
mod lease;
mod limits;
mod live_events;
pub use limits::Released;
pub use live_events::Appended;
mod parking;
mod receipts;
mod schedules;
pub use schedules::Firing;
mod run_events;
pub use parking::{Among, Parked};
mod settle;
mod signers;
mod steps;
mod workers;
pub use settle::SET_BASED_FROM;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use runfleet_schemas::{
    CommandCreate, DeadLetter, DeliveryRecord, FailureKind, Receipt, RunCreate,
    TerminalCommandStatus,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_postgres::types::Type;

use self::batch::{Batcher, Connections, RawJson};
use self::begin::{BeginOp, BeginRequest};
use self::complete::{CompleteOp, CompleteRequest};
use self::create_run::{CreateRunOp, CreateRunRequest};
use self::settle::{SettleOp, SettleRequest};
use crate::db::{DbError, Pool};

/// The batched statements every journal connection prepares once.
const BATCH_STATEMENTS: [&str; 8] = [
    begin::SQL,
    complete::SQL,
    settle::SQL,
    settle::SQL_LIMITED,
    settle::PER_COMMAND_SQL,
    create_run::SQL,
    limits::SQL,
    live_events::SQL,
];

/// A command as the journal records it: identity, order, idempotency, and
/// the message itself.
#[derive(Debug, Clone)]
pub struct CommandRow {
    pub(crate) tenant: String,
    pub(crate) run_id: String,
    pub(crate) command_id: String,
    pub(crate) seq: i64,
    pub(crate) kind: &'static str,
    pub(crate) message: RawJson,
    pub(crate) idempotency_key: String,
    pub(crate) hash: Vec<u8>,
}

/// Commands as the array parameters of a batch statement, column by column.
pub(crate) struct CommandColumns<'a> {
    pub(crate) tenants: Vec<&'a str>,
    pub(crate) runs: Vec<&'a str>,
    pub(crate) commands: Vec<&'a str>,
    pub(crate) seqs: Vec<i64>,
    pub(crate) kinds: Vec<&'a str>,
    pub(crate) messages: Vec<&'a RawJson>,
    pub(crate) keys: Vec<&'a str>,
    pub(crate) hashes: Vec<&'a [u8]>,
}

impl<'a> CommandColumns<'a> {
    /// The columns of `rows`, in their order.
    pub(crate) fn of(rows: impl ExactSizeIterator<Item = &'a CommandRow>) -> CommandColumns<'a> {
        let mut columns = CommandColumns {
            tenants: Vec::with_capacity(rows.len()),
            runs: Vec::with_capacity(rows.len()),
            commands: Vec::with_capacity(rows.len()),
            seqs: Vec::with_capacity(rows.len()),
            kinds: Vec::with_capacity(rows.len()),
            messages: Vec::with_capacity(rows.len()),
            keys: Vec::with_capacity(rows.len()),
            hashes: Vec::with_capacity(rows.len()),
        };
        for row in rows {
            columns.tenants.push(&row.tenant);
            columns.runs.push(&row.run_id);
            columns.commands.push(&row.command_id);
            columns.seqs.push(row.seq);
            columns.kinds.push(row.kind);
            columns.messages.push(&row.message);
            columns.keys.push(&row.idempotency_key);
            columns.hashes.push(&row.hash);
        }
        columns
    }
}

impl CommandRow {
    /// The row of `command`, whose message bytes are `message` (the
    /// delivered JSON, stored as it came).
    pub fn new(command: &CommandCreate, message: bytes::Bytes) -> CommandRow {
        CommandRow {
            tenant: command.tenant.to_string(),
            run_id: command.run_id.to_string(),
            command_id: command.command_id.to_string(),
            seq: i64::try_from(command.seq).unwrap_or(i64::MAX),
            kind: command_kind(command.kind),
            message: RawJson(message),
            idempotency_key: command.idempotency_key.clone(),
            hash: payload_hash(command),
        }
    }

    fn order(&self) -> (&str, &str, i64) {
        (&self.tenant, &self.run_id, self.seq)
    }
}

fn command_kind(kind: runfleet_schemas::CommandKind) -> &'static str {
    match kind {
        runfleet_schemas::CommandKind::Turn => "turn",
        runfleet_schemas::CommandKind::Steer => "steer",
        runfleet_schemas::CommandKind::Close => "close",
    }
}

/// The outcome of [`Journal::create_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateRun {
    /// The run is new.
    Created,
    /// The same run was created before with the same key and content.
    Exists,
    /// The run exists with another key or content.
    Conflict(String),
    /// The run was refused by policy (a session bound elsewhere); it exists,
    /// blocked, and its commands fail with `tenant-policy-denied`.
    Denied(String),
}

/// The outcome of [`Journal::begin_command`].
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// Execute now under this claim.
    Claimed {
        /// The run's new fencing token.
        fencing_token: i64,
        /// The seq the command's first event gets.
        next_event_seq: i64,
        /// The run's `run.create` message.
        run_spec: Value,
        /// What the run has spent so far, per currency.
        spent: BTreeMap<String, f64>,
        /// How many times the command has been started, this one included.
        executions: u64,
    },
    /// The command or its run was cancelled before it started: it never runs.
    Cancelled(String),
    /// The command has a receipt: publish it again, execute nothing. With
    /// the events it names when they were read with it.
    Replay(Value, Option<Vec<Value>>),
    /// The idempotency key, command id or seq was used with other content.
    Conflict(String),
    /// The run does not exist (yet).
    NoRun(String),
    /// The run accepts no more commands; the failure kind says why
    /// (`run-terminal`, `budget-exhausted`, `tenant-policy-denied`).
    RunTerminal(String, FailureKind),
    /// Not this command's turn yet (earlier seq pending, or a live lease).
    Wait(String),
    /// Its turn, but its run's concurrency key (named) is at a limit.
    Limited(String),
    /// (Fused settle only.) Claimed and committed at once under this
    /// fencing token, its events numbered from `next_event_seq`.
    Settled {
        /// The claim's fencing token.
        fencing_token: i64,
        /// The seq of the command's first event.
        next_event_seq: i64,
        /// Whether the run's next command is already recorded (someone may wait for it).
        waiter: bool,
    },
    /// (Fused settle only.) Not plainly the run's next command (or the run
    /// not of the expected profile): nothing was written; take the two-step path.
    Slow,
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// The lease is extended; go on.
    Renewed,
    /// Another claim is newer: stop, write nothing.
    Lost,
    /// The command or its run was cancelled: stop it.
    Cancelled,
}

/// How a command's commit changes its run (besides moving it past the command).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunChange {
    /// The run's new status, when the command ends the run.
    pub status: Option<runfleet_schemas::RunStatus>,
    /// Why it ended, as a failure kind later commands are refused with.
    pub failure_kind: Option<FailureKind>,
    /// Why it ended, for people.
    pub reason: Option<String>,
    /// The run's new spending totals, when the command spent anything.
    pub spent: Option<BTreeMap<String, f64>>,
}

/// The outcome of [`Journal::complete_command`].
#[derive(Debug, Clone, PartialEq)]
pub enum Complete {
    /// Events, receipt and state are committed.
    Committed {
        /// Whether the run's next command is already recorded (someone may wait for it).
        waiter: bool,
    },
    /// The claim was superseded; nothing was written.
    Fenced,
}

/// Access to the journal tables.
#[derive(Debug, Clone)]
pub struct Journal {
    /// The connection pool (everything off the hot path).
    pool: Pool,
    /// Batched begins.
    begins: Batcher<BeginOp>,
    /// Batched commits.
    completes: Batcher<CompleteOp>,
    /// Batched fused settles of pure commands.
    settles: Batcher<SettleOp>,
    /// Batched run creations.
    creates: Batcher<CreateRunOp>,
    /// Batched records of limited (and diverted) commands.
    limiteds: Batcher<limits::LimitOp>,
    /// Batched appends of live events.
    appends: Batcher<live_events::AppendOp>,
    /// Whether a concurrency limit may be set (until the releaser has
    /// looked, and while one is).
    limits: Arc<AtomicBool>,
}

/// The content hash idempotency compares: the message without `created_at`
/// (a producer retrying with a fresh timestamp sends the same message).
pub fn payload_hash<T: serde::Serialize>(message: &T) -> Vec<u8> {
    let mut value = serde_json::to_value(message).unwrap_or(Value::Null);
    if let Some(object) = value.as_object_mut() {
        object.remove("created_at");
    }
    Sha256::digest(value.to_string().as_bytes()).to_vec()
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn status_str(status: TerminalCommandStatus) -> &'static str {
    runfleet_schemas::CommandStatus::from(status).as_str()
}

/// Which stored message a delivery record belongs to: a sequence is only
/// unique within its stream, and a tenant's records never mix with another's.
#[derive(Debug, Clone, Copy)]
pub struct StoredMessage<'a> {
    /// The stream holding it (`RUNFLEET_WORK`, `RUNFLEET_CONTROL`).
    pub stream: &'a str,
    /// Its sequence in that stream.
    pub sequence: u64,
    /// The tenant of its subject (`_unknown` when the subject names none).
    pub tenant: &'a str,
}

impl Journal {
    /// Wraps a pool; the hot path gets `group_commits` connections of its
    /// own, each running one batch at a time.
    pub fn new(pool: Pool, group_commits: usize) -> Journal {
        let connections = Connections::new(pool.url(), group_commits, &BATCH_STATEMENTS);
        Journal {
            begins: Batcher::start(connections.clone()),
            completes: Batcher::start(connections.clone()),
            settles: Batcher::start(connections.clone()),
            creates: Batcher::start(connections.clone()),
            limiteds: Batcher::start(connections.clone()),
            appends: Batcher::start(connections),
            limits: Arc::new(AtomicBool::new(true)),
            pool,
        }
    }

    /// Records a run (idempotent); `message` is its delivered JSON, stored as it came.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn create_run(
        &self,
        run: &RunCreate,
        message: bytes::Bytes,
    ) -> Result<CreateRun, DbError> {
        self.creates
            .call(CreateRunRequest {
                tenant: run.tenant.to_string(),
                run_id: run.run_id.to_string(),
                project: run.project.to_string(),
                profile: run.backend_profile.to_string(),
                session: run.session_id.as_ref().map(ToString::to_string),
                spec: RawJson(message),
                key: run.idempotency_key.clone(),
                hash: payload_hash(run),
            })
            .await
    }

    /// Applies idempotency, order and exclusivity, and claims the run when it is this command's turn.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn begin_command(
        &self,
        command: CommandRow,
        attempt: i64,
        worker_id: &str,
        lease: Duration,
    ) -> Result<Begin, DbError> {
        self.begins
            .call(BeginRequest {
                command,
                attempt,
                worker_id: worker_id.to_owned(),
                lease_ms: millis(lease),
            })
            .await
    }

    /// Begin and commit at once, for a command whose outcome was computed
    /// (for a run of `profile`) without effects outside the journal:
    /// `receipt` and `events` (a JSON array) are committed when it is
    /// plainly the command's turn, the claim's fencing token and the events'
    /// seqs added in PostgreSQL ([`Begin::Settled`]); otherwise nothing is
    /// written ([`Begin::Slow`]).
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn settle_pure(
        &self,
        command: CommandRow,
        attempt: i64,
        worker_id: &str,
        profile: &str,
        receipt: bytes::Bytes,
        events: bytes::Bytes,
    ) -> Result<Begin, DbError> {
        self.settles
            .call(SettleRequest {
                command,
                attempt,
                worker_id: worker_id.to_owned(),
                profile: profile.to_owned(),
                receipt: RawJson(receipt),
                events: RawJson(events),
                limits: self.limits.load(Ordering::Relaxed),
            })
            .await
    }
}
