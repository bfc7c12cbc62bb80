//! The operator API's schedules (recurring runs): `schedule.create`,
//! `schedule.list` and `schedule.update` (pause, resume, delete).
//!
//! A schedule starts a new run, with one command, at each of its
//! occurrences: a 6-field cron expression (`sec min hour day month
//! weekday`, UTC) or a fixed interval (`every`, at least one second). The
//! fleet stores it in PostgreSQL and hands its timing to a JetStream message
//! schedule (nats-server ≥ 2.14), so it fires once per occurrence across
//! the whole fleet and survives restarts of every component.

use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::{ApiRequest, RequestError};
use crate::{Priority, ProfileName, ProjectId, ScheduleId, Tenant};

fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)
}

/// What a schedule does with occurrences the fleet could not take on time
/// (every worker down, say).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Occurrences taken more than a minute late start no run.
    #[default]
    Skip,
    /// After missed occurrences, one run for them all.
    Once,
}

impl CatchUp {
    /// The policy's name on the wire and in PostgreSQL.
    pub const fn as_str(self) -> &'static str {
        match self {
            CatchUp::Skip => "skip",
            CatchUp::Once => "once",
        }
    }
}

/// `schedule.create`: a new schedule (or the same one again: creating an
/// existing schedule with the same fields answers it unchanged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleCreateRequest {
    /// The tenant owning the schedule and its runs.
    pub tenant: String,
    /// The schedule's identifier (a subject token of at most 100 characters,
    /// unique per tenant; its runs are `<schedule_id>-<occurrence, Unix seconds>`).
    pub schedule_id: String,
    /// A 6-field cron expression, UTC (`0 */5 * * * *`); or `every`.
    #[serde(default)]
    pub cron: Option<String>,
    /// A fixed interval (`1h`, `30s`, at least `1s`); or `cron`.
    #[serde(default)]
    pub every: Option<String>,
    /// The runs' project.
    pub project: String,
    /// The runs' backend profile.
    pub profile: String,
    /// The payload of each run's one command (a JSON object).
    #[serde(default)]
    pub payload: Map<String, Value>,
    /// The priority of the runs and their commands.
    #[serde(default)]
    pub priority: Priority,
    /// What to do with occurrences taken late.
    #[serde(default)]
    pub catch_up: CatchUp,
}

impl ScheduleCreateRequest {
    /// The `Nats-Schedule` header value: the cron expression, or
    /// `@every <seconds>s`.
    ///
    /// # Errors
    /// [`RequestError::Bounds`] naming `cron` or `every`.
    pub fn nats_schedule(&self) -> Result<String, RequestError> {
        let bounds = |field: &str, rule: &str| RequestError::Bounds {
            field: field.to_owned(),
            rule: rule.to_owned(),
        };
        match (&self.cron, &self.every) {
            (Some(cron), None) => {
                let fields = cron.split_whitespace().count();
                if fields != 6 || cron.contains(['\r', '\n']) {
                    return Err(bounds(
                        "cron",
                        "must have 6 fields: second minute hour day-of-month month day-of-week",
                    ));
                }
                Ok(cron.split_whitespace().collect::<Vec<_>>().join(" "))
            }
            (None, Some(every)) => {
                let interval = humantime::parse_duration(every)
                    .map_err(|_| bounds("every", "must be a duration such as 30s, 5m or 1h"))?;
                if interval < Duration::from_secs(1) || interval.subsec_nanos() != 0 {
                    return Err(bounds("every", "must be whole seconds, at least 1s"));
                }
                Ok(format!("@every {}s", interval.as_secs()))
            }
            _ => Err(bounds("cron", "or `every` is required, not both")),
        }
    }
}

impl ApiRequest for ScheduleCreateRequest {
    const ENDPOINT: &'static str = "schedule.create";
    type Response = ScheduleAnswer;
    fn check(&self) -> Result<(), RequestError> {
        let token = |field: &str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(RequestError::Bounds {
                    field: field.to_owned(),
                    rule: "must be a subject token (ASCII letters, digits, '_' and '-')".to_owned(),
                })
            }
        };
        token("tenant", Tenant::new(self.tenant.as_str()).is_ok())?;
        token(
            "schedule_id",
            ScheduleId::new(self.schedule_id.as_str()).is_ok() && self.schedule_id.len() <= 100,
        )?;
        token("project", ProjectId::new(self.project.as_str()).is_ok())?;
        token("profile", ProfileName::new(self.profile.as_str()).is_ok())?;
        self.nats_schedule().map(|_| ())
    }
}

/// `schedule.list`: a tenant's schedules, or every tenant's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleListRequest {
    /// Only this tenant's.
    #[serde(default)]
    pub tenant: Option<String>,
}

impl ApiRequest for ScheduleListRequest {
    const ENDPOINT: &'static str = "schedule.list";
    type Response = ScheduleList;
    fn check(&self) -> Result<(), RequestError> {
        Ok(())
    }
}

/// What `schedule.update` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleAction {
    /// Stop firing; the schedule is kept.
    Pause,
    /// Fire again from the next occurrence.
    Resume,
    /// Stop firing and forget the schedule (its runs stay).
    Delete,
}

/// `schedule.update`: pause, resume or delete a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleUpdateRequest {
    /// The schedule's tenant.
    pub tenant: String,
    /// The schedule.
    pub schedule_id: String,
    /// What to do.
    pub action: ScheduleAction,
}

impl ApiRequest for ScheduleUpdateRequest {
    const ENDPOINT: &'static str = "schedule.update";
    type Response = ScheduleAnswer;
    fn check(&self) -> Result<(), RequestError> {
        super::requests::non_empty("tenant", &self.tenant)?;
        super::requests::non_empty("schedule_id", &self.schedule_id)
    }
}

/// A schedule, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScheduleAnswer {
    /// Its tenant.
    pub tenant: String,
    /// Its identifier.
    pub schedule_id: String,
    /// When it fires: the cron expression or `@every <n>s`.
    pub spec: String,
    /// The runs' project.
    pub project: String,
    /// The runs' profile.
    pub profile: String,
    /// Each run's command payload.
    pub payload: Value,
    /// The runs' priority.
    pub priority: Priority,
    /// What it does with late occurrences.
    pub catch_up: CatchUp,
    /// Whether it is paused.
    pub paused: bool,
    /// Whether it was deleted (by this request).
    pub deleted: bool,
    /// Runs it has started.
    pub runs_started: i64,
    /// The last occurrence it took (started a run or skipped).
    #[serde(deserialize_with = "present")]
    pub last_occurrence: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// `schedule.list`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScheduleList {
    /// The schedules, by tenant and id.
    pub schedules: Vec<ScheduleAnswer>,
}
