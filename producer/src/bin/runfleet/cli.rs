//! The command line's shape: global flags and the subcommands (each
//! subcommand's own flags are in its file).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use runfleet_schemas::{RunId, Tenant};

use crate::{cancel, command_send, dlq, events, fleet, publish, run_create, session, status};
use crate::{validate, wait};

#[derive(Debug, Parser)]
#[command(
    name = "runfleet",
    version,
    about = "Publish to and inspect a runfleet fleet"
)]
pub(crate) struct Cli {
    /// The NATS server to talk to.
    #[arg(
        long,
        global = true,
        env = "NATS_URL",
        hide_env_values = true,
        default_value = "nats://127.0.0.1:4222"
    )]
    pub(crate) nats_url: String,
    /// A NATS credentials file (also `NATS_CREDS`; user/password, token,
    /// NKey seed and TLS come from `NATS_USER`/`NATS_PASSWORD`, `NATS_TOKEN`,
    /// `NATS_NKEY_SEED`, `NATS_CA`, `NATS_CERT`/`NATS_KEY`, `NATS_TLS`).
    #[arg(long, global = true, env = "NATS_CREDS")]
    pub(crate) creds: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Cmd,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// Runs.
    #[command(subcommand)]
    Run(RunCommand),
    /// Commands.
    #[command(subcommand)]
    Command(CommandCommand),
    /// Wait for a command's receipt.
    Wait(wait::WaitArgs),
    /// Print a run's events (from `--from`), and with `--follow` keep printing new ones.
    Events(events::EventsArgs),
    /// Print a run's commands and their receipts so far.
    Status(status::StatusArgs),
    /// Cancel a run (its running command stops, its pending commands never
    /// run, it becomes terminal), or with `--command` one of its commands.
    Cancel(cancel::CancelArgs),
    /// Sessions.
    #[command(subcommand)]
    Session(SessionCommand),
    /// The fleet at a glance: workers (alive, last seen, in flight), commands
    /// and runs by state, dead-letter depth.
    Fleet(fleet::FleetArgs),
    /// Dead letters: list, show, re-drive.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Check a message (a file, or `-` for stdin) against the contract.
    Validate(validate::ValidateArgs),
    /// Validate a run.create, command.create or control.cancel message and publish it.
    Publish(publish::PublishArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum RunCommand {
    /// Create a run; prints its id.
    Create(run_create::RunCreateArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum CommandCommand {
    /// Send a command to a run; prints its id.
    Send(command_send::CommandSendArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum SessionCommand {
    /// A session's summary: active or idle, last run, last activity, last event seq.
    Show(session::SessionShowArgs),
}

/// The run a subcommand is about.
#[derive(Debug, Clone, Args)]
pub(crate) struct RunTarget {
    /// The tenant owning the run.
    #[arg(long, env = "RUNFLEET_TENANT")]
    pub(crate) tenant: String,
    /// The run.
    #[arg(long)]
    pub(crate) run: String,
}

impl RunTarget {
    /// The tenant and run, checked.
    pub(crate) fn parse(&self) -> Result<(Tenant, RunId), runfleet_schemas::IdError> {
        Ok((
            Tenant::new(self.tenant.as_str())?,
            RunId::new(self.run.as_str())?,
        ))
    }
}
