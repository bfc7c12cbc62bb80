//! Helpers shared by the end-to-end tests: a stack (NATS + database), a
//! producer, and questions asked of the journal.

#![allow(dead_code)]

pub mod tenant_nats;

use std::time::{Duration, Instant};

use runfleet_producer::{Producer, new_command, new_run};
use runfleet_schemas::{CommandCreate, CommandKind, RunCreate};
use runfleet_tests::{TestDb, TestNats, TestWorker, WorkerEnv};
// Used by some of the test binaries that include this module.
#[allow(unused_imports)]
pub use runfleet_tests::{profile, program, tail};
use serde_json::{Map, Value, json};

/// A NATS server, a database, and the environment workers get.
pub struct Stack {
    pub nats: TestNats,
    pub db: TestDb,
    pub env: WorkerEnv,
    pub pg: tokio_postgres::Client,
    _driver: tokio::task::JoinHandle<()>,
}

impl Stack {
    pub async fn start() -> Stack {
        let nats = TestNats::start().await.unwrap();
        let db = TestDb::create().await.unwrap();
        let env = WorkerEnv::new(nats.url(), db.url());
        let (pg, driver) = db.connect().await.unwrap();
        Stack {
            nats,
            db,
            env,
            pg,
            _driver: driver,
        }
    }

    /// Starts `count` workers named `w1..` and waits until each is ready.
    pub async fn workers(&self, env: &WorkerEnv, count: usize) -> Vec<TestWorker> {
        let mut workers = Vec::new();
        for i in 1..=count {
            workers.push(worker(env, &format!("w{i}")).await);
        }
        workers
    }

    /// Creates the streams, consumers and schema (`runfleet-worker setup`),
    /// so work can be queued before any worker runs.
    pub fn setup(&self, env: &WorkerEnv) {
        runfleet_tests::setup(env).unwrap();
    }

    /// Worker settings whose `echo` backend records every execution in a
    /// fresh effects file (kept alive by the returned handle).
    pub fn counting_effects(&self) -> (WorkerEnv, tempfile::NamedTempFile) {
        let effects = tempfile::NamedTempFile::new().unwrap();
        let env = self.env.clone().with(
            "RUNFLEET_ECHO_EFFECTS_FILE",
            effects.path().display().to_string(),
        );
        (env, effects)
    }

    pub async fn producer(&self) -> Producer {
        Producer::connect(self.nats.url()).await.unwrap()
    }

    /// Receipts in the journal.
    pub async fn receipt_count(&self) -> i64 {
        self.pg
            .query_one("SELECT count(*) FROM journal WHERE step = 'receipt'", &[])
            .await
            .unwrap()
            .get(0)
    }

