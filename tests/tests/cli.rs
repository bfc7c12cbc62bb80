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

#[tokio::test]
async fn run_create_command_send_wait_status_and_events() {
    let nats = TestNats::start().await.unwrap();
    let db = TestDb::create().await.unwrap();
    let env_vars = runfleet_tests::WorkerEnv::new(nats.url(), db.url());
    let mut worker = runfleet_tests::TestWorker::start(&env_vars, "cli-worker").unwrap();
    worker
        .wait_ready(std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let env = [("NATS_URL", nats.url()), ("RUNFLEET_TENANT", "acme")];

    let created = run("runfleet", &["run", "create", "--project", "web"], &env);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let run_id = text(&created.stdout).trim().to_owned();

    let sent = run(
        "runfleet",
        &[
            "command",
            "send",
            "--run",
            &run_id,
            "--seq",
            "1",
            "--payload",
            r#"{"text":"hello"}"#,
            "--wait",
            "--json",
        ],
        &env,
    );
    assert!(
        sent.status.success(),
        "{}\n{}",
        text(&sent.stderr),
        worker.log_text()
    );
    let receipt: serde_json::Value = serde_json::from_slice(&sent.stdout).unwrap();
    assert_eq!(receipt["status"], "completed");
    assert_eq!(receipt["output"]["echo"]["text"], "hello");

    let failing = run(
        "runfleet",
        &[
            "command",
            "send",
            "--run",
            &run_id,
            "--seq",
            "2",
            "--payload",
            r#"{"fail":"backend"}"#,
            "--wait",
        ],
        &env,
    );
    assert_eq!(failing.status.code(), Some(3), "a failed command exits 3");
    assert!(text(&failing.stdout).contains("backend-failed"));

    let bad = run(
        "runfleet",
        &[
            "command",
            "send",
            "--run",
            &run_id,
            "--seq",
            "3",
            "--payload",
            "[1]",
        ],
        &env,
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("--payload must be a JSON object"));

    let status = run("runfleet", &["status", &run_id], &env);
    let status = text(&status.stdout);
    assert!(status.contains("2 receipt(s)"), "{status}");
    assert!(
        status.contains("completed") && status.contains("backend-failed"),
        "{status}"
    );

    let events = run("runfleet", &["events", "--run", &run_id, "--json"], &env);
    let seqs: Vec<u64> = text(&events.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        seqs,
        vec![1, 2, 3],
        "assistant_message + terminal_status, then the failure's terminal_status"
    );

    let unreachable = run(
        "runfleet",
        &["status", &run_id],
        &[
            ("NATS_URL", "nats://127.0.0.1:1"),
            ("RUNFLEET_TENANT", "acme"),
        ],
    );
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(text(&unreachable.stderr).contains("cannot reach NATS at nats://127.0.0.1:1"));
}
