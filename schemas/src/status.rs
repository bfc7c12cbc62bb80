//! Run and command states.
//!
//! A run goes `pending → claimed → completed | failed | blocked | cancelled`;
//! a command goes `pending → acknowledged → running → completed | failed |
//! cancelled | timed-out`. The last four (five) are terminal and final.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Created, no command has been claimed yet.
    Pending,
    /// A worker holds (or last held) the run's lease.
    Claimed,
    /// Closed after its last command completed.
    Completed,
    /// Ended by a command failure that fails the run.
    Failed,
    /// Stopped by policy (budget, tenant policy); needs an operator.
    Blocked,
    /// Cancelled by a control message.
    Cancelled,
}

impl RunStatus {
    /// Whether the run accepts no more commands.
    pub const fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Pending | RunStatus::Claimed)
    }

    /// The value as written on the wire and in PostgreSQL.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Claimed => "claimed",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Blocked => "blocked",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// The state of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CommandStatus {
    /// Accepted, not yet delivered to a worker.
    Pending,
    /// Delivered to a worker that validated it.
    Acknowledged,
    /// The backend is executing it.
    Running,
    /// Finished successfully.
    Completed,
    /// Finished with a failure (see the receipt's `failure`).
    Failed,
    /// Stopped by a control message.
    Cancelled,
    /// Stopped by a watchdog (duration, inactivity).
    TimedOut,
}

impl CommandStatus {
    /// Whether the status is final.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            CommandStatus::Completed
                | CommandStatus::Failed
                | CommandStatus::Cancelled
                | CommandStatus::TimedOut
        )
    }

    /// The value as written on the wire and in PostgreSQL.
    pub const fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Pending => "pending",
            CommandStatus::Acknowledged => "acknowledged",
            CommandStatus::Running => "running",
            CommandStatus::Completed => "completed",
            CommandStatus::Failed => "failed",
            CommandStatus::Cancelled => "cancelled",
            CommandStatus::TimedOut => "timed-out",
        }
    }
}

/// The status a receipt can carry: a terminal [`CommandStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TerminalCommandStatus {
    /// Finished successfully.
    Completed,
    /// Finished with a failure.
    Failed,
    /// Stopped by a control message.
    Cancelled,
    /// Stopped by a watchdog.
    TimedOut,
}

impl From<TerminalCommandStatus> for CommandStatus {
    fn from(status: TerminalCommandStatus) -> CommandStatus {
        match status {
            TerminalCommandStatus::Completed => CommandStatus::Completed,
            TerminalCommandStatus::Failed => CommandStatus::Failed,
            TerminalCommandStatus::Cancelled => CommandStatus::Cancelled,
            TerminalCommandStatus::TimedOut => CommandStatus::TimedOut,
        }
    }
}
