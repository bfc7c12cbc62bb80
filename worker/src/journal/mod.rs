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
//! `settle` are those statements. The rest are single calls on the pool.

mod batch;
mod begin;
mod complete;
mod create_run;
mod parking;
pub use parking::{Among, Parked};
mod settle;
pub use settle::SET_BASED_FROM;

use std::collections::BTreeMap;
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
        let connections = Connections::new(pool.url(), group_commits);
        Journal {
            begins: Batcher::start(connections.clone()),
            completes: Batcher::start(connections.clone()),
            settles: Batcher::start(connections.clone()),
            creates: Batcher::start(connections),
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
            })
            .await
    }

    /// Extends a claim's lease, and says whether the command should go on.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn renew_lease(
        &self,
        tenant: &str,
        run_id: &str,
        command_id: &str,
        fencing_token: i64,
        lease: Duration,
    ) -> Result<Renewal, DbError> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_one(
                "SELECT runfleet_renew_lease($1, $2, $3, $4, $5)",
                &[
                    &tenant,
                    &run_id,
                    &command_id,
                    &fencing_token,
                    &millis(lease),
                ],
            )
            .await?;
        Ok(match row.try_get::<_, &str>(0)? {
            "ok" => Renewal::Renewed,
            "cancelled" => Renewal::Cancelled,
            "lost" => Renewal::Lost,
            other => {
                return Err(DbError::unknown_outcome(
                    "runfleet_renew_lease",
                    other,
                    "ok, cancelled, lost",
                ));
            }
        })
    }

    /// The journaled result of a step of a command, if it has one.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn step_result(
        &self,
        tenant: &str,
        run_id: &str,
        command_id: &str,
        step: &str,
    ) -> Result<Option<Value>, DbError> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT result FROM journal WHERE tenant = $1 AND run_id = $2 AND command_id = $3 \
                 AND step = 'step:' || $4",
                &[&tenant, &run_id, &command_id, &step],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Journals a step's result write-once under the claim's token; returns
    /// the stored result (an earlier one wins), or `None` when the claim was
    /// superseded and nothing was written.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_step(
        &self,
        tenant: &str,
        run_id: &str,
        command_id: &str,
        step: &str,
        attempt: i64,
        fencing_token: i64,
        result: &Value,
    ) -> Result<Option<Value>, DbError> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_one(
                "SELECT outcome, result FROM runfleet_record_step($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &tenant,
                    &run_id,
                    &command_id,
                    &step,
                    &attempt,
                    &fencing_token,
                    result,
                ],
            )
            .await?;
        Ok(match row.get::<_, &str>(0) {
            "fenced" => None,
            _ => row.get(1),
        })
    }

    /// Records a cancel request (for a whole run when `command_id` is `None`).
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn cancel(
        &self,
        tenant: &str,
        run_id: &str,
        command_id: Option<&str>,
        reason: Option<&str>,
    ) -> Result<(String, String), DbError> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_one(
                "SELECT outcome, detail FROM runfleet_cancel($1, $2, $3, $4)",
                &[&tenant, &run_id, &command_id, &reason],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// Appends a run-level event (no command) when no claim owns the run;
    /// returns the stored event with its seq, or `None` when the run is busy.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn append_run_event(
        &self,
        tenant: &str,
        run_id: &str,
        event: &Value,
    ) -> Result<Option<Value>, DbError> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_one(
                "SELECT outcome, event FROM runfleet_append_run_event($1, $2, $3)",
                &[&tenant, &run_id, event],
            )
            .await?;
        Ok(row.get(1))
    }

    /// Gives a claim up early (shutdown, retry), so the next delivery need not wait for the lease.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn release_lease(
        &self,
        tenant: &str,
        run_id: &str,
        fencing_token: i64,
    ) -> Result<(), DbError> {
        let conn = self.pool.get().await?;
        conn.execute(
            "SELECT runfleet_release_lease($1, $2, $3)",
            &[&tenant, &run_id, &fencing_token],
        )
        .await?;
        Ok(())
    }

    /// Commits a claimed command's events, receipt and state in one fenced
    /// transaction; `receipt` and `events` (a JSON array) are serialized.
    ///
    /// # Errors
    /// [`DbError`] on database failure (nothing is committed).
    pub async fn complete_command(
        &self,
        receipt: &Receipt,
        receipt_json: bytes::Bytes,
        events: bytes::Bytes,
        run_change: RunChange,
    ) -> Result<Complete, DbError> {
        let RunChange {
            status: run_status,
            failure_kind,
            reason,
            spent,
        } = run_change;
        let spent = spent
            .map(|s| serde_json::to_vec(&s))
            .transpose()
            .map_err(|e| DbError::Unexpected(e.to_string()))?;
        self.completes
            .call(CompleteRequest {
                tenant: receipt.tenant.to_string(),
                run_id: receipt.run_id.to_string(),
                command_id: receipt.command_id.to_string(),
                seq: i64::try_from(receipt.seq).unwrap_or(i64::MAX),
                token: i64::try_from(receipt.fencing_token).unwrap_or(i64::MAX),
                attempt: i64::try_from(receipt.attempt).unwrap_or(i64::MAX),
                status: status_str(receipt.status),
                receipt: RawJson(receipt_json),
                events: RawJson(events),
                run_status: run_status.map(|s| s.as_str()),
                failure_kind: failure_kind.map(FailureKind::as_str),
                reason,
                spent: spent.map(|s| RawJson(s.into())),
            })
            .await
    }

    /// Records the receipt of a command that was not executed under a claim;
    /// returns the receipt that is stored (an earlier one wins).
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn record_receipt(&self, receipt: &Receipt) -> Result<Value, DbError> {
        let conn = self.pool.get().await?;
        let receipt_json =
            serde_json::to_value(receipt).map_err(|e| DbError::Unexpected(e.to_string()))?;
        let row = conn
            .query_one(
                "SELECT runfleet_record_receipt($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &receipt.tenant.as_str(),
                    &receipt.run_id.as_str(),
                    &receipt.command_id.as_str(),
                    &i64::try_from(receipt.seq).unwrap_or(i64::MAX),
                    &i64::try_from(receipt.attempt).unwrap_or(i64::MAX),
                    &status_str(receipt.status),
                    &receipt_json,
                ],
            )
            .await?;
        row.get::<_, Option<Value>>(0)
            .ok_or_else(|| DbError::Unexpected("record_receipt stored nothing".into()))
    }

    /// The stored events of a run with `first <= seq <= last`, in order.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn events(
        &self,
        tenant: &str,
        run_id: &str,
        first: i64,
        last: i64,
    ) -> Result<Vec<Value>, DbError> {
        let conn = self.pool.get().await?;
        // Typed parameters: one round trip (no statement prepared first).
        let rows = conn
            .query_typed(
                "SELECT event FROM events WHERE tenant = $1 AND run_id = $2 AND seq BETWEEN $3 AND $4 \
                 ORDER BY seq",
                &[
                    (&tenant, Type::TEXT),
                    (&run_id, Type::TEXT),
                    (&first, Type::INT8),
                    (&last, Type::INT8),
                ],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Stores a dead letter, once per stored message; returns the one stored.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn insert_dead_letter(&self, dead_letter: &DeadLetter) -> Result<Value, DbError> {
        let conn = self.pool.get().await?;
        let message =
            serde_json::to_value(dead_letter).map_err(|e| DbError::Unexpected(e.to_string()))?;
        conn.execute(
            "INSERT INTO dead_letters (dead_letter_id, tenant, reason, subject, stream_sequence, message) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (stream_sequence, subject) DO NOTHING",
            &[
                &dead_letter.dead_letter_id,
                &dead_letter.tenant,
                &dead_letter.reason.as_str(),
                &dead_letter.original_subject,
                &i64::try_from(dead_letter.stream_sequence).unwrap_or(i64::MAX),
                &message,
            ],
        )
        .await?;
        let row = conn
            .query_one(
                "SELECT message FROM dead_letters WHERE stream_sequence = $1 AND subject = $2",
                &[
                    &i64::try_from(dead_letter.stream_sequence).unwrap_or(i64::MAX),
                    &dead_letter.original_subject,
                ],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Records a delivery that did not end its message (for dead letters' history).
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn log_delivery(
        &self,
        message: &StoredMessage<'_>,
        attempt: i64,
        worker_id: &str,
        outcome: &str,
    ) -> Result<(), DbError> {
        let conn = self.pool.get().await?;
        conn.execute(
            "INSERT INTO delivery_log (stream, stream_sequence, tenant, attempt, worker_id, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &message.stream,
                &i64::try_from(message.sequence).unwrap_or(i64::MAX),
                &message.tenant,
                &attempt,
                &worker_id,
                &outcome,
            ],
        )
        .await?;
        Ok(())
    }

    /// The logged deliveries of a stored message, oldest first: only its
    /// own (stream, sequence and tenant all match).
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn delivery_history(
        &self,
        message: &StoredMessage<'_>,
    ) -> Result<Vec<DeliveryRecord>, DbError> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                "SELECT attempt, worker_id, at, outcome FROM delivery_log \
                 WHERE stream = $1 AND stream_sequence = $2 AND tenant = $3 \
                 ORDER BY attempt, at",
                &[
                    &message.stream,
                    &i64::try_from(message.sequence).unwrap_or(i64::MAX),
                    &message.tenant,
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| DeliveryRecord {
                attempt: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0).max(1),
                worker_id: r.get(1),
                at: r.get(2),
                outcome: r.get(3),
            })
            .collect())
    }

    /// Registers (or re-registers) this worker.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn register_worker(&self, worker_id: &str, host: &str) -> Result<(), DbError> {
        let conn = self.pool.get().await?;
        conn.execute(
            "INSERT INTO workers (worker_id, host, pid, version) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (worker_id) DO UPDATE SET host = $2, pid = $3, version = $4, \
             started_at = now(), last_seen = now(), stopped_at = NULL",
            &[
                &worker_id,
                &host,
                &i32::try_from(std::process::id()).unwrap_or(i32::MAX),
                &env!("CARGO_PKG_VERSION"),
            ],
        )
        .await?;
        Ok(())
    }

    /// Updates this worker's `last_seen` (and `stopped_at` when it stops).
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn touch_worker(&self, worker_id: &str, stopped: bool) -> Result<(), DbError> {
        let conn = self.pool.get().await?;
        conn.execute(
            "UPDATE workers SET last_seen = now(), \
             stopped_at = CASE WHEN $2 THEN now() ELSE NULL END WHERE worker_id = $1",
            &[&worker_id, &stopped],
        )
        .await?;
        Ok(())
    }
}
