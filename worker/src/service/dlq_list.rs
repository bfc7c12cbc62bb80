//! `dlq.list`: dead letters, newest first.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::Api;
use super::error::ApiError;
use super::fields::bigint;

impl Api {
    /// `dlq.list`: dead letters, newest first.
    pub(super) async fn dlq_list(
        &self,
        tenant: Option<&str>,
        limit: u64,
        include_redriven: bool,
    ) -> Result<Value, ApiError> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                "SELECT dead_letter_id, tenant, reason, message ->> 'message', subject, created_at, \
                        redriven_at \
                   FROM dead_letters \
                  WHERE ($1::text IS NULL OR tenant = $1) AND ($2 OR redriven_at IS NULL) \
                  ORDER BY created_at DESC, dead_letter_id DESC LIMIT $3",
                &[&tenant, &include_redriven, &bigint(limit + 1)],
            )
            .await?;
        let more = rows.len() as u64 > limit;
        let mut letters = Vec::with_capacity(rows.len());
        for row in rows
            .iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
        {
            letters.push(json!({
                "dead_letter_id": row.try_get::<_, String>(0)?,
                "tenant": row.try_get::<_, String>(1)?,
                "reason": row.try_get::<_, String>(2)?,
                "message": row.try_get::<_, Option<String>>(3)?,
                "subject": row.try_get::<_, String>(4)?,
                "created_at": row.try_get::<_, DateTime<Utc>>(5)?,
                "redriven_at": row.try_get::<_, Option<DateTime<Utc>>>(6)?,
            }));
        }
        Ok(json!({ "more": more, "dead_letters": letters }))
    }
}
