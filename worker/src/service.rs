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
//! Subjects are `runfleet.api.<endpoint>` ([`API_PREFIX`]). Request and
//! response bodies are JSON objects; an empty request body counts as `{}`,
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

use std::sync::Arc;
use std::time::Duration;

use async_nats::service::{self, ServiceExt};
use async_nats::{HeaderMap, HeaderName, HeaderValue, jetstream};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use runfleet_schemas::{DeadLetter, headers};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::db::{DbError, Pool};

/// The micro service's name (`nats micro info runfleet`).
pub const SERVICE_NAME: &str = "runfleet";
/// The subject prefix of every endpoint: `runfleet.api.<endpoint>`.
pub const API_PREFIX: &str = "runfleet.api";
/// The service's description, as discovery shows it.
pub const DESCRIPTION: &str =
    "runfleet worker fleet: run status, commands, events, dead letters, fleet statistics";
/// Every endpoint, as its subject below [`API_PREFIX`].
pub const ENDPOINTS: [&str; 7] = [
    "run.status",
    "command.get",
    "events.after",
    "dlq.list",
    "dlq.show",
    "dlq.redrive",
    "fleet.stats",
];

/// Requests one endpoint handles at once (per worker).
const CONCURRENCY: usize = 16;
/// A worker seen within this long, and not stopped, is alive.
const ALIVE_WITHIN: Duration = Duration::from_secs(30);
/// Workers seen within this long are listed.
const LISTED_WITHIN: Duration = Duration::from_secs(24 * 60 * 60);
/// `run.status` lists at most this many (most recent) commands.
const MAX_COMMANDS: i64 = 1000;
/// The largest `limit` of `events.after` and `dlq.list`.
const MAX_LIMIT: u64 = 1000;
/// The largest `after_seq` (PostgreSQL's bigint).
const MAX_SEQ: u64 = i64::MAX as u64;
/// Longest error message sent (the header must stay small).
const MAX_ERROR_LEN: usize = 1024;

/// Command statuses (the `commands.status` CHECK), for stable statistics.
const COMMAND_STATUSES: [&str; 7] = [
    "pending",
    "acknowledged",
    "running",
    "completed",
    "failed",
    "cancelled",
    "timed-out",
];
/// Run statuses (the `runs.status` CHECK), for stable statistics.
const RUN_STATUSES: [&str; 6] = [
    "pending",
    "claimed",
    "completed",
    "failed",
    "blocked",
    "cancelled",
];

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

/// Starts the `runfleet` micro service and answers its requests until
/// `stop`, then lets the requests in flight finish and stops the service.
///
/// Each endpoint handles up to 16 requests at once; PostgreSQL work is
/// further bounded by `pool`.
///
/// # Errors
/// [`ServiceError`] when the service or one of its endpoints cannot be
/// registered with NATS. Failures of single requests are answered to their
/// caller and logged, never returned.
pub async fn serve(
    client: async_nats::Client,
    pool: Pool,
    stop: CancellationToken,
) -> Result<(), ServiceError> {
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
    tracing::info!(
        service = SERVICE_NAME,
        prefix = API_PREFIX,
        "answering the fleet's micro service"
    );
    let api = Arc::new(Api {
        jetstream: jetstream::new(client.clone()),
        client,
        pool,
    });
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
    Ok(())
}

/// Deregisters the service (its discovery subjects stop answering).
async fn stop_service(service: service::Service) {
    if let Err(err) = service.stop().await {
        tracing::debug!(error = %err, "stopping the micro service");
    }
}

/// The endpoints, dispatched on by [`Api::dispatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    /// `run.status`
    RunStatus,
    /// `command.get`
    CommandGet,
    /// `events.after`
    EventsAfter,
    /// `dlq.list`
    DlqList,
    /// `dlq.show`
    DlqShow,
    /// `dlq.redrive`
    DlqRedrive,
    /// `fleet.stats`
    FleetStats,
}

impl Endpoint {
    /// Every endpoint, in the order of [`ENDPOINTS`].
    const ALL: [Endpoint; 7] = [
        Endpoint::RunStatus,
        Endpoint::CommandGet,
        Endpoint::EventsAfter,
        Endpoint::DlqList,
        Endpoint::DlqShow,
        Endpoint::DlqRedrive,
        Endpoint::FleetStats,
    ];

