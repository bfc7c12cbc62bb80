//! Setting a diverted tenant's command aside as it arrives (see
//! [`crate::fairness`]): recorded in `limited_commands` under its tenant's
//! key with its bytes, its message acknowledged, before any other journal
//! work, so the fleet goes through a large backlog at the speed of batched
//! inserts and reaches the other tenants' work. A copy that has waited
//! once (it carries `Runfleet-Waiting-Since`: released, resumed or woken)
//! is never set aside here.

use async_nats::jetstream;
use runfleet_schemas::{CommandCreate, headers};

use super::{Disposition, Retryable, Shared};

/// Whether `command` is set aside as it arrives (not one due later: it
/// waits for its `not_before` first).
pub(super) fn diverts(
    shared: &Shared,
    message: &jetstream::Message,
    command: &CommandCreate,
) -> bool {
    shared.fair.diverts(command.tenant.as_str())
        && command
            .not_before
            .is_none_or(|due| due <= chrono::Utc::now())
        && message
            .headers
            .as_ref()
            .is_none_or(|h| h.get(headers::WAITING_SINCE).is_none())
}

/// Sets `command` aside until the releaser publishes it again.
pub(super) async fn divert(
    shared: &Shared,
    message: &jetstream::Message,
    command: &CommandCreate,
) -> Result<Disposition, Retryable> {
    let key = format!("tenant:{}", command.tenant);
    tracing::debug!("diverted: waits for its tenant's fair turn");
    wait_in_limited(shared, command, &key, &message.payload).await
}

/// Records `command` in `limited_commands` under `key` with its bytes
/// (`payload`), counts it, and wakes the releaser: its message can be
/// acknowledged. The one way a command waits on a limit or a fair turn.
pub(super) async fn wait_in_limited(
    shared: &Shared,
    command: &CommandCreate,
    key: &str,
    payload: &[u8],
) -> Result<Disposition, Retryable> {
    let tenant = command.tenant.as_str();
    shared
        .journal
        .limit(
            tenant,
            command.run_id.as_str(),
            command.command_id.as_str(),
            i64::try_from(command.seq).unwrap_or(i64::MAX),
            key,
            payload,
        )
        .await?;
    shared.metrics.command_limited(tenant);
    shared.releaser.command_waits();
    Ok(Disposition::Ack)
}
