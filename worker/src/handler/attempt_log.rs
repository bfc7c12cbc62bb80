//! One attempt's events, live: numbered and stamped as the backend emits
//! them, appended to the run's log in small batches while the command
//! executes (about [`FLUSH_EVERY`] after the first unstored one, at most
//! [`MOST_PER_APPEND`] a statement, under the claim's fencing token) and
//! published once stored by a task of the attempt's own ([`Publisher`]), so
//! a slow broker never holds up the supervisor's heartbeats and watchdogs.
//! What is left when the command ends goes with its commit.
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
use tokio::sync::mpsc;

use crate::journal::{Appended, Journal};
use crate::publisher::{publish_all_bytes, serialize_all};

/// The longest an emitted event waits before it is stored and published.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Most events one append stores (a flood is stored in several, the
/// supervisor's other duties served between them).
pub(crate) const MOST_PER_APPEND: usize = 1_000;
/// How soon the next append follows one that left events behind.
const NEXT_APPEND: Duration = Duration::from_millis(10);
/// How long the end of an attempt waits for its publisher; what is still
/// unpublished then keeps being tried in the background (and is published
/// again by a redelivery's replay or the next execution).
const FINISH_WAIT: Duration = Duration::from_secs(5);

/// Publishes an attempt's stored events in the background, in order, all
/// that is queued at once; what fails is tried again with the next, and
/// what is still unpublished when it is closed is handed back.
#[derive(Debug)]
pub(crate) struct Publisher {
    batches: mpsc::UnboundedSender<Vec<Event>>,
    done: tokio::task::JoinHandle<Vec<Event>>,
}

impl Publisher {
    fn start(jetstream: jetstream::Context, traceparent: Option<String>) -> Publisher {
        let (batches, mut received) = mpsc::unbounded_channel::<Vec<Event>>();
        let done = tokio::spawn(async move {
            let mut failed: Vec<Event> = Vec::new();
            while let Some(mut batch) = received.recv().await {
                failed.append(&mut batch);
                while let Ok(mut more) = received.try_recv() {
                    failed.append(&mut more);
                }
                let Ok((each, _)) = serialize_all(&failed) else {
                    failed.clear();
                    continue;
                };
                match publish_all_bytes(&jetstream, &failed, &each, traceparent.as_deref()).await {
                    Ok(()) => failed.clear(),
                    Err(err) => {
                        tracing::warn!(error = %err, "live events stored but not published; trying again");
                    }
                }
            }
            failed
        });
        Publisher { batches, done }
    }

    /// Closes it: waits (at most [`FINISH_WAIT`]) for its publishes, and
    /// returns what it could not publish (nothing when it ran out of time:
    /// it goes on in the background).
    pub(crate) async fn finish(self) -> Vec<Event> {
        drop(self.batches);
        match tokio::time::timeout(FINISH_WAIT, self.done).await {
            Ok(done) => done.unwrap_or_default(),
            Err(_) => {
                tracing::warn!(
                    "live events still being published after {FINISH_WAIT:?}; left to the background"
                );
                Vec::new()
            }
        }
    }
}

/// The claim was superseded: nothing more of this attempt is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Superseded;

/// Why the events in flight could not be settled before the commit.
#[derive(Debug)]
pub(crate) enum Unsettled {
    /// The claim was superseded.
    Superseded,
    /// PostgreSQL did not answer (the commit would not either).
    Db(crate::db::DbError),
}

/// What is left of an attempt's events when it ends ([`AttemptLog::into_rest`]).
pub(crate) struct Rest {
    /// Not stored yet.
    pub(crate) unstored: Vec<Event>,
    /// Stored, not handed to the publisher.
    pub(crate) unpublished: Vec<Event>,
    /// Publishing what was handed to it.
    pub(crate) publisher: Option<Publisher>,
}

impl Rest {
    /// The stored events still to publish: the publisher's leftovers (once
    /// it is through, or out of time) and those never handed to it.
    pub(crate) async fn stored_unpublished(&mut self) -> Vec<Event> {
        let mut left = match self.publisher.take() {
            Some(publisher) => publisher.finish().await,
            None => Vec::new(),
        };
        left.append(&mut self.unpublished);
        left
    }
}