    /// The subject below [`API_PREFIX`].
    fn subject(self) -> &'static str {
        match self {
            Endpoint::RunStatus => ENDPOINTS[0],
            Endpoint::CommandGet => ENDPOINTS[1],
            Endpoint::EventsAfter => ENDPOINTS[2],
            Endpoint::DlqList => ENDPOINTS[3],
            Endpoint::DlqShow => ENDPOINTS[4],
            Endpoint::DlqRedrive => ENDPOINTS[5],
            Endpoint::FleetStats => ENDPOINTS[6],
        }
    }

    /// The endpoint's name in discovery and statistics (`run-status`, …).
    fn name(self) -> &'static str {
        match self {
            Endpoint::RunStatus => "run-status",
            Endpoint::CommandGet => "command-get",
            Endpoint::EventsAfter => "events-after",
            Endpoint::DlqList => "dlq-list",
            Endpoint::DlqShow => "dlq-show",
            Endpoint::DlqRedrive => "dlq-redrive",
            Endpoint::FleetStats => "fleet-stats",
        }
    }
}

/// A request that failed, as its caller is told.
#[derive(Debug)]
enum ApiError {
    /// 400: the request is invalid; names the field.
    BadRequest(String),
    /// 404: what was asked for does not exist.
    NotFound(String),
    /// 413: the answer is larger than the server's `max_payload`.
    TooLarge(String),
    /// 500: the database or the broker failed.
    Internal(String),
}

impl ApiError {
    /// The micro-service error: a status code and a one-line message.
    fn into_service_error(self) -> service::error::Error {
        let (code, message) = match self {
            ApiError::BadRequest(m) => (400, m),
            ApiError::NotFound(m) => (404, m),
            ApiError::TooLarge(m) => (413, m),
            ApiError::Internal(m) => (500, m),
        };
        service::error::Error {
            status: one_line(&message),
            code,
        }
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> ApiError {
        // The full error goes to the log only; the caller gets the SQLSTATE.
        tracing::warn!(error = %err, "micro service request: PostgreSQL failed");
        let code = match &err {
            DbError::Postgres(err) => err
                .code()
                .map(|c| format!(" (SQLSTATE {})", c.code()))
                .unwrap_or_default(),
            DbError::Pool(_) => " (no free connection)".to_owned(),
            // Other variants (TLS set-up, unexpected values) may quote the
            // configuration: say nothing more.
            _ => String::new(),
        };
        ApiError::Internal(format!(
            "the fleet's database failed{code}; the worker's log has the details"
        ))
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(err: tokio_postgres::Error) -> ApiError {
        ApiError::from(DbError::from(err))
    }
}

/// A message fit for a header value: one line, bounded.
fn one_line(message: &str) -> String {
    let mut line: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() > MAX_ERROR_LEN {
        line.truncate(crate::text::head(&line, MAX_ERROR_LEN).len());
        line.push('…');
    }
    line
}

/// The fields of a request body, read with messages naming the field.
#[derive(Debug)]
struct Fields(Map<String, Value>);

impl Fields {
    /// Parses `body` (empty = `{}`), refusing fields outside `allowed`.
    fn parse(body: &[u8], allowed: &[&str]) -> Result<Fields, ApiError> {
        let map = if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => map,
                Ok(_) => {
                    return Err(ApiError::BadRequest(
                        "the request body must be a JSON object".into(),
                    ));
                }
                Err(err) => {
                    return Err(ApiError::BadRequest(format!(
                        "the request body is not JSON: {err}"
                    )));
                }
            }
        };
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            let known = if allowed.is_empty() {
                "none".to_owned()
            } else {
                allowed
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(ApiError::BadRequest(format!(
                "unknown field `{unknown}` (fields: {known})"
            )));
        }
        Ok(Fields(map))
    }

    /// The field, `None` when absent or `null`.
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A required non-empty string.
    fn text(&self, name: &str) -> Result<String, ApiError> {
        self.optional_text(name)?.ok_or_else(|| {
            ApiError::BadRequest(format!("field `{name}` is required (a non-empty string)"))
        })
    }

    /// An optional non-empty string.
    fn optional_text(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::BadRequest(format!(
                "field `{name}` must be a non-empty string"
            ))),
        }
    }

    /// A whole number in `min..=max`, `default` when absent.
    fn number(&self, name: &str, default: u64, min: u64, max: u64) -> Result<u64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value
                .as_u64()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "field `{name}` must be a whole number from {min} to {max}"
                    ))
                }),
        }
    }

    /// A boolean, `default` when absent.
    fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ApiError::BadRequest(format!(
                "field `{name}` must be true or false"
            ))),
        }
    }
}