    /// Waits until the journal holds `expected` receipts; panics with the workers' logs otherwise.
    pub async fn wait_for_receipts(
        &self,
        expected: i64,
        timeout: Duration,
        workers: &[TestWorker],
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.receipt_count().await;
            if count >= expected {
                return;
            }
            if Instant::now() > deadline {
                for w in workers {
                    eprintln!("---- log of {} ----\n{}", w.id(), tail(&w.log_text(), 60));
                }
                panic!("only {count} of {expected} receipts after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every receipt completed, on its first delivery; nothing
    /// dead-lettered; nothing left waiting on a limit or a fair turn.
    pub async fn assert_all_completed_on_first_delivery(&self) {
        let row = self
            .pg
            .query_one(
                "SELECT count(*) FILTER (WHERE status <> 'completed'), \
                        count(*) FILTER (WHERE (result ->> 'attempt')::int <> 1), \
                        (SELECT count(*) FROM limited_commands) \
                   FROM journal WHERE step = 'receipt'",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 0, "receipts not completed");
        assert_eq!(row.get::<_, i64>(1), 0, "receipts of a redelivery");
        assert_eq!(row.get::<_, i64>(2), 0, "limited commands left behind");
        assert!(self.dead_letters().await.is_empty());
    }

    /// The stored receipt of a command.
    pub async fn receipt(&self, command: &CommandCreate) -> Option<Value> {
        self.pg
            .query_opt(
                "SELECT result FROM journal WHERE tenant = $1 AND run_id = $2 AND command_id = $3 AND step = 'receipt'",
                &[&command.tenant.as_str(), &command.run_id.as_str(), &command.command_id.as_str()],
            )
            .await
            .unwrap()
            .map(|row| row.get(0))
    }

    /// Waits until a command is executing (by `worker`, when given).
    pub async fn wait_until_running(&self, worker: Option<&str>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let running: i64 = self
                .pg
                .query_one(
                    "SELECT count(*) FROM commands WHERE status = 'running' \
                     AND ($1::text IS NULL OR worker_id = $1)",
                    &[&worker],
                )
                .await
                .unwrap()
                .get(0);
            if running > 0 {
                return;
            }
            assert!(Instant::now() < deadline, "no command started ({worker:?})");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until there are at least `count` dead letters, then returns them all.
    pub async fn wait_for_dead_letters(&self, count: usize) -> Vec<(String, String, String)> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let dead = self.dead_letters().await;
            if dead.len() >= count || Instant::now() > deadline {
                return dead;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every work message has been acked (the work queue is empty).
    pub async fn wait_until_work_stream_is_empty(&self) {
        let js = async_nats::jetstream::new(self.nats.client().await.unwrap());
        let mut stream = js
            .get_stream(runfleet_schemas::subjects::WORK_STREAM)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while stream.info().await.unwrap().state.messages > 0 {
            assert!(Instant::now() < deadline, "work stream never drained");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `(reason, message, subject)` of every dead letter, oldest first.
    pub async fn dead_letters(&self) -> Vec<(String, String, String)> {
        self.pg
            .query(
                "SELECT reason, message->>'message', subject FROM dead_letters ORDER BY created_at",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }
}

pub async fn worker(env: &WorkerEnv, id: &str) -> TestWorker {
    let mut worker = TestWorker::start(env, id).unwrap();
    worker.wait_ready(Duration::from_secs(60)).await.unwrap();
    worker
}

pub fn payload(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// A run of `commands` echo turns (not yet published).
pub fn run_with_commands(
    commands: u64,
    payload_of: impl Fn(u64) -> Value,
) -> (RunCreate, Vec<CommandCreate>) {
    let run = new_run("acme", "tests", "echo").unwrap();
    let cmds = (1..=commands)
        .map(|seq| {
            new_command(
                &run.tenant,
                &run.run_id,
                seq,
                CommandKind::Turn,
                payload(payload_of(seq)),
            )
        })
        .collect();
    (run, cmds)
}

pub fn text_payload(seq: u64) -> Value {
    json!({ "text": format!("turn {seq}") })
}

pub use runfleet_tests::Effect;

/// The seqs of `run_id`'s effects, in the order they happened.
pub fn seqs_of(effects: &[Effect], run_id: &str) -> Vec<u64> {
    effects
        .iter()
        .filter(|e| e.run_id == run_id)
        .map(|e| e.seq)
        .collect()
}

/// Every execution in the effects file at `path`; panics on a line that
/// does not parse.
pub fn effects(path: &std::path::Path) -> Vec<Effect> {
    runfleet_tests::read_effects(path)
        .expect("the effects file is readable")
        .into_iter()
        .map(|e| e.expect("every effects line has six fields"))
        .collect()
}

/// Creates a run and sends it one `turn` (seq 1) with `body` as payload.
pub async fn run_one(producer: &Producer, body: Value) -> CommandCreate {
    let run = new_run("acme", "tests", "echo").unwrap();
    producer.create_run(&run).await.unwrap();
    let command = turn(&run, 1, body);
    producer.send_command(&command).await.unwrap();
    command
}

/// A `turn` of `run` at `seq` with `body` as payload.
pub fn turn(run: &RunCreate, seq: u64, body: Value) -> CommandCreate {
    new_command(
        &run.tenant,
        &run.run_id,
        seq,
        CommandKind::Turn,
        payload(body),
    )
}

/// A plain HTTP/1.1 GET on 127.0.0.1: the status and the body.
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    http_request(port, "GET", path, &[], "").await
}

/// A plain HTTP/1.1 request on 127.0.0.1 with extra headers and a body:
/// the status and the body.
pub async fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Worker settings serving the given profiles (a config file kept alive by the handle).
pub fn with_profiles(env: &WorkerEnv, tables: &[String]) -> (WorkerEnv, tempfile::NamedTempFile) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), tables.join("\n")).unwrap();
    let env = env
        .clone()
        .with("RUNFLEET_CONFIG", file.path().display().to_string());
    (env, file)
}
