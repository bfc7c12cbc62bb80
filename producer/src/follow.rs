//! Reading what the fleet publishes: receipts and events of a run, from the
//! start of the stream, then live (ordered consumers: no state on the server
//! outlives the reader).
//!
//! The streams may hold a run's receipts and events out of seq order (a
//! publish retried across a leader failover lands after the next one):
//! [`events`] yields them in seq order ([`crate::in_seq_order`]); receipts
//! are matched by `command_id` ([`wait_for_receipt`]), and a reader of
//! [`receipts`] that needs an order sorts by `seq`.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::{Stream, StreamExt};
use runfleet_schemas::{
    CommandCreate, Contract, DeadLetter, Event, Receipt, RunId, Tenant, decode, subjects,
};

use crate::ProducerError;
pub use crate::in_seq_order::GAP_WAIT;
use crate::in_seq_order::in_seq_order;

/// An ordered consumer's messages on `subject` in `stream`, from the start.
async fn ordered_messages(
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
) -> Result<consumer::pull::Ordered, ProducerError> {
    ordered_messages_from(js, stream, subject, consumer::DeliverPolicy::All).await
}

/// An ordered consumer's messages on `subject` in `stream`, from `start`.
async fn ordered_messages_from(
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
    start: consumer::DeliverPolicy,
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
                deliver_policy: start,
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

/// The receipts of a run in the order the stream holds them (not always seq
/// order: match them by `command_id`, or sort by `seq`), then live.
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

/// Every tenant's receipts stored since `since`, in stream order, then live
/// (what the web console's throughput and latency charts read).
///
/// # Errors
/// [`ProducerError::Read`] when the receipts stream cannot be read.
pub async fn receipts_since(
    js: &jetstream::Context,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<impl Stream<Item = Result<Receipt, ProducerError>> + use<>, ProducerError> {
    let subject = format!(
        "{}.{}.>",
        subjects::PREFIX,
        subjects::family(runfleet_schemas::MessageKind::Receipt)
    );
    let start = consumer::DeliverPolicy::ByStartTime {
        start_time: time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(since.timestamp_micros()) * 1_000,
        )
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    };
    let messages = ordered_messages_from(js, subjects::RECEIPT_STREAM, &subject, start).await?;
    Ok(messages.map(move |message| {
        let message = message.map_err(|e| ProducerError::Read {
            what: subject.clone(),
            detail: e.to_string(),
        })?;
        decode::<Receipt>(&message.payload).map_err(ProducerError::from)
    }))
}

/// The events of a run with `seq >= from_seq`, in seq order, each once,
/// stored ones first, then live. A missing seq that the follower has waited
/// [`GAP_WAIT`] for, with a later one held, is skipped (it expired from the
/// stream, or its publish is later than that).
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
    Ok(in_seq_order(Box::pin(stream), from_seq, GAP_WAIT))
}

/// The events of a run with `seq >= from_seq` stored so far, in seq order,
/// each once (what `runfleet events` without `--follow` prints).
///
/// # Errors
/// [`ProducerError::Read`] when the events stream cannot be read.
pub async fn events_so_far(
    js: &jetstream::Context,
    tenant: &Tenant,
    run_id: &RunId,
    from_seq: u64,
) -> Result<Vec<Event>, ProducerError> {
    let mut events: Vec<Event> =
        snapshot(js, subjects::EVENT_STREAM, subjects::event(tenant, run_id)).await?;
    events.retain(|event| event.seq >= from_seq);
    events.sort_by_key(|event| event.seq);
    events.dedup_by_key(|event| event.seq);
    Ok(events)
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
            what: format!("receipt of command {command_id} (run {run_id})"),
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

/// How far back from the start of the wait a dead letter counts: a letter
/// older than that belongs to an earlier send of the same bytes (call the
/// wait right after the send).
const DEAD_LETTER_LOOKBACK: Duration = Duration::from_secs(30);

/// How long a receipt may follow its command's dead letter.
const RECEIPT_AFTER_DEAD_LETTER: Duration = Duration::from_secs(2);

/// Waits for the answer to exactly `command`: its receipt, or the dead
/// letter that refused it.
///
/// A receipt answers a command id, and one whose `seq` or
/// `idempotency_key` differs from `command`'s belongs to another message
/// that used the same id: it is not this message's answer. A message the
/// fleet refused without a receipt of its own (an idempotency conflict, an
/// invalid or exhausted message) is found on the tenant's dead-letter
/// subject, by its subject and its bytes' meaning, and reported as
/// [`ProducerError::Refused`].
///
/// # Errors
/// [`ProducerError::Refused`] when the message was dead-lettered and no
/// receipt followed within [`RECEIPT_AFTER_DEAD_LETTER`];
/// [`ProducerError::Timeout`] when neither arrives within `timeout`.
pub async fn wait_for_answer(
    js: &jetstream::Context,
    command: &CommandCreate,
    timeout: Duration,
) -> Result<Receipt, ProducerError> {
    let receipt = async {
        let stream = receipts(js, &command.tenant, &command.run_id).await?;
        futures::pin_mut!(stream);
        while let Some(receipt) = stream.next().await {
            if let Ok(receipt) = receipt
                && receipt.command_id == command.command_id
                && receipt.seq == command.seq
                && receipt.idempotency_key == command.idempotency_key
            {
                return Ok(receipt);
            }
        }
        Err(ProducerError::Read {
            what: format!("receipts of run {}", command.run_id),
            detail: "stream ended".into(),
        })
    };
    let refusal = async {
        let sent = serde_json::to_value(command)?;
        let subject = runfleet_schemas::Routed::subject(command);
        let since = chrono::Utc::now() - DEAD_LETTER_LOOKBACK;
        let mut letters = ordered_messages_from(
            js,
            subjects::DEAD_LETTER_STREAM,
            &subjects::dead_letter(command.tenant.as_str()),
            consumer::DeliverPolicy::ByStartTime {
                start_time: time::OffsetDateTime::from_unix_timestamp(since.timestamp())
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            },
        )
        .await?;
        while let Some(message) = letters.next().await {
            let Ok(message) = message else { continue };
            let Ok(letter) = decode::<DeadLetter>(&message.payload) else {
                continue;
            };
            if letter.original_subject == subject && original_value(&letter).as_ref() == Some(&sent)
            {
                return Err::<Receipt, _>(ProducerError::Refused {
                    reason: letter.reason,
                    message: letter.message,
                });
            }
        }
        Err(ProducerError::Read {
            what: format!("dead letters of tenant {}", command.tenant),
            detail: "stream ended".into(),
        })
    };
    let answer = async {
        futures::pin_mut!(receipt, refusal);
        match futures::future::select(receipt, refusal).await {
            futures::future::Either::Left((found, _)) => found,
            // Some outcomes are a dead letter *and* a receipt (a command
            // whose turn never came), the letter published first: when the
            // receipt follows, it is the answer.
            futures::future::Either::Right((refused, receipt)) => {
                match tokio::time::timeout(RECEIPT_AFTER_DEAD_LETTER, receipt).await {
                    Ok(Ok(found)) => Ok(found),
                    _ => refused,
                }
            }
        }
    };
    tokio::time::timeout(timeout, answer)
        .await
        .map_err(|_| ProducerError::Timeout {
            what: format!(
                "receipt of command {} (run {})",
                command.command_id, command.run_id
            ),
            waited: timeout,
        })?
}

/// The original message of a dead letter, parsed (`None` when it is not JSON).
fn original_value(letter: &DeadLetter) -> Option<serde_json::Value> {
    serde_json::from_slice(&letter.original_bytes().ok()?).ok()
}
