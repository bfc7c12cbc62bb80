//! `runfleet-worker` — the worker binary (thin: flags, tracing, then the library).
//!
//! ```text
//! runfleet-worker check     # NATS version and JetStream, PostgreSQL reachability
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use runfleet_worker::preflight;

#[derive(Debug, Parser)]
#[command(name = "runfleet-worker", version, about = "The runfleet worker fleet")]
struct Cli {
    /// The NATS server(s) to pull from.
    #[arg(
        long,
        global = true,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    /// The PostgreSQL database holding the journal.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        default_value = "postgres://runfleet@127.0.0.1:54329/runfleet",
        hide_env_values = true
    )]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check that NATS (version, JetStream) and PostgreSQL are usable; exit 1 if not.
    Check,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,async_nats=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Check => match preflight::run(&cli.nats_url, &cli.database_url).await {
            Ok(report) => {
                println!(
                    "ok: nats-server {} with JetStream, PostgreSQL {}",
                    report.nats_version, report.postgres_version
                );
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        },
    }
}
