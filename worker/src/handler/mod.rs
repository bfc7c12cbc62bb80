//! Handling one delivered work message, from validation to its ack.
//!
//! [`handle`] reads the delivery, checks the message against the contract
//! and its subject, and dispatches it to [`run_create`] or [`command`]. What
//! those return says what happens to the message ([`Disposition`]); a
//! retryable failure is NAKed with a growing delay until the delivery limit,
//! after which the message is dead-lettered. Nothing is acked before its
//! outcome is committed in PostgreSQL.

mod attempt_log;
mod breadcrumbs;
mod command;
pub(crate) mod control;
mod control_signature;
mod dead_letter;
mod divert;
mod event_text;
mod run_create;
mod shared;
mod slot;
mod supervise;

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use runfleet_schemas::{
    CommandCreate, DecodeError, FailureKind, MessageKind, Priority, RunCreate, decode, subjects,
};
use tracing::Instrument;

use crate::db::DbError;
use crate::publisher::PublishError;
use crate::retry::nak_delay;

pub(crate) use dead_letter::dead_letter;
pub(crate) use shared::Shared;
pub(crate) use slot::Slot;

/// What to do with the delivered message once handling is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Outcome committed: remove the message (a plain ack, unconfirmed).
    Ack,
    /// Deliver again, after the delay (`None`: at once).
    Nak(Option<Duration>),
    /// Never deliver again (dead-lettered).
    Term,
    /// Do nothing: the claim was superseded, the successor owns the message.
    Leave,
}

/// A failure that another delivery may not meet (database, broker).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Retryable {
    /// PostgreSQL failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A publish was not confirmed.
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// One delivery of one message.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// The subject it was published on.
    pub subject: String,
    /// The delivery count (1 for the first).
    pub attempt: u64,
    /// The stream it is stored in.
    pub stream: String,
    /// Its sequence in that stream.
    pub stream_sequence: u64,
    /// When it was published.
    pub published: chrono::DateTime<chrono::Utc>,
}

impl Delivery {
    /// The stored message this is a delivery of, for its delivery history.
    pub fn stored(&self) -> crate::journal::StoredMessage<'_> {
        crate::journal::StoredMessage {
            stream: &self.stream,
            sequence: self.stream_sequence,
            tenant: subjects::parse(&self.subject)
                .map(|p| p.tenant)
                .filter(|t| runfleet_schemas::Tenant::new(*t).is_ok())
                .unwrap_or(subjects::UNKNOWN_TENANT),
        }
    }
}

/// Handles one work message to the end: dispatch, then ack, NAK or terminate.
pub(crate) async fn handle(shared: &Shared, message: jetstream::Message, slot: Slot) {
    let Some(delivery) = delivery_of(&message) else {
        return;
    };
    let span = tracing::info_span!(
        "message",
        msg.subject = %delivery.subject,
        stream.seq = delivery.stream_sequence,
        attempt = delivery.attempt,
        worker.id = %shared.worker_id,
    );
    let _in_flight = shared.metrics.in_flight();
    if delivery.attempt > 1 {
        let tenant = subjects::parse(&delivery.subject).map_or("-", |p| p.tenant);
        shared.metrics.command_redelivered(tenant);
    }
    drive(
        shared,
        &message,
        &delivery,
        span,
        dispatch(shared, &message, &delivery, &slot),
    )
    .await;
}

