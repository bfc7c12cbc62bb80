//! Tenant isolation with `deploy/nats/tenants.conf`.
//!
//! A real nats-server runs the deployed configuration (only the store, the
//! ports and the log moved to a temp dir). The `worker` user creates the
//! streams and publishes one event for each of the tenants `acme` and
//! `globex`; then a producer logged in as `acme`, with its private inbox
//! prefix, publishes and reads its own subjects and is refused every way of
//! publishing to or reading `globex`'s.

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use runfleet_producer::{Producer, ProducerError, follow, new_run};
use runfleet_schemas::{Event, EventBody, RunId, SessionId, Tenant, subjects};
use runfleet_worker::config::StreamSettings;
use serde_json::json;

use Outcome::{Answered, Refused};
use common::tenant_nats::{
    ACME_PASSWORD, OPERATOR_PASSWORD, ServerErrors, TenantNats, WORKER_PASSWORD,
};

/// The stream settings' defaults (`runfleet-worker --help`), one replica.
fn stream_settings() -> StreamSettings {
    let day = Duration::from_secs(24 * 3600);
    StreamSettings {
        replicas: 1,
        ack_wait: Duration::from_secs(30),
        max_deliver: 10,
        max_ack_pending: 4096,
        dedupe_window: Duration::from_secs(600),
        receipt_retention: 7 * day,
        event_retention: day,
    }
}

fn event(tenant: &Tenant, run_id: &RunId) -> Event {
    Event {
        schema: Default::default(),
        version: runfleet_schemas::SchemaVersion,
        tenant: tenant.clone(),
        run_id: run_id.clone(),
        command_id: None,
        seq: 1,
        attempt: None,
        at: chrono::Utc::now(),
        body: EventBody::Phase {
            name: format!("secret phase of {tenant}"),
        },
    }
}

/// An ordered consumer named `name` on the events stream, filtered on
/// `filter`, from the start: what `follow::events` does, except that the
/// consumer is named (so the filter is part of the create subject) and
/// created without reading the stream's info first (which tenants may not).
async fn ordered_events(
    js: &jetstream::Context,
    name: &str,
    filter: &str,
) -> Result<consumer::pull::Ordered, String> {
    let consumer = js
        .create_consumer_on_stream(
            consumer::pull::OrderedConfig {
                name: Some(name.to_owned()),
                filter_subject: filter.to_owned(),
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            },
            subjects::EVENT_STREAM,
        )
        .await
        .map_err(|e| e.to_string())?;
    consumer.messages().await.map_err(|e| e.to_string())
}

/// The next event `messages` delivers, decoded.
async fn next_event(messages: &mut consumer::pull::Ordered) -> Result<Option<Event>, String> {
    match messages.next().await {
        Some(Ok(message)) => runfleet_schemas::decode::<Event>(&message.payload)
            .map(Some)
            .map_err(|e| e.to_string()),
        Some(Err(err)) => Err(err.to_string()),
        None => Ok(None),
    }
}

/// The first event a named ordered consumer ([`ordered_events`]) delivers
/// within `within`.
async fn first_event_named(
    js: &jetstream::Context,
    name: &str,
    filter: &str,
    within: Duration,
) -> Result<Option<Event>, String> {
    let read = async { next_event(&mut ordered_events(js, name, filter).await?).await };
    tokio::time::timeout(within, read).await.unwrap_or(Ok(None))
}

/// Whether a read yielded an event of `tenant`.
fn read_event_of(read: &Result<Option<Event>, String>, tenant: &Tenant) -> bool {
    matches!(read, Ok(Some(event)) if event.tenant == *tenant)
}

/// How the server treats a JetStream API request a tenant should not make.
#[derive(Debug)]
enum Outcome {
    /// The subject is allowed; JetStream answers with an error.
    Answered,
    /// The subject is not allowed; the server drops the request.
    Refused,
}
/// The first event `follow::events` yields within two seconds.
async fn first_event_followed(
    js: &jetstream::Context,
    tenant: &Tenant,
    run_id: &RunId,
) -> Result<Option<Event>, String> {
    let read = async {
        let events = follow::events(js, tenant, run_id, 1)
            .await
            .map_err(|e| e.to_string())?;
        futures::pin_mut!(events);
        match events.next().await {
            Some(event) => event.map(Some).map_err(|e| e.to_string()),
            None => Ok(None),
        }
    };
    tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .unwrap_or(Ok(None))
}

