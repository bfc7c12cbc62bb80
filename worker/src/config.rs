//! The worker's configuration: one typed [`Settings`], layered
//! defaults → TOML file (`--config` / `RUNFLEET_CONFIG`) → environment
//! (`RUNFLEET_*`, `NATS_URL`, `DATABASE_URL`, `NATS_*` credentials) →
//! command-line flags, validated at start with errors that name the key.
//!
//! Every key of the file is the flag's name with `_` (`ack_wait = "30s"`),
//! plus the `[profiles.<name>]` tables of [`crate::profiles`]. Durations are
//! human-readable (`30s`, `5m`, `250ms`). `runfleet-worker --dump-config`
//! prints the effective configuration with secrets masked.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use runfleet_nats::NatsAuth;
use serde::{Deserialize, Serialize};

use crate::profiles::{Profile, Profiles, ProfilesError};

/// Durations as human-readable text in files, the environment and dumps.
mod human {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*value).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text)
            .map_err(|err| serde::de::Error::custom(format!("{text:?} is not a duration: {err}")))
    }
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file is missing or unreadable.
    #[error("cannot read the configuration file {path}: {detail}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// A value has the wrong type or shape (the message names the key and where it came from).
    #[error("configuration: {0}")]
    Layer(String),
    /// A value is out of range.
    #[error("configuration: {key}: {message}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A backend profile is unusable.
    #[error(transparent)]
    Profiles(#[from] ProfilesError),
}

/// Every setting of a worker (the effective configuration).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The NATS server(s), comma-separated.
    pub nats_url: String,
    /// NATS authentication and TLS.
    pub nats: NatsAuth,
    /// The PostgreSQL database holding the journal (TLS with `sslmode=require`).
    pub database_url: String,
    /// Replicas of every stream (1 locally, 3 on a cluster).
    pub replicas: usize,
    /// The lease: how long a delivered message may go without an ack or an
    /// in-progress ack before JetStream redelivers it.
    #[serde(with = "human")]
    pub ack_wait: Duration,
    /// Deliveries of one message before the worker gives up on it (dead
    /// letter): a far backstop, since deliveries are also lost to crashes of
    /// workers that merely held the message.
    pub max_deliver: i64,
    /// Executions of one command (claims in PostgreSQL) before it ends
    /// `failed` with `max-deliveries`: its own retry budget, which deliveries
    /// lost while it waited or while another command's crash took its worker
    /// down do not spend.
    pub max_attempts: i64,
    /// Unacknowledged messages fleet-wide (size it to the fleet's concurrency).
    pub max_ack_pending: i64,
    /// JetStream's deduplication window for `Nats-Msg-Id`.
    #[serde(with = "human")]
    pub dedupe_window: Duration,
    /// How long receipts stay in their stream.
    #[serde(with = "human")]
    pub receipt_retention: Duration,
    /// How long events stay in their stream.
    #[serde(with = "human")]
    pub event_retention: Duration,
    /// This worker's identity (default: `w-` and a fresh UUIDv7).
    pub worker_id: Option<String>,
    /// Messages this worker handles at once.
    pub concurrency: usize,
    /// PostgreSQL connections in this worker's pool.
    pub pg_pool_size: u32,
    /// Journal batches in flight per worker (each on a connection of its
    /// own, outside the pool).
    pub group_commits: usize,
    /// How long a command waits for its run to be created before it is dead-lettered.
    #[serde(with = "human")]
    pub run_wait: Duration,
    /// How long a command holds its message waiting for its turn.
    #[serde(with = "human")]
    pub order_wait: Duration,
    /// On SIGTERM/SIGINT, how long in-flight commands may take to finish.
    #[serde(with = "human")]
    pub shutdown_grace: Duration,
    /// Where runs' working directories are created.
    pub workdir_root: PathBuf,
    /// How long a command whose profile no worker serves waits before `no-backend`.
    #[serde(with = "human")]
    pub schedule_to_start: Duration,
    /// Lease renewals that may fail in a row before `heartbeat-lost`.
    pub max_missed_heartbeats: u32,
    /// Bound on each git invocation when materializing a resource bundle.
    #[serde(with = "human")]
    pub git_timeout: Duration,
    /// Largest message (bytes) the worker accepts; larger ones are
    /// dead-lettered `payload-too-large`. Unset: the NATS server's own
    /// `max_payload` (then no stored message can be larger, and the check
    /// only matters when a fleet sets a lower limit than its server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_payload: Option<usize>,
    /// The health and metrics listener (`/healthz`, `/readyz`, `/metrics`); off when unset.
    pub http_addr: Option<SocketAddr>,
    /// Log as JSON lines.
    pub log_json: bool,
    /// Append one line per `echo` execution to this file (side-effect counting in tests).
    pub echo_effects_file: Option<PathBuf>,
    /// Crash-test hook (`exit-after-commit`); not for production.
    pub failpoint: Option<Failpoint>,
    /// The backend profiles this worker serves (without any: `echo`).
    pub profiles: BTreeMap<String, Profile>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            nats_url: "nats://127.0.0.1:4222".into(),
            nats: NatsAuth::default(),
            database_url: "postgres://runfleet@127.0.0.1:54329/runfleet".into(),
            replicas: 1,
            ack_wait: Duration::from_secs(10),
            max_deliver: 100,
            max_attempts: 10,
            max_ack_pending: 4096,
            dedupe_window: Duration::from_secs(600),
            receipt_retention: Duration::from_secs(7 * 86_400),
            event_retention: Duration::from_secs(86_400),
            worker_id: None,
            concurrency: 512,
            pg_pool_size: 8,
            group_commits: 2,
            run_wait: Duration::from_secs(30),
            order_wait: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            workdir_root: std::env::temp_dir().join("runfleet").join("runs"),
            schedule_to_start: Duration::from_secs(300),
            max_missed_heartbeats: 3,
            git_timeout: Duration::from_secs(300),
            max_payload: None,
            http_addr: None,
            log_json: false,
            echo_effects_file: None,
            failpoint: None,
            profiles: BTreeMap::new(),
        }
    }
}