/// One attempt's events: those not sent yet, the batch sent whose answer
/// was lost, and those stored but not yet published.
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
    /// Numbered, not sent yet.
    pending: Vec<Event>,
    /// Sent without an answer (the database failed, or only its answer
    /// did): sent again exactly so before anything newer, so a batch whose
    /// first try was stored is recognized as such (`V14`).
    in_flight: Vec<Event>,
    /// Stored, not handed to the publisher yet.
    unpublished: Vec<Event>,
    /// Publishes what was stored, once something was.
    publisher: Option<Publisher>,
    /// When to flush next.
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
            in_flight: Vec::new(),
            unpublished: Vec::new(),
            publisher: None,
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

    /// Whether some events are not stored yet.
    pub(crate) fn has_unstored(&self) -> bool {
        !(self.pending.is_empty() && self.in_flight.is_empty())
    }

    /// When to flush next (nothing waiting: never).
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

    /// What is left: the events not stored yet (the commit stores them),
    /// those stored and not handed to the publisher, and the publisher
    /// (finish it once the outcome is committed). Call
    /// [`AttemptLog::settle_in_flight`] first.
    pub(crate) fn into_rest(self) -> Rest {
        Rest {
            unstored: self.pending,
            unpublished: self.unpublished,
            publisher: self.publisher,
        }
    }

    /// Stores the events not stored yet under the claim, then publishes
    /// every stored one not yet published (also when the claim was
    /// superseded: what is stored is the log). A database or broker failure
    /// keeps them for the next flush (or the commit).
    pub(crate) async fn flush(
        &mut self,
        journal: &Journal,
        jetstream: &jetstream::Context,
        traceparent: Option<&str>,
    ) -> Result<(), Superseded> {
        self.due = None;
        if self.in_flight.is_empty() {
            let take = self.pending.len().min(MOST_PER_APPEND);
            self.in_flight = self.pending.drain(..take).collect();
        }
        let stored = match self.store_in_flight(journal).await {
            Ok(()) => Ok(()),
            Err(Unsettled::Superseded) => Err(Superseded),
            Err(Unsettled::Db(err)) => {
                tracing::warn!(error = %err, "live events not stored; trying again");
                Ok(())
            }
        };
        self.publish_stored(jetstream, traceparent);
        if stored.is_ok() && self.in_flight.is_empty() && !self.pending.is_empty() {
            self.due = Some(Instant::now() + NEXT_APPEND);
        } else if !(self.pending.is_empty() && self.in_flight.is_empty()) {
            self.due = Some(Instant::now() + FLUSH_EVERY);
        }
        stored
    }

    /// Before the commit: the batch in flight, if any, stored or found
    /// stored, so the commit never sends a seq twice.
    ///
    /// # Errors
    /// [`Unsettled`]: the claim was superseded, or PostgreSQL failed.
    pub(crate) async fn settle_in_flight(&mut self, journal: &Journal) -> Result<(), Unsettled> {
        self.store_in_flight(journal).await
    }

    /// Sends the batch in flight; stored, it waits to be published.
    async fn store_in_flight(&mut self, journal: &Journal) -> Result<(), Unsettled> {
        let Some(first) = self.in_flight.first() else {
            return Ok(());
        };
        let first_seq = i64::try_from(first.seq).unwrap_or(i64::MAX);
        let json = serialize_all(&self.in_flight)
            .map_err(|e| {
                Unsettled::Db(crate::db::DbError::Unexpected(format!(
                    "serializing events: {e}"
                )))
            })?
            .1;
        let appended = journal
            .append_events(
                self.tenant.as_str(),
                self.run_id.as_str(),
                self.command_id.as_str(),
                self.token,
                first_seq,
                json,
            )
            .await
            .map_err(Unsettled::Db)?;
        match appended {
            Appended::Stored => {
                self.unpublished.append(&mut self.in_flight);
                Ok(())
            }
            Appended::Fenced => Err(Unsettled::Superseded),
        }
    }

    /// Hands the stored events not yet published to the publisher (started
    /// on first use); it publishes them in the background.
    pub(crate) fn publish_stored(
        &mut self,
        jetstream: &jetstream::Context,
        traceparent: Option<&str>,
    ) {
        if self.unpublished.is_empty() {
            return;
        }
        let publisher = self.publisher.get_or_insert_with(|| {
            Publisher::start(jetstream.clone(), traceparent.map(str::to_owned))
        });
        if let Err(unsent) = publisher
            .batches
            .send(std::mem::take(&mut self.unpublished))
        {
            // The publisher is gone (it never fails on its own): kept for the commit.
            self.unpublished = unsent.0;
        }
    }
}
