//! The binaries against real servers: `runfleet-worker check` and
//! `runfleet validate | publish`.

use std::process::{Command, Output};

use async_nats::jetstream::{self, stream};
use runfleet_tests::{TestDb, TestNats, binary, workspace_root};

fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(binary(name).unwrap())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn example(path: &str) -> String {
    workspace_root()
        .join("schemas/examples")
        .join(path)
        .display()
        .to_string()
}

#[tokio::test]
async fn worker_check_accepts_the_pinned_server_and_postgres() {
    let nats = TestNats::start().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let out = run(
        "runfleet-worker",
        &["check"],
        &[("NATS_URL", nats.url()), ("DATABASE_URL", db.url())],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("ok: nats-server 2.15."), "{stdout}");
    assert!(stdout.contains("PostgreSQL 1"), "{stdout}");
}

#[tokio::test]
async fn worker_check_says_what_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("nats://127.0.0.1:{}", listener.local_addr().unwrap().port());
    drop(listener);
    let out = run("runfleet-worker", &["check"], &[("NATS_URL", &closed)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot reach NATS at {closed}")),
        "{stderr}"
    );
    assert!(stderr.contains("is the stack running?"), "{stderr}");
}

#[test]
fn validate_names_the_offending_field() {
    let out = run(
        "runfleet",
        &[
            "validate",
            &example("invalid/command.create/payload-not-object.json"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        "invalid: command.create: /payload: expected object, found string"
    );
    let out = run(
        "runfleet",
        &["validate", &example("valid/command.create/turn.json")],
        &[],
    );
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), "valid command.create");
}

#[tokio::test]
async fn publish_is_deduplicated_by_idempotency_key() {
    let nats = TestNats::start().await.unwrap();
    let js = jetstream::new(nats.client().await.unwrap());
    let mut work = js
        .create_stream(stream::Config {
            name: "WORK".into(),
            subjects: vec!["runfleet.run.>".into(), "runfleet.cmd.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let env = [("NATS_URL", nats.url())];
    let file = example("valid/command.create/turn.json");

    let first = run("runfleet", &["publish", "--json", &file], &env);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(first["duplicate"], false);

    let again = run("runfleet", &["publish", &file], &env);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stdout).starts_with("already accepted: command.create"));

    let info = work.info().await.unwrap();
    assert_eq!(info.state.messages, 1);
    let stored = work
        .get_last_raw_message_by_subject("runfleet.cmd.acme.fix-login-bug-42")
        .await
        .unwrap();
    let msg_id = stored
        .headers
        .get("Nats-Msg-Id")
        .unwrap()
        .as_str()
        .to_owned();
    assert_eq!(
        runfleet_schemas::headers::idempotency_key_of(&msg_id),
        "cmd:fix-login-bug-42:1"
    );
    assert_eq!(
        msg_id,
        runfleet_schemas::headers::producer_msg_id("cmd:fix-login-bug-42:1", &stored.payload)
    );
    assert_eq!(
        stored.headers.get("Runfleet-Schema").unwrap().as_str(),
        "command.create"
    );

    let invalid = run(
        "runfleet",
        &["publish", &example("invalid/command.create/seq-zero.json")],
        &env,
    );
    assert_eq!(invalid.status.code(), Some(2));
    assert!(text(&invalid.stderr).contains("/seq: must be at least 1"));
    assert_eq!(
        work.info().await.unwrap().state.messages,
        1,
        "nothing invalid was published"
    );
}
