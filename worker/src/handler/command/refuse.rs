//! Commands that are not executed: replays of stored receipts, idempotency
//! conflicts, turns that never come, missing runs, cancelled commands and
//! terminal runs — each answered with its receipt or dead letter.

use std::time::Duration;

use runfleet_schemas::{Event, Failure, FailureKind, Receipt, decode_value};
use serde_json::Value;

use super::{Turn, elapsed_since};
use crate::handler::{Disposition, Retryable, dead_letter};
use crate::publisher::{publish, publish_all};
use crate::retry::nak_delay;

impl Turn<'_> {
    /// Republishes a stored receipt and its events (read now unless they
    /// came with it); executes nothing.
    pub(super) async fn replay(
        &self,
        stored: Value,
        events: Option<Vec<Value>>,
    ) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let receipt: Receipt = decode_value(stored).map_err(|e| {
            crate::db::DbError::Unexpected(format!(
                "stored receipt of command {} (run {}): {e}",
                self.command.command_id, self.command.run_id
            ))
        })?;
        if let Some(range) = receipt.events {
            let values = match events {
                Some(values) => values,
                None => {
                    shared
                        .journal
                        .events(
                            receipt.tenant.as_str(),
                            receipt.run_id.as_str(),
                            i64::try_from(range.first_seq).unwrap_or(i64::MAX),
                            i64::try_from(range.last_seq).unwrap_or(i64::MAX),
                        )
                        .await?
                }
            };
            let events: Vec<Event> = values
                .into_iter()
                .filter_map(|v| decode_value(v).ok())
                .collect();
            publish_all(&shared.jetstream, &events, receipt.traceparent.as_deref()).await?;
        }
        publish(&shared.jetstream, &receipt, receipt.traceparent.as_deref()).await?;
        shared.metrics.command_replayed(receipt.tenant.as_str());
        tracing::info!("replayed the stored receipt");
        Ok(Disposition::Ack)
    }

    /// The key (or command id, or seq) was used with other content: a dead
    /// letter with reason `idempotency-conflict`, and no receipt — the
    /// command id or key belongs to the journaled command, whose receipt is
    /// the only one (a second receipt could contradict it). Nothing executes.
    pub(super) async fn conflict(&self, why: String) -> Result<Disposition, Retryable> {
        dead_letter(
            self.shared,
            self.message,
            self.delivery,
            FailureKind::IdempotencyConflict,
            why,
        )
        .await
    }

    /// Its turn never came within `max_attempts × order_wait` (an earlier
    /// seq never arrived, say): the command ends failed, and is dead-lettered.
    pub(super) async fn give_up_waiting(&self, why: String) -> Result<Disposition, Retryable> {
        let waited = self.waited_for_turn();
        let why = format!(
            "gave up after waiting {} for its turn: {why}",
            humantime::format_duration(Duration::from_secs(waited.as_secs()))
        );
        let receipt = self.receipt(
            FailureKind::MaxDeliveries.status(),
            Some(Failure {
                kind: FailureKind::MaxDeliveries,
                message: why.clone(),
            }),
            None,
            None,
            0,
            None,
        );
        // The dead letter first, so that whoever sees the receipt finds it.
        let disposition = dead_letter(
            self.shared,
            self.message,
            self.delivery,
            FailureKind::MaxDeliveries,
            why,
        )
        .await?;
        self.record_and_publish(receipt).await?;
        Ok(disposition)
    }

    /// The run does not exist: wait for it (bounded), then dead-letter.
    pub(super) async fn no_run(&self, why: String) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let waited = elapsed_since(self.delivery.published);
        let run_wait = shared.config.run_wait;
        if waited >= run_wait || self.delivery.attempt >= shared.max_deliver() {
            let why = format!(
                "{why} after waiting {} for it",
                humantime::format_duration(Duration::from_secs(waited.as_secs()))
            );
            return dead_letter(
                shared,
                self.message,
                self.delivery,
                FailureKind::RunNotFound,
                why,
            )
            .await;
        }
        self.log(&format!("run-not-found: {why}")).await;
        let delay = nak_delay(self.delivery.attempt)
            .min(run_wait.saturating_sub(waited))
            .max(Duration::from_millis(50));
        Ok(Disposition::Nak(Some(delay)))
    }

    /// A command that is not executed (cancelled, or its run terminal):
    /// its receipt says why.
    pub(super) async fn not_executed(
        &self,
        kind: FailureKind,
        why: String,
    ) -> Result<Disposition, Retryable> {
        let receipt = self.receipt(
            kind.status(),
            Some(Failure { kind, message: why }),
            None,
            None,
            0,
            None,
        );
        self.record_and_publish(receipt).await
    }

    /// Stores a receipt for a command that was not executed, publishes the stored one.
    pub(super) async fn record_and_publish(
        &self,
        receipt: Receipt,
    ) -> Result<Disposition, Retryable> {
        let stored = self.shared.journal.record_receipt(&receipt).await?;
        self.shared
            .announce(self.command.tenant.as_str(), self.command.run_id.as_str());
        self.replay(stored, None).await
    }
}
