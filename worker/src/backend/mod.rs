//! Backends: what executes a command.
//!
//! A [`Backend`] runs one command of a run with an [`ExecutionContext`]
//! through which it emits events. It returns the command's output, or a
//! [`BackendError`] whose [`FailureKind`] decides what happens next:
//! retryable kinds (`infra-failed`) are delivered again, fatal kinds end the
//! command with a failed receipt.

mod echo;

use futures::future::BoxFuture;
use runfleet_schemas::{CommandCreate, EventBody, FailureKind};
use serde_json::Value;

pub use echo::EchoBackend;

/// What a backend sees of the command's execution.
#[derive(Debug)]
pub struct ExecutionContext {
    /// The delivery being executed (1 for the first).
    pub attempt: u64,
    /// The worker executing it.
    pub worker_id: String,
    /// Events emitted so far, in order (committed with the receipt).
    events: Vec<EventBody>,
}

impl ExecutionContext {
    /// A context for one execution.
    pub fn new(attempt: u64, worker_id: String) -> ExecutionContext {
        ExecutionContext {
            attempt,
            worker_id,
            events: Vec::new(),
        }
    }

    /// Appends an event to the run's log (committed together with the receipt).
    pub fn emit(&mut self, body: EventBody) {
        self.events.push(body);
    }

    /// The events emitted, leaving none.
    pub fn take_events(&mut self) -> Vec<EventBody> {
        std::mem::take(&mut self.events)
    }
}

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

/// Executes commands.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Runs `command`; the future is dropped if the lease is lost or the worker aborts.
    fn execute<'a>(
        &'a self,
        command: &'a CommandCreate,
        ctx: &'a mut ExecutionContext,
    ) -> BoxFuture<'a, Result<Value, BackendError>>;
}
