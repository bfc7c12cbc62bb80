//! One pull, many kinds of message: the batched hot path settles each as it
//! would alone.
//!
//! A worker prepares the history (a receipted command, a closed run, a
//! stored cancel request) and stops; then every kind of message is
//! published while no worker runs, and one worker with room for all of them
//! starts, so its first pull holds them all: a replay, an idempotency
//! conflict, a command to a terminal run, a cancelled command, two commands
//! of one run out of order, an invalid message, and ordinary commands.

mod common;

use std::time::Duration;

use async_nats::HeaderMap;
use common::{Stack, payload};
use runfleet_producer::{new_cancel, new_command, new_run};
use runfleet_schemas::{
    CommandCreate, CommandKind, FailureKind, Receipt, Routed, TerminalCommandStatus, headers,
    subjects,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

fn turn(run: &runfleet_schemas::RunCreate, seq: u64, text: &str) -> CommandCreate {
    new_command(
        &run.tenant,
        &run.run_id,
        seq,
        CommandKind::Turn,
        payload(json!({ "text": text })),
    )
}

#[tokio::test]
async fn one_pull_of_every_kind_of_message_ends_each_as_it_would_alone() {
    let stack = Stack::start().await;
    let env = stack.env.clone().with("RUNFLEET_CONCURRENCY", "512");
    let producer = stack.producer().await;
    let js = producer.jetstream().clone();

    // History, with a worker running.
    let mut worker = common::worker(&env, "w1").await;
    let done = new_run("acme", "tests", "echo").unwrap();
    let closed = new_run("acme", "tests", "echo").unwrap();
    let doomed = new_run("acme", "tests", "echo").unwrap();
    for run in [&done, &closed, &doomed] {
        producer.create_run(run).await.unwrap();
    }
    let original = turn(&done, 1, "original");
    let close = new_command(
        &closed.tenant,
        &closed.run_id,
        1,
        CommandKind::Close,
        payload(json!({})),
    );
    let cancelled = turn(&doomed, 1, "never runs");
    producer.send_command(&original).await.unwrap();
    producer.send_command(&close).await.unwrap();
    producer
        .publish(&new_cancel(
            &doomed.tenant,
            &doomed.run_id,
            Some(cancelled.command_id.clone()),
            Some("not wanted".into()),
        ))
        .await
        .unwrap();
    stack
        .wait_for_receipts(2, WAIT, std::slice::from_ref(&worker))
        .await;
    loop {
        let requests: i64 = stack
            .pg
            .query_one("SELECT count(*) FROM cancel_requests", &[])
            .await
            .unwrap()
            .get(0);
        if requests == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let original_events = events_of(&stack, &original).await;
    let stored: Receipt = serde_json::from_value(stack.receipt(&original).await.unwrap()).unwrap();
    worker.signal("TERM");
    assert!(worker.wait_exit(WAIT).await.is_some(), "the worker stopped");

    // The batch, published with no worker running.
    let ordered = new_run("acme", "tests", "echo").unwrap();
    let plain = new_run("acme", "tests", "echo").unwrap();
    for run in [&ordered, &plain] {
        producer.create_run(run).await.unwrap();
    }
    // A replay: the receipted command's exact message, redelivered (a new message id).
    let mut replay_headers = HeaderMap::new();
    replay_headers.insert(headers::MSG_ID, "redelivered-original");
    js.publish_with_headers(
        original.subject(),
        replay_headers,
        serde_json::to_vec(&original).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    // An idempotency conflict: the original's key with another payload.
    let mut conflicting = turn(&done, 2, "impostor");
    conflicting.idempotency_key = original.idempotency_key.clone();
    producer.send_command(&conflicting).await.unwrap();
    // A command to a terminal run, and the cancelled command.
    let late = turn(&closed, 2, "too late");
    producer.send_command(&late).await.unwrap();
    producer.send_command(&cancelled).await.unwrap();
    // Two commands of one run, out of order.
    let (first, second) = (turn(&ordered, 1, "first"), turn(&ordered, 2, "second"));
    producer.send_command(&second).await.unwrap();
    producer.send_command(&first).await.unwrap();
    // An invalid message.
    js.publish(
        format!("runfleet.cmd.acme.{}", plain.run_id),
        br#"{"schema":"command.create","version":1}"#.to_vec().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    // Ordinary commands.
    let ordinary: Vec<_> = (1..=5)
        .map(|seq| turn(&plain, seq, &format!("ordinary {seq}")))
        .collect();
    for command in &ordinary {
        producer.send_command(command).await.unwrap();
    }

    let worker = common::worker(&env, "w2").await;
    let workers = std::slice::from_ref(&worker);
    let receipt = |c: &CommandCreate| {
        let (producer, c) = (&producer, c.clone());
        async move { producer.wait_for_receipt(&c, WAIT).await.unwrap() }
    };

    // The replay republished the stored receipt and executed nothing.
    let replayed = receipt(&original).await;
    assert_eq!(replayed.status, TerminalCommandStatus::Completed);
    assert_eq!(
        (
            replayed.attempt,
            replayed.fencing_token,
            replayed.finished_at
        ),
        (stored.attempt, stored.fencing_token, stored.finished_at),
        "the stored receipt, not a new one"
    );
    // The conflict executed nothing and is dead-lettered, with no receipt.
    match producer.wait_for_receipt(&conflicting, WAIT).await {
        Err(runfleet_producer::ProducerError::Refused { reason, .. }) => {
            assert_eq!(reason, FailureKind::IdempotencyConflict);
        }
        other => panic!("the conflict was not refused: {other:?}"),
    }
    // The terminal run refused its late command; the cancelled one never ran.
    let late_receipt = receipt(&late).await;
    assert_eq!(
        late_receipt.failure.as_ref().map(|f| f.kind),
        Some(FailureKind::RunTerminal)
    );
    let cancelled_receipt = receipt(&cancelled).await;
    assert_eq!(cancelled_receipt.status, TerminalCommandStatus::Cancelled);
    assert!(cancelled_receipt.started_at.is_none(), "it never started");
    // Out of order in the batch, in order in the run.
    let (r1, r2) = (receipt(&first).await, receipt(&second).await);
    assert_eq!(r1.status, TerminalCommandStatus::Completed);
    assert_eq!(r2.status, TerminalCommandStatus::Completed);
    assert!(r1.fencing_token < r2.fencing_token, "{r1:?} then {r2:?}");
    assert!(events_end(&r1) < events_start(&r2), "{r1:?} then {r2:?}");
    // Ordinary commands, in seq order.
    let mut last_token = 0;
    for command in &ordinary {
        let r = receipt(command).await;
        assert_eq!(r.status, TerminalCommandStatus::Completed, "{r:?}");
        assert!(r.fencing_token > last_token, "{r:?}");
        last_token = r.fencing_token;
        assert_eq!(
            r.output,
            Some(json!({"echo": command.payload})),
            "{}",
            worker.log_text()
        );
    }
    // Nothing of the original's ran again.
    assert_eq!(events_of(&stack, &original).await, original_events);

    // Dead letters: the conflict and the invalid message, each with its reason.
    let dead = stack.wait_for_dead_letters(2).await;
    let mut reasons: Vec<_> = dead.iter().map(|(reason, _, _)| reason.as_str()).collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        ["idempotency-conflict", "schema-invalid"],
        "{dead:?}"
    );
    let invalid = dead.iter().find(|d| d.0 == "schema-invalid").unwrap();
    assert!(
        invalid.1.contains("required field is missing"),
        "{invalid:?}"
    );

    // One receipt per executed or refused command in the journal (the
    // conflict is not journaled: its key belongs to the original), and
    // every message settled.
    stack.wait_for_receipts(11, WAIT, workers).await;
    assert_eq!(stack.receipt_count().await, 11);
    wait_until_settled(&stack).await;
}

/// A pull of nothing but redeliveries: 20 receipted commands published again
/// after the dedupe window and taken by one worker at once, so the journal
/// answers them in one set-based batch (the log shows it). Each replays its
/// stored receipt and republishes its events, equal to the first copies and
/// in seq order; nothing is written again.
#[tokio::test]
async fn a_pull_of_redeliveries_replays_each_receipt_with_its_events() {
    const RUNS: usize = 20;
    let stack = Stack::start().await;
    // No effects file: with one, echo has an effect outside the journal and
    // is not settled in one statement.
    let env = stack
        .env
        .clone()
        .with("RUNFLEET_DEDUPE_WINDOW", "1s")
        .with("RUST_LOG", "info,runfleet_worker::journal=debug");
    let producer = stack.producer().await;
    let runs: Vec<_> = (0..RUNS)
        .map(|i| {
            let run = new_run("acme", "batch", "echo").unwrap();
            let command = turn(&run, 1, &format!("first {i}"));
            (run, command)
        })
        .collect();
    let mut first = stack.workers(&env, 1).await;
    for (run, command) in &runs {
        producer.create_run(run).await.unwrap();
        producer.send_command(command).await.unwrap();
    }
    stack.wait_for_receipts(RUNS as i64, WAIT, &first).await;
    wait_until_settled(&stack).await;
    first[0].signal("TERM");
    first[0].wait_exit(WAIT).await;

    // Past the window the copies are stored: the commands, and then their
    // receipts and events as the replays publish them again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (_, command) in &runs {
        assert!(!producer.send_command(command).await.unwrap().duplicate);
    }
    let second = stack.workers(&env, 1).await;
    wait_until_settled(&stack).await;

    assert_eq!(stack.receipt_count().await, RUNS as i64, "one receipt each");
    for (run, _) in &runs {
        let receipts = stored(
            &stack,
            subjects::RECEIPT_STREAM,
            subjects::receipt(&run.tenant, &run.run_id),
        )
        .await;
        assert_eq!(receipts.len(), 2, "the receipt and its replay");
        assert_eq!(receipts[0], receipts[1], "the replay is the stored receipt");
        let events = stored(
            &stack,
            subjects::EVENT_STREAM,
            subjects::event(&run.tenant, &run.run_id),
        )
        .await;
        let (original, replayed) = events.split_at(events.len() / 2);
        assert!(
            !original.is_empty() && original.len() == replayed.len(),
            "{events:?}"
        );
        assert_eq!(
            original, replayed,
            "the events are republished as stored, in seq order"
        );
    }
    let log = second[0].log_text();
    let largest = log
        .lines()
        .filter(|l| l.contains("journal batch") && l.contains("SettleOp"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    assert!(
        largest >= runfleet_worker::journal::SET_BASED_FROM,
        "the replays were settled in one set-based batch (largest: {largest})"
    );
}

/// Every message stored on `subject` of `stream`, as JSON, in stream order.
async fn stored(stack: &Stack, stream: &str, subject: String) -> Vec<serde_json::Value> {
    use async_nats::jetstream::consumer;
    use futures::StreamExt;
    let js = async_nats::jetstream::new(stack.nats.client().await.unwrap());
    let consumer = js
        .create_consumer_on_stream(
            consumer::pull::OrderedConfig {
                filter_subject: subject,
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            },
            stream,
        )
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut all = Vec::new();
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_secs(2), messages.next()).await
    {
        all.push(serde_json::from_slice(&message.payload).unwrap());
        if message.info().unwrap().pending == 0 {
            break;
        }
    }
    all
}

/// The stored events of a command, as (seq, kind).
async fn events_of(stack: &Stack, command: &CommandCreate) -> Vec<(i64, String)> {
    stack
        .pg
        .query(
            "SELECT seq, event->'body'->>'kind' FROM events WHERE tenant = $1 AND run_id = $2 \
             AND command_id = $3 ORDER BY seq",
            &[
                &command.tenant.as_str(),
                &command.run_id.as_str(),
                &command.command_id.as_str(),
            ],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn events_start(receipt: &Receipt) -> u64 {
    receipt.events.map_or(0, |e| e.first_seq)
}

fn events_end(receipt: &Receipt) -> u64 {
    receipt.events.map_or(0, |e| e.last_seq)
}

/// Waits until the work stream is empty: every message was acked or terminated.
async fn wait_until_settled(stack: &Stack) {
    let js = async_nats::jetstream::new(stack.nats.client().await.unwrap());
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let mut stream = js
            .get_stream(runfleet_schemas::subjects::WORK_STREAM)
            .await
            .unwrap();
        if stream.info().await.unwrap().state.messages == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "messages left in the work stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
