//! The journal: every durable state change of runs and commands, as calls
//! to the SQL functions of the migrations (one round trip each).
//!
//! The promise lives here: a command's receipt is inserted once
//! (`journal` is write-once, keyed by command and step); a claim increments
//! the run's fencing token and every outcome is committed only under the
//! token that claimed it.

use std::collections::BTreeMap;
use std::time::Duration;

use runfleet_schemas::{
    CommandCreate, DeadLetter, DeliveryRecord, FailureKind, Receipt, RunCreate,
    TerminalCommandStatus,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::db::{DbError, Pool};
use crate::group_commit::{GroupCommit, Param};

fn order(tenant: &str, run_id: &str) -> String {
    format!("{tenant}/{run_id}")
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
    },
    /// The command or its run was cancelled before it started: it never runs.
    Cancelled(String),
    /// The command has a receipt: publish it again, execute nothing.
    Replay(Value),
    /// The idempotency key, command id or seq was used with other content.
    Conflict(String),
    /// The run does not exist (yet).
    NoRun(String),
    /// The run accepts no more commands; the failure kind says why
    /// (`run-terminal`, `budget-exhausted`, `tenant-policy-denied`).
    RunTerminal(String, FailureKind),
    /// Not this command's turn yet (earlier seq pending, or a live lease).
    Wait(String),
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
    Committed,
    /// The claim was superseded; nothing was written.
    Fenced,
}

/// Access to the journal tables.
#[derive(Debug, Clone)]
pub struct Journal {
    /// The connection pool.
    pool: Pool,
    /// Batches begin and complete calls into shared transactions.
    group: GroupCommit,
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

impl Journal {
    /// Wraps a pool; up to `group_commits` batches commit at once.
    pub fn new(pool: Pool, group_commits: usize) -> Journal {
        let group = GroupCommit::start(pool.clone(), group_commits);
        Journal { pool, group }
    }

    /// Records a run (idempotent).
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn create_run(&self, run: &RunCreate) -> Result<CreateRun, DbError> {
        let conn = self.pool.get().await?;
        let spec = serde_json::to_value(run).map_err(|e| DbError::Unexpected(e.to_string()))?;
        let row = conn
            .query_one(
                "SELECT outcome, detail FROM runfleet_create_run($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &run.tenant.as_str(),
                    &run.run_id.as_str(),
                    &run.project.as_str(),
                    &run.backend_profile.as_str(),
                    &run.session_id.as_ref().map(|s| s.as_str()),
                    &spec,
                    &run.idempotency_key,
                    &payload_hash(run),
                ],
            )
            .await?;
        let outcome: &str = row.get(0);
        Ok(match outcome {
            "created" => CreateRun::Created,
            "exists" => CreateRun::Exists,
            "denied" => CreateRun::Denied(row.get::<_, Option<String>>(1).unwrap_or_default()),
            _ => CreateRun::Conflict(row.get::<_, Option<String>>(1).unwrap_or_default()),
        })
    }

