//! Supervising one execution: the backend runs while the supervisor keeps
//! the lease, gathers its events (appending them to the run's log as they
//! come, [`AttemptLog`]) and watches it.
//!
//! Watchdogs, each ending the command with its own failure kind:
//! - the command's own `timeout_ms` → `timed-out`;
//! - the profile's `max_duration` → `max-duration`;
//! - no event or output for the profile's `inactivity_timeout` → `inactivity-timeout`;
//! - lease renewal (in-progress ack + PostgreSQL lease) failing
//!   `RUNFLEET_MAX_MISSED_HEARTBEATS` times in a row, or a newer claim → `heartbeat-lost`;
//! - a cancel (broadcast, or seen by a heartbeat) → `cancelled`;
//! - a `cost.<currency>` metric exhausting a run budget → `budget-exhausted`.
//!
//! Their messages name the phase the command was in, how long each phase
//! took and the last event. Stopping asks the backend to wind down (a
//! process gets SIGTERM, then SIGKILL after the kill grace) and waits for it
//! a bounded time; a worker shutting down stops it the same way, but the
//! message is handed back rather than failed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use runfleet_schemas::{CommandCreate, EventBody, FailureKind};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::attempt_log::{AttemptLog, Superseded};
use super::breadcrumbs::Breadcrumbs;
use super::event_text::scrubbed;
use crate::backend::{BackendError, Signal};
use crate::journal::{Journal, Renewal};
use crate::profiles::Profile;
use crate::redact::Redactor;

/// Events one command may record; later ones are counted, not kept.
pub(crate) const MAX_EVENTS_PER_COMMAND: usize = 5_000;
/// Bytes of events (as JSON) one command may record; later ones are counted, not kept.
pub(crate) const MAX_EVENT_BYTES_PER_COMMAND: usize = 8 << 20;
/// Beyond the kill grace, how long a stopping backend may take to return.
const STOP_MARGIN: Duration = Duration::from_secs(2);

/// What the supervisor needs besides the backend.
pub(crate) struct Supervision<'a> {
    pub command: &'a CommandCreate,
    pub message: &'a jetstream::Message,
    pub journal: &'a Journal,
    /// Where live events are published.
    pub jetstream: &'a jetstream::Context,
    /// The trace the command continues, if any.
    pub traceparent: Option<&'a str>,
    /// Counts lease renewals.
    pub metrics: &'a crate::metrics::Metrics,
    /// Scrubs events as they arrive (before they are cut or summarized).
    pub redactor: &'a Redactor,
    pub profile: &'a Profile,
    pub fencing_token: i64,
    pub lease: Duration,
    pub heartbeat: Duration,
    pub max_missed_heartbeats: u32,
    /// Cancelled when the worker must stop now.
    pub abort: &'a CancellationToken,
    /// Cancelled when the command is cancelled.
    pub cancelled: &'a CancellationToken,
    /// The run's budgets and what it spent before this command.
    pub budgets: &'a BTreeMap<String, f64>,
    pub spent: &'a BTreeMap<String, f64>,
}

/// How an execution ended.
pub(crate) struct Supervised {
    /// The output, or why there is none.
    pub outcome: Result<Value, Stop>,
    /// The attempt's events (capped): stored as they came, the rest for the commit.
    pub log: AttemptLog,
    /// What it spent, per currency.
    pub cost: BTreeMap<String, f64>,
}

