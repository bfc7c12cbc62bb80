//! The fleet's NATS micro service `runfleet`: run status, commands, events,
//! dead letters and fleet statistics, answered by whichever worker is free.
//!
//! Every worker starts the service ([`serve`]), so the standard micro-service
//! tooling shows the fleet: `nats micro ls`, `nats micro info runfleet` (one
//! instance per worker) and `nats micro stats runfleet` (requests, errors
//! and processing time per endpoint and instance). Discovery answers on
//! `$SRV.PING.runfleet`, `$SRV.INFO.runfleet` and `$SRV.STATS.runfleet`.
//! All instances share the service's queue group, so each request is
//! answered by exactly one worker; all of them read the same PostgreSQL.
//!
//! # Endpoints
//!
//! Subjects are `runfleet.api.<endpoint>` ([`API_PREFIX`]). Requests and
//! answers are the types of [`runfleet_schemas::api`] (their JSON Schemas
//! are committed with the messages'), as JSON objects; an empty request body counts as `{}`,
//! `null` as an absent field, and unknown request fields are refused (so a
//! misspelt field is not silently ignored). Timestamps are RFC 3339 in UTC.
//!
//! | endpoint      | request                                                                  | response |
//! |---------------|--------------------------------------------------------------------------|----------|
//! | `run.status`  | `{"tenant", "run_id"}`                                                   | `{"tenant", "run_id", "status", "profile", "project", "session_id", "failure_kind", "status_reason", "next_seq", "spent", "budgets", "created_at", "updated_at", "lease_holder", "lease_expires_at", "commands_total", "commands": [{"command_id", "seq", "kind", "status", "attempt", "worker_id", "started_at", "finished_at", "failure"}]}`: `budgets` from the run's spec (`{}` when none), `failure` the receipt's `{"kind", "message"}` or `null`; the last 1000 commands, in seq order |
//! | `command.get` | `{"tenant", "run_id", "command_id"}`                                     | `{"tenant", "run_id", "command_id", "seq", "kind", "status", "attempt", "worker_id", "fencing_token", "idempotency_key", "message", "created_at", "started_at", "finished_at", "receipt", "steps"}`: `message` the `command.create` as received, `receipt` the journaled receipt or `null`, `steps` the journaled step names in the order written |
//! | `events.after`| `{"tenant", "run_id", "after_seq"?: 0, "limit"?: 100}` (limit 1–1000)   | `{"tenant", "run_id", "after_seq", "last_seq", "next_after_seq", "more", "events": [event, …]}`: events with seq > `after_seq` in seq order; ask again with `after_seq = next_after_seq` while `more` |
//! | `dlq.list`    | `{"tenant"?: null, "limit"?: 50, "include_redriven"?: false}` (limit 1–1000) | `{"more", "dead_letters": [{"dead_letter_id", "tenant", "reason", "message", "subject", "created_at", "redriven_at"}]}`, newest first; `message` is the dead letter's explanation |
//! | `dlq.show`    | `{"dead_letter_id"}`                                                     | `{"dead_letter_id", "created_at", "redriven_at", "dead_letter": {the stored `dead-letter` message}}` |
//! | `dlq.redrive` | `{"dead_letter_id"}`                                                     | `{"dead_letter_id", "subject", "stream", "sequence", "duplicate", "redriven_at"}` (see [Re-driving](#re-driving)) |
//! | `fleet.stats` | `{}`                                                                     | `{"at", "workers": [{"worker_id", "host", "pid", "version", "started_at", "last_seen", "stopped_at", "alive", "in_flight"}], "commands_by_status": {status: n}, "runs_by_status": {status: n}, "dead_letters": {"pending", "redriven"}}`: workers seen in the last 24 h; `alive` = seen within 30 s and not stopped; `in_flight` = its `running` commands; every status is listed, with 0 when it has none |
//!
//! # Errors
//!
//! Failures are micro-service errors (the `Nats-Service-Error` and
//! `Nats-Service-Error-Code` headers, empty body):
//!
//! | code | when |
//! |------|------|
//! | 400  | the request is invalid (the message names the field), or the dead letter was already re-driven (the message says when) |
//! | 404  | no such run, command or dead letter |
//! | 413  | the answer would exceed the server's `max_payload`: ask for a smaller `limit` |
//! | 500  | PostgreSQL failed (only its SQLSTATE is given; the worker's log has the rest), or JetStream did not store a re-driven message |
//!
//! Error messages never carry the database URL or a credential.
//!
//! # Re-driving
//!
//! `dlq.redrive` publishes the dead letter's original message again,
//! through JetStream and awaiting its PubAck: on its original subject, with
//! its original payload byte for byte (`base64` payloads decoded), and its
//! original headers as stored (values redacted when dead-lettered stay
//! redacted) except that `Nats-Msg-Id` becomes `redrive:<dead_letter_id>`
//! and `Nats-Expected-*` preconditions of the original publish are dropped.
//! With that id a repeated redrive inside the stream's duplicate window is
//! deduplicated (`duplicate: true`), whereas the original id would have
//! been dropped as a duplicate of the original. Only after the PubAck is
//! the dead letter marked `redriven_at`; a second redrive is then refused.
//! Concurrent redrives of one dead letter are serialized by a row lock.
//!
//! What to expect:
//! - The re-driven message is a new message: a new stream sequence, a
//!   delivery count starting at 1 and a new delivery history. If it fails
//!   again it becomes a *new* dead letter; the old one stays, re-driven.
//! - The body is unchanged, so is its idempotency key, and PostgreSQL's
//!   idempotency still applies: a command whose receipt is already journaled
//!   (for instance one that exhausted its deliveries while executing, or
//!   whose run was terminal) replays that receipt and is not executed again.
//! - Redrive is for messages that ended *without* a receipt because of
//!   something outside the message that has since been fixed: a command
//!   dead-lettered `run-not-found` once its run exists, or one that
//!   exhausted its deliveries while the database or broker was down.
//! - Redrive cannot repair the message itself: a `schema-invalid` message
//!   or an `idempotency-conflict` is re-driven byte for byte and fails the
//!   same way. Fix the producer and publish a corrected message instead.
//! - If the worker dies between the PubAck and the mark, the dead letter
//!   stays pending; redriving it again inside the duplicate window is
//!   deduplicated, later it is published again (and idempotency applies).
//!
//! # Access
//!
//! The service does not authenticate callers: anyone allowed to publish on
//! `runfleet.api.>` reads every tenant's runs and can re-drive dead letters.
//! Grant that subject to operators only (NATS permissions).

