//! `fleet.stats`: workers, commands, runs, dead letters and concurrency
//! keys, from one snapshot.

use std::collections::BTreeMap;
use std::time::Duration;

use runfleet_schemas::api::{
    DeadLetterCounts, FleetStats, FleetStatsRequest, KeyStats, WorkerSummary,
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
        let keys = tx
            .query(KEYS_SQL, &[])
            .await?
            .iter()
            .map(key_stats)
            .collect::<Result<_, _>>()?;
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

/// Per concurrency key: pending (recorded, not started, not limited),
/// delayed, running (a live claim) and limited commands, its limit, and
/// whether its tenant is diverted for fairness.
const KEYS_SQL: &str = "\
WITH pending AS (
    SELECT runfleet_run_key(r.tenant, r.spec) AS key, count(*) AS n
      FROM commands c JOIN runs r ON r.tenant = c.tenant AND r.run_id = c.run_id
     WHERE c.status = 'acknowledged'
       AND NOT EXISTS (SELECT 1 FROM limited_commands w
                        WHERE w.tenant = c.tenant AND w.run_id = c.run_id
                          AND w.command_id = c.command_id)
     GROUP BY 1
), delayed AS (
    SELECT runfleet_run_key(r.tenant, r.spec) AS key, count(*) AS n
      FROM delayed_commands d JOIN runs r ON r.tenant = d.tenant AND r.run_id = d.run_id
     GROUP BY 1
), running AS (
    SELECT runfleet_run_key(tenant, spec) AS key, count(*) AS n FROM runs
     WHERE lease_holder IS NOT NULL AND lease_expires_at > now()
     GROUP BY 1
), limited AS (
    SELECT key, count(*) AS n FROM limited_commands GROUP BY 1
), keys AS (
    SELECT key FROM pending UNION SELECT key FROM delayed UNION SELECT key FROM running
    UNION SELECT key FROM limited
    UNION SELECT pattern FROM concurrency_limits WHERE strpos(pattern, '*') = 0
)
SELECT k.key, coalesce(p.n, 0), coalesce(d.n, 0), coalesce(ru.n, 0), coalesce(l.n, 0),
       lim.pattern, lim.max_running, lim.rate_per_second,
       runfleet_fair_diverted(split_part(k.key, ':', 2))
  FROM keys k
  LEFT JOIN pending p ON p.key = k.key
  LEFT JOIN delayed d ON d.key = k.key
  LEFT JOIN running ru ON ru.key = k.key
  LEFT JOIN limited l ON l.key = k.key
  LEFT JOIN LATERAL runfleet_limit_of(k.key) lim ON true
 ORDER BY coalesce(p.n, 0) + coalesce(d.n, 0) + coalesce(ru.n, 0) + coalesce(l.n, 0) DESC, k.key
 LIMIT 100";

fn key_stats(row: &tokio_postgres::Row) -> Result<KeyStats, ApiError> {
    Ok(KeyStats {
        key: row.try_get(0)?,
        pending: row.try_get(1)?,
        delayed: row.try_get(2)?,
        running: row.try_get(3)?,
        limited: row.try_get(4)?,
        limit: row.try_get(5)?,
        max_running: row
            .try_get::<_, Option<i32>>(6)?
            .and_then(|n| u32::try_from(n).ok()),
        rate_per_second: row.try_get(7)?,
        diverted: row.try_get(8)?,
    })
}

/// `(status, count)` rows as counts of every `known` status (0 when absent).
fn counts(rows: &[tokio_postgres::Row], known: &[&str]) -> Result<BTreeMap<String, i64>, ApiError> {
    let mut map: BTreeMap<String, i64> = known.iter().map(|s| ((*s).to_owned(), 0)).collect();
    for row in rows {
        map.insert(row.try_get(0)?, row.try_get(1)?);
    }
    Ok(map)
}
