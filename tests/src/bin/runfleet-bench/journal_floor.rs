//! `journal-floor`: what the journal alone costs PostgreSQL, with no broker
//! and no worker logic.
//!
//! The same workload as `drain` (N echo commands over R runs, seq-major),
//! with the runs created first (untimed); then N settles of pure commands
//! go through the worker's own [`Journal`] at the worker's defaults (its
//! batchers, `group_commits` connections, the set-based settle statement),
//! with as many calls in flight as one worker has slots. Each command's
//! receipt and events are computed once, before the clock starts. The rate
//! is `drain`'s upper bound on the PostgreSQL side: with
//! [`crate::broker_floor`] it bounds any worker that keeps the contract and
//! the journal's rows (1 / (1/journal + 1/broker) when both share the machine).

use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use runfleet_schemas::{
    CommandCreate, Event, EventBody, Receipt, Routed, SchemaVersion, TerminalCommandStatus,
};
use runfleet_tests::TestDb;
use runfleet_worker::config::Settings;
use runfleet_worker::db::Pool;
use runfleet_worker::journal::{Begin, CommandRow, Journal};

use crate::Args;
use crate::fleet::workload;

/// The tenant of the settled runs.
const TENANT: &str = "jfloor";

/// Settles `args.commands` commands through the journal; returns commands/s.
pub async fn measure(args: &Args) -> anyhow::Result<f64> {
    let db = TestDb::create().await?;
    let defaults = Settings::default();
    let pool = Pool::connect(db.url(), defaults.pg_pool_size.get()).await?;
    runfleet_worker::setup::migrate(&pool).await?;
    let journal = Journal::new(pool, defaults.group_commits.get());
    let (runs, commands) = workload(TENANT, args.runs, args.commands)?;
    let mut creating = FuturesUnordered::new();
    for run in &runs {
        let bytes = bytes::Bytes::from(serde_json::to_vec(run)?);
        creating.push(async { journal.create_run(run, bytes).await });
    }
    while let Some(created) = creating.next().await {
        created?;
    }
    drop(creating);
    let prepared: Vec<_> = commands
        .iter()
        .map(|command| outcome(command).map(|(receipt, events)| (command, receipt, events)))
        .collect::<anyhow::Result<_>>()?;

    let slots = defaults.concurrency.get();
    // With fewer runs than calls in flight, two seqs of one run would be
    // in flight at once, and the later would wait: not a settle's cost.
    anyhow::ensure!(
        args.runs >= slots,
        "journal-floor needs --runs of at least {slots} (one worker's calls in flight)"
    );
    let started = Instant::now();
    let mut pending = FuturesUnordered::new();
    let mut settled = 0usize;
    let mut queue = prepared.into_iter();
    loop {
        while pending.len() < slots {
            let Some((command, receipt, events)) = queue.next() else {
                break;
            };
            let journal = &journal;
            pending.push(async move {
                let message = bytes::Bytes::from(serde_json::to_vec(command)?);
                let row = CommandRow::new(command, message);
                let answer = journal
                    .settle_pure(row, 1, "journal-floor", "echo", receipt, events)
                    .await?;
                anyhow::ensure!(
                    matches!(answer, Begin::Settled { .. }),
                    "{}: not settled in one statement: {answer:?}",
                    command.msg_id()
                );
                Ok(())
            });
        }
        match pending.next().await {
            Some(done) => {
                done?;
                settled += 1;
            }
            None => break,
        }
    }
    let took = started.elapsed();
    let rate = settled as f64 / took.as_secs_f64();
    println!(
        "journal-floor commands={settled} settle_per_s={rate:.0} seconds={:.2} \
         (the worker's journal at its defaults, {slots} calls in flight; no broker, no worker logic)",
        took.as_secs_f64()
    );
    Ok(rate)
}

/// The receipt and events (JSON) of an echo command, as the worker computes
/// them before its settle (fencing token and seqs are the statement's to
/// fill in).
fn outcome(command: &CommandCreate) -> anyhow::Result<(bytes::Bytes, bytes::Bytes)> {
    let now = chrono::Utc::now();
    let text = command
        .payload
        .get("text")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let event = |body| Event {
        schema: Default::default(),
        version: SchemaVersion,
        tenant: command.tenant.clone(),
        run_id: command.run_id.clone(),
        command_id: Some(command.command_id.clone()),
        seq: 1,
        attempt: Some(1),
        at: now,
        body,
    };
    let events = [
        event(EventBody::AssistantMessage { text: text.clone() }),
        event(EventBody::TerminalStatus {
            status: TerminalCommandStatus::Completed,
            failure_kind: None,
        }),
    ];
    let receipt = Receipt {
        schema: Default::default(),
        version: SchemaVersion,
        tenant: command.tenant.clone(),
        run_id: command.run_id.clone(),
        command_id: command.command_id.clone(),
        seq: command.seq,
        idempotency_key: command.idempotency_key.clone(),
        status: TerminalCommandStatus::Completed,
        failure: None,
        output: Some(serde_json::json!({ "text": text })),
        output_chunks: None,
        output_truncated: false,
        events: None,
        attempt: 1,
        worker_id: "journal-floor".into(),
        fencing_token: 0,
        started_at: Some(now),
        finished_at: now,
        traceparent: None,
        budget_remaining: Default::default(),
    };
    Ok((
        serde_json::to_vec(&receipt)?.into(),
        serde_json::to_vec(&events)?.into(),
    ))
}
