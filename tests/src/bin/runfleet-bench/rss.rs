//! `rss`: one worker holding 1,000 commands in flight at once.

use std::time::{Duration, Instant};

use runfleet_producer::{Producer, new_command};
use runfleet_schemas::CommandKind;
use runfleet_tests::{TestDb, TestNats};

use crate::fleet::{
    default_env, publish, receipted, rss_kib, setup, start_workers, stop_workers, workload,
};

const TENANT: &str = "rss";
const IN_FLIGHT: usize = 1_000;

/// Measures and prints the worker's peak RSS with [`IN_FLIGHT`] sleeping commands.
pub async fn measure() -> anyhow::Result<()> {
    let nats = TestNats::start().await?;
    let db = TestDb::create().await?;
    let env = default_env(&nats, &db).with("RUNFLEET_CONCURRENCY", IN_FLIGHT.to_string());
    setup(&env)?;
    let producer = Producer::connect(nats.url()).await?;
    let (runs, _) = workload(TENANT, IN_FLIGHT, 0)?;
    let commands: Vec<_> = runs
        .iter()
        .map(|run| {
            let payload = serde_json::json!({"text": "rss", "sleep_ms": 3000})
                .as_object()
                .cloned()
                .unwrap_or_default();
            new_command(&run.tenant, &run.run_id, 1, CommandKind::Turn, payload)
        })
        .collect();
    let mut fleet = start_workers(&env, 1, "rss").await?;
    let idle = rss_kib(&fleet[0]).map_or(0, |(now, _)| now);
    publish(&producer, &runs, &commands).await?;
    let (pg, _driver) = db.connect().await?;
    let started = Instant::now();
    let mut peak = 0;
    while receipted(&pg, TENANT).await? < IN_FLIGHT as i64 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the sleeping commands did not finish"
        );
        if let Some((now, _)) = rss_kib(&fleet[0]) {
            peak = peak.max(now);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hwm = rss_kib(&fleet[0]).map_or(0, |(_, hwm)| hwm);
    println!(
        "rss in_flight={IN_FLIGHT} idle_mib={:.1} peak_rss_mib={:.1} vm_hwm_mib={:.1} took_s={:.2}",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0,
        hwm as f64 / 1024.0,
        started.elapsed().as_secs_f64()
    );
    stop_workers(&mut fleet).await;
    Ok(())
}
