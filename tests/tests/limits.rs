//! Per-key concurrency limits on real servers and three real worker
//! processes at the default settings: `max_running` is never exceeded
//! across the fleet while another tenant runs unhindered, a `rate` gives
//! the start rate it names, and work over a limit waits without failing,
//! dead-lettering or spending deliveries.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Stack, payload};
use runfleet_producer::{Producer, inspect, new_command, new_run};
use runfleet_schemas::CommandKind;
use runfleet_schemas::api::{FleetStatsRequest, LimitDeleteRequest, LimitSetRequest};
use runfleet_tests::{TestWorker, WorkerEnv, workspace_root};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);

/// Worker settings at the defaults, serving `echo` and a `spans` profile
/// whose program records when each command starts and ends.
fn spans_env(stack: &Stack) -> (WorkerEnv, tempfile::NamedTempFile, tempfile::NamedTempFile) {
    let spans = tempfile::NamedTempFile::new().unwrap();
    let config = tempfile::NamedTempFile::new().unwrap();
    let program = workspace_root().join("tests/programs/records_spans.py");
    std::fs::write(
        config.path(),
        format!(
            "[profiles.spans]\nkind = \"process\"\nprogram = \"python3\"\nargs = [{:?}]\nenv = [\"RUNFLEET_TEST_SPANS_FILE\"]\n\n[profiles.echo]\nkind = \"echo\"\n",
            program.display().to_string()
        ),
    )
    .unwrap();
    let env = WorkerEnv::at_defaults(stack.nats.url(), stack.db.url())
        .with("RUNFLEET_CONFIG", config.path().display().to_string())
        .with(
            "RUNFLEET_TEST_SPANS_FILE",
            spans.path().display().to_string(),
        );
    (env, spans, config)
}

/// The most commands of each tenant executing at once, from the spans file.
fn most_at_once(spans: &std::path::Path) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(spans).unwrap();
    let mut marks: Vec<(f64, i32, String)> = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let what = parts.next()?;
            let tenant = parts.next()?.to_owned();
            let at: f64 = parts.next()?.parse().ok()?;
            // An end before a start at the same instant.
            Some((at, if what == "start" { 1 } else { -1 }, tenant))
        })
        .collect();
    marks.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut now: BTreeMap<String, i32> = BTreeMap::new();
    let mut most: BTreeMap<String, usize> = BTreeMap::new();
    for (_, delta, tenant) in marks {
        let n = now.entry(tenant.clone()).or_default();
        *n += delta;
        let top = most.entry(tenant).or_default();
        *top = (*top).max(usize::try_from(*n).unwrap_or(0));
    }
    most
}

/// Publishes `runs` runs of `tenant` with `commands` commands each.
async fn publish(
    producer: &Producer,
    tenant: &str,
    profile: &str,
    runs: usize,
    commands: u64,
) -> usize {
    for _ in 0..runs {
        let run = new_run(tenant, "tests", profile).unwrap();
        producer.create_run(&run).await.unwrap();
        for seq in 1..=commands {
            let command = new_command(
                &run.tenant,
                &run.run_id,
                seq,
                CommandKind::Turn,
                payload(json!({"ms": 300})),
            );
            producer.send_command(&command).await.unwrap();
        }
    }
    runs * usize::try_from(commands).unwrap()
}

async fn receipts_of(stack: &Stack, tenant: &str) -> i64 {
    stack
        .pg
        .query_one(
            "SELECT count(*) FROM journal WHERE step = 'receipt' AND tenant = $1",
            &[&tenant],
        )
        .await
        .unwrap()
        .get(0)
}

