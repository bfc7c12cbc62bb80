//! The durable core against real servers and real worker processes:
//! ordered execution, one receipt per command, replays, idempotency, the run
//! lifecycle, retries and dead letters.

mod common;

use std::time::Duration;

use common::{Stack, payload, run_with_commands, text_payload};
use futures::StreamExt;
use runfleet_producer::{ProducerError, new_command, new_run};
use runfleet_schemas::{CommandKind, FailureKind, TerminalCommandStatus, subjects};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn every_command_gets_one_receipt_in_seq_order() {
    let stack = Stack::start().await;
    let effects = tempfile::NamedTempFile::new().unwrap();
    let env = stack.env.clone().with(
        "RUNFLEET_ECHO_EFFECTS_FILE",
        effects.path().display().to_string(),
    );
    let workers = stack.workers(&env, 2).await;
    let producer = stack.producer().await;

    let runs: Vec<_> = (0..5)
        .map(|_| run_with_commands(10, text_payload))
        .collect();
    for (run, commands) in &runs {
        producer.create_run(run).await.unwrap();
        for command in commands {
            producer.send_command(command).await.unwrap();
        }
    }
    stack.wait_for_receipts(50, WAIT, &workers).await;

    // The producer sees each receipt, with the events it names.
    let (run, commands) = &runs[0];
    let receipt = producer
        .wait_for_receipt(&commands[9], Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(receipt.status, TerminalCommandStatus::Completed);
    assert_eq!(receipt.output, Some(json!({"echo": {"text": "turn 10"}})));
    let range = receipt.events.unwrap();
    let events: Vec<_> =
        runfleet_producer::follow::events(producer.jetstream(), &run.tenant, &run.run_id, 1)
            .await
            .unwrap()
            .take(usize::try_from(range.last_seq).unwrap())
            .collect()
            .await;
    let seqs: Vec<u64> = events.iter().map(|e| e.as_ref().unwrap().seq).collect();
    assert_eq!(
        seqs,
        (1..=range.last_seq).collect::<Vec<_>>(),
        "events are gap-free and ordered"
    );

    // Each run executed its commands once each, in seq order.
    let lines = common::effects(effects.path());
    assert_eq!(lines.len(), 50);
    for (run, _) in &runs {
        let seqs = common::seqs_of(&lines, run.run_id.as_str());
        assert_eq!(
            seqs,
            (1..=10).collect::<Vec<_>>(),
            "run {} out of order",
            run.run_id
        );
    }
    assert!(stack.dead_letters().await.is_empty());
}

#[tokio::test]
async fn duplicates_within_and_after_the_dedupe_window_execute_once() {
    let stack = Stack::start().await;
    let (env, effects) = stack.counting_effects();
    let env = env.with("RUNFLEET_DEDUPE_WINDOW", "1s");
    let workers = stack.workers(&env, 1).await;
    let producer = stack.producer().await;
    let (run, commands) = run_with_commands(1, text_payload);
    producer.create_run(&run).await.unwrap();
    let first = producer.send_command(&commands[0]).await.unwrap();
    let second = producer.send_command(&commands[0]).await.unwrap();
    assert!(!first.duplicate);
    assert!(
        second.duplicate,
        "JetStream drops the copy inside the window"
    );
    stack.wait_for_receipts(1, WAIT, &workers).await;
    let original = stack.receipt(&commands[0]).await.unwrap();

    // After the window JetStream stores it again; PostgreSQL replays the receipt.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let third = producer.send_command(&commands[0]).await.unwrap();
    assert!(
        !third.duplicate,
        "outside the window JetStream stores the copy"
    );
    stack.wait_until_work_stream_is_empty().await;
    assert_eq!(stack.receipt_count().await, 1);
    assert_eq!(
        stack.receipt(&commands[0]).await.unwrap(),
        original,
        "the receipt is write-once"
    );
    assert_eq!(
        common::effects(effects.path()).len(),
        1,
        "the backend ran once"
    );
    let replayed = producer
        .wait_for_receipt(&commands[0], Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(serde_json::to_value(&replayed).unwrap(), original);
}

#[tokio::test]
async fn same_key_with_another_payload_is_a_conflict_and_executes_nothing() {
    let stack = Stack::start().await;
    let effects = tempfile::NamedTempFile::new().unwrap();
    let env = stack.env.clone().with(
        "RUNFLEET_ECHO_EFFECTS_FILE",
        effects.path().display().to_string(),
    );
    let workers = stack.workers(&env, 1).await;
    let producer = stack.producer().await;
    let (run, commands) = run_with_commands(1, text_payload);
    producer.create_run(&run).await.unwrap();
    producer.send_command(&commands[0]).await.unwrap();
    stack.wait_for_receipts(1, WAIT, &workers).await;

    // A different command (new id, seq 2) reusing seq 1's key.
    let mut impostor = new_command(
        &run.tenant,
        &run.run_id,
        2,
        CommandKind::Turn,
        payload(json!({"text": "other"})),
    );
    impostor.idempotency_key = commands[0].idempotency_key.clone();
    producer.send_command(&impostor).await.unwrap();
    match producer.wait_for_receipt(&impostor, WAIT).await {
        Err(ProducerError::Refused { reason, message }) => {
            assert_eq!(reason, FailureKind::IdempotencyConflict);
            assert!(message.contains("different payload"), "{message}");
        }
        other => panic!("the impostor was not refused: {other:?}"),
    }
    // The original's own id, seq and key with another payload: refused the
    // same way, and the original's receipt is still its only answer.
    let mut twin = commands[0].clone();
    twin.payload = payload(json!({"text": "rewritten"}));
    producer.send_command(&twin).await.unwrap();
    let dead = stack.wait_for_dead_letters(2).await;
    assert_eq!(dead.len(), 2, "{dead:#?}");
    assert!(
        dead.iter()
            .all(|(reason, _, _)| reason == "idempotency-conflict"),
        "{dead:#?}"
    );
    let original = producer.wait_for_receipt(&commands[0], WAIT).await.unwrap();
    assert_eq!(original.status, TerminalCommandStatus::Completed);

    // The receipts stream holds exactly one receipt, the original's.
    let published =
        runfleet_producer::follow::receipts_so_far(producer.jetstream(), &run.tenant, &run.run_id)
            .await
            .unwrap();
    assert_eq!(published.len(), 1, "{published:#?}");
    assert_eq!(published[0].status, TerminalCommandStatus::Completed);
    assert_eq!(
        common::effects(effects.path()).len(),
        1,
        "the conflicting commands never ran"
    );
    assert_eq!(
        stack.receipt_count().await,
        1,
        "the original receipt stands alone"
    );
}

#[tokio::test]
async fn invalid_messages_are_dead_lettered_naming_the_field_and_the_worker_keeps_serving() {
    let stack = Stack::start().await;
    let workers = stack.workers(&stack.env, 1).await;
    let client = stack.nats.client().await.unwrap();
    let js = async_nats::jetstream::new(client);
    let examples = runfleet_tests::workspace_root().join("schemas/examples/invalid");
    let cases = [
        (
            "runfleet.cmd.acme.r1",
            "command.create/payload-not-object.json",
            "command.create: /payload: expected object, found string",
        ),
        (
            "runfleet.cmd.acme.r1",
            "command.create/not-json.json",
            "command.create: invalid JSON",
        ),
        (
            "runfleet.run.acme.r1",
            "run.create/missing-tenant.json",
            "run.create: /tenant: required field is missing",
        ),
        (
            "runfleet.run.acme.r1",
            "run.create/unknown-bundle-kind.json",
            "run.create: /resource_bundle/kind: expected one of",
        ),
        (
            "runfleet.cmd.other.r1",
            "../valid/command.create/close.json",
            "command.create: /tenant: \"acme\" does not match the subject's tenant \"other\"",
        ),
    ];
    for (subject, file, _) in &cases {
        let body = std::fs::read(examples.join(file)).unwrap();
        js.publish(*subject, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    // A valid run afterwards is served.
    let producer = stack.producer().await;
    let (run, commands) = run_with_commands(1, text_payload);
    producer.create_run(&run).await.unwrap();
    producer.send_command(&commands[0]).await.unwrap();
    let receipt = producer.wait_for_receipt(&commands[0], WAIT).await.unwrap();
    assert_eq!(receipt.status, TerminalCommandStatus::Completed);

    let dead = stack.wait_for_dead_letters(cases.len()).await;
    assert_eq!(
        dead.len(),
        cases.len(),
        "{dead:#?}\n{}",
        workers[0].log_text()
    );
    for (subject, file, expected) in &cases {
        assert!(
            dead.iter()
                .any(|(reason, message, s)| reason == "schema-invalid"
                    && s == subject
                    && message.starts_with(expected)),
            "no dead letter for {file} starting with {expected:?}: {dead:#?}"
        );
    }
    // Dead letters are published too, byte for byte.
    let mut dlq = js.get_stream(subjects::DEAD_LETTER_STREAM).await.unwrap();
    assert_eq!(dlq.info().await.unwrap().state.messages, cases.len() as u64);
    stack.wait_until_work_stream_is_empty().await;
}

#[tokio::test]
async fn run_lifecycle_close_then_run_terminal_and_run_not_found() {
    let stack = Stack::start().await;
    let env = stack.env.clone().with("RUNFLEET_RUN_WAIT", "2s");
    let workers = stack.workers(&env, 1).await;
    let producer = stack.producer().await;
    let run = new_run("acme", "tests", "echo").unwrap();
    producer.create_run(&run).await.unwrap();
    let close = new_command(
        &run.tenant,
        &run.run_id,
        1,
        CommandKind::Close,
        payload(json!({})),
    );
    let late = new_command(
        &run.tenant,
        &run.run_id,
        2,
        CommandKind::Turn,
        payload(json!({"text": "late"})),
    );
    producer.send_command(&close).await.unwrap();
    producer.send_command(&late).await.unwrap();
    let closed = producer.wait_for_receipt(&close, WAIT).await.unwrap();
    assert_eq!(closed.status, TerminalCommandStatus::Completed);
    let refused = producer.wait_for_receipt(&late, WAIT).await.unwrap();
    assert_eq!(refused.failure.unwrap().kind, FailureKind::RunTerminal);
    let status: String = stack
        .pg
        .query_one(
            "SELECT status FROM runs WHERE run_id = $1",
            &[&run.run_id.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "completed");

    // A command that arrives a moment before its run waits for it and
    // spends no delivery: its receipt is its first attempt's.
    let early_run = new_run("acme", "tests", "echo").unwrap();
    let early = new_command(
        &early_run.tenant,
        &early_run.run_id,
        1,
        CommandKind::Turn,
        payload(json!({"text": "early"})),
    );
    producer.send_command(&early).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    producer.create_run(&early_run).await.unwrap();
    let answered = producer.wait_for_receipt(&early, WAIT).await.unwrap();
    assert_eq!(answered.status, TerminalCommandStatus::Completed);
    assert_eq!(
        answered.attempt, 1,
        "waited for its run without a redelivery"
    );

    // A command whose run never comes is dead-lettered after the bounded wait.
    let orphan_run = new_run("acme", "tests", "echo").unwrap();
    let orphan = new_command(
        &orphan_run.tenant,
        &orphan_run.run_id,
        1,
        CommandKind::Turn,
        payload(json!({})),
    );
    producer.send_command(&orphan).await.unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let dead = stack.dead_letters().await;
        if let Some((reason, message, _)) = dead.first() {
            assert_eq!(reason, "run-not-found");
            assert!(message.contains(orphan_run.run_id.as_str()), "{message}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            workers[0].log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn retryable_failures_are_retried_then_dead_lettered_at_the_limit() {
    let stack = Stack::start().await;
    let env = stack.env.clone().with("RUNFLEET_MAX_ATTEMPTS", "3");
    let workers = stack.workers(&env, 1).await;
    let producer = stack.producer().await;
    let run = new_run("acme", "tests", "echo").unwrap();
    producer.create_run(&run).await.unwrap();
    // Fails twice, then succeeds on the third delivery.
    let flaky = new_command(
        &run.tenant,
        &run.run_id,
        1,
        CommandKind::Turn,
        payload(json!({"fail": "infra", "fail_attempts": 2})),
    );
    // Always fails: gives up at the third delivery.
    let broken = new_command(
        &run.tenant,
        &run.run_id,
        2,
        CommandKind::Turn,
        payload(json!({"fail": "infra"})),
    );
    // Fails fatally at once.
    let fatal = new_command(
        &run.tenant,
        &run.run_id,
        3,
        CommandKind::Turn,
        payload(json!({"fail": "backend"})),
    );
    for c in [&flaky, &broken, &fatal] {
        producer.send_command(c).await.unwrap();
    }
    stack.wait_for_receipts(3, WAIT, &workers).await;

    let flaky = producer.wait_for_receipt(&flaky, WAIT).await.unwrap();
    assert_eq!(
        (flaky.status, flaky.attempt),
        (TerminalCommandStatus::Completed, 3)
    );
    let broken = producer.wait_for_receipt(&broken, WAIT).await.unwrap();
    assert_eq!(
        broken.failure.as_ref().unwrap().kind,
        FailureKind::MaxDeliveries
    );
    assert_eq!(broken.attempt, 3);
    let fatal = producer.wait_for_receipt(&fatal, WAIT).await.unwrap();
    // Fatal: one execution, no retry. (Its attempt is not asserted: while it
    // waited for seq 2 on a loaded machine its lease may have lapsed once,
    // which is a redelivery, not a retry.)
    assert_eq!(fatal.failure.unwrap().kind, FailureKind::BackendFailed);

    let dead = stack.wait_for_dead_letters(1).await;
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0].0, "max-deliveries");
    let history: serde_json::Value = stack
        .pg
        .query_one("SELECT message->'deliveries' FROM dead_letters", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        history.as_array().unwrap().len(),
        3,
        "the delivery history has every attempt: {history}"
    );
}

#[tokio::test]
async fn a_command_whose_turn_never_comes_ends_failed_and_dead_lettered() {
    let stack = Stack::start().await;
    let env = stack
        .env
        .clone()
        .with("RUNFLEET_MAX_ATTEMPTS", "2")
        .with("RUNFLEET_ORDER_WAIT", "500ms");
    let workers = stack.workers(&env, 1).await;
    let producer = stack.producer().await;
    let run = new_run("acme", "tests", "echo").unwrap();
    producer.create_run(&run).await.unwrap();
    // Seq 2 without seq 1: it can never run.
    let orphan = new_command(
        &run.tenant,
        &run.run_id,
        2,
        CommandKind::Turn,
        payload(json!({})),
    );
    producer.send_command(&orphan).await.unwrap();

    let receipt = producer.wait_for_receipt(&orphan, WAIT).await.unwrap();
    let failure = receipt.failure.unwrap();
    assert_eq!(failure.kind, FailureKind::MaxDeliveries);
    assert!(
        failure.message.contains("waits for seq 1"),
        "{}",
        failure.message
    );
    let dead = stack.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:#?}\n{}", workers[0].log_text());
    assert_eq!(dead[0].0, "max-deliveries");
    stack.wait_until_work_stream_is_empty().await;
}
