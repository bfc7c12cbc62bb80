//! `fleet.stats`: workers, commands, runs, dead letters and concurrency
//! keys, from one snapshot.

use std::collections::BTreeMap;
use std::time::Duration;

use runfleet_schemas::api::{
    DeadLetterCounts, FleetStats, FleetStatsRequest, RUN_STATUSES, WorkerSummary,
};

use super::Api;
use super::error::ApiError;

/// A worker seen within this long, and not stopped, is alive.
const ALIVE_WITHIN: Duration = Duration::from_secs(30);
/// Workers seen within this long are listed.
const LISTED_WITHIN: Duration = Duration::from_secs(24 * 60 * 60);
/// Command statuses (the `commands.status` CHECK), for stable statistics.
const COMMAND_STATUSES: [&str; 7] = [
    "pending",
    "acknowledged",
    "running",
    "completed",
    "failed",
    "cancelled",
    "timed-out",
];

impl Api {
    /// `fleet.stats`: workers, commands, runs and dead letters, from one snapshot.
    pub(super) async fn fleet_stats(
        &self,
        _request: FleetStatsRequest,
    ) -> Result<FleetStats, ApiError> {
        let mut conn = self.pool.get().await?;
        let tx = conn
            .build_transaction()
            .read_only(true)
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await?;
        let workers = tx
            .query(
                "SELECT w.worker_id, w.host, w.pid, w.version, w.started_at, w.last_seen, w.stopped_at, \
                        w.stopped_at IS NULL AND w.last_seen > now() - make_interval(secs => $1), \
                        (SELECT count(*) FROM commands c \
                          WHERE c.status = 'running' AND c.worker_id = w.worker_id) \
                   FROM workers w \
                  WHERE w.last_seen > now() - make_interval(secs => $2) \
                  ORDER BY w.worker_id",
                &[&ALIVE_WITHIN.as_secs_f64(), &LISTED_WITHIN.as_secs_f64()],
            )
            .await?;
        let mut listed = Vec::with_capacity(workers.len());
        for row in &workers {
            listed.push(WorkerSummary {
                worker_id: row.try_get(0)?,
                host: row.try_get(1)?,
                pid: row.try_get(2)?,
                version: row.try_get(3)?,
                started_at: row.try_get(4)?,
                last_seen: row.try_get(5)?,
                stopped_at: row.try_get(6)?,
                alive: row.try_get(7)?,
                in_flight: row.try_get(8)?,
            });
        }
        let commands = counts(
            &tx.query("SELECT status, count(*) FROM commands GROUP BY status", &[])
                .await?,
            &COMMAND_STATUSES,
        )?;
        let runs = counts(
            &tx.query("SELECT status, count(*) FROM runs GROUP BY status", &[])
                .await?,
            &RUN_STATUSES,
        )?;
        let dead = tx
            .query_one(
                "SELECT count(*) FILTER (WHERE redriven_at IS NULL), \
                        count(*) FILTER (WHERE redriven_at IS NOT NULL), now() \
                   FROM dead_letters",
                &[],
            )
            .await?;
        let keys = super::keys::key_stats(&tx).await?;
        let answer = FleetStats {
            at: dead.try_get(2)?,
            workers: listed,
            commands_by_status: commands,
            runs_by_status: runs,
            dead_letters: DeadLetterCounts {
                pending: dead.try_get(0)?,
                redriven: dead.try_get(1)?,
            },
            keys,
        };
        tx.commit().await?;
        Ok(answer)
    }
}

/// `(status, count)` rows as counts of every `known` status (0 when absent).
fn counts(rows: &[tokio_postgres::Row], known: &[&str]) -> Result<BTreeMap<String, i64>, ApiError> {
    let mut map: BTreeMap<String, i64> = known.iter().map(|s| ((*s).to_owned(), 0)).collect();
    for row in rows {
        map.insert(row.try_get(0)?, row.try_get(1)?);
    }
    Ok(map)
}
