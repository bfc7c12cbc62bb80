//! Core NATS subscriptions of the worker's background listeners (run
//! wake-ups, cancel broadcasts, session requests), tried again until they
//! are made: a listener that gave up at its first failed subscribe would
//! leave the worker degraded, and not ready, until a restart.

use async_nats::Subscriber;
use tokio_util::sync::CancellationToken;

use crate::retry::nak_delay;

/// Subscribes to `subject` (in `queue_group`, when given), trying again
/// with a growing delay (up to `retry`'s longest) while it fails; `None`
/// once `stop` is cancelled. `what` names the listener in the log.
pub async fn until_subscribed(
    client: &async_nats::Client,
    subject: String,
    queue_group: Option<&str>,
    what: &str,
    stop: &CancellationToken,
) -> Option<Subscriber> {
    let mut failures = 0u64;
    loop {
        let made = match queue_group {
            Some(group) => {
                client
                    .queue_subscribe(subject.clone(), group.to_owned())
                    .await
            }
            None => client.subscribe(subject.clone()).await,
        };
        match made {
            Ok(subscriber) => {
                if failures > 0 {
                    tracing::info!(subject = %subject, failures, "subscribed for {what}");
                }
                return Some(subscriber);
            }
            Err(err) => {
                failures += 1;
                tracing::warn!(subject = %subject, error = %err, failures, "cannot subscribe for {what}; trying again");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(nak_delay(failures)) => {}
        }
    }
}
