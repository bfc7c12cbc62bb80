//! What every message handler shares: the configuration, this worker's
//! connections, journal and backends, and its registries of waiting and
//! running commands.

use async_nats::jetstream;
use tokio_util::sync::CancellationToken;

use crate::backend::Backends;
use crate::cancels::Cancels;
use crate::config::Settings;
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::pure_runs::PureRuns;
use crate::redact::Redactor;
use crate::resume::Resumer;
use crate::run_log::RunLog;
use crate::waiters::Waiters;
use crate::workspace::RunDirs;

/// What every message handler shares.
#[derive(Debug)]
pub struct Shared {
    /// The configuration.
    pub config: Settings,
    /// This worker's id.
    pub worker_id: String,
    /// The journal.
    pub journal: Journal,
    /// JetStream, for publishing receipts, events and dead letters.
    pub jetstream: jetstream::Context,
    /// Core NATS, for wake-ups between workers.
    pub client: async_nats::Client,
    /// The backends of the profiles this worker serves.
    pub backends: Backends,
    /// Scrubs credentials from everything stored, published or logged.
    pub redactor: Redactor,
    /// Where runs' working directories live.
    pub run_dirs: RunDirs,
    /// Commands waiting for their turn.
    pub waiters: Waiters,
    /// Running commands, to stop when cancelled.
    pub cancels: Cancels,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Run-level events (closings outside any command).
    pub run_log: RunLog,
    /// Runs whose pure commands are settled in one statement.
    pub pure_runs: PureRuns,
    /// Publishes parked commands again when their run moves on to them.
    pub resumer: Resumer,
    /// Told when a command waits on a concurrency limit.
    pub releaser: crate::limits::Releaser,
    /// The tenants whose commands are set aside as they arrive (fairness).
    pub fair: crate::fairness::FairShares,
    /// The largest message accepted: the configured `max_payload` when it
    /// is below the server's, else the server's.
    pub max_payload: usize,
    /// Cancelled when in-flight work must stop now (after the shutdown grace).
    pub abort: CancellationToken,
}

impl Shared {
    /// Tells waiters here and in other workers that the run moved on.
    pub fn announce(&self, tenant: &str, run_id: &str) {
        self.waiters.announce(&self.client, tenant, run_id);
        self.resumer.run_moved_on(tenant, run_id);
    }

    /// A command's execution budget ([`crate::config::Settings::max_attempts`]).
    pub fn max_attempts(&self) -> u64 {
        u64::try_from(self.config.max_attempts)
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// The delivery limit, as a delivery count.
    pub fn max_deliver(&self) -> u64 {
        u64::try_from(self.config.max_deliver)
            .unwrap_or(u64::MAX)
            .max(1)
    }
}
