//! Fairness between tenants on real servers and three real worker
//! processes at the default settings: a tenant that publishes a little
//! work after another tenant queued 20,000 commands is served within
//! seconds, not after that backlog, and the large tenant's work is all
//! done afterwards, nothing failed, dead-lettered or redelivered.

mod common;

use std::time::{Duration, Instant};

use common::{Stack, payload};
use futures::StreamExt;
use runfleet_producer::{Producer, inspect, new_command, new_run};
use runfleet_schemas::api::FleetStatsRequest;
use runfleet_schemas::{CommandKind, RunCreate};
use runfleet_tests::WorkerEnv;
use serde_json::json;

/// How long each command of the large tenant takes.
const LARGE_MS: u64 = 3_000;
/// How long each command of the small tenant takes.
const SMALL_MS: u64 = 200;
/// The large tenant's backlog: one command in each of as many runs.
const LARGE: usize = 20_000;
/// The small tenant's work, published after it.
const SMALL: usize = 100;
/// The bound the small tenant's last receipt meets, from its last publish.
/// First come, first served, it would come after the large tenant's whole
/// backlog (20,000 × 3 s / 1,536 slots ≈ 40 s). Fairly, it comes after the
/// commands of the large tenant already running when it arrived (they hold
/// every slot for up to 3 s: nothing is preempted), one measuring interval
/// (about 1 s), and the time the fleet takes to set the rest of the backlog
/// aside (about 3,500 messages a second on a 2-core machine): 6–10 s
/// measured there, the bound leaving room for a machine busy with other
/// tests.
const BOUND: Duration = Duration::from_secs(15);

/// `count` runs of `tenant`, published 256 at a time in flight.
async fn create_runs(producer: &Producer, tenant: &str, count: usize) -> Vec<RunCreate> {
    let runs: Vec<RunCreate> = (0..count)
        .map(|_| new_run(tenant, "fairness", "echo").unwrap())
        .collect();
    futures::stream::iter(&runs)
        .for_each_concurrent(256, |run| async move {
            producer.create_run(run).await.unwrap();
        })
        .await;
    runs
}

/// One command taking `ms` in each of `runs`, 256 at a time in flight.
async fn send_commands(producer: &Producer, runs: &[RunCreate], ms: u64) {
    futures::stream::iter(runs)
        .for_each_concurrent(256, |run| async move {
            let command = new_command(
                &run.tenant,
                &run.run_id,
                1,
                CommandKind::Turn,
                payload(json!({"sleep_ms": ms})),
            );
            producer.send_command(&command).await.unwrap();
        })
        .await;
}

async fn count(stack: &Stack, sql: &str, tenant: &str) -> i64 {
    stack.pg.query_one(sql, &[&tenant]).await.unwrap().get(0)
}

async fn receipts_of(stack: &Stack, tenant: &str) -> i64 {
    let sql = "SELECT count(*) FROM journal WHERE step = 'receipt' AND tenant = $1";
    count(stack, sql, tenant).await
}

#[tokio::test]
async fn a_small_tenant_is_not_kept_behind_a_large_tenants_backlog() {
    let stack = Stack::start().await;
    let env = WorkerEnv::at_defaults(stack.nats.url(), stack.db.url());
    stack.setup(&env);
    let producer = stack.producer().await;

    // The large tenant's runs are created (by a worker that then stops),
    // and its 20,000 commands are queued while no worker runs.
    let large = create_runs(&producer, "large", LARGE).await;
    let mut creator = common::worker(&env, "creator").await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while count(
        &stack,
        "SELECT count(*) FROM runs WHERE tenant = $1",
        "large",
    )
    .await
        < LARGE as i64
    {
        assert!(
            Instant::now() < deadline,
            "the large tenant's runs were not created"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    creator.signal("TERM");
    assert!(
        creator.wait_exit(Duration::from_secs(30)).await.is_some(),
        "the creating worker did not stop"
    );
    send_commands(&producer, &large, LARGE_MS).await;

    // The fleet starts on that backlog.
    let port = runfleet_tests::free_ports(1).unwrap()[0];
    let mut workers = vec![
        common::worker(
            &env.clone()
                .with("RUNFLEET_HTTP_ADDR", format!("127.0.0.1:{port}")),
            "w1",
        )
        .await,
    ];
    workers.push(common::worker(&env, "w2").await);
    workers.push(common::worker(&env, "w3").await);

    // Then the small tenant publishes its work, behind that backlog.
    let small = create_runs(&producer, "small", SMALL).await;
    send_commands(&producer, &small, SMALL_MS).await;
    let published = Instant::now();
    let large_then = receipts_of(&stack, "large").await;

    let deadline = published + Duration::from_secs(90);
    while receipts_of(&stack, "small").await < SMALL as i64 {
        if Instant::now() > deadline {
            for w in &workers {
                eprintln!(
                    "---- log of {} ----\n{}",
                    w.id(),
                    common::tail(&w.log_text(), 40)
                );
            }
            panic!("small: not all {SMALL} receipts after 90 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let small_took = published.elapsed();
    let large_now = receipts_of(&stack, "large").await;
    eprintln!(
        "small: last of {SMALL} receipts {small_took:?} after its last publish; \
         large had {large_then} receipts then, {large_now} now (of {LARGE})"
    );
    // Meaningful only while most of the backlog still waited behind the
    // small tenant's work, and most of it still did when that was done.
    let waiting_then = LARGE as i64 - large_then;
    assert!(
        waiting_then > LARGE as i64 / 2 && large_now - large_then < waiting_then / 2,
        "the large tenant's backlog was mostly through before the small tenant's work \
         ({large_then} then, {large_now} after): the test proves nothing"
    );
    assert!(
        small_took < BOUND,
        "the small tenant's last receipt came {small_took:?} after its publish (bound {BOUND:?})"
    );

    // The fleet shows the large tenant waiting its fair turn.
    let stats = inspect::call(producer.client(), &FleetStatsRequest {})
        .await
        .unwrap();
    let key = stats.keys.iter().find(|k| k.key == "tenant:large");
    assert!(
        key.is_some_and(|k| k.diverted && k.limited > 0),
        "the large tenant is not shown diverted: {:?}",
        stats.keys
    );

    // The key gauges of /metrics (read every 5 s) show its waiting work.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, metrics) = common::http_get(port, "/metrics").await;
        assert_eq!(status, 200);
        let limited = metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(r#"runfleet_key_commands{key="tenant:large",state="limited"} "#)
            })
            .and_then(|n| n.trim().parse::<i64>().ok());
        if limited.is_some_and(|n| n > 0)
            && metrics.contains(r#"runfleet_key_diverted{key="tenant:large"}"#)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the key gauges never showed large's waiting work:\n{}",
            metrics
                .lines()
                .filter(|l| l.contains("runfleet_key_"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The large tenant's work all completes afterwards, each command once.
    stack
        .wait_for_receipts((LARGE + SMALL) as i64, Duration::from_secs(180), &workers)
        .await;
    // Nothing failed, was dead-lettered, or ran on a redelivery.
    stack.assert_all_completed_on_first_delivery().await;
}
