//! The pull loops: work pulled only as fast as there are free execution
//! slots (a pulled message's lease clock is already running), control
//! messages one small batch at a time, failed pull requests retried after
//! growing delays, and the drain at shutdown (in-flight work finishes
//! within the grace, then is aborted and handed back).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::handler::{self, Shared};

/// How long one pull request stays open waiting for messages.
const PULL_EXPIRY: Duration = Duration::from_secs(1);
/// After the grace period, how long aborted commands get to hand their messages back.
const ABORT_GRACE: Duration = Duration::from_secs(5);

/// Pulls as many messages as there are free slots and hands each to a task.
pub(crate) async fn pull_until_shutdown(
    consumer: &consumer::Consumer<consumer::pull::Config>,
    shared: &Arc<Shared>,
    slots: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    shutdown: &CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        while tasks.try_join_next().is_some() {}
        let mut permits = tokio::select! {
            () = shutdown.cancelled() => return,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        if let Ok(more) = slots
            .clone()
            .try_acquire_many_owned(u32::try_from(slots.available_permits()).unwrap_or(u32::MAX))
        {
            permits.merge(more);
        }
        let Some(mut batch) = pull(consumer, permits.num_permits(), &mut failures, shutdown).await
        else {
            return;
        };
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                next = batch.next() => next,
            };
            match next {
                Some(Ok(message)) => {
                    let Some(permit) = permits.split(1) else {
                        // More than was asked for: hand it back rather than hold it unhandled.
                        let _ = message.ack_with(jetstream::AckKind::Nak(None)).await;
                        continue;
                    };
                    let shared = shared.clone();
                    let slot = handler::Slot::new(slots.clone(), permit);
                    tasks.spawn(async move { handler::handle(&shared, message, slot).await });
                }
                Some(Err(err)) => {
                    // Missing heartbeats and the like are not terminal: pull again.
                    tracing::debug!(error = %err, "pull batch ended with an error");
                    break;
                }
                None => break,
            }
        }
    }
}

/// One pull request for up to `wanted` messages. A failed request is
/// retried after a growing delay (`failures` counts them in a row); `None`
/// once `shutdown` is cancelled.
async fn pull(
    consumer: &consumer::Consumer<consumer::pull::Config>,
    wanted: usize,
    failures: &mut u32,
    shutdown: &CancellationToken,
) -> Option<consumer::pull::Batch> {
    loop {
        let batch = tokio::select! {
            () = shutdown.cancelled() => return None,
            batch = consumer.batch().max_messages(wanted).expires(PULL_EXPIRY).messages() => batch,
        };
        match batch {
            Ok(batch) => {
                *failures = 0;
                return Some(batch);
            }
            Err(err) => {
                *failures += 1;
                tracing::warn!(error = %err, failures = *failures, "pull request failed");
                tokio::select! {
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(crate::retry::nak_delay(u64::from(*failures))) => {}
                }
            }
        }
    }
}

/// Handles control messages (cancel requests) one at a time until shutdown.
pub(crate) async fn pull_control(
    consumer: consumer::Consumer<consumer::pull::Config>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let Some(mut batch) = pull(&consumer, 16, &mut failures, &shutdown).await else {
            return;
        };
        while let Some(next) = batch.next().await {
            match next {
                Ok(message) if shutdown.is_cancelled() => {
                    handler::control::hand_back(&message).await;
                }
                Ok(message) => handler::control::handle(&shared, message).await,
                Err(err) => {
                    tracing::debug!(error = %err, "control batch ended with an error");
                    break;
                }
            }
        }
    }
}

/// Lets in-flight work finish within `grace`, then aborts what is left.
pub(crate) async fn drain(shared: &Shared, tasks: &mut JoinSet<()>, grace: Duration) {
    if tasks.is_empty() {
        return;
    }
    tracing::info!(in_flight = tasks.len(), grace = ?grace, "draining in-flight commands");
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_ok()
    {
        return;
    }
    tracing::warn!(
        in_flight = tasks.len(),
        "grace period over; aborting and handing messages back"
    );
    shared.abort.cancel();
    if tokio::time::timeout(ABORT_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::error!(
            left = tasks.len(),
            "tasks did not stop; their messages redeliver after ack_wait"
        );
        tasks.abort_all();
    }
}
