//! Delayed commands (run-after): a command whose `not_before` is still ahead
//! is recorded in `delayed_commands` (see `V8__run_after.sql`) and woken by
//! a timer ([`crate::timers`]); the row is the truth about what is delayed,
//! until when, and with which bytes.

use chrono::{DateTime, Utc};

use super::Journal;
use crate::db::{Context, DbError, command_subject};

/// A delayed command, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delayed {
    /// Its tenant.
    pub tenant: String,
    /// Its run.
    pub run_id: String,
    /// Its id.
    pub command_id: String,
    /// Its `not_before`.
    pub not_before: DateTime<Utc>,
    /// Its `command.create` message, the bytes as delivered.
    pub message: Vec<u8>,
}

impl Journal {
    /// Records `delayed` (again: a redelivered copy replaces the row).
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn delay(&self, delayed: &Delayed, seq: i64) -> Result<(), DbError> {
        let subject = || command_subject(&delayed.tenant, &delayed.run_id, &delayed.command_id);
        let conn = self
            .pool
            .get()
            .await
            .during("INSERT INTO delayed_commands", subject)?;
        conn.execute(
            "INSERT INTO delayed_commands (tenant, run_id, command_id, seq, not_before, message) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tenant, run_id, command_id) \
             DO UPDATE SET seq = $4, not_before = $5, message = $6, delayed_at = clock_timestamp()",
            &[
                &delayed.tenant,
                &delayed.run_id,
                &delayed.command_id,
                &seq,
                &delayed.not_before,
                &delayed.message,
            ],
        )
        .await
        .during("INSERT INTO delayed_commands", subject)?;
        Ok(())
    }

    /// Forgets a delayed command whose message was published again (only
    /// that delay: a newer `not_before` recorded meanwhile stays).
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn undelay(
        &self,
        tenant: &str,
        run_id: &str,
        command_id: &str,
        not_before: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let subject = || command_subject(tenant, run_id, command_id);
        let conn = self
            .pool
            .get()
            .await
            .during("DELETE FROM delayed_commands", subject)?;
        conn.execute(
            "DELETE FROM delayed_commands \
              WHERE tenant = $1 AND run_id = $2 AND command_id = $3 AND not_before <= $4",
            &[&tenant, &run_id, &command_id, &not_before],
        )
        .await
        .during("DELETE FROM delayed_commands", subject)?;
        Ok(())
    }

    /// Delayed commands due before `before` (the sweep's backstop for
    /// timers that never fired), earliest first, at most `limit`.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn delayed_due(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Delayed>, DbError> {
        let subject = || format!("up to {limit} delayed commands due before {before}");
        let conn = self
            .pool
            .get()
            .await
            .during("SELECT FROM delayed_commands", subject)?;
        let rows = conn
            .query(
                "SELECT tenant, run_id, command_id, not_before, message FROM delayed_commands \
                  WHERE not_before < $1 ORDER BY not_before LIMIT $2",
                &[&before, &limit],
            )
            .await
            .during("SELECT FROM delayed_commands", subject)?;
        rows.iter()
            .map(|row| {
                Ok(Delayed {
                    tenant: row.try_get(0)?,
                    run_id: row.try_get(1)?,
                    command_id: row.try_get(2)?,
                    not_before: row.try_get(3)?,
                    message: row.try_get(4)?,
                })
            })
            .collect()
    }
}
