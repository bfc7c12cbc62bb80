//! Worker registrations (`workers`): who runs, since when, last seen.

use super::*;
use crate::db::Context;

impl Journal {
    /// Registers (or re-registers) this worker.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn register_worker(&self, worker_id: &str, host: &str) -> Result<(), DbError> {
        let subject = || format!("worker {worker_id}");
        let conn = self
            .pool
            .get()
            .await
            .during("INSERT INTO workers", subject)?;
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
        .await
        .during("INSERT INTO workers", subject)?;
        Ok(())
    }

    /// Updates this worker's `last_seen` (and `stopped_at` when it stops).
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn touch_worker(&self, worker_id: &str, stopped: bool) -> Result<(), DbError> {
        let subject = || format!("worker {worker_id}");
        let conn = self.pool.get().await.during("UPDATE workers", subject)?;
        conn.execute(
            "UPDATE workers SET last_seen = now(), \
             stopped_at = CASE WHEN $2 THEN now() ELSE NULL END WHERE worker_id = $1",
            &[&worker_id, &stopped],
        )
        .await
        .during("UPDATE workers", subject)?;
        Ok(())
    }
}
