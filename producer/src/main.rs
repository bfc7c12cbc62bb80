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
//! runfleet validate message.json          # check a message against the contract
//! runfleet publish message.json           # validate, then publish on its subject
//! ```
//!
//! Exit codes: 0 success (and, for `wait`, a completed command); 1 the
//! operation failed (NATS unreachable, not stored); 2 invalid input (the
//! message breaks the contract, bad flags); 3 the command ended failed,
//! cancelled or timed out, or the fleet refused it (dead-lettered, e.g. an
//! idempotency conflict); 4 no receipt within the timeout.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use runfleet_producer::{
    NatsAuth, Producer, ProducerError, follow, inspect, new_cancel, new_command, new_run,
};
use runfleet_schemas::api::FleetStats;
use runfleet_schemas::{
    CommandId, CommandKind, Event, Message, MessageKind, Receipt, ResourceBundle, RunId, SessionId,
    Tenant, TerminalCommandStatus, decode_any,
};

/// Exit code for a message or flag that is wrong.
const EXIT_INVALID: u8 = 2;
/// Exit code for a command that ended without completing.
const EXIT_NOT_COMPLETED: u8 = 3;
/// Exit code for a receipt that did not arrive in time.
const EXIT_TIMEOUT: u8 = 4;

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
        hide_env_values = true,
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    /// A NATS credentials file (also `NATS_CREDS`; user/password, token,
    /// NKey seed and TLS come from `NATS_USER`/`NATS_PASSWORD`, `NATS_TOKEN`,
    /// `NATS_NKEY_SEED`, `NATS_CA`, `NATS_CERT`/`NATS_KEY`, `NATS_TLS`).
    #[arg(long, global = true, env = "NATS_CREDS")]
    creds: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Runs.
    #[command(subcommand)]
    Run(RunCommand),
    /// Commands.
    #[command(subcommand)]
    Command(CommandCommand),
    /// Wait for a command's receipt.
    Wait {
        #[command(flatten)]
        target: RunTarget,
        /// The command's id.
        #[arg(long)]
        command: String,
        /// How long to wait.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Print a run's events (from `--from`), and with `--follow` keep printing new ones.
    Events {
        #[command(flatten)]
        target: RunTarget,
        /// The first event seq to print.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Keep following new events until Ctrl-C.
        #[arg(long)]
        follow: bool,
    },
    /// Print a run's commands and their receipts so far.
    Status {
        /// The tenant owning the run.
        #[arg(long, env = "RUNFLEET_TENANT")]
        tenant: String,
        /// The run.
        run: String,
    },
    /// Cancel a run (its running command stops, its pending commands never
    /// run, it becomes terminal), or with `--command` one of its commands.
    Cancel {
        /// The tenant owning the run.
        #[arg(long, env = "RUNFLEET_TENANT")]
        tenant: String,
        /// The run.
        run: String,
        /// Only this command.
        #[arg(long)]
        command: Option<String>,
        /// Why, for the receipts and the event log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Sessions.
    #[command(subcommand)]
    Session(SessionCommand),
    /// The fleet at a glance: workers (alive, last seen, in flight), commands
    /// and runs by state, dead-letter depth.
    Fleet {
        /// Refresh every 2 s until Ctrl-C.
        #[arg(long)]
        watch: bool,
    },
    /// Dead letters: list, show, re-drive.
    #[command(subcommand)]
    Dlq(DlqCommand),
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

#[derive(Debug, Subcommand)]
enum RunCommand {
    /// Create a run; prints its id.
    Create {
        /// The tenant owning the run.
        #[arg(long, env = "RUNFLEET_TENANT")]
        tenant: String,
        /// The project.
        #[arg(long)]
        project: String,
        /// The backend profile serving it.
        #[arg(long, default_value = "echo")]
        profile: String,
        /// The run's id (default: a fresh UUIDv7).
        #[arg(long)]
        run_id: Option<String>,
        /// A session to continue.
        #[arg(long)]
        session: Option<String>,
        /// A budget, `CURRENCY=AMOUNT` (repeatable), e.g. `--budget usd=5`.
        #[arg(long = "budget", value_parser = parse_budget)]
        budgets: Vec<(String, f64)>,
        /// Materialize this directory (on the worker's host) as the run's working directory.
        #[arg(long, conflicts_with = "bundle_git")]
        bundle_dir: Option<String>,
        /// Materialize this git repository, at `--bundle-commit`, as the run's working directory.
        #[arg(long, requires = "bundle_commit")]
        bundle_git: Option<String>,
        /// The commit of `--bundle-git`.
        #[arg(long, requires = "bundle_git")]
        bundle_commit: Option<String>,
    },
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

#[derive(Debug, Subcommand)]
enum DlqCommand {
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

#[derive(Debug, Subcommand)]
enum SessionCommand {
    /// A session's summary: active or idle, last run, last activity, last event seq.
    Show {
        /// The tenant owning the session.
        #[arg(long, env = "RUNFLEET_TENANT")]
        tenant: String,
        /// The session.
        session: String,
    },
}

#[derive(Debug, Subcommand)]
enum CommandCommand {
    /// Send a command to a run; prints its id.
    Send {
        #[command(flatten)]
        target: RunTarget,
        /// Its position in the run (1, 2, …).
        #[arg(long)]
        seq: u64,
        /// `turn`, `steer` or `close`.
        #[arg(long, default_value = "turn")]
        kind: String,
        /// The payload as JSON; `@FILE` reads a file, `-` (the default) reads stdin.
        #[arg(long, default_value = "-")]
        payload: String,
        /// Wait for the receipt and print it (exit code 3 if it did not complete).
        #[arg(long)]
        wait: bool,
        /// How long `--wait` waits.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

#[derive(Debug, Clone, Args)]
struct RunTarget {
    /// The tenant owning the run.
    #[arg(long, env = "RUNFLEET_TENANT")]
    tenant: String,
    /// The run.
    #[arg(long)]
    run: String,
}

impl RunTarget {
    fn parse(&self) -> Result<(Tenant, RunId), runfleet_schemas::IdError> {
        Ok((
            Tenant::new(self.tenant.as_str())?,
            RunId::new(self.run.as_str())?,
        ))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli).await {
        Ok(code) => code,
        Err(err) => {
            let code = match err.downcast_ref::<ProducerError>() {
                Some(
                    ProducerError::Invalid(_)
                    | ProducerError::Id(_)
                    | ProducerError::TooLarge { .. }
                    | ProducerError::Auth { .. },
                ) => EXIT_INVALID,
                Some(ProducerError::Timeout { .. }) => EXIT_TIMEOUT,
                Some(ProducerError::Refused { .. }) => EXIT_NOT_COMPLETED,
                _ => 1,
            };
            eprintln!("error: {err:#}");
            ExitCode::from(code)
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Cmd::Validate { file } => {
            let bytes = read_input(file)?;
            Ok(match decode_any(&bytes) {
                Ok(message) => {
                    let json = serde_json::json!({"valid": true, "kind": message.kind().as_str()});
                    report(cli, &json, || format!("valid {}", message.kind()));
                    ExitCode::SUCCESS
                }
                Err(err) => invalid(cli, &err.to_string()),
            })
        }
        Cmd::Publish { file } => publish_file(cli, file).await,
        Cmd::Run(RunCommand::Create {
            tenant,
            project,
            profile,
            run_id,
            session,
            budgets,
            bundle_dir,
            bundle_git,
            bundle_commit,
        }) => {
            let mut run = new_run(tenant, project, profile).map_err(ProducerError::from)?;
            run.budgets = budgets.iter().cloned().collect();
            run.resource_bundle = match (bundle_dir, bundle_git, bundle_commit) {
                (Some(path), _, _) => Some(ResourceBundle::Directory { path: path.clone() }),
                (None, Some(url), Some(commit)) => Some(ResourceBundle::Git {
                    url: url.clone(),
                    commit: commit.clone(),
                }),
                _ => None,
            };

            if let Some(id) = run_id {
                run.run_id = RunId::new(id.as_str()).map_err(ProducerError::from)?;
                run.idempotency_key = format!("run:{id}");
            }
            if let Some(session) = session {
                run.session_id = Some(session.parse().map_err(ProducerError::from)?);
            }
            let accepted = connect(cli).await?.create_run(&run).await?;
            let json = serde_json::json!({"run_id": run.run_id, "tenant": run.tenant, "duplicate": accepted.duplicate});
            report(cli, &json, || run.run_id.to_string());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Command(CommandCommand::Send {
            target,
            seq,
            kind,
            payload,
            wait,
            timeout,
        }) => {
            let (tenant, run_id) = target.parse().map_err(ProducerError::from)?;
            let Ok(kind) =
                serde_json::from_value::<CommandKind>(serde_json::Value::String(kind.clone()))
            else {
                return Ok(invalid(
                    cli,
                    &format!("--kind must be turn, steer or close, not {kind:?}"),
                ));
            };
            let payload = match read_payload(payload) {
                Ok(payload) => payload,
                Err(err) => return Ok(invalid(cli, &format!("{err:#}"))),
            };
            let command = new_command(&tenant, &run_id, *seq, kind, payload);
            let producer = connect(cli).await?;
            let accepted = producer.send_command(&command).await?;
            if !*wait {
                let json = serde_json::json!({"command_id": command.command_id, "duplicate": accepted.duplicate});
                report(cli, &json, || command.command_id.to_string());
                return Ok(ExitCode::SUCCESS);
            }
            let progress = waiting(cli, command.command_id.as_str(), *timeout);
            let receipt = producer.wait_for_receipt(&command, *timeout).await;
            progress.finish_and_clear();
            Ok(print_receipt(cli, &receipt?))
        }
        Cmd::Wait {
            target,
            command,
            timeout,
        } => {
            let (tenant, run_id) = target.parse().map_err(ProducerError::from)?;
            let producer = connect(cli).await?;
            let progress = waiting(cli, command, *timeout);
            let receipt =
                follow::wait_for_receipt(producer.jetstream(), &tenant, &run_id, command, *timeout)
                    .await;
            progress.finish_and_clear();
            Ok(print_receipt(cli, &receipt?))
        }
        Cmd::Events {
            target,
            from,
            follow: live,
        } => {
            let (tenant, run_id) = target.parse().map_err(ProducerError::from)?;
            let producer = connect(cli).await?;
            let print = |event: &Event| -> anyhow::Result<()> {
                report(cli, &serde_json::to_value(event)?, || {
                    format!(
                        "{:>5}  {}  {}",
                        event.seq,
                        event.at.format("%H:%M:%S%.3f"),
                        serde_json::to_string(&event.body).unwrap_or_default()
                    )
                });
                Ok(())
            };
            if *live {
                let events = follow::events(producer.jetstream(), &tenant, &run_id, *from).await?;
                futures::pin_mut!(events);
                while let Some(event) = events.next().await {
                    print(&event?)?;
                }
            } else {
                let events =
                    follow::events_so_far(producer.jetstream(), &tenant, &run_id, *from).await?;
                for event in &events {
                    print(event)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Cancel {
            tenant,
            run,
            command,
            reason,
        } => {
            let tenant = Tenant::new(tenant.as_str()).map_err(ProducerError::from)?;
            let run_id = RunId::new(run.as_str()).map_err(ProducerError::from)?;
            let command_id = command
                .as_deref()
                .map(CommandId::new)
                .transpose()
                .map_err(ProducerError::from)?;
            let cancel = new_cancel(&tenant, &run_id, command_id, reason.clone());
            let accepted = connect(cli).await?.publish(&cancel).await?;
            let json = serde_json::json!({"run_id": run_id, "command_id": cancel.command_id, "duplicate": accepted.duplicate});
            report(cli, &json, || match &cancel.command_id {
                Some(c) => format!("cancel requested for command {c} of run {run_id}"),
                None => format!("cancel requested for run {run_id}"),
            });
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Session(SessionCommand::Show { tenant, session }) => {
            let tenant = Tenant::new(tenant.as_str()).map_err(ProducerError::from)?;
            let session = SessionId::new(session.as_str()).map_err(ProducerError::from)?;
            let producer = connect(cli).await?;
            let summary = follow::session_summary(producer.client(), &tenant, &session).await?;
            report(cli, &summary, || {
                let field = |name: &str| match &summary[name] {
                    serde_json::Value::Null => "-".to_owned(),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                format!(
                    "session {}  {}\n  tenant {}  project {}  profile {}\n  runs {}  last run {} ({})\n  last activity {}  last event seq {}",
                    field("session_id"),
                    field("state"),
                    field("tenant"),
                    field("project"),
                    field("backend_profile"),
                    field("runs"),
                    field("last_run_id"),
                    field("last_run_status"),
                    field("last_activity"),
                    field("last_event_seq"),
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Fleet { watch } => {
            let producer = connect(cli).await?;
            loop {
                let stats = inspect::fleet_stats(producer.client()).await?;
                if *watch && !cli.json {
                    print!("\x1b[2J\x1b[H");
                }
                report(cli, &stats, || fleet_text(&stats));
                if !*watch {
                    return Ok(ExitCode::SUCCESS);
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        Cmd::Dlq(DlqCommand::List { tenant, limit, all }) => {
            let producer = connect(cli).await?;
            let listed =
                inspect::dlq_list(producer.client(), tenant.as_deref(), *limit, *all).await?;
            report(cli, &listed, || {
                let letters = &listed.dead_letters;
                let mut text = format!("{} dead letter(s)", letters.len());
                for d in letters {
                    text.push_str(&format!(
                        "\n  {}  {}  {:<22} {}  {}{}",
                        d.dead_letter_id,
                        timestamp(&d.created_at),
                        d.reason,
                        d.tenant,
                        d.message.as_deref().unwrap_or_default(),
                        if d.redriven_at.is_none() {
                            ""
                        } else {
                            "  (re-driven)"
                        },
                    ));
                }
                text
            });
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Dlq(DlqCommand::Show { id }) => {
            let producer = connect(cli).await?;
            let shown = inspect::dlq_show(producer.client(), id).await?;
            report(cli, &shown, || {
                serde_json::to_string_pretty(&shown).unwrap_or_default()
            });
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Dlq(DlqCommand::Redrive { id }) => {
            let producer = connect(cli).await?;
            let done = inspect::dlq_redrive(producer.client(), id).await?;
            report(cli, &done, || {
                format!(
                    "re-driven: published again on {} (stream {} seq {})",
                    done.subject, done.stream, done.sequence
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status { tenant, run } => {
            let tenant = Tenant::new(tenant.as_str()).map_err(ProducerError::from)?;
            let run_id = RunId::new(run.as_str()).map_err(ProducerError::from)?;
            let producer = connect(cli).await?;
            let mut receipts =
                follow::receipts_so_far(producer.jetstream(), &tenant, &run_id).await?;
            receipts.sort_by_key(|r| r.seq);
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"tenant": tenant, "run_id": run_id, "receipts": receipts})
                );
            } else {
                println!(
                    "run {run_id} (tenant {tenant}): {} receipt(s)",
                    receipts.len()
                );
                if let Some(last) = receipts
                    .iter()
                    .rev()
                    .find(|r| !r.budget_remaining.is_empty())
                {
                    let budgets: Vec<String> = last
                        .budget_remaining
                        .iter()
                        .map(|(currency, left)| format!("{currency} {left:.4}"))
                        .collect();
                    println!("  budget remaining: {}", budgets.join(", "));
                }
                for r in &receipts {
                    let failure = r
                        .failure
                        .as_ref()
                        .map(|f| format!("  {}: {}", f.kind, f.message))
                        .unwrap_or_default();
                    println!(
                        "  seq {:>4}  {:<10} {}  attempt {}  worker {}{failure}",
                        r.seq,
                        status_word(r.status),
                        r.command_id,
                        r.attempt,
                        r.worker_id
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn connect(cli: &Cli) -> Result<Producer, ProducerError> {
    let mut auth = NatsAuth::from_env();
    if cli.creds.is_some() {
        auth.creds_file.clone_from(&cli.creds);
    }
    Producer::connect_with(&cli.nats_url, &auth).await
}

async fn publish_file(cli: &Cli, file: &PathBuf) -> anyhow::Result<ExitCode> {
    let bytes = read_input(file)?;
    let message = match decode_any(&bytes) {
        Ok(message) => message,
        Err(err) => return Ok(invalid(cli, &err.to_string())),
    };
    let producer = connect(cli).await?;
    let accepted = match &message {
        Message::RunCreate(m) => producer.publish(m).await?,
        Message::CommandCreate(m) => producer.publish(m).await?,
        Message::ControlCancel(m) => producer.publish(m).await?,
        other => {
            let kind: MessageKind = other.kind();
            return Ok(invalid(
                cli,
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
    report(cli, &json, || {
        let verb = if accepted.duplicate {
            "already accepted:"
        } else {
            "published"
        };
        format!(
            "{verb} {} (stream {} seq {})",
            message.kind(),
            accepted.stream,
            accepted.sequence
        )
    });
    Ok(ExitCode::SUCCESS)
}

/// A spinner with the elapsed time on stderr while a receipt is awaited
/// (hidden when stderr is not a terminal, or with `--json`).
fn waiting(cli: &Cli, command: &str, timeout: Duration) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if cli.json || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
        bar.set_style(style);
    }
    bar.set_message(format!(
        "waiting up to {} for the receipt of {command}…",
        humantime::format_duration(timeout)
    ));
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// The fleet overview as text.
fn fleet_text(stats: &FleetStats) -> String {
    let mut text = String::from("workers:\n");
    for w in &stats.workers {
        text.push_str(&format!(
            "  {:<24} {:<5} in flight {:>4}  last seen {}  host {}\n",
            w.worker_id,
            if w.alive { "alive" } else { "gone" },
            w.in_flight,
            timestamp(&w.last_seen),
            w.host,
        ));
    }
    let counts = |by_status: &std::collections::BTreeMap<String, i64>| {
        by_status
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(status, n)| format!("{status} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    text.push_str(&format!(
        "commands: {}\n",
        counts(&stats.commands_by_status)
    ));
    text.push_str(&format!("runs: {}\n", counts(&stats.runs_by_status)));
    text.push_str(&format!(
        "dead letters: {} pending, {} re-driven",
        stats.dead_letters.pending, stats.dead_letters.redriven
    ));
    text
}

/// A timestamp as the answers' JSON writes it (RFC 3339, UTC).
fn timestamp(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn status_word(status: TerminalCommandStatus) -> &'static str {
    runfleet_schemas::CommandStatus::from(status).as_str()
}

fn print_receipt(cli: &Cli, receipt: &Receipt) -> ExitCode {
    report(
        cli,
        &serde_json::to_value(receipt).unwrap_or_default(),
        || {
            let mut text = format!(
                "{} (command {}, seq {}, attempt {}, worker {})",
                status_word(receipt.status),
                receipt.command_id,
                receipt.seq,
                receipt.attempt,
                receipt.worker_id
            );
            if let Some(f) = &receipt.failure {
                text.push_str(&format!("\n{}: {}", f.kind, f.message));
            }
            if let Some(output) = &receipt.output {
                text.push_str(&format!("\noutput: {output}"));
            }
            text
        },
    );
    if receipt.status == TerminalCommandStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_COMPLETED)
    }
}

fn read_payload(arg: &str) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let text = if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the payload from stdin")?;
        text
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::read_to_string(path).with_context(|| format!("reading the payload from {path}"))?
    } else {
        arg.to_owned()
    };
    match serde_json::from_str(&text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(other) => anyhow::bail!("--payload must be a JSON object, not {other}"),
        Err(err) => anyhow::bail!("--payload is not JSON: {err}"),
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

fn report<T: serde::Serialize>(cli: &Cli, json: &T, text: impl FnOnce() -> String) {
    if cli.json {
        println!("{}", serde_json::to_string(json).unwrap_or_default());
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
