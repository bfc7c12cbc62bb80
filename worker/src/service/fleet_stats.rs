//! `fleet.stats`: workers, commands, runs and dead letters, from one snapshot.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

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
/// Run statuses (the `runs.status` CHECK), for stable statistics.
const RUN_STATUSES: [&str; 6] = [
    "pending",
    "claimed",
    "completed",
    "failed",
    "blocked",
    "cancelled",
];

impl Api {
    /// `fleet.stats`: workers, commands, runs and dead letters, from one snapshot.
    pub(super) async fn fleet_stats(&self) -> Result<Value, ApiError> {
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
            listed.push(json!({
                "worker_id": row.try_get::<_, String>(0)?,
                "host": row.try_get::<_, String>(1)?,
                "pid": row.try_get::<_, i32>(2)?,
                "version": row.try_get::<_, String>(3)?,
                "started_at": row.try_get::<_, DateTime<Utc>>(4)?,
                "last_seen": row.try_get::<_, DateTime<Utc>>(5)?,
                "stopped_at": row.try_get::<_, Option<DateTime<Utc>>>(6)?,
                "alive": row.try_get::<_, bool>(7)?,
                "in_flight": row.try_get::<_, i64>(8)?,
            }));
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
        let answer = json!({
            "at": dead.try_get::<_, DateTime<Utc>>(2)?,
            "workers": listed,
            "commands_by_status": commands,
            "runs_by_status": runs,
            "dead_letters": {
                "pending": dead.try_get::<_, i64>(0)?,
                "redriven": dead.try_get::<_, i64>(1)?,
            },
        });
        tx.commit().await?;
        Ok(answer)
    }
}

/// `(status, count)` rows as an object listing every `known` status.
fn counts(rows: &[tokio_postgres::Row], known: &[&str]) -> Result<Value, ApiError> {
    let mut map: Map<String, Value> = known.iter().map(|s| ((*s).to_owned(), json!(0))).collect();
    for row in rows {
        map.insert(row.try_get(0)?, json!(row.try_get::<_, i64>(1)?));
    }
    Ok(Value::Object(map))
}
