//! The operator API's concurrency limits: `limit.set`, `limit.list`,
//! `limit.delete`, and the per-key figures `fleet.stats` shows.
//!
//! A run's concurrency key is `tenant:<tenant>`, or
//! `tenant:<tenant>:<concurrency_key>` when its `run.create` names one. A
//! limit is set on a key or a pattern (`*` matches any characters; the
//! exact key wins, else the longest pattern) and applies to each matching
//! key on its own: at most `max_running` of its runs executing at once
//! across the fleet, at most `rate_per_second` command starts per second.
//! Work over a limit waits; it is not failed, not dead-lettered, and spends
//! no delivery.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ApiRequest, RequestError};

/// The longest key pattern.
pub const MAX_PATTERN: usize = 200;

fn pattern_is_valid(pattern: &str) -> bool {
    (1..=MAX_PATTERN).contains(&pattern.len())
        && pattern
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:/@-*".contains(&b))
}

fn check_pattern(pattern: &str) -> Result<(), RequestError> {
    if pattern_is_valid(pattern) {
        Ok(())
    } else {
        Err(RequestError::Bounds {
            field: "pattern".to_owned(),
            rule: format!(
                "must be 1–{MAX_PATTERN} of `A-Z a-z 0-9 _ - . : / @` and `*` (e.g. `tenant:acme` or `tenant:*`)"
            ),
        })
    }
}

/// `limit.set`: sets (or replaces) the limit of a key or pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitSetRequest {
    /// The key (`tenant:acme`) or pattern (`tenant:*`, `tenant:acme:*`).
    pub pattern: String,
    /// At most this many runs of each matching key executing at once.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_running: Option<u32>,
    /// At most this many command starts per second for each matching key.
    #[serde(default)]
    pub rate_per_second: Option<f64>,
}

impl ApiRequest for LimitSetRequest {
    const ENDPOINT: &'static str = "limit.set";
    type Response = LimitAnswer;
    fn check(&self) -> Result<(), RequestError> {
        check_pattern(&self.pattern)?;
        let bounds = |field: &str, rule: &str| RequestError::Bounds {
            field: field.to_owned(),
            rule: rule.to_owned(),
        };
        if self.max_running == Some(0) {
            return Err(bounds("max_running", "must be at least 1"));
        }
        if let Some(rate) = self.rate_per_second
            && !(rate.is_finite() && rate > 0.0 && rate <= 1_000_000.0)
        {
            return Err(bounds(
                "rate_per_second",
                "must be above 0 and at most 1000000",
            ));
        }
        if self.max_running.is_none() && self.rate_per_second.is_none() {
            return Err(bounds(
                "max_running",
                "or `rate_per_second` is required (remove a limit with limit.delete)",
            ));
        }
        Ok(())
    }
}

/// `limit.list`: every limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitListRequest {}

impl ApiRequest for LimitListRequest {
    const ENDPOINT: &'static str = "limit.list";
    type Response = LimitList;
    fn check(&self) -> Result<(), RequestError> {
        Ok(())
    }
}

/// `limit.delete`: removes the limit of a key or pattern; its waiting
/// commands are released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitDeleteRequest {
    /// The key or pattern, as set.
    pub pattern: String,
}

impl ApiRequest for LimitDeleteRequest {
    const ENDPOINT: &'static str = "limit.delete";
    type Response = LimitAnswer;
    fn check(&self) -> Result<(), RequestError> {
        check_pattern(&self.pattern)
    }
}

/// A limit, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LimitAnswer {
    /// The key or pattern.
    pub pattern: String,
    /// Runs of each matching key executing at once, at most.
    pub max_running: Option<u32>,
    /// Command starts per second of each matching key, at most.
    pub rate_per_second: Option<f64>,
    /// When it was set.
    pub updated_at: DateTime<Utc>,
    /// Whether it was removed (by this request).
    pub deleted: bool,
}

/// `limit.list`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LimitList {
    /// The limits, by pattern.
    pub limits: Vec<LimitAnswer>,
}

/// One concurrency key in [`super::FleetStats`]: its work now, and its limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KeyStats {
    /// The key (`tenant:<tenant>` or `tenant:<tenant>:<concurrency_key>`).
    pub key: String,
    /// Commands recorded and not started, neither delayed nor limited.
    pub pending: i64,
    /// Commands waiting for their `not_before`.
    pub delayed: i64,
    /// Runs executing now (a live claim).
    pub running: i64,
    /// Commands waiting on the key's limit, or set aside while its tenant
    /// is diverted for fairness.
    pub limited: i64,
    /// Whether the key's tenant is diverted now: it has a large backlog
    /// while other tenants have work waiting, so its commands wait their
    /// fair turn (counted in `limited`).
    #[serde(default)]
    pub diverted: bool,
    /// The pattern of the limit that applies, if any.
    pub limit: Option<String>,
    /// Its `max_running`.
    pub max_running: Option<u32>,
    /// Its `rate_per_second`.
    pub rate_per_second: Option<f64>,
}
