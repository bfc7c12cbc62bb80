//! Checks the dependencies before the worker does anything with them.
//!
//! A nats-server older than [`MIN_NATS_SERVER`] silently ignores JetStream
//! fields the fleet relies on (nats-server 2.9 drops several consumer and
//! stream settings without an error; message schedules, which wake delayed
//! commands, came in 2.12, their cron and `@every` forms for recurring
//! schedules in 2.14), so the worker refuses to run against one,
//! saying which version it found. JetStream must be enabled for the
//! account, and PostgreSQL must answer.

use std::fmt;

use crate::config::Settings;

/// The oldest nats-server the fleet runs against.
/// (2.12: message schedules, which wake delayed commands; 2.14: their
/// cron and `@every` forms, which fire recurring schedules.)
pub const MIN_NATS_SERVER: Version = Version {
    major: 2,
    minor: 14,
    patch: 0,
};

/// A `major.minor.patch` server version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

impl Version {
    /// Parses `2.15.1` (a `-beta` style suffix is ignored).
    pub fn parse(text: &str) -> Option<Version> {
        let core = text
            .trim()
            .trim_start_matches('v')
            .split(['-', '+'])
            .next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        Some(Version {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next()??,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Why a dependency is not usable.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// NATS could not be reached.
    #[error("cannot reach NATS at {url}: {cause} — is the stack running? (`scripts/stack start`)")]
    NatsConnect {
        /// The URL tried.
        url: String,
        /// The client's reason.
        cause: String,
    },
    /// PostgreSQL could not be used for another reason (TLS set-up).
    #[error("cannot use PostgreSQL: {detail}")]
    NoPostgres {
        /// Why.
        detail: String,
    },
    /// The server is older than [`MIN_NATS_SERVER`] (or says a version we cannot read).
    #[error(
        "nats-server {found} is not supported: runfleet needs {MIN_NATS_SERVER} or newer \
         (older servers silently ignore JetStream settings the fleet relies on)"
    )]
    NatsTooOld {
        /// The version the server reported.
        found: String,
    },
    /// JetStream is not enabled for the account.
    #[error("JetStream is not available on {url}: {detail} — start nats-server with --jetstream")]
    NoJetStream {
        /// The server URL.
        url: String,
        /// The server's answer.
        detail: String,
    },
    /// PostgreSQL could not be reached.
    #[error(
        "cannot reach PostgreSQL: {cause} — check DATABASE_URL (`scripts/stack env` prints the local one)"
    )]
    Postgres {
        /// The driver's reason.
        cause: tokio_postgres::Error,
    },
}

/// What the checks found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The NATS server's version.
    pub nats_version: Version,
    /// PostgreSQL's `server_version`.
    pub postgres_version: String,
}

/// Checks that `client`'s server is supported and has JetStream.
///
/// # Errors
/// [`PreflightError::NatsTooOld`] or [`PreflightError::NoJetStream`].
pub async fn check_nats(client: &async_nats::Client, url: &str) -> Result<Version, PreflightError> {
    let reported = client.server_info().version;
    let version = Version::parse(&reported)
        .filter(|v| *v >= MIN_NATS_SERVER)
        .ok_or(PreflightError::NatsTooOld { found: reported })?;
    async_nats::jetstream::new(client.clone())
        .query_account()
        .await
        .map_err(|err| PreflightError::NoJetStream {
            url: url.to_owned(),
            detail: err.to_string(),
        })?;
    Ok(version)
}

/// Connects to NATS and PostgreSQL and checks both.
///
/// # Errors
/// The first [`PreflightError`] found.
pub async fn run(config: &crate::config::Settings) -> Result<Report, PreflightError> {
    let client = connect_nats(config).await?;
    let url = runfleet_nats::without_userinfo(&config.nats_url);
    let nats_version = check_nats(&client, &url).await?;
    let (pg, connection) =
        crate::db::connect(&config.database_url)
            .await
            .map_err(|err| match err {
                crate::db::DbError::Postgres(cause) => PreflightError::Postgres { cause },
                other => PreflightError::NoPostgres {
                    detail: other.to_string(),
                },
            })?;
    let driver = tokio::spawn(connection);
    let postgres_version: String = pg
        .query_one("SHOW server_version", &[])
        .await
        .map_err(|cause| PreflightError::Postgres { cause })?
        .get(0);
    drop(pg);
    let _ = driver.await;
    Ok(Report {
        nats_version,
        postgres_version,
    })
}

/// Connects to NATS (with the configured authentication and TLS) and
/// checks it (version, JetStream).
///
/// # Errors
/// [`PreflightError`].
pub async fn connect_nats(config: &Settings) -> Result<async_nats::Client, PreflightError> {
    let url = runfleet_nats::without_userinfo(&config.nats_url);
    let client = config
        .nats
        .connect(&config.nats_url)
        .await
        .map_err(|cause| PreflightError::NatsConnect {
            url: url.clone(),
            cause: match cause {
                runfleet_nats::ConnectError::Connect { cause, .. } => cause.to_string(),
                other => other.to_string(),
            },
        })?;
    check_nats(&client, &url).await?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_versions() {
        let v = |s| Version::parse(s).unwrap();
        assert_eq!(
            v("2.15.1"),
            Version {
                major: 2,
                minor: 15,
                patch: 1
            }
        );
        assert_eq!(
            v("v2.11.0-beta.2"),
            Version {
                major: 2,
                minor: 11,
                patch: 0
            }
        );
        assert!(v("2.9.10") < MIN_NATS_SERVER);
        assert!(v("2.10.26") < MIN_NATS_SERVER);
        assert!(v("2.11.9") < MIN_NATS_SERVER);
        assert!(v("2.12.3") < MIN_NATS_SERVER);
        assert!(v("2.15.1") >= MIN_NATS_SERVER);
        assert_eq!(Version::parse("2.x"), None);
    }
}
