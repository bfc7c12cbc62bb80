//! `runfleet fleet`: workers, commands and runs by state, dead-letter depth,
//! and per concurrency key its pending, delayed, running and limited work.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use runfleet_producer::inspect;
use runfleet_schemas::api::FleetStats;

use crate::cli::{Cli, FleetArgs};
use crate::{connect, print};

pub(crate) async fn run(cli: &Cli, args: &FleetArgs) -> anyhow::Result<ExitCode> {
    let producer = connect(cli).await?;
    loop {
        let stats = inspect::fleet_stats(producer.client()).await?;
        if args.watch && !cli.json {
            print!("\x1b[2J\x1b[H");
        }
        print::report(cli, &stats, || text(&stats));
        if !args.watch {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The fleet overview as text.
fn text(stats: &FleetStats) -> String {
    let mut text = String::from("workers:\n");
    for w in &stats.workers {
        text.push_str(&format!(
            "  {:<24} {:<5} in flight {}  last seen {}  host {}\n",
            w.worker_id,
            if w.alive { "alive" } else { "gone" },
            w.in_flight,
            print::timestamp(&w.last_seen),
            w.host,
        ));
    }
    let counts = |by_status: &BTreeMap<String, i64>| {
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
    if !stats.keys.is_empty() {
        text.push_str("\nkeys:");
        for k in &stats.keys {
            text.push_str(&format!(
                "\n  {:<32} pending {}  delayed {}  running {}  limited {}",
                k.key, k.pending, k.delayed, k.running, k.limited
            ));
            if let Some(pattern) = &k.limit {
                text.push_str(&format!(
                    "  (limit {pattern}: {})",
                    crate::limit::describe(k.max_running, k.rate_per_second)
                ));
            }
            if k.diverted {
                text.push_str("  (diverted: waits its fair turn)");
            }
        }
    }
    text
}
