//! Recurring runs: what a worker does when a schedule fires.
//!
//! A schedule's JetStream message schedule publishes one message on
//! `runfleet.fire.<tenant>.<schedule_id>` per occurrence (stored once, in
//! `RUNFLEET_TIMERS`, by the stream's leader: once fleet-wide), and the
//! shared consumer of [`crate::timers`] hands it to one worker. Its
//! occurrence is the firing's stored time, to the second. PostgreSQL
//! decides the occurrence once ([`Journal::schedule_fired`]): a run, or
//! nothing when it is taken more than [`LATE`] after its time and the
//! schedule's catch-up policy says so. A run is `run.create` and command 1,
//! published like a producer's under keys derived from the schedule and the
//! occurrence (`schedule:<id>:<unix seconds>`, run id
//! `<schedule_id>-<unix seconds>`), so a firing taken twice (its worker
//! died before the ack) starts one run.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use runfleet_schemas::{
    CommandCreate, CommandId, CommandKind, Priority, ProfileName, ProjectId, RunCreate, RunId,
    SchemaVersion, Tenant, subjects,
};

use crate::journal::{Firing, Journal};
use crate::publisher::{PublishError, publish};

/// A firing taken later than this after its occurrence is late: the
/// schedule's catch-up policy decides whether it starts a run.
pub const LATE: Duration = Duration::from_secs(60);

/// Handles one firing: decide, publish the run, acknowledge. A failure
/// hands the firing back to be taken again.
pub(crate) async fn fired(
    journal: &Journal,
    js: &jetstream::Context,
    message: &jetstream::Message,
) {
    let Some((tenant, schedule_id)) = subjects::parse_fire(&message.subject) else {
        let _ = message.ack().await;
        return;
    };
    let stored = message
        .info()
        .ok()
        .and_then(|info| DateTime::<Utc>::from_timestamp(info.published.unix_timestamp(), 0));
    let Some(occurrence) = stored.and_then(|at| at.duration_trunc(TimeDelta::seconds(1)).ok())
    else {
        tracing::warn!(subject = %message.subject, "a firing without its stored time; dropped");
        let _ = message.ack().await;
        return;
    };
    let late = (Utc::now() - occurrence)
        .to_std()
        .is_ok_and(|behind| behind > LATE);
    let outcome = match journal
        .schedule_fired(tenant, schedule_id, occurrence, late)
        .await
    {
        Ok(Firing::Run {
            project,
            profile,
            payload,
            priority,
        }) => {
            let started = start_run(
                js,
                tenant,
                schedule_id,
                occurrence,
                &project,
                &profile,
                payload,
                &priority,
            )
            .await;
            started.map(|run_id| format!("started run {run_id}"))
        }
        Ok(Firing::Skip) => Ok("skipped (late)".to_owned()),
        Ok(Firing::Gone) => Ok("ignored (paused or deleted)".to_owned()),
        Err(err) => Err(err.to_string()),
    };
    match outcome {
        Ok(what) => {
            tracing::info!(tenant, schedule.id = schedule_id, occurrence = %occurrence, late, "schedule fired: {what}");
            let _ = message.ack().await;
        }
        Err(err) => {
            tracing::warn!(tenant, schedule.id = schedule_id, error = %err, "a schedule's firing failed; it is taken again");
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
    }
}

/// Publishes the occurrence's run and its command 1; the run's id.
#[allow(clippy::too_many_arguments)]
async fn start_run(
    js: &jetstream::Context,
    tenant: &str,
    schedule_id: &str,
    occurrence: DateTime<Utc>,
    project: &str,
    profile: &str,
    payload: serde_json::Value,
    priority: &str,
) -> Result<RunId, String> {
    let seconds = occurrence.timestamp();
    let invalid = |err: runfleet_schemas::IdError| err.to_string();
    let tenant = Tenant::new(tenant).map_err(invalid)?;
    let run_id = RunId::new(format!("{schedule_id}-{seconds}")).map_err(invalid)?;
    let priority: Priority = serde_json::from_value(serde_json::Value::String(priority.to_owned()))
        .map_err(|_| format!("the schedule's stored priority {priority:?} is not a priority"))?;
    let payload = match payload {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let key = format!("schedule:{schedule_id}:{seconds}");
    let run = RunCreate {
        schema: Default::default(),
        version: SchemaVersion,
        run_id: run_id.clone(),
        tenant: tenant.clone(),
        project: ProjectId::new(project).map_err(invalid)?,
        backend_profile: ProfileName::new(profile).map_err(invalid)?,
        session_id: None,
        resource_bundle: None,
        budgets: Default::default(),
        labels: [
            ("schedule".to_owned(), schedule_id.to_owned()),
            ("occurrence".to_owned(), occurrence.to_rfc3339()),
        ]
        .into(),
        idempotency_key: key.clone(),
        // The occurrence, not now: a firing taken again publishes the same
        // bytes, a duplicate, never a conflicting payload under its key.
        created_at: occurrence,
        priority,
        concurrency_key: None,
    };
    let command = CommandCreate {
        schema: Default::default(),
        version: SchemaVersion,
        command_id: CommandId::new(format!("{run_id}-1")).map_err(invalid)?,
        tenant,
        run_id: run_id.clone(),
        seq: 1,
        kind: CommandKind::Turn,
        payload,
        idempotency_key: format!("{key}:1"),
        timeout_ms: None,
        created_at: run.created_at,
        not_before: None,
        schedule_to_start_ms: None,
        priority,
    };
    let failed = |err: PublishError| err.to_string();
    publish(js, &run, None).await.map_err(failed)?;
    publish(js, &command, None).await.map_err(failed)?;
    Ok(run_id)
}
