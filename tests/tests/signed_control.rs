//! Signed cancels: with `RUNFLEET_REQUIRE_SIGNED_CONTROL=true` a fleet
//! cancels only on a fresh, unreplayed signature of a key registered for
//! the tenant (`runfleet signer add`). Unsigned, unregistered, tampered,
//! stale, replayed and removed-key cancels are dead-lettered
//! `signature-invalid` and cancel nothing, as does a forged broadcast on the
//! workers' cancel subject; `runfleet cancel` with
//! `RUNFLEET_SIGNING_KEY` stops the running command.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use async_nats::HeaderMap;
use runfleet_producer::{Signer, new_cancel};
use runfleet_schemas::control_signature::MAX_SKEW_MS;
use runfleet_schemas::{ControlCancel, Routed, TerminalCommandStatus, headers};
use runfleet_tests::{WorkerEnv, binary};
use serde_json::json;

fn cli(args: &[&str], nats_url: &str, signing_key: Option<&str>) -> Output {
    let mut command = Command::new(binary("runfleet").unwrap());
    command.args(args).env("NATS_URL", nats_url);
    if let Some(seed) = signing_key {
        command.env("RUNFLEET_SIGNING_KEY", seed);
    }
    command.output().unwrap()
}

/// Publishes `cancel` as given, with `signed` deciding the signature headers.
async fn publish(
    js: &async_nats::jetstream::Context,
    cancel: &ControlCancel,
    msg_id: &str,
    signed: impl FnOnce(&mut HeaderMap, &str, &[u8]),
) -> (HeaderMap, Vec<u8>) {
    let body = serde_json::to_vec(cancel).unwrap();
    let subject = cancel.subject();
    let mut headers = HeaderMap::new();
    headers.insert(headers::MSG_ID, msg_id);
    signed(&mut headers, &subject, &body);
    js.publish_with_headers(subject, headers.clone(), body.clone().into())
        .await
        .unwrap()
        .await
        .unwrap();
    (headers, body)
}

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap()
}

