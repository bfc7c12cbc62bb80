//! Per-key concurrency limits (see `V10__concurrency_limits.sql`): a
//! command whose turn came while its key was at a limit is recorded in
//! `limited_commands` with its bytes, and released (published again) when
//! the key has room. The limits themselves are `concurrency_limits`,
//! written by the operator API.

use chrono::{DateTime, Utc};

use super::Journal;
use super::batch::{Conn, Op};
use crate::db::{Context, DbError};

/// `runfleet_limit_command` for every element of the arrays.
pub(crate) const SQL: &str = "\
SELECT runfleet_limit_command(u.tenant, u.run_id, u.command_id, u.seq, u.key, u.message) \
  FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::bytea[]) \
       WITH ORDINALITY AS u(tenant, run_id, command_id, seq, key, message, idx) \
 ORDER BY u.idx";

/// One limited command.
#[derive(Debug)]
pub(crate) struct LimitRequest {
    tenant: String,
    run_id: String,
    command_id: String,
    seq: i64,
    key: String,
    /// The `command.create` message, the bytes as delivered.
    message: Vec<u8>,
}

/// The batched recording of limited commands.
pub(crate) struct LimitOp;

impl Op for LimitOp {
    type Request = LimitRequest;
    type Answer = ();
    const CALL: &'static str = "runfleet_limit_command";

    fn order(request: &LimitRequest) -> (&str, &str, i64) {
        (&request.tenant, &request.run_id, request.seq)
    }

    async fn run(conn: &Conn, requests: &[&LimitRequest]) -> Result<Vec<()>, DbError> {
        let c = |f: fn(&LimitRequest) -> &str| requests.iter().map(|r| f(r)).collect::<Vec<_>>();
        let seqs: Vec<i64> = requests.iter().map(|r| r.seq).collect();
        let messages: Vec<&[u8]> = requests.iter().map(|r| r.message.as_slice()).collect();
        let rows = conn
            .client
            .query(
                conn.statement(SQL)?,
                &[
                    &c(|r| &r.tenant),
                    &c(|r| &r.run_id),
                    &c(|r| &r.command_id),
                    &seqs,
                    &c(|r| &r.key),
                    &messages,
                ],
            )
            .await?;
        Ok(vec![(); rows.len()])
    }
}

/// A limited command released to be published again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// Its tenant.
    pub tenant: String,
    /// Its run.
    pub run_id: String,
    /// Its id.
    pub command_id: String,
    /// Its `command.create` message, the bytes as delivered.
    pub message: Vec<u8>,
    /// When it was limited (last): part of its republished `Nats-Msg-Id`.
    pub limited_at: DateTime<Utc>,
    /// When the fleet first saw the command.
    pub first_seen: DateTime<Utc>,
}

impl Journal {
    /// Records a command limited on `key` (again: a released copy limited
    /// once more waits anew, keeping its place in line). Batched: a
    /// diverted tenant's backlog goes through here at the speed of its
    /// inserts.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn limit(
        &self,
        tenant: &str,
        run_id: &str,
        command_id: &str,
        seq: i64,
        key: &str,
        message: &[u8],
    ) -> Result<(), DbError> {
        self.limiteds
            .call(LimitRequest {
                tenant: tenant.to_owned(),
                run_id: run_id.to_owned(),
                command_id: command_id.to_owned(),
                seq,
                key: key.to_owned(),
                message: message.to_vec(),
            })
            .await
    }

    /// Forgets the wait of a command that was dead-lettered (a released
    /// copy that could not start: its run never came, say).
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn forget_limited(
        &self,
        tenant: &str,
        run_id: &str,
        command_id: &str,
    ) -> Result<(), DbError> {
        const CALL: &str = "DELETE FROM limited_commands";
        let subject = || crate::db::command_subject(tenant, run_id, command_id);
        let conn = self.pool.get().await.during(CALL, subject)?;
        conn.execute(
            "DELETE FROM limited_commands \
              WHERE tenant = $1 AND run_id = $2 AND command_id = $3",
            &[&tenant, &run_id, &command_id],
        )
        .await
        .during(CALL, subject)?;
        Ok(())
    }

    /// Looks whether any limit is set (remembered: while none is, pure
    /// commands are settled without looking for one) and returns whether
    /// any command waits on one.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn look_at_limits(&self) -> Result<bool, DbError> {
        const CALL: &str = "SELECT FROM limited_commands, concurrency_limits";
        let fleet = || "concurrency limits".to_owned();
        let conn = self.pool.get().await.during(CALL, fleet)?;
        let row = conn
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM limited_commands), \
                        EXISTS (SELECT 1 FROM concurrency_limits)",
                &[],
            )
            .await
            .during(CALL, fleet)?;
        let waiting: bool = row.try_get(0).during(CALL, fleet)?;
        let set: bool = row.try_get(1).during(CALL, fleet)?;
        self.limits.store(set, std::sync::atomic::Ordering::Relaxed);
        Ok(waiting)
    }

    /// Limited commands whose keys have room now, at most `limit`, and at
    /// most `fair_window` of a diverted tenant's not started yet (none when
    /// another worker is releasing at this moment).
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn release_limited(
        &self,
        limit: i32,
        fair_window: i32,
    ) -> Result<Vec<Released>, DbError> {
        const CALL: &str = "runfleet_release_limited";
        let fleet = || "limited commands".to_owned();
        let conn = self.pool.get().await.during(CALL, fleet)?;
        let rows = conn
            .query(
                "SELECT tenant, run_id, command_id, message, limited_at, first_seen \
                   FROM runfleet_release_limited($1, $2)",
                &[&limit, &fair_window],
            )
            .await
            .during(CALL, fleet)?;
        rows.iter()
            .map(|row| {
                Ok(Released {
                    tenant: row.try_get(0)?,
                    run_id: row.try_get(1)?,
                    command_id: row.try_get(2)?,
                    message: row.try_get(3)?,
                    limited_at: row.try_get(4)?,
                    first_seen: row.try_get(5)?,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .during(CALL, fleet)
    }
}
