//! The operator API's requests, one type per endpoint.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::responses::{
    CommandAnswer, DeadLetterList, DeadLetterShown, EventsPage, FleetStats, Redriven,
    RunStatusAnswer,
};
use super::{ApiRequest, RequestError};

/// The largest `limit` of `events.after` and `dlq.list`.
pub const MAX_LIMIT: u64 = 1000;
/// The largest `after_seq` (PostgreSQL's bigint).
const MAX_SEQ: u64 = i64::MAX as u64;

/// A required identifier field must not be empty.
pub(super) fn non_empty(name: &str, value: &str) -> Result<(), RequestError> {
    if value.is_empty() {
        return Err(RequestError::Bounds {
            field: name.to_owned(),
            rule: "is required (a non-empty string)".to_owned(),
        });
    }
    Ok(())
}

/// An optional whole-number field must lie in `min..=max`.
fn in_range(name: &str, value: Option<u64>, min: u64, max: u64) -> Result<(), RequestError> {
    match value {
        Some(n) if !(min..=max).contains(&n) => Err(RequestError::Bounds {
            field: name.to_owned(),
            rule: format!("must be a whole number from {min} to {max}"),
        }),
        _ => Ok(()),
    }
}

/// `run.status`: a run and its most recent commands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunStatusRequest {
    /// The run's tenant.
    #[schemars(length(min = 1))]
    pub tenant: String,
    /// The run.
    #[schemars(length(min = 1))]
    pub run_id: String,
}

impl ApiRequest for RunStatusRequest {
    const ENDPOINT: &'static str = "run.status";
    type Response = RunStatusAnswer;
    fn check(&self) -> Result<(), RequestError> {
        non_empty("tenant", &self.tenant)?;
        non_empty("run_id", &self.run_id)
    }
}

/// `command.get`: a command, its receipt and its journaled steps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandGetRequest {
    /// The run's tenant.
    #[schemars(length(min = 1))]
    pub tenant: String,
    /// The run.
    #[schemars(length(min = 1))]
    pub run_id: String,
    /// The command.
    #[schemars(length(min = 1))]
    pub command_id: String,
}

impl ApiRequest for CommandGetRequest {
    const ENDPOINT: &'static str = "command.get";
    type Response = CommandAnswer;
    fn check(&self) -> Result<(), RequestError> {
        non_empty("tenant", &self.tenant)?;
        non_empty("run_id", &self.run_id)?;
        non_empty("command_id", &self.command_id)
    }
}

/// `events.after`: a page of a run's events with seq > `after_seq`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsAfterRequest {
    /// The run's tenant.
    #[schemars(length(min = 1))]
    pub tenant: String,
    /// The run.
    #[schemars(length(min = 1))]
    pub run_id: String,
    /// Events after this seq (0 when absent: from the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 9_223_372_036_854_775_807_u64))]
    pub after_seq: Option<u64>,
    /// At most this many events, 1–1000 (100 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u64>,
}

impl EventsAfterRequest {
    /// `after_seq`, or 0.
    pub fn after_seq(&self) -> u64 {
        self.after_seq.unwrap_or(0)
    }

    /// `limit`, or 100.
    pub fn limit(&self) -> u64 {
        self.limit.unwrap_or(100)
    }
}

impl ApiRequest for EventsAfterRequest {
    const ENDPOINT: &'static str = "events.after";
    type Response = EventsPage;
    fn check(&self) -> Result<(), RequestError> {
        non_empty("tenant", &self.tenant)?;
        non_empty("run_id", &self.run_id)?;
        in_range("after_seq", self.after_seq, 0, MAX_SEQ)?;
        in_range("limit", self.limit, 1, MAX_LIMIT)
    }
}

/// `dlq.list`: dead letters, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DlqListRequest {
    /// Only this tenant's (every tenant's when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub tenant: Option<String>,
    /// At most this many, 1–1000 (50 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u64>,
    /// Re-driven ones too (false when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_redriven: Option<bool>,
}

impl DlqListRequest {
    /// `limit`, or 50.
    pub fn limit(&self) -> u64 {
        self.limit.unwrap_or(50)
    }
}

impl ApiRequest for DlqListRequest {
    const ENDPOINT: &'static str = "dlq.list";
    type Response = DeadLetterList;
    fn check(&self) -> Result<(), RequestError> {
        if let Some(tenant) = &self.tenant {
            non_empty("tenant", tenant)?;
        }
        in_range("limit", self.limit, 1, MAX_LIMIT)
    }
}

/// `dlq.show`: one stored dead letter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DlqShowRequest {
    /// The dead letter.
    #[schemars(length(min = 1))]
    pub dead_letter_id: String,
}

impl ApiRequest for DlqShowRequest {
    const ENDPOINT: &'static str = "dlq.show";
    type Response = DeadLetterShown;
    fn check(&self) -> Result<(), RequestError> {
        non_empty("dead_letter_id", &self.dead_letter_id)
    }
}

/// `dlq.redrive`: publish a dead letter's original message again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DlqRedriveRequest {
    /// The dead letter.
    #[schemars(length(min = 1))]
    pub dead_letter_id: String,
}

impl ApiRequest for DlqRedriveRequest {
    const ENDPOINT: &'static str = "dlq.redrive";
    type Response = Redriven;
    fn check(&self) -> Result<(), RequestError> {
        non_empty("dead_letter_id", &self.dead_letter_id)
    }
}

/// `fleet.stats`: no fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetStatsRequest {}

impl ApiRequest for FleetStatsRequest {
    const ENDPOINT: &'static str = "fleet.stats";
    type Response = FleetStats;
    fn check(&self) -> Result<(), RequestError> {
        Ok(())
    }
}
