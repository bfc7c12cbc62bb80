//! Leases: a claim's lease renewed with each heartbeat, or given up early
//! (shutdown, retry), always under the claim's fencing token.

use super::*;
use crate::db::{Context, command_subject, run_subject};

impl Journal {
    /// Extends a claim's lease, and says whether the command should go on.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn renew_lease(
        &self,
        tenant: &str,
        run_id: &str,
        command_id: &str,
        fencing_token: i64,
        lease: Duration,
    ) -> Result<Renewal, DbError> {
        let subject = || command_subject(tenant, run_id, command_id);
        let conn = self
            .pool
            .get()
            .await
            .during("runfleet_renew_lease", subject)?;
        let row = conn
            .query_one(
                "SELECT runfleet_renew_lease($1, $2, $3, $4, $5)",
                &[
                    &tenant,
                    &run_id,
                    &command_id,
                    &fencing_token,
                    &millis(lease),
                ],
            )
            .await
            .during("runfleet_renew_lease", subject)?;
        Ok(match row.try_get::<_, &str>(0)? {
            "ok" => Renewal::Renewed,
            "cancelled" => Renewal::Cancelled,
            "lost" => Renewal::Lost,
            other => {
                return Err(DbError::unknown_outcome(
                    "runfleet_renew_lease",
                    other,
                    "ok, cancelled, lost",
                ));
            }
        })
    }

    /// Gives a claim up early (shutdown, retry), so the next delivery need not wait for the lease.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn release_lease(
        &self,
        tenant: &str,
        run_id: &str,
        fencing_token: i64,
    ) -> Result<(), DbError> {
        let subject = || run_subject(tenant, run_id);
        let conn = self
            .pool
            .get()
            .await
            .during("runfleet_release_lease", subject)?;
        conn.execute(
            "SELECT runfleet_release_lease($1, $2, $3)",
            &[&tenant, &run_id, &fencing_token],
        )
        .await
        .during("runfleet_release_lease", subject)?;
        Ok(())
    }
}
