//! One attempt's events, live: numbered and stamped as the backend emits
//! them, appended to the run's log in small batches while the command
//! executes (at most [`FLUSH_EVERY`] after the first unstored one, under the
//! claim's fencing token) and published once stored. What is left when the
//! command ends goes with its commit.
//!
//! A command that ends within [`FLUSH_EVERY`] is never flushed: its events
//! travel with the receipt in one statement, as before events were live.
//! Events stay in the log when their attempt ends without a receipt; each
//! carries its attempt, and the receipt's range names the counted one.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use chrono::Utc;
use runfleet_schemas::{
    CommandCreate, CommandId, Event, EventBody, EventRange, RunId, SchemaVersion, Tenant,
};

use crate::journal::{Appended, Journal};
use crate::publisher::{publish_all_bytes, serialize_all};

/// The longest an emitted event waits before it is stored and published.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// The claim was superseded: nothing more of this attempt is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Superseded;

/// One attempt's events: those not stored yet, and those stored but not yet published.
#[derive(Debug)]
pub(crate) struct AttemptLog {
    tenant: Tenant,
    run_id: RunId,
    command_id: CommandId,
    /// The delivery each event is marked with.
    attempt: u64,
    /// The claim's fencing token.
    token: i64,
    /// The seq of the attempt's first event.
    first_seq: u64,
    /// The seq the next event gets.
    next_seq: u64,
    /// Numbered, not stored yet.
    pending: Vec<Event>,
    /// Stored, not published yet (a publish failed; tried again at the next flush).
    unpublished: Vec<Event>,
    /// When `pending` is to be flushed.
    due: Option<Instant>,
}

impl AttemptLog {
    /// An attempt of `command` (delivery `attempt`) under the claim with
    /// `token`, its events numbered from `first_seq`.
    pub(crate) fn new(command: &CommandCreate, attempt: u64, token: i64, first_seq: u64) -> Self {
        let first_seq = first_seq.max(1);
        AttemptLog {
            tenant: command.tenant.clone(),
            run_id: command.run_id.clone(),
            command_id: command.command_id.clone(),
            attempt,
            token,
            first_seq,
            next_seq: first_seq,
            pending: Vec::new(),
            unpublished: Vec::new(),
            due: None,
        }
    }

    /// Numbers and stamps `body` (already redacted and bounded) as the next event.
    pub(crate) fn push(&mut self, body: EventBody) {
        self.pending.push(Event {
            schema: Default::default(),
            version: SchemaVersion,
            tenant: self.tenant.clone(),
            run_id: self.run_id.clone(),
            command_id: Some(self.command_id.clone()),
            seq: self.next_seq,
            attempt: Some(self.attempt),
            at: Utc::now(),
            body,
        });
        self.next_seq += 1;
        self.due.get_or_insert_with(|| Instant::now() + FLUSH_EVERY);
    }

    /// When the unstored events are to be flushed (none waiting: never).
    pub(crate) fn due(&self) -> Option<Instant> {
        self.due
    }

    /// The seqs of the attempt's events so far, if it has any.
    pub(crate) fn range(&self) -> Option<EventRange> {
        (self.next_seq > self.first_seq).then(|| EventRange {
            first_seq: self.first_seq,
            last_seq: self.next_seq - 1,
        })
    }

    /// The events not stored yet (the commit stores them), and all those
    /// not yet published (the commit publishes them).
    pub(crate) fn into_rest(self) -> (Vec<Event>, Vec<Event>) {
        (self.pending, self.unpublished)
    }

    /// Stores the pending events under the claim, then publishes them. A
    /// database or broker failure keeps them for the next flush (or the
    /// commit); a superseded claim stores nothing, now or later.
    pub(crate) async fn flush(
        &mut self,
        journal: &Journal,
        jetstream: &jetstream::Context,
        traceparent: Option<&str>,
    ) -> Result<(), Superseded> {
        self.due = None;
        if !self.pending.is_empty() {
            let (_, json) = match serialize_all(&self.pending) {
                Ok(serialized) => serialized,
                Err(err) => {
                    tracing::warn!(error = %err, "events not serializable; left to the commit");
                    return Ok(());
                }
            };
            let first_seq = i64::try_from(self.pending[0].seq).unwrap_or(i64::MAX);
            let appended = journal
                .append_events(
                    self.tenant.as_str(),
                    self.run_id.as_str(),
                    self.command_id.as_str(),
                    self.token,
                    first_seq,
                    json,
                )
                .await;
            match appended {
                Ok(Appended::Stored) => self.unpublished.append(&mut self.pending),
                Ok(Appended::Fenced) => return Err(Superseded),
                Err(err) => {
                    tracing::warn!(error = %err, "live events not stored; trying again");
                    self.due = Some(Instant::now() + FLUSH_EVERY);
                    return Ok(());
                }
            }
        }
        if self.unpublished.is_empty() {
            return Ok(());
        }
        let published = match serialize_all(&self.unpublished) {
            Ok((each, _)) => {
                publish_all_bytes(jetstream, &self.unpublished, &each, traceparent).await
            }
            Err(err) => {
                tracing::warn!(error = %err, "stored events not serializable");
                return Ok(());
            }
        };
        match published {
            Ok(()) => self.unpublished.clear(),
            Err(err) => {
                tracing::warn!(error = %err, "live events stored but not published; trying again");
                self.due.get_or_insert_with(|| Instant::now() + FLUSH_EVERY);
            }
        }
        Ok(())
    }
}
