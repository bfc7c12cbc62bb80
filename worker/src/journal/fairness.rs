//! Fairness between tenants (see `V11__fair_shares.sql`): one worker at a
//! time measures each tenant's backlog and PostgreSQL decides which
//! tenants are diverted (their commands wait in `limited_commands` and are
//! released a window at a time) while others have work waiting.

use super::Journal;
use crate::db::{Context, DbError};

/// A tenant diverted now, and its backlog when measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diverted {
    /// The tenant.
    pub tenant: String,
    /// Its messages in the work stream plus its commands waiting in `limited_commands`.
    pub backlog: i64,
}

/// How diversion is decided.
#[derive(Debug, Clone, Copy)]
pub struct FairShare {
    /// A tenant with at least this backlog is diverted while others wait.
    pub share: i64,
    /// How long after other tenants last had work waiting diversion lasts.
    pub linger_ms: i64,
}

impl Journal {
    /// Whether `worker` measures the backlogs now (one worker of the fleet
    /// every `every_ms`).
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn fair_turn(&self, worker: &str, every_ms: i64) -> Result<bool, DbError> {
        const CALL: &str = "runfleet_fair_turn";
        let fleet = || "fair shares".to_owned();
        let conn = self.pool.get().await.during(CALL, fleet)?;
        let row = conn
            .query_one("SELECT runfleet_fair_turn($1, $2)", &[&worker, &every_ms])
            .await
            .during(CALL, fleet)?;
        row.try_get(0).during(CALL, fleet)
    }

    /// Decides the diverted tenants from each tenant's messages in the
    /// work stream (`stream`: tenant and count) and its waiting commands.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn fair_divert(
        &self,
        stream: &[(String, i64)],
        rule: FairShare,
    ) -> Result<Vec<Diverted>, DbError> {
        const CALL: &str = "runfleet_fair_divert";
        let fleet = || "fair shares".to_owned();
        let tenants: Vec<&str> = stream.iter().map(|(tenant, _)| tenant.as_str()).collect();
        let counts: Vec<i64> = stream.iter().map(|(_, count)| *count).collect();
        let conn = self.pool.get().await.during(CALL, fleet)?;
        let rows = conn
            .query(
                "SELECT tenant, backlog FROM runfleet_fair_divert($1, $2, $3, $4)",
                &[&tenants, &counts, &rule.share, &rule.linger_ms],
            )
            .await
            .during(CALL, fleet)?;
        rows.iter()
            .map(|row| {
                Ok(Diverted {
                    tenant: row.try_get(0)?,
                    backlog: row.try_get(1)?,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .during(CALL, fleet)
    }

    /// The tenants diverted now (none while the set is stale: decided
    /// more than five seconds ago).
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn diverted_tenants(&self) -> Result<Vec<String>, DbError> {
        const CALL: &str = "SELECT FROM fair_tenants";
        let fleet = || "fair shares".to_owned();
        let conn = self.pool.get().await.during(CALL, fleet)?;
        let rows = conn
            .query(
                "SELECT tenant FROM fair_tenants WHERE runfleet_fair_diverted(tenant)",
                &[],
            )
            .await
            .during(CALL, fleet)?;
        rows.iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, tokio_postgres::Error>>()
            .during(CALL, fleet)
    }
}
