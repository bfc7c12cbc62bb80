//! Waking commands that wait for their turn.
//!
//! A command whose run has an earlier command in flight holds its message
//! (but not a worker slot) and waits. When the run moves on, only the waiter
//! with the lowest `seq` is woken: it is the only one that can be next, and
//! waking every waiter of a run with hundreds of commands waiting would
//! cost hundreds of statements per completed command. It is woken directly
//! when the earlier command finished in this worker, and through a core
//! NATS message on `runfleet.wake.<tenant>.<run_id>` when it finished in
//! another. Waits are also bounded by a poll (growing to [`MAX_POLL`]), so
//! a lost wake-up costs at most that.
//!
//! (Not PostgreSQL `NOTIFY`: a committing transaction that notified holds a
//! database-wide lock through its WAL flush, which serialized every commit
//! of the fleet and capped it near 1,300 commands/s on the benchmark.)

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;

/// The subject prefix of wake-ups between workers (core NATS, not stored).
pub const WAKE_PREFIX: &str = "runfleet.wake";
use tokio_util::sync::CancellationToken;

/// The longest a waiter sleeps without re-checking (a wake-up comes sooner).
pub const MAX_POLL: Duration = Duration::from_secs(2);

/// The waiters of one run, lowest `seq` first (then oldest).
type RunWaiters = BTreeMap<(u64, u64), Arc<Notify>>;

/// Waiters by run (`tenant/run_id`).
#[derive(Debug, Default, Clone)]
pub struct Waiters {
    /// Each run's waiters.
    runs: Arc<Mutex<HashMap<String, RunWaiters>>>,
    /// Tells apart waiters of one seq (a redelivered copy, say).
    next_id: Arc<AtomicU64>,
}

/// The key of a run.
pub fn run_key(tenant: &str, run_id: &str) -> String {
    format!("{tenant}/{run_id}")
}

/// A command's registration as a waiter on its run; unregisters on drop.
#[derive(Debug)]
pub struct WaitGuard {
    /// Woken (with a stored permit: a wake-up while the command is busy
    /// re-checking is not lost) when it is next in line and the run moves on.
    pub notify: Arc<Notify>,
    /// The run's key.
    key: String,
    /// Its place in the run's line.
    place: (u64, u64),
    /// The registry, to unregister from.
    waiters: Waiters,
}

impl WaitGuard {
    /// Leaves the run's line (the command is no longer waiting); dropping
    /// the guard does the same.
    pub fn leave(&self) {
        let mut runs = self.waiters.lock();
        if let Some(line) = runs.get_mut(&self.key) {
            line.remove(&self.place);
            if line.is_empty() {
                runs.remove(&self.key);
            }
        }
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.leave();
    }
}

impl Waiters {
    /// Registers the command with `seq` as a waiter on a run.
    pub fn register(&self, key: &str, seq: u64) -> WaitGuard {
        let place = (seq, self.next_id.fetch_add(1, Ordering::Relaxed));
        let notify = Arc::new(Notify::new());
        self.lock()
            .entry(key.to_owned())
            .or_default()
            .insert(place, notify.clone());
        WaitGuard {
            notify,
            key: key.to_owned(),
            place,
            waiters: self.clone(),
        }
    }

    /// Wakes the run's next waiter (the lowest `seq`) in this worker.
    pub fn wake(&self, key: &str) {
        if let Some(line) = self.lock().get(key)
            && let Some(next) = line.values().next()
        {
            next.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunWaiters>> {
        self.runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes the run's waiters here and, through core NATS, in every other worker.
    pub fn announce(&self, client: &async_nats::Client, tenant: &str, run_id: &str) {
        self.wake(&run_key(tenant, run_id));
        let client = client.clone();
        let subject = format!("{WAKE_PREFIX}.{tenant}.{run_id}");
        tokio::spawn(async move {
            // At most once is enough: waiters also poll.
            let _ = client.publish(subject, bytes::Bytes::new()).await;
        });
    }

    /// Wakes local waiters for every announcement of another worker until `stop`.
    pub async fn listen(self, client: async_nats::Client, stop: CancellationToken) {
        // Until it is made, waiters fall back to polling.
        let Some(mut subscription) = crate::subscribe::until_subscribed(
            &client,
            format!("{WAKE_PREFIX}.>"),
            None,
            "run wake-ups",
            &stop,
        )
        .await
        else {
            return;
        };
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                message = subscription.next() => match message {
                    Some(message) => {
                        let mut tokens = message.subject.as_str().splitn(4, '.').skip(2);
                        if let (Some(tenant), Some(run_id)) = (tokens.next(), tokens.next()) {
                            self.wake(&run_key(tenant, run_id));
                        }
                    }
                    None => return,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_up_goes_to_the_lowest_seq_in_line() {
        let waiters = Waiters::default();
        let third = waiters.register("acme/r1", 3);
        let second = waiters.register("acme/r1", 2);
        let other_run = waiters.register("acme/r2", 1);
        waiters.wake("acme/r1");
        // The permit is stored for the second: it is woken even though it
        // was not waiting yet; the third and the other run are not.
        tokio::time::timeout(Duration::from_secs(1), second.notify.notified())
            .await
            .unwrap();
        let not_woken = |guard: &WaitGuard| {
            let notify = guard.notify.clone();
            async move {
                tokio::time::timeout(Duration::from_millis(50), notify.notified())
                    .await
                    .is_err()
            }
        };
        assert!(not_woken(&third).await);
        assert!(not_woken(&other_run).await);
        // Once the second leaves the line, the third is next.
        second.leave();
        waiters.wake("acme/r1");
        tokio::time::timeout(Duration::from_secs(1), third.notify.notified())
            .await
            .unwrap();
        drop((third, second, other_run));
        assert!(waiters.lock().is_empty());
    }
}
