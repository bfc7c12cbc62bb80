//! What the modes share: servers, workers at their defaults, publishing
//! commands, reading the backlog.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use runfleet_producer::{Producer, new_command, new_run};
use runfleet_schemas::{CommandCreate, CommandKind, RunCreate};
use runfleet_tests::{TestDb, TestNats, TestWorker, WorkerEnv};

/// PubAcks in flight while publishing.
pub const IN_FLIGHT: usize = 256;

/// Prints which PostgreSQL the bench uses and whether it syncs.
pub async fn describe_postgres() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let (pg, _driver) = db.connect().await?;
    let fsync: String = pg.query_one("SHOW fsync", &[]).await?.get(0);
    let sync_commit: String = pg.query_one("SHOW synchronous_commit", &[]).await?.get(0);
    println!(
        "PostgreSQL: fsync={fsync}, synchronous_commit={sync_commit} ({})",
        if std::env::var_os("DATABASE_URL").is_some() {
            "DATABASE_URL"
        } else {
            "ephemeral test cluster"
        }
    );
    Ok(())
}

/// Worker settings: the connection URLs and nothing else (the defaults are the product).
pub fn default_env(nats: &TestNats, db: &TestDb) -> WorkerEnv {
    let mut vars = vec![
        ("NATS_URL".to_owned(), nats.url().to_owned()),
        ("DATABASE_URL".to_owned(), db.url().to_owned()),
        (
            "RUST_LOG".to_owned(),
            std::env::var("BENCH_WORKER_LOG")
                .unwrap_or_else(|_| "warn,runfleet_worker::worker=info".into()),
        ),
    ];
    // Diagnostics only: extra worker settings, `NAME=value,NAME=value`.
    if let Ok(extra) = std::env::var("BENCH_WORKER_ENV") {
        vars.extend(extra.split(',').filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        }));
    }
    WorkerEnv { vars }
}

/// Creates the streams, consumer and schema (`runfleet-worker setup`).
pub fn setup(env: &WorkerEnv) -> anyhow::Result<()> {
    let program = runfleet_tests::binary("runfleet-worker")?;
    let status = std::process::Command::new(program)
        .arg("setup")
        .envs(env.vars.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "runfleet-worker setup failed: {status}");
    Ok(())
}

/// Starts `n` workers and waits until each has started.
pub async fn start_workers(
    env: &WorkerEnv,
    n: usize,
    name: &str,
) -> anyhow::Result<Vec<TestWorker>> {
    let mut workers = Vec::with_capacity(n);
    for i in 0..n {
        workers.push(TestWorker::start(env, &format!("{name}-{i}"))?);
    }
    for worker in &mut workers {
        worker.wait_ready(Duration::from_secs(120)).await?;
    }
    Ok(workers)
}

/// Stops workers gracefully (keeping their logs in `BENCH_KEEP_LOGS=DIR`, for diagnostics).
pub async fn stop_workers(workers: &mut [TestWorker]) {
    if let Ok(dir) = std::env::var("BENCH_KEEP_LOGS") {
        for worker in workers.iter() {
            let _ = std::fs::write(format!("{dir}/{}.log", worker.id()), worker.log_text());
        }
    }
    for worker in workers.iter() {
        worker.signal("TERM");
    }
    for worker in workers.iter_mut() {
        worker.wait_exit(Duration::from_secs(30)).await;
    }
}

/// `runs` runs of tenant `tenant` (echo) and `commands` commands over them,
/// seq-major (seq 1 of every run, then seq 2, …).
pub fn workload(
    tenant: &str,
    runs: usize,
    commands: usize,
) -> anyhow::Result<(Vec<RunCreate>, Vec<CommandCreate>)> {
    let runs: Vec<_> = (0..runs.max(1))
        .map(|_| new_run(tenant, "bench", "echo"))
        .collect::<Result<_, _>>()?;
    let per_run = commands.div_ceil(runs.len());
    let mut list = Vec::with_capacity(commands);
    'seqs: for seq in 1..=per_run as u64 {
        for run in &runs {
            if list.len() == commands {
                break 'seqs;
            }
            list.push(new_command(
                &run.tenant,
                &run.run_id,
                seq,
                CommandKind::Turn,
                payload(),
            ));
        }
    }
    Ok((runs, list))
}

