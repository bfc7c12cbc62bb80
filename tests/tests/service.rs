//! The fleet's NATS micro service `runfleet`, end to end: one real worker
//! executes commands while the service answers through
//! `runfleet_producer::inspect`. The test also serves an instance
//! in-process, to drive its shutdown; the worker serves its own.

mod common;

use std::time::{Duration, Instant};

use common::{Stack, payload, run_with_commands, text_payload};
use futures::StreamExt;
use runfleet_producer::{ProducerError, inspect, new_command, new_run};
use runfleet_schemas::CommandKind;
use runfleet_worker::service::{self, API_PREFIX, ENDPOINTS, SERVICE_NAME};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);

/// A typed answer as its JSON (the wire shape the assertions read).
fn json_of(answer: impl serde::Serialize) -> Value {
    serde_json::to_value(answer).unwrap()
}

/// The worker's message of a refused request.
fn refusal<T: std::fmt::Debug>(result: Result<T, ProducerError>) -> String {
    match result {
        Err(ProducerError::Read { detail, .. }) => detail,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn the_service_answers_status_events_dead_letters_and_redrives() {
    let stack = Stack::start().await;
    let workers = stack.workers(&stack.env, 1).await;
    let client = stack.nats.client().await.unwrap();

    let stop = CancellationToken::new();
    let pool = runfleet_worker::db::Pool::connect(stack.db.url(), 2)
        .await
        .unwrap();
    let registered = service::register(stack.nats.client().await.unwrap(), pool)
        .await
        .unwrap();
    let served = tokio::spawn(registered.serve(stop.clone()));

    // A command whose run does not exist yet: dead-lettered after RUNFLEET_RUN_WAIT.
    let producer = stack.producer().await;
    let orphan_run = new_run("acme", "tests", "echo").unwrap();
    let orphan = new_command(
        &orphan_run.tenant,
        &orphan_run.run_id,
        1,
        CommandKind::Turn,
        payload(json!({"text": "late run"})),
    );
    producer.send_command(&orphan).await.unwrap();

    // A run with two echo commands.
    let (run, commands) = run_with_commands(2, text_payload);
    producer.create_run(&run).await.unwrap();
    for command in &commands {
        producer.send_command(command).await.unwrap();
    }
    stack.wait_for_receipts(2, WAIT, &workers).await;
    let (tenant, run_id) = (run.tenant.as_str(), run.run_id.as_str());

    // Discovery: the service answers PING and INFO, listing its endpoints.
    let deadline = Instant::now() + WAIT;
    let ping = loop {
        match client
            .request(format!("$SRV.PING.{SERVICE_NAME}"), "".into())
            .await
        {
            Ok(reply) => break reply,
            Err(err) => {
                assert!(
                    Instant::now() < deadline,
                    "the service never answered: {err}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let ping: Value = serde_json::from_slice(&ping.payload).unwrap();
    assert_eq!(ping["name"], SERVICE_NAME);
    assert_eq!(ping["type"], "io.nats.micro.v1.ping_response");
    let info = client
        .request(format!("$SRV.INFO.{SERVICE_NAME}"), "".into())
        .await
        .unwrap();
    let info: Value = serde_json::from_slice(&info.payload).unwrap();
    assert_eq!(info["description"], service::DESCRIPTION, "{info}");
    let subjects: Vec<&str> = info["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    for endpoint in ENDPOINTS {
        let subject = format!("{API_PREFIX}.{endpoint}");
        assert!(subjects.contains(&subject.as_str()), "{subject} in {info}");
    }

    // run.status: the run and its two completed commands, in seq order.
    let status = json_of(inspect::run_status(&client, tenant, run_id).await.unwrap());
    assert_eq!(status["profile"], "echo", "{status}");
    assert_eq!(status["project"], "tests");
    assert_eq!(status["next_seq"], 3);
    assert_eq!(status["commands_total"], 2);
    let listed = status["commands"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{status}");
    for (i, (listed, sent)) in listed.iter().zip(&commands).enumerate() {
        assert_eq!(listed["seq"], i + 1);
        assert_eq!(listed["command_id"], sent.command_id.as_str());
        assert_eq!(listed["status"], "completed", "{listed}");
        assert_eq!(listed["worker_id"], "w1");
        assert!(listed["failure"].is_null());
    }

    // command.get: the command, its receipt and its journaled steps.
    let first = &commands[0];
    let got = json_of(
        inspect::command(&client, tenant, run_id, first.command_id.as_str())
            .await
            .unwrap(),
    );
    assert_eq!(got["status"], "completed", "{got}");
    assert_eq!(got["receipt"]["status"], "completed");
    assert_eq!(got["receipt"]["command_id"], first.command_id.as_str());
    assert_eq!(got["message"]["idempotency_key"], first.idempotency_key);
    assert!(
        got["steps"].as_array().unwrap().contains(&json!("receipt")),
        "{got}"
    );

    // events.after: everything after seq 1, in order.
    let stored: i64 = stack
        .pg
        .query_one("SELECT count(*) FROM events WHERE run_id = $1", &[&run_id])
        .await
        .unwrap()
        .get(0);
    assert!(stored >= 2, "echo emits events");
    let later = json_of(
        inspect::events_after(&client, tenant, run_id, 1, 100)
            .await
            .unwrap(),
    );
    let seqs: Vec<u64> = later["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (2..=stored as u64).collect::<Vec<_>>(), "{later}");
    assert_eq!(later["more"], false);
    assert_eq!(later["last_seq"], stored);
    let page = json_of(
        inspect::events_after(&client, tenant, run_id, 0, 1)
            .await
            .unwrap(),
    );
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    assert_eq!(
        (page["more"].clone(), page["next_after_seq"].clone()),
        (json!(true), json!(1))
    );

    // The orphan command is dead-lettered run-not-found.
    let dead = stack.wait_for_dead_letters(1).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, "run-not-found");

    // fleet.stats: the worker is alive, the commands and the dead letter counted.
    let stats = json_of(inspect::fleet_stats(&client).await.unwrap());
    let fleet = stats["workers"].as_array().unwrap();
    let w1 = fleet.iter().find(|w| w["worker_id"] == "w1").unwrap();
    assert_eq!(w1["alive"], true, "{stats}");
    assert_eq!(w1["in_flight"], 0);
    assert_eq!(stats["commands_by_status"]["completed"], 2, "{stats}");
    assert_eq!(stats["commands_by_status"]["running"], 0);
    assert_eq!(stats["runs_by_status"]["failed"], 0);
    assert_eq!(stats["dead_letters"], json!({"pending": 1, "redriven": 0}));

    // dlq.list and dlq.show.
    let list = json_of(
        inspect::dlq_list(&client, Some("acme"), 50, false)
            .await
            .unwrap(),
    );
    let letters = list["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{list}");
    let letter = &letters[0];
    assert_eq!(letter["reason"], "run-not-found");
    assert_eq!(letter["tenant"], "acme");
    assert_eq!(
        letter["subject"],
        format!("runfleet.cmd.acme.{}", orphan_run.run_id)
    );
    assert!(
        letter["message"]
            .as_str()
            .unwrap()
            .contains(orphan_run.run_id.as_str())
    );
    assert!(letter["redriven_at"].is_null());
    let other = json_of(
        inspect::dlq_list(&client, Some("globex"), 50, false)
            .await
            .unwrap(),
    );
    assert!(
        other["dead_letters"].as_array().unwrap().is_empty(),
        "{other}"
    );
    let id = letter["dead_letter_id"].as_str().unwrap().to_owned();
    let shown = json_of(inspect::dlq_show(&client, &id).await.unwrap());
    assert_eq!(
        shown["dead_letter"]["dead_letter_id"],
        id.as_str(),
        "{shown}"
    );
    assert_eq!(shown["dead_letter"]["original_subject"], letter["subject"]);
    assert_eq!(
        shown["dead_letter"]["idempotency_key"],
        orphan.idempotency_key
    );
    assert!(shown["redriven_at"].is_null());

    // Create the missing run, re-drive: the command completes.
    producer.create_run(&orphan_run).await.unwrap();
    let redriven = json_of(inspect::dlq_redrive(&client, &id).await.unwrap());
    assert_eq!(redriven["duplicate"], false, "{redriven}");
    assert_eq!(redriven["stream"], "RUNFLEET_WORK");
    assert_eq!(redriven["subject"], letter["subject"]);
    assert!(redriven["sequence"].as_u64().unwrap() > 0);
    let deadline = Instant::now() + WAIT;
    let receipt = loop {
        if let Some(receipt) = stack.receipt(&orphan).await {
            break receipt;
        }
        assert!(
            Instant::now() < deadline,
            "the re-driven command got no receipt:\n{}",
            common::tail(&workers[0].log_text(), 60)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(receipt["status"], "completed", "{receipt}");

    // A second redrive is refused, saying when the first one happened.
    let again = refusal(inspect::dlq_redrive(&client, &id).await);
    assert!(again.contains("already re-driven at"), "{again}");
    assert!(again.contains("400"), "{again}");
    let pending = json_of(inspect::dlq_list(&client, None, 50, false).await.unwrap());
    assert!(
        pending["dead_letters"].as_array().unwrap().is_empty(),
        "{pending}"
    );
    let all = json_of(inspect::dlq_list(&client, None, 50, true).await.unwrap());
    assert!(!all["dead_letters"][0]["redriven_at"].is_null(), "{all}");
    let stats = json_of(inspect::fleet_stats(&client).await.unwrap());
    assert_eq!(stats["dead_letters"], json!({"pending": 0, "redriven": 1}));

    // Bad requests name the field; unknown things are 404.
    let missing = refusal(inspect::request(&client, "run.status", json!({"run_id": run_id})).await);
    assert!(
        missing.contains("`tenant`") && missing.contains("400"),
        "{missing}"
    );
    let typo = refusal(
        inspect::request(
            &client,
            "events.after",
            json!({"tenant": "acme", "run_id": run_id, "limit": 5000}),
        )
        .await,
    );
    assert!(typo.contains("`limit`"), "{typo}");
    let unknown = refusal(inspect::run_status(&client, "acme", "no-such-run").await);
    assert!(
        unknown.contains("404") && unknown.contains("no-such-run"),
        "{unknown}"
    );
    let unknown = refusal(inspect::dlq_show(&client, "no-such-letter").await);
    assert!(unknown.contains("404"), "{unknown}");

    // Stopping: this instance deregisters (the worker's own, if it runs one, stays).
    let before = instances(&client).await;
    assert!(before >= 1);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while instances(&client).await != before - 1 {
        assert!(
            Instant::now() < deadline,
            "the stopped instance still answers PING"
        );
    }
}

/// How many instances of the service answer `$SRV.PING.runfleet`.
async fn instances(client: &async_nats::Client) -> usize {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.unwrap();
    client
        .publish_with_reply(format!("$SRV.PING.{SERVICE_NAME}"), inbox, "".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let mut count = 0;
    while let Ok(Some(reply)) =
        tokio::time::timeout(Duration::from_millis(500), replies.next()).await
    {
        // A no-responders status has no body.
        if !reply.payload.is_empty() {
            count += 1;
        }
    }
    count
}
