//! `runs.list`: runs, newest first, filtered and paged by keyset.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::requests::non_empty;
use super::{ApiRequest, RequestError};

/// The most runs one `runs.list` answers.
pub const MAX_RUNS_PAGE: u64 = 500;

/// `runs.list`: runs, newest first (`created_at`, then tenant and run id),
/// each filter narrowing; a page continues after `after`, the `next` of the
/// page before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunListRequest {
    /// Only this tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub tenant: Option<String>,
    /// Only this project's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub project: Option<String>,
    /// Only runs in this status (`pending`, `claimed`, `completed`, `failed`, `blocked`, `cancelled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub status: Option<String>,
    /// Only runs of this backend profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub profile: Option<String>,
    /// Only this session's runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub session_id: Option<String>,
    /// Only runs whose id starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub run_id_prefix: Option<String>,
    /// Continue after this cursor (the `next` of the page before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub after: Option<String>,
    /// At most this many, 1–500 (50 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u64>,
}

/// The run statuses (the `runs.status` CHECK): what a filter may name, and
/// what `fleet.stats` counts.
pub const RUN_STATUSES: [&str; 6] = [
    "pending",
    "claimed",
    "completed",
    "failed",
    "blocked",
    "cancelled",
];

impl RunListRequest {
    /// `limit`, or 50.
    pub fn limit(&self) -> u64 {
        self.limit.unwrap_or(50)
    }
}

impl ApiRequest for RunListRequest {
    const ENDPOINT: &'static str = "runs.list";
    type Response = RunList;
    fn check(&self) -> Result<(), RequestError> {
        let fields = [
            ("tenant", &self.tenant),
            ("project", &self.project),
            ("status", &self.status),
            ("profile", &self.profile),
            ("session_id", &self.session_id),
            ("run_id_prefix", &self.run_id_prefix),
            ("after", &self.after),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                non_empty(name, value)?;
            }
        }
        if let Some(status) = &self.status
            && !RUN_STATUSES.contains(&status.as_str())
        {
            return Err(RequestError::Bounds {
                field: "status".to_owned(),
                rule: format!("must be one of {}", RUN_STATUSES.join(", ")),
            });
        }
        match self.limit {
            Some(n) if !(1..=MAX_RUNS_PAGE).contains(&n) => Err(RequestError::Bounds {
                field: "limit".to_owned(),
                rule: format!("must be a whole number from 1 to {MAX_RUNS_PAGE}"),
            }),
            _ => Ok(()),
        }
    }
}

/// A page of `runs.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunList {
    /// The runs, newest first.
    pub runs: Vec<RunSummary>,
    /// The cursor of the next page (`after`), when there may be more.
    pub next: Option<String>,
}

/// One run of [`RunList`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunSummary {
    /// Its tenant.
    pub tenant: String,
    /// The run.
    pub run_id: String,
    /// Its project.
    pub project: String,
    /// Its backend profile.
    pub profile: String,
    /// Its session, if any.
    pub session_id: Option<String>,
    /// Its status.
    pub status: String,
    /// Why it ended, when it failed or was blocked.
    pub failure_kind: Option<String>,
    /// The seq its next command must have (so `next_seq - 1` commands have receipts).
    pub next_seq: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}
