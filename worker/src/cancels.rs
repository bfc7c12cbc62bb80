//! Stopping running commands when they are cancelled.
//!
//! A cancel request is stored in PostgreSQL by whichever worker handles the
//! `control.cancel` message (so a command cancelled before it starts never
//! runs), then broadcast on core NATS as `runfleet.cancelled.<tenant>.<run_id>`
//! with the command id (empty for the whole run) as payload. Every worker
//! stops its matching running commands at once, once PostgreSQL confirms
//! the cancel is stored (a broadcast alone stops nothing); heartbeats also
//! check PostgreSQL, so a lost broadcast costs at most one heartbeat interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::journal::Journal;
use crate::waiters::run_key;

/// How long a broadcast waits for PostgreSQL to confirm its cancel.
const CONFIRM_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The subject prefix of cancel broadcasts (core NATS, not stored).
pub const CANCELLED_PREFIX: &str = "runfleet.cancelled";

/// Running commands (id, stop token) by run key.
type ByRun = HashMap<String, Vec<(String, CancellationToken)>>;

/// Running commands by run, each with the token that stops it.
#[derive(Debug, Default, Clone)]
pub struct Cancels {
    runs: Arc<Mutex<ByRun>>,
}

/// A running command's registration; unregisters on drop.
#[derive(Debug)]
pub struct CancelGuard {
    /// Cancelled when the command (or its run) is cancelled.
    pub token: CancellationToken,
    key: String,
    command_id: String,
    cancels: Cancels,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        let mut runs = self.cancels.runs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(commands) = runs.get_mut(&self.key) {
            commands.retain(|(id, _)| id != &self.command_id);
            if commands.is_empty() {
                runs.remove(&self.key);
            }
        }
    }
}

impl Cancels {
    /// Registers a running command.
    pub fn register(&self, tenant: &str, run_id: &str, command_id: &str) -> CancelGuard {
        let key = run_key(tenant, run_id);
        let token = CancellationToken::new();
        self.runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .push((command_id.to_owned(), token.clone()));
        CancelGuard {
            token,
            key,
            command_id: command_id.to_owned(),
            cancels: self.clone(),
        }
    }

    /// Stops the run's running commands here (only `command_id`, when given);
    /// returns how many.
    pub fn cancel(&self, tenant: &str, run_id: &str, command_id: Option<&str>) -> usize {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        let Some(commands) = runs.get(&run_key(tenant, run_id)) else {
            return 0;
        };
        let mut stopped = 0;
        for (id, token) in commands {
            if command_id.is_none_or(|wanted| wanted == id) {
                token.cancel();
                stopped += 1;
            }
        }
        stopped
    }

    /// Tells every worker to stop the run's (or the command's) execution.
    pub async fn broadcast(
        &self,
        client: &async_nats::Client,
        tenant: &str,
        run_id: &str,
        command_id: Option<&str>,
    ) {
        self.cancel(tenant, run_id, command_id);
        let subject = format!("{CANCELLED_PREFIX}.{tenant}.{run_id}");
        let payload = bytes::Bytes::from(command_id.unwrap_or_default().to_owned());
        if let Err(err) = client.publish(subject, payload).await {
            tracing::warn!(error = %err, "cancel broadcast failed; heartbeats will notice");
        }
    }

    /// Whether a command of the run (`command_id`, or any) runs here.
    fn runs_here(&self, tenant: &str, run_id: &str, command_id: Option<&str>) -> bool {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.get(&run_key(tenant, run_id)).is_some_and(|commands| {
            commands
                .iter()
                .any(|(id, _)| command_id.is_none_or(|wanted| wanted == id))
        })
    }

    /// Applies other workers' broadcasts until `stop`; `on_run` is told of
    /// whole-run cancellations (to release what backends keep for them).
    ///
    /// A broadcast is only a hint (core NATS: anyone allowed to publish on
    /// the subject could send one): it stops a command only once PostgreSQL
    /// confirms that the cancel was stored (by the worker that accepted the
    /// `control.cancel`, signature checks included), so a forged broadcast
    /// stops nothing.
    pub async fn listen(
        self,
        client: async_nats::Client,
        journal: Journal,
        stop: CancellationToken,
        on_run: impl Fn(String, String) + Send + 'static,
    ) {
        // Until it is made, lease renewals notice cancellations instead.
        let Some(mut subscription) = crate::subscribe::until_subscribed(
            &client,
            format!("{CANCELLED_PREFIX}.>"),
            None,
            "cancel broadcasts",
            &stop,
        )
        .await
        else {
            return;
        };
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => return,
                message = subscription.next() => match message {
                    Some(message) => message,
                    None => return,
                },
            };
            let mut tokens = message.subject.as_str().splitn(4, '.').skip(2);
            let (Some(tenant), Some(run_id)) = (tokens.next(), tokens.next()) else {
                continue;
            };
            let command_id = std::str::from_utf8(&message.payload).unwrap_or_default();
            let command_id = (!command_id.is_empty()).then_some(command_id);
            if !self.runs_here(tenant, run_id, command_id) && command_id.is_some() {
                continue;
            }
            let confirmed = tokio::time::timeout(
                CONFIRM_WITHIN,
                journal.cancel_recorded(tenant, run_id, command_id),
            )
            .await;
            match confirmed {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    tracing::warn!(
                        tenant,
                        run.id = run_id,
                        command.id = command_id.unwrap_or("*"),
                        "a cancel broadcast without a stored cancel: ignored"
                    );
                    continue;
                }
                // Unconfirmed now: the running command's next lease
                // renewal reads the stored cancel itself.
                Ok(Err(_)) | Err(_) => continue,
            }
            let stopped = self.cancel(tenant, run_id, command_id);
            if stopped > 0 {
                tracing::info!(
                    tenant,
                    run.id = run_id,
                    stopped,
                    "cancel broadcast: stopping running commands"
                );
            }
            if command_id.is_none() {
                on_run(tenant.to_owned(), run_id.to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancels_only_what_is_named() {
        let cancels = Cancels::default();
        let a = cancels.register("t", "r", "a");
        let b = cancels.register("t", "r", "b");
        assert_eq!(cancels.cancel("t", "r", Some("a")), 1);
        assert!(a.token.is_cancelled() && !b.token.is_cancelled());
        assert_eq!(cancels.cancel("t", "r", None), 2);
        assert!(b.token.is_cancelled());
        drop((a, b));
        assert_eq!(cancels.cancel("t", "r", None), 0, "unregistered on drop");
    }
}
