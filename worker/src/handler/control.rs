//! `control.cancel`: store the cancel request, then stop the execution
//! wherever it runs.
//!
//! Control messages come from their own stream through the durable pull
//! consumer `runfleet-control`; one worker handles each. The request is
//! stored in PostgreSQL first (so a command cancelled before it starts never
//! runs, and a cancelled run refuses its pending commands with `cancelled`
//! receipts), then broadcast to every worker, which stops matching running
//! commands at once. Waiting commands of the run are woken so they see it.

use async_nats::jetstream::{self, AckKind};
use runfleet_schemas::{ControlCancel, FailureKind, decode, subjects};
use tracing::Instrument;

use super::{Disposition, dead_letter, delivery_of, retry_later, settle, subject_mismatch};
use crate::worker::Shared;

/// Handles one control message to the end.
pub(crate) async fn handle(shared: &Shared, message: jetstream::Message) {
    let Some(delivery) = delivery_of(&message) else {
        return;
    };
    let span = tracing::info_span!(
        "control",
        msg.subject = %delivery.subject,
        stream.seq = delivery.stream_sequence,
        attempt = delivery.attempt,
        worker.id = %shared.worker_id,
    );
    crate::telemetry::set_parent(
        &span,
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(runfleet_schemas::headers::TRACEPARENT))
            .map(|v| v.as_str()),
    );
    async {
        let size = message.payload.len();
        let checked = if size > shared.config.max_payload {
            Err((
                FailureKind::PayloadTooLarge,
                format!(
                    "the message is {size} bytes; this fleet accepts at most {} (max_payload)",
                    shared.config.max_payload
                ),
            ))
        } else {
            match subjects::parse(&delivery.subject) {
                None => Err(format!("{} is not a runfleet subject", delivery.subject)),
                Some(parsed) => decode::<ControlCancel>(&message.payload)
                    .map_err(|err| err.to_string())
                    .and_then(|cancel| {
                        match subject_mismatch(
                            &parsed,
                            cancel.tenant.as_str(),
                            cancel.run_id.as_str(),
                        ) {
                            Some(why) => Err(why),
                            None => Ok(cancel),
                        }
                    }),
            }
            .map_err(|why| (FailureKind::SchemaInvalid, why))
        };
        let outcome = match checked {
            Ok(cancel) => apply(shared, &cancel)
                .await
                .map(|()| Disposition::Ack)
                .map_err(super::Retryable::from),
            Err((kind, why)) => dead_letter(shared, &message, &delivery, kind, why).await,
        };
        let mut disposition = match outcome {
            Ok(disposition) => disposition,
            Err(err) => retry_later(shared, &delivery, &err.to_string()).await,
        };
        if matches!(disposition, Disposition::Nak(_)) && delivery.attempt >= shared.max_deliver() {
            let why = format!("delivered {} times without an outcome", delivery.attempt);
            if let Ok(terminal) =
                dead_letter(shared, &message, &delivery, FailureKind::MaxDeliveries, why).await
            {
                disposition = terminal;
            }
        }
        settle(&message, &delivery, disposition).await;
    }
    .instrument(span)
    .await;
}

async fn apply(shared: &Shared, cancel: &ControlCancel) -> Result<(), crate::db::DbError> {
    let (tenant, run_id) = (cancel.tenant.as_str(), cancel.run_id.as_str());
    let command_id = cancel.command_id.as_ref().map(|c| c.as_str());
    let (outcome, detail) = shared
        .journal
        .cancel(tenant, run_id, command_id, cancel.reason.as_deref())
        .await?;
    tracing::info!(tenant, run.id = run_id, command.id = command_id.unwrap_or("*"), outcome = %outcome, detail = %detail, "cancel request stored");
    shared
        .cancels
        .broadcast(&shared.client, tenant, run_id, command_id)
        .await;
    shared.announce(tenant, run_id);
    Ok(())
}

/// Hands a message back at once (used when the worker stops mid-batch).
pub(crate) async fn hand_back(message: &jetstream::Message) {
    let _ = message.ack_with(AckKind::Nak(None)).await;
}
