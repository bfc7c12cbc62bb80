//! The worker: connect, provision, register, then pull and handle work until
//! told to stop.
//!
//! # Running workers
//! Start as many `runfleet-worker run` processes as you like, anywhere: they
//! share one durable pull consumer. Each pulls only as many messages as it
//! has free execution slots (`RUNFLEET_CONCURRENCY`), because a pulled
//! message's lease clock is already running.
//!
//! # Stopping workers safely
//! On the first SIGTERM or SIGINT the worker stops pulling and lets its
//! in-flight commands finish for up to `RUNFLEET_SHUTDOWN_GRACE`; commands
//! still running then are aborted and NAKed without delay, so another worker
//! picks them up at once. A second signal exits immediately (the leases then
//! expire and the messages are redelivered after `ack_wait`).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backend::Backends;
use crate::cancels::Cancels;
use crate::config::{ConfigError, Settings};
use crate::db::{DbError, Pool};
use crate::handler::Shared;
use crate::http;
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::preflight::{self, PreflightError};
use crate::profiles::Profiles;
use crate::pulling::{drain, pull_control, pull_until_shutdown};
use crate::readiness::WorkerReadiness;
use crate::redact::Redactor;
use crate::run_log::RunLog;
use crate::setup::{self, SetupError};
use crate::tasks::TaskTree;
use crate::waiters::Waiters;
use crate::workspace::RunDirs;

/// How often the worker's registration is refreshed.
const REGISTRATION_INTERVAL: Duration = Duration::from_secs(10);
/// How long background tasks get to stop once the drain is over.
const TASKS_GRACE: Duration = Duration::from_secs(5);

/// Why the worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A dependency is unusable.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// Provisioning failed.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// PostgreSQL failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The health and metrics listener could not start.
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// `runfleet-worker setup`: streams, consumer and migrations; returns the migrations applied.
///
/// # Errors
/// [`WorkerError`].
pub async fn setup(config: &Settings) -> Result<usize, WorkerError> {
    let client = preflight::connect_nats(config).await?;
    let pool = Pool::connect(&config.database_url, 2).await?;
    let applied = setup::migrate(&pool).await?;
    setup::ensure_streams(&jetstream::new(client.clone()), &config.streams()).await?;
    let _ = client.flush().await;
    Ok(applied)
}

/// `runfleet-worker run`: provisions, then handles work until `shutdown` is cancelled.
///
/// # Errors
/// [`WorkerError`] when start-up fails; once running, failures are retried, not returned.
pub async fn run(config: Settings, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let profiles = config.profiles_checked(None)?;
    let redactor = redactor_for(&profiles);
    run_with(config, profiles, redactor, shutdown).await
}

/// The redactor for a worker serving `profiles`: credential patterns plus
/// the values of every profile's secret variables.
pub fn redactor_for(profiles: &Profiles) -> Redactor {
    Redactor::new(profiles.iter().flat_map(|(_, p)| p.secret_values()))
}

