//! Pure commands: the outcome computed up front, then claimed and committed
//! in one statement ([`crate::journal::Journal::settle_pure`]), published, acked.

use std::time::{Duration, Instant};

use chrono::Utc;
use runfleet_schemas::{CommandKind, Event, EventBody, EventRange, Receipt, TerminalCommandStatus};

use super::Turn;
use crate::handler::event_text::scrubbed;
use crate::handler::{Disposition, Retryable};
use crate::publisher::{publish, publish_all, serialize_all};

impl Turn<'_> {
    /// The command's outcome computed up front, when its run's backend
    /// computes it without effects outside the journal (then begin and
    /// commit are one statement); `None` otherwise, or while the run's
    /// profile is not known here yet.
    pub(super) fn pure(&self) -> Option<Pure> {
        let shared = self.shared;
        if self.command.kind == CommandKind::Close || self.past_schedule_to_start().is_some() {
            return None;
        }
        // The run's profile as remembered, or else this worker's only one
        // (the settle checks it: a wrong guess only costs the round trip).
        let profile = shared
            .pure_runs
            .profile(&self.key)
            .or_else(|| shared.backends.only_profile().map(std::sync::Arc::from))?;
        let (_, backend) = shared.backends.get(&profile)?;
        let outcome = backend.pure(&self.command)?;
        let mut bodies: Vec<EventBody> = outcome
            .events
            .into_iter()
            .map(|body| scrubbed(&shared.redactor, body))
            .collect();
        bodies.push(EventBody::TerminalStatus {
            status: TerminalCommandStatus::Completed,
            failure_kind: None,
        });
        let mut output = outcome.output;
        shared.redactor.redact_value(&mut output);
        let receipt = self.receipt(
            TerminalCommandStatus::Completed,
            None,
            Some(output),
            None,
            0,
            Some(Utc::now()),
        );
        if receipt.output_truncated {
            // Over a receipt's bound: chunked by the two-step path's commit
            // (which this path does not do), never cut.
            return None;
        }
        let events = self.events(bodies, 1);
        let (_, events_json) = serialize_all(&events).ok()?;
        let receipt_json = serde_json::to_vec(&receipt).ok()?.into();
        Some(Pure {
            profile,
            receipt,
            events,
            receipt_json,
            events_json,
        })
    }

    /// A pure command was claimed and committed in one statement: number
    /// its events and receipt as PostgreSQL did, publish them, ack.
    pub(super) async fn settled(
        &self,
        pure: Pure,
        fencing_token: i64,
        next_event_seq: i64,
        waiter: bool,
        commit: Duration,
    ) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let Pure {
            profile,
            mut receipt,
            mut events,
            ..
        } = pure;
        let first_seq = u64::try_from(next_event_seq).unwrap_or(1).max(1);
        for (event, seq) in events.iter_mut().zip(first_seq..) {
            event.seq = seq;
        }
        receipt.fencing_token = u64::try_from(fencing_token).unwrap_or(0);
        receipt.events = Some(EventRange {
            first_seq,
            last_seq: first_seq + events.len() as u64 - 1,
        });
        self.after_commit(waiter);
        let _ = self.profile.set(profile.to_string());
        shared
            .metrics
            .command_started(&profile, self.command.tenant.as_str());
        self.count_outcome(&receipt, commit);
        let traceparent = self.traceparent.as_deref();
        let publishing = Instant::now();
        tokio::try_join!(
            publish_all(&shared.jetstream, &events, traceparent),
            publish(&shared.jetstream, &receipt, traceparent),
        )?;
        tracing::debug!(
            publish_ms = publishing.elapsed().as_secs_f64() * 1e3,
            "settled, published"
        );
        Ok(Disposition::Ack)
    }
}

/// A pure command's outcome, computed before its settle.
pub(super) struct Pure {
    /// The run's profile.
    pub(super) profile: std::sync::Arc<str>,
    /// Its receipt, without fencing token and event range yet.
    pub(super) receipt: Receipt,
    /// Its events, not numbered yet.
    pub(super) events: Vec<Event>,
    /// `receipt` as JSON, as the settle sends it.
    pub(super) receipt_json: bytes::Bytes,
    /// `events` as a JSON array, as the settle sends it.
    pub(super) events_json: bytes::Bytes,
}
