//! Run-after (`not_before`), at the default settings: a delayed command
//! starts within a second after its time and never before it, survives the
//! SIGKILL of the worker that delayed it (PostgreSQL holds the delay, a
//! JetStream message schedule wakes it), and the later seqs of its run wait
//! behind it.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{Stack, payload, tail, worker};
use runfleet_producer::{new_command, new_run};
use runfleet_schemas::CommandKind;
use runfleet_tests::WorkerEnv;
use serde_json::{Value, json};

fn time(receipt: &Value, field: &str) -> DateTime<Utc> {
    receipt[field]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("receipt without {field}: {receipt}"))
        .to_utc()
}

#[tokio::test]
async fn a_delayed_command_starts_on_time_survives_a_kill_and_holds_its_run() {
    let stack = Stack::start().await;
    let env = WorkerEnv::at_defaults(stack.nats.url(), stack.db.url());
    let mut first = worker(&env, "w1").await;
    let producer = stack.producer().await;
    let run = new_run("acme", "tests", "echo").unwrap();
    producer.create_run(&run).await.unwrap();

    let mut delayed = new_command(
        &run.tenant,
        &run.run_id,
        1,
        CommandKind::Turn,
        payload(json!({"text": "later", "sleep_ms": 300})),
    );
    let not_before = Utc::now() + chrono::Duration::seconds(3);
    delayed.not_before = Some(not_before);
    let next = new_command(
        &run.tenant,
        &run.run_id,
        2,
        CommandKind::Turn,
        payload(json!({"text": "after it"})),
    );
    producer.send_command(&delayed).await.unwrap();
    producer.send_command(&next).await.unwrap();

    // The delay is recorded in PostgreSQL and the message acknowledged (the
    // run too, so what follows waits for nothing but the delay).
    let recorded = async {
        loop {
            let run_recorded = stack
                .pg
                .query_opt(
                    "SELECT 1 FROM runs WHERE run_id = $1",
                    &[&run.run_id.as_str()],
                )
                .await
                .unwrap()
                .is_some();
            if !run_recorded {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let row = stack
                .pg
                .query_opt(
                    "SELECT not_before FROM delayed_commands WHERE command_id = $1",
                    &[&delayed.command_id.as_str()],
                )
                .await
                .unwrap();
            if let Some(row) = row {
                return row.get::<_, DateTime<Utc>>(0);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let stored = tokio::time::timeout(Duration::from_secs(2), recorded)
        .await
        .unwrap_or_else(|_| panic!("no delay recorded\n{}", tail(&first.log_text(), 40)));
    assert_eq!(
        stored.timestamp_micros(),
        not_before.timestamp_micros(),
        "the recorded not_before"
    );

    // The worker that delayed it dies; another takes over.
    first.kill();
    let second = worker(&env, "w2").await;

    stack
        .wait_for_receipts(2, Duration::from_secs(30), std::slice::from_ref(&second))
        .await;
    let first_receipt = stack.receipt(&delayed).await.unwrap();
    let next_receipt = stack.receipt(&next).await.unwrap();
    assert_eq!(first_receipt["status"], "completed", "{first_receipt}");
    assert_eq!(next_receipt["status"], "completed", "{next_receipt}");

    let started = time(&first_receipt, "started_at");
    let late = (started - not_before).num_milliseconds();
    assert!(
        (0..1000).contains(&late),
        "seq 1 started {late} ms after its not_before (expected 0–999)\n{}",
        tail(&second.log_text(), 40)
    );
    assert!(
        time(&next_receipt, "started_at") >= time(&first_receipt, "finished_at"),
        "seq 2 started before seq 1 finished: {first_receipt} {next_receipt}"
    );
    let left: i64 = stack
        .pg
        .query_one("SELECT count(*) FROM delayed_commands", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the woken command is forgotten");
}

#[tokio::test]
async fn a_command_due_in_a_moment_waits_it_out_and_a_past_one_runs_at_once() {
    let stack = Stack::start().await;
    let env = WorkerEnv::at_defaults(stack.nats.url(), stack.db.url());
    let w = worker(&env, "w1").await;
    let producer = stack.producer().await;
    let run = new_run("acme", "tests", "echo").unwrap();
    producer.create_run(&run).await.unwrap();
    let mut soon = new_command(
        &run.tenant,
        &run.run_id,
        1,
        CommandKind::Turn,
        payload(json!({"text": "soon"})),
    );
    let not_before = Utc::now() + chrono::Duration::milliseconds(600);
    soon.not_before = Some(not_before);
    let mut past = new_command(
        &run.tenant,
        &run.run_id,
        2,
        CommandKind::Turn,
        payload(json!({"text": "past"})),
    );
    past.not_before = Some(Utc::now() - chrono::Duration::hours(1));
    producer.send_command(&soon).await.unwrap();
    producer.send_command(&past).await.unwrap();
    stack
        .wait_for_receipts(2, Duration::from_secs(20), std::slice::from_ref(&w))
        .await;
    let receipt = stack.receipt(&soon).await.unwrap();
    assert!(
        time(&receipt, "started_at") >= not_before,
        "started before its not_before: {receipt}"
    );
    assert_eq!(stack.receipt(&past).await.unwrap()["status"], "completed");
}

#[tokio::test]
async fn a_delayed_command_whose_timer_is_lost_is_published_by_the_sweep() {
    let stack = Stack::start().await;
    let env = WorkerEnv::at_defaults(stack.nats.url(), stack.db.url());
    let w = worker(&env, "w1").await;
    let producer = stack.producer().await;
    let run = new_run("acme", "tests", "echo").unwrap();
    producer.create_run(&run).await.unwrap();
    let mut delayed = new_command(
        &run.tenant,
        &run.run_id,
        1,
        CommandKind::Turn,
        payload(json!({"text": "lost timer"})),
    );
    let not_before = Utc::now() + chrono::Duration::seconds(2);
    delayed.not_before = Some(not_before);
    producer.send_command(&delayed).await.unwrap();
    // Recorded, then its timer lost (the stream purged).
    loop {
        let rows = stack
            .pg
            .query("SELECT 1 FROM delayed_commands", &[])
            .await
            .unwrap();
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let js = async_nats::jetstream::new(stack.nats.client().await.unwrap());
    js.get_stream(runfleet_schemas::subjects::TIMER_STREAM)
        .await
        .unwrap()
        .purge()
        .await
        .unwrap();
    stack
        .wait_for_receipts(1, Duration::from_secs(30), std::slice::from_ref(&w))
        .await;
    let receipt = stack.receipt(&delayed).await.unwrap();
    let late = (time(&receipt, "started_at") - not_before).num_milliseconds();
    let overdue = runfleet_worker::timers::OVERDUE.as_millis() as i64;
    assert!(
        (overdue..overdue + 3000).contains(&late),
        "started {late} ms after its not_before; the sweep publishes {overdue} ms after"
    );
    assert!(
        w.log_text().contains("timer did not fire"),
        "{}",
        tail(&w.log_text(), 20)
    );
}

#[tokio::test]
async fn a_command_not_started_within_its_schedule_to_start_times_out_unexecuted() {
    let stack = Stack::start().await;
    let (env, effects) = stack.counting_effects();
    let w = worker(&env, "w1").await;
    let producer = stack.producer().await;
    let run = new_run("acme", "tests", "echo").unwrap();
    producer.create_run(&run).await.unwrap();
    let slow = new_command(
        &run.tenant,
        &run.run_id,
        1,
        CommandKind::Turn,
        payload(json!({"text": "slow", "sleep_ms": 1500})),
    );
    // Behind the slow one: 300 ms is not enough, 60 s is.
    let mut impatient = new_command(
        &run.tenant,
        &run.run_id,
        2,
        CommandKind::Turn,
        payload(json!({"text": "impatient"})),
    );
    impatient.schedule_to_start_ms = Some(300);
    let mut patient = new_command(
        &run.tenant,
        &run.run_id,
        3,
        CommandKind::Turn,
        payload(json!({"text": "patient"})),
    );
    patient.schedule_to_start_ms = Some(60_000);
    for command in [&slow, &impatient, &patient] {
        producer.send_command(command).await.unwrap();
    }
    stack
        .wait_for_receipts(3, Duration::from_secs(30), std::slice::from_ref(&w))
        .await;
    let receipt = stack.receipt(&impatient).await.unwrap();
    assert_eq!(receipt["status"], "timed-out", "{receipt}");
    assert_eq!(receipt["failure"]["kind"], "schedule-to-start", "{receipt}");
    assert!(
        receipt["failure"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("schedule_to_start_ms")),
        "{receipt}"
    );
    assert_eq!(stack.receipt(&slow).await.unwrap()["status"], "completed");
    assert_eq!(
        stack.receipt(&patient).await.unwrap()["status"],
        "completed"
    );
    let executed = common::seqs_of(&common::effects(effects.path()), run.run_id.as_str());
    assert_eq!(executed, vec![1, 3], "the timed-out command never executed");
}