/// [`run`] with the profiles already loaded and a redactor that knows
/// their secrets (the binary builds both before logging starts).
///
/// The process must be the worker binary, or call
/// [`crate::launcher::run_if_asked`] first thing in its `main`: programs of
/// `process` profiles are started through it ([`crate::launcher`]).
///
/// # Errors
/// [`WorkerError`] when start-up fails.
pub async fn run_with(
    config: Settings,
    profiles: Profiles,
    redactor: Redactor,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let redactor = redactor
        .with_secrets(profiles.iter().flat_map(|(_, p)| p.secret_values()))
        .with_secrets(config.secret_values());
    let worker_id = config.worker_id();
    let client = preflight::connect_nats(&config).await?;
    let js = jetstream::new(client.clone());
    let pool = Pool::connect(&config.database_url, config.pg_pool_size.get()).await?;
    setup::migrate(&pool).await?;
    let streams = config.streams();
    let consumers = setup::ensure_streams(&js, &streams).await?;
    let control = setup::ensure_control_consumer(&js, &streams).await?;
    let wake = setup::ensure_wake_consumer(&js).await?;
    let journal = Journal::new(pool.clone(), config.group_commits.get());
    journal.register_worker(&worker_id, &hostname()).await?;

    let run_log = RunLog {
        journal: journal.clone(),
        jetstream: js.clone(),
        redactor: redactor.clone(),
    };
    // This binary is the launcher of every program (its `main` calls
    // `launcher::run_if_asked` first), so programs die with the worker.
    let launcher = crate::launcher::this_binary();
    if launcher.is_none() {
        tracing::warn!(
            "cannot find the worker binary; programs are started directly and may outlive a killed worker"
        );
    }
    let backends = Backends::new(
        &profiles,
        config.echo_effects_file.clone(),
        Some(run_log.clone()),
        launcher,
    );
    // Every background task, named and stopped together after the drain.
    let tasks = TaskTree::new();
    let waiters = Waiters::default();
    tasks.spawn_service("wake-ups", |stop| {
        waiters.clone().listen(client.clone(), stop)
    });
    let cancels = Cancels::default();
    let metrics = Metrics::new();
    if let Some(addr) = config.http_addr {
        let readiness = Arc::new(WorkerReadiness {
            client: client.clone(),
            pool: pool.clone(),
            stopping: shutdown.clone(),
            tasks: tasks.clone(),
        });
        http::serve(addr, metrics.clone(), readiness, &tasks).await?;
        crate::key_gauges::start(pool.clone(), metrics.keys().clone(), &tasks);
    }
    // Registered before the worker says it started, so an operator's first
    // request finds it; a worker that cannot register it runs without it,
    // reported not ready.
    let registered = crate::service::register(client.clone(), pool.clone()).await;
    tasks.spawn_service("micro-service", |stop| async move {
        match registered {
            Ok(service) => service.serve(stop).await,
            Err(err) => tracing::error!(error = %err, "the runfleet micro service did not start"),
        }
    });
    crate::timers::start(journal.clone(), js.clone(), wake, &tasks);
    let releaser = crate::limits::start(journal.clone(), js.clone(), &tasks);
    let fair = crate::fairness::start(journal.clone(), js.clone(), worker_id.clone(), &tasks);
    tasks.spawn_service("registration", |stop| {
        keep_registered(journal.clone(), worker_id.clone(), stop)
    });
    tasks.spawn_service("sessions", |stop| {
        crate::service::sessions::serve(client.clone(), pool.clone(), stop)
    });

    let shared = Arc::new(Shared {
        config: config.clone(),
        worker_id: worker_id.clone(),
        journal: journal.clone(),
        jetstream: js.clone(),
        client: client.clone(),
        backends: backends.clone(),
        redactor,
        run_dirs: RunDirs::new(config.workdir_root.clone()),
        waiters,
        cancels: cancels.clone(),
        metrics: metrics.clone(),
        run_log,
        pure_runs: crate::pure_runs::PureRuns::default(),
        releaser,
        fair,
        resumer: crate::resume::start(
            journal.clone(),
            js.clone(),
            config.give_up_waiting_after(),
            &tasks,
        ),
        max_payload: config.effective_max_payload(client.server_info().max_payload),
        // Cancelled after the shutdown grace, or with the tree.
        abort: tasks.stop_token(),
    });
    tasks.spawn_service("cancel-broadcasts", |stop| {
        let (shared, tasks) = (shared.clone(), tasks.clone());
        cancels.listen(
            client.clone(),
            journal.clone(),
            stop,
            move |tenant, run_id| {
                let shared = shared.clone();
                tasks.spawn_job("close-cancelled-run", async move {
                    close_kept_run(&shared, &tenant, &run_id).await;
                });
            },
        )
    });
    // Stops pulling at the shutdown request (control messages are handed
    // back during the drain), so it is awaited, not a service.
    let control_task = tasks.spawn_job(
        "control-consumer",
        pull_control(control, shared.clone(), shutdown.clone()),
    );
    tracing::info!(worker.id = %worker_id, concurrency = config.concurrency.get(), profiles = ?profiles.names(), "worker started");
    let slots = Arc::new(Semaphore::new(config.concurrency.get()));
    let in_flight = std::sync::Mutex::new(JoinSet::new());
    pull_until_shutdown(&consumers, &shared, &slots, &in_flight, &shutdown).await;
    let mut in_flight = in_flight
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);

    drain(&shared, &mut in_flight, config.shutdown_grace).await;
    let _ = control_task.await;
    backends.shutdown().await;
    tasks.stop(TASKS_GRACE).await;
    let _ = journal.touch_worker(&worker_id, true).await;
    let _ = client.flush().await;
    tracing::info!(worker.id = %worker_id, "worker stopped");
    Ok(())
}

/// A whole run was cancelled: close what backends keep for it here.
async fn close_kept_run(shared: &Shared, tenant: &str, run_id: &str) {
    let closing = shared.backends.close_run(tenant, run_id).await;
    if closing.is_empty() {
        return;
    }
    for event in closing {
        shared.run_log.append(tenant, run_id, event).await;
    }
}

async fn keep_registered(journal: Journal, worker_id: String, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(REGISTRATION_INTERVAL) => {
                if let Err(err) = journal.touch_worker(&worker_id, false).await {
                    tracing::warn!(error = %err, "could not refresh the worker registration");
                }
            }
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}
