//! Per concurrency key gauges on `/metrics`: what waits, what runs, and
//! the limit that applies, fleet-wide.
//!
//! | metric | labels |
//! |---|---|
//! | `runfleet_key_commands` | `key`, `state` (`pending`, `delayed`, `running`, `limited`) |
//! | `runfleet_key_diverted` (1 while its tenant is diverted for fairness) | `key` |
//! | `runfleet_key_limit_max_running` (keys with a `max_running`) | `key` |
//! | `runfleet_key_limit_rate_per_second` (keys with a `rate`) | `key` |
//!
//! They are read from PostgreSQL every [`REFRESH_EVERY`] by each worker
//! whose HTTP listener is on (the same query as `fleet.stats`: the busiest
//! 100 keys, so at most 700 series), and are the same on every such worker:
//! aggregate them with `max`, not `sum`. A key that no longer has work or a
//! limit leaves the gauges at the next refresh.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use runfleet_schemas::api::KeyStats;

use crate::db::Pool;
use crate::tasks::TaskTree;

/// How often the gauges are read again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// Labels of a key's commands in one state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    /// The concurrency key (`tenant:<tenant>[:<concurrency_key>]`).
    key: String,
    /// `pending`, `delayed`, `running` or `limited`.
    state: &'static str,
}

/// Labels of a key's other gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    /// The concurrency key.
    key: String,
}

/// The key gauges (clones share them).
#[derive(Clone, Debug, Default)]
pub struct KeyGauges {
    commands: Family<StateLabels, Gauge>,
    diverted: Family<KeyLabels, Gauge>,
    max_running: Family<KeyLabels, Gauge>,
    rate: Family<KeyLabels, Gauge<f64, AtomicU64>>,
}

impl KeyGauges {
    /// Registers the gauges in `registry`.
    pub fn register(registry: &mut Registry) -> KeyGauges {
        let gauges = KeyGauges::default();
        registry.register(
            "key_commands",
            "Commands of a concurrency key by state, fleet-wide",
            gauges.commands.clone(),
        );
        registry.register(
            "key_diverted",
            "1 while the key's tenant is diverted for fairness",
            gauges.diverted.clone(),
        );
        registry.register(
            "key_limit_max_running",
            "The max_running of the limit that applies to the key",
            gauges.max_running.clone(),
        );
        registry.register(
            "key_limit_rate_per_second",
            "The rate of the limit that applies to the key, in starts per second",
            gauges.rate.clone(),
        );
        gauges
    }

    /// Sets the gauges to `keys`, forgetting keys not among them.
    pub fn set(&self, keys: &[KeyStats]) {
        self.commands.clear();
        self.diverted.clear();
        self.max_running.clear();
        self.rate.clear();
        for k in keys {
            for (state, n) in [
                ("pending", k.pending),
                ("delayed", k.delayed),
                ("running", k.running),
                ("limited", k.limited),
            ] {
                let labels = StateLabels {
                    key: k.key.clone(),
                    state,
                };
                self.commands.get_or_create(&labels).set(n);
            }
            let key = KeyLabels { key: k.key.clone() };
            self.diverted.get_or_create(&key).set(i64::from(k.diverted));
            if let Some(max) = k.max_running {
                self.max_running.get_or_create(&key).set(i64::from(max));
            }
            if let Some(rate) = k.rate_per_second {
                self.rate.get_or_create(&key).set(rate);
            }
        }
    }
}

/// Starts reading the gauges every [`REFRESH_EVERY`], a service of `tasks`.
pub fn start(pool: Pool, gauges: KeyGauges, tasks: &TaskTree) {
    tasks.spawn_service("key-gauges", |stop| async move {
        loop {
            match refresh(&pool, &gauges).await {
                Ok(()) => {}
                Err(err) => tracing::warn!(error = %err, "could not read the key gauges"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(REFRESH_EVERY) => {}
            }
        }
    });
}

async fn refresh(pool: &Pool, gauges: &KeyGauges) -> Result<(), crate::db::DbError> {
    use crate::db::Context;
    const CALL: &str = "SELECT FROM concurrency keys";
    let fleet = || "key gauges".to_owned();
    let conn = pool.get().await.during(CALL, fleet)?;
    let keys = crate::service::keys::key_stats(&*conn)
        .await
        .during(CALL, fleet)?;
    gauges.set(&keys);
    Ok(())
}
