//! Waking commands that wait for their turn.
//!
//! A command whose run has an earlier command in flight holds its message
//! and waits. It is woken when the run moves on: directly when the earlier
//! command finished in this worker, and through a core NATS message on
//! `runfleet.wake.<tenant>.<run_id>` when it finished in another. Waits are
//! also bounded by a short poll, so a lost wake-up costs at most that.
//!
//! (Not PostgreSQL `NOTIFY`: a committing transaction that notified holds a
//! database-wide lock through its WAL flush, which serialized every commit
//! of the fleet and capped it near 1,300 commands/s on the benchmark.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;

/// The subject prefix of wake-ups between workers (core NATS, not stored).
pub const WAKE_PREFIX: &str = "runfleet.wake";
use tokio_util::sync::CancellationToken;

/// The longest a waiter sleeps without re-checking (notifications wake it sooner).
pub const MAX_POLL: Duration = Duration::from_millis(500);

/// Waiters by run (`tenant/run_id`).
#[derive(Debug, Default, Clone)]
pub struct Waiters {
    /// One `Notify` per run some command waits on.
    runs: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

/// The key of a run.
pub fn run_key(tenant: &str, run_id: &str) -> String {
    format!("{tenant}/{run_id}")
}

/// A command's registration as a waiter on its run; unregisters on drop.
#[derive(Debug)]
pub struct WaitGuard {
    /// Woken when the run moves on.
    pub notify: Arc<Notify>,
    /// The run's key.
    key: String,
    /// The registry, to unregister from.
    waiters: Waiters,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        let mut runs = self.waiters.runs.lock().unwrap_or_else(|e| e.into_inner());
        // Two references: the map's and ours. Nobody else waits: forget the run.
        if Arc::strong_count(&self.notify) == 2 {
            runs.remove(&self.key);
        }
    }
}

impl Waiters {
    /// Registers interest in a run. Create the `notified()` future (and
    /// `enable` it) *before* checking the run, so a wake-up between the check
    /// and the wait is not lost.
    pub fn register(&self, key: &str) -> WaitGuard {
        let notify = {
            let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
            runs.entry(key.to_owned()).or_default().clone()
        };
        WaitGuard {
            notify,
            key: key.to_owned(),
            waiters: self.clone(),
        }
    }

    /// Wakes every command waiting on the run.
    pub fn wake(&self, key: &str) {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(notify) = runs.get(key) {
            notify.notify_waiters();
        }
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
        let mut subscription = match client.subscribe(format!("{WAKE_PREFIX}.>")).await {
            Ok(subscription) => subscription,
            Err(err) => {
                tracing::warn!(error = %err, "cannot subscribe to run wake-ups; waiters fall back to polling");
                return;
            }
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
