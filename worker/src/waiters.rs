//! Waking commands that wait for their turn.
//!
//! A command whose run has an earlier command in flight holds its message
//! and waits. It is woken when the run moves on: directly when the earlier
//! command finished in this worker, and through PostgreSQL `NOTIFY
//! runfleet_run` (sent by the journal functions) when it finished in
//! another. Waits are also bounded by a short poll, so a missed
//! notification costs at most that.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
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

    /// Listens for `runfleet_run` notifications until `stop`, waking waiters;
    /// reconnects after a failure.
    pub async fn listen(self, database_url: String, stop: CancellationToken) {
        while !stop.is_cancelled() {
            if let Err(err) = self.listen_once(&database_url, &stop).await {
                tracing::warn!(error = %err, "LISTEN runfleet_run failed; waiters fall back to polling");
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn listen_once(
        &self,
        url: &str,
        stop: &CancellationToken,
    ) -> Result<(), tokio_postgres::Error> {
        let (client, mut connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                        if tx.send(n.payload().to_owned()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(err) => return Err(err),
                }
            }
            Ok(())
        });
        client.batch_execute("LISTEN runfleet_run").await?;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                key = rx.recv() => match key {
                    Some(key) => self.wake(&key),
                    None => break,
                },
            }
        }
        drop(client);
        match driver.await {
            Ok(result) => result,
            Err(_) => Ok(()),
        }
    }
}
