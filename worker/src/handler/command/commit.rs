//! The fenced commit of a claimed command's events, receipt and state, then
//! publish; and what every committed outcome does next (the crash-test
//! failpoint, wake-ups, metrics).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use runfleet_schemas::{
    EventBody, Failure, MAX_RECEIPT_OUTPUT_BYTES, Receipt, Routed, TerminalCommandStatus,
};

use super::Turn;
use super::execute::{Claim, Ending};
use super::output::{Prepared, json_len, prepare};
use crate::config::Failpoint;
use crate::handler::attempt_log::{Rest, Unsettled};
use crate::handler::supervise::renew_lease;
use crate::handler::{Disposition, Retryable};
use crate::journal::Complete;
use crate::publisher::{publish_all, publish_all_bytes, publish_bytes, serialize_all};

impl Turn<'_> {
    /// The fenced commit of the attempt's events not stored yet and its
    /// receipt, then publish, then ack — with the lease renewed meanwhile:
    /// a large result (tens of MiB to redact, chunk, store and publish) can
    /// take longer than the lease, and its message must not be delivered
    /// again while it commits.
    pub(super) async fn commit(
        &self,
        claim: &Claim,
        started_at: DateTime<Utc>,
        mut ending: Ending,
    ) -> Result<Disposition, Retryable> {
        let output = ending.output.take();
        let large = output
            .as_ref()
            .is_some_and(|o| json_len(o) > MAX_RECEIPT_OUTPUT_BYTES);
        if large {
            // Seconds of work for tens of MiB: renew the lease first.
            self.renew_while_committing(claim).await;
        }
        let work = async {
            let prepared = if large {
                // Off the runtime's threads (other commands' heartbeats run there).
                let redactor = self.shared.redactor.clone();
                tokio::task::spawn_blocking(move || prepare(&redactor, output))
                    .await
                    .map_err(|err| {
                        Retryable::Db(crate::db::DbError::Unexpected(format!(
                            "preparing a large result: {err}"
                        )))
                    })?
            } else {
                prepare(&self.shared.redactor, output)
            };
            self.commit_now(claim, started_at, ending, prepared).await
        };
        tokio::pin!(work);
        let every = self.shared.config.ack_wait / 3;
        let mut renewal = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                disposition = &mut work => return disposition,
                _ = renewal.tick() => self.renew_while_committing(claim).await,
            }
        }
    }

    /// One renewal during a commit: the in-progress ack and the run's lease
    /// (a failure is left to the commit's fencing).
    async fn renew_while_committing(&self, claim: &Claim) {
        let shared = self.shared;
        if let Err(err) = renew_lease(
            self.message,
            &shared.journal,
            &self.command,
            claim.token,
            shared.config.ack_wait,
        )
        .await
        {
            tracing::warn!(error = %err, "renewing the lease during the commit failed");
        }
    }

    async fn commit_now(
        &self,
        claim: &Claim,
        started_at: DateTime<Utc>,
        ending: Ending,
        (output, chunked): Prepared,
    ) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let token = claim.token;
        let redactor = &shared.redactor;
        let Ending {
            output: _,
            failure,
            log,
            events: bodies,
            run_change,
            budget_remaining,
        } = ending;
        let status = failure
            .as_ref()
            .map_or(TerminalCommandStatus::Completed, |f| f.kind.status());
        let failure = failure.map(|f| Failure {
            kind: f.kind,
            message: bound_text(&redactor.redact(&f.message), MAX_FAILURE_MESSAGE_BYTES),
        });
        let mut log = log.unwrap_or_else(|| self.attempt_log(claim));
        for body in bodies {
            log.push(body);
        }
        let output_chunks = chunked.map(|(chunks, bodies)| {
            for body in bodies {
                log.push(body);
            }
            chunks
        });
        log.push(EventBody::TerminalStatus {
            status,
            failure_kind: failure.as_ref().map(|f| f.kind),
        });
        let traceparent = self.traceparent.as_deref();
        match log.settle_in_flight(&shared.journal).await {
            Ok(()) => {}
            Err(Unsettled::Db(err)) => return Err(err.into()),
            Err(Unsettled::Superseded) => return Ok(self.superseded(log.into_rest(), token).await),
        }
        let range = log.range();
        let mut rest = log.into_rest();
        let events = std::mem::take(&mut rest.unstored);
        let mut receipt = self.receipt(
            status,
            failure,
            output,
            range,
            u64::try_from(token).unwrap_or(0),
            Some(started_at),
        );
        receipt.budget_remaining = budget_remaining;
        receipt.output_chunks = output_chunks;
        let (event_bytes, events_json) = serialize_all(&events).map_err(serialization)?;
        let receipt_json = bytes::Bytes::from(serde_json::to_vec(&receipt).map_err(serialization)?);
        let committing = Instant::now();
        match shared
            .journal
            .complete_command(&receipt, receipt_json.clone(), events_json, run_change)
            .await?
        {
            Complete::Committed { waiter } => {
                self.after_commit(waiter);
                let commit_ms = committing.elapsed().as_secs_f64() * 1e3;
                self.count_outcome(&receipt, committing.elapsed());
                let publishing = Instant::now();
                // The live events stored earlier first (the attempt's
                // publisher through, or out of time), then the rest.
                let unpublished = rest.stored_unpublished().await;
                let (earlier, _) = serialize_all(&unpublished).map_err(serialization)?;
                tokio::try_join!(
                    publish_all_bytes(&shared.jetstream, &unpublished, &earlier, traceparent),
                    publish_all_bytes(&shared.jetstream, &events, &event_bytes, traceparent),
                    publish_bytes(
                        &shared.jetstream,
                        &receipt,
                        receipt.msg_id(),
                        traceparent,
                        receipt_json
                    ),
                )?;
                tracing::debug!(status = ?status, commit_ms, publish_ms = publishing.elapsed().as_secs_f64() * 1e3, "receipt committed and published");
                Ok(Disposition::Ack)
            }
            Complete::Fenced => Ok(self.superseded(rest, token).await),
        }
    }

    /// A newer claim superseded this one: the outcome is discarded, but
    /// what was stored under the claim is in the log, so on the stream too.
    async fn superseded(&self, mut rest: Rest, token: i64) -> Disposition {
        let stored = rest.stored_unpublished().await;
        let traceparent = self.traceparent.as_deref();
        if let Err(err) = publish_all(&self.shared.jetstream, &stored, traceparent).await {
            tracing::warn!(error = %err, "stored events not published");
        }
        tracing::warn!(
            fencing_token = token,
            "claim superseded by a newer one; outcome discarded"
        );
        Disposition::Leave
    }

    /// Right after a commit: the crash-test failpoint, then the wake-up of
    /// commands waiting for this run (in other workers only when the next
    /// command is recorded: nobody else can be waiting otherwise).
    pub(super) fn after_commit(&self, waiter: bool) {
        let shared = self.shared;
        if shared.config.failpoint == Some(Failpoint::ExitAfterCommit) {
            tracing::warn!("failpoint exit-after-commit: aborting before publish and ack");
            std::process::abort();
        }
        let (tenant, run_id) = (self.command.tenant.as_str(), self.command.run_id.as_str());
        if waiter {
            shared.announce(tenant, run_id);
        } else {
            shared.waiters.wake(&self.key);
        }
    }

    /// Metrics for a committed outcome.
    pub(super) fn count_outcome(&self, receipt: &Receipt, commit: Duration) {
        let metrics = &self.shared.metrics;
        let profile = self.profile.get().map_or("-", String::as_str);
        let tenant = receipt.tenant.as_str();
        metrics.observe_journal_commit(commit.as_secs_f64());
        match &receipt.failure {
            None => metrics.command_completed(profile, tenant),
            Some(failure) => metrics.command_failed(profile, tenant, failure.kind.as_str()),
        }
        let end_to_end = super::elapsed_since(self.delivery.published);
        metrics.observe_end_to_end(profile, tenant, end_to_end.as_secs_f64());
    }
}

/// A failure to serialize what is to be journaled (not expected of the contract's types).
pub(super) fn serialization(err: serde_json::Error) -> Retryable {
    Retryable::Db(crate::db::DbError::Unexpected(format!(
        "serializing the outcome: {err}"
    )))
}

/// The longest failure message a receipt carries.
pub(super) const MAX_FAILURE_MESSAGE_BYTES: usize = 8 * 1024;

/// `text`, cut to at most `max` bytes (on a character boundary) with a note.
pub(super) fn bound_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let head = crate::text::head(text, max);
    format!("{head}… [{} bytes cut]", text.len() - head.len())
}
