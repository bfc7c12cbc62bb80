//! Graceful shutdown: SIGTERM lets in-flight commands finish within the
//! grace period; what is still running then is handed back at once (NAK
//! without delay), not left to its lease; the worker exits 0.

mod common;

use std::time::{Duration, Instant};

use common::{Stack, run_one, worker};
use runfleet_schemas::TerminalCommandStatus;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn sigterm_lets_in_flight_commands_finish_then_exits_0() {
    let stack = Stack::start().await;
    let mut worker = worker(
        &stack.env.clone().with("RUNFLEET_SHUTDOWN_GRACE", "10s"),
        "draining",
    )
    .await;
    let producer = stack.producer().await;
    let slow = run_one(&producer, json!({"sleep_ms": 1500})).await;
    stack.wait_until_running(None).await;

    worker.signal("TERM");
    let status = worker.wait_exit(WAIT).await.expect("the worker exits");
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        worker.log_text()
    );
    let receipt = stack
        .receipt(&slow)
        .await
        .expect("the in-flight command finished before exit");
    assert_eq!(receipt["status"], "completed");
    assert_eq!(receipt["worker_id"], "draining");
    let stopped: bool = stack
        .pg
        .query_one(
            "SELECT stopped_at IS NOT NULL FROM workers WHERE worker_id = 'draining'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stopped, "the registration records the stop");
}

#[tokio::test]
async fn commands_still_running_after_the_grace_are_handed_back_at_once() {
    let stack = Stack::start().await;
    // A long lease: a redelivery that waited for it would take 30 s.
    let env = stack.env.clone().with("RUNFLEET_ACK_WAIT", "30s");
    let mut leaving = worker(
        &env.clone().with("RUNFLEET_SHUTDOWN_GRACE", "300ms"),
        "leaving",
    )
    .await;
    let producer = stack.producer().await;
    let slow = run_one(&producer, json!({"sleep_ms": 2000})).await;
    stack.wait_until_running(None).await;

    let _staying = worker(&env, "staying").await;
    let handed_back = Instant::now();
    leaving.signal("TERM");
    let status = leaving.wait_exit(WAIT).await.expect("the worker exits");
    assert!(status.success(), "{}", leaving.log_text());
    let receipt = producer.wait_for_receipt(&slow, WAIT).await.unwrap();
    assert_eq!(receipt.status, TerminalCommandStatus::Completed);
    assert_eq!(receipt.worker_id, "staying");
    assert!(
        handed_back.elapsed() < Duration::from_secs(20),
        "redelivered after {:?}: the abort did not NAK, the lease ran out",
        handed_back.elapsed()
    );
}
