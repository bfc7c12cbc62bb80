//! `runfleet` — the command line for producers and operators.
//!
//! ```text
//! runfleet run create --tenant acme --project web --profile echo
//! runfleet command send --tenant acme --run <run-id> --seq 1 --payload '{"text":"hi"}' --wait
//! runfleet wait --tenant acme --run <run-id> --command <command-id>
//! runfleet events --tenant acme --run <run-id> --follow
//! runfleet status --tenant acme <run-id>
//! runfleet cancel --tenant acme <run-id> [--command <command-id>] [--reason "…"]
//! runfleet session show --tenant acme <session-id>
//! runfleet fleet [--watch]                # workers, in-flight, counts, dead-letter depth
//! runfleet dlq list [--tenant acme] | show <id> | redrive <id>
//! runfleet console [--listen 127.0.0.1:8080] [--read-only]   # the web console
//! runfleet validate message.json          # check a message against the contract
//! runfleet publish message.json           # validate, then publish on its subject
//! ```
//!
//! Exit codes: 0 success (and, for `wait`, a completed command); 1 the
//! operation failed (NATS unreachable, not stored); 2 invalid input (the
//! message breaks the contract, bad flags); 3 the command ended failed,
//! cancelled or timed out, or the fleet refused it (dead-lettered, e.g. an
//! idempotency conflict); 4 no receipt within the timeout.
//!
//! One file per subcommand, each with its flags and what it does; the
//! shape of the command line is [`cli`], text and `--json` output [`print`],
//! reading files and payloads [`input`].

mod cancel;
mod cli;
mod cli_scheduling;
mod command_send;
mod console;
mod dlq;
mod events;
mod fleet;
mod input;
mod limit;
mod print;
mod publish;
mod run_create;
mod schedule;
mod session;
mod signer;
mod status;
mod validate;
mod wait;

use std::process::ExitCode;

use clap::Parser;
use runfleet_producer::{NatsAuth, Producer, ProducerError, Signer};

use crate::cli::{Cli, Cmd, CommandCommand, RunCommand, SessionCommand};

/// Exit code for a message or flag that is wrong.
pub(crate) const EXIT_INVALID: u8 = 2;
/// Exit code for a command that ended without completing.
pub(crate) const EXIT_NOT_COMPLETED: u8 = 3;
/// Exit code for a receipt that did not arrive in time.
const EXIT_TIMEOUT: u8 = 4;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

/// The documented exit code of a failure.
fn exit_code(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<ProducerError>() {
        Some(
            ProducerError::Invalid(_)
            | ProducerError::Id(_)
            | ProducerError::TooLarge { .. }
            | ProducerError::Auth { .. },
        ) => EXIT_INVALID,
        Some(ProducerError::Timeout { .. }) => EXIT_TIMEOUT,
        Some(ProducerError::Refused { .. }) => EXIT_NOT_COMPLETED,
        _ => 1,
    }
}

/// Runs the subcommand.
async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Cmd::Validate(args) => validate::run(cli, args),
        Cmd::Publish(args) => publish::run(cli, args).await,
        Cmd::Run(RunCommand::Create(args)) => run_create::run(cli, args).await,
        Cmd::Command(CommandCommand::Send(args)) => command_send::run(cli, args).await,
        Cmd::Wait(args) => wait::run(cli, args).await,
        Cmd::Events(args) => events::run(cli, args).await,
        Cmd::Cancel(args) => cancel::run(cli, args).await,
        Cmd::Session(SessionCommand::Show(args)) => session::show(cli, args).await,
        Cmd::Fleet(args) => fleet::run(cli, args).await,
        Cmd::Dlq(command) => dlq::run(cli, command).await,
        Cmd::Schedule(command) => schedule::run(cli, command).await,
        Cmd::Limit(command) => limit::run(cli, command).await,
        Cmd::Signer(command) => signer::run(cli, command).await,
        Cmd::Status(args) => status::run(cli, args).await,
        Cmd::Console(args) => console::run(cli, args).await,
    }
}

/// Connects to NATS as the global flags and the environment say.
pub(crate) async fn connect(cli: &Cli) -> Result<Producer, ProducerError> {
    let mut auth = NatsAuth::from_env();
    if cli.creds.is_some() {
        auth.creds_file.clone_from(&cli.creds);
    }
    let producer = Producer::connect_with(&cli.nats_url, &auth).await?;
    Ok(match &cli.signing_key {
        Some(seed) => producer.with_signer(Signer::from_seed(seed)?),
        None => producer,
    })
}
