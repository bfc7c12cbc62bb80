//! Releasing commands that wait on a concurrency limit of their key.
//!
//! A command whose turn comes while its run's key (`tenant:<tenant>`, or
//! `tenant:<tenant>:<concurrency_key>`) is at a limit is answered `limited`
//! by the journal; the handler records it in `limited_commands` with its
//! bytes and acknowledges its message, so waiting spends no delivery, no
//! slot and no ack-pending place. Every [`RELEASE_EVERY`] while commands
//! wait (every [`IDLE_EVERY`] while none do, and at once when the worker
//! limits one), one worker of the fleet (PostgreSQL lets one in at a
//! time) asks which of them their keys
//! have room for now (`max_running` minus the key's live claims and the
//! commands released in the last seconds but not started yet; for a rate,
//! the tokens its bucket holds and gains in the next tenth of a second),
//! oldest first, and publishes them again on their subjects under the
//! `Nats-Msg-Id` `limited:<run_id>:<command_id>:<limited_at µs>`, with
//! `Runfleet-Waiting-Since`. The start itself is admitted by the journal
//! again, so a release that races another start only waits once more. A
//! released command that never arrives (a lost publish) is released again
//! five seconds later (thirty on a key without a limit), and a tenant has
//! at most [`crate::fairness::FAIR_WINDOW`] commands released and not
//! started at a time (see [`crate::fairness`]). Each round also looks whether any limit is set at
//! all: while none is, the fused settle of pure commands does not look for
//! one (a new limit takes effect on them within [`IDLE_EVERY`]).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;

use crate::journal::{Journal, Released};
use crate::publisher::{CommandAgain, publish_command_again};
use crate::tasks::TaskTree;
use tokio::sync::Notify;

/// How often the fleet looks for limited commands with room.
pub const RELEASE_EVERY: Duration = Duration::from_millis(100);

/// How often a worker looks while nothing waits (it looks at once when it
/// limits a command itself).
pub const IDLE_EVERY: Duration = Duration::from_secs(1);

/// Most commands released in one round.
const ROUND: i32 = 512;

/// Tells this worker's releaser that a command now waits.
#[derive(Debug, Clone, Default)]
pub struct Releaser {
    wake: Arc<Notify>,
}

impl Releaser {
    /// A command was limited here: look at once, then every [`RELEASE_EVERY`].
    pub fn command_waits(&self) {
        self.wake.notify_one();
    }
}

/// Starts the releaser, a service of `tasks`.
pub fn start(journal: Journal, js: jetstream::Context, tasks: &TaskTree) -> Releaser {
    let releaser = Releaser::default();
    let wake = Arc::clone(&releaser.wake);
    tasks.spawn_service("limit-releaser", |stop| async move {
        // Look at once: commands may wait from before this worker started.
        let mut waiting = true;
        loop {
            let pause = if waiting { RELEASE_EVERY } else { IDLE_EVERY };
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
                () = wake.notified() => {}
            }
            match journal
                .release_limited(ROUND, crate::fairness::FAIR_WINDOW)
                .await
            {
                Ok(released) if !released.is_empty() => republish(&js, released).await,
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "could not release limited commands"),
            }
            waiting = journal.look_at_limits().await.unwrap_or(true);
        }
    });
    releaser
}

/// Publishes each released command again (a failed publish is released
/// again by a later round).
async fn republish(js: &jetstream::Context, released: Vec<Released>) {
    let count = released.len();
    let publishes = released.into_iter().map(|command| async move {
        let msg_id = msg_id(&command);
        let again = CommandAgain {
            tenant: &command.tenant,
            run_id: &command.run_id,
            message: command.message.clone().into(),
            msg_id: &msg_id,
            waiting_since: Some(command.first_seen),
            traceparent: None,
        };
        publish_command_again(js, again).await.ok()
    });
    let published = futures::future::join_all(publishes)
        .await
        .into_iter()
        .flatten()
        .count();
    if published < count {
        tracing::warn!(
            count,
            published,
            "some limited commands could not be published again; they are released again later"
        );
    }
    tracing::debug!(count = published, "limited commands released");
}

/// The `Nats-Msg-Id` of one release.
fn msg_id(command: &Released) -> String {
    format!(
        "limited:{}:{}:{}",
        command.run_id,
        command.command_id,
        command.limited_at.timestamp_micros()
    )
}
