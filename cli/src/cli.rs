//! The command line's shape, as clap reads it: global flags, the
//! subcommands and each one's flags (what each does is in its own file).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use runfleet_schemas::{Priority, RunId, Tenant};

use crate::cli_scheduling::parse_priority;
pub(crate) use crate::cli_scheduling::{
    LimitCommand, ScheduleCommand, ScheduleCreateArgs, ScheduleTarget, SignerCommand,
};

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
    /// An NKey user seed (`SU…`) that signs every cancel (for a fleet that
    /// requires signed cancels; `runfleet signer generate` makes one).
    #[arg(
        long,
        global = true,
        env = "RUNFLEET_SIGNING_KEY",
        hide_env_values = true
    )]
    pub(crate) signing_key: Option<String>,
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
    Wait(WaitArgs),
    /// Print a run's events (from `--from`), and with `--follow` keep printing new ones.
    Events(EventsArgs),
    /// Print a run's commands and their receipts so far.
    Status(StatusArgs),
    /// Cancel a run (its running command stops, its pending commands never
    /// run, it becomes terminal), or with `--command` one of its commands.
    Cancel(CancelArgs),
    /// Sessions.
    #[command(subcommand)]
    Session(SessionCommand),
    /// The fleet at a glance: workers (alive, last seen, in flight), commands
    /// and runs by state, dead-letter depth.
    Fleet(FleetArgs),
    /// Dead letters: list, show, re-drive.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Recurring runs: create, list, pause, resume, delete schedules.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Concurrency limits per key: set, list, delete.
    #[command(subcommand)]
    Limit(LimitCommand),
    /// Keys that may sign a tenant's cancels: generate, add, list, remove.
    #[command(subcommand)]
    Signer(SignerCommand),
    /// Check a message (a file, or `-` for stdin) against the contract.
    Validate(ValidateArgs),
    /// Validate a run.create, command.create or control.cancel message and publish it.
    Publish(PublishArgs),
    /// Serve the web console: the fleet, runs, events (live), dead letters
    /// and sessions in a browser, with cancel and re-drive.
    Console(ConsoleArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ConsoleArgs {
    /// Where to listen. Anything but loopback needs RUNFLEET_CONSOLE_TOKEN
    /// (16+ characters; operators log in with it).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) listen: std::net::SocketAddr,
    /// Hide and refuse the actions (cancel, re-drive).
    #[arg(long)]
    pub(crate) read_only: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RunCommand {
    /// Create a run; prints its id.
    Create(RunCreateArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum CommandCommand {
    /// Send a command to a run; prints its id.
    Send(CommandSendArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum SessionCommand {
    /// A session's summary: active or idle, last run, last activity, last event seq.
    Show(SessionShowArgs),
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

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// The message file; `-` reads stdin.
    #[arg(default_value = "-")]
    pub(crate) file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// The message file; `-` reads stdin.
    #[arg(default_value = "-")]
    pub(crate) file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct RunCreateArgs {
    /// The tenant owning the run.
    #[arg(long, env = "RUNFLEET_TENANT")]
    pub(crate) tenant: String,
    /// The project.
    #[arg(long)]
    pub(crate) project: String,
    /// The backend profile serving it.
    #[arg(long, default_value = "echo")]
    pub(crate) profile: String,
    /// The run's id (default: a fresh UUIDv7).
    #[arg(long)]
    pub(crate) run_id: Option<String>,
    /// A session to continue.
    #[arg(long)]
    pub(crate) session: Option<String>,
    /// A budget, `CURRENCY=AMOUNT` (repeatable), e.g. `--budget usd=5`.
    #[arg(long = "budget", value_parser = parse_budget)]
    pub(crate) budgets: Vec<(String, f64)>,
    /// Materialize this directory (on the worker's host) as the run's working directory.
    #[arg(long, conflicts_with = "bundle_git")]
    pub(crate) bundle_dir: Option<String>,
    /// Materialize this git repository, at `--bundle-commit`, as the run's working directory.
    #[arg(long, requires = "bundle_commit")]
    pub(crate) bundle_git: Option<String>,
    /// The commit of `--bundle-git`.
    #[arg(long, requires = "bundle_git")]
    pub(crate) bundle_commit: Option<String>,
    /// `high`, `normal` or `low`: the queue of the run's creation.
    #[arg(long, default_value = "normal", value_parser = parse_priority)]
    pub(crate) priority: Priority,
    /// The run's concurrency key inside its tenant (limits apply per key;
    /// default: the tenant's).
    #[arg(long)]
    pub(crate) concurrency_key: Option<String>,
}

fn parse_budget(text: &str) -> Result<(String, f64), String> {
    let (currency, amount) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected CURRENCY=AMOUNT, e.g. usd=5"))?;
    let amount: f64 = amount
        .parse()
        .map_err(|_| format!("{text:?}: {amount:?} is not a number"))?;
    if currency.is_empty() || !amount.is_finite() || amount < 0.0 {
        return Err(format!(
            "{text:?}: expected a currency and a non-negative amount"
        ));
    }
    Ok((currency.to_owned(), amount))
}

#[derive(Debug, Args)]
pub(crate) struct CommandSendArgs {
    #[command(flatten)]
    pub(crate) target: RunTarget,
    /// Its position in the run (1, 2, …).
    #[arg(long)]
    pub(crate) seq: u64,
    /// `turn`, `steer` or `close`.
    #[arg(long, default_value = "turn")]
    pub(crate) kind: String,
    /// The payload as JSON; `@FILE` reads a file, `-` (the default) reads stdin.
    #[arg(long, default_value = "-")]
    pub(crate) payload: String,
    /// Run-after: not before this instant, given as a delay (`10m`, `90s`)
    /// or an RFC 3339 time (`2026-12-06T18:00:00Z`).
    #[arg(long, value_parser = parse_not_before)]
    pub(crate) not_before: Option<DateTime<Utc>>,
    /// Schedule-to-start: not started within this (`30s`, `5m`) of being
    /// scheduled, the command ends `timed-out` with `schedule-to-start`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) schedule_to_start: Option<Duration>,
    /// `high`, `normal` or `low`: higher levels start first under a backlog,
    /// and lower ones always get their share.
    #[arg(long, default_value = "normal", value_parser = parse_priority)]
    pub(crate) priority: Priority,
    /// Wait for the receipt and print it (exit code 3 if it did not complete).
    #[arg(long)]
    pub(crate) wait: bool,
    /// How long `--wait` waits (counted from `--not-before` when given).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,
}

/// `--not-before`: a delay from now, or an RFC 3339 time.
fn parse_not_before(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(delay) = humantime::parse_duration(text) {
        let delay = chrono::Duration::from_std(delay).map_err(|e| format!("{text:?}: {e}"))?;
        return Ok(Utc::now() + delay);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.to_utc())
        .map_err(|_| {
            format!(
                "{text:?}: expected a delay (10m, 90s) or an RFC 3339 time (2026-12-06T18:00:00Z)"
            )
        })
}

#[derive(Debug, Args)]
pub(crate) struct WaitArgs {
    #[command(flatten)]
    pub(crate) target: RunTarget,
    /// The command's id.
    #[arg(long)]
    pub(crate) command: String,
    /// How long to wait.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,
    /// Write the command's whole result (its JSON text; a large result's
    /// chunks joined and verified) to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) output: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    #[command(flatten)]
    pub(crate) target: RunTarget,
    /// The first event seq to print.
    #[arg(long, default_value_t = 1)]
    pub(crate) from: u64,
    /// Keep following new events until Ctrl-C.
    #[arg(long)]
    pub(crate) follow: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CancelArgs {
    /// The tenant owning the run.
    #[arg(long, env = "RUNFLEET_TENANT")]
    pub(crate) tenant: String,
    /// The run.
    pub(crate) run: String,
    /// Only this command.
    #[arg(long)]
    pub(crate) command: Option<String>,
    /// Why, for the receipts and the event log.
    #[arg(long)]
    pub(crate) reason: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SessionShowArgs {
    /// The tenant owning the session.
    #[arg(long, env = "RUNFLEET_TENANT")]
    pub(crate) tenant: String,
    /// The session.
    pub(crate) session: String,
}

#[derive(Debug, Args)]
pub(crate) struct FleetArgs {
    /// Refresh every 2 s until Ctrl-C.
    #[arg(long)]
    pub(crate) watch: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// Dead letters, newest first.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Include those already re-driven.
        #[arg(long)]
        all: bool,
    },
    /// One dead letter in full: reason, payload, headers, delivery history.
    Show {
        /// Its id.
        id: String,
    },
    /// Publish the original message again (a new delivery history, the
    /// original idempotency key).
    Redrive {
        /// Its id.
        id: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The tenant owning the run.
    #[arg(long, env = "RUNFLEET_TENANT")]
    pub(crate) tenant: String,
    /// The run.
    pub(crate) run: String,
}
