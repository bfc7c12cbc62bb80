//! Parked commands: a command that waits long for an earlier seq is parked
//! in PostgreSQL (and its message acknowledged) instead of held by a worker;
//! when it is due its stored message is published again (see
//! `V5__executions_budget.sql` and [`crate::resume`]).

use super::Journal;
use crate::db::DbError;
use crate::db::{Context, command_subject};
use chrono::{DateTime, Utc};

/// A parked command that is due to be published again.
#[derive(Debug, Clone)]
pub struct Parked {
    /// Its tenant.
    pub tenant: String,
    /// Its run.
    pub run_id: String,
    /// Its id.
    pub command_id: String,
    /// Its `command.create` message, the bytes as delivered.
    pub message: Vec<u8>,
    /// When it was parked: names this parking (its republished `Nats-Msg-Id`).
    pub parked_at: DateTime<Utc>,
    /// When the fleet first saw it (how long it has waited, across parkings).
    pub first_seen: DateTime<Utc>,
}

/// Which parked commands [`Journal::parked_due`] looks at.
#[derive(Debug, Clone, Copy)]
pub enum Among<'a> {
    /// Those of these runs (`(tenant, run_id)`), right after they moved on.
    Runs(&'a [(String, String)]),
    /// Those of every run parked before this instant (the sweep).
    ParkedBefore(DateTime<Utc>),
}

impl Journal {
    /// Parks a command that is still behind an earlier seq of its open run,
    /// with `message`, its bytes as delivered (what is published again).
    /// False when it is not to be parked: its turn came meanwhile, it is
    /// cancelled, or its run ended (the caller looks again).
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn park(
        &self,
        tenant: &str,
        run_id: &str,
        command_id: &str,
        seq: i64,
        message: &[u8],
    ) -> Result<bool, DbError> {
        let subject = || command_subject(tenant, run_id, command_id);
        let conn = self
            .pool
            .get()
            .await
            .during("runfleet_park_command", subject)?;
        let row = conn
            .query_one(
                "SELECT runfleet_park_command($1, $2, $3, $4, $5)",
                &[&tenant, &run_id, &command_id, &seq, &message],
            )
            .await
            .during("runfleet_park_command", subject)?;
        Ok(row.try_get(0)?)
    }

    /// The parked commands that are due (their run's turn, or never to
    /// come: the run ended, the command was cancelled, or it was first seen
    /// before `expired`), oldest parking first, at most `limit`.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn parked_due(
        &self,
        among: Among<'_>,
        expired: DateTime<Utc>,
        limit: i32,
    ) -> Result<Vec<Parked>, DbError> {
        let subject = || format!("up to {limit} parked commands");
        let (tenants, runs, before): (Option<Vec<&str>>, Option<Vec<&str>>, _) = match among {
            Among::Runs(runs) => (
                Some(runs.iter().map(|(t, _)| t.as_str()).collect()),
                Some(runs.iter().map(|(_, r)| r.as_str()).collect()),
                None,
            ),
            Among::ParkedBefore(before) => (None, None, Some(before)),
        };
        let conn = self
            .pool
            .get()
            .await
            .during("runfleet_parked_due", subject)?;
        let rows = conn
            .query(
                "SELECT tenant, run_id, command_id, message, parked_at, created_at \
                   FROM runfleet_parked_due($1, $2, $3, $4, $5)",
                &[&tenants, &runs, &before, &expired, &limit],
            )
            .await
            .during("runfleet_parked_due", subject)?;
        rows.iter()
            .map(|row| {
                Ok(Parked {
                    tenant: row.try_get(0)?,
                    run_id: row.try_get(1)?,
                    command_id: row.try_get(2)?,
                    message: row.try_get(3)?,
                    parked_at: row.try_get(4)?,
                    first_seen: row.try_get(5)?,
                })
            })
            .collect()
    }

    /// Clears the parkings whose messages were published again (each only
    /// if it is still the same parking).
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn unpark(&self, published: &[Parked]) -> Result<(), DbError> {
        let subject = || format!("{} published parked commands", published.len());
        if published.is_empty() {
            return Ok(());
        }
        let tenants: Vec<&str> = published.iter().map(|p| p.tenant.as_str()).collect();
        let runs: Vec<&str> = published.iter().map(|p| p.run_id.as_str()).collect();
        let commands: Vec<&str> = published.iter().map(|p| p.command_id.as_str()).collect();
        let parked: Vec<DateTime<Utc>> = published.iter().map(|p| p.parked_at).collect();
        let conn = self
            .pool
            .get()
            .await
            .during("UPDATE commands (unpark)", subject)?;
        conn.execute(
            "UPDATE commands c SET parked_at = NULL, parked_message = NULL \
               FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) \
                    AS u(tenant, run_id, command_id, parked_at) \
              WHERE c.tenant = u.tenant AND c.run_id = u.run_id \
                AND c.command_id = u.command_id AND c.parked_at = u.parked_at",
            &[&tenants, &runs, &commands, &parked],
        )
        .await
        .during("UPDATE commands (unpark)", subject)?;
        Ok(())
    }
}
