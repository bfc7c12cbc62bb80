//! Begin and commit fused, set-based: for commands whose backend has no
//! effect outside the journal, one statement settles a whole batch.
//!
//! The worker computes each command's outcome first (receipt and events,
//! without the claim's fencing token and the events' seqs), then this
//! statement, in one transaction:
//! 1. locks every run of the batch once, in (tenant, run id) order;
//! 2. keeps the commands that are plainly their run's next ones: the run is
//!    open, unleased, of the expected profile, with neither bundle nor
//!    budgets nor a concurrency limit on its key; the command is no `close`, is not known yet (by key, id or
//!    seq), is not cancelled, and with the batch's other commands of its run
//!    forms the contiguous seq prefix from the run's `next_seq`;
//! 3. writes those in their final state with multi-row inserts (commands,
//!    events, receipts) and moves each run once (`next_seq += k`, the
//!    fencing token and event seq by as much), numbering tokens and events
//!    in seq order.
//!
//! A redelivery of a receipted command is answered [`Begin::Replay`] with
//! its stored receipt. Every other command is answered [`Begin::Slow`] and
//! nothing is written for it: the worker takes it through the two-step
//! path, which answers every other case (conflict, wait, cancelled,
//! terminal run).
//!
//! That statement costs about a millisecond before its first command, so a
//! batch of fewer than [`SET_BASED_FROM`] commands goes through the
//! per-command `runfleet_settle_pure` instead (`unnest` + `LATERAL`, like
//! the begin side): it settles the same commands and answers the others
//! exactly, as `runfleet_begin_command` would.

use super::batch::{Conn, Op, RawJson};
use super::begin::not_claimed;
use super::{Begin, CommandColumns, CommandRow};
use crate::db::DbError;

/// Batches this large and larger use the set-based statement.
pub const SET_BASED_FROM: usize = 12;

/// `runfleet_settle_pure` for every element of the arrays, in order (small batches).
pub(crate) const PER_COMMAND_SQL: &str = "\
SELECT s.outcome, s.fencing_token, s.next_event_seq, s.receipt, s.detail, s.failure_kind, s.waiter \
  FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::jsonb[], \
              $7::text[], $8::bytea[], $9::int8[], $10::text[], $11::text[], $12::jsonb[], \
              $13::jsonb[]) \
       WITH ORDINALITY AS u(tenant, run_id, command_id, seq, kind, message, key, hash, attempt, \
                            worker, profile, receipt, events, idx) \
 CROSS JOIN LATERAL runfleet_settle_pure(u.tenant, u.run_id, u.command_id, u.seq, u.kind, \
       u.message, u.key, u.hash, u.attempt, u.worker, u.profile, u.receipt, u.events) AS s \
 ORDER BY u.idx";

