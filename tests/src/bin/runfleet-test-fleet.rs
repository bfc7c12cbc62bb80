//! `runfleet-test-fleet`: a real fleet for test suites in other languages.
//!
//! The Python and TypeScript producers' suites (`clients/`) start this
//! binary as their fixture. It starts a nats-server with JetStream and a
//! fresh PostgreSQL database (the [`runfleet_tests`] fixtures, as the Rust
//! end-to-end tests do), runs `runfleet-worker setup` and `--workers` real
//! worker processes serving `echo` and the test programs' profiles, then
//! prints one JSON line on stdout:
//!
//! ```json
//! {"nats_url": "nats://127.0.0.1:40123", "database_url": "postgres://…", "workers": ["w1", "w2"]}
//! ```
//!
//! and reads commands, one per line, on stdin, answering each with one JSON
//! line: `restart-nats` (kill nats-server and start it again on the same
//! port and store: clients see a disconnect and a reconnect), `worker-logs`
//! (the workers' log tails). At the end of stdin it stops everything and
//! removes what it made.
//!
//! Profiles served besides `echo` (programs in `tests/programs/`):
//! `agent` (`agent.py`: `steps` with `step_sleep_ms` make a slow command)
//! and `big` (`big_result.py`: a result of `bytes` characters).

use std::io::BufRead;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use runfleet_tests::{TestDb, TestNats, TestWorker, WorkerEnv, profile, setup, tail};
use serde_json::json;

/// Starts a fleet for a test suite; see the module documentation.
#[derive(Debug, Parser)]
struct Args {
    /// How many worker processes.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Workers refuse unsigned cancels (`RUNFLEET_REQUIRE_SIGNED_CONTROL=true`).
    #[arg(long)]
    require_signed_control: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut nats = TestNats::start().await?;
    let db = TestDb::create().await?;
    let profiles = tempfile::NamedTempFile::new()?;
    std::fs::write(
        profiles.path(),
        [
            "[profiles.echo]\nkind = \"echo\"\n".to_owned(),
            profile("agent", "agent.py", ""),
            profile("big", "big_result.py", ""),
        ]
        .join("\n"),
    )?;
    // The product's defaults (the lease included): what producers meet.
    let mut env = WorkerEnv::at_defaults(nats.url(), db.url())
        .with("RUNFLEET_CONFIG", profiles.path().display().to_string());
    if args.require_signed_control {
        env = env.with("RUNFLEET_REQUIRE_SIGNED_CONTROL", "true");
    }
    setup(&env)?;
    let mut workers = Vec::new();
    for i in 1..=args.workers {
        let mut worker = TestWorker::start(&env, &format!("w{i}"))?;
        worker.wait_ready(Duration::from_secs(60)).await?;
        workers.push(worker);
    }
    let ids: Vec<&str> = workers.iter().map(TestWorker::id).collect();
    println!(
        "{}",
        json!({"nats_url": nats.url(), "database_url": db.url(), "workers": ids})
    );

    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        let answer = match line.trim() {
            "restart-nats" => match nats.restart().await {
                Ok(()) => json!({"restarted": nats.url()}),
                Err(err) => json!({"error": err.to_string()}),
            },
            "worker-logs" => json!({
                "logs": workers.iter().map(|w| tail(&w.log_text(), 40)).collect::<Vec<_>>()
            }),
            other => json!({"error": format!("unknown command {other:?}")}),
        };
        println!("{answer}");
    }
    drop(workers);
    drop(nats);
    drop(db);
    Ok(())
}
