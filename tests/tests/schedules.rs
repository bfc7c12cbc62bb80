//! Recurring runs, at the default settings: a schedule firing every second
//! starts one run per occurrence while two of three workers are SIGKILLed
//! and restarted, and a paused or deleted schedule starts none.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{Stack, tail, worker};
use runfleet_producer::inspect;
use runfleet_schemas::Priority;
use runfleet_schemas::api::{
    CatchUp, ScheduleAction, ScheduleCreateRequest, ScheduleListRequest, ScheduleUpdateRequest,
};
use runfleet_tests::WorkerEnv;
use serde_json::json;

/// The occurrences (Unix seconds) of the schedule's runs, in order.
async fn occurrences(stack: &Stack, schedule_id: &str) -> Vec<i64> {
    let rows = stack
        .pg
        .query(
            "SELECT run_id FROM runs WHERE run_id LIKE $1 || '-%' ORDER BY run_id",
            &[&schedule_id],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|row| {
            let run_id: String = row.get(0);
            run_id.rsplit('-').next().unwrap().parse().unwrap()
        })
        .collect()
}

#[tokio::test]
async fn a_schedule_fires_once_per_occurrence_while_workers_die() {
    let stack = Stack::start().await;
    let env = WorkerEnv::at_defaults(stack.nats.url(), stack.db.url());
    let mut workers = stack.workers(&env, 3).await;
    let producer = stack.producer().await;
    let client = producer.client();

    let create = ScheduleCreateRequest {
        tenant: "acme".into(),
        schedule_id: "every-second".into(),
        cron: None,
        every: Some("1s".into()),
        project: "tests".into(),
        profile: "echo".into(),
        payload: json!({"text": "tick"}).as_object().unwrap().clone(),
        priority: Priority::Normal,
        catch_up: CatchUp::Skip,
    };
    let created = inspect::call(client, &create).await.unwrap();
    assert_eq!(created.spec, "@every 1s");
    // Creating it again with the same fields answers it unchanged.
    assert_eq!(
        inspect::call(client, &create).await.unwrap().schedule_id,
        "every-second"
    );
    let start = Utc::now();

    // Ten seconds, while two workers are killed and restarted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    workers[0].kill();
    workers[0] = worker(&env, "w1b").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    workers[1].kill();
    workers[1] = worker(&env, "w2b").await;
    let elapsed = (Utc::now() - start).to_std().unwrap();
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(elapsed)).await;
    let end = Utc::now();
    // Firings a killed worker held are taken again after their lease.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let paused = ScheduleUpdateRequest {
        tenant: "acme".into(),
        schedule_id: "every-second".into(),
        action: ScheduleAction::Pause,
    };
    assert!(inspect::call(client, &paused).await.unwrap().paused);

    let window: Vec<i64> = occurrences(&stack, "every-second")
        .await
        .into_iter()
        .filter(|at| *at >= start.timestamp() && *at < end.timestamp() + 1)
        .collect();
    let logs = || {
        workers
            .iter()
            .map(|w| tail(&w.log_text(), 15))
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    assert!(
        (9..=11).contains(&window.len()),
        "{} runs in 10 s: {window:?}\n{}",
        window.len(),
        logs()
    );
    let mut distinct = window.clone();
    distinct.dedup();
    assert_eq!(distinct, window, "one run per occurrence");

    // Each run completed its one command.
    let all = occurrences(&stack, "every-second").await.len() as i64;
    stack
        .wait_for_receipts(all, Duration::from_secs(30), &workers)
        .await;

    // Paused: no more runs; listed as paused.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_pause = occurrences(&stack, "every-second").await.len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(occurrences(&stack, "every-second").await.len(), after_pause);
    let listed = inspect::call(
        client,
        &ScheduleListRequest {
            tenant: Some("acme".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(listed.schedules.len(), 1);
    assert!(listed.schedules[0].paused);
    assert_eq!(listed.schedules[0].runs_started as usize, after_pause);
    let last: DateTime<Utc> = listed.schedules[0].last_occurrence.unwrap();
    assert!(last >= start, "{last}");

    // Deleted: gone from the list.
    let deleted = ScheduleUpdateRequest {
        action: ScheduleAction::Delete,
        ..paused
    };
    assert!(inspect::call(client, &deleted).await.unwrap().deleted);
    let listed = inspect::call(client, &ScheduleListRequest { tenant: None })
        .await
        .unwrap();
    assert!(listed.schedules.is_empty());
}

#[tokio::test]
async fn a_bad_schedule_is_refused_naming_the_field() {
    let stack = Stack::start().await;
    let _w = worker(&stack.env, "w1").await;
    let producer = stack.producer().await;
    let mut create = ScheduleCreateRequest {
        tenant: "acme".into(),
        schedule_id: "bad".into(),
        cron: Some("* * *".into()),
        every: None,
        project: "tests".into(),
        profile: "echo".into(),
        payload: Default::default(),
        priority: Priority::Normal,
        catch_up: CatchUp::Skip,
    };
    let err = inspect::call(producer.client(), &create)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cron") && err.contains("6 fields"), "{err}");
    // Six fields nats-server cannot read: refused by the server, and the
    // schedule is not left behind half made.
    create.cron = Some("61 * * * * *".into());
    let err = inspect::call(producer.client(), &create)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cron") && err.contains("61 *"), "{err}");
    let listed = inspect::call(
        producer.client(),
        &ScheduleListRequest {
            tenant: Some("acme".into()),
        },
    )
    .await
    .unwrap();
    assert!(listed.schedules.is_empty(), "{listed:?}");
    create.cron = None;
    create.every = Some("500ms".into());
    let err = inspect::call(producer.client(), &create)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("every") && err.contains("at least 1s"),
        "{err}"
    );
}

#[tokio::test]
async fn late_firings_follow_the_catch_up_policy() {
    let stack = Stack::start().await;
    // A worker applies the migrations; the decisions are PostgreSQL's.
    let _w = worker(&stack.env, "w1").await;
    for (id, policy) in [("skipper", "skip"), ("catcher", "once")] {
        stack
            .pg
            .execute(
                "INSERT INTO schedules (tenant, schedule_id, spec, project, profile, payload, \
                 priority, catch_up) VALUES ('acme', $1, '@every 1s', 'p', 'echo', '{}', 'normal', $2)",
                &[&id, &policy],
            )
            .await
            .unwrap();
    }
    let fired = |id: &'static str, second: i64, late: bool| {
        let pg = &stack.pg;
        async move {
            let at = DateTime::<Utc>::from_timestamp(1_800_000_000 + second, 0).unwrap();
            let row = pg
                .query_one(
                    "SELECT runfleet_schedule_fired('acme', $1, $2, $3)",
                    &[&id, &at, &late],
                )
                .await
                .unwrap();
            row.get::<_, String>(0)
        }
    };
    // On time, then an outage (three late firings), then on time again,
    // then another outage.
    let plan = [
        (0, false),
        (1, true),
        (2, true),
        (3, true),
        (4, false),
        (5, true),
        (6, true),
    ];
    let mut skipper = Vec::new();
    let mut catcher = Vec::new();
    for (second, late) in plan {
        skipper.push(fired("skipper", second, late).await);
        catcher.push(fired("catcher", second, late).await);
    }
    assert_eq!(
        skipper,
        ["run", "skip", "skip", "skip", "run", "skip", "skip"]
    );
    assert_eq!(
        catcher,
        ["run", "run", "skip", "skip", "run", "run", "skip"]
    );
    // A firing taken again gets the same answer; an older one is skipped.
    assert_eq!(fired("catcher", 6, true).await, "skip");
    assert_eq!(fired("skipper", 4, false).await, "skip");
    assert_eq!(fired("skipper", 7, false).await, "run");
    assert_eq!(
        fired("skipper", 7, false).await,
        "run",
        "the same occurrence again"
    );
    // Paused or deleted: gone.
    stack
        .pg
        .execute(
            "UPDATE schedules SET paused = true WHERE schedule_id = 'skipper'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(fired("skipper", 8, false).await, "gone");
    assert_eq!(fired("nobody", 8, false).await, "gone");
}
