//! Priorities, at the default settings: under a backlog of low-priority
//! work, high-priority work published afterwards starts first, and a
//! message whose `priority` disagrees with its subject is refused.

mod common;

use std::time::{Duration, Instant};

use common::{Stack, payload, tail, worker};
use runfleet_producer::{new_command, new_run};
use runfleet_schemas::{CommandKind, Priority, Routed, subjects};
use runfleet_tests::WorkerEnv;
use serde_json::json;

/// Low-priority runs, and commands per run, queued before the high one.
const LOW_RUNS: usize = 250;
const LOW_PER_RUN: u64 = 20;

#[tokio::test]
async fn high_priority_work_overtakes_a_low_priority_backlog() {
    let stack = Stack::start().await;
    let js = async_nats::jetstream::new(stack.nats.client().await.unwrap());
    let defaults = runfleet_worker::config::Settings::default();
    runfleet_worker::setup::ensure_streams(&js, &defaults.streams())
        .await
        .unwrap();
    let producer = stack.producer().await;
    // The backlog, queued before any worker runs: 5,000 low-priority
    // commands that each take 10 ms.
    for _ in 0..LOW_RUNS {
        let mut run = new_run("acme", "tests", "echo").unwrap();
        run.priority = Priority::Low;
        for seq in 1..=LOW_PER_RUN {
            let mut command = new_command(
                &run.tenant,
                &run.run_id,
                seq,
                CommandKind::Turn,
                payload(json!({"text": "low", "sleep_ms": 10})),
            );
            command.priority = Priority::Low;
            producer.send_command(&command).await.unwrap();
        }
        producer.create_run(&run).await.unwrap();
    }
    let total = LOW_RUNS as i64 * LOW_PER_RUN as i64;

    let env = WorkerEnv::at_defaults(stack.nats.url(), stack.db.url());
    let w = worker(&env, "w1").await;
    // The backlog is being worked on; then the high-priority work arrives.
    let deadline = Instant::now() + Duration::from_secs(60);
    while stack.receipt_count().await == 0 {
        assert!(Instant::now() < deadline, "{}", tail(&w.log_text(), 40));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut urgent_run = new_run("acme", "tests", "echo").unwrap();
    urgent_run.priority = Priority::High;
    let mut urgent = new_command(
        &urgent_run.tenant,
        &urgent_run.run_id,
        1,
        CommandKind::Turn,
        payload(json!({"text": "urgent", "sleep_ms": 10})),
    );
    urgent.priority = Priority::High;
    assert!(urgent.subject().ends_with(".high"), "{}", urgent.subject());
    producer.create_run(&urgent_run).await.unwrap();
    producer.send_command(&urgent).await.unwrap();
    stack
        .wait_for_receipts(
            total + 1,
            Duration::from_secs(120),
            std::slice::from_ref(&w),
        )
        .await;

    let receipt = stack.receipt(&urgent).await.unwrap();
    assert_eq!(receipt["status"], "completed", "{receipt}");
    let before: i64 = stack
        .pg
        .query_one(
            "SELECT count(*) FROM commands c, commands u \
              WHERE u.command_id = $1 AND c.run_id <> u.run_id \
                AND c.finished_at < u.finished_at",
            &[&urgent.command_id.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        before < total * 9 / 10,
        "{before} of {total} low-priority commands finished before the high-priority one"
    );
    eprintln!("the high-priority command finished after {before} of {total} low-priority ones");
}

#[tokio::test]
async fn a_priority_that_disagrees_with_its_subject_is_dead_lettered() {
    let stack = Stack::start().await;
    let w = worker(&stack.env, "w1").await;
    let producer = stack.producer().await;
    let run = new_run("acme", "tests", "echo").unwrap();
    producer.create_run(&run).await.unwrap();
    let mut command = new_command(
        &run.tenant,
        &run.run_id,
        1,
        CommandKind::Turn,
        payload(json!({"text": "x"})),
    );
    command.priority = Priority::High;
    // Published on the plain (normal) subject.
    let js = async_nats::jetstream::new(stack.nats.client().await.unwrap());
    js.publish(
        subjects::command(&run.tenant, &run.run_id),
        serde_json::to_vec(&command).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let dead = stack.wait_for_dead_letters(1).await;
    assert_eq!(dead[0].0, "schema-invalid", "{dead:?}");
    assert!(
        dead[0]
            .1
            .contains(r#"/priority: "high" does not match the subject's priority "normal""#),
        "{dead:?}\n{}",
        tail(&w.log_text(), 20)
    );
}

#[tokio::test]
async fn low_priority_work_is_not_starved_by_a_high_priority_backlog() {
    let stack = Stack::start().await;
    let js = async_nats::jetstream::new(stack.nats.client().await.unwrap());
    let defaults = runfleet_worker::config::Settings::default();
    runfleet_worker::setup::ensure_streams(&js, &defaults.streams())
        .await
        .unwrap();
    let producer = stack.producer().await;
    // 2,400 high-priority commands in 600 runs (more runs than the worker
    // has slots: high-priority work alone could fill them all) and 200
    // low-priority ones, 10 ms each, queued together.
    let mut low_runs = Vec::new();
    for (runs, per_run, priority) in [(600, 4, Priority::High), (20, 10, Priority::Low)] {
        for _ in 0..runs {
            let mut run = new_run("acme", "tests", "echo").unwrap();
            run.priority = priority;
            producer.create_run(&run).await.unwrap();
            for seq in 1..=per_run {
                let mut command = new_command(
                    &run.tenant,
                    &run.run_id,
                    seq,
                    CommandKind::Turn,
                    payload(json!({"text": "work", "sleep_ms": 10})),
                );
                command.priority = priority;
                producer.send_command(&command).await.unwrap();
            }
            if priority == Priority::Low {
                low_runs.push(run.run_id.to_string());
            }
        }
    }
    let env = WorkerEnv::at_defaults(stack.nats.url(), stack.db.url());
    let w = worker(&env, "w1").await;
    stack
        .wait_for_receipts(2600, Duration::from_secs(120), std::slice::from_ref(&w))
        .await;
    let low_before_high_ended: i64 = stack
        .pg
        .query_one(
            "SELECT count(*) FROM commands \
              WHERE run_id = ANY($1) \
                AND finished_at < (SELECT max(finished_at) FROM commands WHERE NOT run_id = ANY($1))",
            &[&low_runs],
        )
        .await
        .unwrap()
        .get(0);
    eprintln!(
        "{low_before_high_ended} of 200 low-priority commands finished while high-priority work was queued"
    );
    assert!(
        low_before_high_ended >= 20,
        "only {low_before_high_ended} of 200 low-priority commands finished before the high-priority backlog was done"
    );
}
