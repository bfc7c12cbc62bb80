//! `broker-floor`: what the wire contract alone costs the broker, with no
//! PostgreSQL and no worker logic.
//!
//! Every echo command the fleet settles is, on NATS, one delivery and its
//! ack plus three stored publishes awaiting their PubAcks (two events and
//! the receipt, each with its `Nats-Msg-Id`, on the real streams). This mode
//! publishes the same backlog as `drain` to the same streams and consumer,
//! then drains it with a worker that does nothing else: it pulls up to 512
//! messages at a time (the worker's default concurrency), publishes the
//! events and receipt of each command (payloads of the fleet's sizes, all of
//! the pull in flight at once), awaits every PubAck, and acks the pull. No
//! worker that keeps the contract can drain faster on this machine: its rate
//! is `drain`'s upper bound, and the ratio `drain / broker-floor` says how
//! much of the machine the journal and the worker's own work take.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use runfleet_schemas::{MessageKind, headers, subjects};

use crate::Args;
use crate::fleet::{Backlog, until_consumer_empty};

/// The tenant of the drained runs.
const TENANT: &str = "floor";
/// Messages pulled at once (the worker's default `RUNFLEET_CONCURRENCY`).
const PULL: usize = 512;
/// Bytes of an echo command's published event and receipt (as the fleet
/// publishes them for the bench's payload).
const EVENT_BYTES: usize = 330;
const RECEIPT_BYTES: usize = 620;

/// Drains `args.commands` commands as described above; returns commands/s.
pub async fn measure(args: &Args) -> anyhow::Result<f64> {
    let Backlog {
        js,
        commands,
        nats: _nats,
        db: _db,
        ..
    } = Backlog::publish(TENANT, args.runs, args.commands).await?;
    let consumer: consumer::PullConsumer = js
        .get_consumer_from_stream(runfleet_worker::setup::WORK_CONSUMER, subjects::WORK_STREAM)
        .await?;
    let event = bytes::Bytes::from(vec![b'e'; EVENT_BYTES]);
    let receipt = bytes::Bytes::from(vec![b'r'; RECEIPT_BYTES]);
    let started = Instant::now();
    let mut settled = 0usize;
    while settled < commands.len() {
        let mut batch = consumer
            .batch()
            .max_messages(PULL)
            .expires(Duration::from_secs(1))
            .messages()
            .await?;
        let mut pulled = Vec::with_capacity(PULL);
        while let Some(message) = batch.next().await {
            pulled.push(message.map_err(|e| anyhow::anyhow!("{e}"))?);
        }
        let mut acks = FuturesUnordered::new();
        for message in &pulled {
            let Some(parsed) = subjects::parse(&message.subject) else {
                continue;
            };
            if parsed.kind != MessageKind::CommandCreate {
                continue;
            }
            let run = parsed.run_id.unwrap_or_default();
            let on = |kind| {
                format!(
                    "{}.{}.{TENANT}.{run}",
                    subjects::PREFIX,
                    subjects::family(kind)
                )
            };
            let (event_subject, receipt_subject) =
                (on(MessageKind::Event), on(MessageKind::Receipt));
            let id = message
                .info()
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .stream_sequence;
            for (n, (subject, body)) in [
                (event_subject.clone(), &event),
                (event_subject, &event),
                (receipt_subject, &receipt),
            ]
            .into_iter()
            .enumerate()
            {
                let mut map = HeaderMap::new();
                map.insert(headers::MSG_ID, format!("floor:{id}:{n}").as_str());
                acks.push(
                    js.publish_with_headers(subject, map, body.clone())
                        .await?
                        .into_future(),
                );
            }
            settled += 1;
        }
        while acks.next().await.transpose()?.is_some() {}
        for message in &pulled {
            message
                .ack_with(jetstream::AckKind::Ack)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    until_consumer_empty(&js, Duration::from_secs(120)).await?;
    let took = started.elapsed();
    let rate = commands.len() as f64 / took.as_secs_f64();
    println!(
        "broker-floor commands={} drain_per_s={rate:.0} seconds={:.2} \
         (1 delivery + ack and 3 stored publishes per command; no PostgreSQL, no worker logic)",
        commands.len(),
        took.as_secs_f64()
    );
    Ok(rate)
}
