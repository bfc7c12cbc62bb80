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

mod layers;
mod overrides;

use self::layers::{describe, nats_env};
pub use self::overrides::Overrides;

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
mod tests;