/// A point at which the worker crashes on purpose, for crash tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Failpoint {
    /// Abort after the journal commit, before publishing and acking.
    ExitAfterCommit,
}

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

impl Settings {
    /// How long a command may wait for its turn in all before it gives up:
    /// `max_attempts × order_wait`.
    pub fn give_up_waiting_after(&self) -> Duration {
        self.order_wait
            .saturating_mul(u32::try_from(self.max_attempts).unwrap_or(u32::MAX))
    }

    /// The largest message this worker accepts, given the server's
    /// `max_payload`: the configured limit when it is lower, else the server's.
    pub fn effective_max_payload(&self, server_max_payload: usize) -> usize {
        self.max_payload
            .map_or(server_max_payload, |limit| limit.min(server_max_payload))
    }

    /// Layers defaults, the file, then `overrides` (environment and flags,
    /// as clap read them) and `NATS_*` credentials, and validates the result.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key (and, for type errors, where it came from).
    pub fn load(overrides: &Overrides) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = &overrides.config_file {
            if !path.is_file() {
                return Err(ConfigError::File {
                    path: path.clone(),
                    detail: "no such file".into(),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment
            .merge(Serialized::defaults(overrides))
            .merge(Serialized::default("nats", nats_env()));
        let mut settings: Settings = figment
            .extract()
            .map_err(|err| ConfigError::Layer(describe(&err)))?;
        // `--log-json` without a value means true; clap gives Some(true) then.
        if let Some(json) = overrides.log_json {
            settings.log_json = json;
        }
        settings.validate(overrides.config_file.as_deref())?;
        Ok(settings)
    }

    /// The settings a configuration file's `text` gives over the defaults
    /// (no environment, no flags), validated: what [`Settings::load`] reads
    /// from a file, for the fuzzer and for tools that check a file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key.
    pub fn from_file_text(text: &str) -> Result<Settings, ConfigError> {
        let settings: Settings = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|err| ConfigError::Layer(describe(&err)))?;
        settings.validate(None)?;
        Ok(settings)
    }

    fn validate(&self, file: Option<&Path>) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_owned(),
            })
        };
        if self.concurrency == 0 {
            return invalid("concurrency", "must be at least 1");
        }
        if self.pg_pool_size == 0 {
            return invalid("pg_pool_size", "must be at least 1");
        }
        if self.group_commits == 0 {
            return invalid("group_commits", "must be at least 1");
        }
        if self.max_deliver < 1 {
            return invalid("max_deliver", "must be at least 1");
        }
        if self.max_attempts < 1 {
            return invalid("max_attempts", "must be at least 1");
        }
        if self.max_ack_pending < 1 {
            return invalid("max_ack_pending", "must be at least 1");
        }
        if !(1..=5).contains(&self.replicas) {
            return invalid("replicas", "must be between 1 and 5");
        }
        if self.ack_wait < Duration::from_millis(300) {
            return invalid(
                "ack_wait",
                "must be at least 300ms (heartbeats run every third of it)",
            );
        }
        if self.max_missed_heartbeats == 0 {
            return invalid("max_missed_heartbeats", "must be at least 1");
        }
        if self.max_payload.is_some_and(|bytes| bytes < 1024) {
            return invalid("max_payload", "must be at least 1024 bytes");
        }
        if self
            .nats_url
            .split(',')
            .map(str::trim)
            .any(|u| u.is_empty() || u.parse::<async_nats::ServerAddr>().is_err())
        {
            return invalid("nats_url", "expected nats://host:port[,nats://…]");
        }
        if self.database_url.parse::<tokio_postgres::Config>().is_err() {
            return invalid(
                "database_url",
                "not a PostgreSQL URL (postgres://user@host:port/db)",
            );
        }
        self.profiles_checked(file)?;
        Ok(())
    }

    /// The profiles, validated (the default `echo` when none are configured).
    ///
    /// # Errors
    /// [`ConfigError::Profiles`].
    pub fn profiles_checked(&self, file: Option<&Path>) -> Result<Profiles, ConfigError> {
        let path = file.unwrap_or(Path::new("the configuration"));
        Ok(Profiles::from_map(path, self.profiles.clone())?)
    }

    /// The effective configuration as TOML, with every secret masked.
    pub fn dump(&self) -> String {
        let mut shown = self.clone();
        shown.nats = self.nats.masked();
        let text =
            toml::to_string_pretty(&shown).unwrap_or_else(|err| format!("# cannot print: {err}\n"));
        // URL userinfo, `?password=`, key=value DSNs, tokens and the
        // configured secret values.
        crate::redact::Redactor::new(self.secret_values())
            .redact(&text)
            .into_owned()
    }

    /// The configured secret values (passwords, tokens, seeds), for the redactor.
    pub fn secret_values(&self) -> Vec<String> {
        let mut secrets: Vec<String> = [
            self.nats.password.clone(),
            self.nats.token.clone(),
            self.nats.nkey_seed.clone(),
        ]
        .into_iter()
        .flatten()
        .collect();
        for url in self.nats_url.split(',') {
            // Both forms: as written in the URL and as sent to the server
            // (a token is the URL's user part).
            if let Ok(parsed) = url::Url::parse(url.trim()) {
                let secret = parsed.password().unwrap_or(parsed.username());
                if !secret.is_empty() {
                    secrets.push(secret.to_owned());
                    secrets.push(runfleet_nats::percent_decoded(secret));
                }
            }
        }
        if let Ok(config) = self.database_url.parse::<tokio_postgres::Config>()
            && let Some(password) = config.get_password()
        {
            secrets.push(String::from_utf8_lossy(password).into_owned());
        }
        secrets
    }

    /// The worker id, generated when not configured.
    pub fn worker_id(&self) -> String {
        self.worker_id
            .clone()
            .unwrap_or_else(|| format!("w-{}", uuid::Uuid::now_v7().simple()))
    }

    /// The stream settings (for `setup`).
    pub fn streams(&self) -> StreamSettings {
        StreamSettings {
            replicas: self.replicas,
            ack_wait: self.ack_wait,
            max_deliver: self.max_deliver,
            max_ack_pending: self.max_ack_pending,
            dedupe_window: self.dedupe_window,
            receipt_retention: self.receipt_retention,
            event_retention: self.event_retention,
        }
    }

    /// Interval of in-progress acks and lease renewals: a third of the lease.
    pub fn heartbeat_interval(&self) -> Duration {
        self.ack_wait / 3
    }

    /// Messages handled at once.
    pub fn concurrency(&self) -> NonZeroUsize {
        NonZeroUsize::new(self.concurrency).unwrap_or(NonZeroUsize::MIN)
    }
}

