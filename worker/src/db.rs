//! The PostgreSQL connection pool (`bb8` + `tokio-postgres`).
//!
//! TLS follows the URL's `sslmode`: `disable` never, `prefer` (the default)
//! when the server offers it, `require` always; the server's certificate is
//! verified against the system's root certificates (rustls).

use std::sync::Arc;

use bb8_postgres::PostgresConnectionManager;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The TLS connector for PostgreSQL connections.
type Tls = MakeRustlsConnect;

/// A TLS connector trusting the system's root certificates.
///
/// # Errors
/// [`DbError::Tls`] when no TLS configuration can be built.
pub fn tls() -> Result<Tls, DbError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(rustls::DEFAULT_VERSIONS)
    .map_err(|err| DbError::Tls(err.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The connection settings of `url`. Without an explicit `sslmode` the
/// connection is plaintext (libpq's default `prefer` would fail on a server
/// with a self-signed certificate, since certificates are verified); with
/// `sslmode=prefer` or `require` it uses TLS verified against the system roots.
///
/// # Errors
/// [`DbError::Postgres`] when the URL does not parse.
pub fn config_of(url: &str) -> Result<tokio_postgres::Config, DbError> {
    let mut config: tokio_postgres::Config = url.parse()?;
    if !url.contains("sslmode=") {
        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
    }
    Ok(config)
}

/// Connects one client to `url` (its connection future must be spawned).
///
/// # Errors
/// [`DbError`] when the server does not answer or refuses.
pub async fn connect(
    url: &str,
) -> Result<
    (
        tokio_postgres::Client,
        tokio_postgres::Connection<
            tokio_postgres::Socket,
            <Tls as tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>>::Stream,
        >,
    ),
    DbError,
> {
    Ok(config_of(url)?.connect(tls()?).await?)
}

/// A PostgreSQL failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The server refused or failed a statement, or the connection broke.
    /// Shown with the server's own message and SQLSTATE.
    #[error("PostgreSQL: {}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool in time.
    #[error("PostgreSQL pool: {0}")]
    Pool(String),
    /// TLS could not be set up.
    #[error("PostgreSQL TLS: {0}")]
    Tls(String),
    /// A stored value did not have the expected shape.
    #[error("PostgreSQL returned an unexpected value: {0}")]
    Unexpected(String),
    /// A journal function answered an outcome this build does not know
    /// (a schema newer than the worker, say): never read as another one.
    #[error(
        "{function} answered {outcome:?}, which this worker does not know (expected one of {expected})"
    )]
    UnknownOutcome {
        /// The journal function.
        function: &'static str,
        /// What it answered.
        outcome: String,
        /// What it may answer.
        expected: &'static str,
    },
    /// A journal call failed: which call, for what (tenant, run, command,
    /// or the size of a batch), and why.
    #[error("{call} ({subject}): {source}")]
    Call {
        /// The journal function or statement.
        call: &'static str,
        /// What it was called for.
        subject: String,
        /// Why it failed.
        source: Box<DbError>,
    },
}

/// Names the journal call a failure happened in: `.during(call, || subject)`.
pub trait Context<T> {
    /// A failure becomes [`DbError::Call`] naming `call` and `subject()`.
    ///
    /// # Errors
    /// The failure, with its context.
    fn during(self, call: &'static str, subject: impl FnOnce() -> String) -> Result<T, DbError>;
}

impl<T, E: Into<DbError>> Context<T> for Result<T, E> {
    fn during(self, call: &'static str, subject: impl FnOnce() -> String) -> Result<T, DbError> {
        self.map_err(|err| DbError::Call {
            call,
            subject: subject(),
            source: Box::new(err.into()),
        })
    }
}

/// "command c of run r (tenant t)", for [`Context::during`].
pub fn command_subject(tenant: &str, run_id: &str, command_id: &str) -> String {
    format!("command {command_id} of run {run_id}, tenant {tenant}")
}

/// "run r (tenant t)", for [`Context::during`].
pub fn run_subject(tenant: &str, run_id: &str) -> String {
    format!("run {run_id}, tenant {tenant}")
}

impl DbError {
    /// The failure itself, under any [`DbError::Call`] context.
    pub fn root(&self) -> &DbError {
        match self {
            DbError::Call { source, .. } => source.root(),
            other => other,
        }
    }

