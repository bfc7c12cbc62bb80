//! `runfleet-chaos`: the fleet under faults, on a 3-node cluster
//! (`scripts/chaos`).
//!
//! Each scenario starts its own 3-node nats-server cluster
//! (`sync_interval: always`, R3 streams), a PostgreSQL server of its own
//! and 3 workers **at the default settings**, publishes N echo commands
//! (5–50 ms each, so executions overlap the faults) from 4 concurrent
//! producers, and strikes its faults ([`faults::Fault`]) until every
//! command has its receipt. Then it checks ([`check::verify`]): 0 lost,
//! 0 unpublished, 0 duplicate receipts, 0 order violations, 0 executions
//! after a commit, 0 dead letters. One line per scenario, then
//! `N passed, N failed`.
//!
//! ```text
//! runfleet-chaos                    # 10,000 commands; each fault alone, then all together
//! runfleet-chaos --short            # 1,000 commands; every fault once, together
//! ```

mod check;
mod faults;
mod stack;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::future::try_join_all;
use runfleet_producer::{Producer, new_command, new_run};
use runfleet_schemas::{CommandCreate, CommandKind, RunCreate};
use serde_json::json;

use crate::faults::{Fault, Injected};
use crate::stack::Stack;

#[derive(Debug, Parser)]
#[command(
    name = "runfleet-chaos",
    about = "The fleet under faults on a 3-node cluster"
)]
struct Cli {
    /// Commands per scenario (20 per run).
    #[arg(long, default_value_t = 10_000)]
    commands: usize,
    /// 1,000 commands and one scenario with every fault once (CI's run).
    #[arg(long)]
    short: bool,
    /// Only this scenario (`kill-workers`, …, `all-together`).
    #[arg(long)]
    scenario: Option<String>,
    /// Give up on a scenario after this many seconds without every receipt.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

/// Commands per run.
const PER_RUN: usize = 20;
/// Concurrent producers.
const PRODUCERS: usize = 4;
/// The workers.
const WORKERS: usize = 3;
/// How long every work message may take to be acked once every receipt is
/// committed (a redelivery after a failover comes after `ack_wait`, 10 s).
const ACKED_WITHIN: Duration = Duration::from_secs(120);

/// A scenario: its name, its faults, whether worker kills repeat.
struct Scenario {
    name: &'static str,
    faults: Vec<Fault>,
    storm: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let commands = if cli.short { 1_000 } else { cli.commands };
    let mut scenarios: Vec<Scenario> = if cli.short {
        vec![Scenario {
            name: "each-fault-once",
            faults: Fault::ALL.to_vec(),
            storm: false,
        }]
    } else {
        let mut alone: Vec<Scenario> = Fault::ALL
            .iter()
            .map(|f| Scenario {
                name: f.name(),
                faults: vec![*f],
                storm: *f == Fault::KillWorkers,
            })
            .collect();
        alone.push(Scenario {
            name: "all-together",
            faults: Fault::ALL.to_vec(),
            storm: true,
        });
        alone
    };
    if let Some(only) = &cli.scenario {
        scenarios.retain(|s| s.name == only);
    }
    let (mut passed, mut failed) = (0, 0);
    for scenario in &scenarios {
        match run(scenario, commands, Duration::from_secs(cli.timeout)).await {
            Ok(true) => passed += 1,
            Ok(false) => failed += 1,
            Err(err) => {
                println!("chaos scenario={} error={err:#}", scenario.name);
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Waits until the work consumer has nothing pending and nothing unacked
/// (a failed look, during a leader election say, is tried again).
async fn all_acked(stack: &Stack, limit: Duration) -> anyhow::Result<()> {
    let js = stack.jetstream().await?;
    let started = Instant::now();
    loop {
        let looked = runfleet_tests::work_backlog(&js).await;
        if matches!(looked, Ok((0, 0))) {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < limit,
            "the work consumer is not empty: {looked:?} (pending, unacked)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs one scenario and prints its line; whether every check held.
async fn run(scenario: &Scenario, commands: usize, timeout: Duration) -> anyhow::Result<bool> {
    let mut stack = Stack::start(WORKERS).await?;
    let runs = (commands / PER_RUN).max(1);
    let total = (runs * PER_RUN) as i64;
    let work = plan(runs)?;
    let mut producers = Vec::with_capacity(PRODUCERS);
    for _ in 0..PRODUCERS {
        producers.push(stack.producer().await?);
    }
    let started = Instant::now();
    let publishing = tokio::spawn(publish_all(producers, work));

    let mut injected = Injected::default();
    let mut pending: Vec<Fault> = scenario.faults.clone();
    let mut next_kill = Instant::now() + Duration::from_millis(300);
    loop {
        let done = stack.receipt_count().await;
        // Every fault is struck, even one whose share of the work was
        // done while an earlier fault was being struck (a failover takes
        // seconds): the checks below then run after all of them.
        if done >= total && pending.is_empty() {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "{done} of {total} receipts after {} s",
            timeout.as_secs()
        );
        let share = done as f64 / total as f64;
        if let Some(i) = pending.iter().position(|f| share >= f.at_share()) {
            let fault = pending.remove(i);
            faults::strike(&mut stack, fault, &mut injected).await?;
        } else if scenario.storm && Instant::now() >= next_kill {
            faults::strike(&mut stack, Fault::KillWorkers, &mut injected).await?;
            next_kill = Instant::now() + Duration::from_millis(fastrand::u64(250..350));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    publishing.await??;
    // A command's receipt is committed before it is published, and its
    // message acked only after that publish: once the work consumer holds
    // nothing (every message acked), every receipt is on its stream — a
    // publish that failed during a failover is made by the redelivery's
    // replay, which can land after the last commit.
    all_acked(&stack, ACKED_WITHIN).await?;
    let verdict = check::verify(&stack, total).await?;
    let ok = verdict.passed() && pending.is_empty();
    println!(
        "chaos scenario={} commands={total} seconds={:.1} worker_kills={} failover_s={} pg_restarts={} stops={} \
         lost={} unpublished={} duplicates={} not_completed={} unbacked={} order_violations={} after_commit={} dead_letters={} {}",
        scenario.name,
        elapsed.as_secs_f64(),
        injected.worker_kills,
        injected
            .failover_s
            .map_or("-".into(), |s| format!("{s:.1}")),
        injected.pg_restarts,
        injected.stops,
        verdict.lost,
        verdict.unpublished,
        verdict.duplicates,
        verdict.not_completed,
        verdict.unbacked,
        verdict.order_violations,
        verdict.after_commit,
        verdict.dead_letters.len(),
        if ok { "PASS" } else { "FAIL" },
    );
    for letter in verdict.dead_letters.iter().take(10) {
        println!("  dead letter: {letter}");
    }
    Ok(ok)
}

/// The runs and their commands.
fn plan(runs: usize) -> anyhow::Result<Vec<(RunCreate, Vec<CommandCreate>)>> {
    (0..runs)
        .map(|_| {
            let run = new_run("chaos", "p", "echo")?;
            let commands = (1..=PER_RUN as u64)
                .map(|seq| {
                    let payload =
                        json!({"text": format!("turn {seq}"), "sleep_ms": fastrand::u64(5..50)});
                    let serde_json::Value::Object(payload) = payload else {
                        unreachable!("a JSON object literal")
                    };
                    new_command(&run.tenant, &run.run_id, seq, CommandKind::Turn, payload)
                })
                .collect();
            Ok((run, commands))
        })
        .collect()
}

/// Each producer publishes its share of the runs, seq-major (as
/// concurrent producers interleave), with the producer's own retries.
async fn publish_all(
    producers: Vec<Producer>,
    work: Vec<(RunCreate, Vec<CommandCreate>)>,
) -> anyhow::Result<()> {
    let shares = producers.into_iter().enumerate().map(|(i, producer)| {
        let mine: Vec<_> = work.iter().skip(i).step_by(PRODUCERS).cloned().collect();
        async move {
            for (run, _) in &mine {
                producer.create_run(run).await?;
            }
            for seq in 0..PER_RUN {
                for (_, commands) in &mine {
                    producer.send_command(&commands[seq]).await?;
                }
            }
            anyhow::Ok(())
        }
    });
    try_join_all(shares).await?;
    Ok(())
}
