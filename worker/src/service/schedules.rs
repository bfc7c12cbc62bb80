//! `schedule.create`, `schedule.list`, `schedule.update`: recurring runs.
//!
//! A schedule is a row of `schedules` (the truth) and a JetStream message
//! schedule on `runfleet.sched.<tenant>.<schedule_id>` in `RUNFLEET_TIMERS`
//! (its timing: `Nats-Schedule: <cron> | @every <n>s`, firing on
//! `runfleet.fire.<tenant>.<schedule_id>`; see [`crate::timers`]). The row
//! is written first, then the message published (or purged, to pause or
//! delete), so a firing always finds its schedule; a schedule whose
//! message could not be published is answered with the error and can be
//! created again.

use async_nats::HeaderMap;
use runfleet_schemas::api::{
    ScheduleAction, ScheduleAnswer, ScheduleCreateRequest, ScheduleList, ScheduleListRequest,
    ScheduleUpdateRequest,
};
use runfleet_schemas::{ScheduleId, Tenant, subjects};

use super::Api;
use super::error::ApiError;

/// JetStream's refusal of a `Nats-Schedule` value it cannot read
/// (`message schedules pattern is invalid`).
const PATTERN_INVALID: async_nats::jetstream::ErrorCode = async_nats::jetstream::ErrorCode(10189);

/// The columns [`answer`] reads.
const COLUMNS: &str = "tenant, schedule_id, spec, project, profile, payload, priority, catch_up, \
                       paused, runs_started, last_occurrence, created_at";

/// A stored schedule as the API answers it.
fn answer(row: &tokio_postgres::Row, deleted: bool) -> Result<ScheduleAnswer, ApiError> {
    fn enumerated<T: serde::de::DeserializeOwned>(text: String) -> Result<T, ApiError> {
        serde_json::from_value(serde_json::Value::String(text.clone()))
            .map_err(|_| ApiError::Internal(format!("a stored schedule has {text:?}")))
    }
    Ok(ScheduleAnswer {
        tenant: row.try_get(0)?,
        schedule_id: row.try_get(1)?,
        spec: row.try_get(2)?,
        project: row.try_get(3)?,
        profile: row.try_get(4)?,
        payload: row.try_get(5)?,
        priority: enumerated(row.try_get(6)?)?,
        catch_up: enumerated(row.try_get(7)?)?,
        paused: row.try_get(8)?,
        deleted,
        runs_started: row.try_get(9)?,
        last_occurrence: row.try_get(10)?,
        created_at: row.try_get(11)?,
    })
}

/// The schedule's subject tokens, validated by the request's check.
fn tokens(tenant: &str, schedule_id: &str) -> Result<(Tenant, ScheduleId), ApiError> {
    let bad = |err: runfleet_schemas::IdError| ApiError::BadRequest(err.to_string());
    Ok((
        Tenant::new(tenant).map_err(bad)?,
        ScheduleId::new(schedule_id).map_err(bad)?,
    ))
}

impl Api {
    /// `schedule.create`: stores the schedule and sets its timing.
    pub(super) async fn schedule_create(
        &self,
        request: ScheduleCreateRequest,
    ) -> Result<ScheduleAnswer, ApiError> {
        let spec = request
            .nats_schedule()
            .map_err(|err| ApiError::BadRequest(err.to_string()))?;
        let (tenant, schedule_id) = tokens(&request.tenant, &request.schedule_id)?;
        let payload = serde_json::Value::Object(request.payload.clone());
        let conn = self.pool.get().await?;
        let inserted = conn
            .query_opt(
                &format!(
                    "INSERT INTO schedules (tenant, schedule_id, spec, project, profile, payload, \
                     priority, catch_up) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (tenant, schedule_id) DO NOTHING RETURNING {COLUMNS}"
                ),
                &[
                    &request.tenant,
                    &request.schedule_id,
                    &spec,
                    &request.project,
                    &request.profile,
                    &payload,
                    &request.priority.as_str(),
                    &request.catch_up.as_str(),
                ],
            )
            .await?;
        let created = inserted.is_some();
        let stored = match inserted {
            Some(row) => answer(&row, false)?,
            None => {
                let row = self
                    .schedule_row(&request.tenant, &request.schedule_id)
                    .await?;
                let stored = answer(&row, false)?;
                let same = stored.spec == spec
                    && stored.project == request.project
                    && stored.profile == request.profile
                    && stored.payload == payload
                    && stored.priority == request.priority
                    && stored.catch_up == request.catch_up;
                if !same {
                    return Err(ApiError::BadRequest(format!(
                        "schedule {} of tenant {} exists with other fields: delete it first",
                        request.schedule_id, request.tenant
                    )));
                }
                stored
            }
        };
        if !stored.paused
            && let Err(err) = self.set_timing(&tenant, &schedule_id, &stored.spec).await
        {
            // A schedule without its timing would never fire: a new row
            // goes again, so the request can be made again as it is or
            // corrected.
            if created {
                conn.execute(
                    "DELETE FROM schedules WHERE tenant = $1 AND schedule_id = $2",
                    &[&request.tenant, &request.schedule_id],
                )
                .await?;
            }
            return Err(err);
        }
        tracing::info!(tenant = %tenant, schedule.id = %schedule_id, spec = %stored.spec, "schedule created");
        Ok(stored)
    }

