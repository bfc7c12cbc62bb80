//! The begin side of a command, batched: idempotency, order, cancellation
//! and exclusivity decided by `runfleet_begin_command` for every call of
//! the batch in one statement, claiming the run when it is the command's
//! turn.

use std::collections::BTreeMap;

use runfleet_schemas::FailureKind;
use serde_json::Value;

use super::batch::{Conn, Op};
use super::{Begin, CommandColumns};
use crate::db::DbError;

/// `runfleet_begin_command` for every element of the arrays, in order.
pub(crate) const SQL: &str = "\
SELECT b.outcome, b.fencing_token, b.next_event_seq, b.receipt, b.detail, b.failure_kind, \
       b.run_spec, b.spent, b.executions \
  FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::jsonb[], \
              $7::text[], $8::bytea[], $9::int8[], $10::text[], $11::int8[]) \
       WITH ORDINALITY AS u(tenant, run_id, command_id, seq, kind, message, key, hash, attempt, \
                            worker, lease_ms, idx) \
 CROSS JOIN LATERAL runfleet_begin_command(u.tenant, u.run_id, u.command_id, u.seq, u.kind, \
       u.message, u.key, u.hash, u.attempt, u.worker, u.lease_ms) AS b \
 ORDER BY u.idx";

/// One command's begin.
#[derive(Debug)]
pub(crate) struct BeginRequest {
    /// The command as stored: its identity, order and idempotency.
    pub command: super::CommandRow,
    /// This delivery's attempt.
    pub attempt: i64,
    /// This worker.
    pub worker_id: String,
    /// The lease a claim gets, in milliseconds.
    pub lease_ms: i64,
}

/// The batched begin.
pub(crate) struct BeginOp;

impl Op for BeginOp {
    type Request = BeginRequest;
    type Answer = Begin;
    const CALL: &'static str = "runfleet_begin_command";

    fn order(request: &BeginRequest) -> (&str, &str, i64) {
        request.command.order()
    }

    async fn run(conn: &Conn, requests: &[&BeginRequest]) -> Result<Vec<Begin>, DbError> {
        let c = CommandColumns::of(requests.iter().map(|r| &r.command));
        let workers: Vec<&str> = requests.iter().map(|r| r.worker_id.as_str()).collect();
        let attempts: Vec<i64> = requests.iter().map(|r| r.attempt).collect();
        let leases: Vec<i64> = requests.iter().map(|r| r.lease_ms).collect();
        let rows = conn
            .client
            .query(
                conn.statement(SQL)?,
                &[
                    &c.tenants,
                    &c.runs,
                    &c.commands,
                    &c.seqs,
                    &c.kinds,
                    &c.messages,
                    &c.keys,
                    &c.hashes,
                    &attempts,
                    &workers,
                    &leases,
                ],
            )
            .await?;
        rows.iter().map(answer).collect()
    }
}

fn answer(row: &tokio_postgres::Row) -> Result<Begin, DbError> {
    match row.try_get::<_, &str>(0)? {
        "claimed" => Ok(Begin::Claimed {
            fencing_token: row.try_get(1)?,
            next_event_seq: row.try_get(2)?,
            run_spec: row.try_get(6)?,
            spent: serde_json::from_value::<BTreeMap<String, f64>>(row.try_get::<_, Value>(7)?)
                .unwrap_or_default(),
            executions: u64::try_from(row.try_get::<_, i32>(8)?).unwrap_or(1),
        }),
        other => not_claimed(other, row),
    }
}

/// The answers `runfleet_begin_command` and `runfleet_settle_pure` share
/// (columns: receipt 3, detail 4, failure kind 5).
pub(crate) fn not_claimed(outcome: &str, row: &tokio_postgres::Row) -> Result<Begin, DbError> {
    let detail = || row.get::<_, Option<String>>(4).unwrap_or_default();
    Ok(match outcome {
        "replay" => Begin::Replay(row.try_get(3)?, None),
        "conflict" => Begin::Conflict(detail()),
        "no-run" => Begin::NoRun(detail()),
        "cancelled" => Begin::Cancelled(detail()),
        "run-terminal" => Begin::RunTerminal(detail(), failure_kind(row.get(5))),
        "wait" => Begin::Wait(detail()),
        "limited" => Begin::Limited(detail()),
        other => {
            return Err(DbError::unknown_outcome(
                "runfleet_begin_command",
                other,
                "claimed, replay, conflict, no-run, cancelled, run-terminal, wait, limited",
            ));
        }
    })
}

/// A stored failure kind (`run-terminal` when absent or unknown).
fn failure_kind(stored: Option<String>) -> FailureKind {
    stored
        .and_then(|k| serde_json::from_value(Value::String(k)).ok())
        .unwrap_or(FailureKind::RunTerminal)
}