#[tokio::test]
async fn only_fresh_signatures_of_registered_keys_cancel() {
    let stack = common::Stack::start().await;
    let defaults = WorkerEnv::at_defaults(stack.nats.url(), stack.db.url())
        .with("RUNFLEET_REQUIRE_SIGNED_CONTROL", "true");
    let (env, _config) =
        common::with_profiles(&defaults, &[common::profile("agent", "agent.py", "")]);
    let worker = common::worker(&env, "w1").await;
    let url = stack.nats.url();

    // An operator registers the tenant's key.
    let (seed, signer) = Signer::generate();
    let public_key = signer.public_key();
    let added = cli(
        &["signer", "add", "acme", &public_key, "--note", "deployer"],
        url,
        None,
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let listed = cli(&["signer", "list", "--json"], url, None);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&public_key));
    let seed_refused = cli(&["signer", "add", "acme", &seed], url, None);
    assert!(
        String::from_utf8_lossy(&seed_refused.stderr).contains("public_key"),
        "a seed is refused naming the field"
    );

    // A slow command (40 steps of 250 ms).
    let producer = stack.producer().await;
    let run = runfleet_producer::new_run("acme", "tests", "agent").unwrap();
    producer.create_run(&run).await.unwrap();
    let slow = common::turn(
        &run,
        1,
        json!({"text": "slow", "steps": 40, "step_sleep_ms": 250}),
    );
    producer.send_command(&slow).await.unwrap();
    stack.wait_until_running(None).await;

    let js = producer.jetstream();
    let cancel = |reason: &str| {
        new_cancel(
            &run.tenant,
            &run.run_id,
            Some(slow.command_id.clone()),
            Some(reason.into()),
        )
    };
    let (_, stranger) = Signer::generate();
    let now = now_ms();
    // Unsigned; signed by a key nobody registered; signed, then its body
    // changed; signed 10 minutes ago; signed 10 minutes ahead.
    publish(js, &cancel("unsigned"), "c1", |_, _, _| {}).await;
    publish(js, &cancel("stranger"), "c2", |h, s, b| {
        stranger.sign(h, s, b)
    })
    .await;
    let tampered = cancel("tampered");
    let mut other = tampered.clone();
    other.reason = Some("something else".into());
    let other_body = serde_json::to_vec(&other).unwrap();
    publish(js, &tampered, "c3", |h, s, _| {
        signer.sign(h, s, &other_body)
    })
    .await;
    publish(js, &cancel("old"), "c4", |h, s, b| {
        signer.sign_at(h, s, b, now - 2 * MAX_SKEW_MS);
    })
    .await;
    publish(js, &cancel("ahead"), "c5", |h, s, b| {
        signer.sign_at(h, s, b, now + 2 * MAX_SKEW_MS);
    })
    .await;
    let dead = stack.wait_for_dead_letters(5).await;
    let reasons: Vec<&str> = dead.iter().map(|(r, _, _)| r.as_str()).collect();
    assert_eq!(reasons, ["signature-invalid"; 5], "{dead:?}");
    let messages: Vec<&str> = dead.iter().map(|(_, m, _)| m.as_str()).collect();
    assert!(
        messages[0].contains("missing header Runfleet-"),
        "{messages:?}"
    );
    assert!(
        messages[1].contains("is not registered for tenant acme"),
        "{messages:?}"
    );
    assert!(messages[2].contains("does not verify"), "{messages:?}");
    assert!(
        messages[3].contains("stale: signed 600 s before it was published"),
        "{messages:?}"
    );
    assert!(
        messages[4].contains("s after it was published"),
        "{messages:?}"
    );
    // Nor does a forged broadcast of the workers' own cancel subject: a
    // broadcast stops only a cancel PostgreSQL has stored.
    let client = stack.nats.client().await.unwrap();
    let forged = format!("runfleet.cancelled.acme.{}", run.run_id);
    client
        .publish(forged.clone(), slow.command_id.to_string().into())
        .await
        .unwrap();
    client.publish(forged, "".into()).await.unwrap();
    client.flush().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        worker
            .log_text()
            .contains("a cancel broadcast without a stored cancel: ignored"),
        "{}",
        worker.log_text()
    );
    let status: String = stack
        .pg
        .query_one(
            "SELECT status FROM commands WHERE command_id = $1",
            &[&slow.command_id.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        status, "running",
        "no refused cancel nor forged broadcast stopped the command"
    );

    // `runfleet cancel` signs with RUNFLEET_SIGNING_KEY: the command stops.
    let cancelled = cli(
        &[
            "cancel",
            "--tenant",
            "acme",
            run.run_id.as_str(),
            "--command",
            slow.command_id.as_str(),
        ],
        url,
        Some(&seed),
    );
    assert!(
        cancelled.status.success(),
        "{}",
        String::from_utf8_lossy(&cancelled.stderr)
    );
    let receipt = producer
        .wait_for_receipt(&slow, Duration::from_secs(60))
        .await
        .unwrap_or_else(|err| panic!("{err}\n{}", worker.log_text()));
    assert_eq!(receipt.status, TerminalCommandStatus::Cancelled);

    // The same signature again, on another message (another id): a replay.
    let accepted = cancel("accepted once");
    let (headers, body) = publish(js, &accepted, "c6", |h, s, b| signer.sign(h, s, b)).await;
    let mut replay = headers.clone();
    replay.insert(headers::MSG_ID, "c7");
    js.publish_with_headers(accepted.subject(), replay, body.into())
        .await
        .unwrap()
        .await
        .unwrap();
    let dead = stack.wait_for_dead_letters(6).await;
    assert_eq!(dead.len(), 6, "{dead:?}");
    assert!(dead[5].1.starts_with("replayed:"), "{dead:?}");

    // A removed key is refused from the next cancel on.
    let removed = cli(&["signer", "remove", "acme", &public_key], url, None);
    assert!(removed.status.success());
    publish(js, &cancel("removed"), "c8", |h, s, b| signer.sign(h, s, b)).await;
    let dead = stack.wait_for_dead_letters(7).await;
    assert_eq!(dead.len(), 7, "{dead:?}");
    assert!(dead[6].1.contains("is not registered"), "{dead:?}");
}
