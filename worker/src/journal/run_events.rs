//! A run's own log: cancel requests, events of the run itself (outside any
//! command), and a range of its events read back for a replay.

use super::*;
use crate::db::{Context, run_subject};

impl Journal {
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
        let subject = || run_subject(tenant, run_id);
        let conn = self.pool.get().await.during("runfleet_cancel", subject)?;
        let row = conn
            .query_one(
                "SELECT outcome, detail FROM runfleet_cancel($1, $2, $3, $4)",
                &[&tenant, &run_id, &command_id, &reason],
            )
            .await
            .during("runfleet_cancel", subject)?;
        Ok((row.get(0), row.get(1)))
    }

    /// Whether a cancel of the run (`command_id`: of that command, or of
    /// the run itself) is stored: what a cancel broadcast must find before
    /// it stops anything.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn cancel_recorded(
        &self,
        tenant: &str,
        run_id: &str,
        command_id: Option<&str>,
    ) -> Result<bool, DbError> {
        let subject = || run_subject(tenant, run_id);
        let conn = self.pool.get().await.during("cancel_requests", subject)?;
        let row = conn
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM runs \
                                 WHERE tenant = $1 AND run_id = $2 AND status = 'cancelled') \
                     OR EXISTS (SELECT 1 FROM cancel_requests \
                                 WHERE tenant = $1 AND run_id = $2 \
                                   AND command_id IN ('', coalesce($3, '')))",
                &[&tenant, &run_id, &command_id],
            )
            .await
            .during("cancel_requests", subject)?;
        Ok(row.get(0))
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
        let subject = || run_subject(tenant, run_id);
        let conn = self
            .pool
            .get()
            .await
            .during("runfleet_append_run_event", subject)?;
        let row = conn
            .query_one(
                "SELECT outcome, event FROM runfleet_append_run_event($1, $2, $3)",
                &[&tenant, &run_id, event],
            )
            .await
            .during("runfleet_append_run_event", subject)?;
        Ok(row.get(1))
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
        self.event_rows(
            tenant,
            run_id,
            "SELECT event FROM events WHERE tenant = $1 AND run_id = $2 AND seq BETWEEN $3 AND $4 \
             ORDER BY seq",
            &[(&first, Type::INT8), (&last, Type::INT8)],
        )
        .await
    }

    /// The stored events of one command before seq `before` (its earlier
    /// attempts'), the newest [`EARLIER_EVENTS`] of them, in order.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn earlier_attempt_events(
        &self,
        tenant: &str,
        run_id: &str,
        command_id: &str,
        before: i64,
    ) -> Result<Vec<Value>, DbError> {
        self.event_rows(
            tenant,
            run_id,
            "SELECT event FROM (SELECT seq, event FROM events \
               WHERE tenant = $1 AND run_id = $2 AND command_id = $3 AND seq < $4 \
               ORDER BY seq DESC LIMIT $5) earlier ORDER BY seq",
            &[
                (&command_id, Type::TEXT),
                (&before, Type::INT8),
                (&EARLIER_EVENTS, Type::INT8),
            ],
        )
        .await
    }

    /// The `event` column of `sql`'s rows, its parameters the run's tenant
    /// and id (`$1`, `$2`) and then `more`; typed, so one round trip (no
    /// statement prepared first).
    async fn event_rows(
        &self,
        tenant: &str,
        run_id: &str,
        sql: &str,
        more: &[(&(dyn tokio_postgres::types::ToSql + Sync), Type)],
    ) -> Result<Vec<Value>, DbError> {
        let subject = || run_subject(tenant, run_id);
        let conn = self
            .pool
            .get()
            .await
            .during("SELECT FROM events", subject)?;
        let mut params: Vec<(&(dyn tokio_postgres::types::ToSql + Sync), Type)> =
            vec![(&tenant, Type::TEXT), (&run_id, Type::TEXT)];
        params.extend_from_slice(more);
        let rows = conn
            .query_typed(sql, &params)
            .await
            .during("SELECT FROM events", subject)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// At most this many events of a command's earlier attempts are published again.
pub const EARLIER_EVENTS: i64 = 10_000;