/// Figment's error, with the key, the value and where it came from.
fn describe(err: &figment::Error) -> String {
    let text = err
        .clone()
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(figment::Source::File(path)) => path.display().to_string(),
                    _ => m.name.to_string(),
                })
                .unwrap_or_default();
            let source = if source.contains("Overrides") {
                "the environment or the command line".to_owned()
            } else if source.contains("Value") {
                "the NATS_* environment".to_owned()
            } else if source.contains("Settings") {
                "the defaults".to_owned()
            } else {
                source
            };
            // A secret's value never goes into a message, even a wrong one.
            let secret = key == "database_url" || key == "nats_url" || key.starts_with("nats.");
            let kind = if secret {
                "has the wrong type or shape (its value is not shown)".to_owned()
            } else {
                e.kind.to_string()
            };
            if secret {
                // Not `key: …`, which the redactor would take for a credential.
                return format!("{key} {kind} (from {source})");
            }
            match (key.is_empty(), source.is_empty()) {
                (false, false) => format!("{key}: {kind} (from {source})"),
                (false, true) => format!("{key}: {kind}"),
                _ => kind,
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    // A parse error quotes the offending line: scrub credential patterns.
    crate::redact::Redactor::default()
        .redact(&text)
        .into_owned()
}

/// The `NATS_*` credential variables (only those set).
fn nats_env() -> serde_json::Value {
    let auth = NatsAuth::from_env();
    let mut value = serde_json::to_value(&auth).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.retain(|_, v| !v.is_null() && v != &serde_json::Value::Bool(false));
    }
    value
}

