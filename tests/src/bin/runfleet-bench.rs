//! `runfleet-bench` — end-to-end throughput and latency of the fleet, with
//! the two ceilings it sits under measured in the same run.
//!
//! ```text
//! cargo run --release -p runfleet-tests --bin runfleet-bench -- --commands 20000 --runs 200 --workers 3
//! ```
//!
//! It starts its own nats-server (the pinned one) and a fresh database
//! (`DATABASE_URL`'s server, or an ephemeral cluster), then measures:
//! 1. raw JetStream: publish N messages with 256 PubAcks in flight, then
//!    consume and ack them;
//! 2. raw PostgreSQL: N single-row journal-shaped inserts, one transaction
//!    each, from 16 connections;
//! 3. end to end: R runs, N `echo` commands over them (seq-major), W release
//!    worker processes; publish → receipt latency per command.
//!
//! and prints commands/s, p50/p99 latency, both ceilings and the ratio of
//! end to end to the lower ceiling.
//!
//! Diagnostics: `BENCH_GROUP_COMMITS` sets the workers' group-commit
//! concurrency; `BENCH_WORKER_LOG` their `RUST_LOG` (e.g.
//! `warn,runfleet_worker::worker=info,runfleet_worker::handler=debug` logs
//! per-phase timings); `BENCH_KEEP_LOGS=DIR` keeps their logs.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use clap::Parser;
use futures::{StreamExt, stream::FuturesUnordered};
use runfleet_producer::{Producer, new_command, new_run};
use runfleet_schemas::{CommandKind, Receipt, decode, subjects};
use runfleet_tests::{TestDb, TestNats, TestWorker, WorkerEnv};

#[derive(Debug, Parser)]
#[command(about = "runfleet end-to-end benchmark")]
struct Args {
    /// Commands to run end to end (and messages / rows for the ceilings).
    #[arg(long, default_value_t = 20_000)]
    commands: usize,
    /// Runs the commands are spread over.
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// Worker processes.
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// Concurrency of each worker.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

const IN_FLIGHT: usize = 256;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The fixture reads this to build and run release workers.
    if std::env::var_os("RUNFLEET_BIN_PROFILE").is_none() {
        anyhow::bail!(
            "run with RUNFLEET_BIN_PROFILE=release (scripts/bench does) so workers are release builds"
        );
    }
    let nats = TestNats::start().await?;
    let db = TestDb::create().await?;
    println!(
        "runfleet-bench: {} commands over {} runs, {} workers × {} slots",
        args.commands, args.runs, args.workers, args.concurrency
    );

    let (pg, _driver) = db.connect().await?;
    let fsync: String = pg.query_one("SHOW fsync", &[]).await?.get(0);
    let sync_commit: String = pg.query_one("SHOW synchronous_commit", &[]).await?.get(0);
    println!(
        "PostgreSQL: fsync={fsync}, synchronous_commit={sync_commit} ({})",
        if std::env::var_os("DATABASE_URL").is_some() {
            "DATABASE_URL"
        } else {
            "ephemeral test cluster"
        }
    );
    let js_rate = jetstream_ceiling(&nats, args.commands).await?;
    let pg_rate = postgres_ceiling(&db, args.commands).await?;
    let e2e = end_to_end(&nats, &db, &args).await?;

    let ceiling = js_rate.min(pg_rate);
    println!();
    println!("{:<44} {:>12}", "measure", "value");
    println!(
        "{:<44} {:>12.0}",
        "raw JetStream publish+consume+ack (msg/s)", js_rate
    );
    println!(
        "{:<44} {:>12.0}",
        "raw PostgreSQL journal inserts (rows/s)", pg_rate
    );
    println!("{:<44} {:>12.0}", "end to end (commands/s)", e2e.rate);
    println!(
        "{:<44} {:>12.1}",
        "publish → receipt p50 (ms)",
        e2e.p50.as_secs_f64() * 1e3
    );
    println!(
        "{:<44} {:>12.1}",
        "publish → receipt p99 (ms)",
        e2e.p99.as_secs_f64() * 1e3
    );
    println!(
        "{:<44} {:>12.3}",
        "end to end / lower ceiling",
        e2e.rate / ceiling
    );
    Ok(())
}

/// Publishes `n` messages (256 PubAcks in flight), then consumes and acks them: messages/s over both.
async fn jetstream_ceiling(nats: &TestNats, n: usize) -> anyhow::Result<f64> {
    let js = jetstream::new(nats.client().await?);
    let stream = js
        .create_stream(stream::Config {
            name: "BENCH".into(),
            subjects: vec!["bench.>".into()],
            ..Default::default()
        })
        .await?;
    let payload = bytes_of(200);
    let started = Instant::now();
    let mut pending = FuturesUnordered::new();
    for i in 0..n {
        pending.push(
            js.publish(format!("bench.{}", i % 100), payload.clone())
                .await?
                .into_future(),
        );
        if pending.len() >= IN_FLIGHT {
            pending.next().await.transpose()?;
        }
    }
    while pending.next().await.transpose()?.is_some() {}
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("bench".into()),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    for _ in 0..n {
        let message = messages
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("stream ended"))??;
        message.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    js.client().flush().await?;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    js.delete_stream("BENCH").await?;
    Ok(rate)
}

