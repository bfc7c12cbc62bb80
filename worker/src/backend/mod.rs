//! Backends: what executes a command.
//!
//! A [`Backend`] runs one command of a run with an [`ExecutionContext`]
//! through which it emits events. It returns the command's output, or a
//! [`BackendError`] whose [`FailureKind`] decides what happens next:
//! retryable kinds (`infra-failed`) are delivered again, fatal kinds end the
//! command with a failed receipt.

mod context;
mod echo;
mod process;
pub(crate) mod protocol;

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use runfleet_schemas::{CommandCreate, EventBody, FailureKind};
use serde_json::Value;

pub use context::{ExecutionContext, RunInfo, Signal, StepJournal};
pub use echo::EchoBackend;
pub use process::{
    EXIT_TEMPFAIL, MAX_LINE_BYTES, PROTOCOL_VERSION, ProcessBackend, STDERR_TAIL_BYTES,
};

use crate::profiles::{BackendKind, Profile, Profiles};
use crate::run_log::RunLog;

/// A backend's failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct BackendError {
    /// What kind of failure (decides retry and receipt status).
    pub kind: FailureKind,
    /// What happened, for the receipt.
    pub message: String,
}

impl BackendError {
    /// A failure of the given kind.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> BackendError {
        BackendError {
            kind,
            message: message.into(),
        }
    }
}

/// What a pure backend computed for a command ([`Backend::pure`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PureOutcome {
    /// The command's output.
    pub output: Value,
    /// The events it produced, in order (the terminal status is added).
    pub events: Vec<EventBody>,
}

/// Executes commands.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Runs `command`. When [`ExecutionContext::stopped`] fires the backend
    /// winds down and returns soon; a future still running after the
    /// profile's kill grace is dropped.
    fn execute<'a>(
        &'a self,
        command: &'a CommandCreate,
        ctx: &'a ExecutionContext,
    ) -> BoxFuture<'a, Result<Value, BackendError>>;

    /// The command's outcome, when this backend computes it from the command
    /// alone with no effect outside the journal (no program, no file, no
    /// wait): then the fleet commits it together with the claim, in one
    /// statement. `None` (the default) means: execute it under a claim.
    fn pure(&self, command: &CommandCreate) -> Option<PureOutcome> {
        let _ = command;
        None
    }

    /// The run ended: release what is kept for it; returns the closing event, if any.
    fn close_run<'a>(&'a self, run: &'a RunInfo) -> BoxFuture<'a, Option<EventBody>> {
        let _ = run;
        Box::pin(async { None })
    }

    /// The worker is stopping: release everything kept.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// The backends of the profiles a worker serves.
#[derive(Debug, Clone)]
pub struct Backends {
    by_profile: HashMap<String, (Profile, Arc<dyn Backend>)>,
}

impl Backends {
    /// One backend per profile; `echo` counts its effects in `echo_effects`;
    /// `process` programs are started through `launcher` when given
    /// ([`crate::launcher`]).
    pub fn new(
        profiles: &Profiles,
        echo_effects: Option<std::path::PathBuf>,
        run_log: Option<RunLog>,
        launcher: Option<std::path::PathBuf>,
    ) -> Backends {
        let by_profile = profiles
            .iter()
            .map(|(name, profile)| {
                let backend: Arc<dyn Backend> = match profile.kind {
                    BackendKind::Echo => Arc::new(EchoBackend::new(echo_effects.clone())),
                    BackendKind::Process => Arc::new(ProcessBackend::new(
                        name.to_owned(),
                        profile.clone(),
                        run_log.clone(),
                        launcher.clone(),
                    )),
                };
                (name.to_owned(), (profile.clone(), backend))
            })
            .collect();
        Backends { by_profile }
    }

    /// The profile called `name` and its backend, if served here.
    pub fn get(&self, name: &str) -> Option<(&Profile, &Arc<dyn Backend>)> {
        self.by_profile.get(name).map(|(p, b)| (p, b))
    }

    /// The profile's name when this worker serves exactly one.
    pub fn only_profile(&self) -> Option<&str> {
        let mut names = self.by_profile.keys();
        match (names.next(), names.next()) {
            (Some(name), None) => Some(name),
            _ => None,
        }
    }

    /// Closes what any backend keeps for the run; returns the closing events.
    pub async fn close_run(&self, tenant: &str, run_id: &str) -> Vec<EventBody> {
        let run = RunInfo {
            tenant: tenant.to_owned(),
            project: String::new(),
            run_id: run_id.to_owned(),
            profile: String::new(),
            session_id: None,
            workdir: std::path::PathBuf::new(),
            budgets_remaining: Default::default(),
        };
        let mut events = Vec::new();
        for (_, backend) in self.by_profile.values() {
            events.extend(backend.close_run(&run).await);
        }
        events
    }

    /// Releases what every backend keeps.
    pub async fn shutdown(&self) {
        futures::future::join_all(self.by_profile.values().map(|(_, b)| b.shutdown())).await;
    }
}