    /// Applies idempotency, order and exclusivity, and claims the run when it is this command's turn.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn begin_command(
        &self,
        command: &CommandCreate,
        attempt: i64,
        worker_id: &str,
        lease: Duration,
    ) -> Result<Begin, DbError> {
        let message =
            serde_json::to_value(command).map_err(|e| DbError::Unexpected(e.to_string()))?;
        let kind = message["kind"].as_str().unwrap_or_default().to_owned();
        let params: Vec<Param> = vec![
            Box::new(command.tenant.to_string()),
            Box::new(command.run_id.to_string()),
            Box::new(command.command_id.to_string()),
            Box::new(i64::try_from(command.seq).unwrap_or(i64::MAX)),
            Box::new(kind),
            Box::new(message),
            Box::new(command.idempotency_key.clone()),
            Box::new(payload_hash(command)),
            Box::new(attempt),
            Box::new(worker_id.to_owned()),
            Box::new(millis(lease)),
        ];
        let row = self
            .group
            .query_one(
                "SELECT outcome, fencing_token, next_event_seq, receipt, detail, failure_kind, \
                 run_spec, spent FROM runfleet_begin_command($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                params,
                order(command.tenant.as_str(), command.run_id.as_str()),
            )
            .await?;
        let outcome: &str = row.get(0);
        let detail = || row.get::<_, Option<String>>(4).unwrap_or_default();
        Ok(match outcome {
            "claimed" => Begin::Claimed {
                fencing_token: row.get(1),
                next_event_seq: row.get(2),
                run_spec: row.get(6),
                spent: serde_json::from_value(row.get::<_, Value>(7)).unwrap_or_default(),
            },
            "replay" => Begin::Replay(row.get(3)),
            "conflict" => Begin::Conflict(detail()),
            "no-run" => Begin::NoRun(detail()),
            "cancelled" => Begin::Cancelled(detail()),
            "run-terminal" => Begin::RunTerminal(
                detail(),
                row.get::<_, Option<String>>(5)
                    .and_then(|k| serde_json::from_value(Value::String(k)).ok())
                    .unwrap_or(FailureKind::RunTerminal),
            ),
            "wait" => Begin::Wait(detail()),
            other => return Err(DbError::Unexpected(format!("begin outcome {other:?}"))),
        })
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
        Ok(match row.get::<_, &str>(0) {
            "ok" => Renewal::Renewed,
            "cancelled" => Renewal::Cancelled,
            _ => Renewal::Lost,
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
            "UPDATE runs SET lease_holder = NULL, lease_expires_at = NULL \
             WHERE tenant = $1 AND run_id = $2 AND fencing_token = $3",
            &[&tenant, &run_id, &fencing_token],
        )
        .await?;
        Ok(())
    }

    /// Commits a claimed command's events, receipt and state in one fenced transaction.
    ///
    /// # Errors
    /// [`DbError`] on database failure (nothing is committed).
    pub async fn complete_command(
        &self,
        receipt: &Receipt,
        events: &[Value],
        run_change: RunChange,
    ) -> Result<Complete, DbError> {
        let receipt_json =
            serde_json::to_value(receipt).map_err(|e| DbError::Unexpected(e.to_string()))?;
        let RunChange {
            status: run_status,
            failure_kind,
            reason,
            spent,
        } = run_change;
        let run_status: Option<String> = run_status.map(|s| s.as_str().to_owned());
        let failure_kind: Option<String> = failure_kind.map(|k| k.as_str().to_owned());
        let spent: Option<Value> = spent.map(|s| serde_json::to_value(s).unwrap_or_default());
        let params: Vec<Param> = vec![
            Box::new(receipt.tenant.to_string()),
            Box::new(receipt.run_id.to_string()),
            Box::new(receipt.command_id.to_string()),
            Box::new(i64::try_from(receipt.seq).unwrap_or(i64::MAX)),
            Box::new(i64::try_from(receipt.fencing_token).unwrap_or(i64::MAX)),
            Box::new(i64::try_from(receipt.attempt).unwrap_or(i64::MAX)),
            Box::new(status_str(receipt.status).to_owned()),
            Box::new(receipt_json),
            Box::new(Value::Array(events.to_vec())),
            Box::new(run_status),
            Box::new(spent),
            Box::new(failure_kind),
            Box::new(reason),
        ];
        let row = self
            .group
            .query_one(
                "SELECT outcome FROM runfleet_complete_command($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                params,
                order(receipt.tenant.as_str(), receipt.run_id.as_str()),
            )
            .await?;
        Ok(if row.get::<_, &str>(0) == "committed" {
            Complete::Committed
        } else {
            Complete::Fenced
        })
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
        let rows = conn
            .query(
                "SELECT event FROM events WHERE tenant = $1 AND run_id = $2 AND seq BETWEEN $3 AND $4 \
                 ORDER BY seq",
                &[&tenant, &run_id, &first, &last],
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
        stream_sequence: u64,
        attempt: i64,
        worker_id: &str,
        outcome: &str,
    ) -> Result<(), DbError> {
        let conn = self.pool.get().await?;
        conn.execute(
            "INSERT INTO delivery_log (stream_sequence, attempt, worker_id, outcome) VALUES ($1, $2, $3, $4)",
            &[&i64::try_from(stream_sequence).unwrap_or(i64::MAX), &attempt, &worker_id, &outcome],
        )
        .await?;
        Ok(())
    }

    /// The logged deliveries of a stored message, oldest first.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn delivery_history(
        &self,
        stream_sequence: u64,
    ) -> Result<Vec<DeliveryRecord>, DbError> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                "SELECT attempt, worker_id, at, outcome FROM delivery_log WHERE stream_sequence = $1 \
                 ORDER BY attempt, at",
                &[&i64::try_from(stream_sequence).unwrap_or(i64::MAX)],
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
