//! Asking the fleet: the client side of the workers' NATS micro service
//! `runfleet` (what `runfleet status`, `runfleet dlq …` and `runfleet
//! fleet` print).
//!
//! Every call is one core-NATS request on `runfleet.api.<endpoint>`
//! answered by whichever worker is free; requests and answers are the
//! types of [`runfleet_schemas::api`] (one pair per endpoint), which the
//! workers answer with too. A worker's refusal (400 bad request naming
//! the field, 404 not found, 413 answer too large, 500 database failure)
//! comes back as [`ProducerError::Read`] carrying the worker's message and
//! code.
//!
//! ```no_run
//! # async fn demo(client: async_nats::Client) -> Result<(), runfleet_producer::ProducerError> {
//! let stats = runfleet_producer::inspect::fleet_stats(&client).await?;
//! println!("{} workers, {} dead letters pending", stats.workers.len(), stats.dead_letters.pending);
//! # Ok(()) }
//! ```

use std::time::Duration;

use async_nats::RequestErrorKind;
use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use runfleet_schemas::api::{
    self, ApiRequest, CommandAnswer, CommandGetRequest, DeadLetterList, DeadLetterShown,
    DlqListRequest, DlqRedriveRequest, DlqShowRequest, EventsAfterRequest, EventsPage, FleetStats,
    FleetStatsRequest, Redriven, RunStatusAnswer, RunStatusRequest,
};
use serde_json::Value;

use crate::ProducerError;

pub use runfleet_schemas::api::API_PREFIX;
/// How long a request waits for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `body` to the endpoint `endpoint` (e.g. `"run.status"`) and returns
/// the worker's JSON answer.
///
/// # Errors
/// [`ProducerError::Read`] when no worker is listening ("no worker
/// answered"), when the worker refused the request (its message and code),
/// or when the answer is not JSON; [`ProducerError::Timeout`] after
/// [`REQUEST_TIMEOUT`] without an answer.
pub async fn request(
    client: &async_nats::Client,
    endpoint: &str,
    body: Value,
) -> Result<Value, ProducerError> {
    let subject = format!("{API_PREFIX}.{endpoint}");
    let read = |detail: String| ProducerError::Read {
        what: subject.clone(),
        detail,
    };
    let payload = serde_json::to_vec(&body)?;
    let request = async_nats::Request::new()
        .payload(payload.into())
        .timeout(Some(REQUEST_TIMEOUT));
    let answer = client
        .send_request(subject.clone(), request)
        .await
        .map_err(|err| match err.kind() {
            RequestErrorKind::NoResponders => {
                read("no worker answered (is a worker running?)".to_owned())
            }
            RequestErrorKind::TimedOut => ProducerError::Timeout {
                what: format!("answer on {subject}"),
                waited: REQUEST_TIMEOUT,
            },
            _ => read(err.to_string()),
        })?;
    if let Some(headers) = &answer.headers
        && let Some(status) = headers.get(NATS_SERVICE_ERROR)
    {
        let code = headers
            .get(NATS_SERVICE_ERROR_CODE)
            .map_or("?", |c| c.as_str());
        return Err(read(format!("{} (code {code})", status.as_str())));
    }
    serde_json::from_slice(&answer.payload)
        .map_err(|err| read(format!("the worker's answer is not JSON: {err}")))
}

/// Sends `request` to its endpoint and reads the typed answer.
///
/// # Errors
/// As [`request`]; [`ProducerError::Read`] also when the answer is not the
/// endpoint's response type (naming the field).
pub async fn call<R: ApiRequest>(
    client: &async_nats::Client,
    request: &R,
) -> Result<R::Response, ProducerError> {
    let answer = self::request(client, R::ENDPOINT, serde_json::to_value(request)?).await?;
    serde_path_to_error::deserialize(answer).map_err(|err| ProducerError::Read {
        what: api::subject::<R>(),
        detail: format!(
            "the worker's answer does not read as {}: {err}",
            R::ENDPOINT
        ),
    })
}

/// `run.status`: the run and its commands in seq order.
///
/// # Errors
/// As [`call`] (404 when the tenant has no such run).
pub async fn run_status(
    client: &async_nats::Client,
    tenant: &str,
    run_id: &str,
) -> Result<RunStatusAnswer, ProducerError> {
    let request = RunStatusRequest {
        tenant: tenant.to_owned(),
        run_id: run_id.to_owned(),
    };
    call(client, &request).await
}

/// `command.get`: a command, its receipt and its journaled step names.
///
/// # Errors
/// As [`call`] (404 when there is no such command).
pub async fn command(
    client: &async_nats::Client,
    tenant: &str,
    run_id: &str,
    command_id: &str,
) -> Result<CommandAnswer, ProducerError> {
    let request = CommandGetRequest {
        tenant: tenant.to_owned(),
        run_id: run_id.to_owned(),
        command_id: command_id.to_owned(),
    };
    call(client, &request).await
}

/// `events.after`: up to `limit` (1–1000) events of the run with seq >
/// `after`, in order; the answer's `more` and `next_after_seq` page on.
///
/// # Errors
/// As [`call`] (404 when the tenant has no such run).
pub async fn events_after(
    client: &async_nats::Client,
    tenant: &str,
    run_id: &str,
    after: u64,
    limit: u32,
) -> Result<EventsPage, ProducerError> {
    let request = EventsAfterRequest {
        tenant: tenant.to_owned(),
        run_id: run_id.to_owned(),
        after_seq: Some(after),
        limit: Some(u64::from(limit)),
    };
    call(client, &request).await
}

/// `dlq.list`: up to `limit` (1–1000) dead letters, newest first, of one
/// tenant or all; re-driven ones only with `include_redriven`.
///
/// # Errors
/// As [`call`].
pub async fn dlq_list(
    client: &async_nats::Client,
    tenant: Option<&str>,
    limit: u32,
    include_redriven: bool,
) -> Result<DeadLetterList, ProducerError> {
    let request = DlqListRequest {
        tenant: tenant.map(str::to_owned),
        limit: Some(u64::from(limit)),
        include_redriven: Some(include_redriven),
    };
    call(client, &request).await
}

/// `dlq.show`: the stored dead letter (under `dead_letter`) and when it
/// was re-driven.
///
/// # Errors
/// As [`call`] (404 when there is no such dead letter).
pub async fn dlq_show(
    client: &async_nats::Client,
    id: &str,
) -> Result<DeadLetterShown, ProducerError> {
    let request = DlqShowRequest {
        dead_letter_id: id.to_owned(),
    };
    call(client, &request).await
}

/// `dlq.redrive`: publishes the dead letter's original message again and
/// returns where JetStream stored it (`stream`, `sequence`, `duplicate`).
///
/// # Errors
/// As [`call`]; refused (400) when the dead letter was already re-driven.
pub async fn dlq_redrive(client: &async_nats::Client, id: &str) -> Result<Redriven, ProducerError> {
    let request = DlqRedriveRequest {
        dead_letter_id: id.to_owned(),
    };
    call(client, &request).await
}

/// `fleet.stats`: the workers seen in the last 24 h (alive or not, with
/// their running commands) and counts of commands, runs and dead letters.
///
/// # Errors
/// As [`call`].
pub async fn fleet_stats(client: &async_nats::Client) -> Result<FleetStats, ProducerError> {
    call(client, &FleetStatsRequest {}).await
}
