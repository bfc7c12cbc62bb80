//! `control.cancel`: store the cancel request, then stop the execution
//! wherever it runs.
//!
//! Control messages come from their own stream through the durable pull
//! consumer `runfleet-control`; one worker handles each. The request is
//! stored in PostgreSQL first (so a command cancelled before it starts never
//! runs, and a cancelled run refuses its pending commands with `cancelled`
//! receipts), then broadcast to every worker, which stops matching running
//! commands at once. Waiting commands of the run are woken so they see it.
//! A fleet that requires signed cancels checks the signature first
//! ([`super::control_signature`]) and dead-letters a cancel that fails it
//! as `signature-invalid`.

use async_nats::jetstream::{self, AckKind};
use runfleet_schemas::{ControlCancel, FailureKind, Priority, subjects};

use super::{Delivery, Disposition, Retryable, dead_letter, delivery_of, drive, oversized, read};
use crate::handler::Shared;

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
    drive(
        shared,
        &message,
        &delivery,
        span,
        dispatch(shared, &message, &delivery),
    )
    .await;
}

/// Checks the message (size, contract, subject), then applies it.
async fn dispatch(
    shared: &Shared,
    message: &jetstream::Message,
    delivery: &Delivery,
) -> Result<Disposition, Retryable> {
    if let Some(why) = oversized(shared, message) {
        return dead_letter(shared, message, delivery, FailureKind::PayloadTooLarge, why).await;
    }
    let checked = match subjects::parse(&delivery.subject) {
        None => Err(super::Invalid::Foreign(delivery.subject.clone())),
        Some(parsed) => read::<ControlCancel>(&parsed, &message.payload, |m| {
            (m.tenant.as_str(), m.run_id.as_str(), Priority::Normal)
        }),
    };
    match checked {
        Ok(cancel) => {
            if shared.config.require_signed_control
                && let Err(why) = super::control_signature::check(
                    shared,
                    message,
                    delivery,
                    cancel.tenant.as_str(),
                )
                .await?
            {
                return dead_letter(
                    shared,
                    message,
                    delivery,
                    FailureKind::SignatureInvalid,
                    why,
                )
                .await;
            }
            apply(shared, &cancel).await?;
            Ok(Disposition::Ack)
        }
        Err(why) => {
            let why = why.to_string();
            dead_letter(shared, message, delivery, FailureKind::SchemaInvalid, why).await
        }
    }
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