    /// `schedule.list`: schedules by tenant and id.
    pub(super) async fn schedule_list(
        &self,
        request: ScheduleListRequest,
    ) -> Result<ScheduleList, ApiError> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM schedules WHERE $1::text IS NULL OR tenant = $1 \
                     ORDER BY tenant, schedule_id"
                ),
                &[&request.tenant],
            )
            .await?;
        let schedules = rows
            .iter()
            .map(|row| answer(row, false))
            .collect::<Result<_, _>>()?;
        Ok(ScheduleList { schedules })
    }

    /// `schedule.update`: pause, resume or delete. The row's change and
    /// the timing's are made under the row's lock and committed only once
    /// JetStream took the timing's, so concurrent updates of one schedule
    /// follow each other and a failed one changes nothing.
    pub(super) async fn schedule_update(
        &self,
        request: ScheduleUpdateRequest,
    ) -> Result<ScheduleAnswer, ApiError> {
        let (tenant, schedule_id) = tokens(&request.tenant, &request.schedule_id)?;
        let key: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
            [&request.tenant, &request.schedule_id];
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await?;
        let sql = match request.action {
            ScheduleAction::Pause => format!(
                "UPDATE schedules SET paused = true WHERE tenant = $1 AND schedule_id = $2 \
                 RETURNING {COLUMNS}"
            ),
            ScheduleAction::Resume => format!(
                "UPDATE schedules SET paused = false WHERE tenant = $1 AND schedule_id = $2 \
                 RETURNING {COLUMNS}"
            ),
            ScheduleAction::Delete => format!(
                "DELETE FROM schedules WHERE tenant = $1 AND schedule_id = $2 RETURNING {COLUMNS}"
            ),
        };
        let Some(row) = tx.query_opt(&sql, &key).await? else {
            if request.action == ScheduleAction::Delete {
                // Gone already: its timing may have outlived it (a delete
                // whose purge failed); remove that too.
                self.clear_timing(&tenant, &schedule_id).await?;
            }
            return Err(ApiError::NotFound(format!(
                "no schedule {} of tenant {}",
                request.schedule_id, request.tenant
            )));
        };
        let stored = answer(&row, request.action == ScheduleAction::Delete)?;
        match request.action {
            ScheduleAction::Resume => {
                self.set_timing(&tenant, &schedule_id, &stored.spec).await?;
            }
            ScheduleAction::Pause | ScheduleAction::Delete => {
                self.clear_timing(&tenant, &schedule_id).await?;
            }
        }
        tx.commit().await?;
        tracing::info!(tenant = %tenant, schedule.id = %schedule_id, action = ?request.action, "schedule updated");
        Ok(stored)
    }

    async fn schedule_row(
        &self,
        tenant: &str,
        schedule_id: &str,
    ) -> Result<tokio_postgres::Row, ApiError> {
        let conn = self.pool.get().await?;
        conn.query_opt(
            &format!("SELECT {COLUMNS} FROM schedules WHERE tenant = $1 AND schedule_id = $2"),
            &[&tenant, &schedule_id],
        )
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no schedule {schedule_id} of tenant {tenant}")))
    }

    /// Publishes the schedule's timing (replacing any earlier one: one
    /// message schedule per subject).
    async fn set_timing(
        &self,
        tenant: &Tenant,
        schedule_id: &ScheduleId,
        spec: &str,
    ) -> Result<(), ApiError> {
        let subject = subjects::schedule(tenant, schedule_id);
        let mut map = HeaderMap::new();
        map.insert("Nats-Schedule", spec);
        map.insert(
            "Nats-Schedule-Target",
            subjects::fire(tenant, schedule_id).as_str(),
        );
        let failed = |err: &dyn std::error::Error| {
            ApiError::Internal(format!(
                "JetStream did not store the schedule on {subject}: {err}"
            ))
        };
        self.jetstream
            .publish_with_headers(subject.clone(), map, bytes::Bytes::new())
            .await
            .map_err(|err| failed(&err))?
            .await
            .map_err(|err| {
                let refused = std::error::Error::source(&err)
                    .and_then(|source| source.downcast_ref::<async_nats::jetstream::Error>())
                    .is_some_and(|refusal| refusal.error_code() == PATTERN_INVALID);
                if refused {
                    ApiError::BadRequest(format!(
                        "cron: {spec:?} is not a schedule nats-server accepts \
                         (second minute hour day-of-month month day-of-week, each `*`, \
                         a number, a range, a list or a step)"
                    ))
                } else {
                    failed(&err)
                }
            })?;
        Ok(())
    }

    /// Removes the schedule's timing (its message schedule).
    async fn clear_timing(
        &self,
        tenant: &Tenant,
        schedule_id: &ScheduleId,
    ) -> Result<(), ApiError> {
        let subject = subjects::schedule(tenant, schedule_id);
        let stream = self
            .jetstream
            .get_stream(subjects::TIMER_STREAM)
            .await
            .map_err(|err| {
                ApiError::Internal(format!("cannot reach {}: {err}", subjects::TIMER_STREAM))
            })?;
        stream
            .purge()
            .filter(subject.as_str())
            .await
            .map_err(|err| {
                ApiError::Internal(format!("cannot remove the schedule on {subject}: {err}"))
            })?;
        Ok(())
    }
}
