//! The worker's background tasks as one supervised tree.
//!
//! Every long-lived task (the wake-up and cancel listeners, the micro
//! service, the session answerer, the registration heartbeat, the resumer,
//! the HTTP listener) is spawned here under a name, on one [`TaskTracker`],
//! with a child of the tree's one stop token (the control consumer too, as
//! a job: it stops pulling at the shutdown request):
//!
//! - a **service** runs until the tree stops; one that ends before that —
//!   it returned, failed or panicked — is logged with its name and why, and
//!   [`TaskTree::died`] names it, so `/readyz` reports the worker not ready
//!   (a worker that cannot hear wake-ups or answer the operator API is not
//!   healthy, even though it still executes commands);
//! - a **job** (closing what backends keep for a cancelled run) ends by
//!   itself; a panic is logged with its name;
//! - [`TaskTree::stop`] cancels the token, waits for every task up to a
//!   grace period, and logs the names of those still running.
//!
//! The tree stops after the worker has drained its in-flight commands:
//! they may still need the listeners, and `/readyz` must say "draining"
//! while they finish.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The worker's background tasks.
#[derive(Debug, Clone, Default)]
pub struct TaskTree {
    /// Every task spawned.
    tracker: TaskTracker,
    /// Cancelled by [`TaskTree::stop`]; every task gets a child.
    stop: CancellationToken,
    /// Which tasks run, and which services died.
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Tasks running, by name (a job may run several times at once).
    running: BTreeMap<&'static str, usize>,
    /// Services that ended before the tree stopped (why is in the log).
    died: Vec<&'static str>,
}

/// Counts a task as running until it is dropped (even by a panic).
struct Running {
    name: &'static str,
    state: Arc<Mutex<State>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        if let Some(n) = state.running.get_mut(self.name) {
            *n -= 1;
            if *n == 0 {
                state.running.remove(self.name);
            }
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TaskTree {
    /// An empty tree.
    pub fn new() -> TaskTree {
        TaskTree::default()
    }

    /// A token cancelled when the tree stops, for a task to watch.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.child_token()
    }

    /// Spawns `task`, which should run until the tree stops (`make` gets
    /// its stop token); ending earlier is a failure of the worker.
    pub fn spawn_service<F>(&self, name: &'static str, make: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        let state = Arc::clone(&self.state);
        let task = make(self.stop_token());
        // Its handle is not needed: the tree watches it.
        drop(self.spawn(name, async move {
            let why = match AssertUnwindSafe(task).catch_unwind().await {
                Ok(()) if stop.is_cancelled() => return,
                Ok(()) => "it ended".to_owned(),
                Err(panic) => format!("it panicked: {}", panic_message(&*panic)),
            };
            tracing::error!(task = name, "background task stopped unexpectedly: {why}");
            lock(&state).died.push(name);
        }));
    }

    /// Spawns `task`, which ends by itself; a panic is logged with `name`.
    pub fn spawn_job<F>(&self, name: &'static str, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn(name, async move {
            if let Err(panic) = AssertUnwindSafe(task).catch_unwind().await {
                tracing::error!(
                    task = name,
                    "background job panicked: {}",
                    panic_message(&*panic)
                );
            }
        })
    }

    fn spawn<F>(&self, name: &'static str, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        *lock(&self.state).running.entry(name).or_default() += 1;
        let running = Running {
            name,
            state: Arc::clone(&self.state),
        };
        self.tracker.spawn(async move {
            let _running = running;
            task.await;
        })
    }

    /// The names of the services that ended before the tree stopped (why
    /// each did is in the log: a panic's message is not for `/readyz`).
    pub fn died(&self) -> Vec<&'static str> {
        lock(&self.state).died.clone()
    }

    /// Stops every task: cancels their token, waits up to `grace`, and
    /// logs the names of those that did not stop (they are left to the
    /// runtime's shutdown). True when all stopped.
    pub async fn stop(&self, grace: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
        {
            return true;
        }
        let left: Vec<String> = lock(&self.state)
            .running
            .iter()
            .map(|(name, n)| {
                if *n > 1 {
                    format!("{name} (×{n})")
                } else {
                    (*name).to_owned()
                }
            })
            .collect();
        tracing::warn!(
            tasks = %left.join(", "),
            grace = ?grace,
            "background tasks did not stop in time"
        );
        false
    }
}

/// A panic's message, when it has one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_service_that_ends_early_is_named_and_one_that_stops_is_not() {
        let tree = TaskTree::new();
        tree.spawn_service("steady", |stop| async move { stop.cancelled().await });
        tree.spawn_service("quitter", |_| async {});
        tree.spawn_service("crasher", |_| async { panic!("boom") });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tree.died().len() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "{:?}", tree.died());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut died = tree.died();
        died.sort_unstable();
        assert_eq!(died, ["crasher", "quitter"]);
        assert!(tree.stop(Duration::from_secs(5)).await);
        assert_eq!(tree.died().len(), 2, "stopping is not dying");
    }

    #[tokio::test]
    async fn stop_waits_for_jobs_and_gives_up_on_stuck_tasks() {
        let tree = TaskTree::new();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        tree.spawn_job("short", async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = done_tx.send(());
        });
        assert!(tree.stop(Duration::from_secs(5)).await);
        assert!(done_rx.await.is_ok(), "the job ran to its end");

        let stuck = TaskTree::new();
        stuck.spawn_service("deaf", |_| std::future::pending());
        assert!(!stuck.stop(Duration::from_millis(50)).await);
        assert!(
            lock(&stuck.state).running.contains_key("deaf"),
            "the stuck task is still counted"
        );
    }
}
