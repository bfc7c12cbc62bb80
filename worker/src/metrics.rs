//! The worker's Prometheus metrics.
//!
//! One [`Metrics`] value owns a `prometheus-client` [`Registry`] (every name
//! prefixed `runfleet_`) and the metric families registered in it. It is
//! cheap to clone — every clone records into the same metrics — so the pull
//! loop, the handlers and the lease heartbeats each keep their own copy, and
//! the HTTP listener ([`crate::http`]) calls [`Metrics::encode`] on `GET
//! /metrics`.
//!
//! # What is recorded
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `runfleet_commands_started_total` | counter | `profile`, `tenant` |
//! | `runfleet_commands_completed_total` | counter | `profile`, `tenant` |
//! | `runfleet_commands_failed_total` | counter | `profile`, `tenant`, `failure_kind` |
//! | `runfleet_commands_replayed_total` | counter | `tenant` |
//! | `runfleet_commands_limited_total` | counter | `tenant` |
//! | `runfleet_commands_redelivered_total` | counter | `tenant` |
//! | `runfleet_dead_letters_total` | counter | `tenant`, `reason` |
//! | `runfleet_in_flight_commands` | gauge | — |
//! | `runfleet_lease_renewals_total` | counter | — |
//! | `runfleet_lease_renewal_failures_total` | counter | — |
//! | `runfleet_journal_commit_seconds` | histogram | — |
//! | `runfleet_end_to_end_seconds` | histogram | `profile`, `tenant` |
//! | `runfleet_key_*` (per concurrency key, see [`crate::key_gauges`]) | gauge | `key` (`state`) |
//!
//! # Label cardinality
//!
//! Every distinct label set is a separate series kept for the life of the
//! process. `profile` comes from configuration and `tenant` from the fleet's
//! tenants, both small sets; `failure_kind` and `reason` must be short fixed
//! words chosen by the caller (`"timeout"`, `"exit_status"`,
//! `"max_deliveries"`), never error messages, identifiers or anything that
//! could carry a credential.
//!
//! # Example
//!
//! ```
//! use runfleet_worker::metrics::Metrics;
//!
//! let metrics = Metrics::new();
//! {
//!     let _in_flight = metrics.in_flight();
//!     metrics.command_started("echo", "acme");
//!     metrics.command_completed("echo", "acme");
//! }
//! let text = metrics.encode();
//! assert!(text.contains(r#"runfleet_commands_started_total{profile="echo",tenant="acme"} 1"#));
//! assert!(text.contains("runfleet_in_flight_commands 0"));
//! ```

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The prefix of every metric name.
pub const PREFIX: &str = "runfleet";

/// Labels of the per-command metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    /// The backend profile serving the run.
    profile: String,
    /// The tenant owning the run.
    tenant: String,
}

/// Labels of a failed command.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    /// The backend profile serving the run.
    profile: String,
    /// The tenant owning the run.
    tenant: String,
    /// A short fixed word classifying the failure.
    failure_kind: String,
}

/// Labels of the per-tenant metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    /// The tenant owning the run.
    tenant: String,
}

/// Labels of a dead-lettered message.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeadLetterLabels {
    /// The tenant owning the run.
    tenant: String,
    /// A short fixed word saying why the message was dead-lettered.
    reason: String,
}

/// Builds one end-to-end histogram per label set; a plain `fn` so the family
/// stays nameable and `Clone`.
type HistogramConstructor = fn() -> Histogram;

/// Buckets of `runfleet_journal_commit_seconds`: 1 ms doubling to ~4.1 s.
fn journal_commit_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 13))
}

/// Buckets of `runfleet_end_to_end_seconds`: 5 ms doubling to ~10.9 min.
fn end_to_end_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 18))
}

