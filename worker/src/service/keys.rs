//! Per concurrency key: what waits, what runs, and the limit that applies,
//! read by `fleet.stats` and by the key gauges of `/metrics`
//! ([`crate::key_gauges`]).

use runfleet_schemas::api::KeyStats;
use tokio_postgres::GenericClient;

/// The busiest concurrency keys (at most 100), with their counts.
///
/// # Errors
/// The database's error.
pub(crate) async fn key_stats(
    client: &impl GenericClient,
) -> Result<Vec<KeyStats>, tokio_postgres::Error> {
    client
        .query(KEYS_SQL, &[])
        .await?
        .iter()
        .map(key_of)
        .collect()
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

fn key_of(row: &tokio_postgres::Row) -> Result<KeyStats, tokio_postgres::Error> {
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
