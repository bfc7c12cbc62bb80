//! Why a fixture could not be set up.

use std::path::PathBuf;

/// A fixture could not start its server or prepare its database.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// A program could not be started.
    #[error("could not start {program}: {source}")]
    Spawn {
        /// The program's path.
        program: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A program ran but failed.
    #[error("{what} failed: {detail}")]
    Command {
        /// What was being done.
        what: String,
        /// Its output or exit status.
        detail: String,
    },
    /// A server did not become ready in time.
    #[error("{what} was not ready after {seconds} s: {detail}")]
    NotReady {
        /// The server.
        what: String,
        /// How long the fixture waited.
        seconds: u64,
        /// The last thing it saw (log tail, last error).
        detail: String,
    },
    /// A file system operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// Connecting to NATS failed.
    #[error("cannot connect to NATS at {url}: {source}")]
    NatsConnect {
        /// The URL tried.
        url: String,
        /// The client's reason.
        #[source]
        source: async_nats::ConnectError,
    },
    /// A PostgreSQL statement failed.
    #[error("PostgreSQL ({what}): {source}")]
    Postgres {
        /// What was being done.
        what: String,
        /// The server's reason.
        #[source]
        source: tokio_postgres::Error,
    },
}

impl FixtureError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> FixtureError {
        let what = what.into();
        move |source| FixtureError::Io { what, source }
    }

    pub(crate) fn pg(
        what: impl Into<String>,
    ) -> impl FnOnce(tokio_postgres::Error) -> FixtureError {
        let what = what.into();
        move |source| FixtureError::Postgres { what, source }
    }
}