/// A raw JetStream API request: `Ok(answer)` when the server answered
/// (possibly with a JetStream error), `Err` when nothing came back (refused).
async fn api_request(
    client: &async_nats::Client,
    subject: String,
    body: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let answer = client
        .request(subject, body.to_string().into())
        .await
        .map_err(|e| e.to_string())?;
    Ok(serde_json::from_slice(&answer.payload).unwrap())
}

#[tokio::test]
async fn a_tenant_reaches_only_its_own_subjects() {
    let nats = TenantNats::start().await;
    let worker_errors = ServerErrors::default();
    let worker = nats
        .connect("worker", WORKER_PASSWORD, None, &worker_errors)
        .await;
    let worker_js = jetstream::new(worker.clone());
    // As `runfleet-worker setup` does: the five streams and the work consumer.
    runfleet_worker::setup::ensure_streams(&worker_js, &stream_settings())
        .await
        .unwrap();

    // The operator user reads every stream but cannot change one.
    let operator_errors = ServerErrors::default();
    let operator = nats
        .connect("operator", OPERATOR_PASSWORD, None, &operator_errors)
        .await;
    let names = api_request(&operator, "$JS.API.STREAM.NAMES".into(), json!({}))
        .await
        .unwrap();
    assert!(
        names["streams"].as_array().is_some_and(|s| s.len() >= 5),
        "{names}"
    );
    assert!(
        api_request(
            &operator,
            format!("$JS.API.STREAM.DELETE.{}", subjects::WORK_STREAM),
            json!({})
        )
        .await
        .is_err(),
        "an operator cannot delete a stream"
    );

    let acme = Tenant::new("acme").unwrap();
    let globex = Tenant::new("globex").unwrap();
    let run_1 = RunId::new("run-1").unwrap();
    for tenant in [&globex, &acme] {
        let payload = serde_json::to_vec(&event(tenant, &run_1)).unwrap();
        worker_js
            .publish(subjects::event(tenant, &run_1), payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    let acme_errors = ServerErrors::default();
    let client = nats
        .connect("acme", ACME_PASSWORD, Some("_INBOX_acme"), &acme_errors)
        .await;
    let producer = Producer::from_client(client.clone());

    // (a) Its own run: stored.
    let mut run = new_run("acme", "p", "echo").unwrap();
    run.run_id = RunId::new("r1").unwrap();
    let accepted = producer.publish(&run).await.unwrap();
    assert_eq!(accepted.stream, subjects::WORK_STREAM);
    let work = worker_js.get_stream(subjects::WORK_STREAM).await.unwrap();
    work.get_last_raw_message_by_subject("runfleet.run.acme.r1")
        .await
        .unwrap();

    // (b) A run for globex: refused by the server, nothing stored.
    let mut foreign = new_run("globex", "p", "echo").unwrap();
    foreign.run_id = RunId::new("r1").unwrap();
    let refused = producer.publish(&foreign).await;
    let Err(ProducerError::Publish { subject, .. }) = &refused else {
        panic!("publishing globex's run: {refused:?}");
    };
    assert_eq!(subject, "runfleet.run.globex.r1");
    acme_errors
        .wait_for("Permissions Violation for Publish to \"runfleet.run.globex.r1\"")
        .await;
    assert!(
        work.get_last_raw_message_by_subject("runfleet.run.globex.r1")
            .await
            .is_err(),
        "a message was stored on globex's subject"
    );
    assert_eq!(work.get_info().await.unwrap().state.messages, 1);
    // Nor may it forge what the fleet publishes, even for itself.
    client
        .publish(subjects::event(&acme, &run_1), "forged".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    acme_errors
        .wait_for("Permissions Violation for Publish to \"runfleet.evt.acme.run-1\"")
        .await;

    // (c) Its own events: readable with the producer library (which creates
    // named ordered consumers, so the filter is part of the create subject)…
    let followed_own = first_event_followed(producer.jetstream(), &acme, &run_1).await;
    assert!(
        read_event_of(&followed_own, &acme),
        "follow::events reads the tenant's own events: {followed_own:?}"
    );
    // …and with a named ordered consumer of its own.
    let name = format!("acme-{}", uuid::Uuid::now_v7().simple());
    let mut own = ordered_events(producer.jetstream(), &name, &subjects::event(&acme, &run_1))
        .await
        .unwrap();
    let within = Duration::from_secs(5);
    let first = tokio::time::timeout(within, next_event(&mut own)).await;
    let first = first.unwrap().unwrap().expect("acme's event");
    assert_eq!((&first.tenant, first.seq), (&acme, 1));
    // An ordered consumer that loses its consumer deletes it and creates
    // `<name>_1` from the next sequence: the tenant may do both.
    worker_js
        .delete_consumer_from_stream(&name, subjects::EVENT_STREAM)
        .await
        .unwrap();
    let second = Event {
        seq: 2,
        ..event(&acme, &run_1)
    };
    worker_js
        .publish(
            subjects::event(&acme, &run_1),
            serde_json::to_vec(&second).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let next = tokio::time::timeout(within, next_event(&mut own)).await;
    assert_eq!(next.unwrap().unwrap().expect("acme's second event").seq, 2);
    drop(own);

    // (d) globex's events: every way in is refused or yields nothing.
    let followed = first_event_followed(producer.jetstream(), &globex, &run_1).await;
    assert!(
        !read_event_of(&followed, &globex),
        "follow::events read globex: {followed:?}"
    );
    let named = first_event_named(
        producer.jetstream(),
        "acme-peek",
        &subjects::event(&globex, &run_1),
        Duration::from_secs(2),
    )
    .await;
    assert!(
        !read_event_of(&named, &globex),
        "a named consumer read globex: {named:?}"
    );
    // Raw JetStream API requests trying to widen the filter. `Answered`:
    // the subject is allowed and JetStream itself refuses the body;
    // `Refused`: the server drops the request as a permissions violation.
    let create = "$JS.API.CONSUMER.CREATE.RUNFLEET_EVENTS";
    let stream = subjects::EVENT_STREAM;
    let body = |config| json!({"stream_name": stream, "config": config, "action": ""});
    let globex_filter = "runfleet.evt.globex.>";
    let attempts = [
        // The body's filter must equal the subject's (err_code 10131) …
        (
            Answered,
            format!("{create}.x1.runfleet.evt.acme.>"),
            body(json!({"name": "x1", "filter_subject": globex_filter})),
        ),
        // … and several filters are refused on the filtered create subject (10137).
        (
            Answered,
            format!("{create}.x2.runfleet.evt.acme.>"),
            body(json!({"name": "x2", "filter_subjects": [globex_filter]})),
        ),
        (
            Answered,
            format!("{create}.x3.runfleet.evt.acme.>"),
            body(json!({
                "name": "x3",
                "filter_subject": "runfleet.evt.acme.>",
                "filter_subjects": [globex_filter],
            })),
        ),
        // No filter token (unnamed, or named), a wildcard for the tenant,
        // another tenant's token, direct reads of stored messages, the
        // stream's info (with `subjects_filter` it lists every subject).
        (
            Refused,
            create.to_owned(),
            body(json!({"filter_subject": globex_filter})),
        ),
        (
            Refused,
            format!("{create}.x4"),
            body(json!({"name": "x4", "filter_subject": globex_filter})),
        ),
        (
            Refused,
            format!("{create}.x5.runfleet.evt.*.>"),
            body(json!({"name": "x5", "filter_subject": "runfleet.evt.*.>"})),
        ),
        (
            Refused,
            format!("{create}.x6.{globex_filter}"),
            body(json!({"name": "x6", "filter_subject": globex_filter})),
        ),
        (
            Refused,
            format!("$JS.API.STREAM.MSG.GET.{}", subjects::EVENT_STREAM),
            json!({"last_by_subj": "runfleet.evt.globex.run-1"}),
        ),
        (
            Refused,
            format!("$JS.API.DIRECT.GET.{}", subjects::EVENT_STREAM),
            json!({"last_by_subj": "runfleet.evt.globex.run-1"}),
        ),
        (
            Refused,
            format!("$JS.API.STREAM.INFO.{}", subjects::EVENT_STREAM),
            json!({"subjects_filter": ">"}),
        ),
    ];
    let answers = futures::future::join_all(
        attempts
            .iter()
            .map(|(_, subject, body)| api_request(&client, subject.clone(), body.clone())),
    )
    .await;
    for ((expected, subject, body), answer) in attempts.iter().zip(answers) {
        match (expected, &answer) {
            (Answered, Ok(answer)) => assert!(
                answer.get("error").is_some() && answer.get("config").is_none(),
                "{subject} {body} was accepted: {answer}"
            ),
            (Refused, Err(_)) => {
                acme_errors
                    .wait_for(&format!(
                        "Permissions Violation for Publish to \"{subject}\""
                    ))
                    .await;
            }
            _ => panic!("{subject} {body}: expected {expected:?}, got {answer:?}"),
        }
    }

    // (e) Core subscriptions on globex's events and on the shared inbox:
    // refused (the `-ERR` also proves the server has handled the SUBs before
    // the worker publishes), and nothing arrives.
    let mut snoop = client.subscribe("runfleet.evt.globex.>").await.unwrap();
    let mut inbox_snoop = client.subscribe("_INBOX.>").await.unwrap();
    client.flush().await.unwrap();
    acme_errors
        .wait_for("Permissions Violation for Subscription to \"runfleet.evt.globex.>\"")
        .await;
    acme_errors
        .wait_for("Permissions Violation for Subscription to \"_INBOX.>\"")
        .await;
    worker
        .publish("runfleet.evt.globex.x", "for globex only".into())
        .await
        .unwrap();
    worker.publish("_INBOX.x", "a reply".into()).await.unwrap();
    worker.flush().await.unwrap();
    let leaked = tokio::time::timeout(Duration::from_secs(1), async {
        tokio::select! {
            m = snoop.next() => m,
            m = inbox_snoop.next() => m,
        }
    })
    .await;
    assert!(!matches!(leaked, Ok(Some(_))), "acme received {leaked:?}");

    // Session look-ups: a worker (queue group `runfleet-workers`) answers on
    // acme's private inbox `_INBOX_acme.…`, which only `allow_responses` lets
    // it publish to; a look-up of a globex session is refused.
    let mut sessions = worker
        .queue_subscribe("runfleet.session.*.*", "runfleet-workers".into())
        .await
        .unwrap();
    let responder = worker.clone();
    let answering = tokio::spawn(async move {
        while let Some(request) = sessions.next().await {
            if let Some(reply) = request.reply {
                let answer = json!({"session_id": request.subject.split('.').nth(3)});
                responder
                    .publish(reply, answer.to_string().into())
                    .await
                    .unwrap();
            }
        }
    });
    // `flush` only empties the client's buffer: a round trip through the
    // subscription proves the server has it before acme asks.
    worker
        .request("runfleet.session.acme.ready", "".into())
        .await
        .unwrap();
    let session = SessionId::new("s1").unwrap();
    let summary = follow::session_summary(&client, &acme, &session)
        .await
        .unwrap();
    assert_eq!(summary, json!({"session_id": "s1"}));
    let foreign = follow::session_summary(&client, &globex, &session).await;
    assert!(foreign.is_err(), "{foreign:?}");
    acme_errors
        .wait_for("Permissions Violation for Publish to \"runfleet.session.globex.s1\"")
        .await;
    answering.abort();

    // Nothing acme's reader was meant to do (create, pull, delete) was refused.
    let errors = acme_errors.0.lock().unwrap().clone();
    assert!(
        !errors
            .iter()
            .any(|e| e.contains(&name) || e.contains("MSG.NEXT") || e.contains("CONSUMER.DELETE")),
        "{errors:?}"
    );
    // The worker itself was refused nothing.
    assert_eq!(*worker_errors.0.lock().unwrap(), Vec::<String>::new());
}
