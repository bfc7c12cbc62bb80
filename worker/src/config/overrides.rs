//! The command line and environment layer of the worker's configuration:
//! one optional value per setting, as clap reads flags and `RUNFLEET_*`
//! variables (`worker/tests/settings_table.rs` checks it against the
//! README's settings table).

use std::path::PathBuf;

use serde::Serialize;

use super::Failpoint;

/// The command line and environment layer: every value is optional, so
/// what is not given falls through to the file and the defaults.
#[derive(Debug, Clone, Default, clap::Args, Serialize)]
pub struct Overrides {
    /// The configuration file (TOML).
    #[arg(long = "config", env = "RUNFLEET_CONFIG")]
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
    /// The NATS server(s), comma-separated [default: nats://127.0.0.1:4222].
    #[arg(long, env = "NATS_URL", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<String>,
    /// The PostgreSQL database [default: postgres://runfleet@127.0.0.1:54329/runfleet].
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Stream replicas [default: 1].
    #[arg(long, env = "RUNFLEET_REPLICAS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<usize>,
    /// The lease [default: 10s].
    #[arg(long, env = "RUNFLEET_ACK_WAIT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_wait: Option<String>,
    /// Deliveries before a message is dead-lettered, a backstop [default: 100].
    #[arg(long, env = "RUNFLEET_MAX_DELIVER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_deliver: Option<i64>,
    /// Executions of a command before it fails `max-deliveries` [default: 10].
    #[arg(long, env = "RUNFLEET_MAX_ATTEMPTS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<i64>,
    /// Unacknowledged messages fleet-wide [default: 4096].
    #[arg(long, env = "RUNFLEET_MAX_ACK_PENDING")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ack_pending: Option<i64>,
    /// JetStream's deduplication window [default: 10m].
    #[arg(long, env = "RUNFLEET_DEDUPE_WINDOW")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedupe_window: Option<String>,
    /// How long receipts stay in their stream [default: 7d].
    #[arg(long, env = "RUNFLEET_RECEIPT_RETENTION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_retention: Option<String>,
    /// How long events stay in their stream [default: 1d].
    #[arg(long, env = "RUNFLEET_EVENT_RETENTION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_retention: Option<String>,
    /// This worker's identity [default: w-<uuidv7>].
    #[arg(long, env = "RUNFLEET_WORKER_ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// Messages handled at once [default: 512].
    #[arg(long, env = "RUNFLEET_CONCURRENCY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// PostgreSQL connections [default: 8].
    #[arg(long, env = "RUNFLEET_PG_POOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_pool_size: Option<u32>,
    /// Journal batches in flight, each on its own connection [default: 2].
    #[arg(long, env = "RUNFLEET_GROUP_COMMITS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_commits: Option<usize>,
    /// How long a command waits for its run [default: 30s].
    #[arg(long, env = "RUNFLEET_RUN_WAIT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_wait: Option<String>,
    /// How long a command holds its message waiting for its turn [default: 60s].
    #[arg(long, env = "RUNFLEET_ORDER_WAIT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_wait: Option<String>,
    /// Time in-flight commands get on SIGTERM [default: 30s].
    #[arg(long, env = "RUNFLEET_SHUTDOWN_GRACE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_grace: Option<String>,
    /// Where runs' working directories are created [default: $TMPDIR/runfleet/runs].
    #[arg(long, env = "RUNFLEET_WORKDIR_ROOT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workdir_root: Option<PathBuf>,
    /// Wait before `no-backend` [default: 5m].
    #[arg(long, env = "RUNFLEET_SCHEDULE_TO_START")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_to_start: Option<String>,
    /// Failed renewals in a row before `heartbeat-lost` [default: 3].
    #[arg(long, env = "RUNFLEET_MAX_MISSED_HEARTBEATS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_missed_heartbeats: Option<u32>,
    /// Bound on each git invocation [default: 5m].
    #[arg(long, env = "RUNFLEET_GIT_TIMEOUT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_timeout: Option<String>,
    /// Largest accepted message in bytes [default: the server's max_payload].
    #[arg(long, env = "RUNFLEET_MAX_PAYLOAD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_payload: Option<usize>,
    /// Health and metrics listener address, e.g. 127.0.0.1:9464 [default: off].
    #[arg(long, env = "RUNFLEET_HTTP_ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_addr: Option<String>,
    /// Log as JSON lines (`--log-json`, or `RUNFLEET_LOG_JSON=1|true`) [default: off].
    #[arg(
        long,
        env = "RUNFLEET_LOG_JSON",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_json: Option<bool>,
    /// Append one line per `echo` execution to this file (tests).
    #[arg(long, env = "RUNFLEET_ECHO_EFFECTS_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo_effects_file: Option<PathBuf>,
    /// Crash-test hook: `exit-after-commit`.
    #[arg(long, env = "RUNFLEET_FAILPOINT", hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failpoint: Option<Failpoint>,
}
