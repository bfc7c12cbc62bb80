//! # runfleet-tests — fixtures for tests against real servers
//!
//! Every end-to-end test of runfleet runs against a real `nats-server` (the
//! pinned version the project installs into `.tools/`) and a real
//! PostgreSQL. The fixtures start them on free loopback ports, give each test
//! its own store and database, and clean up on drop:
//!
//! - [`TestNats`]: one JetStream server, store in a temp dir, killed on drop;
//!   [`TestCluster`]: three of them routed into a JetStream cluster.
//! - [`TestDb`]: a fresh database per test on the server `DATABASE_URL`
//!   points at, or, when that is unset or unreachable, on an ephemeral
//!   cluster made with `initdb`/`pg_ctl` from the system's binaries.
//!
//! ```no_run
//! # async fn demo() -> Result<(), runfleet_tests::FixtureError> {
//! let nats = runfleet_tests::TestNats::start().await?;
//! let db = runfleet_tests::TestDb::create().await?;
//! let client = nats.client().await?;
//! let (pg, _conn) = db.connect().await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod backlog;
mod bins;
mod effects;
mod error;
mod nats;
mod paths;
mod postgres;
mod programs;
mod worker;

pub use backlog::work_backlog;
pub use bins::binary;
pub use effects::{Effect, read_effects};
pub use error::FixtureError;
pub use nats::{TestCluster, TestNats, free_ports};
pub use paths::workspace_root;
pub use postgres::TestDb;
pub use programs::{profile, program, tail};
pub use worker::{TestWorker, WorkerEnv, setup};