/// The set-based settle of a batch, with `$limits` added to the run's
/// conditions.
macro_rules! settle_sql {
    ($limits:literal) => {
        concat!(
            r"
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::jsonb[],
                         $7::text[], $8::bytea[], $9::int8[], $10::text[], $11::text[],
                         $12::jsonb[], $13::jsonb[])
        WITH ORDINALITY AS u(tenant, run_id, command_id, seq, kind, message, key, hash, attempt,
                             worker, profile, receipt, events, idx)
), locked AS (
    SELECT r.tenant, r.run_id, r.status, r.next_seq, r.next_event_seq, r.fencing_token,
           r.lease_holder, r.lease_expires_at, r.backend_profile, r.spec
      FROM runs r
     WHERE (r.tenant, r.run_id) IN (SELECT tenant, run_id FROM input)
     ORDER BY r.tenant, r.run_id
       FOR UPDATE
), candidates AS (
    SELECT i.*, jsonb_array_length(i.events) AS event_count,
           l.next_seq, l.next_event_seq, l.fencing_token,
           count(*) OVER (PARTITION BY i.tenant, i.run_id, i.seq) > 1
           OR count(*) OVER (PARTITION BY i.tenant, i.run_id, i.key) > 1
           OR count(*) OVER (PARTITION BY i.tenant, i.run_id, i.command_id) > 1 AS duplicated,
           row_number() OVER (PARTITION BY i.tenant, i.run_id ORDER BY i.seq) AS rn
      FROM input i
      JOIN locked l ON l.tenant = i.tenant AND l.run_id = i.run_id
     WHERE l.status IN ('pending', 'claimed')
       AND (l.lease_holder IS NULL OR l.lease_expires_at <= now())
       AND l.backend_profile = i.profile
       AND NOT (l.spec ? 'resource_bundle') AND NOT (l.spec ? 'budgets')",
            $limits,
            r"
       AND i.kind <> 'close'
       AND NOT EXISTS (SELECT 1 FROM commands c
                        WHERE c.tenant = i.tenant AND c.run_id = i.run_id AND c.seq = i.seq)
       AND NOT EXISTS (SELECT 1 FROM commands c
                        WHERE c.tenant = i.tenant AND c.run_id = i.run_id AND c.idempotency_key = i.key)
       AND NOT EXISTS (SELECT 1 FROM commands c
                        WHERE c.tenant = i.tenant AND c.run_id = i.run_id AND c.command_id = i.command_id)
       AND NOT EXISTS (SELECT 1 FROM cancel_requests cr
                        WHERE cr.tenant = i.tenant AND cr.run_id = i.run_id
                          AND cr.command_id IN (i.command_id, ''))
), flagged AS (
    SELECT c.*, bool_or(c.duplicated) OVER (PARTITION BY c.tenant, c.run_id) AS run_duplicated
      FROM candidates c
), prefix AS (
    SELECT f.*, f.fencing_token + f.rn AS token,
           f.next_event_seq - f.event_count
             + sum(f.event_count) OVER (PARTITION BY f.tenant, f.run_id ORDER BY f.seq) AS first_event,
           max(f.seq) OVER (PARTITION BY f.tenant, f.run_id) AS last_seq
      FROM flagged f
     WHERE f.seq = f.next_seq + f.rn - 1 AND NOT f.run_duplicated
), settled AS (
    -- `waiter`: the run's next command is recorded (a worker may wait for
    -- it). A run whose next command already has a receipt (cancelled before
    -- its turn) is left to the two-step path, which moves the run past it.
    SELECT p.*, n.command_id IS NOT NULL AS waiter
      FROM prefix p
      LEFT JOIN LATERAL (
          SELECT c.command_id, EXISTS (
                     SELECT 1 FROM journal j
                      WHERE j.tenant = c.tenant AND j.run_id = c.run_id
                        AND j.command_id = c.command_id AND j.step = 'receipt') AS receipted
            FROM commands c
           WHERE c.tenant = p.tenant AND c.run_id = p.run_id AND c.seq = p.last_seq + 1
           LIMIT 1
      ) n ON true
     WHERE NOT coalesce(n.receipted, false)
), new_commands AS (
    INSERT INTO commands (tenant, run_id, command_id, seq, kind, message, idempotency_key,
                          payload_hash, status, attempt, worker_id, fencing_token, started_at,
                          finished_at)
    SELECT tenant, run_id, command_id, seq, kind, message, key, hash, receipt ->> 'status',
           attempt, worker, token, now(), now()
      FROM settled
), new_events AS (
    INSERT INTO events (tenant, run_id, seq, command_id, event, at)
    SELECT s.tenant, s.run_id, s.first_event + e.n - 1, s.command_id,
           e.body || jsonb_build_object('seq', s.first_event + e.n - 1),
           (e.body ->> 'at')::timestamptz
      FROM settled s CROSS JOIN LATERAL jsonb_array_elements(s.events) WITH ORDINALITY AS e(body, n)
), new_receipts AS (
    INSERT INTO journal (tenant, run_id, command_id, step, attempt, fencing_token, status, result)
    SELECT tenant, run_id, command_id, 'receipt', attempt, token, receipt ->> 'status',
           receipt || jsonb_build_object(
               'fencing_token', token,
               'events', jsonb_build_object('first_seq', first_event,
                                            'last_seq', first_event + event_count - 1))
      FROM settled
), moved AS (
    SELECT tenant, run_id, max(token) AS token, max(seq) AS last_seq,
           max(first_event + event_count) AS next_event_seq
      FROM settled GROUP BY tenant, run_id
), updated AS (
    UPDATE runs r
       SET fencing_token = m.token, next_seq = m.last_seq + 1, next_event_seq = m.next_event_seq,
           status = 'claimed', updated_at = now()
      FROM moved m
     WHERE r.tenant = m.tenant AND r.run_id = m.run_id
)
-- `replay`: the stored receipt of a command not settled here that is a
-- redelivery of a receipted one (same key, payload, id and seq), which
-- `runfleet_begin_command` would answer `replay`, and `replay_events` the
-- events it names: answered now, so the worker skips the two-step path's
-- second statement and the events' read. The statement's
-- snapshot predates its own inserts, so only earlier receipts are found.
-- Both lateral lookups end in `LIMIT 1` (their keys are unique): a
-- subquery with a LIMIT is not flattened, so each stays a per-row index
-- probe. Flattened, the generic plan cached while the tables were small read
-- every receipt (and its events) once per batch: a drain that slowed as the
-- journal grew.
SELECT s.token, s.first_event, s.waiter, r.result AS replay, r.events AS replay_events
  FROM input i
  LEFT JOIN settled s ON s.idx = i.idx
  LEFT JOIN LATERAL (
      SELECT j.result,
             (SELECT coalesce(jsonb_agg(e.event ORDER BY e.seq), '[]') FROM events e
               WHERE e.tenant = c.tenant AND e.run_id = c.run_id
                 AND e.seq BETWEEN (j.result #>> '{events,first_seq}')::bigint
                               AND (j.result #>> '{events,last_seq}')::bigint) AS events
        FROM commands c
        JOIN journal j ON j.tenant = c.tenant AND j.run_id = c.run_id
                      AND j.command_id = c.command_id AND j.step = 'receipt'
       WHERE s.idx IS NULL
         AND c.tenant = i.tenant AND c.run_id = i.run_id AND c.idempotency_key = i.key
         AND c.payload_hash = i.hash AND c.command_id = i.command_id AND c.seq = i.seq
       LIMIT 1
  ) r ON true
 ORDER BY i.idx"
        )
    };
}

