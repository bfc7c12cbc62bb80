//! `runfleet-worker` — the worker binary (thin: flags, tracing, signals, then the library).
//!
//! ```text
//! runfleet-worker run       # the default: pull and execute work until SIGTERM/SIGINT
//! runfleet-worker setup     # create or update streams, the consumer and migrations
//! runfleet-worker check     # NATS version and JetStream, PostgreSQL reachability
//! runfleet-worker --dump-config   # the effective configuration, secrets masked
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use runfleet_worker::config::{Overrides, Settings};
use runfleet_worker::redact::{RedactingWriter, Redactor};
use runfleet_worker::{preflight, telemetry, worker};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

#[derive(Debug, Parser)]
#[command(name = "runfleet-worker", version, about = "The runfleet worker fleet")]
struct Cli {
    #[command(flatten)]
    overrides: Overrides,
    /// Print the effective configuration (defaults, file, environment,
    /// flags), secrets masked, and exit.
    #[arg(long)]
    dump_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pull and execute work until SIGTERM/SIGINT (the default).
    Run,
    /// Create or update the streams, the work consumer and the PostgreSQL schema.
    Setup,
    /// Check that NATS (version, JetStream) and PostgreSQL are usable; exit 1 if not.
    Check,
}

/// Logs go through the redactor: no log line carries a credential pattern
/// or a profile's secret value. With the `otel` feature and
/// `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are also exported over OTLP.
fn init_tracing(json: bool, redactor: Redactor) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,async_nats=warn,refinery_core=warn,tokio_postgres=warn",
        )
    });
    let (otel, otel_error) = match telemetry::try_otel_layer() {
        Ok(layer) => (layer, None),
        Err(err) => (None, Some(err)),
    };
    // Colour only for a person at a terminal: a log file or a collector
    // gets plain text (`NO_COLOR` turns it off at a terminal too).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(colour)
        .with_writer(RedactingWriter::new(redactor, std::io::stderr));
    let fmt = if json {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(otel)
        .with(fmt)
        .init();
    if let Some(err) = otel_error {
        tracing::warn!(error = %err, "OpenTelemetry trace export is off");
    }
}

fn main() -> ExitCode {
    // A launcher for a program (see `launcher`) becomes the program here.
    runfleet_worker::launcher::run_if_asked(&std::env::args_os().collect::<Vec<_>>());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_or_else(
            |err| {
                eprintln!("error: cannot start the runtime: {err}");
                ExitCode::FAILURE
            },
            |runtime| runtime.block_on(run()),
        )
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    let config = match Settings::load(&cli.overrides) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    if cli.dump_config {
        print!("{}", config.dump());
        return ExitCode::SUCCESS;
    }
    let profiles = match config.profiles_checked(cli.overrides.config_file.as_deref()) {
        Ok(profiles) => profiles,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    // The redactor also knows the configured passwords, tokens and seeds.
    let redactor = worker::redactor_for(&profiles).with_secrets(config.secret_values());
    init_tracing(config.log_json, redactor.clone());
    let redactor_for_errors = redactor.clone();
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Check => preflight::run(&config)
            .await
            .map(|report| {
                println!(
                    "ok: nats-server {} with JetStream, PostgreSQL {}",
                    report.nats_version, report.postgres_version
                );
            })
            .map_err(anyhow::Error::from),
        Command::Setup => worker::setup(&config)
            .await
            .map(|applied| {
                println!("ok: streams and consumer ready, {applied} migration(s) applied")
            })
            .map_err(anyhow::Error::from),
        Command::Run => {
            let shutdown = CancellationToken::new();
            tokio::spawn(watch_signals(shutdown.clone()));
            worker::run_with(config, profiles, redactor, shutdown)
                .await
                .map_err(anyhow::Error::from)
        }
    };
    telemetry::shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", redactor_for_errors.redact(&format!("{err:#}")));
            ExitCode::FAILURE
        }
    }
}

/// First SIGTERM/SIGINT: graceful shutdown. Second: exit at once.
async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    tracing::info!("shutdown requested; finishing in-flight work (signal again to exit now)");
    shutdown.cancel();
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    tracing::warn!("second signal: exiting now");
    std::process::exit(130);
}
