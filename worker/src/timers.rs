//! Run-after timers: the wake-up of delayed commands, without polling.
//!
//! A command whose `not_before` is more than a moment ahead is recorded in
//! PostgreSQL (`delayed_commands`, the truth) and its message acknowledged.
//! Its wake-up is a JetStream message schedule (ADR-51, nats-server ≥ 2.12)
//! on [`subjects::TIMER_STREAM`]: `runfleet.timer.<tenant>.<run>.<command>`
//! with `Nats-Schedule: @at <not_before>`, carrying the command's bytes and
//! firing on `runfleet.due.<tenant>.<run>.<command>`. One schedule per
//! subject: setting it again (a redelivered copy) replaces it.
//!
//! The fleet shares the durable consumer [`WAKE_CONSUMER`] on the due
//! subjects (and on recurring schedules' firings, [`crate::recurring`]). A worker that takes a wake-up publishes the command's bytes on
//! its work subject again under `Nats-Msg-Id`
//! `wake:<tenant>:<run>:<command>:<not_before µs>` (so a repeated wake-up is
//! deduplicated), then deletes the row, then acknowledges. The resumer's
//! sweep publishes, under the same id, any row still there [`OVERDUE`]
//! after its time (a timer lost with its stream, say).

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use runfleet_schemas::{CommandId, RunId, Tenant, headers, subjects};

use crate::journal::{Delayed, Journal};
use crate::publisher::{CommandAgain, PublishError, publish_command_again};
use crate::tasks::TaskTree;

/// The durable pull consumer the fleet shares on the wake subjects.
pub const WAKE_CONSUMER: &str = "runfleet-timers";

/// How late a delayed command may be before the sweep publishes it itself.
pub const OVERDUE: Duration = Duration::from_secs(5);

/// Wake-ups pulled at once.
const PULL: usize = 64;

/// How long a pull for wake-ups stays open. Short: a wake-up the server
/// hands to the open pull of a worker that just died waits for
/// [`WAKE_ACK_WAIT`]; one that fires after that pull expired does not.
const PULL_EXPIRY: Duration = Duration::from_secs(1);

/// The wake consumer's lease: handling a wake-up is a publish and a delete.
pub const WAKE_ACK_WAIT: Duration = Duration::from_secs(3);

/// The header that makes a stored message a schedule (ADR-51).
const SCHEDULE: &str = "Nats-Schedule";
/// Where the schedule publishes when it fires.
const SCHEDULE_TARGET: &str = "Nats-Schedule-Target";

/// The identifiers of a delayed command, as subject tokens.
fn tokens(delayed: &Delayed) -> Result<(Tenant, RunId, CommandId), PublishError> {
    let invalid = |detail: String| PublishError {
        subject: subjects::TIMER_STREAM.to_owned(),
        detail,
    };
    Ok((
        Tenant::new(delayed.tenant.as_str()).map_err(|e| invalid(e.to_string()))?,
        RunId::new(delayed.run_id.as_str()).map_err(|e| invalid(e.to_string()))?,
        CommandId::new(delayed.command_id.as_str()).map_err(|e| invalid(e.to_string()))?,
    ))
}

