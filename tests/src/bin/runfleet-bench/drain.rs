//! `drain` (and `replay`): a pre-published backlog, then workers start.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use runfleet_schemas::{Routed, headers};

use crate::Args;
use crate::fleet::{
    self, Backlog, IN_FLIGHT, receipted, rss_kib, start_workers, stop_workers, until_consumer_empty,
};

/// The tenant of the drained runs.
const TENANT: &str = "bench";

/// Drains `args.commands` commands with `workers` workers; returns commands/s.
/// With `replay`, then measures redeliveries of the same commands.
pub async fn measure(args: &Args, workers: usize, replay: bool) -> anyhow::Result<f64> {
    let Backlog {
        db,
        env,
        js,
        runs,
        commands,
        published,
        nats: _nats,
    } = Backlog::publish(TENANT, args.runs, args.commands).await?;
    let total = i64::try_from(commands.len())?;
    let (pg, _driver) = db.connect().await?;

    let started = Instant::now();
    let mut fleet = start_workers(&env, workers, "drain").await?;
    let mut peak_kib = 0;
    let mut last_sample = Instant::now();
    // Done when every message is acked (the consumer is empty) and
    // PostgreSQL holds every receipt: an ack follows its commit, so this
    // stops the clock at or just after the last commit, and asks
    // PostgreSQL nothing while the workers drain.
    loop {
        let (pending, unacked) = fleet::backlog(&js).await?;
        if pending == 0 && unacked == 0 && receipted(&pg, TENANT).await? >= total {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(900),
            "drain did not finish in 15 minutes ({} of {total})",
            receipted(&pg, TENANT).await?
        );
        if last_sample.elapsed() >= Duration::from_millis(200) {
            peak_kib = peak_kib.max(peak_rss_kib(&fleet));
            last_sample = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    peak_kib = peak_kib.max(peak_rss_kib(&fleet));
    let rate = commands.len() as f64 / took.as_secs_f64();
    println!(
        "drain workers={workers} commands={} runs={} drain_per_s={rate:.0} seconds={:.2} \
         publish_per_s={:.0} worker_peak_rss_mib={:.1}",
        commands.len(),
        runs.len(),
        took.as_secs_f64(),
        (runs.len() + commands.len()) as f64 / published.as_secs_f64(),
        peak_kib as f64 / 1024.0,
    );
    stop_workers(&mut fleet).await;

    if replay {
        // Redeliveries of receipted commands: the same bytes under new message ids.
        let mut pending = FuturesUnordered::new();
        for command in &commands {
            let mut map = HeaderMap::new();
            map.insert(
                headers::MSG_ID,
                format!("replay:{}", command.idempotency_key).as_str(),
            );
            let payload = serde_json::to_vec(command)?;
            pending.push(
                js.publish_with_headers(command.subject(), map, payload.into())
                    .await?
                    .into_future(),
            );
            if pending.len() >= IN_FLIGHT {
                pending.next().await.transpose()?;
            }
        }
        while pending.next().await.transpose()?.is_some() {}
        let started = Instant::now();
        let mut fleet = start_workers(&env, workers, "replay").await?;
        until_consumer_empty(&js, Duration::from_secs(900)).await?;
        let took = started.elapsed();
        let still = receipted(&pg, TENANT).await?;
        anyhow::ensure!(
            still == total,
            "replays changed the receipts: {still} of {total}"
        );
        println!(
            "replay workers={workers} commands={} replay_per_s={:.0} seconds={:.2}",
            commands.len(),
            commands.len() as f64 / took.as_secs_f64(),
            took.as_secs_f64()
        );
        stop_workers(&mut fleet).await;
    }
    Ok(rate)
}

/// The largest peak RSS (KiB) among `fleet`.
fn peak_rss_kib(fleet: &[runfleet_tests::TestWorker]) -> u64 {
    fleet
        .iter()
        .filter_map(rss_kib)
        .map(|(_, hwm)| hwm)
        .max()
        .unwrap_or(0)
}
