//! The commit side of a claimed command, batched: every call's fenced
//! commit of events, receipt and state (`runfleet_complete_command`) in one
//! statement.

use super::Complete;
use super::batch::{Conn, Op, RawJson};
use crate::db::DbError;

/// `runfleet_complete_command` for every element of the arrays, in order.
pub(crate) const SQL: &str = "\
SELECT c.outcome, c.waiter \
  FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], \
              $7::text[], $8::jsonb[], $9::jsonb[], $10::text[], $11::jsonb[], $12::text[], \
              $13::text[]) \
       WITH ORDINALITY AS u(tenant, run_id, command_id, seq, token, attempt, status, receipt, \
                            events, run_status, spent, failure_kind, reason, idx) \
 CROSS JOIN LATERAL runfleet_complete_command(u.tenant, u.run_id, u.command_id, u.seq, u.token, \
       u.attempt, u.status, u.receipt, u.events, u.run_status, u.spent, u.failure_kind, \
       u.reason) AS c \
 ORDER BY u.idx";

/// One claimed command's outcome, serialized.
#[derive(Debug)]
pub(crate) struct CompleteRequest {
    pub tenant: String,
    pub run_id: String,
    pub command_id: String,
    pub seq: i64,
    /// The claim's fencing token.
    pub token: i64,
    pub attempt: i64,
    /// The command's terminal status.
    pub status: &'static str,
    /// The receipt (JSON).
    pub receipt: RawJson,
    /// The events (a JSON array).
    pub events: RawJson,
    /// The run's new status, failure kind and reason, when the command ends it.
    pub run_status: Option<&'static str>,
    pub failure_kind: Option<&'static str>,
    pub reason: Option<String>,
    /// The run's new spending totals (JSON), when the command spent anything.
    pub spent: Option<RawJson>,
}

/// The batched commit.
pub(crate) struct CompleteOp;

impl Op for CompleteOp {
    type Request = CompleteRequest;
    type Answer = Complete;
    const CALL: &'static str = "runfleet_complete_command";

    fn order(request: &CompleteRequest) -> (&str, &str, i64) {
        (&request.tenant, &request.run_id, request.seq)
    }

    async fn run(conn: &Conn, requests: &[&CompleteRequest]) -> Result<Vec<Complete>, DbError> {
        let c = |f: fn(&CompleteRequest) -> &str| requests.iter().map(|r| f(r)).collect::<Vec<_>>();
        let i = |f: fn(&CompleteRequest) -> i64| requests.iter().map(|r| f(r)).collect::<Vec<_>>();
        let tenants = c(|r| &r.tenant);
        let runs = c(|r| &r.run_id);
        let commands = c(|r| &r.command_id);
        let statuses = c(|r| r.status);
        let seqs = i(|r| r.seq);
        let tokens = i(|r| r.token);
        let attempts = i(|r| r.attempt);
        let receipts: Vec<&RawJson> = requests.iter().map(|r| &r.receipt).collect();
        let events: Vec<&RawJson> = requests.iter().map(|r| &r.events).collect();
        let run_statuses: Vec<Option<&str>> = requests.iter().map(|r| r.run_status).collect();
        let spent: Vec<Option<&RawJson>> = requests.iter().map(|r| r.spent.as_ref()).collect();
        let kinds: Vec<Option<&str>> = requests.iter().map(|r| r.failure_kind).collect();
        let reasons: Vec<Option<&str>> = requests.iter().map(|r| r.reason.as_deref()).collect();
        let rows = conn
            .client
            .query(
                conn.statement(SQL)?,
                &[
                    &tenants,
                    &runs,
                    &commands,
                    &seqs,
                    &tokens,
                    &attempts,
                    &statuses,
                    &receipts,
                    &events,
                    &run_statuses,
                    &spent,
                    &kinds,
                    &reasons,
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(match row.try_get::<_, &str>(0)? {
                    "committed" => Complete::Committed {
                        waiter: row.try_get(1)?,
                    },
                    "fenced" => Complete::Fenced,
                    other => {
                        return Err(DbError::unknown_outcome(
                            "runfleet_complete_command",
                            other,
                            "committed, fenced",
                        ));
                    }
                })
            })
            .collect()
    }
}
