//! `runfleet` — the command line for producers and operators.
//!
//! ```text
//! runfleet validate message.json          # check a message against the contract
//! runfleet publish message.json           # validate, then publish on its subject
//! ```
//!
//! Exit codes: 0 success; 1 the operation failed (NATS unreachable, not
//! stored); 2 invalid input (the message breaks the contract, bad flags).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use runfleet_producer::Producer;
use runfleet_schemas::{Message, MessageKind, decode_any};

/// Exit code for a message or flag that is wrong.
const EXIT_INVALID: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "runfleet",
    version,
    about = "Publish to and inspect a runfleet fleet"
)]
struct Cli {
    /// The NATS server to talk to.
    #[arg(
        long,
        global = true,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a message (a file, or `-` for stdin) against the contract.
    Validate {
        /// The message file; `-` reads stdin.
        #[arg(default_value = "-")]
        file: PathBuf,
    },
    /// Validate a run.create, command.create or control.cancel message and publish it.
    Publish {
        /// The message file; `-` reads stdin.
        #[arg(default_value = "-")]
        file: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Validate { file } => {
            let bytes = read_input(file)?;
            Ok(match decode_any(&bytes) {
                Ok(message) => {
                    report(
                        &cli,
                        &serde_json::json!({"valid": true, "kind": message.kind().as_str()}),
                        || format!("valid {}", message.kind()),
                    );
                    ExitCode::SUCCESS
                }
                Err(err) => invalid(&cli, &err.to_string()),
            })
        }
        Command::Publish { file } => {
            let bytes = read_input(file)?;
            let message = match decode_any(&bytes) {
                Ok(message) => message,
                Err(err) => return Ok(invalid(&cli, &err.to_string())),
            };
            let producer = Producer::connect(&cli.nats_url).await?;
            let accepted = match &message {
                Message::RunCreate(m) => producer.publish(m).await?,
                Message::CommandCreate(m) => producer.publish(m).await?,
                Message::ControlCancel(m) => producer.publish(m).await?,
                other => {
                    let kind: MessageKind = other.kind();
                    return Ok(invalid(
                        &cli,
                        &format!("{kind} messages are published by the fleet, not by producers"),
                    ));
                }
            };
            let json = serde_json::json!({
                "kind": message.kind().as_str(),
                "stream": accepted.stream,
                "sequence": accepted.sequence,
                "duplicate": accepted.duplicate,
            });
            report(&cli, &json, || {
                if accepted.duplicate {
                    format!(
                        "already accepted: {} (stream {} seq {})",
                        message.kind(),
                        accepted.stream,
                        accepted.sequence
                    )
                } else {
                    format!(
                        "published {} (stream {} seq {})",
                        message.kind(),
                        accepted.stream,
                        accepted.sequence
                    )
                }
            });
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read_input(file: &PathBuf) -> anyhow::Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading the message from stdin")?;
        Ok(bytes)
    } else {
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))
    }
}

fn report(cli: &Cli, json: &serde_json::Value, text: impl FnOnce() -> String) {
    if cli.json {
        println!("{json}");
    } else {
        println!("{}", text());
    }
}

fn invalid(cli: &Cli, reason: &str) -> ExitCode {
    if cli.json {
        println!("{}", serde_json::json!({"valid": false, "error": reason}));
    } else {
        eprintln!("invalid: {reason}");
    }
    ExitCode::from(EXIT_INVALID)
}
