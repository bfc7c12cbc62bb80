//! `dlq.show`: one stored dead letter.

use runfleet_schemas::api::{DeadLetterShown, DlqShowRequest};

use super::Api;
use super::error::{ApiError, no_dead_letter};

impl Api {
    /// `dlq.show`: the stored dead letter.
    pub(super) async fn dlq_show(
        &self,
        request: DlqShowRequest,
    ) -> Result<DeadLetterShown, ApiError> {
        let id = request.dead_letter_id;
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT message, created_at, redriven_at FROM dead_letters WHERE dead_letter_id = $1",
                &[&id],
            )
            .await?
            .ok_or_else(|| no_dead_letter(&id))?;
        Ok(DeadLetterShown {
            created_at: row.try_get(1)?,
            redriven_at: row.try_get(2)?,
            dead_letter: row.try_get(0)?,
            dead_letter_id: id,
        })
    }
}
