//! Journaled steps: a command's named units of work, written once under the
//! claim's fencing token and read back by a resumed execution.

use super::*;
use crate::db::{Context, command_subject};

impl Journal {
    /// The journaled result of a step of a command, if it has one.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn step_result(
        &self,
        tenant: &str,
        run_id: &str,
        command_id: &str,
        step: &str,
    ) -> Result<Option<Value>, DbError> {
        let subject = || {
            format!(
                "step {step:?} of {}",
                command_subject(tenant, run_id, command_id)
            )
        };
        let conn = self
            .pool
            .get()
            .await
            .during("SELECT FROM journal", subject)?;
        let row = conn
            .query_opt(
                "SELECT result FROM journal WHERE tenant = $1 AND run_id = $2 AND command_id = $3 \
                 AND step = 'step:' || $4",
                &[&tenant, &run_id, &command_id, &step],
            )
            .await
            .during("SELECT FROM journal", subject)?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Journals a step's result write-once under the claim's token; returns
    /// the stored result (an earlier one wins), or `None` when the claim was
    /// superseded and nothing was written.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_step(
        &self,
        tenant: &str,
        run_id: &str,
        command_id: &str,
        step: &str,
        attempt: i64,
        fencing_token: i64,
        result: &Value,
    ) -> Result<Option<Value>, DbError> {
        let subject = || {
            format!(
                "step {step:?} of {}",
                command_subject(tenant, run_id, command_id)
            )
        };
        let conn = self
            .pool
            .get()
            .await
            .during("runfleet_record_step", subject)?;
        let row = conn
            .query_one(
                "SELECT outcome, result FROM runfleet_record_step($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &tenant,
                    &run_id,
                    &command_id,
                    &step,
                    &attempt,
                    &fencing_token,
                    result,
                ],
            )
            .await
            .during("runfleet_record_step", subject)?;
        Ok(match row.get::<_, &str>(0) {
            "fenced" => None,
            _ => row.get(1),
        })
    }
}
