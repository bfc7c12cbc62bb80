//! Building producer messages with sensible defaults: UUIDv7 identifiers,
//! idempotency keys derived from identity (`run:<run_id>`,
//! `cmd:<run_id>:<seq>`), and `created_at` set to now.

use runfleet_schemas::{
    CommandCreate, CommandKind, ControlCancel, IdError, ProfileName, ProjectId, RunCreate, RunId,
    SchemaVersion, Tenant,
};

/// A new run with a fresh UUIDv7 id and key `run:<run_id>`.
///
/// # Errors
/// [`IdError`] naming the identifier that is not a valid subject token.
pub fn new_run(tenant: &str, project: &str, backend_profile: &str) -> Result<RunCreate, IdError> {
    let run_id = RunId::new(uuid::Uuid::now_v7().to_string())?;
    Ok(RunCreate {
        schema: Default::default(),
        version: SchemaVersion,
        idempotency_key: format!("run:{run_id}"),
        run_id,
        tenant: Tenant::new(tenant)?,
        project: ProjectId::new(project)?,
        backend_profile: ProfileName::new(backend_profile)?,
        session_id: None,
        resource_bundle: None,
        budgets: Default::default(),
        labels: Default::default(),
        created_at: chrono::Utc::now(),
        priority: Default::default(),
        concurrency_key: None,
    })
}

/// Command `seq` of a run, with a fresh UUIDv7 id and key `cmd:<run_id>:<seq>`.
pub fn new_command(
    tenant: &Tenant,
    run_id: &RunId,
    seq: u64,
    kind: CommandKind,
    payload: serde_json::Map<String, serde_json::Value>,
) -> CommandCreate {
    CommandCreate {
        schema: Default::default(),
        version: SchemaVersion,
        command_id: runfleet_schemas::CommandId::new(uuid::Uuid::now_v7().to_string())
            .expect("a UUID is a valid token"),
        tenant: tenant.clone(),
        run_id: run_id.clone(),
        seq,
        kind,
        payload,
        idempotency_key: format!("cmd:{run_id}:{seq}"),
        timeout_ms: None,
        not_before: None,
        schedule_to_start_ms: None,
        priority: Default::default(),
        created_at: chrono::Utc::now(),
    }
}

/// A cancellation of a run (or of one of its commands).
pub fn new_cancel(
    tenant: &Tenant,
    run_id: &RunId,
    command_id: Option<runfleet_schemas::CommandId>,
    reason: Option<String>,
) -> ControlCancel {
    let target = command_id
        .as_ref()
        .map_or_else(|| run_id.to_string(), |c| format!("{run_id}:{c}"));
    ControlCancel {
        schema: Default::default(),
        version: SchemaVersion,
        tenant: tenant.clone(),
        run_id: run_id.clone(),
        command_id,
        reason,
        idempotency_key: format!("cancel:{target}"),
        created_at: chrono::Utc::now(),
    }
}
