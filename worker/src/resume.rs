//! Publishing parked commands again when they are due.
//!
//! A command that waited for an earlier seq longer than a moment is parked
//! in PostgreSQL and its message acknowledged (see the handler). It is due
//! when its run has moved on to it (or when its turn can never come: the run
//! ended, it was cancelled, it waited as long as it may). Then its stored
//! message is published again on its subject, under the `Nats-Msg-Id`
//! `resume:<run_id>:<command_id>:<parked_at µs>` and with the header
//! `Runfleet-Waiting-Since` (when the fleet first saw it), and only after the
//! PubAck is the parking cleared. A worker looks right after each commit that
//! moved a run with a recorded successor; a sweep every [`SWEEP_EVERY`]
//! catches whatever a crash or a race left parked.

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::jetstream;
use chrono::Utc;
use tokio::sync::mpsc;

use crate::journal::{Among, Journal, Parked};
use crate::publisher::{CommandAgain, publish_command_again};
use crate::tasks::TaskTree;

/// How often the sweep runs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Parkings younger than this are left to the commit that moves their run.
const SWEEP_AGE: Duration = Duration::from_secs(2);

/// Most parked commands published in one round.
const ROUND: usize = 512;

/// Tells the resumer which runs moved on.
#[derive(Debug, Clone)]
pub struct Resumer {
    /// Runs (`(tenant, run_id)`) that moved on.
    moved: mpsc::Sender<(String, String)>,
}

impl Resumer {
    /// The run moved on: publish its parked successor, if it has one. (When
    /// the queue is full the sweep finds it instead.)
    pub fn run_moved_on(&self, tenant: &str, run_id: &str) {
        let _ = self.moved.try_send((tenant.to_owned(), run_id.to_owned()));
    }
}

/// Starts the resumer, a service of `tasks` (it stops with them).
/// `give_up_after` is how long a command may wait for its turn in all
/// (`max_attempts × order_wait`).
pub fn start(
    journal: Journal,
    js: jetstream::Context,
    give_up_after: Duration,
    tasks: &TaskTree,
) -> Resumer {
    let (moved, mut queue) = mpsc::channel::<(String, String)>(4096);
    tasks.spawn_service("resumer", |stop| async move {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let among_runs: Vec<(String, String)>;
            tokio::select! {
                () = stop.cancelled() => return,
                first = queue.recv() => {
                    let Some(first) = first else { return };
                    let mut runs = BTreeSet::from([first]);
                    while runs.len() < ROUND {
                        match queue.try_recv() {
                            Ok(run) => { runs.insert(run); }
                            Err(_) => break,
                        }
                    }
                    among_runs = runs.into_iter().collect();
                }
                _ = sweep.tick() => among_runs = Vec::new(),
            }
            if among_runs.is_empty() {
                // The backstop for delayed commands whose timer never fired.
                crate::timers::publish_overdue(&journal, &js, ROUND as i64).await;
            }
            let expired = Utc::now() - give_up_after;
            let among = if among_runs.is_empty() {
                Among::ParkedBefore(Utc::now() - SWEEP_AGE)
            } else {
                Among::Runs(&among_runs)
            };
            match journal.parked_due(among, expired, ROUND as i32).await {
                Ok(due) if !due.is_empty() => republish(&journal, &js, due).await,
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "could not look for due parked commands"),
            }
        }
    });
    Resumer { moved }
}

/// Publishes each due command's message again, then clears the parkings
/// whose publish was acknowledged (the others stay parked for the sweep).
async fn republish(journal: &Journal, js: &jetstream::Context, due: Vec<Parked>) {
    let publishes = due.iter().map(|parked| async move {
        let msg_id = msg_id(parked);
        let again = CommandAgain {
            tenant: &parked.tenant,
            run_id: &parked.run_id,
            message: parked.message.clone().into(),
            msg_id: &msg_id,
            waiting_since: Some(parked.first_seen),
            traceparent: None,
        };
        publish_command_again(js, again)
            .await
            .ok()
            .map(|()| parked.clone())
    });
    let published: Vec<Parked> = futures::future::join_all(publishes)
        .await
        .into_iter()
        .flatten()
        .collect();
    if published.len() < due.len() {
        tracing::warn!(
            due = due.len(),
            published = published.len(),
            "some parked commands could not be published again; the sweep retries them"
        );
    }
    tracing::debug!(count = published.len(), "parked commands published again");
    if let Err(err) = journal.unpark(&published).await {
        // Still parked: the sweep publishes them again under the same ids
        // (deduplicated by JetStream) and clears them then.
        tracing::warn!(error = %err, "could not clear parkings");
    }
}

/// The `Nats-Msg-Id` of one parking's republished message.
fn msg_id(parked: &Parked) -> String {
    format!(
        "resume:{}:{}:{}",
        parked.run_id,
        parked.command_id,
        parked.parked_at.timestamp_micros()
    )
}
