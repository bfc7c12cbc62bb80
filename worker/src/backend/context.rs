//! What a backend sees of a command's execution: the run, a channel for
//! events, journaled steps, and the stop signal.
//!
//! Events go to the supervisor as they happen (it watches them for
//! inactivity, phases and budgets, redacts them and keeps them for the
//! commit). Steps are journaled write-once under the claim's fencing token:
//! on a later delivery of the same command, [`ExecutionContext::step`]
//! returns the stored result instead of running the step again.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

use runfleet_schemas::{EventBody, FailureKind, StepStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::BackendError;
use crate::journal::Journal;
use crate::redact::Redactor;

/// The run a command belongs to, as its backend needs it.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The owning tenant.
    pub tenant: String,
    /// The project inside the tenant.
    pub project: String,
    /// The run.
    pub run_id: String,
    /// The backend profile serving it.
    pub profile: String,
    /// Its session, if any.
    pub session_id: Option<String>,
    /// Its working directory on this worker.
    pub workdir: PathBuf,
    /// What is left of each budget before this command.
    pub budgets_remaining: BTreeMap<String, f64>,
}

/// Something the backend reports while it runs.
#[derive(Debug)]
pub enum Signal {
    /// An event for the run's log.
    Event(EventBody),
    /// Output that is not an event (stderr, dropped lines): proof of life.
    Activity,
}

/// Where a command's steps are journaled.
#[derive(Debug, Clone)]
pub struct StepJournal {
    /// The journal.
    pub journal: Journal,
    /// The command's tenant.
    pub tenant: String,
    /// The command's run.
    pub run_id: String,
    /// The command.
    pub command_id: String,
    /// This delivery.
    pub attempt: i64,
    /// The claim's fencing token.
    pub fencing_token: i64,
}

/// What a backend sees of the command's execution.
#[derive(Debug)]
pub struct ExecutionContext {
    /// The delivery being executed (1 for the first).
    pub attempt: u64,
    /// The worker executing it.
    pub worker_id: String,
    /// The command's run.
    pub run: RunInfo,
    signals: mpsc::UnboundedSender<Signal>,
    steps: Option<StepJournal>,
    stop: CancellationToken,
    redactor: Redactor,
}

impl ExecutionContext {
    /// A context whose signals go to `signals`; steps are journaled in
    /// `steps` (or only run, when `None`); `stop` asks the backend to wind down.
    pub fn new(
        attempt: u64,
        worker_id: String,
        run: RunInfo,
        signals: mpsc::UnboundedSender<Signal>,
        steps: Option<StepJournal>,
        stop: CancellationToken,
        redactor: Redactor,
    ) -> ExecutionContext {
        ExecutionContext {
            attempt,
            worker_id,
            run,
            signals,
            steps,
            stop,
            redactor,
        }
    }

    /// `text` with credentials and the profile's secrets scrubbed (for text
    /// a backend cuts or quotes before handing it over).
    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text).into_owned()
    }

    /// Appends an event to the run's log (committed together with the receipt).
    pub fn emit(&self, body: EventBody) {
        let _ = self.signals.send(Signal::Event(body));
    }

    /// Reports output that is not an event, so the inactivity watchdog sees life.
    pub fn active(&self) {
        let _ = self.signals.send(Signal::Activity);
    }

    /// Resolves when the command must stop (cancelled, timed out, lease
    /// lost, worker stopping): release what you hold and return soon.
    pub async fn stopped(&self) {
        self.stop.cancelled().await;
    }

    /// Whether the command must stop.
    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Runs `work` as the journaled step `name`, once per command: when an
    /// earlier delivery journaled its result, that result is returned and
    /// `work` is not run.
    ///
    /// # Errors
    /// `work`'s error; `infra-failed` when the journal is unreachable;
    /// `heartbeat-lost` when another claim superseded this one.
    pub async fn step<T, F>(&self, name: &str, work: F) -> Result<T, BackendError>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<T, BackendError>>,
    {
        if let Some(stored) = self.stored_step(name).await? {
            return serde_json::from_value(stored).map_err(|err| {
                BackendError::new(
                    FailureKind::BackendFailed,
                    format!("step {name:?}: its journaled result does not fit: {err}"),
                )
            });
        }
        self.begin_step(name);
        let value = match work.await {
            Ok(value) => value,
            Err(err) => {
                self.fail_step(name);
                return Err(err);
            }
        };
        let json = serde_json::to_value(&value).map_err(|err| {
            BackendError::new(
                FailureKind::BackendFailed,
                format!("step {name:?}: its result is not JSON: {err}"),
            )
        })?;
        let stored = self.save_step(name, json).await?;
        serde_json::from_value(stored).map_err(|err| {
            BackendError::new(
                FailureKind::BackendFailed,
                format!("step {name:?}: its journaled result does not fit: {err}"),
            )
        })
    }

    /// The journaled result of step `name`, if an earlier delivery stored
    /// one (a `replayed` step event is emitted then).
    ///
    /// # Errors
    /// `infra-failed` when the journal is unreachable.
    pub async fn stored_step(&self, name: &str) -> Result<Option<Value>, BackendError> {
        let Some(steps) = &self.steps else {
            return Ok(None);
        };
        let stored = steps
            .journal
            .step_result(&steps.tenant, &steps.run_id, &steps.command_id, name)
            .await
            .map_err(|err| {
                BackendError::new(
                    FailureKind::InfraFailed,
                    format!("step {name:?}: reading the journal: {err}"),
                )
            })?;
        if stored.is_some() {
            self.step_event(name, StepStatus::Replayed);
        }
        Ok(stored)
    }

    /// Records that step `name` starts executing.
    pub fn begin_step(&self, name: &str) {
        self.step_event(name, StepStatus::Started);
    }

    /// Records that step `name` failed (nothing is journaled).
    pub fn fail_step(&self, name: &str) {
        self.step_event(name, StepStatus::Failed);
    }

    /// Journals step `name`'s result write-once; returns the stored result
    /// (an earlier one wins) and emits a `completed` step event.
    ///
    /// # Errors
    /// `infra-failed` when the journal is unreachable; `heartbeat-lost`
    /// when another claim superseded this one (nothing was written).
    pub async fn save_step(&self, name: &str, mut result: Value) -> Result<Value, BackendError> {
        // Journaled results are stored: secrets in them are scrubbed too.
        self.redactor.redact_value(&mut result);
        let Some(steps) = &self.steps else {
            self.step_event(name, StepStatus::Completed);
            return Ok(result);
        };
        let stored = steps
            .journal
            .record_step(
                &steps.tenant,
                &steps.run_id,
                &steps.command_id,
                name,
                steps.attempt,
                steps.fencing_token,
                &result,
            )
            .await
            .map_err(|err| {
                BackendError::new(
                    FailureKind::InfraFailed,
                    format!("step {name:?}: writing the journal: {err}"),
                )
            })?
            .ok_or_else(|| {
                BackendError::new(
                    FailureKind::HeartbeatLost,
                    format!("step {name:?}: the run was claimed by another worker; not journaled"),
                )
            })?;
        self.step_event(name, StepStatus::Completed);
        Ok(stored)
    }

    fn step_event(&self, name: &str, status: StepStatus) {
        self.emit(EventBody::Step {
            name: name.to_owned(),
            status,
        });
    }
}
