//! `dlq.show`: one stored dead letter.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::Api;
use super::error::{ApiError, no_dead_letter};

impl Api {
    /// `dlq.show`: the stored dead letter.
    pub(super) async fn dlq_show(&self, id: &str) -> Result<Value, ApiError> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT message, created_at, redriven_at FROM dead_letters WHERE dead_letter_id = $1",
                &[&id],
            )
            .await?
            .ok_or_else(|| no_dead_letter(id))?;
        Ok(json!({
            "dead_letter_id": id,
            "created_at": row.try_get::<_, DateTime<Utc>>(1)?,
            "redriven_at": row.try_get::<_, Option<DateTime<Utc>>>(2)?,
            "dead_letter": row.try_get::<_, Value>(0)?,
        }))
    }
}