/// Converts a request number to a PostgreSQL bigint.
fn bigint(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
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
            .await
            .and_then(|value| self.encode(&value));
        let response = result.map_err(|err| {
            tracing::debug!(endpoint = endpoint.subject(), error = ?err, "request refused");
            err.into_service_error()
        });
        if let Err(err) = request.respond(response).await {
            tracing::debug!(endpoint = endpoint.subject(), error = %err, "could not answer a request");
        }
    }

    /// The JSON answer as bytes, if it fits in one message.
    fn encode(&self, value: &Value) -> Result<bytes::Bytes, ApiError> {
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

    /// Parses the request of `endpoint` and handles it.
    async fn dispatch(&self, endpoint: Endpoint, body: &[u8]) -> Result<Value, ApiError> {
        match endpoint {
            Endpoint::RunStatus => {
                let f = Fields::parse(body, &["tenant", "run_id"])?;
                self.run_status(&f.text("tenant")?, &f.text("run_id")?)
                    .await
            }
            Endpoint::CommandGet => {
                let f = Fields::parse(body, &["tenant", "run_id", "command_id"])?;
                self.command(
                    &f.text("tenant")?,
                    &f.text("run_id")?,
                    &f.text("command_id")?,
                )
                .await
            }
            Endpoint::EventsAfter => {
                let f = Fields::parse(body, &["tenant", "run_id", "after_seq", "limit"])?;
                let (tenant, run_id) = (f.text("tenant")?, f.text("run_id")?);
                let after = f.number("after_seq", 0, 0, MAX_SEQ)?;
                let limit = f.number("limit", 100, 1, MAX_LIMIT)?;
                self.events_after(&tenant, &run_id, after, limit).await
            }
            Endpoint::DlqList => {
                let f = Fields::parse(body, &["tenant", "limit", "include_redriven"])?;
                let tenant = f.optional_text("tenant")?;
                let limit = f.number("limit", 50, 1, MAX_LIMIT)?;
                let include_redriven = f.flag("include_redriven", false)?;
                self.dlq_list(tenant.as_deref(), limit, include_redriven)
                    .await
            }
            Endpoint::DlqShow => {
                let f = Fields::parse(body, &["dead_letter_id"])?;
                self.dlq_show(&f.text("dead_letter_id")?).await
            }
            Endpoint::DlqRedrive => {
                let f = Fields::parse(body, &["dead_letter_id"])?;
                self.dlq_redrive(&f.text("dead_letter_id")?).await
            }
            Endpoint::FleetStats => {
                Fields::parse(body, &[])?;
                self.fleet_stats().await
            }
        }
    }

    /// `run.status`: the run and its (last 1000) commands.
    async fn run_status(&self, tenant: &str, run_id: &str) -> Result<Value, ApiError> {
        let conn = self.pool.get().await?;
        let run = conn
            .query_opt(
                "SELECT r.status, r.backend_profile, r.project, r.session_id, r.failure_kind, \
                        r.status_reason, r.next_seq, r.spent, coalesce(r.spec -> 'budgets', '{}'::jsonb), \
                        r.created_at, r.updated_at, r.lease_holder, r.lease_expires_at, \
                        (SELECT count(*) FROM commands c WHERE c.tenant = r.tenant AND c.run_id = r.run_id) \
                   FROM runs r WHERE r.tenant = $1 AND r.run_id = $2",
                &[&tenant, &run_id],
            )
            .await?
            .ok_or_else(|| no_run(tenant, run_id))?;
        let rows = conn
            .query(
                "SELECT * FROM ( \
                   SELECT c.command_id, c.seq, c.kind, c.status, c.attempt, c.worker_id, \
                          c.started_at, c.finished_at, j.result -> 'failure' \
                     FROM commands c \
                     LEFT JOIN journal j ON j.tenant = c.tenant AND j.run_id = c.run_id \
                                        AND j.command_id = c.command_id AND j.step = 'receipt' \
                    WHERE c.tenant = $1 AND c.run_id = $2 \
                    ORDER BY c.seq DESC LIMIT $3) recent \
                 ORDER BY 2",
                &[&tenant, &run_id, &MAX_COMMANDS],
            )
            .await?;
        let mut commands = Vec::with_capacity(rows.len());
        for row in &rows {
            commands.push(json!({
                "command_id": row.try_get::<_, String>(0)?,
                "seq": row.try_get::<_, i64>(1)?,
                "kind": row.try_get::<_, String>(2)?,
                "status": row.try_get::<_, String>(3)?,
                "attempt": row.try_get::<_, Option<i64>>(4)?,
                "worker_id": row.try_get::<_, Option<String>>(5)?,
                "started_at": row.try_get::<_, Option<DateTime<Utc>>>(6)?,
                "finished_at": row.try_get::<_, Option<DateTime<Utc>>>(7)?,
                "failure": row.try_get::<_, Option<Value>>(8)?,
            }));
        }
        Ok(json!({
            "tenant": tenant,
            "run_id": run_id,
            "status": run.try_get::<_, String>(0)?,
            "profile": run.try_get::<_, String>(1)?,
            "project": run.try_get::<_, String>(2)?,
            "session_id": run.try_get::<_, Option<String>>(3)?,
            "failure_kind": run.try_get::<_, Option<String>>(4)?,
            "status_reason": run.try_get::<_, Option<String>>(5)?,
            "next_seq": run.try_get::<_, i64>(6)?,
            "spent": run.try_get::<_, Value>(7)?,
            "budgets": run.try_get::<_, Value>(8)?,
            "created_at": run.try_get::<_, DateTime<Utc>>(9)?,
            "updated_at": run.try_get::<_, DateTime<Utc>>(10)?,
            "lease_holder": run.try_get::<_, Option<String>>(11)?,
            "lease_expires_at": run.try_get::<_, Option<DateTime<Utc>>>(12)?,
            "commands_total": run.try_get::<_, i64>(13)?,
            "commands": commands,
        }))
    }

    /// `command.get`: the command, its receipt and its journaled steps.
    async fn command(
        &self,
        tenant: &str,
        run_id: &str,
        command_id: &str,
    ) -> Result<Value, ApiError> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT seq, kind, status, attempt, worker_id, fencing_token, idempotency_key, \
                        message, created_at, started_at, finished_at \
                   FROM commands WHERE tenant = $1 AND run_id = $2 AND command_id = $3",
                &[&tenant, &run_id, &command_id],
            )
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "run {run_id} of tenant {tenant} has no command {command_id}"
                ))
            })?;
        let journal = conn
            .query(
                "SELECT step, CASE WHEN step = 'receipt' THEN result END FROM journal \
                  WHERE tenant = $1 AND run_id = $2 AND command_id = $3 \
                  ORDER BY created_at, step",
                &[&tenant, &run_id, &command_id],
            )
            .await?;
        let mut steps = Vec::with_capacity(journal.len());
        let mut receipt = None;
        for entry in &journal {
            let step: String = entry.try_get(0)?;
            if step == "receipt" {
                receipt = entry.try_get::<_, Option<Value>>(1)?;
            }
            steps.push(step);
        }
        Ok(json!({
            "tenant": tenant,
            "run_id": run_id,
            "command_id": command_id,
            "seq": row.try_get::<_, i64>(0)?,
            "kind": row.try_get::<_, String>(1)?,
            "status": row.try_get::<_, String>(2)?,
            "attempt": row.try_get::<_, Option<i64>>(3)?,
            "worker_id": row.try_get::<_, Option<String>>(4)?,
            "fencing_token": row.try_get::<_, Option<i64>>(5)?,
            "idempotency_key": row.try_get::<_, String>(6)?,
            "message": row.try_get::<_, Value>(7)?,
            "created_at": row.try_get::<_, DateTime<Utc>>(8)?,
            "started_at": row.try_get::<_, Option<DateTime<Utc>>>(9)?,
            "finished_at": row.try_get::<_, Option<DateTime<Utc>>>(10)?,
            "receipt": receipt,
            "steps": steps,
        }))
    }

    /// `events.after`: up to `limit` events with seq > `after`, in order.
    async fn events_after(
        &self,
        tenant: &str,
        run_id: &str,
        after: u64,
        limit: u64,
    ) -> Result<Value, ApiError> {
        let conn = self.pool.get().await?;
        let last_seq: i64 = conn
            .query_opt(
                "SELECT next_event_seq - 1 FROM runs WHERE tenant = $1 AND run_id = $2",
                &[&tenant, &run_id],
            )
            .await?
            .ok_or_else(|| no_run(tenant, run_id))?
            .try_get(0)?;
        // One more than asked for, to know whether there are more.
        let rows = conn
            .query(
                "SELECT seq, event FROM events WHERE tenant = $1 AND run_id = $2 AND seq > $3 \
                  ORDER BY seq LIMIT $4",
                &[&tenant, &run_id, &bigint(after), &bigint(limit + 1)],
            )
            .await?;
        let more = rows.len() as u64 > limit;
        let mut events = Vec::with_capacity(rows.len());
        let mut next_after = bigint(after);
        for row in rows
            .iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
        {
            next_after = row.try_get(0)?;
            events.push(row.try_get::<_, Value>(1)?);
        }
        Ok(json!({
            "tenant": tenant,
            "run_id": run_id,
            "after_seq": after,
            "last_seq": last_seq.max(0),
            "next_after_seq": next_after,
            "more": more,
            "events": events,
        }))
    }

    /// `dlq.list`: dead letters, newest first.
    async fn dlq_list(
        &self,
        tenant: Option<&str>,
        limit: u64,
        include_redriven: bool,
    ) -> Result<Value, ApiError> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                "SELECT dead_letter_id, tenant, reason, message ->> 'message', subject, created_at, \
                        redriven_at \
                   FROM dead_letters \
                  WHERE ($1::text IS NULL OR tenant = $1) AND ($2 OR redriven_at IS NULL) \
                  ORDER BY created_at DESC, dead_letter_id DESC LIMIT $3",
                &[&tenant, &include_redriven, &bigint(limit + 1)],
            )
            .await?;
        let more = rows.len() as u64 > limit;
        let mut letters = Vec::with_capacity(rows.len());
        for row in rows
            .iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
        {
            letters.push(json!({
                "dead_letter_id": row.try_get::<_, String>(0)?,
                "tenant": row.try_get::<_, String>(1)?,
                "reason": row.try_get::<_, String>(2)?,
                "message": row.try_get::<_, Option<String>>(3)?,
                "subject": row.try_get::<_, String>(4)?,
                "created_at": row.try_get::<_, DateTime<Utc>>(5)?,
                "redriven_at": row.try_get::<_, Option<DateTime<Utc>>>(6)?,
            }));
        }
        Ok(json!({ "more": more, "dead_letters": letters }))
    }

    /// `dlq.show`: the stored dead letter.
    async fn dlq_show(&self, id: &str) -> Result<Value, ApiError> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT message, created_at, redriven_at FROM dead_letters WHERE dead_letter_id = $1",
                &[&id],
            )
            .await?
            .ok_or_else(|| no_dead_letter(id))?;
        Ok(json!({
            "dead_letter_id": id,
            "created_at": row.try_get::<_, DateTime<Utc>>(1)?,
            "redriven_at": row.try_get::<_, Option<DateTime<Utc>>>(2)?,
            "dead_letter": row.try_get::<_, Value>(0)?,
        }))
    }

    /// `dlq.redrive`: publishes the original message again (see the module docs).
    async fn dlq_redrive(&self, id: &str) -> Result<Value, ApiError> {
        let mut conn = self.pool.get().await?;
        // The row lock serializes concurrent redrives of this dead letter.
        let tx = conn.transaction().await?;
        let row = tx
            .query_opt(
                "SELECT message, redriven_at FROM dead_letters WHERE dead_letter_id = $1 FOR UPDATE",
                &[&id],
            )
            .await?
            .ok_or_else(|| no_dead_letter(id))?;
        if let Some(at) = row.try_get::<_, Option<DateTime<Utc>>>(1)? {
            return Err(ApiError::BadRequest(format!(
                "dead letter {id} was already re-driven at {}",
                at.to_rfc3339()
            )));
        }
        let letter: DeadLetter = serde_json::from_value(row.try_get(0)?).map_err(|err| {
            ApiError::Internal(format!(
                "dead letter {id} is stored in an unknown shape: {err}"
            ))
        })?;
        let payload = letter.original_bytes().map_err(|err| {
            ApiError::Internal(format!(
                "dead letter {id} has a payload that is not base64: {err}"
            ))
        })?;
        let subject = letter.original_subject.clone();
        let publish_failed = |err: String| {
            tracing::warn!(dead_letter.id = id, msg.subject = %subject, error = %err, "redrive not stored");
            ApiError::Internal(format!(
                "JetStream did not store the re-driven message on {subject}: {err}"
            ))
        };
        let ack = self
            .jetstream
            .publish_with_headers(
                subject.clone(),
                redrive_headers(id, &letter)?,
                payload.into(),
            )
            .await
            .map_err(|err| publish_failed(err.to_string()))?
            .await
            .map_err(|err| publish_failed(err.to_string()))?;
        let redriven_at: DateTime<Utc> = tx
            .query_one(
                "UPDATE dead_letters SET redriven_at = now() WHERE dead_letter_id = $1 \
                 RETURNING redriven_at",
                &[&id],
            )
            .await?
            .try_get(0)?;
        tx.commit().await?;
        tracing::info!(
            dead_letter.id = id,
            msg.subject = %subject,
            stream.seq = ack.sequence,
            duplicate = ack.duplicate,
            "dead letter re-driven"
        );
        Ok(json!({
            "dead_letter_id": id,
            "subject": subject,
            "stream": ack.stream,
            "sequence": ack.sequence,
            "duplicate": ack.duplicate,
            "redriven_at": redriven_at,
        }))
    }

    /// `fleet.stats`: workers, commands, runs and dead letters, from one snapshot.
    async fn fleet_stats(&self) -> Result<Value, ApiError> {
        let mut conn = self.pool.get().await?;
        let tx = conn
            .build_transaction()
            .read_only(true)
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await?;
        let workers = tx
            .query(
                "SELECT w.worker_id, w.host, w.pid, w.version, w.started_at, w.last_seen, w.stopped_at, \
                        w.stopped_at IS NULL AND w.last_seen > now() - make_interval(secs => $1), \
                        (SELECT count(*) FROM commands c \
                          WHERE c.status = 'running' AND c.worker_id = w.worker_id) \
                   FROM workers w \
                  WHERE w.last_seen > now() - make_interval(secs => $2) \
                  ORDER BY w.worker_id",
                &[&ALIVE_WITHIN.as_secs_f64(), &LISTED_WITHIN.as_secs_f64()],
            )
            .await?;
        let mut listed = Vec::with_capacity(workers.len());
        for row in &workers {
            listed.push(json!({
                "worker_id": row.try_get::<_, String>(0)?,
                "host": row.try_get::<_, String>(1)?,
                "pid": row.try_get::<_, i32>(2)?,
                "version": row.try_get::<_, String>(3)?,
                "started_at": row.try_get::<_, DateTime<Utc>>(4)?,
                "last_seen": row.try_get::<_, DateTime<Utc>>(5)?,
                "stopped_at": row.try_get::<_, Option<DateTime<Utc>>>(6)?,
                "alive": row.try_get::<_, bool>(7)?,
                "in_flight": row.try_get::<_, i64>(8)?,
            }));
        }
        let commands = counts(
            &tx.query("SELECT status, count(*) FROM commands GROUP BY status", &[])
                .await?,
            &COMMAND_STATUSES,
        )?;
        let runs = counts(
            &tx.query("SELECT status, count(*) FROM runs GROUP BY status", &[])
                .await?,
            &RUN_STATUSES,
        )?;
        let dead = tx
            .query_one(
                "SELECT count(*) FILTER (WHERE redriven_at IS NULL), \
                        count(*) FILTER (WHERE redriven_at IS NOT NULL), now() \
                   FROM dead_letters",
                &[],
            )
            .await?;
        let answer = json!({
            "at": dead.try_get::<_, DateTime<Utc>>(2)?,
            "workers": listed,
            "commands_by_status": commands,
            "runs_by_status": runs,
            "dead_letters": {
                "pending": dead.try_get::<_, i64>(0)?,
                "redriven": dead.try_get::<_, i64>(1)?,
            },
        });
        tx.commit().await?;
        Ok(answer)
    }
}

