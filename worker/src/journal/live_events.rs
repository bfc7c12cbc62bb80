//! Live events: part of a claimed command's events appended while it
//! executes (`runfleet_append_events`, V12), batched across commands,
//! under each claim's fencing token.

use super::Journal;
use super::batch::{Conn, Op, RawJson};
use crate::db::DbError;

/// `runfleet_append_events` for every element of the arrays, in order.
pub(crate) const SQL: &str = "\
SELECT runfleet_append_events(u.tenant, u.run_id, u.command_id, u.token, u.events) \
  FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::jsonb[]) \
       WITH ORDINALITY AS u(tenant, run_id, command_id, token, events, idx) \
 ORDER BY u.idx";

/// Whether appended events were stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored, in the run's log.
    Stored,
    /// The claim was superseded (or the run's log moved on); nothing was written.
    Fenced,
}

/// One command's events to append.
#[derive(Debug)]
pub(crate) struct AppendRequest {
    tenant: String,
    run_id: String,
    command_id: String,
    /// The claim's fencing token.
    token: i64,
    /// The first event's seq (the lock order within a run).
    first_seq: i64,
    /// The events, a JSON array of event messages with consecutive seqs.
    events: RawJson,
}

/// The batched append.
pub(crate) struct AppendOp;

impl Op for AppendOp {
    type Request = AppendRequest;
    type Answer = Appended;
    const CALL: &'static str = "runfleet_append_events";

    fn order(request: &AppendRequest) -> (&str, &str, i64) {
        (&request.tenant, &request.run_id, request.first_seq)
    }

    async fn run(conn: &Conn, requests: &[&AppendRequest]) -> Result<Vec<Appended>, DbError> {
        let c = |f: fn(&AppendRequest) -> &str| requests.iter().map(|r| f(r)).collect::<Vec<_>>();
        let tokens: Vec<i64> = requests.iter().map(|r| r.token).collect();
        let events: Vec<&RawJson> = requests.iter().map(|r| &r.events).collect();
        let rows = conn
            .client
            .query(
                conn.statement(SQL)?,
                &[
                    &c(|r| &r.tenant),
                    &c(|r| &r.run_id),
                    &c(|r| &r.command_id),
                    &tokens,
                    &events,
                ],
            )
            .await?;
        rows.iter()
            .map(|row| match row.try_get::<_, &str>(0)? {
                "appended" => Ok(Appended::Stored),
                "fenced" => Ok(Appended::Fenced),
                other => Err(DbError::unknown_outcome(
                    "runfleet_append_events",
                    other,
                    "appended, fenced",
                )),
            })
            .collect()
    }
}

impl Journal {
    /// Appends `events` (a JSON array of event messages numbered on from the
    /// run's next event seq, the first `first_seq`) to the run's log under
    /// the claim's fencing token.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn append_events(
        &self,
        tenant: &str,
        run_id: &str,
        command_id: &str,
        token: i64,
        first_seq: i64,
        events: bytes::Bytes,
    ) -> Result<Appended, DbError> {
        self.appends
            .call(AppendRequest {
                tenant: tenant.to_owned(),
                run_id: run_id.to_owned(),
                command_id: command_id.to_owned(),
                token,
                first_seq,
                events: RawJson(events),
            })
            .await
    }
}
