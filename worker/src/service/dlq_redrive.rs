//! `dlq.redrive`: a dead letter's original message published again (see
//! the service's docs, *Re-driving*).

use async_nats::{HeaderMap, HeaderName, HeaderValue};
use chrono::{DateTime, Utc};
use runfleet_schemas::api::{DlqRedriveRequest, Redriven};
use runfleet_schemas::{DeadLetter, headers};

use super::Api;
use super::error::{ApiError, no_dead_letter};

impl Api {
    /// `dlq.redrive`: publishes the original message again (see the module docs).
    pub(super) async fn dlq_redrive(
        &self,
        request: DlqRedriveRequest,
    ) -> Result<Redriven, ApiError> {
        let id = request.dead_letter_id.as_str();
        let mut conn = self.pool.get().await?;
        // The row lock serializes concurrent redrives of this dead letter.
        let tx = conn.transaction().await?;
        let row = tx
            .query_opt(
                "SELECT message, redriven_at FROM dead_letters WHERE dead_letter_id = $1 FOR UPDATE",
                &[&id],
            )
            .await?
            .ok_or_else(|| no_dead_letter(id))?;
        if let Some(at) = row.try_get::<_, Option<DateTime<Utc>>>(1)? {
            return Err(ApiError::BadRequest(format!(
                "dead letter {id} was already re-driven at {}",
                at.to_rfc3339()
            )));
        }
        let letter: DeadLetter = serde_json::from_value(row.try_get(0)?).map_err(|err| {
            ApiError::Internal(format!(
                "dead letter {id} is stored in an unknown shape: {err}"
            ))
        })?;
        let payload = letter.original_bytes().map_err(|err| {
            ApiError::Internal(format!(
                "dead letter {id} has a payload that is not base64: {err}"
            ))
        })?;
        let subject = letter.original_subject.clone();
        let publish_failed = |err: String| {
            tracing::warn!(dead_letter.id = id, msg.subject = %subject, error = %err, "redrive not stored");
            ApiError::Internal(format!(
                "JetStream did not store the re-driven message on {subject}: {err}"
            ))
        };
        let ack = self
            .jetstream
            .publish_with_headers(
                subject.clone(),
                redrive_headers(id, &letter)?,
                payload.into(),
            )
            .await
            .map_err(|err| publish_failed(err.to_string()))?
            .await
            .map_err(|err| publish_failed(err.to_string()))?;
        let redriven_at: DateTime<Utc> = tx
            .query_one(
                "UPDATE dead_letters SET redriven_at = now() WHERE dead_letter_id = $1 \
                 RETURNING redriven_at",
                &[&id],
            )
            .await?
            .try_get(0)?;
        tx.commit().await?;
        tracing::info!(
            dead_letter.id = id,
            msg.subject = %subject,
            stream.seq = ack.sequence,
            duplicate = ack.duplicate,
            "dead letter re-driven"
        );
        Ok(Redriven {
            dead_letter_id: id.to_owned(),
            subject,
            stream: ack.stream,
            sequence: ack.sequence,
            duplicate: ack.duplicate,
            redriven_at,
        })
    }
}

/// The headers of a re-driven message: the original ones, except
/// `Nats-Msg-Id` (→ `redrive:<id>`) and `Nats-Expected-*` (dropped).
fn redrive_headers(id: &str, letter: &DeadLetter) -> Result<HeaderMap, ApiError> {
    let unusable = |what: &str| {
        ApiError::Internal(format!(
            "dead letter {id} cannot be re-driven: its stored {what} is not a valid NATS header"
        ))
    };
    let mut map = HeaderMap::new();
    for (name, values) in &letter.original_headers {
        let lower = name.to_ascii_lowercase();
        if lower == headers::MSG_ID.to_ascii_lowercase() || lower.starts_with("nats-expected-") {
            continue;
        }
        let header: HeaderName = name
            .parse()
            .map_err(|_| unusable(&format!("header name {name:?}")))?;
        for value in values {
            let value: HeaderValue = value
                .parse()
                .map_err(|_| unusable(&format!("value of {name}")))?;
            map.append(header.clone(), value);
        }
    }
    let msg_id: HeaderValue = format!("redrive:{id}")
        .parse()
        .map_err(|_| unusable("dead letter id"))?;
    map.insert(headers::MSG_ID, msg_id);
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redrive_replaces_the_msg_id_and_keeps_the_rest() {
        let letter: DeadLetter = serde_json::from_value(json!({
            "schema": "dead-letter", "version": 1, "dead_letter_id": "d1", "tenant": "acme",
            "reason": "run-not-found", "message": "no run", "original_subject": "runfleet.cmd.acme.r1",
            "original_headers": {
                "Nats-Msg-Id": ["cmd:r1:1~0123456789abcdef"],
                "Runfleet-Schema": ["command.create"],
                "Nats-Expected-Stream": ["RUNFLEET_WORK"],
            },
            "payload": "{}", "payload_encoding": "utf8", "stream_sequence": 7,
            "deliveries": [], "dead_lettered_at": "2025-01-01T00:00:00Z",
        }))
        .unwrap();
        let map = redrive_headers("d1", &letter).unwrap();
        assert_eq!(map.get(headers::MSG_ID).unwrap().as_str(), "redrive:d1");
        assert_eq!(map.get(headers::SCHEMA).unwrap().as_str(), "command.create");
        assert!(map.get("Nats-Expected-Stream").is_none());
    }
}
