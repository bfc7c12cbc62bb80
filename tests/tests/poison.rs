//! Poison messages: whatever bytes a message holds, it ends as a receipt or
//! as a dead letter carrying exactly those bytes (invariant 6), and a dead
//! letter's delivery history is its own (invariant 9).

mod common;

use std::time::Duration;

use common::{Stack, run_with_commands, text_payload};
use runfleet_schemas::{DeadLetter, PayloadEncoding, TerminalCommandStatus, subjects};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// Every stored dead letter, in the order of the original messages.
async fn stored_letters(stack: &Stack) -> Vec<DeadLetter> {
    stack
        .pg
        .query(
            "SELECT message FROM dead_letters ORDER BY stream_sequence",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| serde_json::from_value(row.get::<_, Value>(0)).unwrap())
        .collect()
}

#[tokio::test]
async fn bytes_postgres_cannot_store_are_dead_lettered_with_their_original_bytes() {
    let stack = Stack::start().await;
    let workers = stack.workers(&stack.env, 1).await;
    let producer = stack.producer().await;
    let (run, commands) = run_with_commands(1, text_payload);
    producer.create_run(&run).await.unwrap();
    let js = async_nats::jetstream::new(stack.nats.client().await.unwrap());
    let subject = subjects::command(&run.tenant, &run.run_id);

    // A valid command but for a NUL escape in its payload; the same with a
    // raw NUL byte (not JSON any more); raw control characters; bytes that
    // are not UTF-8 at all.
    let valid = serde_json::to_string(&commands[0]).unwrap();
    let escaped = valid.replace("turn 1", "a\\u0000b");
    let raw_nul = valid.replace("turn 1", "a\0b");
    let controls = valid.replace("turn 1", "\x01\x07\x1b[31m\x7f");
    let mut not_utf8 = valid.clone().into_bytes();
    not_utf8.extend_from_slice(&[0xff, 0xfe, 0x00]);
    let poisons: Vec<Vec<u8>> = vec![
        escaped.into_bytes(),
        raw_nul.into_bytes(),
        controls.into_bytes(),
        not_utf8,
    ];
    for body in &poisons {
        js.publish(subject.clone(), body.clone().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // The run goes on: its real seq 1 is served afterwards.
    producer.send_command(&commands[0]).await.unwrap();
    let receipt = producer.wait_for_receipt(&commands[0], WAIT).await.unwrap();
    assert_eq!(receipt.status, TerminalCommandStatus::Completed);

    let dead = stack.wait_for_dead_letters(poisons.len()).await;
    assert_eq!(
        dead.len(),
        poisons.len(),
        "{dead:#?}\n{}",
        common::tail(&workers[0].log_text(), 40)
    );
    assert!(
        dead.iter().all(|(reason, _, _)| reason == "schema-invalid"),
        "{dead:#?}"
    );
    let letters = stored_letters(&stack).await;
    assert!(
        letters[0].message.starts_with(
            "command.create: /payload/text: contains U+0000 (NUL), which runfleet cannot store"
        ),
        "{:#?}",
        letters[0]
    );
    for (letter, poison) in letters.iter().zip(&poisons) {
        assert_eq!(&letter.original_bytes().unwrap(), poison, "{letter:#?}");
        assert!(
            letter.deliveries.len() == 1,
            "refused on its first delivery: {letter:#?}"
        );
    }
    let encodings: Vec<_> = letters.iter().map(|l| l.payload_encoding).collect();
    assert_eq!(
        encodings,
        [
            PayloadEncoding::Utf8,
            PayloadEncoding::Base64,
            PayloadEncoding::Utf8,
            PayloadEncoding::Base64
        ]
    );

    // The stream's copies carry the same bytes.
    let mut dlq = js.get_stream(subjects::DEAD_LETTER_STREAM).await.unwrap();
    assert_eq!(
        dlq.info().await.unwrap().state.messages,
        poisons.len() as u64
    );
    let mut published = Vec::new();
    for n in 1..=poisons.len() as u64 {
        let stored = dlq.get_raw_message(n).await.unwrap();
        published.push(serde_json::from_slice::<DeadLetter>(&stored.payload).unwrap());
    }
    published.sort_by_key(|letter| letter.stream_sequence);
    for (letter, poison) in published.iter().zip(&poisons) {
        assert_eq!(&letter.original_bytes().unwrap(), poison);
    }
    assert_eq!(stack.receipt_count().await, 1, "nothing poisoned ran");
    stack.wait_until_work_stream_is_empty().await;
}

#[tokio::test]
async fn a_dead_letter_carries_only_its_own_delivery_history() {
    let stack = Stack::start().await;
    let workers = stack.workers(&stack.env, 1).await;
    let producer = stack.producer().await;

    // Tenant globex sends a command before its run: work-stream seq 1 fails
    // with run-not-found and is logged while it waits for the run.
    let mut run = runfleet_producer::new_run("globex", "tests", "echo").unwrap();
    run.tenant = "globex".parse().unwrap();
    let command = runfleet_producer::new_command(
        &run.tenant,
        &run.run_id,
        1,
        runfleet_schemas::CommandKind::Turn,
        common::payload(text_payload(1)),
    );
    producer.send_command(&command).await.unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let logged: i64 = stack
            .pg
            .query_one("SELECT count(*) FROM delivery_log", &[])
            .await
            .unwrap()
            .get(0);
        if logged > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the early command was never logged\n{}",
            common::tail(&workers[0].log_text(), 40)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Tenant acme's invalid cancel lands at control-stream seq 1.
    let js = async_nats::jetstream::new(stack.nats.client().await.unwrap());
    let ack = js
        .publish(
            "runfleet.ctl.acme.r1",
            "{\"schema\":\"control.cancel\"}".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.sequence, 1);
    let dead = stack.wait_for_dead_letters(1).await;
    assert_eq!(dead.len(), 1, "{dead:#?}");
    let letter = &stored_letters(&stack).await[0];
    assert_eq!(letter.tenant, "acme");
    assert_eq!(letter.stream_sequence, 1);
    assert_eq!(
        letter.deliveries.len(),
        1,
        "only its own delivery: {letter:#?}"
    );
    assert!(
        letter.deliveries[0].outcome.starts_with("schema-invalid"),
        "{letter:#?}"
    );
    let text = serde_json::to_string(letter).unwrap();
    assert!(!text.contains("globex"), "another tenant's history: {text}");

    // globex's command still completes once its run arrives.
    producer.create_run(&run).await.unwrap();
    let receipt = producer.wait_for_receipt(&command, WAIT).await.unwrap();
    assert_eq!(receipt.status, TerminalCommandStatus::Completed);
}