    /// `function` answered `outcome`, none of `expected`.
    pub(crate) fn unknown_outcome(
        function: &'static str,
        outcome: &str,
        expected: &'static str,
    ) -> DbError {
        DbError::UnknownOutcome {
            function,
            outcome: outcome.to_owned(),
            expected,
        }
    }
}

/// A PostgreSQL error as an operator needs it: the server's message, its
/// SQLSTATE, detail and hint when the server sent them; otherwise the client's
/// error with its cause (`db error` alone says nothing).
pub fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; detail: {detail}"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        if let Some(r#where) = db.where_() {
            text.push_str(&format!(
                "; where: {}",
                r#where.lines().next().unwrap_or_default()
            ));
        }
        return text;
    }
    match std::error::Error::source(err) {
        Some(cause) => format!("{err}: {cause}"),
        None => err.to_string(),
    }
}

impl From<bb8::RunError<tokio_postgres::Error>> for DbError {
    fn from(err: bb8::RunError<tokio_postgres::Error>) -> DbError {
        match err {
            bb8::RunError::User(err) => DbError::Postgres(err),
            bb8::RunError::TimedOut => DbError::Pool("timed out waiting for a connection".into()),
        }
    }
}

/// A pool of connections to the journal database.
#[derive(Debug, Clone)]
pub struct Pool {
    /// The bb8 pool.
    inner: bb8::Pool<PostgresConnectionManager<Tls>>,
    /// The URL, for connections outside the pool (migrations, LISTEN).
    url: String,
}

impl Pool {
    /// Connects a pool of `size` connections to `url`.
    ///
    /// # Errors
    /// [`DbError`] when the URL is invalid or the server does not answer.
    pub async fn connect(url: &str, size: u32) -> Result<Pool, DbError> {
        let config = config_of(url)?;
        let manager = PostgresConnectionManager::new(config, tls()?);
        let inner = bb8::Pool::builder()
            .max_size(size.max(1))
            .connection_timeout(std::time::Duration::from_secs(10))
            // No round trip on every checkout: `get` passes over the
            // connections the client already knows are closed instead.
            .test_on_check_out(false)
            .build(manager)
            .await?;
        // Fail now, with the server's reason, rather than on the first message.
        drop(inner.get().await?);
        Ok(Pool {
            inner,
            url: url.to_owned(),
        })
    }

    /// A pooled connection whose client has not seen it close. One that
    /// has (after a database restart, every idle one) is dropped: bb8
    /// discards it as broken. A connection that broke unnoticed fails its
    /// query, which the caller reports or retries.
    ///
    /// # Errors
    /// [`DbError::Pool`] when none is free in time.
    pub async fn get(
        &self,
    ) -> Result<bb8::PooledConnection<'_, PostgresConnectionManager<Tls>>, DbError> {
        loop {
            let conn = self.inner.get().await?;
            if !conn.is_closed() {
                return Ok(conn);
            }
        }
    }

    /// A connection of its own, outside the pool (its driver runs on a spawned task).
    ///
    /// # Errors
    /// [`DbError::Postgres`] when the server does not answer.
    pub async fn dedicated(&self) -> Result<tokio_postgres::Client, DbError> {
        let (client, connection) = connect(&self.url).await?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "dedicated PostgreSQL connection ended");
            }
        });
        Ok(client)
    }

    /// The database URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_call_names_the_call_its_subject_and_the_cause() {
        let err = Err::<(), _>(DbError::Pool("timed out".into()))
            .during("runfleet_renew_lease", || command_subject("t", "r", "c"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "runfleet_renew_lease (command c of run r, tenant t): PostgreSQL pool: timed out"
        );
        assert!(matches!(err.root(), DbError::Pool(_)));
    }
}
