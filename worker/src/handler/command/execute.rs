//! A claimed command executes: its run's backend under supervision (lease,
//! watchdogs, cancels), in the run's working directory; then its ending is
//! committed, retried, or handed back.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use runfleet_schemas::{CommandKind, EventBody, FailureKind, Retry, RunCreate, RunStatus};
use serde_json::Value;

use super::Turn;
use crate::backend::{BackendError, ExecutionContext, RunInfo, StepJournal};
use crate::handler::attempt_log::AttemptLog;
use crate::handler::event_text::scrubbed;
use crate::handler::supervise::{Stop, Supervision, supervise};
use crate::handler::{Disposition, Retryable, attempt_i64, dead_letter};
use crate::journal::RunChange;
use crate::retry::nak_delay;
use crate::workspace::{Materialized, materialize};

impl Turn<'_> {
    /// Executes under the claim and commits the outcome.
    pub(super) async fn execute(
        &self,
        claim: Claim,
        run_spec: Value,
    ) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let started_at = Utc::now();
        if claim.executions > 1 {
            // Whatever this claim does next (execute, give up, hand back).
            self.republish_earlier_attempts(&claim);
        }
        if claim.executions > shared.max_attempts() {
            // Started that often without an outcome: each earlier execution
            // ended with its worker (killed, or its lease lost) — a command
            // that takes its worker down must not do so for ever.
            let why = format!(
                "started {} times without an outcome (each time its worker died or lost the lease; \
                 RUNFLEET_MAX_ATTEMPTS is {})",
                claim.executions - 1,
                shared.max_attempts()
            );
            return self.give_up(&claim, started_at, why, None).await;
        }
        if claim.executions == 1
            && let Some(why) = self.past_schedule_to_start()
        {
            let failure = BackendError::new(FailureKind::ScheduleToStart, why);
            return self
                .commit(&claim, started_at, Ending::failed(failure))
                .await;
        }
        // Validated against its schema when it was accepted; plain serde here.
        let run: RunCreate = serde_json::from_value(run_spec).map_err(|e| {
            crate::db::DbError::Unexpected(format!(
                "stored run {} of tenant {}: {e}",
                self.command.run_id, self.command.tenant
            ))
        })?;
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
            jetstream: &shared.jetstream,
            traceparent: self.traceparent.as_deref(),
            metrics: &shared.metrics,
            redactor: &shared.redactor,
            profile,
            fencing_token: claim.token,
            lease: shared.config.ack_wait,
            heartbeat: shared.config.heartbeat_interval(),
            max_missed_heartbeats: shared.config.max_missed_heartbeats.get(),
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
        let log = self.attempt_log(&claim);
        let supervised = supervise(supervision, log, execution, received, stop).await;
        drop(cancel);

        let mut log = supervised.log;
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
                self.end_attempt(log, "handed back: the worker is shutting down", None)
                    .await;
                self.release(claim.token).await;
                return Ok(Disposition::Nak(None));
            }
            Err(Stop::Failed(failure)) => {
                if failure.kind == FailureKind::BudgetExhausted {
                    log.push(scrubbed(
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
                    return self
                        .retry_or_give_up(&claim, started_at, failure, Some(log))
                        .await;
                }
                Ending::failed(failure)
            }
        };
        ending.log = Some(log);
        ending.run_change = run_change;
        ending.budget_remaining = budget_remaining;
        self.commit(&claim, started_at, ending).await
    }

    /// A retryable failure: NAK for another delivery, or, once the command
    /// has been executed `max_attempts` times (or at JetStream's delivery
    /// backstop), a failed receipt and a dead letter ([`Turn::give_up`]).
    /// `log` holds the attempt's events, if it executed.
    pub(super) async fn retry_or_give_up(
        &self,
        claim: &Claim,
        started_at: DateTime<Utc>,
        failure: BackendError,
        log: Option<AttemptLog>,
    ) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let failure = BackendError::new(failure.kind, shared.redactor.redact(&failure.message));
        if claim.executions < shared.max_attempts() && self.delivery.attempt < shared.max_deliver()
        {
            tracing::warn!(failure = %failure, "retryable failure");
            if let Some(log) = log {
                let why = format!("failed, to be retried: {failure}");
                self.end_attempt(log, &why, Some(failure.kind)).await;
            }
            if failure.kind != FailureKind::HeartbeatLost {
                self.release(claim.token).await;
            }
            self.log(&failure.to_string()).await;
            return Ok(Disposition::Nak(Some(nak_delay(self.delivery.attempt))));
        }
        let why = format!(
            "gave up after {} executions; last failure: {failure}",
            claim.executions
        );
        self.give_up(claim, started_at, why, log).await
    }

    /// The command's budget is spent: a failed receipt (`max-deliveries`,
    /// committed under the claim) and a dead letter.
    async fn give_up(
        &self,
        claim: &Claim,
        started_at: DateTime<Utc>,
        why: String,
        log: Option<AttemptLog>,
    ) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let failure = BackendError::new(FailureKind::MaxDeliveries, why);
        let message = failure.message.clone();
        let mut ending = Ending::failed(failure);
        ending.log = log;
        let disposition = self.commit(claim, started_at, ending).await?;
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
    pub(super) async fn prepare_workdir(
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
    pub(super) fn uses_workdir(&self, run: &RunCreate) -> bool {
        run.resource_bundle.is_some()
            || self
                .shared
                .backends
                .get(run.backend_profile.as_str())
                .is_some_and(|(profile, _)| profile.kind != crate::profiles::BackendKind::Echo)
    }

    /// The run's profile is not served by this worker.
    pub(super) async fn unserved(
        &self,
        claim: &Claim,
        run: &RunCreate,
    ) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let profile = run.backend_profile.as_str();
        let waited = super::elapsed_since(self.scheduled_at());
        let limit = self
            .schedule_to_start(Some(shared.config.schedule_to_start))
            .unwrap_or(shared.config.schedule_to_start);
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
}

/// The claim a command executes under.
pub(super) struct Claim {
    /// The run's fencing token for this claim.
    pub(super) token: i64,
    /// The seq the command's first event gets.
    pub(super) next_event_seq: i64,
    /// What the run spent before this command.
    pub(super) spent: BTreeMap<String, f64>,
    /// How many times the command has been started, this claim included.
    pub(super) executions: u64,
}

/// How an executed command ends, before it is committed.
pub(super) struct Ending {
    pub(super) output: Option<Value>,
    pub(super) failure: Option<BackendError>,
    /// The attempt's events so far (a fresh log from the claim when it has none).
    pub(super) log: Option<AttemptLog>,
    /// Events to add (redacted and bounded) before the terminal one.
    pub(super) events: Vec<EventBody>,
    pub(super) run_change: RunChange,
    pub(super) budget_remaining: BTreeMap<String, f64>,
}

impl Ending {
    pub(super) fn completed(output: Value) -> Ending {
        Ending {
            output: Some(output),
            failure: None,
            log: None,
            events: Vec::new(),
            run_change: RunChange::default(),
            budget_remaining: BTreeMap::new(),
        }
    }

    pub(super) fn failed(failure: BackendError) -> Ending {
        Ending {
            output: None,
            failure: Some(failure),
            log: None,
            events: Vec::new(),
            run_change: RunChange::default(),
            budget_remaining: BTreeMap::new(),
        }
    }
}