//!
//! # Layout
//!
//! One file per endpoint, each an `impl Api` block with the endpoint's
//! handler (`run_status`, `command_get`, `events_after`, `dlq_list`,
//! `dlq_show`, `dlq_redrive`, `fleet_stats`); requests are read with
//! [`runfleet_schemas::api::read_request`], failures are `error`'s; the
//! session answerer, a request/reply service of its own, is [`sessions`].

mod command_get;
mod dlq_list;
mod dlq_redrive;
mod dlq_show;
mod endpoint;
mod error;
mod events_after;
mod fleet_stats;
pub(crate) mod keys;
mod limits;
mod run_status;
pub mod runs_list;
mod schedules;
pub mod sessions;
mod signers;

use std::sync::Arc;

use async_nats::jetstream;
use async_nats::service::{self, ServiceExt};
use futures::StreamExt;
use runfleet_schemas::api::{self, ApiRequest};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use self::endpoint::ENDPOINTS;
use self::endpoint::Endpoint;
use self::error::ApiError;
use crate::db::Pool;

/// The micro service's name (`nats micro info runfleet`).
pub const SERVICE_NAME: &str = "runfleet";
pub use runfleet_schemas::api::API_PREFIX;
/// The service's description, as discovery shows it.
pub const DESCRIPTION: &str = "runfleet worker fleet: run status, commands, events, dead letters, fleet statistics, schedules, concurrency limits";

/// Requests one endpoint handles at once (per worker).
const CONCURRENCY: usize = 16;

/// Why the service could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// NATS refused to register the service.
    #[error("cannot start the NATS micro service {SERVICE_NAME}: {0}")]
    Start(#[source] async_nats::Error),
    /// An endpoint could not subscribe to its subject.
    #[error("cannot add the endpoint {subject} of the NATS micro service {SERVICE_NAME}: {cause}")]
    Endpoint {
        /// The endpoint's subject.
        subject: String,
        /// The client's reason.
        #[source]
        cause: async_nats::Error,
    },
}

/// The `runfleet` micro service, registered and subscribed: requests sent
/// from now on are answered once [`Registered::serve`] runs.
pub struct Registered {
    service: service::Service,
    endpoints: Vec<(Endpoint, service::endpoint::Endpoint)>,
    api: Arc<Api>,
}