async fn wait_for(stack: &Stack, tenant: &str, expected: usize, workers: &[TestWorker]) {
    let deadline = Instant::now() + WAIT;
    while receipts_of(stack, tenant).await < i64::try_from(expected).unwrap() {
        if Instant::now() > deadline {
            for w in workers {
                eprintln!(
                    "---- log of {} ----\n{}",
                    w.id(),
                    common::tail(&w.log_text(), 40)
                );
            }
            panic!("{tenant}: not all {expected} receipts after {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn max_running_holds_across_the_fleet_while_another_tenant_runs_unhindered() {
    let stack = Stack::start().await;
    let (env, spans, _config) = spans_env(&stack);
    let workers = stack.workers(&env, 3).await;
    let producer = stack.producer().await;
    let set = inspect::call(
        producer.client(),
        &LimitSetRequest {
            pattern: "tenant:acme".into(),
            max_running: Some(2),
            rate_per_second: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(set.max_running, Some(2));

    // 12 runs of 2 commands (300 ms each) for acme, over its limit of 2;
    // then 8 one-command runs for beta, which has none.
    let acme = publish(&producer, "acme", "spans", 12, 2).await;
    let beta_start = Instant::now();
    let beta = publish(&producer, "beta", "spans", 8, 1).await;

    // While acme waits, the fleet shows its key limited.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = inspect::call(producer.client(), &FleetStatsRequest {})
            .await
            .unwrap();
        let key = stats.keys.iter().find(|k| k.key == "tenant:acme");
        if let Some(key) = key
            && key.limited > 0
        {
            assert!(key.running <= 2, "{key:?}");
            assert_eq!(key.limit.as_deref(), Some("tenant:acme"));
            assert_eq!(key.max_running, Some(2));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acme never shown limited: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    wait_for(&stack, "beta", beta, &workers).await;
    let beta_took = beta_start.elapsed();
    wait_for(&stack, "acme", acme, &workers).await;

    let most = most_at_once(spans.path());
    assert!(most["acme"] <= 2, "acme ran {} at once", most["acme"]);
    assert_eq!(most["acme"], 2, "acme should use its 2");
    assert!(
        most["beta"] >= 4,
        "beta ran at most {} at once: hindered by acme's limit",
        most["beta"]
    );
    // 24 acme commands, 2 at a time, take at least 3.6 s; beta's 8 are
    // not behind them.
    assert!(
        beta_took < Duration::from_secs(3),
        "beta took {beta_took:?}"
    );

    // Nothing failed, was dead-lettered, or ran on a redelivery.
    stack.assert_all_completed_on_first_delivery().await;
}

#[tokio::test]
async fn a_rate_limit_gives_the_rate_it_names_and_removing_it_releases_the_rest() {
    let stack = Stack::start().await;
    let (env, _spans, _config) = spans_env(&stack);
    let workers = stack.workers(&env, 3).await;
    let producer = stack.producer().await;
    inspect::call(
        producer.client(),
        &LimitSetRequest {
            pattern: "tenant:*".into(),
            max_running: None,
            rate_per_second: Some(20.0),
        },
    )
    .await
    .unwrap();

    // 120 instant commands in 60 runs: at 20/s, 6 s of starts.
    let total = publish(&producer, "rated", "echo", 60, 2).await;
    wait_for(&stack, "rated", total, &workers).await;
    let row = stack
        .pg
        .query_one(
            "SELECT count(*), extract(epoch FROM max(started_at) - min(started_at))::float8 \
               FROM commands WHERE tenant = 'rated'",
            &[],
        )
        .await
        .unwrap();
    let (count, span): (i64, f64) = (row.get(0), row.get(1));
    let rate = (count - 1) as f64 / span;
    eprintln!("rate limit 20/s: {count} starts in {span:.2} s = {rate:.1}/s");
    assert!(
        (16.0..=24.0).contains(&rate),
        "observed {rate:.1} starts/s for a limit of 20/s"
    );

    // Removing the limit lets the waiting go at once.
    let more = publish(&producer, "rated", "echo", 100, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let removed = inspect::call(
        producer.client(),
        &LimitDeleteRequest {
            pattern: "tenant:*".into(),
        },
    )
    .await
    .unwrap();
    assert!(removed.deleted);
    let released = Instant::now();
    wait_for(&stack, "rated", total + more, &workers).await;
    assert!(
        released.elapsed() < Duration::from_secs(3),
        "the rest took {:?} after the limit was removed",
        released.elapsed()
    );
}
