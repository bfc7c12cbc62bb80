//! Run-level events: entries of a run's log that belong to no command (a
//! kept per-run process closing when its worker stops or it sat idle).
//!
//! They are appended in PostgreSQL only while no claim owns the run (a
//! claim owns the run's next event seqs), then published like any event.

use chrono::Utc;
use runfleet_schemas::{Event, EventBody, RunId, SchemaVersion, Tenant, decode_value};

use crate::journal::Journal;
use crate::publisher::publish;
use crate::redact::Redactor;

/// Appends and publishes run-level events.
#[derive(Debug, Clone)]
pub struct RunLog {
    /// Where events are stored.
    pub journal: Journal,
    /// Where they are published.
    pub jetstream: async_nats::jetstream::Context,
    /// Scrubs them first.
    pub redactor: Redactor,
}

impl RunLog {
    /// Appends `body` to the run's log and publishes it; logs (and drops)
    /// the event when a claim owns the run or a dependency fails.
    pub async fn append(&self, tenant: &str, run_id: &str, body: EventBody) {
        let (Ok(tenant_id), Ok(run)) = (Tenant::new(tenant), RunId::new(run_id)) else {
            return;
        };
        let event = Event {
            schema: Default::default(),
            version: SchemaVersion,
            tenant: tenant_id,
            run_id: run,
            command_id: None,
            seq: 1,
            attempt: None,
            at: Utc::now(),
            body,
        };
        let mut value = serde_json::to_value(&event).unwrap_or_default();
        self.redactor.redact_value(&mut value);
        if let Some(object) = value.as_object_mut() {
            object.remove("seq");
        }
        match self.journal.append_run_event(tenant, run_id, &value).await {
            Ok(Some(stored)) => match decode_value::<Event>(stored) {
                Ok(event) => {
                    if let Err(err) = publish(&self.jetstream, &event, None).await {
                        tracing::warn!(error = %err, "run event stored but not published");
                    }
                }
                Err(err) => tracing::warn!(error = %err, "stored run event does not decode"),
            },
            Ok(None) => {
                tracing::info!(
                    run.id = run_id,
                    "the run is claimed elsewhere (or gone); run event not appended"
                )
            }
            Err(err) => tracing::warn!(error = %err, "could not append a run event"),
        }
    }
}
