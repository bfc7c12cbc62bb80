//! Asking the fleet: the client side of the workers' NATS micro service
//! `runfleet` (what `runfleet status`, `runfleet dlq …` and `runfleet
//! fleet` print).
//!
//! Every call is one core-NATS request on `runfleet.api.<endpoint>`
//! answered by whichever worker is free; the answer is the endpoint's JSON
//! as the worker crate's `service` module documents it (request and
//! response shapes per endpoint). A worker's refusal (400 bad request naming
//! the field, 404 not found, 413 answer too large, 500 database failure)
//! comes back as [`ProducerError::Read`] carrying the worker's message and
//! code.
//!
//! ```no_run
//! # async fn demo(client: async_nats::Client) -> Result<(), runfleet_producer::ProducerError> {
//! let stats = runfleet_producer::inspect::fleet_stats(&client).await?;
//! println!("{}", serde_json::to_string_pretty(&stats)?);
//! # Ok(()) }
//! ```

use std::time::Duration;

use async_nats::RequestErrorKind;
use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use serde_json::{Value, json};

use crate::ProducerError;

/// The subject prefix of the fleet's endpoints (`runfleet.api.<endpoint>`).
pub const API_PREFIX: &str = "runfleet.api";
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

/// `run.status`: the run and its commands in seq order.
///
/// # Errors
/// As [`request`] (404 when the tenant has no such run).
pub async fn run_status(
    client: &async_nats::Client,
    tenant: &str,
    run_id: &str,
) -> Result<Value, ProducerError> {
    request(
        client,
        "run.status",
        json!({ "tenant": tenant, "run_id": run_id }),
    )
    .await
}

/// `command.get`: a command, its receipt and its journaled step names.
///
/// # Errors
/// As [`request`] (404 when there is no such command).
pub async fn command(
    client: &async_nats::Client,
    tenant: &str,
    run_id: &str,
    command_id: &str,
) -> Result<Value, ProducerError> {
    request(
        client,
        "command.get",
        json!({ "tenant": tenant, "run_id": run_id, "command_id": command_id }),
    )
    .await
}

/// `events.after`: up to `limit` (1–1000) events of the run with seq >
/// `after`, in order; the answer's `more` and `next_after_seq` page on.
///
/// # Errors
/// As [`request`] (404 when the tenant has no such run).
pub async fn events_after(
    client: &async_nats::Client,
    tenant: &str,
    run_id: &str,
    after: u64,
    limit: u32,
) -> Result<Value, ProducerError> {
    request(
        client,
        "events.after",
        json!({ "tenant": tenant, "run_id": run_id, "after_seq": after, "limit": limit }),
    )
    .await
}

/// `dlq.list`: up to `limit` (1–1000) dead letters, newest first, of one
/// tenant or all; re-driven ones only with `include_redriven`.
///
/// # Errors
/// As [`request`].
pub async fn dlq_list(
    client: &async_nats::Client,
    tenant: Option<&str>,
    limit: u32,
    include_redriven: bool,
) -> Result<Value, ProducerError> {
    request(
        client,
        "dlq.list",
        json!({ "tenant": tenant, "limit": limit, "include_redriven": include_redriven }),
    )
    .await
}

/// `dlq.show`: the stored dead letter (under `dead_letter`) and when it
/// was re-driven.
///
/// # Errors
/// As [`request`] (404 when there is no such dead letter).
pub async fn dlq_show(client: &async_nats::Client, id: &str) -> Result<Value, ProducerError> {
    request(client, "dlq.show", json!({ "dead_letter_id": id })).await
}

/// `dlq.redrive`: publishes the dead letter's original message again and
/// returns where JetStream stored it (`stream`, `sequence`, `duplicate`).
///
/// # Errors
/// As [`request`]; refused (400) when the dead letter was already re-driven.
pub async fn dlq_redrive(client: &async_nats::Client, id: &str) -> Result<Value, ProducerError> {
    request(client, "dlq.redrive", json!({ "dead_letter_id": id })).await
}

/// `fleet.stats`: the workers seen in the last 24 h (alive or not, with
/// their running commands) and counts of commands, runs and dead letters.
///
/// # Errors
/// As [`request`].
pub async fn fleet_stats(client: &async_nats::Client) -> Result<Value, ProducerError> {
    request(client, "fleet.stats", json!({})).await
}
