//! `command.create`: idempotency, order, claim, execution under a lease,
//! the fenced commit, then publish and ack.
//!
//! 1. [`Journal::begin_command`] decides in one round trip: replay a stored
//!    receipt, refuse a conflicting key, wait for the run or for the
//!    command's turn, or claim the run with a new fencing token.
//! 2. While waiting and while executing, the message's ack deadline (the
//!    lease) is renewed with in-progress acks every `ack_wait / 3`, and the
//!    run's lease in PostgreSQL with it. A claim that cannot be renewed is
//!    lost: execution stops with `heartbeat-lost`.
//! 3. Events, receipt and command state are committed in one transaction
//!    under the claim's token; a superseded claim writes nothing.
//! 4. Only then are the events and the receipt published (awaiting their
//!    PubAcks), and only then is the message acked.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use chrono::{DateTime, Utc};
use runfleet_schemas::{
    CommandCreate, CommandKind, Event, EventBody, EventRange, Failure, FailureKind,
    MAX_RECEIPT_OUTPUT_BYTES, Receipt, Retry, SchemaVersion, TerminalCommandStatus, decode_value,
    headers,
};
use serde_json::Value;
use tracing::Instrument;

use super::{Delivery, Disposition, Retryable, attempt_i64, dead_letter};
use crate::backend::{BackendError, ExecutionContext};
use crate::config::Failpoint;
use crate::journal::{Begin, Complete};
use crate::publisher::{publish, publish_all, publish_as};
use crate::retry::nak_delay;
use crate::waiters::{MAX_POLL, run_key};
use crate::worker::Shared;

/// Lease renewals that may fail in a row before the claim counts as lost.
const MAX_MISSED_HEARTBEATS: u32 = 3;

/// The first re-check of a waiting command that was not woken.
const FIRST_POLL: Duration = Duration::from_millis(50);

/// One command delivery being handled.
struct Turn<'a> {
    shared: &'a Shared,
    message: &'a jetstream::Message,
    delivery: &'a Delivery,
    command: CommandCreate,
    traceparent: Option<String>,
    key: String,
}

pub(super) async fn handle(
    shared: &Shared,
    message: &jetstream::Message,
    delivery: &Delivery,
    command: CommandCreate,
) -> Result<Disposition, Retryable> {
    let traceparent = message
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::TRACEPARENT))
        .map(|v| v.as_str().to_owned());
    let key = run_key(command.tenant.as_str(), command.run_id.as_str());
    // `instrument`, not `span.enter()`: a guard held across `.await` would
    // leak the span into whatever else runs on this thread.
    let span = tracing::info_span!("command", run.id = %command.run_id, command.id = %command.command_id, tenant = %command.tenant, seq = command.seq);
    let turn = Turn {
        shared,
        message,
        delivery,
        command,
        traceparent,
        key,
    };
    turn.run().instrument(span).await
}

