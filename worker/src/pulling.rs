//! The pull loops: work pulled only as fast as there are free execution
//! slots (a pulled message's lease clock is already running), one loop per
//! priority level sharing the slots by weight (see [`Demand`]), control
//! messages one small batch at a time, failed pull requests retried after
//! growing delays, and the drain at shutdown (in-flight work finishes
//! within the grace, then is aborted and handed back).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use runfleet_schemas::Priority;

use crate::handler::{self, Shared};
use crate::setup::WorkConsumers;

/// How long one pull request stays open waiting for messages.
const PULL_EXPIRY: Duration = Duration::from_secs(1);
/// After the grace period, how long aborted commands get to hand their messages back.
const ABORT_GRACE: Duration = Duration::from_secs(5);

/// Which priority levels had more work than they pulled last time, and
/// so how many of the slots each level asks for next: a level without a
/// backlog keeps one slot in a waiting pull (its work starts the moment it
/// arrives); the levels with one share the rest by [`Priority::weight`].
#[derive(Debug, Default)]
struct Demand {
    backlogged: [AtomicBool; 3],
}

impl Demand {
    fn index(priority: Priority) -> usize {
        match priority {
            Priority::High => 0,
            Priority::Normal => 1,
            Priority::Low => 2,
        }
    }

    /// Whether `priority` filled its last pull.
    fn record(&self, priority: Priority, filled: bool) {
        self.backlogged[Self::index(priority)].store(filled, Ordering::Relaxed);
    }

    /// How many of `total` slots `priority` asks for (at least one).
    fn wanted(&self, priority: Priority, total: usize) -> usize {
        if !self.backlogged[Self::index(priority)].load(Ordering::Relaxed) {
            return 1;
        }
        let weights: u32 = Priority::ALL
            .into_iter()
            .filter(|p| self.backlogged[Self::index(*p)].load(Ordering::Relaxed))
            .map(Priority::weight)
            .sum();
        let share = total * priority.weight() as usize / weights.max(1) as usize;
        share.max(1)
    }
}

/// Pulls work from every priority level's consumer, each as fast as it
/// gets free slots, and hands each message to a task in `tasks`.
pub(crate) async fn pull_until_shutdown(
    consumers: &WorkConsumers,
    shared: &Arc<Shared>,
    slots: &Arc<Semaphore>,
    tasks: &Mutex<JoinSet<()>>,
    shutdown: &CancellationToken,
) {
    let total = slots.available_permits().max(1);
    let demand = Demand::default();
    let levels = consumers.iter().map(|(priority, consumer)| {
        pull_level(
            *priority, consumer, shared, slots, tasks, shutdown, &demand, total,
        )
    });
    futures::future::join_all(levels).await;
}

/// One priority level's pull loop: asks for its share of the free slots
/// (waiting for one in turn with the other levels), pulls that many, and
/// hands each message to a task.
#[allow(clippy::too_many_arguments)]
async fn pull_level(
    priority: Priority,
    consumer: &consumer::Consumer<consumer::pull::Config>,
    shared: &Arc<Shared>,
    slots: &Arc<Semaphore>,
    tasks: &Mutex<JoinSet<()>>,
    shutdown: &CancellationToken,
    demand: &Demand,
    total: usize,
) {
    let mut failures = 0u32;
    loop {
        reap(tasks);
        let mut permits = tokio::select! {
            () = shutdown.cancelled() => return,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let more = demand
            .wanted(priority, total)
            .saturating_sub(1)
            .min(slots.available_permits());
        if more > 0
            && let Ok(more) = slots
                .clone()
                .try_acquire_many_owned(u32::try_from(more).unwrap_or(u32::MAX))
        {
            permits.merge(more);
        }
        let asked = permits.num_permits();
        let Some(mut batch) = pull(consumer, asked, &mut failures, shutdown).await else {
            return;
        };
        let mut received = 0;
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                next = batch.next() => next,
            };
            match next {
                Some(Ok(message)) => {
                    let Some(permit) = permits.split(1) else {
                        // More than was asked for: hand it back rather than hold it unhandled.
                        let _ = message.ack_with(jetstream::AckKind::Nak(None)).await;
                        continue;
                    };
                    received += 1;
                    let shared = shared.clone();
                    let slot = handler::Slot::new(slots.clone(), permit);
                    spawn(tasks, async move {
                        handler::handle(&shared, message, slot).await
                    });
                }
                Some(Err(err)) => {
                    // Missing heartbeats and the like are not terminal: pull again.
                    tracing::debug!(error = %err, %priority, "pull batch ended with an error");
                    break;
                }
                None => break,
            }
        }
        demand.record(priority, received >= asked);
    }
}

/// Forgets the tasks that ended.
fn reap(tasks: &Mutex<JoinSet<()>>) {
    let mut tasks = tasks.lock().unwrap_or_else(PoisonError::into_inner);
    while tasks.try_join_next().is_some() {}
}

/// Spawns a message's task.
fn spawn(tasks: &Mutex<JoinSet<()>>, task: impl Future<Output = ()> + Send + 'static) {
    tasks
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .spawn(task);
}

/// One pull request for up to `wanted` messages. A failed request is
/// retried after a growing delay (`failures` counts them in a row); `None`
/// once `shutdown` is cancelled.
async fn pull(
    consumer: &consumer::Consumer<consumer::pull::Config>,
    wanted: usize,
    failures: &mut u32,
    shutdown: &CancellationToken,
) -> Option<consumer::pull::Batch> {
    loop {
        let batch = tokio::select! {
            () = shutdown.cancelled() => return None,
            batch = consumer.batch().max_messages(wanted).expires(PULL_EXPIRY).messages() => batch,
        };
        match batch {
            Ok(batch) => {
                *failures = 0;
                return Some(batch);
            }
            Err(err) => {
                *failures += 1;
                tracing::warn!(error = %err, failures = *failures, "pull request failed");
                tokio::select! {
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(crate::retry::nak_delay(u64::from(*failures))) => {}
                }
            }
        }
    }
}

/// Handles control messages (cancel requests) one at a time until shutdown.
pub(crate) async fn pull_control(
    consumer: consumer::Consumer<consumer::pull::Config>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let Some(mut batch) = pull(&consumer, 16, &mut failures, &shutdown).await else {
            return;
        };
        while let Some(next) = batch.next().await {
            match next {
                Ok(message) if shutdown.is_cancelled() => {
                    handler::control::hand_back(&message).await;
                }
                Ok(message) => handler::control::handle(&shared, message).await,
                Err(err) => {
                    tracing::debug!(error = %err, "control batch ended with an error");
                    break;
                }
            }
        }
    }
}

/// Lets in-flight work finish within `grace`, then aborts what is left.
pub(crate) async fn drain(shared: &Shared, tasks: &mut JoinSet<()>, grace: Duration) {
    if tasks.is_empty() {
        return;
    }
    tracing::info!(in_flight = tasks.len(), grace = ?grace, "draining in-flight commands");
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_ok()
    {
        return;
    }
    tracing::warn!(
        in_flight = tasks.len(),
        "grace period over; aborting and handing messages back"
    );
    shared.abort.cancel();
    if tokio::time::timeout(ABORT_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::error!(
            left = tasks.len(),
            "tasks did not stop; their messages redeliver after ack_wait"
        );
        tasks.abort_all();
    }
}