/// Why execution stopped without an output.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The worker is shutting down: hand the message back (no receipt; the
    /// attempt's events stay, with a last one saying so).
    Aborted,
    /// A failure of the given kind.
    Failed(BackendError),
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// Runs `execution` (the backend's, with `received` its signals and `stop`
/// its wind-down request) under supervision until it ends or a watchdog
/// stops it; its events go to `log`.
pub(crate) async fn supervise(
    s: Supervision<'_>,
    mut log: AttemptLog,
    execution: impl Future<Output = Result<Value, BackendError>>,
    mut received: mpsc::UnboundedReceiver<Signal>,
    stop_backend: CancellationToken,
) -> Supervised {
    tokio::pin!(execution);

    let start = Instant::now();
    let timeout = s.command.timeout_ms.map(Duration::from_millis);
    let timeout_at = timeout.and_then(|t| start.checked_add(t));
    let max_duration_at = s.profile.max_duration.and_then(|t| start.checked_add(t));
    let mut crumbs = Breadcrumbs::new();
    let mut kept = 0usize;
    let mut kept_bytes = 0usize;
    let mut dropped = 0u64;
    let mut cost: BTreeMap<String, f64> = BTreeMap::new();
    let mut heartbeat = tokio::time::interval(s.heartbeat);
    heartbeat.tick().await; // the first tick is immediate
    let mut missed = 0;

    let mut keep = |body: EventBody,
                    crumbs: &mut Breadcrumbs,
                    log: &mut AttemptLog,
                    cost: &mut BTreeMap<String, f64>|
     -> Option<String> {
        let body = scrubbed(s.redactor, body);
        crumbs.last_activity = Instant::now();
        crumbs.saw(&body);
        let mut exhausted = None;
        if let EventBody::Metric { name, value } = &body
            && let Some(currency) = name.strip_prefix("cost.")
            && value.is_finite()
        {
            let total = cost.entry(currency.to_owned()).or_default();
            *total += value;
            if let Some(budget) = s.budgets.get(currency) {
                let spent = s.spent.get(currency).copied().unwrap_or_default() + *total;
                if spent >= *budget {
                    exhausted = Some(format!(
                        "budget {currency} exhausted: spent {spent} of {budget}"
                    ));
                }
            }
        }
        let size = serde_json::to_string(&body).map_or(0, |t| t.len());
        if kept < MAX_EVENTS_PER_COMMAND && kept_bytes + size <= MAX_EVENT_BYTES_PER_COMMAND {
            kept += 1;
            kept_bytes += size;
            log.push(body);
        } else {
            dropped += 1;
        }
        exhausted
    };

    let stopped: Result<Result<Value, BackendError>, Stop> = loop {
        let inactive_at = s
            .profile
            .inactivity_timeout
            .and_then(|t| crumbs.last_activity.checked_add(t));
        // Biased: the flush, the heartbeat and the stop requests come first
        // (each is ready only now and then, and a backend flooding events
        // cannot starve them); then the backend's signals, before its end (a
        // last cost metric can still exhaust a budget); then the deadlines,
        // so an execution that ended while a flush or heartbeat was awaited
        // counts; inactivity last, so an event already waiting is activity.
        tokio::select! {
            biased;
            () = sleep_until(log.due()) => {
                if log.flush(s.journal, s.jetstream, s.traceparent).await == Err(Superseded) {
                    break Err(superseded(&crumbs));
                }
            }
            _ = heartbeat.tick() => match renew(&s).await {
                Ok(Renewal::Renewed) => {
                    s.metrics.lease_renewed();
                    missed = 0;
                }
                Ok(Renewal::Lost) => break Err(superseded(&crumbs)),
                Ok(Renewal::Cancelled) => {
                    break Err(Stop::Failed(BackendError::new(
                        FailureKind::Cancelled,
                        format!("cancelled {}", crumbs.describe()),
                    )));
                }
                Err(err) => {
                    s.metrics.lease_renewal_failed();
                    missed += 1;
                    tracing::warn!(error = %err, missed, "lease renewal failed");
                    if missed >= s.max_missed_heartbeats {
                        break Err(Stop::Failed(BackendError::new(
                            FailureKind::HeartbeatLost,
                            format!("{missed} lease renewals failed in a row (last: {err}) {}", crumbs.describe()),
                        )));
                    }
                }
            },
            () = s.abort.cancelled() => break Err(Stop::Aborted),
            () = s.cancelled.cancelled() => {
                break Err(Stop::Failed(BackendError::new(
                    FailureKind::Cancelled,
                    format!("cancelled {}", crumbs.describe()),
                )));
            }
            signal = received.recv() => match signal {
                Some(Signal::Event(body)) => {
                    if let Some(why) = keep(body, &mut crumbs, &mut log, &mut cost) {
                        break Err(Stop::Failed(BackendError::new(FailureKind::BudgetExhausted, why)));
                    }
                }
                Some(Signal::Activity) => crumbs.last_activity = Instant::now(),
                None => {}
            },
            result = &mut execution => break Ok(result),
            () = sleep_until(timeout_at) => {
                break Err(Stop::Failed(BackendError::new(
                    FailureKind::TimedOut,
                    format!("the command's timeout of {} ms elapsed {}",
                        timeout.unwrap_or_default().as_millis(), crumbs.describe()),
                )));
            }
            () = sleep_until(max_duration_at) => {
                break Err(Stop::Failed(BackendError::new(
                    FailureKind::MaxDuration,
                    format!("ran longer than the profile's max_duration of {} {}",
                        humantime::format_duration(s.profile.max_duration.unwrap_or_default()),
                        crumbs.describe()),
                )));
            }
            () = sleep_until(inactive_at) => {
                break Err(Stop::Failed(BackendError::new(
                    FailureKind::InactivityTimeout,
                    format!("no event or output for {} {}",
                        humantime::format_duration(s.profile.inactivity_timeout.unwrap_or_default()),
                        crumbs.describe()),
                )));
            }
        }
    };

    let outcome = match stopped {
        Ok(result) => result.map_err(Stop::Failed),
        Err(stop) => {
            // Ask the backend to wind down, and wait for it (bounded).
            stop_backend.cancel();
            let limit = s.profile.kill_grace() + STOP_MARGIN;
            let wound_down = tokio::time::timeout(limit, async {
                loop {
                    tokio::select! {
                        _ = &mut execution => return,
                        signal = received.recv() => if let Some(Signal::Event(body)) = signal {
                            keep(body, &mut crumbs, &mut log, &mut cost);
                        },
                    }
                }
            })
            .await;
            if wound_down.is_err() {
                tracing::warn!(
                    limit = ?limit,
                    "the backend did not stop in time; abandoning it"
                );
            }
            Err(stop)
        }
    };
    while let Ok(signal) = received.try_recv() {
        if let Signal::Event(body) = signal {
            keep(body, &mut crumbs, &mut log, &mut cost);
        }
    }
    if dropped > 0 {
        log.push(EventBody::Error {
            message: format!(
                "{dropped} further events were dropped (at most {MAX_EVENTS_PER_COMMAND} events or {} MiB per command)",
                MAX_EVENT_BYTES_PER_COMMAND >> 20
            ),
            failure_kind: None,
        });
    }
    Supervised { outcome, log, cost }
}

