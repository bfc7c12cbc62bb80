//! Execution against real servers, real worker processes and real programs:
//! the `process` backend and its line protocol, misbehaving programs,
//! watchdogs, cancellation, journaled steps across a crash, redaction,
//! sessions, budgets, resource bundles and profile routing.

mod common;

use std::time::{Duration, Instant};

use common::{Stack, payload, profile, tail, turn, with_profiles, worker};
use runfleet_producer::{Producer, new_cancel, new_command, new_run};
use runfleet_schemas::{CommandCreate, CommandKind, ResourceBundle, RunCreate, SessionId};
use runfleet_tests::TestWorker;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

fn run_for(profile: &str) -> RunCreate {
    new_run("acme", "tests", profile).unwrap()
}

/// Creates a run of `profile` and sends it one turn.
async fn one(producer: &Producer, profile: &str, body: Value) -> CommandCreate {
    let run = run_for(profile);
    producer.create_run(&run).await.unwrap();
    let command = turn(&run, 1, body);
    producer.send_command(&command).await.unwrap();
    command
}

/// Waits for a command's stored receipt; panics with the workers' logs.
async fn receipt_of(stack: &Stack, command: &CommandCreate, workers: &[&TestWorker]) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(receipt) = stack.receipt(command).await {
            return receipt;
        }
        if Instant::now() > deadline {
            for w in workers {
                eprintln!("---- log of {} ----\n{}", w.id(), tail(&w.log_text(), 80));
            }
            panic!(
                "no receipt for command {} (seq {})",
                command.command_id, command.seq
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The event bodies of a command, in order.
async fn events_of(stack: &Stack, command: &CommandCreate) -> Vec<Value> {
    stack
        .pg
        .query(
            "SELECT event->'body' FROM events WHERE tenant = $1 AND run_id = $2 AND command_id = $3 ORDER BY seq",
            &[&command.tenant.as_str(), &command.run_id.as_str(), &command.command_id.as_str()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn failure(receipt: &Value) -> (&str, &str) {
    (
        receipt["failure"]["kind"].as_str().unwrap_or_default(),
        receipt["failure"]["message"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_process_backend_runs_the_example_program() {
    let stack = Stack::start().await;
    let bundle = tempfile::tempdir().unwrap();
    std::fs::write(bundle.path().join("README.txt"), "from the bundle").unwrap();
    let (env, _config) = with_profiles(
        &stack.env,
        &[
            profile("agent", "agent.py", ""),
            profile("env", "env_dump.py", "env = [\"LANG\"]"),
        ],
    );
    let env = env
        .with("LANG", "C.UTF-8")
        .with("NOT_ALLOWED", "should-not-pass");
    let w = worker(&env, "w1").await;
    let producer = stack.producer().await;

    let agent = one(&producer, "agent", json!({"text": "hello", "steps": 2})).await;
    let mut run = run_for("env");
    run.resource_bundle = Some(ResourceBundle::Directory {
        path: bundle.path().display().to_string(),
    });
    producer.create_run(&run).await.unwrap();
    let dump = turn(&run, 1, json!({}));
    producer.send_command(&dump).await.unwrap();

    let receipt = receipt_of(&stack, &agent, &[&w]).await;
    assert_eq!(receipt["status"], "completed", "{receipt}");
    assert_eq!(receipt["output"]["text"], "hello");
    assert_eq!(receipt["output"]["steps"], json!([{"n": 1}, {"n": 2}]));
    let kinds: Vec<String> = events_of(&stack, &agent)
        .await
        .iter()
        .map(|e| match e["kind"].as_str().unwrap() {
            "step" => format!(
                "step {} {}",
                e["name"].as_str().unwrap(),
                e["status"].as_str().unwrap()
            ),
            "progress" => format!("progress {}/{}", e["done"], e["total"]),
            other => other.to_owned(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "backend_status",
            "phase",
            "assistant_message",
            "step step-1 started",
            "step step-1 completed",
            "progress 1/2",
            "step step-2 started",
            "step step-2 completed",
            "progress 2/2",
            "terminal_status"
        ],
    );

    let receipt = receipt_of(&stack, &dump, &[&w]).await;
    assert_eq!(receipt["status"], "completed", "{receipt}");
    let env_seen = receipt["output"]["env"].as_object().unwrap();
    let mut names: Vec<&str> = env_seen.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "LANG",
            "RUNFLEET_PROFILE",
            "RUNFLEET_PROJECT",
            "RUNFLEET_PROTOCOL",
            "RUNFLEET_RUN_ID",
            "RUNFLEET_TENANT",
            "RUNFLEET_WORKDIR"
        ],
        "only the allowlist and the run's variables"
    );
    let cwd = receipt["output"]["cwd"].as_str().unwrap();
    assert!(cwd.ends_with(&format!("/acme/{}", run.run_id)), "{cwd}");
    assert_eq!(env_seen["RUNFLEET_WORKDIR"], cwd);
    assert_eq!(
        receipt["output"]["files"],
        json!([".runfleet-bundle", "README.txt"])
    );
}

#[tokio::test]
async fn misbehaving_programs_end_with_the_right_failure() {
    let stack = Stack::start().await;
    let (env, _config) = with_profiles(
        &stack.env,
        &[
            profile("invalid", "invalid_json.py", ""),
            profile("midline", "exits_mid_line.py", ""),
            profile("code", "exit_code.py", ""),
            profile(
                "silent",
                "never_reads_stdin.py",
                "inactivity_timeout = \"2s\"",
            ),
            profile("flood", "floods_stdout.py", ""),
            profile(
                "slow",
                "ignores_sigterm.py",
                "max_duration = \"2s\"\nkill_grace = \"1s\"",
            ),
            profile("bundled", "env_dump.py", ""),
            profile("bytes", "prints_invalid_utf8.py", ""),
        ],
    );
    let w = worker(&env, "w1").await;
    let producer = stack.producer().await;

    let invalid = one(&producer, "invalid", json!({})).await;
    let midline = one(&producer, "midline", json!({})).await;
    let exit3 = one(
        &producer,
        "code",
        json!({"code": 3, "stderr": "boom on stderr"}),
    )
    .await;
    let segv = one(&producer, "code", json!({"signal": "SIGSEGV"})).await;
    let silent = one(&producer, "silent", json!({})).await;
    let flood = one(&producer, "flood", json!({"lines": 50000})).await;
    let slow = one(&producer, "slow", json!({})).await;
    let bytes = one(&producer, "bytes", json!({})).await;
    let mut run = run_for("bundled");
    run.resource_bundle = Some(ResourceBundle::Directory {
        path: "/does/not/exist".into(),
    });
    producer.create_run(&run).await.unwrap();
    let no_bundle = turn(&run, 1, json!({}));
    producer.send_command(&no_bundle).await.unwrap();

    let r = receipt_of(&stack, &invalid, &[&w]).await;
    let (kind, message) = failure(&r);
    assert_eq!(kind, "backend-failed", "{r}");
    assert!(
        message.contains("exited 0 without a result line"),
        "{message}"
    );
    assert!(
        message.contains("its last stdout line was"),
        "names the last line: {message}"
    );

    let r = receipt_of(&stack, &midline, &[&w]).await;
    let (kind, message) = failure(&r);
    assert_eq!(kind, "backend-failed", "{r}");
    assert!(
        message.contains(r#"{\"type\":\"result\",\"outp"#),
        "{message}"
    );

    let r = receipt_of(&stack, &exit3, &[&w]).await;
    let (kind, message) = failure(&r);
    assert_eq!(kind, "backend-failed", "{r}");
    assert!(
        message.contains("exited with status 3") && message.contains("boom on stderr"),
        "{message}"
    );
    let stderr: Vec<Value> = events_of(&stack, &exit3)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "command_output" && e["stream"] == "stderr")
        .collect();
    assert_eq!(stderr.len(), 1, "the stderr tail is one event");

    let r = receipt_of(&stack, &segv, &[&w]).await;
    assert!(failure(&r).1.contains("killed by SIGSEGV"), "{r}");

    let r = receipt_of(&stack, &silent, &[&w]).await;
    let (kind, message) = failure(&r);
    assert_eq!(
        (r["status"].as_str().unwrap(), kind),
        ("timed-out", "inactivity-timeout"),
        "{r}"
    );
    assert!(
        message.contains("no event or output for 2s in phase \"waiting\""),
        "{message}"
    );
    assert!(message.contains("last event: phase waiting"), "{message}");

    let r = receipt_of(&stack, &flood, &[&w]).await;
    assert_eq!(r["status"], "completed", "{r}");
    let events = events_of(&stack, &flood).await;
    assert!(events.len() <= 5_003, "events are capped: {}", events.len());
    assert!(
        events.iter().any(|e| e["kind"] == "error"
            && e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("further events were dropped")),
        "the cap is recorded"
    );

    let r = receipt_of(&stack, &slow, &[&w]).await;
    let (kind, message) = failure(&r);
    assert_eq!(kind, "max-duration", "{r}");
    assert!(message.contains("in phase \"stubborn\""), "{message}");

    // Bytes that are not UTF-8 are output, not the end of stdout.
    let r = receipt_of(&stack, &bytes, &[&w]).await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["output"], json!({"ok": true}), "{r}");
    assert!(
        events_of(&stack, &bytes)
            .await
            .iter()
            .any(|e| e["kind"] == "command_output" && e["text"] == "caf\u{fffd} \u{fffd}\u{fffd}"),
        "the line is recorded lossily"
    );

    let r = receipt_of(&stack, &no_bundle, &[&w]).await;
    let (kind, message) = failure(&r);
    assert_eq!(kind, "workspace-failed", "{r}");
    assert!(message.contains("/does/not/exist"), "{message}");
    assert!(
        events_of(&stack, &no_bundle)
            .await
            .iter()
            .any(|e| e["kind"] == "error"),
        "an error event says so"
    );
}

#[tokio::test]
async fn cancelling_stops_a_running_command_and_its_run() {
    let stack = Stack::start().await;
    let effects = tempfile::NamedTempFile::new().unwrap();
    let (env, _config) = with_profiles(
        &stack.env,
        &[
            profile("stubborn", "ignores_sigterm.py", "kill_grace = \"1s\""),
            profile("agent", "agent.py", ""),
        ],
    );
    let w = worker(&env, "w1").await;
    let producer = stack.producer().await;

    // A program that ignores SIGTERM is killed after the grace.
    let stubborn = one(&producer, "stubborn", json!({})).await;
    stack.wait_until_running(None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    producer
        .publish(&new_cancel(
            &stubborn.tenant,
            &stubborn.run_id,
            Some(stubborn.command_id.clone()),
            Some("enough".into()),
        ))
        .await
        .unwrap();
    let r = receipt_of(&stack, &stubborn, &[&w]).await;
    let took = asked.elapsed();
    assert_eq!(
        (r["status"].as_str().unwrap(), failure(&r).0),
        ("cancelled", "cancelled"),
        "{r}"
    );
    assert!(
        took < Duration::from_secs(5),
        "cancelled in {took:?} (1s grace)"
    );
    assert!(
        w.log_text().contains("ignored SIGTERM; sending SIGKILL"),
        "SIGKILL after the grace"
    );

    // A run: its running command stops, a later command never runs, the run is cancelled.
    let run = run_for("agent");
    producer.create_run(&run).await.unwrap();
    let steps = |seq| {
        turn(
            &run,
            seq,
            json!({"steps": 50, "step_sleep_ms": 200, "effects_file": effects.path()}),
        )
    };
    let (first, second) = (steps(1), steps(2));
    producer.send_command(&first).await.unwrap();
    producer.send_command(&second).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while std::fs::read_to_string(effects.path())
        .unwrap_or_default()
        .lines()
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "the first command never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    producer
        .publish(&new_cancel(
            &run.tenant,
            &run.run_id,
            None,
            Some("user gave up".into()),
        ))
        .await
        .unwrap();
    let r1 = receipt_of(&stack, &first, &[&w]).await;
    let r2 = receipt_of(&stack, &second, &[&w]).await;
    assert_eq!(r1["status"], "cancelled", "{r1}");
    assert_eq!(r2["status"], "cancelled", "{r2}");
    assert!(failure(&r2).1.contains("never ran"), "{r2}");
    let third = turn(&run, 3, json!({}));
    producer.send_command(&third).await.unwrap();
    assert_eq!(
        receipt_of(&stack, &third, &[&w]).await["status"],
        "cancelled"
    );
    let status: String = stack
        .pg
        .query_one(
            "SELECT status FROM runs WHERE run_id = $1",
            &[&run.run_id.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "cancelled");
    let ran = std::fs::read_to_string(effects.path()).unwrap();
    assert!(
        ran.lines().all(|l| l.contains(first.command_id.as_str())),
        "only the first command ever ran:\n{ran}"
    );

    // A command cancelled before it starts never runs; the run goes on past it.
    let run = run_for("agent");
    producer.create_run(&run).await.unwrap();
    let (a, b, c) = (
        turn(&run, 1, json!({"steps": 3, "step_sleep_ms": 300})),
        turn(&run, 2, json!({"text": "never"})),
        turn(&run, 3, json!({"text": "after"})),
    );
    producer
        .publish(&new_cancel(
            &run.tenant,
            &run.run_id,
            Some(b.command_id.clone()),
            None,
        ))
        .await
        .unwrap();
    for command in [&a, &b, &c] {
        producer.send_command(command).await.unwrap();
    }
    assert_eq!(receipt_of(&stack, &a, &[&w]).await["status"], "completed");
    let rb = receipt_of(&stack, &b, &[&w]).await;
    assert_eq!(rb["status"], "cancelled", "{rb}");
    assert!(events_of(&stack, &b).await.is_empty(), "it never ran");
    assert_eq!(receipt_of(&stack, &c, &[&w]).await["status"], "completed");
}

#[tokio::test]
async fn a_command_that_crashed_after_three_steps_resumes_at_the_fourth() {
    let stack = Stack::start().await;
    let effects = tempfile::NamedTempFile::new().unwrap();
    let (env, _config) = with_profiles(&stack.env, &[profile("agent", "agent.py", "")]);
    let mut first = worker(&env, "w1").await;
    let producer = stack.producer().await;
    let command = one(
        &producer,
        "agent",
        json!({"steps": 5, "step_sleep_ms": 400, "effects_file": effects.path()}),
    )
    .await;

    let deadline = Instant::now() + WAIT;
    loop {
        let steps: i64 = stack
            .pg
            .query_one("SELECT count(*) FROM journal WHERE step LIKE 'step:%'", &[])
            .await
            .unwrap()
            .get(0);
        if steps >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "three steps never journaled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill();
    let second = worker(&env, "w2").await;
    let receipt = receipt_of(&stack, &command, &[&second]).await;
    assert_eq!(receipt["status"], "completed", "{receipt}");
    assert!(receipt["attempt"].as_u64().unwrap() >= 2);
    assert_eq!(
        receipt["output"]["steps"],
        json!([{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}, {"n": 5}])
    );
    let ran = std::fs::read_to_string(effects.path()).unwrap();
    let times = |step: &str| {
        ran.lines()
            .filter(|l| l.split(' ').nth(2) == Some(step))
            .count()
    };
    for step in ["step-1", "step-2", "step-3"] {
        assert_eq!(
            times(step),
            1,
            "{step} was journaled before the crash:\n{ran}"
        );
    }
    for step in ["step-4", "step-5"] {
        assert!(times(step) >= 1, "{step} ran:\n{ran}");
    }
    let replayed: Vec<String> = events_of(&stack, &command)
        .await
        .iter()
        .filter(|e| e["kind"] == "step" && e["status"] == "replayed")
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(replayed, ["step-1", "step-2", "step-3"]);
}

/// Everything in the database, as text.
async fn database_text(stack: &Stack) -> String {
    let mut text = String::new();
    // Every table there is, not a list of them: a new table is searched too.
    let tables: Vec<String> = stack
        .pg
        .query(
            "SELECT quote_ident(table_name) FROM information_schema.tables \
              WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(tables.len() >= 8, "{tables:?}");
    for table in tables {
        for row in stack
            .pg
            .query(&format!("SELECT t::text FROM {table} t"), &[])
            .await
            .unwrap()
        {
            text.push_str(row.get::<_, &str>(0));
            text.push('\n');
        }
    }
    text
}

/// Every message in every stream, as text.
async fn streams_text(stack: &Stack) -> String {
    use futures::TryStreamExt;
    let client = async_nats::connect(stack.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let names: Vec<String> = js.stream_names().try_collect().await.unwrap();
    assert!(names.len() >= 5, "{names:?}");
    let mut text = String::new();
    for name in names {
        let mut stream = js.get_stream(&name).await.unwrap();
        let last = stream.info().await.unwrap().state.last_sequence;
        for seq in 1..=last {
            if let Ok(message) = stream.get_raw_message(seq).await {
                text.push_str(&String::from_utf8_lossy(&message.payload));
                for (name, values) in message.headers.iter() {
                    for value in values {
                        text.push_str(&format!(" {name}: {}", value.as_str()));
                    }
                }
                text.push('\n');
            }
        }
    }
    text
}

#[tokio::test]
async fn known_secrets_never_reach_storage_streams_or_logs() {
    const SECRET: &str = "s3cr3t-Value-7d1f9e";
    const PASSWORD: &str = "hunter2-correct-horse";
    let stack = Stack::start().await;
    let (env, _config) = with_profiles(
        &stack.env,
        &[
            profile("agent", "agent.py", "secret_env = [\"AGENT_TOKEN\"]"),
            profile(
                "code",
                "exit_code.py",
                "secret_env = [\"AGENT_TOKEN\"]\nenv = [\"DB_URL\", \"DB_SETTING\"]",
            ),
        ],
    );
    let env = env
        .with("AGENT_TOKEN", SECRET)
        .with("DB_URL", format!("postgres://app:{PASSWORD}@db/x"))
        .with("DB_SETTING", format!("DB_PASSWORD={PASSWORD}"))
        .with("RUST_LOG", "debug,async_nats=info,tokio_postgres=info");
    let w = worker(&env, "w1").await;
    let producer = stack.producer().await;

    let leaky = one(
        &producer,
        "agent",
        json!({"text": "tell me", "secret_env": "AGENT_TOKEN"}),
    )
    .await;
    // The password reaches the program through a plain (not secret) variable:
    // only the credential patterns can catch it.
    let failing = one(
        &producer,
        "code",
        json!({"code": 2, "stderr": "connecting:", "stderr_env": ["DB_URL", "AGENT_TOKEN", "DB_SETTING"]}),
    )
    .await;
    let r = receipt_of(&stack, &leaky, &[&w]).await;
    assert_eq!(r["status"], "completed", "{r}");
    assert!(
        r.to_string().contains("[REDACTED]"),
        "the output was scrubbed: {r}"
    );
    // The secret used as a key became a redacted key; its value is kept.
    assert_eq!(r["output"]["[REDACTED]"], json!({"as a key": 1}), "{r}");
    let r = receipt_of(&stack, &failing, &[&w]).await;
    assert_eq!(failure(&r).0, "backend-failed", "{r}");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let places = [
        ("PostgreSQL", database_text(&stack).await),
        ("NATS streams", streams_text(&stack).await),
        ("worker log", w.log_text()),
    ];
    for (place, text) in &places {
        assert!(!text.is_empty(), "{place} holds something");
        for secret in [SECRET, PASSWORD] {
            assert_eq!(
                text.matches(secret).count(),
                0,
                "{secret} leaked into the {place}"
            );
        }
    }
    assert!(places[0].1.contains("[REDACTED]") && places[1].1.contains("[REDACTED]"));
}

#[tokio::test]
async fn sessions_are_bound_and_budgets_stop_runs() {
    let stack = Stack::start().await;
    let (env, _config) = with_profiles(
        &stack.env,
        &[
            profile("agent", "agent.py", ""),
            "[profiles.echo]\nkind = \"echo\"\n".to_owned(),
        ],
    );
    let w = worker(&env, "w1").await;
    let producer = stack.producer().await;

    // A session is bound to its tenant, project and profile.
    let session = SessionId::new(format!("s-{}", uuid::Uuid::now_v7().simple())).unwrap();
    let mut first = run_for("agent");
    first.session_id = Some(session.clone());
    first.budgets = [("usd".to_owned(), 1.0)].into();
    producer.create_run(&first).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while stack
        .pg
        .query_opt(
            "SELECT 1 FROM runs WHERE run_id = $1",
            &[&first.run_id.as_str()],
        )
        .await
        .unwrap()
        .is_none()
    {
        assert!(Instant::now() < deadline, "the first run was never created");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut other_tenant = new_run("globex", "tests", "agent").unwrap();
    other_tenant.session_id = Some(session.clone());
    producer.create_run(&other_tenant).await.unwrap();
    let mut other_profile = run_for("echo");
    other_profile.session_id = Some(session.clone());
    producer.create_run(&other_profile).await.unwrap();
    let refused = turn(&other_tenant, 1, json!({}));
    producer.send_command(&refused).await.unwrap();
    let r = receipt_of(&stack, &refused, &[&w]).await;
    assert_eq!(failure(&r).0, "tenant-policy-denied", "{r}");
    let dead = stack.wait_for_dead_letters(2).await;
    assert_eq!(
        dead.iter()
            .filter(|d| d.0 == "tenant-policy-denied")
            .count(),
        2,
        "both runs are dead-lettered: {dead:?}"
    );
    assert!(
        dead.iter()
            .any(|d| d.1.contains("bound to backend profile agent, not echo")),
        "{dead:?}"
    );

    // Budgets: cost.usd metrics draw the budget down; exhausting it blocks the run.
    let spend = |seq, usd: f64| turn(&first, seq, json!({"text": "spend", "cost_usd": usd}));
    let (c1, c2, c3) = (spend(1, 0.4), spend(2, 0.7), spend(3, 0.1));
    for c in [&c1, &c2, &c3] {
        producer.send_command(c).await.unwrap();
    }
    let r1 = receipt_of(&stack, &c1, &[&w]).await;
    assert_eq!(r1["status"], "completed", "{r1}");
    assert!(
        (r1["budget_remaining"]["usd"].as_f64().unwrap() - 0.6).abs() < 1e-9,
        "{r1}"
    );
    let r2 = receipt_of(&stack, &c2, &[&w]).await;
    assert_eq!(failure(&r2).0, "budget-exhausted", "{r2}");
    assert!(
        r2["budget_remaining"]["usd"].as_f64().unwrap() < 0.0,
        "{r2}"
    );
    let r3 = receipt_of(&stack, &c3, &[&w]).await;
    assert_eq!(failure(&r3).0, "budget-exhausted", "{r3}");
    let run_status: String = stack
        .pg
        .query_one(
            "SELECT status FROM runs WHERE run_id = $1",
            &[&first.run_id.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(run_status, "blocked");

    // The CLI shows the session and the remaining budget.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(runfleet_tests::binary("runfleet").unwrap())
            .args(args)
            .env("NATS_URL", stack.nats.url())
            .env("RUNFLEET_TENANT", "acme")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let shown: Value =
        serde_json::from_str(&cli(&["session", "show", session.as_str(), "--json"])).unwrap();
    assert_eq!(shown["state"], "idle", "{shown}");
    assert_eq!(shown["last_run_id"], first.run_id.as_str());
    assert_eq!(shown["backend_profile"], "agent");
    assert!(shown["last_event_seq"].as_i64().unwrap() > 0, "{shown}");
    let status = cli(&["status", first.run_id.as_str()]);
    assert!(status.contains("budget remaining: usd -0.1000"), "{status}");
    let out = std::process::Command::new(runfleet_tests::binary("runfleet").unwrap())
        .args(["session", "show", session.as_str()])
        .env("NATS_URL", stack.nats.url())
        .env("RUNFLEET_TENANT", "globex")
        .output()
        .unwrap();
    assert!(!out.status.success(), "another tenant cannot see it");
}

#[tokio::test]
async fn per_run_processes_and_unserved_profiles() {
    let stack = Stack::start().await;
    let (env, _config) = with_profiles(
        &stack.env,
        &[profile("keeper", "agent.py", "mode = \"per-run\"")],
    );
    let env = env.with("RUNFLEET_SCHEDULE_TO_START", "2s");
    let w = worker(&env, "w1").await;
    let producer = stack.producer().await;

    let run = run_for("keeper");
    producer.create_run(&run).await.unwrap();
    let (a, b) = (
        turn(&run, 1, json!({"text": "one"})),
        turn(&run, 2, json!({"text": "two"})),
    );
    let close = new_command(
        &run.tenant,
        &run.run_id,
        3,
        CommandKind::Close,
        payload(json!({})),
    );
    for c in [&a, &b, &close] {
        producer.send_command(c).await.unwrap();
    }
    for c in [&a, &b, &close] {
        assert_eq!(receipt_of(&stack, c, &[&w]).await["status"], "completed");
    }
    let starts = |events: &[Value]| {
        events
            .iter()
            .filter(|e| e["kind"] == "backend_status" && e["status"] == "ready")
            .count()
    };
    assert_eq!(starts(&events_of(&stack, &a).await), 1);
    assert_eq!(
        starts(&events_of(&stack, &b).await),
        0,
        "the same process served the second command"
    );
    let closing = events_of(&stack, &close).await;
    assert!(
        closing
            .iter()
            .any(|e| e["kind"] == "backend_status" && e["status"] == "closed"),
        "{closing:?}"
    );

    // Nobody serves `echo` here: the command fails after the schedule-to-start timeout.
    let unserved = one(&producer, "echo", json!({})).await;
    let r = receipt_of(&stack, &unserved, &[&w]).await;
    assert_eq!(r["status"], "failed");
    assert_eq!(failure(&r).0, "no-backend", "{r}");

    // Illegal transitions are refused by the database.
    let err = stack
        .pg
        .execute(
            "UPDATE commands SET status = 'running' WHERE command_id = $1",
            &[&a.command_id.as_str()],
        )
        .await
        .unwrap_err();
    assert!(
        err.as_db_error()
            .unwrap()
            .message()
            .contains("illegal command transition completed -> running")
    );
}

/// Processes whose environment names the run.
fn processes_of(run_id: &str) -> Vec<String> {
    let needle = format!("RUNFLEET_RUN_ID={run_id}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let pid = entry.ok()?.file_name().into_string().ok()?;
            pid.parse::<u32>().ok()?;
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            String::from_utf8_lossy(&environ)
                .split('\0')
                .any(|var| var == needle)
                .then_some(pid)
        })
        .collect()
}

#[tokio::test]
async fn a_worker_shutting_down_stops_its_programs_and_hands_the_command_back() {
    let stack = Stack::start().await;
    let (env, _config) = with_profiles(
        &stack.env,
        &[profile("agent", "agent.py", "kill_grace = \"1s\"")],
    );
    let env = env.with("RUNFLEET_SHUTDOWN_GRACE", "1s");
    let mut first = worker(&env, "w1").await;
    let producer = stack.producer().await;
    let command = one(
        &producer,
        "agent",
        json!({"steps": 30, "step_sleep_ms": 200}),
    )
    .await;
    let deadline = Instant::now() + WAIT;
    while processes_of(command.run_id.as_str()).is_empty() {
        assert!(Instant::now() < deadline, "the program never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.signal("TERM");
    let status = first.wait_exit(Duration::from_secs(20)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        first.log_text()
    );
    assert!(
        processes_of(command.run_id.as_str()).is_empty(),
        "the program was stopped with its worker"
    );
    assert!(
        stack.receipt(&command).await.is_none(),
        "handed back, not cancelled"
    );

    let second = worker(&env, "w2").await;
    let receipt = receipt_of(&stack, &command, &[&second]).await;
    assert_eq!(receipt["status"], "completed", "{receipt}");
    assert_eq!(receipt["worker_id"], "w2");
    assert_eq!(receipt["output"]["steps"].as_array().unwrap().len(), 30);
}
