//! `limit.set`, `limit.list`, `limit.delete`: per-key concurrency limits,
//! rows of `concurrency_limits` (see `V10__concurrency_limits.sql`). The
//! journal applies them at every start; the releaser ([`crate::limits`])
//! lets waiting commands go as their keys gain room (all of them when a
//! limit is removed).

use runfleet_schemas::api::{
    LimitAnswer, LimitDeleteRequest, LimitList, LimitListRequest, LimitSetRequest,
};

use super::Api;
use super::error::ApiError;

/// The columns [`answer`] reads.
const COLUMNS: &str = "pattern, max_running, rate_per_second, updated_at";

fn answer(row: &tokio_postgres::Row, deleted: bool) -> Result<LimitAnswer, ApiError> {
    Ok(LimitAnswer {
        pattern: row.try_get(0)?,
        max_running: row
            .try_get::<_, Option<i32>>(1)?
            .and_then(|n| u32::try_from(n).ok()),
        rate_per_second: row.try_get(2)?,
        updated_at: row.try_get(3)?,
        deleted,
    })
}

impl Api {
    /// `limit.set`: sets or replaces a limit.
    pub(super) async fn limit_set(
        &self,
        request: LimitSetRequest,
    ) -> Result<LimitAnswer, ApiError> {
        let max_running = request
            .max_running
            .map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        let conn = self.pool.get().await?;
        let row = conn
            .query_one(
                &format!(
                    "INSERT INTO concurrency_limits (pattern, max_running, rate_per_second) \
                     VALUES ($1, $2, $3) \
                     ON CONFLICT (pattern) DO UPDATE \
                        SET max_running = $2, rate_per_second = $3, updated_at = now() \
                     RETURNING {COLUMNS}"
                ),
                &[&request.pattern, &max_running, &request.rate_per_second],
            )
            .await?;
        tracing::info!(pattern = %request.pattern, max_running = ?request.max_running, rate_per_second = ?request.rate_per_second, "concurrency limit set");
        answer(&row, false)
    }

    /// `limit.list`: every limit, by pattern.
    pub(super) async fn limit_list(
        &self,
        _request: LimitListRequest,
    ) -> Result<LimitList, ApiError> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                &format!("SELECT {COLUMNS} FROM concurrency_limits ORDER BY pattern"),
                &[],
            )
            .await?;
        let limits = rows
            .iter()
            .map(|row| answer(row, false))
            .collect::<Result<_, _>>()?;
        Ok(LimitList { limits })
    }

    /// `limit.delete`: removes a limit.
    pub(super) async fn limit_delete(
        &self,
        request: LimitDeleteRequest,
    ) -> Result<LimitAnswer, ApiError> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                &format!("DELETE FROM concurrency_limits WHERE pattern = $1 RETURNING {COLUMNS}"),
                &[&request.pattern],
            )
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no limit on {}", request.pattern)))?;
        tracing::info!(pattern = %request.pattern, "concurrency limit removed");
        answer(&row, true)
    }
}
