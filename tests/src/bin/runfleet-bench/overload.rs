//! `overload`: a backlog far larger than the fleet — 500,000 commands by
//! default — drained by 3 workers at their default settings, sampled every
//! 250 ms against the bounds those settings promise:
//!
//! | sampled | bound (defaults) |
//! |---|---|
//! | each worker's RSS | flat: the second half's peak within 10 % (+ 8 MiB) of the first half's, and under [`RSS_BOUND_MIB`] |
//! | the work consumer's unacknowledged messages | `max_ack_pending` (4,096) |
//! | each worker's in-flight commands (`runfleet_in_flight_commands`) | `concurrency` (512) |
//! | PostgreSQL connections to the fleet's database | workers × (`pg_pool` 8 + `group_commits` 2) |
//!
//! The workers get one setting beyond the connection URLs:
//! `RUNFLEET_HTTP_ADDR`, so their in-flight gauge can be read (observing, not
//! tuning). The mode fails when a bound is exceeded.

use std::time::{Duration, Instant};

use runfleet_tests::TestWorker;

use crate::Args;
use crate::fleet::{self, Backlog, receipted, rss_kib, stop_workers};

/// The tenant of the backlog.
const TENANT: &str = "overload";
/// The defaults the bounds come from (`runfleet-worker --help`).
const MAX_ACK_PENDING: usize = 4096;
const CONCURRENCY: i64 = 512;
const CONNECTIONS_PER_WORKER: i64 = 8 + 2;
/// A worker's RSS must stay under this whatever the backlog (it holds at
/// most `concurrency` commands; the `rss` mode measures ~60 MiB at 1,000).
const RSS_BOUND_MIB: f64 = 256.0;
/// How often the bounds are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// The largest values seen, and RSS per half of the drain.
#[derive(Debug, Default)]
struct Peaks {
    unacked: usize,
    in_flight: i64,
    connections: i64,
    /// Per worker: (peak RSS KiB in the first half, in the second half).
    rss_kib: Vec<(u64, u64)>,
    samples: usize,
}

/// Publishes `args.overload_commands` commands, drains them with
/// `args.overload_workers` workers and prints the peaks against their bounds.
pub async fn measure(args: &Args) -> anyhow::Result<()> {
    let workers = args.overload_workers;
    let Backlog {
        db,
        env,
        js,
        runs,
        commands,
        published,
        nats: _nats,
    } = Backlog::publish(TENANT, args.runs, args.overload_commands).await?;
    println!(
        "overload backlog={} runs={} published_in_s={:.1}",
        commands.len(),
        runs.len(),
        published.as_secs_f64()
    );
    let (pg, _driver) = db.connect().await?;
    let database: String = pg.query_one("SELECT current_database()", &[]).await?.get(0);

    let mut fleet = Vec::with_capacity(workers);
    let ports = runfleet_tests::free_ports(workers)?;
    for (i, port) in ports.iter().enumerate() {
        let env = env
            .clone()
            .with("RUNFLEET_HTTP_ADDR", format!("127.0.0.1:{port}"));
        fleet.push(TestWorker::start(&env, &format!("overload-{i}"))?);
    }
    for worker in &mut fleet {
        worker.wait_ready(Duration::from_secs(120)).await?;
    }

    let total = i64::try_from(commands.len())?;
    let started = Instant::now();
    let mut samples: Vec<(Duration, Vec<u64>)> = Vec::new();
    let mut peaks = Peaks::default();
    loop {
        let (pending, unacked) = fleet::backlog(&js).await?;
        peaks.unacked = peaks.unacked.max(unacked);
        for port in &ports {
            if let Some(in_flight) = in_flight(*port).await {
                peaks.in_flight = peaks.in_flight.max(in_flight);
            }
        }
        let connections: i64 = pg
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&database],
            )
            .await?
            .get(0);
        peaks.connections = peaks.connections.max(connections);
        // A worker that exited has no resident set (a zombie reports none).
        let mut rss = Vec::with_capacity(workers);
        for worker in &fleet {
            let Some((now, _)) = rss_kib(worker) else {
                anyhow::bail!("worker {} exited during the drain", worker.id());
            };
            rss.push(now);
        }
        samples.push((started.elapsed(), rss));
        peaks.samples += 1;
        if pending == 0 && unacked == 0 && receipted(&pg, TENANT).await? >= total {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "the backlog did not drain in 30 minutes ({} of {total})",
            receipted(&pg, TENANT).await?
        );
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    let took = started.elapsed();
    stop_workers(&mut fleet).await;

    peaks.rss_kib = halves(&samples, took, workers);
    report(&peaks, workers, commands.len(), took)
}

/// Per worker, its peak RSS in the first and in the second half of the drain.
fn halves(samples: &[(Duration, Vec<u64>)], took: Duration, workers: usize) -> Vec<(u64, u64)> {
    let mut halves = vec![(0, 0); workers];
    for (at, rss) in samples {
        for (worker, kib) in rss.iter().enumerate() {
            let half = &mut halves[worker];
            if *at < took / 2 {
                half.0 = half.0.max(*kib);
            } else {
                half.1 = half.1.max(*kib);
            }
        }
    }
    halves
}

/// Prints the figures; fails when one exceeds its bound.
fn report(peaks: &Peaks, workers: usize, commands: usize, took: Duration) -> anyhow::Result<()> {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let connection_bound = i64::try_from(workers)? * CONNECTIONS_PER_WORKER;
    let rss: Vec<String> = peaks
        .rss_kib
        .iter()
        .map(|(first, second)| format!("{:.1}/{:.1}", mib(*first), mib(*second)))
        .collect();
    println!(
        "overload workers={workers} commands={commands} drain_per_s={:.0} seconds={:.1} samples={} \
         peak_unacked={} (bound {MAX_ACK_PENDING}) peak_in_flight_per_worker={} (bound {CONCURRENCY}) \
         peak_pg_connections={} (bound {connection_bound}) rss_mib_first_half/second_half=[{}] (bound {RSS_BOUND_MIB})",
        commands as f64 / took.as_secs_f64(),
        took.as_secs_f64(),
        peaks.samples,
        peaks.unacked,
        peaks.in_flight,
        peaks.connections,
        rss.join(" ")
    );
    anyhow::ensure!(
        peaks.unacked <= MAX_ACK_PENDING,
        "unacknowledged messages exceeded max_ack_pending"
    );
    anyhow::ensure!(
        peaks.in_flight <= CONCURRENCY,
        "a worker held more than its concurrency"
    );
    anyhow::ensure!(
        peaks.connections <= connection_bound,
        "PostgreSQL connections exceeded the pools"
    );
    for (first, second) in &peaks.rss_kib {
        anyhow::ensure!(
            mib(*second) <= mib(*first) * 1.1 + 8.0,
            "a worker's RSS grew during the drain: {:.1} MiB then {:.1} MiB",
            mib(*first),
            mib(*second)
        );
        anyhow::ensure!(
            mib(*first.max(second)) <= RSS_BOUND_MIB,
            "a worker's RSS passed {RSS_BOUND_MIB} MiB"
        );
    }
    Ok(())
}

/// A worker's `runfleet_in_flight_commands`, from its `/metrics`.
async fn in_flight(port: u16) -> Option<i64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    response.lines().find_map(|line| {
        line.strip_prefix("runfleet_in_flight_commands ")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as i64)
    })
}
