//! `latency`: an open-loop publisher at a fixed rate against running workers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use runfleet_producer::{Producer, new_command};
use runfleet_schemas::{CommandKind, Receipt};
use runfleet_tests::{TestDb, TestNats};

use crate::Args;
use crate::fleet::{
    backlog, default_env, payload, publish, setup, start_workers, stop_workers, workload,
};

const TENANT: &str = "lat";
/// Runs the offered commands go round-robin over.
const RUNS: usize = 1_000;

/// Measures and prints the latency distribution at `args.rate`.
pub async fn measure(args: &Args) -> anyhow::Result<()> {
    let nats = TestNats::start().await?;
    let db = TestDb::create().await?;
    let env = default_env(&nats, &db);
    setup(&env)?;
    let producer = Arc::new(Producer::connect(nats.url()).await?);
    let js = producer.jetstream().clone();
    let (runs, _) = workload(TENANT, RUNS, 0)?;
    publish(&producer, &runs, &[]).await?;
    let mut fleet = start_workers(&env, args.latency_workers, "lat").await?;

    let arrived: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut receipts = producer
        .client()
        .subscribe(format!("runfleet.receipt.{TENANT}.>"))
        .await?;
    let listener = tokio::spawn({
        let arrived = arrived.clone();
        async move {
            while let Some(message) = receipts.next().await {
                if let Ok(receipt) = serde_json::from_slice::<Receipt>(&message.payload) {
                    arrived
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(receipt.command_id.to_string())
                        .or_insert_with(Instant::now);
                }
            }
        }
    });

    let total = u64::from(args.rate) * args.seconds;
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let mut due: HashMap<String, Instant> = HashMap::with_capacity(total as usize);
    let mut next_seq = vec![1u64; runs.len()];
    let mut peak_pending = 0;
    let mut last_sample = Instant::now();
    let started = Instant::now();
    for k in 0..total {
        let at = started + interval.mul_f64(k as f64);
        tokio::time::sleep_until(at.into()).await;
        let i = (k as usize) % runs.len();
        let run = &runs[i];
        let command = new_command(
            &run.tenant,
            &run.run_id,
            next_seq[i],
            CommandKind::Turn,
            payload(),
        );
        next_seq[i] += 1;
        due.insert(command.command_id.to_string(), at);
        let producer = producer.clone();
        tokio::spawn(async move {
            if let Err(err) = producer.send_command(&command).await {
                eprintln!("publish failed: {err}");
            }
        });
        if last_sample.elapsed() >= Duration::from_secs(1) {
            last_sample = Instant::now();
            let js = js.clone();
            if let Ok((pending, _)) = backlog(&js).await {
                peak_pending = peak_pending.max(pending);
            }
        }
    }
    let offered_for = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrived.lock().unwrap_or_else(|e| e.into_inner()).len() < due.len()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    listener.abort();
    let arrived = arrived.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let warm = started + Duration::from_secs(args.warmup);
    let mut latencies: Vec<Duration> = due
        .iter()
        .filter(|(_, at)| **at >= warm)
        .filter_map(|(id, at)| {
            arrived
                .get(id)
                .map(|got| got.saturating_duration_since(*at))
        })
        .collect();
    latencies.sort();
    anyhow::ensure!(!latencies.is_empty(), "no receipts arrived");
    let q = |q: f64| {
        latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)].as_secs_f64()
            * 1e3
    };
    println!(
        "latency workers={} offered_per_s={} achieved_per_s={:.0} seconds={} received={}/{} \
         p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} p999_ms={:.2} max_ms={:.2} peak_consumer_pending={peak_pending}",
        args.latency_workers,
        args.rate,
        due.len() as f64 / offered_for.as_secs_f64(),
        args.seconds,
        arrived.len(),
        due.len(),
        q(0.50),
        q(0.90),
        q(0.99),
        q(0.999),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
    stop_workers(&mut fleet).await;
    Ok(())
}