/// Sets the timer that wakes `delayed` at its `not_before`, and waits for
/// the PubAck.
///
/// # Errors
/// [`PublishError`] when JetStream does not store the schedule.
pub async fn set(
    js: &jetstream::Context,
    delayed: &Delayed,
    traceparent: Option<&str>,
) -> Result<(), PublishError> {
    let (tenant, run_id, command_id) = tokens(delayed)?;
    let subject = subjects::timer(&tenant, &run_id, &command_id);
    let mut map = HeaderMap::new();
    map.insert(
        SCHEDULE,
        format!(
            "@at {}",
            delayed
                .not_before
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        )
        .as_str(),
    );
    map.insert(
        SCHEDULE_TARGET,
        subjects::due(&tenant, &run_id, &command_id).as_str(),
    );
    map.insert(
        headers::NOT_BEFORE,
        delayed.not_before.timestamp_micros().to_string().as_str(),
    );
    if let Some(traceparent) = traceparent {
        map.insert(headers::TRACEPARENT, traceparent);
    }
    let fail = |detail: String| PublishError {
        subject: subject.clone(),
        detail,
    };
    js.publish_with_headers(subject.clone(), map, delayed.message.clone().into())
        .await
        .map_err(|e| fail(e.to_string()))?
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// Publishes a woken command's bytes on its work subject again, and waits
/// for the PubAck.
///
/// # Errors
/// [`PublishError`] when JetStream does not store it.
pub async fn publish_woken(
    js: &jetstream::Context,
    delayed: &Delayed,
    traceparent: Option<&str>,
) -> Result<(), PublishError> {
    let msg_id = format!(
        "wake:{}:{}:{}:{}",
        delayed.tenant,
        delayed.run_id,
        delayed.command_id,
        delayed.not_before.timestamp_micros()
    );
    let again = CommandAgain {
        tenant: &delayed.tenant,
        run_id: &delayed.run_id,
        message: delayed.message.clone().into(),
        msg_id: &msg_id,
        waiting_since: None,
        traceparent,
    };
    publish_command_again(js, again).await
}

/// Starts the wake-up service on `tasks`: pulls wake-ups from `consumer`
/// until the tree stops.
pub fn start(
    journal: Journal,
    js: jetstream::Context,
    consumer: consumer::Consumer<consumer::pull::Config>,
    tasks: &TaskTree,
) {
    tasks.spawn_service("timers", |stop| async move {
        let mut failures = 0u64;
        loop {
            let batch = tokio::select! {
                () = stop.cancelled() => return,
                batch = consumer.batch().max_messages(PULL).expires(PULL_EXPIRY).messages() => batch,
            };
            let mut batch = match batch {
                Ok(batch) => {
                    failures = 0;
                    batch
                }
                Err(err) => {
                    failures += 1;
                    tracing::warn!(error = %err, failures, "wake-up pull failed");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(crate::retry::nak_delay(failures)) => {}
                    }
                    continue;
                }
            };
            while let Some(next) = batch.next().await {
                match next {
                    Ok(message) if subjects::parse_fire(&message.subject).is_some() => {
                        crate::recurring::fired(&journal, &js, &message).await;
                    }
                    Ok(message) => wake(&journal, &js, &message).await,
                    Err(err) => {
                        tracing::debug!(error = %err, "wake-up batch ended with an error");
                        break;
                    }
                }
            }
        }
    });
}

/// Handles one wake-up: publish, forget, acknowledge. A wake-up that is not
/// one of the fleet's is acknowledged and logged (it carries no command).
async fn wake(journal: &Journal, js: &jetstream::Context, message: &jetstream::Message) {
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    let not_before = header(headers::NOT_BEFORE)
        .and_then(|micros| micros.parse::<i64>().ok())
        .and_then(DateTime::<Utc>::from_timestamp_micros);
    let (Some((tenant, run_id, command_id)), Some(not_before)) =
        (subjects::parse_due(&message.subject), not_before)
    else {
        tracing::warn!(subject = %message.subject, headers = ?message.headers, "a wake-up the fleet did not set; dropped");
        let _ = message.ack().await;
        return;
    };
    let delayed = Delayed {
        tenant: tenant.to_owned(),
        run_id: run_id.to_owned(),
        command_id: command_id.to_owned(),
        not_before,
        message: message.payload.to_vec(),
    };
    let traceparent = header(headers::TRACEPARENT);
    if let Err(err) = publish_woken(js, &delayed, traceparent.as_deref()).await {
        tracing::warn!(error = %err, "could not publish a woken command; it is retried");
        let _ = message
            .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
            .await;
        return;
    }
    tracing::debug!(
        tenant,
        run.id = run_id,
        command.id = command_id,
        "delayed command woken"
    );
    if let Err(err) = journal
        .undelay(tenant, run_id, command_id, not_before)
        .await
    {
        // The sweep publishes it again under the same id (deduplicated)
        // and forgets it then.
        tracing::warn!(error = %err, "could not forget a woken command");
    }
    let _ = message.ack().await;
}

/// The sweep's backstop: publishes every delayed command [`OVERDUE`] and
/// forgets it. Returns how many were published.
pub async fn publish_overdue(journal: &Journal, js: &jetstream::Context, limit: i64) -> usize {
    let before = Utc::now() - OVERDUE;
    let due = match journal.delayed_due(before, limit).await {
        Ok(due) => due,
        Err(err) => {
            tracing::warn!(error = %err, "could not look for overdue delayed commands");
            return 0;
        }
    };
    let mut published = 0;
    for delayed in &due {
        match publish_woken(js, delayed, None).await {
            Ok(()) => {
                published += 1;
                tracing::warn!(
                    tenant = %delayed.tenant,
                    run.id = %delayed.run_id,
                    command.id = %delayed.command_id,
                    "a delayed command's timer did not fire; published by the sweep"
                );
                if let Err(err) = journal
                    .undelay(
                        &delayed.tenant,
                        &delayed.run_id,
                        &delayed.command_id,
                        delayed.not_before,
                    )
                    .await
                {
                    tracing::warn!(error = %err, "could not forget an overdue delayed command");
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not publish an overdue delayed command")
            }
        }
    }
    published
}
