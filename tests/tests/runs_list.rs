//! `runs.list` (the operator API's run list, the web console's Runs page)
//! with a million runs in the journal: every page, deep ones included, is
//! served by an index in the list's order, never a scan of the table or a
//! sort of it; and pages follow one another without a gap or a repeat.
//! The figures printed are the API's round trips, for the record (no timing
//! is asserted: the plans are the proof).

mod common;

use std::time::Instant;

use common::{Stack, worker};
use runfleet_producer::inspect;
use runfleet_schemas::api::RunListRequest;
use runfleet_worker::service::runs_list::page_query;
use tokio_postgres::types::ToSql;

const RUNS: i64 = 1_000_000;

/// The plan PostgreSQL chooses for `request`'s page, as text (one node per line).
async fn plan(stack: &Stack, request: &RunListRequest) -> String {
    let (sql, params) = page_query(request).unwrap();
    let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
    let rows = stack
        .pg
        .query(&format!("EXPLAIN {sql}"), &params)
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_million_runs_are_paged_by_index() {
    let stack = Stack::start().await;
    let _worker = worker(&stack.env, "w1").await;
    // 10 tenants × 5 projects, two profiles, one run in a thousand failed,
    // one created every millisecond.
    let started = Instant::now();
    stack
        .pg
        .batch_execute(&format!(
            "INSERT INTO runs (tenant, run_id, project, backend_profile, spec, idempotency_key, \
                               payload_hash, status, created_at, updated_at) \
             SELECT 't' || (i % 10), 'run-' || lpad(i::text, 7, '0'), 'p' || (i % 5), \
                    CASE WHEN i % 3 = 0 THEN 'agent' ELSE 'echo' END, '{{}}'::jsonb, 'k' || i, '\\x00', \
                    CASE WHEN i % 1000 = 7 THEN 'failed' ELSE 'completed' END, \
                    timestamptz '2026-01-01' + i * interval '1 millisecond', now() \
               FROM generate_series(1, {RUNS}) AS i; \
             ANALYZE runs;"
        ))
        .await
        .unwrap();
    eprintln!("{RUNS} runs inserted in {:.1?}", started.elapsed());

    // A cursor half-way down the list, as a page's `next` would be.
    let middle: (String, String, chrono::DateTime<chrono::Utc>) = {
        let row = stack
            .pg
            .query_one(
                "SELECT tenant, run_id, created_at FROM runs ORDER BY created_at DESC, tenant DESC, run_id DESC OFFSET $1 LIMIT 1",
                &[&(RUNS / 2)],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    };
    let deep = format!("{}:{}:{}", middle.2.timestamp_micros(), middle.0, middle.1);
    let ask = |f: fn(&mut RunListRequest)| {
        let mut request = RunListRequest {
            limit: Some(50),
            ..Default::default()
        };
        f(&mut request);
        request
    };
    let mut requests = vec![
        ("newest", ask(|_| {})),
        ("tenant", ask(|r| r.tenant = Some("t3".into()))),
        (
            "tenant and project",
            ask(|r| {
                r.tenant = Some("t3".into());
                r.project = Some("p3".into());
            }),
        ),
        ("profile", ask(|r| r.profile = Some("agent".into()))),
        ("status failed", ask(|r| r.status = Some("failed".into()))),
        (
            "run id prefix",
            ask(|r| r.run_id_prefix = Some("run-05000".into())),
        ),
    ];
    let deep_ones: Vec<(&str, RunListRequest)> = requests
        .iter()
        .filter(|(name, _)| *name != "run id prefix")
        .map(|(name, request)| {
            let mut request = request.clone();
            request.after = Some(deep.clone());
            (*name, request)
        })
        .collect();
    requests.extend(deep_ones);

    let client = async_nats::connect(stack.nats.url()).await.unwrap();

    // Filters no index is ordered for: a status no run has, a project
    // without its tenant, a broad prefix. Served, but each walks (or sorts)
    // more: their cost is printed for the README, not asserted.
    let costly = [
        (
            "status no run has",
            ask(|r| r.status = Some("blocked".into())),
        ),
        (
            "project without tenant",
            ask(|r| r.project = Some("p2".into())),
        ),
        (
            "broad run id prefix",
            ask(|r| r.run_id_prefix = Some("run-0".into())),
        ),
    ];
    for (name, request) in &costly {
        let plan = plan(&stack, request).await;
        let asked = Instant::now();
        let page = inspect::call(&client, request).await.unwrap();
        eprintln!(
            "{name}: {} runs in {:.1} ms ({})",
            page.runs.len(),
            asked.elapsed().as_secs_f64() * 1e3,
            plan.lines().next().unwrap_or("?").trim()
        );
    }

    for (name, request) in &requests {
        let plan = plan(&stack, request).await;
        assert!(
            !plan.contains("Seq Scan"),
            "{name}: a scan of the table\n{plan}"
        );
        if request.run_id_prefix.is_none() {
            assert!(!plan.contains("Sort"), "{name}: a sort\n{plan}");
        }
        let asked = Instant::now();
        let page = inspect::call(&client, request).await.unwrap();
        eprintln!(
            "{name}{}: {} runs in {:.1} ms ({})",
            if request.after.is_some() {
                ", half-way down"
            } else {
                ""
            },
            page.runs.len(),
            asked.elapsed().as_secs_f64() * 1e3,
            plan.lines()
                .find(|l| l.contains("Index"))
                .unwrap_or("?")
                .trim()
        );
        assert!(!page.runs.is_empty(), "{name}: nothing");
        for run in &page.runs {
            if let Some(tenant) = &request.tenant {
                assert_eq!(&run.tenant, tenant);
            }
            if let Some(status) = &request.status {
                assert_eq!(&run.status, status);
            }
        }
    }

    // Pages follow one another: newest first, no repeat, no gap.
    let mut request = ask(|r| r.tenant = Some("t1".into()));
    request.limit = Some(500);
    let mut seen: Vec<String> = Vec::new();
    for _ in 0..4 {
        let page = inspect::call(&client, &request).await.unwrap();
        seen.extend(page.runs.iter().map(|r| r.run_id.clone()));
        request.after = page.next;
    }
    let expected: Vec<String> = stack
        .pg
        .query(
            "SELECT run_id FROM runs WHERE tenant = 't1' ORDER BY created_at DESC, run_id DESC LIMIT 2000",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seen, expected);

    // A cursor the endpoint never gave is refused, naming the field.
    let forged = RunListRequest {
        after: Some("yesterday".into()),
        ..Default::default()
    };
    let err = inspect::call(&client, &forged)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("after"), "{err}");
}
