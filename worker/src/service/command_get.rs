//! `command.get`: a command as received, its receipt and its journaled steps.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::Api;
use super::error::ApiError;

impl Api {
    /// `command.get`: the command, its receipt and its journaled steps.
    pub(super) async fn command(
        &self,
        tenant: &str,
        run_id: &str,
        command_id: &str,
    ) -> Result<Value, ApiError> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT seq, kind, status, attempt, worker_id, fencing_token, idempotency_key, \
                        message, created_at, started_at, finished_at \
                   FROM commands WHERE tenant = $1 AND run_id = $2 AND command_id = $3",
                &[&tenant, &run_id, &command_id],
            )
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "run {run_id} of tenant {tenant} has no command {command_id}"
                ))
            })?;
        let journal = conn
            .query(
                "SELECT step, CASE WHEN step = 'receipt' THEN result END FROM journal \
                  WHERE tenant = $1 AND run_id = $2 AND command_id = $3 \
                  ORDER BY created_at, step",
                &[&tenant, &run_id, &command_id],
            )
            .await?;
        let mut steps = Vec::with_capacity(journal.len());
        let mut receipt = None;
        for entry in &journal {
            let step: String = entry.try_get(0)?;
            if step == "receipt" {
                receipt = entry.try_get::<_, Option<Value>>(1)?;
            }
            steps.push(step);
        }
        Ok(json!({
            "tenant": tenant,
            "run_id": run_id,
            "command_id": command_id,
            "seq": row.try_get::<_, i64>(0)?,
            "kind": row.try_get::<_, String>(1)?,
            "status": row.try_get::<_, String>(2)?,
            "attempt": row.try_get::<_, Option<i64>>(3)?,
            "worker_id": row.try_get::<_, Option<String>>(4)?,
            "fencing_token": row.try_get::<_, Option<i64>>(5)?,
            "idempotency_key": row.try_get::<_, String>(6)?,
            "message": row.try_get::<_, Value>(7)?,
            "created_at": row.try_get::<_, DateTime<Utc>>(8)?,
            "started_at": row.try_get::<_, Option<DateTime<Utc>>>(9)?,
            "finished_at": row.try_get::<_, Option<DateTime<Utc>>>(10)?,
            "receipt": receipt,
            "steps": steps,
        }))
    }
}
