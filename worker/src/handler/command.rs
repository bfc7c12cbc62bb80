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

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use chrono::{DateTime, Utc};
use runfleet_schemas::{
    CommandCreate, CommandKind, Event, EventBody, EventRange, Failure, FailureKind,
    MAX_RECEIPT_OUTPUT_BYTES, Receipt, Retry, Routed, RunCreate, RunStatus, SchemaVersion,
    TerminalCommandStatus, decode_value, headers,
};
use serde_json::Value;
use tracing::Instrument;

use super::supervise::{Stop, Supervision, scrubbed, supervise};
use super::{Delivery, Disposition, Retryable, attempt_i64, dead_letter};
use crate::backend::{BackendError, ExecutionContext, RunInfo, StepJournal};
use crate::config::Failpoint;
use crate::journal::{Begin, CommandRow, Complete, RunChange};
use crate::publisher::{
    publish, publish_all, publish_all_bytes, publish_as, publish_bytes, serialize_all,
};
use crate::retry::nak_delay;
use crate::waiters::{MAX_POLL, run_key};
use crate::worker::Shared;
use crate::workspace::{Materialized, materialize};

/// The first re-check of a waiting command that was not woken.
const FIRST_POLL: Duration = Duration::from_millis(50);

/// One command delivery being handled.
struct Turn<'a> {
    shared: &'a Shared,
    message: &'a jetstream::Message,
    delivery: &'a Delivery,
    command: CommandCreate,
    /// The command as the journal records it.
    row: CommandRow,
    traceparent: Option<String>,
    key: String,
    /// The run's backend profile, once known (for metrics).
    profile: std::sync::OnceLock<String>,
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
    let span = tracing::info_span!(
        "command",
        run.id = %command.run_id,
        command.id = %command.command_id,
        tenant = %command.tenant,
        seq = command.seq,
        traceparent = traceparent.as_deref().unwrap_or_default(),
    );
    let row = CommandRow::new(&command, message.payload.clone());
    let turn = Turn {
        shared,
        message,
        delivery,
        command,
        row,
        traceparent,
        key,
        profile: std::sync::OnceLock::new(),
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
        let mut pure = None;
        loop {
            let notified = guard.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let beginning = Instant::now();
            if pure.is_none() {
                pure = self.pure();
            }
            let mut begin = Begin::Slow;
            if let Some(pure) = &pure {
                begin = shared
                    .journal
                    .settle_pure(
                        self.row.clone(),
                        attempt_i64(self.delivery),
                        &shared.worker_id,
                        &pure.profile,
                        pure.receipt_json.clone(),
                        pure.events_json.clone(),
                    )
                    .await?;
            }
            if begin == Begin::Slow {
                begin = shared
                    .journal
                    .begin_command(
                        self.row.clone(),
                        attempt_i64(self.delivery),
                        &shared.worker_id,
                        shared.config.ack_wait,
                    )
                    .await?;
            }
            match begin {
                Begin::Settled {
                    fencing_token,
                    next_event_seq,
                    waiter,
                } => {
                    let Some(pure) = pure.take() else {
                        return Err(crate::db::DbError::Unexpected(
                            "settled without a computed outcome".into(),
                        )
                        .into());
                    };
                    return self
                        .settled(pure, fencing_token, next_event_seq, waiter)
                        .await;
                }
                Begin::Claimed {
                    fencing_token,
                    next_event_seq,
                    run_spec,
                    spent,
                } => {
                    tracing::debug!(
                        begin_ms = beginning.elapsed().as_secs_f64() * 1e3,
                        waited_ms = waiting_since.elapsed().as_secs_f64() * 1e3,
                        fencing_token,
                        "claimed"
                    );
                    let claim = Claim {
                        token: fencing_token,
                        next_event_seq,
                        spent,
                    };
                    return self.execute(claim, run_spec).await;
                }
                Begin::Replay(receipt) => return self.replay(receipt).await,
                Begin::Conflict(why) => return self.conflict(why).await,
                Begin::RunTerminal(why, kind) => return self.not_executed(kind, why).await,
                Begin::Cancelled(why) => {
                    return self.not_executed(FailureKind::Cancelled, why).await;
                }
                Begin::NoRun(why) => return self.no_run(why).await,
                Begin::Slow => {
                    return Err(crate::db::DbError::Unexpected(
                        "the two-step begin answered as a settle".into(),
                    )
                    .into());
                }
                Begin::Wait(why) => {
                    if waiting_since.elapsed() >= shared.config.order_wait {
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
    async fn execute(&self, claim: Claim, run_spec: Value) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let started_at = Utc::now();
        // Validated against its schema when it was accepted; plain serde here.
        let run: RunCreate = serde_json::from_value(run_spec)
            .map_err(|e| crate::db::DbError::Unexpected(format!("stored run: {e}")))?;
        let _ = self.profile.set(run.backend_profile.to_string());
        if run.resource_bundle.is_none() && run.budgets.is_empty() {
            // Later commands of this run may be settled in one statement
            // when their backend computes them without effects.
            shared
                .pure_runs
                .remember(&self.key, run.backend_profile.as_str());
        }
        let Some((profile, backend)) = shared.backends.get(run.backend_profile.as_str()) else {
            return self.unserved(&claim, &run).await;
        };
        let budgets_remaining: BTreeMap<String, f64> = run
            .budgets
            .iter()
            .map(|(currency, budget)| {
                let spent = claim.spent.get(currency).copied().unwrap_or_default();
                (currency.clone(), budget - spent)
            })
            .collect();
        let info = RunInfo {
            tenant: run.tenant.to_string(),
            project: run.project.to_string(),
            run_id: run.run_id.to_string(),
            profile: run.backend_profile.to_string(),
            session_id: run.session_id.as_ref().map(ToString::to_string),
            workdir: shared
                .run_dirs
                .run_dir(run.tenant.as_str(), run.run_id.as_str()),
            budgets_remaining,
        };
        let mut pre_events = Vec::new();
        if self.command.kind == CommandKind::Close {
            if let Some(closing) = backend.close_run(&info).await {
                pre_events.push(scrubbed(&shared.redactor, closing));
            }
            if let Err(err) = shared.run_dirs.remove(&info.tenant, &info.run_id).await {
                tracing::warn!(error = %err, "could not remove the run's working directory");
            }
            let mut ending = Ending::completed(serde_json::json!({ "closed": true }));
            ending.events = pre_events;
            ending.run_change.status = Some(RunStatus::Completed);
            return self.commit(&claim, started_at, ending).await;
        }

        shared
            .metrics
            .command_started(run.backend_profile.as_str(), run.tenant.as_str());
        // Cancels reach the command from here on, while its workspace is
        // prepared as much as while it runs.
        let cancel = shared.cancels.register(
            self.command.tenant.as_str(),
            self.command.run_id.as_str(),
            self.command.command_id.as_str(),
        );
        let steps = StepJournal {
            journal: shared.journal.clone(),
            tenant: info.tenant.clone(),
            run_id: info.run_id.clone(),
            command_id: self.command.command_id.to_string(),
            attempt: attempt_i64(self.delivery),
            fencing_token: claim.token,
        };
        let supervision = Supervision {
            command: &self.command,
            message: self.message,
            journal: &shared.journal,
            metrics: &shared.metrics,
            redactor: &shared.redactor,
            profile,
            fencing_token: claim.token,
            lease: shared.config.ack_wait,
            heartbeat: shared.config.heartbeat_interval(),
            max_missed_heartbeats: shared.config.max_missed_heartbeats,
            abort: &shared.abort,
            cancelled: &cancel.token,
            budgets: &run.budgets,
            spent: &claim.spent,
        };
        let (signals, received) = tokio::sync::mpsc::unbounded_channel();
        let stop = tokio_util::sync::CancellationToken::new();
        let ctx = ExecutionContext::new(
            self.delivery.attempt,
            shared.worker_id.clone(),
            info,
            signals,
            Some(steps),
            stop.clone(),
            shared.redactor.clone(),
        );
        let execution = async {
            self.prepare_workdir(&run, &ctx).await?;
            backend.execute(&self.command, &ctx).await
        };
        let supervised = supervise(supervision, execution, received, stop).await;
        drop(cancel);

        let mut events = pre_events;
        events.extend(supervised.events);
        let mut run_change = RunChange::default();
        let mut budget_remaining = BTreeMap::new();
        if !supervised.cost.is_empty() || !run.budgets.is_empty() {
            let mut spent = claim.spent.clone();
            for (currency, amount) in &supervised.cost {
                *spent.entry(currency.clone()).or_default() += amount;
            }
            budget_remaining = run
                .budgets
                .iter()
                .map(|(c, b)| (c.clone(), b - spent.get(c).copied().unwrap_or_default()))
                .collect();
            if !supervised.cost.is_empty() {
                run_change.spent = Some(spent);
            }
        }
        let mut ending = match supervised.outcome {
            Ok(output) => Ending::completed(output),
            Err(Stop::Aborted) => {
                self.release(claim.token).await;
                return Ok(Disposition::Nak(None));
            }
            Err(Stop::Failed(failure)) => {
                if failure.kind == FailureKind::BudgetExhausted {
                    events.push(scrubbed(
                        &shared.redactor,
                        EventBody::Error {
                            message: failure.message.clone(),
                            failure_kind: Some(FailureKind::BudgetExhausted),
                        },
                    ));
                    run_change.status = Some(RunStatus::Blocked);
                    run_change.failure_kind = Some(FailureKind::BudgetExhausted);
                    run_change.reason = Some(failure.message.clone());
                }
                if failure.kind.retry() == Retry::Retryable {
                    return self.retry_or_give_up(&claim, started_at, failure).await;
                }
                Ending::failed(failure)
            }
        };
        ending.events = events;
        ending.run_change = run_change;
        ending.budget_remaining = budget_remaining;
        self.commit(&claim, started_at, ending).await
    }

    /// A retryable failure: NAK for another delivery, or, at the delivery
    /// limit, a failed receipt (committed under the claim) and a dead letter.
    async fn retry_or_give_up(
        &self,
        claim: &Claim,
        started_at: DateTime<Utc>,
        failure: BackendError,
    ) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let failure = BackendError::new(failure.kind, shared.redactor.redact(&failure.message));
        if self.delivery.attempt < shared.max_deliver() {
            tracing::warn!(failure = %failure, "retryable failure");
            if failure.kind != FailureKind::HeartbeatLost {
                self.release(claim.token).await;
            }
            self.log(&failure.to_string()).await;
            return Ok(Disposition::Nak(Some(nak_delay(self.delivery.attempt))));
        }
        let failure = BackendError::new(
            FailureKind::MaxDeliveries,
            format!(
                "gave up after {} deliveries; last failure: {failure}",
                self.delivery.attempt
            ),
        );
        let message = failure.message.clone();
        let disposition = self
            .commit(claim, started_at, Ending::failed(failure))
            .await?;
        if disposition != Disposition::Ack {
            return Ok(disposition);
        }
        dead_letter(
            shared,
            self.message,
            self.delivery,
            FailureKind::MaxDeliveries,
            message,
        )
        .await
    }

    /// The run's working directory, with its resource bundle materialized
    /// (once per run and worker; a marker file makes later commands skip it).
    async fn prepare_workdir(
        &self,
        run: &RunCreate,
        ctx: &ExecutionContext,
    ) -> Result<(), BackendError> {
        if !self.uses_workdir(run) {
            return Ok(());
        }
        let dirs = &self.shared.run_dirs;
        let failed = |what: String| BackendError::new(FailureKind::WorkspaceFailed, what);
        let dir = dirs
            .ensure(run.tenant.as_str(), run.run_id.as_str())
            .await
            .map_err(|e| failed(format!("the run's working directory: {e}")))?;
        let Some(bundle) = &run.resource_bundle else {
            return Ok(());
        };
        ctx.emit(EventBody::Phase {
            name: "workspace".into(),
        });
        match materialize(bundle, &dir, self.shared.config.git_timeout).await {
            Ok(Materialized::AlreadyPresent) => Ok(()),
            Ok(Materialized::Fresh { description, took }) => {
                ctx.emit(EventBody::BackendStatus {
                    status: "workspace-ready".into(),
                    detail: Some(format!(
                        "{description} materialized in {:.1}s",
                        took.as_secs_f64()
                    )),
                });
                Ok(())
            }
            Err(err) => {
                let message = format!("the resource bundle could not be materialized: {err}");
                ctx.emit(EventBody::Error {
                    message: message.clone(),
                    failure_kind: Some(FailureKind::WorkspaceFailed),
                });
                Err(failed(message))
            }
        }
    }

    /// Whether the run needs a working directory: a program runs in it, or
    /// a bundle goes into it (the built-in `echo` needs none).
    fn uses_workdir(&self, run: &RunCreate) -> bool {
        run.resource_bundle.is_some()
            || self
                .shared
                .backends
                .get(run.backend_profile.as_str())
                .is_some_and(|(profile, _)| profile.kind != crate::profiles::BackendKind::Echo)
    }

    /// The run's profile is not served by this worker.
    async fn unserved(&self, claim: &Claim, run: &RunCreate) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let profile = run.backend_profile.as_str();
        let waited = Utc::now()
            .signed_duration_since(self.delivery.published)
            .to_std()
            .unwrap_or_default();
        let limit = shared.config.schedule_to_start;
        // At the delivery limit too: a NAK there would strand the message and
        // wedge the run behind it.
        if waited >= limit || self.delivery.attempt >= shared.max_deliver() {
            let failure = BackendError::new(
                FailureKind::NoBackend,
                format!(
                    "no worker served backend profile {profile:?} within {} ({} deliveries; schedule-to-start timeout {})",
                    humantime::format_duration(Duration::from_secs(waited.as_secs())),
                    self.delivery.attempt,
                    humantime::format_duration(limit)
                ),
            );
            return self
                .commit(claim, Utc::now(), Ending::failed(failure))
                .await;
        }
        self.release(claim.token).await;
        self.log(&format!("profile {profile:?} is not served by this worker"))
            .await;
        let delay = nak_delay(self.delivery.attempt)
            .min(limit.saturating_sub(waited))
            .max(Duration::from_millis(50));
        tracing::info!(profile, "profile not served here; handing the command back");
        Ok(Disposition::Nak(Some(delay)))
    }

    /// The fenced commit of events and receipt, then publish, then ack.
    async fn commit(
        &self,
        claim: &Claim,
        started_at: DateTime<Utc>,
        ending: Ending,
    ) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let token = claim.token;
        let next_event_seq = claim.next_event_seq;
        let redactor = &shared.redactor;
        let Ending {
            output,
            failure,
            events: bodies,
            run_change,
            budget_remaining,
        } = ending;
        let status = failure
            .as_ref()
            .map_or(TerminalCommandStatus::Completed, |f| f.kind.status());
        let failure = failure.map(|f| Failure {
            kind: f.kind,
            message: bound_text(&redactor.redact(&f.message), MAX_FAILURE_MESSAGE_BYTES),
        });
        let output = output.map(|mut output| {
            redactor.redact_value(&mut output);
            output
        });
        let mut bodies = bodies;
        bodies.push(EventBody::TerminalStatus {
            status,
            failure_kind: failure.as_ref().map(|f| f.kind),
        });
        let first_seq = u64::try_from(next_event_seq).unwrap_or(1).max(1);
        let events = self.events(bodies, first_seq);
        let range = EventRange {
            first_seq,
            last_seq: first_seq + events.len() as u64 - 1,
        };
        let mut receipt = self.receipt(
            status,
            failure,
            output,
            Some(range),
            u64::try_from(token).unwrap_or(0),
            Some(started_at),
        );
        receipt.budget_remaining = budget_remaining;
        let (event_bytes, events_json) = serialize_all(&events).map_err(serialization)?;
        let receipt_json = bytes::Bytes::from(serde_json::to_vec(&receipt).map_err(serialization)?);
        let committing = Instant::now();
        match shared
            .journal
            .complete_command(&receipt, receipt_json.clone(), events_json, run_change)
            .await?
        {
            Complete::Committed { waiter } => {
                self.after_commit(waiter);
                let commit_ms = committing.elapsed().as_secs_f64() * 1e3;
                self.count_outcome(&receipt, committing.elapsed());
                let publishing = Instant::now();
                let traceparent = self.traceparent.as_deref();
                tokio::try_join!(
                    publish_all_bytes(&shared.jetstream, &events, &event_bytes, traceparent),
                    publish_bytes(
                        &shared.jetstream,
                        &receipt,
                        receipt.msg_id(),
                        traceparent,
                        receipt_json
                    ),
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

    /// Right after a commit: the crash-test failpoint, then the wake-up of
    /// commands waiting for this run (in other workers only when the next
    /// command is recorded: nobody else can be waiting otherwise).
    fn after_commit(&self, waiter: bool) {
        let shared = self.shared;
        if shared.config.failpoint == Some(Failpoint::ExitAfterCommit) {
            tracing::warn!("failpoint exit-after-commit: aborting before publish and ack");
            std::process::abort();
        }
        let (tenant, run_id) = (self.command.tenant.as_str(), self.command.run_id.as_str());
        if waiter {
            shared.announce(tenant, run_id);
        } else {
            shared.waiters.wake(&self.key);
        }
    }

    /// The command's outcome computed up front, when its run's backend
    /// computes it without effects outside the journal (then begin and
    /// commit are one statement); `None` otherwise, or while the run's
    /// profile is not known here yet.
    fn pure(&self) -> Option<Pure> {
        let shared = self.shared;
        if self.command.kind == CommandKind::Close {
            return None;
        }
        // The run's profile as remembered, or else this worker's only one
        // (the settle checks it: a wrong guess only costs the round trip).
        let profile = shared
            .pure_runs
            .profile(&self.key)
            .or_else(|| shared.backends.only_profile().map(std::sync::Arc::from))?;
        let (_, backend) = shared.backends.get(&profile)?;
        let outcome = backend.pure(&self.command)?;
        let mut bodies: Vec<EventBody> = outcome
            .events
            .into_iter()
            .map(|body| scrubbed(&shared.redactor, body))
            .collect();
        bodies.push(EventBody::TerminalStatus {
            status: TerminalCommandStatus::Completed,
            failure_kind: None,
        });
        let mut output = outcome.output;
        shared.redactor.redact_value(&mut output);
        let receipt = self.receipt(
            TerminalCommandStatus::Completed,
            None,
            Some(output),
            None,
            0,
            Some(Utc::now()),
        );
        let events = self.events(bodies, 1);
        let (_, events_json) = serialize_all(&events).ok()?;
        let receipt_json = serde_json::to_vec(&receipt).ok()?.into();
        Some(Pure {
            profile,
            receipt,
            events,
            receipt_json,
            events_json,
        })
    }

    /// A pure command was claimed and committed in one statement: number
    /// its events and receipt as PostgreSQL did, publish them, ack.
    async fn settled(
        &self,
        pure: Pure,
        fencing_token: i64,
        next_event_seq: i64,
        waiter: bool,
    ) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let Pure {
            profile,
            mut receipt,
            mut events,
            ..
        } = pure;
        let first_seq = u64::try_from(next_event_seq).unwrap_or(1).max(1);
        for (event, seq) in events.iter_mut().zip(first_seq..) {
            event.seq = seq;
        }
        receipt.fencing_token = u64::try_from(fencing_token).unwrap_or(0);
        receipt.events = Some(EventRange {
            first_seq,
            last_seq: first_seq + events.len() as u64 - 1,
        });
        self.after_commit(waiter);
        let _ = self.profile.set(profile.to_string());
        shared
            .metrics
            .command_started(&profile, self.command.tenant.as_str());
        self.count_outcome(&receipt, Duration::ZERO);
        let traceparent = self.traceparent.as_deref();
        let publishing = Instant::now();
        tokio::try_join!(
            publish_all(&shared.jetstream, &events, traceparent),
            publish(&shared.jetstream, &receipt, traceparent),
        )?;
        tracing::debug!(
            publish_ms = publishing.elapsed().as_secs_f64() * 1e3,
            "settled, published"
        );
        Ok(Disposition::Ack)
    }

    /// Events of this command from `bodies`, numbered from `first_seq`.
    fn events(&self, bodies: Vec<EventBody>, first_seq: u64) -> Vec<Event> {
        bodies
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
                // Every body was redacted (and bounded) where it was made.
                body,
            })
            .collect()
    }

    /// Metrics for a committed outcome.
    fn count_outcome(&self, receipt: &Receipt, commit: Duration) {
        let metrics = &self.shared.metrics;
        let profile = self.profile.get().map_or("-", String::as_str);
        let tenant = receipt.tenant.as_str();
        metrics.observe_journal_commit(commit.as_secs_f64());
        match &receipt.failure {
            None => metrics.command_completed(profile, tenant),
            Some(failure) => metrics.command_failed(profile, tenant, failure.kind.as_str()),
        }
        let end_to_end = Utc::now()
            .signed_duration_since(self.delivery.published)
            .to_std()
            .unwrap_or_default();
        metrics.observe_end_to_end(profile, tenant, end_to_end.as_secs_f64());
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
        shared.metrics.command_replayed(receipt.tenant.as_str());
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
        let run_wait = shared.config.run_wait;
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

    /// A command that is not executed (cancelled, or its run terminal):
    /// its receipt says why.
    async fn not_executed(&self, kind: FailureKind, why: String) -> Result<Disposition, Retryable> {
        let receipt = self.receipt(
            kind.status(),
            Some(Failure { kind, message: why }),
            None,
            None,
            0,
            None,
        );
        self.record_and_publish(receipt).await
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
            budget_remaining: BTreeMap::new(),
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
        let outcome = self.shared.redactor.redact(outcome);
        let _ = self
            .shared
            .journal
            .log_delivery(
                self.delivery.stream_sequence,
                attempt_i64(self.delivery),
                &self.shared.worker_id,
                &outcome,
            )
            .await;
    }
}

/// A failure to serialize what is to be journaled (not expected of the contract's types).
fn serialization(err: serde_json::Error) -> Retryable {
    Retryable::Db(crate::db::DbError::Unexpected(format!(
        "serializing the outcome: {err}"
    )))
}

/// A pure command's outcome, computed before its settle.
struct Pure {
    /// The run's profile.
    profile: std::sync::Arc<str>,
    /// Its receipt, without fencing token and event range yet.
    receipt: Receipt,
    /// Its events, not numbered yet.
    events: Vec<Event>,
    /// `receipt` as JSON, as the settle sends it.
    receipt_json: bytes::Bytes,
    /// `events` as a JSON array, as the settle sends it.
    events_json: bytes::Bytes,
}

/// The claim a command executes under.
struct Claim {
    /// The run's fencing token for this claim.
    token: i64,
    /// The seq the command's first event gets.
    next_event_seq: i64,
    /// What the run spent before this command.
    spent: BTreeMap<String, f64>,
}

/// How an executed command ends, before it is committed.
struct Ending {
    output: Option<Value>,
    failure: Option<BackendError>,
    events: Vec<EventBody>,
    run_change: RunChange,
    budget_remaining: BTreeMap<String, f64>,
}

impl Ending {
    fn completed(output: Value) -> Ending {
        Ending {
            output: Some(output),
            failure: None,
            events: Vec::new(),
            run_change: RunChange::default(),
            budget_remaining: BTreeMap::new(),
        }
    }

    fn failed(failure: BackendError) -> Ending {
        Ending {
            output: None,
            failure: Some(failure),
            events: Vec::new(),
            run_change: RunChange::default(),
            budget_remaining: BTreeMap::new(),
        }
    }
}

/// The longest failure message a receipt carries.
const MAX_FAILURE_MESSAGE_BYTES: usize = 8 * 1024;

/// `text`, cut to at most `max` bytes (on a character boundary) with a note.
fn bound_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} bytes cut]", &text[..end], text.len() - end)
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
