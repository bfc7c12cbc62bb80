//! The ceilings: what JetStream and PostgreSQL do alone on this machine.

use std::future::IntoFuture;
use std::time::Instant;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use runfleet_tests::{TestDb, TestNats};

use crate::fleet::IN_FLIGHT;

/// Both ceilings, per second.
pub struct Ceilings {
    /// Messages published, consumed and acked.
    pub jetstream: f64,
}

/// Measures and prints both ceilings with `n` messages / rows.
pub async fn measure(n: usize) -> anyhow::Result<Ceilings> {
    let jetstream = jetstream_ceiling(n).await?;
    let postgres = postgres_ceiling(n).await?;
    println!(
        "ceilings jetstream_publish_consume_ack_per_s={jetstream:.0} postgres_rows_per_s_100_row_txns={postgres:.0}"
    );
    Ok(Ceilings { jetstream })
}

/// Publishes `n` messages ([`IN_FLIGHT`] PubAcks in flight), then consumes
/// and acks them: messages/s over both.
async fn jetstream_ceiling(n: usize) -> anyhow::Result<f64> {
    let nats = TestNats::start().await?;
    let js = jetstream::new(nats.client().await?);
    let stream = js
        .create_stream(stream::Config {
            name: "BENCH".into(),
            subjects: vec!["bench.>".into()],
            ..Default::default()
        })
        .await?;
    let payload = bytes::Bytes::from(vec![b'x'; 200]);
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
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// `n` journal-shaped rows in 100-row transactions from one client: rows/s.
async fn postgres_ceiling(n: usize) -> anyhow::Result<f64> {
    const ROWS: usize = 100;
    let db = TestDb::create().await?;
    let (client, _driver) = db.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE bench_journal (run_id text, command_id text, step text, attempt bigint, \
             fencing_token bigint, status text, result jsonb, created_at timestamptz DEFAULT now(), \
             PRIMARY KEY (run_id, command_id, step))",
        )
        .await?;
    let insert = client
        .prepare(
            "INSERT INTO bench_journal (run_id, command_id, step, attempt, fencing_token, status, result) \
             SELECT r, c, 'receipt', 1, 1, 'completed', j FROM unnest($1::text[], $2::text[], $3::jsonb[]) AS u(r, c, j)",
        )
        .await?;
    let receipt = serde_json::json!({"status": "completed", "output": {"echo": {"text": "x"}}});
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(ROWS) {
        let runs: Vec<String> = chunk.iter().map(|i| format!("run-{}", i % 100)).collect();
        let commands: Vec<String> = chunk.iter().map(|i| format!("cmd-{i}")).collect();
        let results = vec![receipt.clone(); chunk.len()];
        client
            .execute(&insert, &[&runs, &commands, &results])
            .await?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}
