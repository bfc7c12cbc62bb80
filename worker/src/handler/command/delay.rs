//! Run-after: a command whose `not_before` is ahead does not start before
//! it. A moment ahead ([`HOLD_AT_MOST`]), the delivery simply waits; further
//! ahead, the command is recorded as delayed in PostgreSQL, its timer is set
//! ([`crate::timers`]) and its message acknowledged, so a long delay holds
//! no delivery, no slot and no ack-pending place. The timer publishes the
//! command again at `not_before`; then this check passes and the command
//! takes its turn like any other (later seqs of its run wait behind it).

use std::time::Duration;

use async_nats::jetstream;
use chrono::{DateTime, Utc};
use runfleet_schemas::CommandCreate;

use crate::handler::{Disposition, Retryable, Shared};
use crate::journal::Delayed;

/// How far ahead a `not_before` may be for the delivery to wait it out.
const HOLD_AT_MOST: Duration = Duration::from_secs(1);

/// `None` when the command may start now (after waiting a moment, if its
/// `not_before` was that close); else the delivery's disposition, the
/// command delayed until its timer fires.
///
/// # Errors
/// [`Retryable`] when the delay could not be recorded or the timer set.
pub(super) async fn until_due(
    shared: &Shared,
    message: &jetstream::Message,
    command: &CommandCreate,
    traceparent: Option<&str>,
) -> Result<Option<Disposition>, Retryable> {
    let Some(not_before) = command.not_before else {
        return Ok(None);
    };
    let Some(ahead) = ahead_of_now(not_before) else {
        return Ok(None);
    };
    if ahead <= HOLD_AT_MOST {
        tokio::time::sleep(ahead).await;
        // Never before: the sleep may end a hair early on a coarse clock.
        while let Some(left) = ahead_of_now(not_before) {
            tokio::time::sleep(left).await;
        }
        return Ok(None);
    }
    let delayed = Delayed {
        tenant: command.tenant.to_string(),
        run_id: command.run_id.to_string(),
        command_id: command.command_id.to_string(),
        not_before,
        message: message.payload.to_vec(),
    };
    let seq = i64::try_from(command.seq).unwrap_or(i64::MAX);
    // The timer first: a crash between the two leaves a timer without its
    // row (harmless: the wake-up publishes the command, and the redelivered
    // message records the delay again), never a row without its timer
    // (which only the sweep would find, late).
    crate::timers::set(&shared.jetstream, &delayed, traceparent).await?;
    shared.journal.delay(&delayed, seq).await?;
    tracing::info!(not_before = %not_before, "delayed until not_before");
    Ok(Some(Disposition::Ack))
}

/// How far `at` is ahead of now; `None` once it has passed.
fn ahead_of_now(at: DateTime<Utc>) -> Option<Duration> {
    (at - Utc::now())
        .to_std()
        .ok()
        .filter(|ahead| !ahead.is_zero())
}
