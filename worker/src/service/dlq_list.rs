//! `dlq.list`: dead letters, newest first.

use runfleet_schemas::api::{DeadLetterList, DeadLetterSummary, DlqListRequest};

use super::error::ApiError;
use super::{Api, bigint};

impl Api {
    /// `dlq.list`: dead letters, newest first.
    pub(super) async fn dlq_list(
        &self,
        request: DlqListRequest,
    ) -> Result<DeadLetterList, ApiError> {
        let limit = request.limit();
        let include_redriven = request.include_redriven.unwrap_or(false);
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                "SELECT dead_letter_id, tenant, reason, message ->> 'message', subject, created_at, \
                        redriven_at \
                   FROM dead_letters \
                  WHERE ($1::text IS NULL OR tenant = $1) AND ($2 OR redriven_at IS NULL) \
                  ORDER BY created_at DESC, dead_letter_id DESC LIMIT $3",
                &[&request.tenant, &include_redriven, &bigint(limit + 1)],
            )
            .await?;
        let more = rows.len() as u64 > limit;
        let mut dead_letters = Vec::with_capacity(rows.len());
        for row in rows
            .iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
        {
            dead_letters.push(DeadLetterSummary {
                dead_letter_id: row.try_get(0)?,
                tenant: row.try_get(1)?,
                reason: row.try_get(2)?,
                message: row.try_get(3)?,
                subject: row.try_get(4)?,
                created_at: row.try_get(5)?,
                redriven_at: row.try_get(6)?,
            });
        }
        Ok(DeadLetterList { more, dead_letters })
    }
}