/// `n` single-row transactions into a journal-shaped table from 16 connections: rows/s.
async fn postgres_ceiling(db: &TestDb, n: usize) -> anyhow::Result<f64> {
    const CONNECTIONS: usize = 16;
    let (setup, _driver) = db.connect().await?;
    setup
        .batch_execute(
            "CREATE TABLE bench_journal (run_id text, command_id text, step text, attempt bigint, \
             fencing_token bigint, status text, result jsonb, created_at timestamptz DEFAULT now(), \
             PRIMARY KEY (run_id, command_id, step))",
        )
        .await?;
    let receipt = serde_json::json!({"status": "completed", "output": {"echo": {"text": "x"}}});
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CONNECTIONS {
        let (client, driver) = db.connect().await?;
        let receipt = receipt.clone();
        tasks.spawn(async move {
            let statement = client
                .prepare("INSERT INTO bench_journal (run_id, command_id, step, attempt, fencing_token, status, result) VALUES ($1, $2, 'receipt', 1, 1, 'completed', $3)")
                .await?;
            for i in (c..n).step_by(CONNECTIONS) {
                client.execute(&statement, &[&format!("run-{}", i % 100), &format!("cmd-{i}"), &receipt]).await?;
            }
            drop(driver);
            Ok::<_, tokio_postgres::Error>(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

struct EndToEnd {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

async fn end_to_end(nats: &TestNats, db: &TestDb, args: &Args) -> anyhow::Result<EndToEnd> {
    let env = WorkerEnv::new(nats.url(), db.url())
        .with("RUNFLEET_CONCURRENCY", args.concurrency.to_string())
        .with(
            "RUNFLEET_GROUP_COMMITS",
            std::env::var("BENCH_GROUP_COMMITS").unwrap_or_else(|_| "2".into()),
        )
        .with("RUNFLEET_ACK_WAIT", "30s")
        .with(
            "RUST_LOG",
            std::env::var("BENCH_WORKER_LOG")
                .unwrap_or_else(|_| "warn,runfleet_worker::worker=info".into()),
        );
    let mut workers = Vec::new();
    for i in 0..args.workers {
        let mut worker = TestWorker::start(&env, &format!("bench-{i}"))?;
        worker.wait_ready(Duration::from_secs(120)).await?;
        workers.push(worker);
    }
    let producer = Producer::connect(nats.url()).await?;
    let js = producer.jetstream().clone();
    let runs: Vec<_> = (0..args.runs)
        .map(|_| new_run("bench", "bench", "echo"))
        .collect::<Result<_, _>>()?;
    for run in &runs {
        producer.create_run(run).await?;
    }
    let per_run = args.commands.div_ceil(args.runs);
    let mut commands = Vec::with_capacity(args.commands);
    for seq in 1..=per_run as u64 {
        for run in &runs {
            if commands.len() < args.commands {
                let payload = serde_json::json!({"text": "bench"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                commands.push(new_command(
                    &run.tenant,
                    &run.run_id,
                    seq,
                    CommandKind::Turn,
                    payload,
                ));
            }
        }
    }

    // Receipts, as they arrive.
    let receipts_stream = js.get_stream(subjects::RECEIPT_STREAM).await?;
    let consumer = receipts_stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: "runfleet.receipt.bench.>".into(),
            ..Default::default()
        })
        .await?;
    let mut receipts = consumer.messages().await?;
    let total = commands.len();
    let collector = tokio::spawn(async move {
        let mut arrived: HashMap<String, Instant> = HashMap::with_capacity(total);
        while arrived.len() < total {
            let Some(Ok(message)) = receipts.next().await else {
                break;
            };
            if let Ok(receipt) = decode::<Receipt>(&message.payload) {
                arrived
                    .entry(receipt.command_id.to_string())
                    .or_insert_with(Instant::now);
            }
        }
        arrived
    });

    let started = Instant::now();
    let mut published: HashMap<String, Instant> = HashMap::with_capacity(total);
    let mut pending = FuturesUnordered::new();
    for command in &commands {
        published.insert(command.command_id.to_string(), Instant::now());
        pending.push(producer.send_command(command));
        if pending.len() >= IN_FLIGHT {
            pending.next().await.transpose()?;
        }
    }
    while pending.next().await.transpose()?.is_some() {}
    let arrived = tokio::time::timeout(Duration::from_secs(600), collector).await??;
    let finished = arrived.values().max().copied().unwrap_or_else(Instant::now);
    anyhow::ensure!(
        arrived.len() == total,
        "only {} of {total} receipts arrived",
        arrived.len()
    );

    let mut latencies: Vec<Duration> = arrived
        .iter()
        .map(|(id, at)| at.duration_since(published[id]))
        .collect();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    if let Ok(dir) = std::env::var("BENCH_KEEP_LOGS") {
        for worker in &workers {
            std::fs::write(format!("{dir}/{}.log", worker.id()), worker.log_text())?;
        }
    }
    for worker in &mut workers {
        worker.signal("TERM");
        worker.wait_exit(Duration::from_secs(10)).await;
    }
    Ok(EndToEnd {
        rate: total as f64 / finished.duration_since(started).as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    })
}

fn bytes_of(n: usize) -> bytes::Bytes {
    bytes::Bytes::from(vec![b'x'; n])
}
