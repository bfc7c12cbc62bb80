//! `run.create`: record the run (idempotently), then ack. A run whose
//! session is bound to another tenant, project or profile is recorded
//! blocked and its message dead-lettered with `tenant-policy-denied`.

use async_nats::jetstream;
use runfleet_schemas::{FailureKind, RunCreate};

use super::{Delivery, Disposition, Retryable, dead_letter};
use crate::handler::Shared;
use crate::journal::CreateRun;

pub(super) async fn handle(
    shared: &Shared,
    message: &jetstream::Message,
    delivery: &Delivery,
    run: RunCreate,
) -> Result<Disposition, Retryable> {
    match shared
        .journal
        .create_run(&run, message.payload.clone())
        .await?
    {
        CreateRun::Created | CreateRun::Exists => {
            tracing::debug!(run.id = %run.run_id, tenant = %run.tenant, "run recorded");
            shared.announce(run.tenant.as_str(), run.run_id.as_str());
            Ok(Disposition::Ack)
        }
        CreateRun::Denied(why) => {
            // The run exists, blocked, so its commands get receipts saying
            // why; the operator gets the dead letter.
            tracing::warn!(run.id = %run.run_id, tenant = %run.tenant, why = %why, "run refused by policy");
            shared.announce(run.tenant.as_str(), run.run_id.as_str());
            dead_letter(
                shared,
                message,
                delivery,
                FailureKind::TenantPolicyDenied,
                why,
            )
            .await
        }
        CreateRun::Conflict(why) => {
            dead_letter(
                shared,
                message,
                delivery,
                FailureKind::IdempotencyConflict,
                why,
            )
            .await
        }
    }
}