/// `(status, count)` rows as an object listing every `known` status.
fn counts(rows: &[tokio_postgres::Row], known: &[&str]) -> Result<Value, ApiError> {
    let mut map: Map<String, Value> = known.iter().map(|s| ((*s).to_owned(), json!(0))).collect();
    for row in rows {
        map.insert(row.try_get(0)?, json!(row.try_get::<_, i64>(1)?));
    }
    Ok(Value::Object(map))
}

/// The headers of a re-driven message: the original ones, except
/// `Nats-Msg-Id` (→ `redrive:<id>`) and `Nats-Expected-*` (dropped).
fn redrive_headers(id: &str, letter: &DeadLetter) -> Result<HeaderMap, ApiError> {
    let unusable = |what: &str| {
        ApiError::Internal(format!(
            "dead letter {id} cannot be re-driven: its stored {what} is not a valid NATS header"
        ))
    };
    let mut map = HeaderMap::new();
    for (name, values) in &letter.original_headers {
        let lower = name.to_ascii_lowercase();
        if lower == headers::MSG_ID.to_ascii_lowercase() || lower.starts_with("nats-expected-") {
            continue;
        }
        let header: HeaderName = name
            .parse()
            .map_err(|_| unusable(&format!("header name {name:?}")))?;
        for value in values {
            let value: HeaderValue = value
                .parse()
                .map_err(|_| unusable(&format!("value of {name}")))?;
            map.append(header.clone(), value);
        }
    }
    let msg_id: HeaderValue = format!("redrive:{id}")
        .parse()
        .map_err(|_| unusable("dead letter id"))?;
    map.insert(headers::MSG_ID, msg_id);
    Ok(map)
}

