//! `run.create`: record the run (idempotently), then ack.

use async_nats::jetstream;
use runfleet_schemas::{FailureKind, RunCreate};

use super::{Delivery, Disposition, Retryable, dead_letter};
use crate::journal::CreateRun;
use crate::worker::Shared;

pub(super) async fn handle(
    shared: &Shared,
    message: &jetstream::Message,
    delivery: &Delivery,
    run: RunCreate,
) -> Result<Disposition, Retryable> {
    match shared.journal.create_run(&run).await? {
        CreateRun::Created | CreateRun::Exists => {
            tracing::debug!(run.id = %run.run_id, tenant = %run.tenant, "run recorded");
            shared.announce(run.tenant.as_str(), run.run_id.as_str());
            Ok(Disposition::Ack)
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
