//! The worker's configuration: one typed [`Settings`], layered
//! defaults → TOML file (`--config` / `RUNFLEET_CONFIG`) → environment
//! (`RUNFLEET_*`, `NATS_URL`, `DATABASE_URL`, `NATS_*` credentials) →
//! command-line flags, validated at start with errors that name the key.
//!
//! Every key of the file is the flag's name with `_` (`ack_wait = "30s"`),
//! plus the `[profiles.<name>]` tables of [`crate::profiles`]. Durations are
//! human-readable (`30s`, `5m`, `250ms`). `runfleet-worker --dump-config`
//! prints the effective configuration with secrets masked.
//!
//! Each setting is declared once, in `config/settings.rs` (through the
//! `settings!` macro of [`declare`]): the field and its default, its flag and
//! variable, its `--help` line and its row of the README's table.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::profiles::{Profiles, ProfilesError};

pub mod declare;
mod layers;
mod settings;

use self::layers::{describe, nats_env};
pub use self::settings::{DECLARED, Overrides, Settings};

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

/// Counts where 0 is meaningless: 0 is refused with "must be at least 1".
mod nonzero {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<std::num::NonZeroU64>,
    {
        let value = u64::deserialize(deserializer)?;
        let Some(value) = std::num::NonZeroU64::new(value) else {
            return Err(serde::de::Error::custom("must be at least 1"));
        };
        T::try_from(value).map_err(|_| serde::de::Error::custom(format!("{value} is too large")))
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