/// The claim was superseded: a newer claim of the run owns it now.
fn superseded(crumbs: &Breadcrumbs) -> Stop {
    Stop::Failed(BackendError::new(
        FailureKind::HeartbeatLost,
        format!(
            "the run was claimed by another worker (newer fencing token) {}",
            crumbs.describe()
        ),
    ))
}

/// Why a heartbeat did not renew the lease (it is tried again at the next).
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeartbeatError {
    /// The in-progress ack did not reach the broker.
    #[error("in-progress ack: {0}")]
    Ack(async_nats::Error),
    /// PostgreSQL did not renew the run's lease.
    #[error("renewing the run's lease: {0}")]
    Lease(#[from] crate::db::DbError),
}

/// One heartbeat: extend the message's ack deadline and the run's lease.
async fn renew(s: &Supervision<'_>) -> Result<Renewal, HeartbeatError> {
    renew_lease(s.message, s.journal, s.command, s.fencing_token, s.lease).await
}

/// Extends `message`'s ack deadline (an in-progress ack) and the lease of
/// `command`'s run under `fencing_token`: a heartbeat, and what keeps a
/// long commit's claim alive.
///
/// # Errors
/// [`HeartbeatError`] naming which of the two failed.
pub(crate) async fn renew_lease(
    message: &jetstream::Message,
    journal: &Journal,
    command: &CommandCreate,
    fencing_token: i64,
    lease: Duration,
) -> Result<Renewal, HeartbeatError> {
    message
        .ack_with(AckKind::Progress)
        .await
        .map_err(HeartbeatError::Ack)?;
    Ok(journal
        .renew_lease(
            command.tenant.as_str(),
            command.run_id.as_str(),
            command.command_id.as_str(),
            fencing_token,
            lease,
        )
        .await?)
}
