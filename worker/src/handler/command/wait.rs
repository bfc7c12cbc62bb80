//! Waiting for a turn without holding an execution slot: pausing until
//! woken, polled or a heartbeat is due (keeping the message's lease and
//! the run's), taking a slot when the turn comes, giving up after
//! `max_attempts × order_wait`, and parking a long wait in PostgreSQL so
//! the message can be acked and the command published again when its
//! turn comes.

use std::time::{Duration, Instant};

use async_nats::jetstream::AckKind;
use chrono::{DateTime, Utc};
use runfleet_schemas::headers;

use super::{Turn, elapsed_since};
use crate::handler::{Disposition, Retryable};
use crate::waiters::MAX_POLL;

impl Turn<'_> {
    /// Waits without a slot (waiting executes nothing: the worker pulls
    /// other work meanwhile, perhaps what this waits for) until `notified`,
    /// `poll` (doubled for the next wait, up to [`MAX_POLL`]) or a
    /// heartbeat is due, keeping the message's lease; false when the worker
    /// is aborting.
    pub(super) async fn pause(
        &self,
        notified: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
        poll: &mut Duration,
        last_heartbeat: &mut Instant,
    ) -> bool {
        let interval = self.shared.config.heartbeat_interval();
        if self.slot.release() {
            tracing::debug!("waiting without a slot");
        }
        tokio::select! {
            () = self.shared.abort.cancelled() => return false,
            () = notified => {}
            () = tokio::time::sleep(*poll) => {}
            () = tokio::time::sleep_until((*last_heartbeat + interval).into()) => {}
        }
        *poll = (*poll * 2).min(MAX_POLL);
        if last_heartbeat.elapsed() >= interval {
            self.renew_lease(last_heartbeat, "while waiting").await;
        }
        true
    }

    /// Renews the message's lease with an in-progress ack while it waits
    /// (`what` it waits for, for the log) and records when.
    pub(super) async fn renew_lease(&self, last_heartbeat: &mut Instant, what: &str) {
        if let Err(err) = self.message.ack_with(AckKind::Progress).await {
            tracing::warn!(error = %err, "in-progress ack failed while waiting {what}");
        }
        *last_heartbeat = Instant::now();
    }

    /// Takes a worker slot again (at once when one is held), renewing the
    /// message's lease meanwhile; false when the worker is aborting.
    pub(super) async fn take_slot(&self, last_heartbeat: &mut Instant) -> bool {
        let interval = self.shared.config.heartbeat_interval();
        loop {
            let next_heartbeat = *last_heartbeat + interval;
            tokio::select! {
                () = self.shared.abort.cancelled() => return false,
                () = self.slot.acquire() => return true,
                () = tokio::time::sleep_until(next_heartbeat.into()) => {
                    self.renew_lease(last_heartbeat, "for a slot").await;
                }
            }
        }
    }

    /// Whether the command has waited for its turn as long as it may: its
    /// `max_attempts` hand-backs of `order_wait` each, counted from when it
    /// was published (deliveries lost to crashes meanwhile do not shorten
    /// it), or JetStream's delivery backstop.
    pub(super) fn waited_out(&self) -> bool {
        self.waited_for_turn() >= self.shared.config.give_up_waiting_after()
            || self.delivery.attempt >= self.shared.max_deliver()
    }

    /// How long since the fleet first saw the command ([`Turn::first_seen`]).
    pub(super) fn waited_for_turn(&self) -> Duration {
        elapsed_since(self.first_seen())
    }

    /// When the fleet first saw the command: its publish time, or, for a
    /// parked command published again, the time its header carries.
    pub(super) fn first_seen(&self) -> DateTime<Utc> {
        self.message
            .headers
            .as_ref()
            .and_then(|h| h.get(headers::WAITING_SINCE))
            .and_then(|v| headers::waiting_since(v.as_str()))
            .unwrap_or(self.delivery.published)
            .min(self.delivery.published)
    }

    /// Parks the command in PostgreSQL (its message is then acknowledged:
    /// no worker holds it while it waits). False when it is not to be
    /// parked (its turn came meanwhile, say).
    pub(super) async fn park(&self) -> Result<bool, Retryable> {
        let parked = self
            .shared
            .journal
            .park(
                self.command.tenant.as_str(),
                self.command.run_id.as_str(),
                self.command.command_id.as_str(),
                i64::try_from(self.command.seq).unwrap_or(i64::MAX),
                &self.message.payload,
            )
            .await?;
        if parked {
            tracing::info!("parked until its turn comes");
        }
        Ok(parked)
    }

    /// Its turn came while its run's concurrency key was at a limit: it
    /// waits in `limited_commands`, its message acknowledged, until the
    /// releaser ([`crate::limits`]) publishes it again.
    pub(super) async fn limited(&self, key: String) -> Result<Disposition, Retryable> {
        tracing::debug!(key = %key, "limited: waits until its key has room");
        crate::handler::divert::wait_in_limited(
            self.shared,
            &self.command,
            &key,
            &self.message.payload,
        )
        .await
    }

    /// Gives the claim up early, so the next delivery need not wait for the lease.
    pub(super) async fn release(&self, token: i64) {
        let (tenant, run_id) = (self.command.tenant.as_str(), self.command.run_id.as_str());
        if self
            .shared
            .journal
            .release_lease(tenant, run_id, token)
            .await
            .is_ok()
        {
            self.shared.announce(tenant, run_id);
        }
    }
}