/// The benchmark's payload: about 100 bytes of JSON, like the peers' jobs.
pub fn payload() -> serde_json::Map<String, serde_json::Value> {
    serde_json::json!({"text": "bench", "pad": "x".repeat(60)})
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// Publishes the runs, then the commands, with [`IN_FLIGHT`] PubAcks in flight.
pub async fn publish(
    producer: &Producer,
    runs: &[RunCreate],
    commands: &[CommandCreate],
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    in_flight(runs.iter().map(|run| producer.create_run(run))).await?;
    in_flight(
        commands
            .iter()
            .map(|command| producer.send_command(command)),
    )
    .await?;
    Ok(started.elapsed())
}

/// Awaits `futures` with at most [`IN_FLIGHT`] of them pending at once; the first error ends it.
async fn in_flight<T, E: Into<anyhow::Error>>(
    futures: impl Iterator<Item = impl std::future::Future<Output = Result<T, E>>>,
) -> anyhow::Result<()> {
    let mut pending = FuturesUnordered::new();
    for future in futures {
        pending.push(future);
        if pending.len() >= IN_FLIGHT {
            pending.next().await.transpose().map_err(Into::into)?;
        }
    }
    while pending
        .next()
        .await
        .transpose()
        .map_err(Into::into)?
        .is_some()
    {}
    Ok(())
}

/// Fresh servers, the streams and schema, and a backlog published with no
/// worker running: what `drain`, `replay` and `overload` start from.
pub struct Backlog {
    pub nats: TestNats,
    pub db: TestDb,
    /// Worker settings at their defaults.
    pub env: WorkerEnv,
    pub js: jetstream::Context,
    pub runs: Vec<RunCreate>,
    pub commands: Vec<CommandCreate>,
    /// How long publishing took.
    pub published: Duration,
}

impl Backlog {
    /// `commands` echo commands of `tenant` over `runs` runs ([`workload`]), published.
    pub async fn publish(tenant: &str, runs: usize, commands: usize) -> anyhow::Result<Backlog> {
        let nats = TestNats::start().await?;
        let db = TestDb::create().await?;
        let env = default_env(&nats, &db);
        setup(&env)?;
        let producer = Producer::connect(nats.url()).await?;
        let (runs, commands) = workload(tenant, runs, commands)?;
        let published = publish(&producer, &runs, &commands).await?;
        Ok(Backlog {
            js: producer.jetstream().clone(),
            nats,
            db,
            env,
            runs,
            commands,
            published,
        })
    }
}

/// Receipted commands of `tenant`'s runs so far (each run's `next_seq - 1`).
pub async fn receipted(pg: &tokio_postgres::Client, tenant: &str) -> anyhow::Result<i64> {
    Ok(pg
        .query_one(
            "SELECT coalesce(sum(next_seq - 1), 0)::bigint FROM runs WHERE tenant = $1",
            &[&tenant],
        )
        .await?
        .get(0))
}

/// The work consumer's backlog: (pending, waiting for an ack).
pub async fn backlog(js: &jetstream::Context) -> anyhow::Result<(u64, usize)> {
    runfleet_tests::work_backlog(js)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Waits until the work consumer is empty (nothing pending, nothing unacked); how long it took.
pub async fn until_consumer_empty(
    js: &jetstream::Context,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let (pending, unacked) = backlog(js).await?;
        if pending == 0 && unacked == 0 {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            started.elapsed() < limit,
            "the work consumer still holds {pending} pending and {unacked} unacked messages"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A worker's resident set: (now, peak) in KiB, from `/proc`.
pub fn rss_kib(worker: &TestWorker) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", worker.pid()?)).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