/// The worker's metrics: a registry and handles to every metric in it.
///
/// Cloning is cheap (a few reference-count increments) and every clone
/// records into the same series. Every recording method is synchronous and
/// lock-light, safe to call from async code.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// What [`Metrics::encode`] serialises; shared, since a `Registry` is not
    /// `Clone` and is never modified after [`Metrics::new`].
    registry: Arc<Registry>,
    /// `runfleet_commands_started_total{profile,tenant}`.
    commands_started: Family<CommandLabels, Counter>,
    /// `runfleet_commands_completed_total{profile,tenant}`.
    commands_completed: Family<CommandLabels, Counter>,
    /// `runfleet_commands_failed_total{profile,tenant,failure_kind}`.
    commands_failed: Family<FailureLabels, Counter>,
    /// `runfleet_commands_replayed_total{tenant}`: deliveries answered from
    /// the journal instead of executing again.
    commands_replayed: Family<TenantLabels, Counter>,
    /// `runfleet_commands_limited_total{tenant}`: turns put to wait by a
    /// concurrency limit of their key.
    commands_limited: Family<TenantLabels, Counter>,
    /// `runfleet_commands_redelivered_total{tenant}`: deliveries whose
    /// attempt is greater than one.
    commands_redelivered: Family<TenantLabels, Counter>,
    /// `runfleet_dead_letters_total{tenant,reason}`.
    dead_letters: Family<DeadLetterLabels, Counter>,
    /// `runfleet_in_flight_commands`.
    in_flight: Gauge,
    /// `runfleet_lease_renewals_total`.
    lease_renewals: Counter,
    /// `runfleet_lease_renewal_failures_total`.
    lease_renewal_failures: Counter,
    /// `runfleet_journal_commit_seconds`.
    journal_commit: Histogram,
    /// `runfleet_end_to_end_seconds{profile,tenant}`: from the producer's
    /// publish to the receipt.
    end_to_end: Family<CommandLabels, Histogram, HistogramConstructor>,
    /// The per concurrency key gauges (`runfleet_key_*`).
    keys: crate::key_gauges::KeyGauges,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates a registry prefixed `runfleet` with every worker metric
    /// registered and at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);

        let commands_started = Family::<CommandLabels, Counter>::default();
        registry.register(
            "commands_started",
            "Commands whose execution started",
            commands_started.clone(),
        );
        let commands_completed = Family::<CommandLabels, Counter>::default();
        registry.register(
            "commands_completed",
            "Commands that completed successfully",
            commands_completed.clone(),
        );
        let commands_failed = Family::<FailureLabels, Counter>::default();
        registry.register(
            "commands_failed",
            "Commands that failed, by failure kind",
            commands_failed.clone(),
        );
        let commands_replayed = Family::<TenantLabels, Counter>::default();
        registry.register(
            "commands_replayed",
            "Deliveries answered from the journal without executing again",
            commands_replayed.clone(),
        );
        let commands_limited = Family::<TenantLabels, Counter>::default();
        registry.register(
            "commands_limited",
            "Commands put to wait because their concurrency key was at a limit",
            commands_limited.clone(),
        );
        let commands_redelivered = Family::<TenantLabels, Counter>::default();
        registry.register(
            "commands_redelivered",
            "Deliveries with an attempt greater than one",
            commands_redelivered.clone(),
        );
        let dead_letters = Family::<DeadLetterLabels, Counter>::default();
        registry.register(
            "dead_letters",
            "Messages dead-lettered, by reason",
            dead_letters.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "in_flight_commands",
            "Commands being handled right now",
            in_flight.clone(),
        );
        let lease_renewals = Counter::default();
        registry.register(
            "lease_renewals",
            "Run leases renewed",
            lease_renewals.clone(),
        );
        let lease_renewal_failures = Counter::default();
        registry.register(
            "lease_renewal_failures",
            "Run lease renewals that failed",
            lease_renewal_failures.clone(),
        );
        let journal_commit = journal_commit_histogram();
        registry.register_with_unit(
            "journal_commit",
            "Time to commit a journal transaction",
            Unit::Seconds,
            journal_commit.clone(),
        );
        let end_to_end =
            Family::<CommandLabels, Histogram, HistogramConstructor>::new_with_constructor(
                end_to_end_histogram,
            );
        registry.register_with_unit(
            "end_to_end",
            "Time from a command's publish to its receipt",
            Unit::Seconds,
            end_to_end.clone(),
        );
        let keys = crate::key_gauges::KeyGauges::register(&mut registry);

        Self {
            registry: Arc::new(registry),
            commands_started,
            commands_completed,
            commands_failed,
            commands_replayed,
            commands_limited,
            commands_redelivered,
            dead_letters,
            in_flight,
            lease_renewals,
            lease_renewal_failures,
            journal_commit,
            end_to_end,
            keys,
        }
    }

    /// The per concurrency key gauges, refreshed by [`crate::key_gauges::start`].
    pub fn keys(&self) -> &crate::key_gauges::KeyGauges {
        &self.keys
    }

    /// Counts a command whose execution started.
    pub fn command_started(&self, profile: &str, tenant: &str) {
        self.commands_started
            .get_or_create(&command_labels(profile, tenant))
            .inc();
    }

    /// Counts a command that completed successfully.
    pub fn command_completed(&self, profile: &str, tenant: &str) {
        self.commands_completed
            .get_or_create(&command_labels(profile, tenant))
            .inc();
    }

    /// Counts a failed command; `failure_kind` is a short fixed word (see
    /// the module's "Label cardinality").
    pub fn command_failed(&self, profile: &str, tenant: &str, failure_kind: &str) {
        let labels = FailureLabels {
            profile: profile.to_owned(),
            tenant: tenant.to_owned(),
            failure_kind: failure_kind.to_owned(),
        };
        self.commands_failed.get_or_create(&labels).inc();
    }

    /// Counts a delivery answered from the journal without executing again.
    pub fn command_replayed(&self, tenant: &str) {
        self.commands_replayed
            .get_or_create(&tenant_labels(tenant))
            .inc();
    }

    /// Counts a command put to wait by a concurrency limit of its key.
    pub fn command_limited(&self, tenant: &str) {
        self.commands_limited
            .get_or_create(&tenant_labels(tenant))
            .inc();
    }

    /// Counts a redelivery: a delivery whose attempt is greater than one.
    pub fn command_redelivered(&self, tenant: &str) {
        self.commands_redelivered
            .get_or_create(&tenant_labels(tenant))
            .inc();
    }

    /// Counts a dead-lettered message; `reason` is a short fixed word (see
    /// the module's "Label cardinality").
    pub fn dead_lettered(&self, tenant: &str, reason: &str) {
        let labels = DeadLetterLabels {
            tenant: tenant.to_owned(),
            reason: reason.to_owned(),
        };
        self.dead_letters.get_or_create(&labels).inc();
    }

    /// Adds `delta` (negative to subtract) to `runfleet_in_flight_commands`.
    ///
    /// Prefer [`Metrics::in_flight`], whose guard cannot forget the
    /// decrement on an early return or a panic.
    pub fn in_flight_add(&self, delta: i64) {
        self.in_flight.inc_by(delta);
    }

    /// Counts one command in flight until the returned guard is dropped.
    pub fn in_flight(&self) -> InFlightGuard {
        self.in_flight.inc();
        InFlightGuard {
            gauge: self.in_flight.clone(),
        }
    }

    /// Counts a renewed run lease.
    pub fn lease_renewed(&self) {
        self.lease_renewals.inc();
    }

    /// Counts a run lease renewal that failed.
    pub fn lease_renewal_failed(&self) {
        self.lease_renewal_failures.inc();
    }

    /// Records how long a journal transaction took to commit, in seconds.
    pub fn observe_journal_commit(&self, seconds: f64) {
        self.journal_commit.observe(seconds);
    }

    /// Records the time from a command's publish to its receipt, in seconds.
    pub fn observe_end_to_end(&self, profile: &str, tenant: &str, seconds: f64) {
        self.end_to_end
            .get_or_create(&command_labels(profile, tenant))
            .observe(seconds);
    }

    /// Renders every metric in the OpenMetrics text format, ending in
    /// `# EOF`; serve it as `application/openmetrics-text; version=1.0.0;
    /// charset=utf-8`.
    ///
    /// Encoding into a `String` cannot fail for the metric types used here;
    /// should the encoder report an error anyway, it is logged and what was
    /// rendered so far is returned.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(error) = encode(&mut text, &self.registry) {
            tracing::error!(%error, "cannot encode metrics");
        }
        text
    }
}