/// Runs a delivery's handling under `span` (continuing the message's trace),
/// then settles the message: a retryable failure is NAKed with a growing
/// delay, and at the delivery limit the message is dead-lettered instead.
async fn drive(
    shared: &Shared,
    message: &jetstream::Message,
    delivery: &Delivery,
    span: tracing::Span,
    handling: impl Future<Output = Result<Disposition, Retryable>>,
) {
    crate::telemetry::set_parent(
        &span,
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(runfleet_schemas::headers::TRACEPARENT))
            .map(|v| v.as_str()),
    );
    async move {
        let received = std::time::Instant::now();
        let (mut disposition, failure) = match handling.await {
            Ok(disposition) => (disposition, None),
            Err(err) => (retry_later(shared, delivery, &err.to_string()).await, Some(err)),
        };
        // JetStream never delivers a message again after `max_deliver`: a NAK
        // there would strand it. Dead-letter it instead (nothing is dropped).
        if matches!(disposition, Disposition::Nak(_)) && delivery.attempt >= shared.max_deliver() {
            let why = match failure {
                Some(err) => format!(
                    "gave up after {} deliveries; last failure: {err}",
                    delivery.attempt
                ),
                None => format!("delivered {} times without an outcome", delivery.attempt),
            };
            match dead_letter(shared, message, delivery, FailureKind::MaxDeliveries, why).await {
                Ok(terminal) => disposition = terminal,
                Err(err) => {
                    tracing::error!(error = %err, "could not dead-letter an exhausted message; leaving it")
                }
            }
        }
        let handled = received.elapsed();
        settle(message, delivery, disposition).await;
        tracing::debug!(
            ?disposition,
            handle_ms = handled.as_secs_f64() * 1e3,
            settle_ms = (received.elapsed() - handled).as_secs_f64() * 1e3,
            "message settled"
        );
    }
    .instrument(span)
    .await;
}

/// Why a message is refused unread: it is larger than the fleet's `max_payload`.
fn oversized(shared: &Shared, message: &jetstream::Message) -> Option<String> {
    let size = message.payload.len();
    let limit = shared.max_payload;
    (size > limit).then(|| {
        format!("the message is {size} bytes; this fleet accepts at most {limit} (max_payload)")
    })
}

/// What JetStream says about a delivered message.
fn delivery_of(message: &jetstream::Message) -> Option<Delivery> {
    match message.info() {
        Ok(info) => Some(Delivery {
            subject: message.subject.to_string(),
            attempt: u64::try_from(info.delivered).unwrap_or(1).max(1),
            stream: info.stream.to_owned(),
            stream_sequence: info.stream_sequence,
            published: chrono::DateTime::from_timestamp(
                info.published.unix_timestamp(),
                info.published.nanosecond(),
            )
            .unwrap_or_default(),
        }),
        Err(err) => {
            tracing::warn!(msg.subject = %message.subject, error = %err, "not a JetStream delivery; ignored");
            None
        }
    }
}

async fn dispatch(
    shared: &Shared,
    message: &jetstream::Message,
    delivery: &Delivery,
    slot: &Slot,
) -> Result<Disposition, Retryable> {
    if let Some(why) = oversized(shared, message) {
        return dead_letter(shared, message, delivery, FailureKind::PayloadTooLarge, why).await;
    }
    let checked = match subjects::parse(&delivery.subject) {
        None => Err(Invalid::Subject(delivery.subject.clone())),
        Some(parsed) => match parsed.kind {
            MessageKind::RunCreate => read::<RunCreate>(&parsed, &message.payload, |m| {
                (m.tenant.as_str(), m.run_id.as_str(), m.priority)
            })
            .map(Work::Run),
            MessageKind::CommandCreate => read::<CommandCreate>(&parsed, &message.payload, |m| {
                (m.tenant.as_str(), m.run_id.as_str(), m.priority)
            })
            .map(Work::Command),
            other => Err(Invalid::Misplaced {
                kind: other,
                subject: delivery.subject.clone(),
            }),
        },
    };
    match checked {
        Ok(Work::Run(run)) => run_create::handle(shared, message, delivery, run).await,
        Ok(Work::Command(command)) if divert::diverts(shared, message, &command) => {
            divert::divert(shared, message, &command).await
        }
        Ok(Work::Command(command)) => {
            command::handle(shared, message, delivery, slot, command).await
        }
        Err(why) => {
            dead_letter(
                shared,
                message,
                delivery,
                FailureKind::SchemaInvalid,
                why.to_string(),
            )
            .await
        }
    }
}

/// A work message that passed every check.
enum Work {
    Run(RunCreate),
    Command(CommandCreate),
}

