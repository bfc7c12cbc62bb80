//! Fairness between tenants: a tenant with a large backlog does not make
//! the others wait behind it.
//!
//! The work stream is first in, first out, so a tenant that queued 20,000
//! commands would hold the fleet until they are through. About once a
//! [`MEASURE_EVERY`], one worker of the fleet (PostgreSQL lets one in per
//! interval) measures each tenant's backlog: its messages in the work
//! stream (counted per subject by the stream itself, when the stream holds
//! at least [`SHARE`] messages or a tenant is diverted) plus its commands waiting in
//! `limited_commands`. While two tenants or more have work waiting (and for
//! [`LINGER`] after), a tenant whose backlog is at least [`SHARE`] is
//! *diverted*. Every worker reads the diverted tenants every
//! [`READ_EVERY`] and sets a command of one aside as it arrives
//! (`handler/divert.rs`): recorded in `limited_commands` with its bytes,
//! batched, its message acknowledged (no delivery spent, nothing failed),
//! so the fleet goes through that tenant's backlog at the speed of an
//! insert and reaches the other tenants' work (one that reaches the journal
//! before the worker knows is answered `limited` there). The
//! releaser ([`crate::limits`]) publishes a tenant's waiting commands
//! again, oldest first once their turn has come, with at most
//! [`FAIR_WINDOW`] of them released and not started at a time (diverted
//! or not: a backlog set aside goes back a window at a time); a released
//! copy is not set aside on arrival. The small tenants' work therefore
//! waits behind at most a window of each large tenant's, and large tenants
//! get the same window each. A diverted set decided more than five seconds
//! ago diverts nobody.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_nats::jetstream;
use futures::TryStreamExt;
use runfleet_schemas::subjects;

use crate::journal::{FairShare, Journal};
use crate::tasks::TaskTree;

/// How often the backlogs are measured (by one worker of the fleet).
pub const MEASURE_EVERY: Duration = Duration::from_secs(1);

/// How often each worker reads which tenants are diverted.
pub const READ_EVERY: Duration = Duration::from_millis(250);

/// A tenant with at least this many messages and commands waiting is
/// diverted while another tenant has work waiting.
pub const SHARE: i64 = 1_000;

/// How long diversion lasts after the last time two tenants had work waiting.
pub const LINGER: Duration = Duration::from_secs(10);

/// Most commands of one diverted tenant released and not started at a time.
pub const FAIR_WINDOW: i32 = 256;

/// Most subjects of the work stream counted in one measurement (beyond
/// them, the backlogs are those of the subjects counted).
const MOST_SUBJECTS: usize = 200_000;

/// The tenants diverted now, as this worker last read them (a command of
/// one is set aside as it arrives).
#[derive(Debug, Clone, Default)]
pub struct FairShares {
    diverted: Arc<RwLock<HashSet<String>>>,
}

impl FairShares {
    /// Whether `tenant`'s commands are set aside as they arrive.
    pub fn diverts(&self, tenant: &str) -> bool {
        let diverted = self.diverted.read().unwrap_or_else(PoisonError::into_inner);
        !diverted.is_empty() && diverted.contains(tenant)
    }

    fn is_empty(&self) -> bool {
        self.diverted
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    fn replace(&self, tenants: HashSet<String>) {
        let mut diverted = self
            .diverted
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if *diverted != tenants {
            tracing::info!(diverted = ?tenants, "the tenants diverted for fairness changed");
            *diverted = tenants;
        }
    }
}

/// Starts the measuring (by one worker of the fleet at a time) and the
/// reading of the diverted tenants (by every worker, every
/// [`READ_EVERY`]), a service of `tasks`.
pub fn start(
    journal: Journal,
    js: jetstream::Context,
    worker_id: String,
    tasks: &TaskTree,
) -> FairShares {
    let shares = FairShares::default();
    let known = shares.clone();
    tasks.spawn_service("fair-shares", |stop| async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(READ_EVERY) => {}
            }
            let diverting = !known.is_empty();
            let diverted = match measure(&journal, &js, &worker_id, diverting).await {
                Some(diverted) => Ok(diverted),
                None => journal.diverted_tenants().await,
            };
            match diverted {
                Ok(tenants) => known.replace(tenants.into_iter().collect()),
                Err(err) => tracing::warn!(error = %err, "could not read the diverted tenants"),
            }
        }
    });
    shares
}

/// When it is this worker's turn, measures the backlogs and has
/// PostgreSQL decide the diverted tenants (`None` otherwise, or when the
/// measuring failed). While some are `diverting`, the stream is counted
/// however few messages it holds (a small tenant's work in it keeps the
/// large one diverted).
async fn measure(
    journal: &Journal,
    js: &jetstream::Context,
    worker_id: &str,
    diverting: bool,
) -> Option<Vec<String>> {
    let every = i64::try_from(MEASURE_EVERY.as_millis()).unwrap_or(i64::MAX) - 50;
    match journal.fair_turn(worker_id, every).await {
        Ok(true) => {}
        Ok(false) => return None,
        Err(err) => {
            tracing::warn!(error = %err, "could not take a turn measuring fair shares");
            return None;
        }
    }
    let stream = backlog_by_tenant(js, diverting)
        .await
        .map_err(|err| tracing::warn!(error = %err, "could not count the work stream's backlog by tenant"))
        .ok()?;
    let rule = FairShare {
        share: SHARE,
        linger_ms: i64::try_from(LINGER.as_millis()).unwrap_or(i64::MAX),
    };
    match journal.fair_divert(&stream, rule).await {
        Ok(diverted) => {
            if !diverted.is_empty() {
                tracing::debug!(?diverted, "fair shares measured");
            }
            Some(diverted.into_iter().map(|d| d.tenant).collect())
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not decide fair shares");
            None
        }
    }
}

/// Each tenant's messages in the work stream: unless `always`, none
/// counted while the stream holds fewer than [`SHARE`] (no tenant can have
/// a share in it).
async fn backlog_by_tenant(
    js: &jetstream::Context,
    always: bool,
) -> Result<Vec<(String, i64)>, async_nats::Error> {
    let stream = js.get_stream(subjects::WORK_STREAM).await?;
    // `get_stream` just fetched its info: no second request for the count.
    if !always && i64::try_from(stream.cached_info().state.messages).unwrap_or(i64::MAX) < SHARE {
        return Ok(Vec::new());
    }
    let mut counts: HashMap<String, i64> = HashMap::new();
    let mut per_subject = stream
        .info_with_subjects(format!("{}.>", subjects::PREFIX))
        .await?;
    let mut seen = 0;
    while let Some((subject, count)) = per_subject.try_next().await? {
        if let Some(tenant) = subject.split('.').nth(2) {
            *counts.entry(tenant.to_owned()).or_default() +=
                i64::try_from(count).unwrap_or(i64::MAX);
        }
        seen += 1;
        if seen >= MOST_SUBJECTS {
            break;
        }
    }
    Ok(counts.into_iter().collect())
}
