//! Dead letters and the delivery history they carry.

use super::*;
use crate::db::Context;

impl Journal {
    /// Stores a dead letter, once per stored message; returns the one stored.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn insert_dead_letter(&self, dead_letter: &DeadLetter) -> Result<Value, DbError> {
        let subject = || {
            format!(
                "dead letter {}, tenant {}",
                dead_letter.dead_letter_id, dead_letter.tenant
            )
        };
        let conn = self
            .pool
            .get()
            .await
            .during("INSERT INTO dead_letters", subject)?;
        let message =
            serde_json::to_value(dead_letter).map_err(|e| DbError::Unexpected(e.to_string()))?;
        conn.execute(
            "INSERT INTO dead_letters (dead_letter_id, tenant, reason, subject, stream_sequence, message) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (stream_sequence, subject) DO NOTHING",
            &[
                &dead_letter.dead_letter_id,
                &dead_letter.tenant,
                &dead_letter.reason.as_str(),
                &dead_letter.original_subject,
                &i64::try_from(dead_letter.stream_sequence).unwrap_or(i64::MAX),
                &message,
            ],
        )
        .await.during("INSERT INTO dead_letters", subject)?;
        let row = conn
            .query_one(
                "SELECT message FROM dead_letters WHERE stream_sequence = $1 AND subject = $2",
                &[
                    &i64::try_from(dead_letter.stream_sequence).unwrap_or(i64::MAX),
                    &dead_letter.original_subject,
                ],
            )
            .await
            .during("INSERT INTO dead_letters", subject)?;
        Ok(row.get(0))
    }

    /// Records a delivery that did not end its message (for dead letters' history).
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn log_delivery(
        &self,
        message: &StoredMessage<'_>,
        attempt: i64,
        worker_id: &str,
        outcome: &str,
    ) -> Result<(), DbError> {
        let subject = || format!("message {} of {}", message.sequence, message.stream);
        let conn = self
            .pool
            .get()
            .await
            .during("INSERT INTO delivery_log", subject)?;
        conn.execute(
            "INSERT INTO delivery_log (stream, stream_sequence, tenant, attempt, worker_id, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &message.stream,
                &i64::try_from(message.sequence).unwrap_or(i64::MAX),
                &message.tenant,
                &attempt,
                &worker_id,
                &outcome,
            ],
        )
        .await.during("INSERT INTO delivery_log", subject)?;
        Ok(())
    }

    /// The logged deliveries of a stored message, oldest first: only its
    /// own (stream, sequence and tenant all match).
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn delivery_history(
        &self,
        message: &StoredMessage<'_>,
    ) -> Result<Vec<DeliveryRecord>, DbError> {
        let subject = || format!("message {} of {}", message.sequence, message.stream);
        let conn = self
            .pool
            .get()
            .await
            .during("SELECT FROM delivery_log", subject)?;
        let rows = conn
            .query(
                "SELECT attempt, worker_id, at, outcome FROM delivery_log \
                 WHERE stream = $1 AND stream_sequence = $2 AND tenant = $3 \
                 ORDER BY attempt, at",
                &[
                    &message.stream,
                    &i64::try_from(message.sequence).unwrap_or(i64::MAX),
                    &message.tenant,
                ],
            )
            .await
            .during("SELECT FROM delivery_log", subject)?;
        Ok(rows
            .iter()
            .map(|r| DeliveryRecord {
                attempt: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0).max(1),
                worker_id: r.get(1),
                at: r.get(2),
                outcome: r.get(3),
            })
            .collect())
    }
}