impl Turn<'_> {
    async fn run(&self) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let waiting_since = Instant::now();
        let mut last_heartbeat = Instant::now();
        let mut poll = FIRST_POLL;
        let guard = shared.waiters.register(&self.key);
        loop {
            let notified = guard.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let beginning = Instant::now();
            let begin = shared
                .journal
                .begin_command(
                    &self.command,
                    attempt_i64(self.delivery),
                    &shared.worker_id,
                    shared.config.streams.ack_wait,
                )
                .await?;
            match begin {
                Begin::Claimed {
                    fencing_token,
                    next_event_seq,
                } => {
                    tracing::debug!(
                        begin_ms = beginning.elapsed().as_secs_f64() * 1e3,
                        waited_ms = waiting_since.elapsed().as_secs_f64() * 1e3,
                        fencing_token,
                        "claimed"
                    );
                    return self.execute(fencing_token, next_event_seq).await;
                }
                Begin::Replay(receipt) => return self.replay(receipt).await,
                Begin::Conflict(why) => return self.conflict(why).await,
                Begin::RunTerminal(why) => {
                    let receipt = self.receipt(
                        TerminalCommandStatus::Failed,
                        Some(Failure {
                            kind: FailureKind::RunTerminal,
                            message: why,
                        }),
                        None,
                        None,
                        0,
                        None,
                    );
                    return self.record_and_publish(receipt).await;
                }
                Begin::NoRun(why) => return self.no_run(why).await,
                Begin::Wait(why) => {
                    if waiting_since.elapsed() >= shared.config.worker.order_wait {
                        if self.delivery.attempt >= shared.max_deliver() {
                            return self.give_up_waiting(why).await;
                        }
                        tracing::info!(why = %why, "waited too long for its turn; handing the message back");
                        self.log(&format!("waited: {why}")).await;
                        return Ok(Disposition::Nak(Some(nak_delay(self.delivery.attempt))));
                    }
                    // Keep the lease while waiting: an in-progress ack whenever a
                    // heartbeat is due, however the wait ends.
                    let next_heartbeat = last_heartbeat + shared.config.heartbeat_interval();
                    tokio::select! {
                        () = shared.abort.cancelled() => return Ok(Disposition::Nak(None)),
                        () = &mut notified => {}
                        () = tokio::time::sleep(poll) => {}
                        () = tokio::time::sleep_until(next_heartbeat.into()) => {}
                    }
                    if last_heartbeat.elapsed() >= shared.config.heartbeat_interval() {
                        if let Err(err) = self.message.ack_with(AckKind::Progress).await {
                            tracing::warn!(error = %err, "in-progress ack failed while waiting");
                        }
                        last_heartbeat = Instant::now();
                    }
                    poll = (poll * 2).min(MAX_POLL);
                }
            }
        }
    }

    /// Executes under the claim and commits the outcome.
    async fn execute(&self, token: i64, next_event_seq: i64) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let started_at = Utc::now();
        let mut ctx = ExecutionContext::new(self.delivery.attempt, shared.worker_id.clone());
        let outcome = match self.command.kind {
            CommandKind::Close => Ok(serde_json::json!({ "closed": true })),
            CommandKind::Turn | CommandKind::Steer => self.supervise(token, &mut ctx).await,
        };
        let events = ctx.take_events();
        match outcome {
            Ok(output) => {
                self.commit(
                    token,
                    next_event_seq,
                    started_at,
                    events,
                    TerminalCommandStatus::Completed,
                    None,
                    Some(output),
                )
                .await
            }
            Err(Stop::Aborted) => {
                self.release(token).await;
                Ok(Disposition::Nak(None))
            }
            Err(Stop::Failed(failure)) => match failure.kind.retry() {
                Retry::Retryable if self.delivery.attempt < shared.max_deliver() => {
                    tracing::warn!(failure = %failure, "retryable failure");
                    if failure.kind != FailureKind::HeartbeatLost {
                        self.release(token).await;
                    }
                    self.log(&failure.to_string()).await;
                    Ok(Disposition::Nak(Some(nak_delay(self.delivery.attempt))))
                }
                Retry::Retryable => {
                    let failure = BackendError::new(
                        FailureKind::MaxDeliveries,
                        format!(
                            "gave up after {} deliveries; last failure: {failure}",
                            self.delivery.attempt
                        ),
                    );
                    let disposition = self
                        .commit(
                            token,
                            next_event_seq,
                            started_at,
                            events,
                            failure.kind.status(),
                            Some(failure.clone()),
                            None,
                        )
                        .await?;
                    if disposition == Disposition::Ack {
                        return dead_letter(
                            shared,
                            self.message,
                            self.delivery,
                            failure.kind,
                            failure.message,
                        )
                        .await;
                    }
                    Ok(disposition)
                }
                Retry::Fatal => {
                    self.commit(
                        token,
                        next_event_seq,
                        started_at,
                        events,
                        failure.kind.status(),
                        Some(failure),
                        None,
                    )
                    .await
                }
            },
        }
    }

    /// Runs the backend, renewing the lease, until it ends, times out, loses the lease or is aborted.
    async fn supervise(&self, token: i64, ctx: &mut ExecutionContext) -> Result<Value, Stop> {
        let shared = self.shared;
        let timeout = self
            .command
            .timeout_ms
            .map_or(Duration::MAX, Duration::from_millis);
        let deadline = tokio::time::Instant::now().checked_add(timeout);
        let execution = shared.backend.execute(&self.command, ctx);
        tokio::pin!(execution);
        let mut heartbeat = tokio::time::interval(shared.config.heartbeat_interval());
        heartbeat.tick().await; // the first tick is immediate
        let mut missed = 0;
        loop {
            tokio::select! {
                result = &mut execution => return result.map_err(Stop::Failed),
                () = shared.abort.cancelled() => return Err(Stop::Aborted),
                () = sleep_until(deadline) => {
                    return Err(Stop::Failed(BackendError::new(
                        FailureKind::TimedOut,
                        format!("the command's timeout of {} ms elapsed", timeout.as_millis()),
                    )));
                }
                _ = heartbeat.tick() => {
                    match self.renew(token).await {
                        Ok(true) => missed = 0,
                        Ok(false) => {
                            return Err(Stop::Failed(BackendError::new(
                                FailureKind::HeartbeatLost,
                                "the run was claimed by another worker (newer fencing token)",
                            )));
                        }
                        Err(err) => {
                            missed += 1;
                            tracing::warn!(error = %err, missed, "lease renewal failed");
                            if missed >= MAX_MISSED_HEARTBEATS {
                                return Err(Stop::Failed(BackendError::new(
                                    FailureKind::HeartbeatLost,
                                    format!("{missed} lease renewals failed in a row; last: {err}"),
                                )));
                            }
                        }
                    }
                }
            }
        }
    }

    /// One heartbeat: extend the message's ack deadline and the run's lease.
    async fn renew(&self, token: i64) -> Result<bool, String> {
        self.message
            .ack_with(AckKind::Progress)
            .await
            .map_err(|e| format!("in-progress ack: {e}"))?;
        self.shared
            .journal
            .renew_lease(
                self.command.tenant.as_str(),
                self.command.run_id.as_str(),
                token,
                self.shared.config.streams.ack_wait,
            )
            .await
            .map_err(|e| e.to_string())
    }

    /// The fenced commit of events and receipt, then publish, then ack.
    #[allow(clippy::too_many_arguments)]
    async fn commit(
        &self,
        token: i64,
        next_event_seq: i64,
        started_at: DateTime<Utc>,
        bodies: Vec<EventBody>,
        status: TerminalCommandStatus,
        failure: Option<BackendError>,
        output: Option<Value>,
    ) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let failure = failure.map(|f| Failure {
            kind: f.kind,
            message: f.message,
        });
        let mut bodies = bodies;
        bodies.push(EventBody::TerminalStatus {
            status,
            failure_kind: failure.as_ref().map(|f| f.kind),
        });
        let first_seq = u64::try_from(next_event_seq).unwrap_or(1).max(1);
        let events: Vec<Event> = bodies
            .into_iter()
            .zip(first_seq..)
            .map(|(body, seq)| Event {
                schema: Default::default(),
                version: SchemaVersion,
                tenant: self.command.tenant.clone(),
                run_id: self.command.run_id.clone(),
                command_id: Some(self.command.command_id.clone()),
                seq,
                at: Utc::now(),
                body,
            })
            .collect();
        let range = EventRange {
            first_seq,
            last_seq: first_seq + events.len() as u64 - 1,
        };
        let receipt = self.receipt(
            status,
            failure,
            output,
            Some(range),
            u64::try_from(token).unwrap_or(0),
            Some(started_at),
        );
        let event_values: Vec<Value> = events
            .iter()
            .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
            .collect();
        let close_run =
            self.command.kind == CommandKind::Close && status == TerminalCommandStatus::Completed;
        let committing = Instant::now();
        match shared
            .journal
            .complete_command(&receipt, &event_values, close_run)
            .await?
        {
            Complete::Committed => {
                if shared.config.worker.failpoint == Some(Failpoint::ExitAfterCommit) {
                    tracing::warn!("failpoint exit-after-commit: aborting before publish and ack");
                    std::process::abort();
                }
                shared.announce(self.command.tenant.as_str(), self.command.run_id.as_str());
                let commit_ms = committing.elapsed().as_secs_f64() * 1e3;
                let publishing = Instant::now();
                let traceparent = self.traceparent.as_deref();
                tokio::try_join!(
                    publish_all(&shared.jetstream, &events, traceparent),
                    publish(&shared.jetstream, &receipt, traceparent),
                )?;
                tracing::debug!(status = ?status, commit_ms, publish_ms = publishing.elapsed().as_secs_f64() * 1e3, "receipt committed and published");
                Ok(Disposition::Ack)
            }
            Complete::Fenced => {
                tracing::warn!(
                    fencing_token = token,
                    "claim superseded by a newer one; outcome discarded"
                );
                Ok(Disposition::Leave)
            }
        }
    }

    /// Republishes a stored receipt and its events; executes nothing.
    async fn replay(&self, stored: Value) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let receipt: Receipt = decode_value(stored)
            .map_err(|e| crate::db::DbError::Unexpected(format!("stored receipt: {e}")))?;
        if let Some(range) = receipt.events {
            let values = shared
                .journal
                .events(
                    receipt.tenant.as_str(),
                    receipt.run_id.as_str(),
                    i64::try_from(range.first_seq).unwrap_or(i64::MAX),
                    i64::try_from(range.last_seq).unwrap_or(i64::MAX),
                )
                .await?;
            let events: Vec<Event> = values
                .into_iter()
                .filter_map(|v| decode_value(v).ok())
                .collect();
            publish_all(&shared.jetstream, &events, receipt.traceparent.as_deref()).await?;
        }
        publish(&shared.jetstream, &receipt, receipt.traceparent.as_deref()).await?;
        tracing::info!("replayed the stored receipt");
        Ok(Disposition::Ack)
    }

    /// The key (or command id, or seq) was used with other content: a failed
    /// receipt for the producer, a dead letter for the operator; nothing executes.
    async fn conflict(&self, why: String) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let receipt = self.receipt(
            TerminalCommandStatus::Failed,
            Some(Failure {
                kind: FailureKind::IdempotencyConflict,
                message: why.clone(),
            }),
            None,
            None,
            0,
            None,
        );
        let disposition = dead_letter(
            shared,
            self.message,
            self.delivery,
            FailureKind::IdempotencyConflict,
            why,
        )
        .await?;
        // Not journaled (the command id may be the original's, whose receipt
        // stands) and published under an id of its own, so it is not
        // deduplicated against that receipt.
        let msg_id = format!(
            "conflict:{}:{}:{}",
            receipt.run_id, receipt.command_id, self.delivery.stream_sequence
        );
        publish_as(
            &shared.jetstream,
            &receipt,
            msg_id,
            self.traceparent.as_deref(),
        )
        .await?;
        Ok(disposition)
    }

    /// Its turn never came within the delivery limit (an earlier seq never
    /// arrived, say): the command ends failed, and is dead-lettered.
    async fn give_up_waiting(&self, why: String) -> Result<Disposition, Retryable> {
        let why = format!(
            "gave up after {} deliveries waiting for its turn: {why}",
            self.delivery.attempt
        );
        let receipt = self.receipt(
            FailureKind::MaxDeliveries.status(),
            Some(Failure {
                kind: FailureKind::MaxDeliveries,
                message: why.clone(),
            }),
            None,
            None,
            0,
            None,
        );
        // The dead letter first, so that whoever sees the receipt finds it.
        let disposition = dead_letter(
            self.shared,
            self.message,
            self.delivery,
            FailureKind::MaxDeliveries,
            why,
        )
        .await?;
        self.record_and_publish(receipt).await?;
        Ok(disposition)
    }

    /// The run does not exist: wait for it (bounded), then dead-letter.
    async fn no_run(&self, why: String) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let waited = Utc::now()
            .signed_duration_since(self.delivery.published)
            .to_std()
            .unwrap_or_default();
        let run_wait = shared.config.worker.run_wait;
        if waited >= run_wait || self.delivery.attempt >= shared.max_deliver() {
            let why = format!(
                "{why} after waiting {} for it",
                humantime::format_duration(Duration::from_secs(waited.as_secs()))
            );
            return dead_letter(
                shared,
                self.message,
                self.delivery,
                FailureKind::RunNotFound,
                why,
            )
            .await;
        }
        self.log(&format!("run-not-found: {why}")).await;
        let delay = nak_delay(self.delivery.attempt)
            .min(run_wait.saturating_sub(waited))
            .max(Duration::from_millis(50));
        Ok(Disposition::Nak(Some(delay)))
    }

    /// Stores a receipt for a command that was not executed, publishes the stored one.
    async fn record_and_publish(&self, receipt: Receipt) -> Result<Disposition, Retryable> {
        let stored = self.shared.journal.record_receipt(&receipt).await?;
        self.shared
            .announce(self.command.tenant.as_str(), self.command.run_id.as_str());
        self.replay(stored).await
    }

    fn receipt(
        &self,
        status: TerminalCommandStatus,
        failure: Option<Failure>,
        output: Option<Value>,
        events: Option<EventRange>,
        fencing_token: u64,
        started_at: Option<DateTime<Utc>>,
    ) -> Receipt {
        let (output, output_truncated) = bound_output(output);
        Receipt {
            schema: Default::default(),
            version: SchemaVersion,
            tenant: self.command.tenant.clone(),
            run_id: self.command.run_id.clone(),
            command_id: self.command.command_id.clone(),
            seq: self.command.seq,
            idempotency_key: self.command.idempotency_key.clone(),
            status,
            failure,
            output,
            output_truncated,
            events,
            attempt: self.delivery.attempt,
            worker_id: self.shared.worker_id.clone(),
            fencing_token,
            started_at,
            finished_at: Utc::now(),
            traceparent: self.traceparent.clone(),
        }
    }

    /// Gives the claim up early, so the next delivery need not wait for the lease.
    async fn release(&self, token: i64) {
        let (tenant, run_id) = (self.command.tenant.as_str(), self.command.run_id.as_str());
        if self
            .shared
            .journal
            .release_lease(tenant, run_id, token)
            .await
            .is_ok()
        {
            self.shared.announce(tenant, run_id);
        }
    }

    async fn log(&self, outcome: &str) {
        let _ = self
            .shared
            .journal
            .log_delivery(
                self.delivery.stream_sequence,
                attempt_i64(self.delivery),
                &self.shared.worker_id,
                outcome,
            )
            .await;
    }
}

/// Why execution stopped before the backend finished.
enum Stop {
    /// The worker is shutting down: hand the message back, record nothing.
    Aborted,
    /// A failure of the given kind.
    Failed(BackendError),
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Keeps at most [`MAX_RECEIPT_OUTPUT_BYTES`] of output: larger output is
/// replaced by the tail of its JSON text.
fn bound_output(output: Option<Value>) -> (Option<Value>, bool) {
    let Some(output) = output else {
        return (None, false);
    };
    let text = output.to_string();
    if text.len() <= MAX_RECEIPT_OUTPUT_BYTES {
        return (Some(output), false);
    }
    let mut start = text.len() - MAX_RECEIPT_OUTPUT_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    (Some(Value::String(text[start..].to_owned())), true)
}
