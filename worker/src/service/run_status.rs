//! `run.status`: a run and its most recent commands, in seq order.

use runfleet_schemas::api::{CommandSummary, RunStatusAnswer, RunStatusRequest};

use super::Api;
use super::error::{ApiError, no_run};

/// `run.status` lists at most this many (most recent) commands.
const MAX_COMMANDS: i64 = 1000;

impl Api {
    /// `run.status`: the run and its (last 1000) commands.
    pub(super) async fn run_status(
        &self,
        request: RunStatusRequest,
    ) -> Result<RunStatusAnswer, ApiError> {
        let RunStatusRequest { tenant, run_id } = request;
        let conn = self.pool.get().await?;
        let run = conn
            .query_opt(
                "SELECT r.status, r.backend_profile, r.project, r.session_id, r.failure_kind, \
                        r.status_reason, r.next_seq, r.spent, coalesce(r.spec -> 'budgets', '{}'::jsonb), \
                        r.created_at, r.updated_at, r.lease_holder, r.lease_expires_at, \
                        (SELECT count(*) FROM commands c WHERE c.tenant = r.tenant AND c.run_id = r.run_id), \
                        r.spec \
                   FROM runs r WHERE r.tenant = $1 AND r.run_id = $2",
                &[&tenant, &run_id],
            )
            .await?
            .ok_or_else(|| no_run(&tenant, &run_id))?;
        let rows = conn
            .query(
                "SELECT * FROM ( \
                   SELECT c.command_id, c.seq, c.kind, c.status, c.attempt, c.worker_id, \
                          c.started_at, c.finished_at, j.result -> 'failure' \
                     FROM commands c \
                     LEFT JOIN journal j ON j.tenant = c.tenant AND j.run_id = c.run_id \
                                        AND j.command_id = c.command_id AND j.step = 'receipt' \
                    WHERE c.tenant = $1 AND c.run_id = $2 \
                    ORDER BY c.seq DESC LIMIT $3) recent \
                 ORDER BY 2",
                &[&tenant, &run_id, &MAX_COMMANDS],
            )
            .await?;
        let mut commands = Vec::with_capacity(rows.len());
        for row in &rows {
            commands.push(CommandSummary {
                command_id: row.try_get(0)?,
                seq: row.try_get(1)?,
                kind: row.try_get(2)?,
                status: row.try_get(3)?,
                attempt: row.try_get(4)?,
                worker_id: row.try_get(5)?,
                started_at: row.try_get(6)?,
                finished_at: row.try_get(7)?,
                failure: row.try_get(8)?,
            });
        }
        Ok(RunStatusAnswer {
            tenant,
            run_id,
            status: run.try_get(0)?,
            profile: run.try_get(1)?,
            project: run.try_get(2)?,
            session_id: run.try_get(3)?,
            failure_kind: run.try_get(4)?,
            status_reason: run.try_get(5)?,
            next_seq: run.try_get(6)?,
            spent: run.try_get(7)?,
            budgets: run.try_get(8)?,
            created_at: run.try_get(9)?,
            updated_at: run.try_get(10)?,
            lease_holder: run.try_get(11)?,
            lease_expires_at: run.try_get(12)?,
            commands_total: run.try_get(13)?,
            spec: without_credentials(run.try_get(14)?),
            commands,
        })
    }
}

/// The run's `run.create` as the API shows it: credential patterns (a git
/// URL's `user:token@`, credential-named keys) redacted, as in everything
/// the fleet publishes.
fn without_credentials(mut spec: serde_json::Value) -> serde_json::Value {
    crate::redact::Redactor::new(Vec::<String>::new()).redact_value(&mut spec);
    spec
}
