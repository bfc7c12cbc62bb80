//! `command.get`: a command as received, its receipt and its journaled steps.

use runfleet_schemas::api::{CommandAnswer, CommandGetRequest};
use serde_json::Value;

use super::Api;
use super::error::ApiError;

impl Api {
    /// `command.get`: the command, its receipt and its journaled steps.
    pub(super) async fn command(
        &self,
        request: CommandGetRequest,
    ) -> Result<CommandAnswer, ApiError> {
        let CommandGetRequest {
            tenant,
            run_id,
            command_id,
        } = request;
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
        Ok(CommandAnswer {
            tenant,
            run_id,
            command_id,
            seq: row.try_get(0)?,
            kind: row.try_get(1)?,
            status: row.try_get(2)?,
            attempt: row.try_get(3)?,
            worker_id: row.try_get(4)?,
            fencing_token: row.try_get(5)?,
            idempotency_key: row.try_get(6)?,
            message: row.try_get(7)?,
            created_at: row.try_get(8)?,
            started_at: row.try_get(9)?,
            finished_at: row.try_get(10)?,
            receipt,
            steps,
        })
    }
}
