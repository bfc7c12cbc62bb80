//! Reading what the fleet publishes: receipts and events of a run, from the
//! start of the stream, then live (ordered consumers: no state on the server
//! outlives the reader).

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::{Stream, StreamExt};
use runfleet_schemas::{Contract, Event, Receipt, RunId, Tenant, decode, subjects};

use crate::ProducerError;

/// An ordered consumer's messages on `subject` in `stream`, from the start.
async fn ordered_messages(
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
) -> Result<consumer::pull::Ordered, ProducerError> {
    let read_error = |what: String, err: &dyn std::fmt::Display| ProducerError::Read {
        what,
        detail: err.to_string(),
    };
    // A named consumer created directly on the stream (no stream-info
    // lookup): the create request's subject then carries the filter,
    // `$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`, which is what NATS
    // permissions can confine to a tenant's own subjects
    // (deploy/nats/tenants.conf).
    let consumer: consumer::Consumer<consumer::pull::OrderedConfig> = js
        .create_consumer_on_stream(
            consumer::pull::OrderedConfig {
                name: Some(format!("runfleet-reader-{}", uuid::Uuid::new_v4().simple())),
                filter_subject: subject.to_owned(),
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            },
            stream,
        )
        .await
        .map_err(|e| read_error(format!("a consumer on {subject}"), &e))?;
    consumer
        .messages()
        .await
        .map_err(|e| read_error(format!("messages on {subject}"), &e))
}

/// Every message on `subject` in `stream`, oldest first, then live, decoded as `T`.
async fn follow<T: Contract + 'static>(
    js: &jetstream::Context,
    stream: &str,
    subject: String,
) -> Result<impl Stream<Item = Result<T, ProducerError>> + use<T>, ProducerError> {
    let messages = ordered_messages(js, stream, &subject).await?;
    Ok(messages.map(move |message| {
        let message = message.map_err(|e| ProducerError::Read {
            what: subject.clone(),
            detail: e.to_string(),
        })?;
        decode::<T>(&message.payload).map_err(ProducerError::from)
    }))
}

/// The receipts of a run, oldest first, then live.
///
/// # Errors
/// [`ProducerError::Read`] when the receipts stream cannot be read.
pub async fn receipts(
    js: &jetstream::Context,
    tenant: &Tenant,
    run_id: &RunId,
) -> Result<impl Stream<Item = Result<Receipt, ProducerError>> + use<>, ProducerError> {
    follow(
        js,
        subjects::RECEIPT_STREAM,
        subjects::receipt(tenant, run_id),
    )
    .await
}

/// The events of a run with `seq >= from_seq`, oldest first, then live.
///
/// # Errors
/// [`ProducerError::Read`] when the events stream cannot be read.
pub async fn events(
    js: &jetstream::Context,
    tenant: &Tenant,
    run_id: &RunId,
    from_seq: u64,
) -> Result<impl Stream<Item = Result<Event, ProducerError>> + use<>, ProducerError> {
    let stream =
        follow::<Event>(js, subjects::EVENT_STREAM, subjects::event(tenant, run_id)).await?;
    Ok(stream.filter(move |event| {
        let keep = !matches!(event, Ok(e) if e.seq < from_seq);
        async move { keep }
    }))
}

/// Waits for the receipt of one command.
///
/// # Errors
/// [`ProducerError::Timeout`] when none arrives within `timeout`.
pub async fn wait_for_receipt(
    js: &jetstream::Context,
    tenant: &Tenant,
    run_id: &RunId,
    command_id: &str,
    timeout: Duration,
) -> Result<Receipt, ProducerError> {
    let search = async {
        let stream = receipts(js, tenant, run_id).await?;
        futures::pin_mut!(stream);
        while let Some(receipt) = stream.next().await {
            // Receipts of other commands, or not decodable, are not ours: skip them.
            if let Ok(receipt) = receipt
                && receipt.command_id.as_str() == command_id
            {
                return Ok(receipt);
            }
        }
        Err(ProducerError::Read {
            what: format!("receipts of run {run_id}"),
            detail: "stream ended".into(),
        })
    };
    tokio::time::timeout(timeout, search)
        .await
        .map_err(|_| ProducerError::Timeout {
            what: format!("the receipt of command {command_id} (run {run_id})"),
            waited: timeout,
        })?
}

/// Everything stored so far on `subject`: reads until the consumer reports
/// nothing pending (or nothing arrives within a second: the subject is empty).
async fn snapshot<T: Contract + 'static>(
    js: &jetstream::Context,
    stream: &str,
    subject: String,
) -> Result<Vec<T>, ProducerError> {
    let mut messages = ordered_messages(js, stream, &subject).await?;
    let mut items = Vec::new();
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_secs(1), messages.next()).await
    {
        let message = message.map_err(|e| ProducerError::Read {
            what: subject.clone(),
            detail: e.to_string(),
        })?;
        if let Ok(item) = decode::<T>(&message.payload) {
            items.push(item);
        }
        if message.info().is_ok_and(|info| info.pending == 0) {
            break;
        }
    }
    Ok(items)
}

/// The receipts of a run stored so far.
///
/// # Errors
/// [`ProducerError::Read`].
pub async fn receipts_so_far(
    js: &jetstream::Context,
    tenant: &Tenant,
    run_id: &RunId,
) -> Result<Vec<Receipt>, ProducerError> {
    snapshot(
        js,
        subjects::RECEIPT_STREAM,
        subjects::receipt(tenant, run_id),
    )
    .await
}

/// Asks the fleet for a session's summary (`runfleet.session.<tenant>.<id>`).
///
/// # Errors
/// [`ProducerError::Read`] when no worker answers or the session is unknown.
pub async fn session_summary(
    client: &async_nats::Client,
    tenant: &Tenant,
    session: &runfleet_schemas::SessionId,
) -> Result<serde_json::Value, ProducerError> {
    let what = || format!("session {session}");
    let subject = runfleet_schemas::subjects::session_subject(tenant, session);
    let reply = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.request(subject, Default::default()),
    )
    .await
    .map_err(|_| ProducerError::Read {
        what: what(),
        detail: "no worker answered within 5s".into(),
    })?
    .map_err(|err| ProducerError::Read {
        what: what(),
        detail: format!("{err} (is a worker running?)"),
    })?;
    let value: serde_json::Value =
        serde_json::from_slice(&reply.payload).map_err(|err| ProducerError::Read {
            what: what(),
            detail: format!("the answer is not JSON: {err}"),
        })?;
    if let Some(error) = value.get("error").and_then(serde_json::Value::as_str) {
        return Err(ProducerError::Read {
            what: what(),
            detail: error.to_owned(),
        });
    }
    Ok(value)
}
