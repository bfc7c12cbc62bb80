//! The worker's configuration: one typed struct, from flags with
//! `RUNFLEET_*` environment fallbacks (and `NATS_URL`, `DATABASE_URL`).
//! Durations are human-readable (`30s`, `5m`, `250ms`).

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

/// Parses `30s`, `5m`, `250ms` for clap.
fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|err| format!("{text:?} is not a duration: {err}"))
}

/// Where the worker connects.
#[derive(Debug, Clone, clap::Args)]
pub struct Connections {
    /// The NATS server(s), comma-separated.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// The PostgreSQL database holding the journal.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://runfleet@127.0.0.1:54329/runfleet",
        hide_env_values = true
    )]
    pub database_url: String,
}

/// How streams and the work consumer are provisioned (`setup`).
#[derive(Debug, Clone, clap::Args)]
pub struct StreamSettings {
    /// Replicas of every stream (1 locally, 3 on a cluster).
    #[arg(long, env = "RUNFLEET_REPLICAS", default_value_t = 1)]
    pub replicas: usize,
    /// The lease: how long a delivered message may go without an ack or an
    /// in-progress ack before JetStream redelivers it.
    #[arg(long, env = "RUNFLEET_ACK_WAIT", default_value = "30s", value_parser = duration)]
    pub ack_wait: Duration,
    /// Deliveries of one message before the worker gives up on it (dead letter).
    #[arg(long, env = "RUNFLEET_MAX_DELIVER", default_value_t = 10)]
    pub max_deliver: i64,
    /// Unacknowledged messages fleet-wide (size it to the fleet's concurrency).
    #[arg(long, env = "RUNFLEET_MAX_ACK_PENDING", default_value_t = 4096)]
    pub max_ack_pending: i64,
    /// JetStream's deduplication window for `Nats-Msg-Id` (PostgreSQL keeps the promise after it).
    #[arg(long, env = "RUNFLEET_DEDUPE_WINDOW", default_value = "10m", value_parser = duration)]
    pub dedupe_window: Duration,
    /// How long receipts stay in their stream.
    #[arg(long, env = "RUNFLEET_RECEIPT_RETENTION", default_value = "7d", value_parser = duration)]
    pub receipt_retention: Duration,
    /// How long events stay in their stream (PostgreSQL keeps the full log).
    #[arg(long, env = "RUNFLEET_EVENT_RETENTION", default_value = "1d", value_parser = duration)]
    pub event_retention: Duration,
}

/// How one worker runs.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerSettings {
    /// This worker's identity (default: `w-` and a fresh UUIDv7).
    #[arg(long, env = "RUNFLEET_WORKER_ID")]
    pub worker_id: Option<String>,
    /// Messages this worker handles at once.
    #[arg(long, env = "RUNFLEET_CONCURRENCY", default_value = "64")]
    pub concurrency: NonZeroUsize,
    /// PostgreSQL connections in this worker's pool.
    #[arg(long, env = "RUNFLEET_PG_POOL", default_value_t = 8)]
    pub pg_pool_size: u32,
    /// Group-commit transactions in flight per worker: the journal gathers the
    /// begin and complete calls of concurrent commands into shared
    /// transactions; fewer, larger batches cost less on a small machine.
    #[arg(long, env = "RUNFLEET_GROUP_COMMITS", default_value_t = 2)]
    pub group_commits: usize,
    /// How long a command waits for its run to be created before it is dead-lettered.
    #[arg(long, env = "RUNFLEET_RUN_WAIT", default_value = "30s", value_parser = duration)]
    pub run_wait: Duration,
    /// How long a command holds its message waiting for its turn (earlier seq,
    /// live lease) before handing it back to JetStream.
    #[arg(long, env = "RUNFLEET_ORDER_WAIT", default_value = "60s", value_parser = duration)]
    pub order_wait: Duration,
    /// On SIGTERM/SIGINT, how long in-flight commands may take to finish
    /// before they are aborted and handed back for redelivery.
    #[arg(long, env = "RUNFLEET_SHUTDOWN_GRACE", default_value = "30s", value_parser = duration)]
    pub shutdown_grace: Duration,
    /// The configuration file (TOML) naming the backend profiles this worker
    /// serves; without one it serves the `echo` profile.
    #[arg(long = "config", env = "RUNFLEET_CONFIG")]
    pub config_file: Option<PathBuf>,
    /// Where runs' working directories are created (`<dir>/<tenant>/<run_id>`).
    #[arg(long, env = "RUNFLEET_WORKDIR_ROOT", default_value_os_t = default_workdir_root())]
    pub workdir_root: PathBuf,
    /// How long a command whose backend profile no worker serves waits
    /// before it fails with `no-backend`.
    #[arg(long, env = "RUNFLEET_SCHEDULE_TO_START", default_value = "5m", value_parser = duration)]
    pub schedule_to_start: Duration,
    /// Lease renewals that may fail in a row before a command stops with `heartbeat-lost`.
    #[arg(long, env = "RUNFLEET_MAX_MISSED_HEARTBEATS", default_value_t = 3)]
    pub max_missed_heartbeats: u32,
    /// Bound on each git invocation when materializing a resource bundle.
    #[arg(long, env = "RUNFLEET_GIT_TIMEOUT", default_value = "5m", value_parser = duration)]
    pub git_timeout: Duration,
    /// Append one line per `echo` execution to this file (for side-effect counting in tests).
    #[arg(long, env = "RUNFLEET_ECHO_EFFECTS_FILE")]
    pub echo_effects_file: Option<PathBuf>,
    /// Crash-test hook: `exit-after-commit` makes the process abort right
    /// after a receipt is committed, before it is published and acked.
    #[arg(long, env = "RUNFLEET_FAILPOINT", hide = true)]
    pub failpoint: Option<Failpoint>,
}

fn default_workdir_root() -> PathBuf {
    std::env::temp_dir().join("runfleet").join("runs")
}

/// A point at which the worker crashes on purpose, for crash tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Failpoint {
    /// Abort after the journal commit, before publishing and acking.
    ExitAfterCommit,
}

/// Everything `runfleet-worker run` needs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Where to connect.
    pub connections: Connections,
    /// Stream and consumer settings (the lease and delivery limit come from here).
    pub streams: StreamSettings,
    /// This worker's own settings.
    pub worker: WorkerSettings,
}

impl WorkerConfig {
    /// The worker id, generated when not configured.
    pub fn worker_id(&self) -> String {
        self.worker
            .worker_id
            .clone()
            .unwrap_or_else(|| format!("w-{}", uuid::Uuid::now_v7().simple()))
    }

    /// Interval of in-progress acks and lease renewals: a third of the lease.
    pub fn heartbeat_interval(&self) -> Duration {
        self.streams.ack_wait / 3
    }
}