/// Registers the `runfleet` micro service and its endpoints with NATS (a
/// worker does this before it says it started, so an operator's first
/// request finds it).
///
/// # Errors
/// [`ServiceError`] when the service or one of its endpoints cannot be
/// registered with NATS.
pub async fn register(client: async_nats::Client, pool: Pool) -> Result<Registered, ServiceError> {
    let service = client
        .service_builder()
        .description(DESCRIPTION)
        .start(SERVICE_NAME, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(ServiceError::Start)?;
    let group = service.group(API_PREFIX);
    let mut endpoints = Vec::with_capacity(Endpoint::ALL.len());
    for endpoint in Endpoint::ALL {
        let added = group
            .endpoint_builder()
            .name(endpoint.name())
            .add(endpoint.subject())
            .await;
        match added {
            Ok(requests) => endpoints.push((endpoint, requests)),
            Err(cause) => {
                stop_service(service).await;
                return Err(ServiceError::Endpoint {
                    subject: format!("{API_PREFIX}.{}", endpoint.subject()),
                    cause,
                });
            }
        }
    }
    // The subscriptions are in place once the server has seen them.
    if let Err(cause) = client.flush().await {
        stop_service(service).await;
        return Err(ServiceError::Endpoint {
            subject: format!("{API_PREFIX}.>"),
            cause: cause.into(),
        });
    }
    let api = Arc::new(Api {
        jetstream: jetstream::new(client.clone()),
        client,
        pool,
    });
    Ok(Registered {
        service,
        endpoints,
        api,
    })
}

impl Registered {
    /// Answers the service's requests until `stop`, then lets the requests
    /// in flight finish and stops the service.
    ///
    /// Each endpoint handles up to 16 requests at once; PostgreSQL work is
    /// further bounded by the pool. Failures of single requests are
    /// answered to their caller and logged, never returned.
    pub async fn serve(self, stop: CancellationToken) {
        let Registered {
            service,
            endpoints,
            api,
        } = self;
        tracing::info!(
            service = SERVICE_NAME,
            prefix = API_PREFIX,
            "answering the fleet's micro service"
        );
        let handlers = endpoints.into_iter().map(|(endpoint, requests)| {
            let api = Arc::clone(&api);
            requests
                .take_until(stop.clone().cancelled_owned())
                .for_each_concurrent(CONCURRENCY, move |request| {
                    let api = Arc::clone(&api);
                    async move { api.answer(endpoint, request).await }
                })
        });
        futures::future::join_all(handlers).await;
        stop_service(service).await;
        tracing::info!(service = SERVICE_NAME, "micro service stopped");
    }
}

/// Deregisters the service (its discovery subjects stop answering).
async fn stop_service(service: service::Service) {
    if let Err(err) = service.stop().await {
        tracing::debug!(error = %err, "stopping the micro service");
    }
}

/// What every request handler shares.
#[derive(Debug)]
struct Api {
    /// Core NATS, for the server's `max_payload`.
    client: async_nats::Client,
    /// JetStream, for re-driving dead letters with a PubAck.
    jetstream: jetstream::Context,
    /// The journal database.
    pool: Pool,
}

impl Api {
    /// Answers one request, successfully or with a micro-service error.
    async fn answer(&self, endpoint: Endpoint, request: service::Request) {
        let span = tracing::debug_span!("service.request", endpoint = endpoint.subject());
        let result = self
            .dispatch(endpoint, &request.message.payload)
            .instrument(span)
            .await;
        let response = result.map_err(|err| {
            tracing::debug!(endpoint = endpoint.subject(), error = ?err, "request refused");
            err.into_service_error()
        });
        if let Err(err) = request.respond(response).await {
            tracing::debug!(endpoint = endpoint.subject(), error = %err, "could not answer a request");
        }
    }

    /// The JSON answer as bytes, if it fits in one message.
    fn encode<T: Serialize>(&self, value: &T) -> Result<bytes::Bytes, ApiError> {
        let body = serde_json::to_vec(value)
            .map_err(|err| ApiError::Internal(format!("cannot encode the answer: {err}")))?;
        // Leave room for the reply's headers.
        let max = self.client.server_info().max_payload;
        if max > 0 && body.len() + 512 > max {
            return Err(ApiError::TooLarge(format!(
                "the answer is {} bytes, more than the server's max_payload of {max}: ask for a smaller limit",
                body.len()
            )));
        }
        Ok(body.into())
    }

    /// Reads the request of `endpoint`, handles it and encodes its answer.
    async fn dispatch(&self, endpoint: Endpoint, body: &[u8]) -> Result<bytes::Bytes, ApiError> {
        match endpoint {
            Endpoint::RunStatus => self.encode(&self.run_status(read(body)?).await?),
            Endpoint::CommandGet => self.encode(&self.command(read(body)?).await?),
            Endpoint::EventsAfter => self.encode(&self.events_after(read(body)?).await?),
            Endpoint::DlqList => self.encode(&self.dlq_list(read(body)?).await?),
            Endpoint::DlqShow => self.encode(&self.dlq_show(read(body)?).await?),
            Endpoint::DlqRedrive => self.encode(&self.dlq_redrive(read(body)?).await?),
            Endpoint::FleetStats => self.encode(&self.fleet_stats(read(body)?).await?),
            Endpoint::ScheduleCreate => self.encode(&self.schedule_create(read(body)?).await?),
            Endpoint::ScheduleList => self.encode(&self.schedule_list(read(body)?).await?),
            Endpoint::ScheduleUpdate => self.encode(&self.schedule_update(read(body)?).await?),
            Endpoint::LimitSet => self.encode(&self.limit_set(read(body)?).await?),
            Endpoint::LimitList => self.encode(&self.limit_list(read(body)?).await?),
            Endpoint::LimitDelete => self.encode(&self.limit_delete(read(body)?).await?),
            Endpoint::RunsList => self.encode(&self.runs_list(read(body)?).await?),
            Endpoint::SignerAdd => self.encode(&self.signer_add(read(body)?).await?),
            Endpoint::SignerList => self.encode(&self.signer_list(read(body)?).await?),
            Endpoint::SignerRemove => self.encode(&self.signer_remove(read(body)?).await?),
        }
    }
}

/// A request number as a PostgreSQL bigint.
fn bigint(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A request body as `R`; a refusal (400) names the field.
fn read<R: ApiRequest>(body: &[u8]) -> Result<R, ApiError> {
    api::read_request(body).map_err(|err| ApiError::BadRequest(err.to_string()))
}
