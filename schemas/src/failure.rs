//! The closed set of failure kinds and what each one means.
//!
//! Every failure the fleet reports has exactly one [`FailureKind`], with a
//! fixed mapping to the receipt's terminal status ([`FailureKind::status`])
//! and to retry ([`FailureKind::retry`]): a retryable failure is NAKed with a
//! delay and tried again until `max_deliver`; a fatal one ends the command at
//! once (and, for messages that cannot be processed at all, dead-letters
//! them).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::TerminalCommandStatus;

/// Why a command or message did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The message does not match its JSON Schema (the message names the field).
    SchemaInvalid,
    /// The idempotency key was used before with a different payload.
    IdempotencyConflict,
    /// The command's run is already terminal.
    RunTerminal,
    /// The command's run was never created (after waiting a bounded time).
    RunNotFound,
    /// Cancelled by a control message.
    Cancelled,
    /// The command's own timeout elapsed.
    TimedOut,
    /// No event or output for longer than the inactivity limit.
    InactivityTimeout,
    /// The command ran longer than its maximum duration.
    MaxDuration,
    /// The worker could not renew its lease (in-progress acks failing).
    HeartbeatLost,
    /// The backend reported a failure (non-zero exit, error result).
    BackendFailed,
    /// Infrastructure failed (database, broker); retried.
    InfraFailed,
    /// A tenant boundary was crossed (e.g. a session reused across tenants).
    TenantPolicyDenied,
    /// No worker serves the run's backend profile.
    NoBackend,
    /// The run's resource bundle could not be materialized.
    WorkspaceFailed,
    /// A budget of the run was exhausted.
    BudgetExhausted,
    /// The message was delivered `max_deliver` times without an outcome.
    MaxDeliveries,
    /// The message is larger than the configured maximum payload.
    PayloadTooLarge,
    /// The command was not started within its `schedule_to_start_ms`.
    ScheduleToStart,
    /// A `control.cancel` lacked a valid, fresh, unreplayed signature of a
    /// key registered for its tenant, while the fleet requires one.
    SignatureInvalid,
}

/// What the worker does with a failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// NAK with a delay; the message is delivered again until `max_deliver`.
    Retryable,
    /// Record the outcome and terminate the message; never delivered again.
    Fatal,
}

impl FailureKind {
    /// Every failure kind.
    pub const ALL: [FailureKind; 19] = [
        FailureKind::SchemaInvalid,
        FailureKind::IdempotencyConflict,
        FailureKind::RunTerminal,
        FailureKind::RunNotFound,
        FailureKind::Cancelled,
        FailureKind::TimedOut,
        FailureKind::InactivityTimeout,
        FailureKind::MaxDuration,
        FailureKind::HeartbeatLost,
        FailureKind::BackendFailed,
        FailureKind::InfraFailed,
        FailureKind::TenantPolicyDenied,
        FailureKind::NoBackend,
        FailureKind::WorkspaceFailed,
        FailureKind::BudgetExhausted,
        FailureKind::MaxDeliveries,
        FailureKind::PayloadTooLarge,
        FailureKind::ScheduleToStart,
        FailureKind::SignatureInvalid,
    ];

    /// The receipt status this failure ends a command with.
    pub const fn status(self) -> TerminalCommandStatus {
        match self {
            FailureKind::Cancelled => TerminalCommandStatus::Cancelled,
            FailureKind::TimedOut
            | FailureKind::InactivityTimeout
            | FailureKind::MaxDuration
            | FailureKind::ScheduleToStart => TerminalCommandStatus::TimedOut,
            _ => TerminalCommandStatus::Failed,
        }
    }

    /// Whether a delivery that failed this way is tried again.
    pub const fn retry(self) -> Retry {
        match self {
            FailureKind::InfraFailed | FailureKind::HeartbeatLost => Retry::Retryable,
            _ => Retry::Fatal,
        }
    }

    /// The value as written on the wire and in PostgreSQL.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::SchemaInvalid => "schema-invalid",
            FailureKind::IdempotencyConflict => "idempotency-conflict",
            FailureKind::RunTerminal => "run-terminal",
            FailureKind::RunNotFound => "run-not-found",
            FailureKind::Cancelled => "cancelled",
            FailureKind::TimedOut => "timed-out",
            FailureKind::InactivityTimeout => "inactivity-timeout",
            FailureKind::MaxDuration => "max-duration",
            FailureKind::HeartbeatLost => "heartbeat-lost",
            FailureKind::BackendFailed => "backend-failed",
            FailureKind::InfraFailed => "infra-failed",
            FailureKind::TenantPolicyDenied => "tenant-policy-denied",
            FailureKind::NoBackend => "no-backend",
            FailureKind::WorkspaceFailed => "workspace-failed",
            FailureKind::BudgetExhausted => "budget-exhausted",
            FailureKind::MaxDeliveries => "max-deliveries",
            FailureKind::PayloadTooLarge => "payload-too-large",
            FailureKind::ScheduleToStart => "schedule-to-start",
            FailureKind::SignatureInvalid => "signature-invalid",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_matches_the_wire_name() {
        for kind in FailureKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn only_infrastructure_failures_are_retried() {
        assert_eq!(FailureKind::InfraFailed.retry(), Retry::Retryable);
        assert_eq!(FailureKind::SchemaInvalid.retry(), Retry::Fatal);
        assert_eq!(FailureKind::IdempotencyConflict.retry(), Retry::Fatal);
        assert_eq!(
            FailureKind::MaxDuration.status(),
            TerminalCommandStatus::TimedOut
        );
        assert_eq!(
            FailureKind::Cancelled.status(),
            TerminalCommandStatus::Cancelled
        );
    }
}