/// 404 for a run.
fn no_run(tenant: &str, run_id: &str) -> ApiError {
    ApiError::NotFound(format!("tenant {tenant} has no run {run_id}"))
}

/// 404 for a dead letter.
fn no_dead_letter(id: &str) -> ApiError {
    ApiError::NotFound(format!("there is no dead letter {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_match_their_subjects() {
        let subjects: Vec<&str> = Endpoint::ALL.iter().map(|e| e.subject()).collect();
        assert_eq!(subjects, ENDPOINTS);
    }

    #[test]
    fn fields_name_what_is_wrong() {
        let f = Fields::parse(
            br#"{"run_id": "r1", "limit": 0}"#,
            &["tenant", "run_id", "limit"],
        )
        .unwrap();
        let ApiError::BadRequest(m) = f.text("tenant").unwrap_err() else {
            panic!("a missing field is a bad request");
        };
        assert!(m.contains("`tenant`"), "{m}");
        let ApiError::BadRequest(m) = f.number("limit", 100, 1, 1000).unwrap_err() else {
            panic!("an out-of-range limit is a bad request");
        };
        assert!(m.contains("`limit`"), "{m}");
        assert_eq!(f.text("run_id").unwrap(), "r1");
        let ApiError::BadRequest(m) = Fields::parse(br#"{"runid": "x"}"#, &["run_id"]).unwrap_err()
        else {
            panic!("an unknown field is a bad request");
        };
        assert!(m.contains("`runid`"), "{m}");
        assert!(Fields::parse(b"", &[]).is_ok(), "an empty body is {{}}");
    }

    #[test]
    fn error_messages_fit_in_a_header() {
        let status = one_line(&format!("a\r\nb{}", "x".repeat(5000)));
        assert!(!status.contains(['\r', '\n']));
        assert!(status.len() <= MAX_ERROR_LEN + '…'.len_utf8());
    }

    #[test]
    fn redrive_replaces_the_msg_id_and_keeps_the_rest() {
        let letter: DeadLetter = serde_json::from_value(json!({
            "schema": "dead-letter", "version": 1, "dead_letter_id": "d1", "tenant": "acme",
            "reason": "run-not-found", "message": "no run", "original_subject": "runfleet.cmd.acme.r1",
            "original_headers": {
                "Nats-Msg-Id": ["cmd:r1:1~0123456789abcdef"],
                "Runfleet-Schema": ["command.create"],
                "Nats-Expected-Stream": ["RUNFLEET_WORK"],
            },
            "payload": "{}", "payload_encoding": "utf8", "stream_sequence": 7,
            "deliveries": [], "dead_lettered_at": "2025-01-01T00:00:00Z",
        }))
        .unwrap();
        let map = redrive_headers("d1", &letter).unwrap();
        assert_eq!(map.get(headers::MSG_ID).unwrap().as_str(), "redrive:d1");
        assert_eq!(map.get(headers::SCHEMA).unwrap().as_str(), "command.create");
        assert!(map.get("Nats-Expected-Stream").is_none());
    }
}