/// Why a work message is refused as `schema-invalid` (its text is the
/// dead letter's message, naming the field or the subject).
#[derive(Debug, thiserror::Error)]
pub(super) enum Invalid {
    /// The subject is not a work subject at all.
    #[error("{0} is not a runfleet work subject")]
    Subject(String),
    /// The subject is not one of runfleet's (on the control stream).
    #[error("{0} is not a runfleet subject")]
    Foreign(String),
    /// A message kind that is not work, on a work subject.
    #[error("{kind} messages do not belong on {subject}")]
    Misplaced {
        /// The kind the subject names.
        kind: MessageKind,
        /// The subject.
        subject: String,
    },
    /// The body does not decode as its kind.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The body's tenant is not the subject's.
    #[error("{kind}: /tenant: {body:?} does not match the subject's tenant {subject:?}")]
    Tenant {
        /// The message kind.
        kind: MessageKind,
        /// The body's tenant.
        body: String,
        /// The subject's.
        subject: String,
    },
    /// The body's priority is not the subject's level.
    #[error("{kind}: /priority: \"{body}\" does not match the subject's priority \"{subject}\"")]
    Priority {
        /// The message kind.
        kind: MessageKind,
        /// The body's priority.
        body: Priority,
        /// The subject's.
        subject: Priority,
    },
    /// The body's run is not the subject's.
    #[error("{kind}: /run_id: {body:?} does not match the subject's run {subject:?}")]
    Run {
        /// The message kind.
        kind: MessageKind,
        /// The body's run.
        body: String,
        /// The subject's.
        subject: String,
    },
}

/// Decodes the payload as `T` and checks its tenant and run against the subject.
fn read<T: runfleet_schemas::Contract>(
    parsed: &subjects::ParsedSubject<'_>,
    payload: &[u8],
    owner: impl Fn(&T) -> (&str, &str, Priority),
) -> Result<T, Invalid> {
    let message = decode::<T>(payload)?;
    let (tenant, run_id, priority) = owner(&message);
    if parsed.tenant != tenant {
        return Err(Invalid::Tenant {
            kind: parsed.kind,
            body: tenant.to_owned(),
            subject: parsed.tenant.to_owned(),
        });
    }
    if parsed.run_id != Some(run_id) {
        return Err(Invalid::Run {
            kind: parsed.kind,
            body: run_id.to_owned(),
            subject: parsed.run_id.unwrap_or_default().to_owned(),
        });
    }
    if parsed.priority != priority {
        return Err(Invalid::Priority {
            kind: parsed.kind,
            body: priority,
            subject: parsed.priority,
        });
    }
    Ok(message)
}

/// A retryable failure: logged for the delivery history, then NAKed with a
/// growing delay (at the delivery limit, [`handle`] dead-letters instead).
async fn retry_later(shared: &Shared, delivery: &Delivery, reason: &str) -> Disposition {
    let reason = shared.redactor.redact(reason);
    tracing::warn!(error = %reason, "delivery failed; it will be retried");
    let _ = shared
        .journal
        .log_delivery(
            &delivery.stored(),
            attempt_i64(delivery),
            &shared.worker_id,
            &reason,
        )
        .await;
    Disposition::Nak(Some(nak_delay(delivery.attempt)))
}

pub(crate) fn attempt_i64(delivery: &Delivery) -> i64 {
    i64::try_from(delivery.attempt).unwrap_or(i64::MAX)
}

async fn settle(message: &jetstream::Message, delivery: &Delivery, disposition: Disposition) {
    let result = match disposition {
        // A plain ack: a lost one means a redelivery, and a redelivery
        // replays the journaled receipt under the same `Nats-Msg-Id`.
        Disposition::Ack => message.ack().await,
        Disposition::Nak(delay) => message.ack_with(AckKind::Nak(delay)).await,
        Disposition::Term => message.ack_with(AckKind::Term).await,
        Disposition::Leave => Ok(()),
    };
    if let Err(err) = result {
        // The outcome is committed (or the message is retryable): a redelivery replays it.
        tracing::warn!(stream.seq = delivery.stream_sequence, ?disposition, error = %err, "settling the message failed");
    }
}
