//! Dead-lettering: the message, byte for byte, with its reason and delivery
//! history, stored in PostgreSQL first and then published on
//! `runfleet.dlq.<tenant>`; only then is the original terminated.

use async_nats::jetstream;
use runfleet_schemas::{
    DeadLetter, DeliveryRecord, FailureKind, PayloadEncoding, SchemaVersion, decode_value,
};

use super::{Delivery, Disposition, Retryable};
use crate::handler::Shared;
use crate::publisher::publish;
use crate::text::storable;

/// The largest payload a dead letter's stream copy carries.
const MAX_PUBLISHED_PAYLOAD: usize = 256 * 1024;

/// Dead-letters the delivered message and returns [`Disposition::Term`].
///
/// # Errors
/// [`Retryable`] when it could not be stored or published (the message stays).
pub(crate) async fn dead_letter(
    shared: &Shared,
    message: &jetstream::Message,
    delivery: &Delivery,
    reason: FailureKind,
    why: String,
) -> Result<Disposition, Retryable> {
    let why = shared.redactor.redact(&why).into_owned();
    tracing::warn!(reason = %reason, why = %why, "dead-lettering the message");
    let tenant = delivery.stored().tenant.to_owned();
    let (payload, payload_encoding) = PayloadEncoding::encode(&message.payload);
    let original_headers = message
        .headers
        .as_ref()
        .map(|headers| {
            headers
                .iter()
                .map(|(name, values)| {
                    (
                        shared.redactor.redact(name.as_ref()).into_owned(),
                        values
                            .iter()
                            .map(|v| shared.redactor.redact(v.as_str()).into_owned())
                            .collect(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let idempotency_key = message
        .headers
        .as_ref()
        .and_then(|h| h.get(runfleet_schemas::headers::MSG_ID))
        .map(|v| storable(runfleet_schemas::headers::idempotency_key_of(v.as_str())).into_owned());
    let mut deliveries = shared.journal.delivery_history(&delivery.stored()).await?;
    for record in &mut deliveries {
        record.outcome = shared.redactor.redact(&record.outcome).into_owned();
    }
    deliveries.push(DeliveryRecord {
        attempt: delivery.attempt,
        worker_id: shared.worker_id.clone(),
        at: chrono::Utc::now(),
        outcome: format!("{reason}: {why}"),
    });
    let letter = DeadLetter {
        schema: Default::default(),
        version: SchemaVersion,
        dead_letter_id: uuid::Uuid::now_v7().to_string(),
        tenant,
        reason,
        message: why,
        original_subject: storable(&delivery.subject).into_owned(),
        original_headers,
        payload,
        payload_encoding,
        idempotency_key,
        stream_sequence: delivery.stream_sequence,
        deliveries,
        dead_lettered_at: chrono::Utc::now(),
    };
    let stored = shared.journal.insert_dead_letter(&letter).await?;
    if let Some((tenant, run_id, command_id)) = command_of(delivery, &message.payload) {
        // A released copy dead-lettered waits no longer.
        shared
            .journal
            .forget_limited(tenant, run_id, &command_id)
            .await?;
    }
    shared
        .metrics
        .dead_lettered(letter.tenant.as_str(), reason.as_str());
    let mut stored: DeadLetter = decode_value(stored).unwrap_or(letter);
    // The stream's copy must fit NATS's payload limit; PostgreSQL keeps the whole.
    if stored.payload.len() > MAX_PUBLISHED_PAYLOAD {
        let end = crate::text::head(&stored.payload, MAX_PUBLISHED_PAYLOAD).len();
        stored.message = format!(
            "{} [this copy holds the first {end} of {} payload bytes; the dead_letters table in PostgreSQL has all of it]",
            stored.message,
            stored.payload.len()
        );
        stored.payload.truncate(end);
    }
    publish(&shared.jetstream, &stored, None).await?;
    Ok(Disposition::Term)
}

/// The tenant, run and command of a dead-lettered `command.create`, when
/// its subject and bytes name them.
fn command_of<'a>(delivery: &'a Delivery, payload: &[u8]) -> Option<(&'a str, &'a str, String)> {
    let parsed = runfleet_schemas::subjects::parse(&delivery.subject)?;
    if parsed.kind != runfleet_schemas::MessageKind::CommandCreate {
        return None;
    }
    let body: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let command_id = body.get("command_id")?.as_str()?.to_owned();
    Some((parsed.tenant, parsed.run_id?, command_id))
}
