//! An attempt's event log: made from the claim, ended without a receipt
//! (a last event says why), and the earlier attempts' stored events
//! published again when a command is executed anew.

use runfleet_schemas::{EventBody, FailureKind};

use super::Turn;
use super::execute::Claim;
use crate::handler::attempt_log::AttemptLog;
use crate::handler::event_text::scrubbed;

impl Turn<'_> {
    /// An attempt that ends without a receipt: a last event says why, and
    /// its events not stored yet are stored and published (best effort;
    /// nothing when the claim was superseded).
    pub(super) async fn end_attempt(
        &self,
        mut log: AttemptLog,
        why: &str,
        kind: Option<FailureKind>,
    ) {
        let shared = self.shared;
        log.push(scrubbed(
            &shared.redactor,
            EventBody::Error {
                message: format!("attempt {} {why}", self.delivery.attempt),
                failure_kind: kind,
            },
        ));
        // A batch whose answer was lost goes first, then the rest, a
        // statement's worth at a time: at most 10 tries, each when the log
        // says (a failed one waits a flush interval).
        for tries in 0..10 {
            if !log.has_unstored() {
                break;
            }
            if tries > 0
                && let Some(due) = log.due()
            {
                tokio::time::sleep_until(due.into()).await;
            }
            let flushed = log
                .flush(
                    &shared.journal,
                    &shared.jetstream,
                    self.traceparent.as_deref(),
                )
                .await;
            if flushed.is_err() {
                tracing::info!(
                    "the claim was superseded; the attempt's last events were not stored"
                );
                break;
            }
        }
        // Published before the message is handed back (what fails now is
        // published again when the command is executed anew).
        let unpublished = log.into_rest().stored_unpublished().await;
        let traceparent = self.traceparent.as_deref();
        if let Err(err) =
            crate::publisher::publish_all(&shared.jetstream, &unpublished, traceparent).await
        {
            tracing::warn!(error = %err, "the attempt's stored events not all published");
        }
    }

    /// An earlier attempt of this command may have stored events it never
    /// published (its worker died in between): they are published again
    /// (in the background; copies inside the dedupe window are dropped), so
    /// followers of the stream find no gap.
    pub(super) fn republish_earlier_attempts(&self, claim: &Claim) {
        let shared = self.shared;
        let (journal, jetstream) = (shared.journal.clone(), shared.jetstream.clone());
        let (tenant, run_id) = (
            self.command.tenant.to_string(),
            self.command.run_id.to_string(),
        );
        let command_id = self.command.command_id.to_string();
        let before = claim.next_event_seq;
        let traceparent = self.traceparent.clone();
        tokio::spawn(async move {
            let stored = journal
                .earlier_attempt_events(&tenant, &run_id, &command_id, before)
                .await;
            let events: Vec<runfleet_schemas::Event> = match stored {
                Ok(values) => values
                    .into_iter()
                    .filter_map(|v| runfleet_schemas::decode_value(v).ok())
                    .collect(),
                Err(err) => {
                    tracing::warn!(error = %err, "earlier attempts' events not read");
                    return;
                }
            };
            let published =
                crate::publisher::publish_all(&jetstream, &events, traceparent.as_deref()).await;
            if let Err(err) = published {
                tracing::warn!(error = %err, "earlier attempts' events not published again");
            }
        });
    }

    /// This attempt's event log under `claim`, numbered from where the claim found the run's.
    pub(super) fn attempt_log(&self, claim: &Claim) -> AttemptLog {
        let first_seq = u64::try_from(claim.next_event_seq).unwrap_or(1);
        AttemptLog::new(&self.command, self.delivery.attempt, claim.token, first_seq)
    }
}
