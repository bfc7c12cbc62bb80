//! `runfleet-bench` — the fleet's throughput, latency, replay rate and
//! memory, with the ceilings it sits under measured in the same run.
//!
//! ```text
//! scripts/bench                       # everything, at the defaults below
//! scripts/bench --mode drain --commands 200000 --runs 10000 --workers 1,3
//! scripts/bench --mode latency --rate 500 --seconds 60
//! ```
//!
//! Every mode starts its own nats-server (the pinned one) and a fresh
//! database (on `DATABASE_URL`'s server, or an ephemeral cluster, which runs
//! with `fsync=off`: the bench prints which), and runs real release worker
//! processes **at their default settings** (only the connection URLs are set).
//!
//! - `ceilings`: raw JetStream (publish N with 256 PubAcks in flight, then
//!   consume and ack them) and raw PostgreSQL (N rows in 100-row
//!   transactions from one client).
//! - `broker-floor`: the same backlog as `drain`, drained by a worker that
//!   only does what the wire contract asks of the broker (per command one
//!   delivery and ack, two events and a receipt published with PubAcks):
//!   no PostgreSQL, no worker logic. `drain`'s upper bound on this machine.
//! - `journal-floor`: the same workload settled through the worker's own
//!   journal (its batchers and set-based statement, at the defaults, one
//!   worker's slots in flight): no broker, no worker logic. `drain`'s upper
//!   bound on the PostgreSQL side.
//! - `drain`: N `echo` commands over R runs pre-published with no worker
//!   running; then W workers start, and the clock runs until every message
//!   is acked (the consumer is empty, read every 20 ms) and PostgreSQL holds
//!   every receipt (a count). Comparable with the peers' drain.
//! - `replay`: after a drain, the same N commands are published again under
//!   new message ids (redeliveries of receipted commands, as after a lost
//!   ack); workers start and the clock runs until the consumer is empty.
//! - `latency`: workers running; an open-loop publisher at a fixed rate
//!   (command k due at start + k/rate, each publish its own task); latency
//!   from the due time to the receipt's arrival; the first seconds discarded.
//! - `rss`: one worker with 1,000 slots and 1,000 commands that sleep 3 s
//!   (all in flight at once): its peak RSS.
//! - `overload`: 500,000 commands in the backlog, 3 workers at their
//!   defaults; every 250 ms each worker's RSS, the consumer's unacked
//!   count, the workers' in-flight gauge and PostgreSQL's connections,
//!   each against the bound its setting promises (not part of `all`).

mod broker_floor;
mod ceilings;
mod drain;
mod fleet;
mod journal_floor;
mod latency;
mod overload;
mod rss;

use clap::{Parser, ValueEnum};

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    All,
    Ceilings,
    BrokerFloor,
    JournalFloor,
    Drain,
    Replay,
    Latency,
    Rss,
    Overload,
}

#[derive(Debug, Parser)]
#[command(about = "runfleet benchmark: drain, replay, latency, memory, and the ceilings")]
struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Mode::All)]
    mode: Mode,
    /// Commands to drain (and messages / rows for the ceilings).
    #[arg(long, default_value_t = 200_000)]
    commands: usize,
    /// Runs the drained commands are spread over (seq-major).
    #[arg(long, default_value_t = 10_000)]
    runs: usize,
    /// Worker processes for drain and replay, one measurement each.
    #[arg(long, value_delimiter = ',', default_value = "1,3")]
    workers: Vec<usize>,
    /// Worker processes for latency.
    #[arg(long, default_value_t = 3)]
    latency_workers: usize,
    /// Commands per second offered in the latency mode.
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// How long the latency mode offers them, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Seconds of latency samples discarded at the start.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Commands in the overload mode's backlog.
    #[arg(long, default_value_t = 500_000)]
    overload_commands: usize,
    /// Worker processes for the overload mode.
    #[arg(long, default_value_t = 3)]
    overload_workers: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if std::env::var_os("RUNFLEET_BIN_PROFILE").is_none() {
        anyhow::bail!(
            "run with RUNFLEET_BIN_PROFILE=release (scripts/bench does) so workers are release builds"
        );
    }
    fleet::describe_postgres().await?;
    let wants = |mode: Mode| args.mode == mode || args.mode == Mode::All;
    let mut jetstream_ceiling = None;
    if wants(Mode::Ceilings) {
        let ceilings = ceilings::measure(args.commands).await?;
        jetstream_ceiling = Some(ceilings.jetstream);
    }
    if wants(Mode::BrokerFloor) {
        broker_floor::measure(&args).await?;
    }
    if wants(Mode::JournalFloor) {
        journal_floor::measure(&args).await?;
    }
    if wants(Mode::Drain) || wants(Mode::Replay) {
        for &workers in &args.workers {
            let drained = drain::measure(&args, workers, wants(Mode::Replay)).await?;
            if let Some(ceiling) = jetstream_ceiling {
                println!(
                    "drain/jetstream-ceiling workers={workers} ratio={:.3}",
                    drained / ceiling
                );
            }
        }
    }
    if wants(Mode::Latency) {
        latency::measure(&args).await?;
    }
    if wants(Mode::Rss) {
        rss::measure().await?;
    }
    if args.mode == Mode::Overload {
        overload::measure(&args).await?;
    }
    Ok(())
}
