//! Operations against real servers and a real worker: the health and
//! metrics listener, `--dump-config`, the CLI's fleet and dead-letter tools,
//! the maximum payload, the trace context, and credentials that never show.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Stack, payload, run_one, tail, worker};
use runfleet_producer::{Producer, ProducerError, new_command};
use runfleet_schemas::{CommandKind, Tenant};
use runfleet_tests::binary;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const PG_PASSWORD: &str = "pg-Pa55word-9f3a";
const NATS_PASSWORD: &str = "nats-Pa55word-1c7e";

/// `url` with a password added (the test servers do not ask for one).
fn with_password(url: &str, password: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.set_password(Some(password)).unwrap();
    url.to_string()
}

fn cli(stack: &Stack, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary("runfleet").unwrap())
        .args(args)
        .env("NATS_URL", stack.nats.url())
        .env("RUNFLEET_TENANT", "acme")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn health_metrics_fleet_tools_payload_limits_and_no_credentials_anywhere() {
    let stack = Stack::start().await;
    let port = runfleet_tests::free_ports(1).unwrap()[0];
    let database_url = with_password(stack.db.url(), PG_PASSWORD);
    let env = stack
        .env
        .clone()
        .with("DATABASE_URL", database_url.clone())
        .with("NATS_USER", "worker")
        .with("NATS_PASSWORD", NATS_PASSWORD)
        .with("RUNFLEET_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .with("RUNFLEET_MAX_PAYLOAD", "4096")
        .with("RUST_LOG", "debug,async_nats=info,tokio_postgres=info");
    let w = worker(&env, "w1").await;
    let producer = stack.producer().await;

    // Health before any work.
    assert_eq!(common::http_get(port, "/healthz").await.0, 200);
    let (status, ready) = common::http_get(port, "/readyz").await;
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(status, 200, "{ready}");
    let names: Vec<&str> = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nats", "postgres", "migrations"]);

    // One command, with a trace context from the producer to the receipt and events.
    let command = run_one(&producer, json!({"text": "traced"})).await;
    let deadline = Instant::now() + WAIT;
    let receipt = loop {
        if let Some(receipt) = stack.receipt(&command).await {
            break receipt;
        }
        assert!(
            Instant::now() < deadline,
            "no receipt:\n{}",
            tail(&w.log_text(), 40)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let traceparent = receipt["traceparent"]
        .as_str()
        .expect("the receipt carries the trace context");
    assert!(
        traceparent.starts_with("00-") && traceparent.len() == 55,
        "{traceparent}"
    );
    let stored_event = producer
        .jetstream()
        .get_stream("RUNFLEET_EVENTS")
        .await
        .unwrap()
        .get_last_raw_message_by_subject(&format!("runfleet.evt.acme.{}", command.run_id))
        .await
        .unwrap();
    let header = stored_event
        .headers
        .get("traceparent")
        .map(|v| v.to_string());
    assert_eq!(header.as_deref(), Some(traceparent), "events carry it too");

    // Metrics (the message is settled a moment after its receipt is committed).
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let (status, metrics) = common::http_get(port, "/metrics").await;
        assert_eq!(status, 200);
        if metrics.contains("runfleet_in_flight_commands 0") || Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for line in [
        "runfleet_commands_started_total{profile=\"echo\",tenant=\"acme\"} 1",
        "runfleet_commands_completed_total{profile=\"echo\",tenant=\"acme\"} 1",
        "runfleet_end_to_end_seconds_count{profile=\"echo\",tenant=\"acme\"} 1",
        "runfleet_journal_commit_seconds_count 1",
        "runfleet_in_flight_commands 0",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }

    // A message over the fleet's max_payload is dead-lettered, not retried.
    let tenant = Tenant::new("acme").unwrap();
    let big = new_command(
        &tenant,
        &command.run_id,
        2,
        CommandKind::Turn,
        payload(json!({"text": "x".repeat(8000)})),
    );
    producer.send_command(&big).await.unwrap();
    let dead = stack.wait_for_dead_letters(1).await;
    assert_eq!(dead[0].0, "payload-too-large", "{dead:?}");
    assert!(
        dead[0].1.contains("this fleet accepts at most 4096"),
        "{dead:?}"
    );
    // …and a producer told the limit refuses it before sending.
    let limited = Producer::from_client(stack.nats.client().await.unwrap()).with_max_payload(4096);
    match limited.send_command(&big).await {
        Err(ProducerError::TooLarge { size, limit, .. }) => assert!(size > limit && limit == 4096),
        other => panic!("expected TooLarge, got {other:?}"),
    }

    // The CLI: the fleet overview and the dead letters.
    let (ok, out, err) = cli(&stack, &["fleet", "--json"]);
    assert!(ok, "{err}");
    let fleet: Value = serde_json::from_str(&out).unwrap();
    let me = fleet["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["worker_id"] == "w1")
        .cloned();
    assert_eq!(me.map(|m| m["alive"].clone()), Some(json!(true)), "{fleet}");
    assert_eq!(fleet["dead_letters"]["pending"], 1, "{fleet}");
    let (ok, out, err) = cli(&stack, &["dlq", "list", "--json"]);
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    let id = listed["dead_letters"][0]["dead_letter_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ok, out, err) = cli(&stack, &["dlq", "show", &id]);
    assert!(ok && out.contains("payload-too-large"), "{out}{err}");

    // Credentials: not in the dump, the health output, the log, or anything stored or published.
    let dump = Command::new(binary("runfleet-worker").unwrap())
        .arg("--dump-config")
        .envs(env.vars.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(dump.status.success());
    let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
    assert!(
        dump.contains("user = \"worker\"") && dump.contains("password = \""),
        "{dump}"
    );
    let (_, ready) = common::http_get(port, "/readyz").await;
    let stored = stack
        .pg
        .query(
            "SELECT string_agg(t::text, ' ') FROM (SELECT event::text AS t FROM events \
             UNION ALL SELECT result::text FROM journal UNION ALL SELECT message::text FROM dead_letters) s",
            &[],
        )
        .await
        .unwrap()[0]
        .get::<_, Option<String>>(0)
        .unwrap_or_default();
    for (place, text) in [
        ("--dump-config", dump),
        ("/readyz", ready),
        ("/metrics", metrics),
        ("the worker log", w.log_text()),
        ("events, receipts and dead letters", stored),
    ] {
        for secret in [PG_PASSWORD, NATS_PASSWORD] {
            assert!(!text.contains(secret), "{secret} appears in {place}");
        }
    }
    // A log written to a file (not a terminal) has no colour codes.
    let log = w.log_text();
    assert!(
        !log.contains('\x1b'),
        "ANSI codes in a log file:\n{}",
        tail(&log, 5)
    );
}
