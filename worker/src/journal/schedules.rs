//! Recurring schedules' firings: each occurrence decided once
//! (`runfleet_schedule_fired`, `V9__schedules.sql`). The schedules
//! themselves are written by the operator API (`service/schedules.rs`).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Journal;
use crate::db::{Context, DbError};

/// What a firing of a schedule starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Firing {
    /// A run for the occurrence, from the schedule's template.
    Run {
        /// The runs' project.
        project: String,
        /// The runs' profile.
        profile: String,
        /// The command's payload.
        payload: Value,
        /// The priority (`high`, `normal`, `low`).
        priority: String,
    },
    /// Nothing: late, by the schedule's catch-up policy (or older than an
    /// occurrence already decided).
    Skip,
    /// Nothing: the schedule was paused or deleted.
    Gone,
}

impl Journal {
    /// Decides one firing of a schedule (the same answer for a redelivered one).
    ///
    /// # Errors
    /// [`DbError`] on database failure or an answer this build does not know.
    pub async fn schedule_fired(
        &self,
        tenant: &str,
        schedule_id: &str,
        occurrence: DateTime<Utc>,
        late: bool,
    ) -> Result<Firing, DbError> {
        let subject = || format!("schedule {schedule_id} of tenant {tenant} at {occurrence}");
        let conn = self
            .pool
            .get()
            .await
            .during("runfleet_schedule_fired", subject)?;
        let row = conn
            .query_one(
                "SELECT d, s.project, s.profile, s.payload, s.priority \
                   FROM runfleet_schedule_fired($1, $2, $3, $4) AS d \
                   LEFT JOIN schedules s ON s.tenant = $1 AND s.schedule_id = $2",
                &[&tenant, &schedule_id, &occurrence, &late],
            )
            .await
            .during("runfleet_schedule_fired", subject)?;
        Ok(match row.try_get::<_, &str>(0)? {
            "run" => match row.try_get::<_, Option<String>>(1)? {
                Some(project) => Firing::Run {
                    project,
                    profile: row.try_get(2)?,
                    payload: row.try_get(3)?,
                    priority: row.try_get(4)?,
                },
                None => Firing::Gone,
            },
            "skip" => Firing::Skip,
            "gone" => Firing::Gone,
            other => {
                return Err(DbError::unknown_outcome(
                    "runfleet_schedule_fired",
                    other,
                    "run, skip, gone",
                ));
            }
        })
    }
}
