//! The `echo` backend: deterministic, for demos, tests and benchmarks.
//!
//! It answers `{"echo": <payload>}` and emits an `assistant_message` with the
//! payload's `text` (or the payload). The payload can also ask it to:
//!
//! | field | effect |
//! |---|---|
//! | `sleep_ms` | sleep this long first (cancellable) |
//! | `fail` | `"backend"`: fail fatally (`backend-failed`); `"infra"`: fail retryably (`infra-failed`) |
//! | `fail_attempts` | with `fail`: fail only while the attempt is ≤ this (then succeed) |
//!
//! With an effects file configured (`RUNFLEET_ECHO_EFFECTS_FILE`), every
//! execution appends one line, `tenant run_id seq command_id attempt
//! worker_id`, in a single `O_APPEND` write: the side-effect counter the
//! exactly-once tests compare with the receipts.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;
use runfleet_schemas::{CommandCreate, EventBody, FailureKind};
use serde_json::{Value, json};

use super::{Backend, BackendError, ExecutionContext};

/// The deterministic backend.
#[derive(Debug, Clone, Default)]
pub struct EchoBackend {
    /// Where to append one line per execution, if anywhere.
    effects_file: Option<PathBuf>,
}

impl EchoBackend {
    /// An echo backend, counting effects in `effects_file` when given.
    pub fn new(effects_file: Option<PathBuf>) -> EchoBackend {
        EchoBackend { effects_file }
    }

    fn record_effect(
        &self,
        command: &CommandCreate,
        ctx: &ExecutionContext,
    ) -> Result<(), BackendError> {
        let Some(path) = &self.effects_file else {
            return Ok(());
        };
        let line = format!(
            "{} {} {} {} {} {}\n",
            command.tenant,
            command.run_id,
            command.seq,
            command.command_id,
            ctx.attempt,
            ctx.worker_id
        );
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| file.write_all(line.as_bytes()))
            .map_err(|err| {
                BackendError::new(
                    FailureKind::InfraFailed,
                    format!("effects file {}: {err}", path.display()),
                )
            })
    }
}

impl EchoBackend {
    /// The answer to `payload`: its assistant message's text, and the output.
    fn answer(payload: &serde_json::Map<String, Value>) -> (String, Value) {
        let text = payload
            .get("text")
            .and_then(Value::as_str)
            .map_or_else(|| Value::Object(payload.clone()).to_string(), str::to_owned);
        (text, json!({ "echo": payload }))
    }
}

impl Backend for EchoBackend {
    /// Pure unless it counts effects or the payload asks it to sleep or fail.
    fn pure(&self, command: &CommandCreate) -> Option<super::PureOutcome> {
        let payload = &command.payload;
        if self.effects_file.is_some()
            || payload.contains_key("sleep_ms")
            || payload.contains_key("fail")
        {
            return None;
        }
        let (text, output) = Self::answer(payload);
        Some(super::PureOutcome {
            output,
            events: vec![EventBody::AssistantMessage { text }],
        })
    }

    fn execute<'a>(
        &'a self,
        command: &'a CommandCreate,
        ctx: &'a ExecutionContext,
    ) -> BoxFuture<'a, Result<Value, BackendError>> {
        Box::pin(async move {
            let payload = &command.payload;
            if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                    () = ctx.stopped() => {
                        return Err(BackendError::new(FailureKind::Cancelled, "stopped while sleeping"));
                    }
                }
            }
            let fail_attempts = payload
                .get("fail_attempts")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX);
            if ctx.attempt <= fail_attempts {
                match payload.get("fail").and_then(Value::as_str) {
                    Some("backend") => {
                        return Err(BackendError::new(
                            FailureKind::BackendFailed,
                            format!("echo was asked to fail (attempt {})", ctx.attempt),
                        ));
                    }
                    Some("infra") => {
                        return Err(BackendError::new(
                            FailureKind::InfraFailed,
                            format!("echo was asked to fail retryably (attempt {})", ctx.attempt),
                        ));
                    }
                    _ => {}
                }
            }
            self.record_effect(command, ctx)?;
            let (text, output) = Self::answer(payload);
            ctx.emit(EventBody::AssistantMessage { text });
            Ok(output)
        })
    }
}