/// The set-based settle of a batch, while no concurrency limit is set.
pub(crate) const SQL: &str = settle_sql!("");

/// The set-based settle of a batch, while limits may be set: a run whose
/// key has one is left to the two-step path, where it is applied.
pub(crate) const SQL_LIMITED: &str = settle_sql!(
    "
       AND NOT EXISTS (SELECT 1 FROM concurrency_limits cl
                        WHERE runfleet_run_key(l.tenant, l.spec) LIKE cl.like_pattern)"
);

/// One pure command, with its outcome computed.
#[derive(Debug)]
pub(crate) struct SettleRequest {
    /// The command as stored.
    pub command: CommandRow,
    /// This delivery's attempt.
    pub attempt: i64,
    /// This worker.
    pub worker_id: String,
    /// The profile the run must have (the outcome was computed for it).
    pub profile: String,
    /// The receipt, without the claim's fencing token and event range (added here).
    pub receipt: RawJson,
    /// The events (a JSON array), without their seqs (added here).
    pub events: RawJson,
    /// Whether a concurrency limit may be set (runs with one are left to
    /// the two-step path).
    pub limits: bool,
}

/// The batched fused settle.
pub(crate) struct SettleOp;

impl Op for SettleOp {
    type Request = SettleRequest;
    type Answer = Begin;
    const CALL: &'static str = "runfleet_settle_pure";

    fn order(request: &SettleRequest) -> (&str, &str, i64) {
        request.command.order()
    }

    async fn run(conn: &Conn, requests: &[&SettleRequest]) -> Result<Vec<Begin>, DbError> {
        let c = CommandColumns::of(requests.iter().map(|r| &r.command));
        let workers: Vec<&str> = requests.iter().map(|r| r.worker_id.as_str()).collect();
        let profiles: Vec<&str> = requests.iter().map(|r| r.profile.as_str()).collect();
        let attempts: Vec<i64> = requests.iter().map(|r| r.attempt).collect();
        let receipts: Vec<&RawJson> = requests.iter().map(|r| &r.receipt).collect();
        let events: Vec<&RawJson> = requests.iter().map(|r| &r.events).collect();
        let set_based = requests.len() >= SET_BASED_FROM;
        let statement = if set_based {
            let limits = requests.iter().any(|r| r.limits);
            conn.statement(if limits { SQL_LIMITED } else { SQL })?
        } else {
            conn.statement(PER_COMMAND_SQL)?
        };
        let rows = conn
            .client
            .query(
                statement,
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
                    &profiles,
                    &receipts,
                    &events,
                ],
            )
            .await?;
        if !set_based {
            return rows.iter().map(per_command_answer).collect();
        }
        rows.iter()
            .map(|row| {
                Ok(match row.try_get::<_, Option<i64>>(0)? {
                    None => match row.try_get::<_, Option<serde_json::Value>>(3)? {
                        Some(receipt) => Begin::Replay(
                            receipt,
                            match row.try_get::<_, Option<serde_json::Value>>(4)? {
                                Some(serde_json::Value::Array(events)) => Some(events),
                                _ => None,
                            },
                        ),
                        None => Begin::Slow,
                    },
                    Some(fencing_token) => Begin::Settled {
                        fencing_token,
                        next_event_seq: row.try_get(1)?,
                        waiter: row.try_get::<_, Option<bool>>(2)?.unwrap_or(false),
                    },
                })
            })
            .collect()
    }
}

/// The answer of `runfleet_settle_pure`.
fn per_command_answer(row: &tokio_postgres::Row) -> Result<Begin, DbError> {
    match row.try_get::<_, &str>(0)? {
        "completed" => Ok(Begin::Settled {
            fencing_token: row.try_get(1)?,
            next_event_seq: row.try_get(2)?,
            waiter: row.try_get(6)?,
        }),
        "slow" => Ok(Begin::Slow),
        other => not_claimed(other, row),
    }
}