/// Labels for `profile` and `tenant`.
fn command_labels(profile: &str, tenant: &str) -> CommandLabels {
    CommandLabels {
        profile: profile.to_owned(),
        tenant: tenant.to_owned(),
    }
}

/// Labels for `tenant`.
fn tenant_labels(tenant: &str) -> TenantLabels {
    TenantLabels {
        tenant: tenant.to_owned(),
    }
}

/// One command counted in `runfleet_in_flight_commands`, from
/// [`Metrics::in_flight`] until this guard is dropped.
#[derive(Debug)]
#[must_use = "the command stops counting as in flight when the guard is dropped"]
pub struct InFlightGuard {
    /// The gauge to decrement on drop.
    gauge: Gauge,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_labelled_and_prefixed() {
        let metrics = Metrics::new();
        metrics.command_started("echo", "acme");
        metrics.command_started("echo", "acme");
        metrics.command_started("process", "globex");
        metrics.command_completed("echo", "acme");
        metrics.command_failed("echo", "acme", "timeout");
        metrics.command_replayed("acme");
        metrics.command_redelivered("acme");
        metrics.dead_lettered("globex", "max_deliveries");
        metrics.lease_renewed();
        metrics.lease_renewal_failed();

        let text = metrics.encode();
        for line in [
            r#"runfleet_commands_started_total{profile="echo",tenant="acme"} 2"#,
            r#"runfleet_commands_started_total{profile="process",tenant="globex"} 1"#,
            r#"runfleet_commands_completed_total{profile="echo",tenant="acme"} 1"#,
            r#"runfleet_commands_failed_total{profile="echo",tenant="acme",failure_kind="timeout"} 1"#,
            r#"runfleet_commands_replayed_total{tenant="acme"} 1"#,
            r#"runfleet_commands_redelivered_total{tenant="acme"} 1"#,
            r#"runfleet_dead_letters_total{tenant="globex",reason="max_deliveries"} 1"#,
            "runfleet_lease_renewals_total 1",
            "runfleet_lease_renewal_failures_total 1",
            "# TYPE runfleet_commands_started counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn histograms_count_and_sum() {
        let metrics = Metrics::new();
        metrics.observe_journal_commit(0.002);
        metrics.observe_journal_commit(0.5);
        metrics.observe_end_to_end("echo", "acme", 1.25);

        let text = metrics.encode();
        for line in [
            "# TYPE runfleet_journal_commit_seconds histogram",
            "# UNIT runfleet_journal_commit_seconds seconds",
            "runfleet_journal_commit_seconds_count 2",
            "runfleet_journal_commit_seconds_sum 0.502",
            r#"runfleet_end_to_end_seconds_count{profile="echo",tenant="acme"} 1"#,
            r#"runfleet_end_to_end_seconds_sum{profile="echo",tenant="acme"} 1.25"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // 0.002 lands in the 2 ms bucket; both observations are under 1.024 s.
        assert!(
            text.contains(r#"runfleet_journal_commit_seconds_bucket{le="0.002"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"runfleet_journal_commit_seconds_bucket{le="+Inf"} 2"#),
            "{text}"
        );
    }

    #[test]
    fn in_flight_guard_decrements_on_drop() {
        let metrics = Metrics::new();
        let first = metrics.in_flight();
        let second = metrics.clone().in_flight();
        assert!(metrics.encode().contains("runfleet_in_flight_commands 2\n"));
        drop(first);
        assert!(metrics.encode().contains("runfleet_in_flight_commands 1\n"));
        drop(second);
        assert!(metrics.encode().contains("runfleet_in_flight_commands 0\n"));

        metrics.in_flight_add(3);
        metrics.in_flight_add(-1);
        assert!(metrics.encode().contains("runfleet_in_flight_commands 2\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::new();
        metrics.command_replayed("a\"b");
        assert!(
            metrics
                .encode()
                .contains(r#"runfleet_commands_replayed_total{tenant="a\"b"} 1"#)
        );
    }
}