/// How streams and the work consumer are provisioned (`setup`).
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Replicas of every stream.
    pub replicas: usize,
    /// The lease.
    pub ack_wait: Duration,
    /// Deliveries of one message before the worker gives up on it.
    pub max_deliver: i64,
    /// Unacknowledged messages fleet-wide.
    pub max_ack_pending: i64,
    /// JetStream's deduplication window.
    pub dedupe_window: Duration,
    /// How long receipts stay in their stream.
    pub receipt_retention: Duration,
    /// How long events stay in their stream.
    pub event_retention: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: &str, overrides: Overrides) -> Result<Settings, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker.toml");
        std::fs::write(&path, file).unwrap();
        Settings::load(&Overrides {
            config_file: Some(path),
            ..overrides
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn layers_defaults_file_then_overrides() {
        let settings = load(
            "ack_wait = \"12s\"\nconcurrency = 5\n[profiles.echo]\nkind = \"echo\"\n",
            Overrides {
                concurrency: Some(7),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(settings.ack_wait, Duration::from_secs(12), "from the file");
        assert_eq!(settings.concurrency, 7, "the override wins");
        assert_eq!(settings.max_deliver, 100, "the default");
        assert_eq!(settings.max_attempts, 10, "the default");
        assert!(settings.profiles.contains_key("echo"));
    }

    #[test]
    fn errors_name_the_key() {
        let err = load("concurrency = \"many\"\n", Overrides::default()).unwrap_err();
        assert!(
            err.contains("concurrency") && err.contains("worker.toml"),
            "{err}"
        );
        let err = load("ack_wait = \"soon\"\n", Overrides::default()).unwrap_err();
        assert!(
            err.contains("ack_wait") && err.contains("not a duration"),
            "{err}"
        );
        let err = load("colour = 1\n", Overrides::default()).unwrap_err();
        assert!(err.contains("colour"), "{err}");
        let err = load("concurrency = 0\n", Overrides::default()).unwrap_err();
        assert_eq!(err, "configuration: concurrency: must be at least 1");
        let err = load(
            "",
            Overrides {
                ack_wait: Some("x".into()),
                ..Overrides::default()
            },
        )
        .unwrap_err();
        assert!(err.contains("ack_wait"), "{err}");
    }

    #[test]
    fn errors_never_echo_a_secret() {
        let err = load("[nats]\ntoken = 918273645\n", Overrides::default()).unwrap_err();
        assert!(
            err.contains("nats.token") && !err.contains("918273645"),
            "{err}"
        );
        let err = load(
            "database_url = \"postgres://a:TOMLPW@h/x\n",
            Overrides::default(),
        )
        .unwrap_err();
        assert!(!err.contains("TOMLPW"), "{err}");
    }

    #[test]
    fn the_dump_masks_secrets() {
        let mut settings = Settings {
            database_url: "postgres://app:hunter2@db:5432/runfleet".into(),
            nats_url: "nats://worker:s3cret@n1:4222,nats://n2:4222".into(),
            ..Settings::default()
        };
        settings.nats.token = Some("t0k3n-value".into());
        let dump = settings.dump();
        for secret in ["hunter2", "s3cret", "t0k3n-value"] {
            assert!(!dump.contains(secret), "{secret} in\n{dump}");
        }
        assert!(dump.contains("@db:5432/runfleet"), "{dump}");
        assert!(dump.contains("ack_wait = \"10s\""), "{dump}");
        let query = Settings {
            database_url: "postgres://db/x?password=QueryPW1".into(),
            ..Settings::default()
        };
        assert!(!query.dump().contains("QueryPW1"));
    }
}
