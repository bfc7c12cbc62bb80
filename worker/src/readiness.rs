//! What `/readyz` checks: NATS connected, PostgreSQL reachable, the
//! schema at the version this build expects, and every background task
//! of the worker still running. Details name the dependency
//! and the cause, never a URL or credential.

use std::time::Duration;

use futures::future::BoxFuture;

use crate::db::Pool;
use crate::http::{DependencyStatus, Readiness};
use crate::setup;

/// How long one dependency check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The worker's dependencies.
#[derive(Debug, Clone)]
pub struct WorkerReadiness {
    /// The NATS connection.
    pub client: async_nats::Client,
    /// The journal's pool.
    pub pool: Pool,
    /// Cancelled when the worker starts shutting down (it is then not ready
    /// for new work while it drains).
    pub stopping: tokio_util::sync::CancellationToken,
    /// The worker's background tasks: one that died makes it not ready.
    pub tasks: crate::tasks::TaskTree,
}

impl Readiness for WorkerReadiness {
    fn check(&self) -> BoxFuture<'_, Vec<DependencyStatus>> {
        Box::pin(async move {
            let nats = match self.client.connection_state() {
                async_nats::connection::State::Connected => status("nats", true, "connected"),
                other => status("nats", false, &format!("{other:?}").to_lowercase()),
            };
            let applied =
                tokio::time::timeout(CHECK_TIMEOUT, setup::applied_migration_version(&self.pool))
                    .await;
            let expected = setup::expected_migration_version();
            let (postgres, migrations) = match applied {
                Err(_) => (
                    status("postgres", false, "no answer within 2s"),
                    status("migrations", false, "unknown (PostgreSQL did not answer)"),
                ),
                Ok(Err(err)) => (
                    status("postgres", false, &db_cause(&err)),
                    status("migrations", false, "unknown (PostgreSQL is unreachable)"),
                ),
                Ok(Ok(version)) => (
                    status("postgres", true, "reachable"),
                    status(
                        "migrations",
                        version == expected,
                        &format!("at version {version}, this build expects {expected}"),
                    ),
                ),
            };
            let mut checks = vec![nats, postgres, migrations];
            let died = self.tasks.died();
            if !died.is_empty() {
                checks.push(status(
                    "tasks",
                    false,
                    &format!("background task stopped (see the log): {}", died.join(", ")),
                ));
            }
            if self.stopping.is_cancelled() {
                checks.push(status(
                    "worker",
                    false,
                    "shutting down: draining in-flight commands",
                ));
            }
            checks
        })
    }
}

fn status(name: &str, ok: bool, detail: &str) -> DependencyStatus {
    DependencyStatus {
        name: name.to_owned(),
        ok,
        detail: detail.to_owned(),
    }
}

/// The database error's kind, without anything that could carry a URL.
fn db_cause(err: &crate::db::DbError) -> String {
    match err.root() {
        crate::db::DbError::Postgres(err) => err.as_db_error().map_or_else(
            || "connection failed".to_owned(),
            |db| db.message().to_owned(),
        ),
        crate::db::DbError::Pool(_) => "no pooled connection in time".to_owned(),
        crate::db::DbError::Tls(_) => "TLS set-up failed".to_owned(),
        crate::db::DbError::Unexpected(_)
        | crate::db::DbError::UnknownOutcome { .. }
        | crate::db::DbError::Call { .. } => "unexpected answer".to_owned(),
    }
}
