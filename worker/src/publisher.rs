//! Publishing what the fleet produces (receipts, events, dead letters) with
//! their deterministic `Nats-Msg-Id`, and stored commands again on their
//! work subjects (released, resumed, woken: [`publish_command_again`]),
//! waiting for every PubAck.
//!
//! A republish after a replay uses the same id, so JetStream keeps one copy.

use async_nats::HeaderMap;
use async_nats::jetstream;
use futures::future::try_join_all;
use runfleet_schemas::{Routed, headers};

/// A publish the broker did not confirm.
#[derive(Debug, thiserror::Error)]
#[error("publishing to {subject}: {detail}")]
pub struct PublishError {
    /// The subject.
    pub subject: String,
    /// The broker's reason.
    pub detail: String,
}

/// Publishes `message` and waits for its PubAck.
///
/// # Errors
/// [`PublishError`] when JetStream does not store it.
pub async fn publish<M: Routed>(
    js: &jetstream::Context,
    message: &M,
    traceparent: Option<&str>,
) -> Result<(), PublishError> {
    publish_as(js, message, message.msg_id(), traceparent).await
}

/// Publishes `message` on its subject under another `Nats-Msg-Id`.
///
/// # Errors
/// [`PublishError`] when JetStream does not store it.
pub async fn publish_as<M: Routed>(
    js: &jetstream::Context,
    message: &M,
    msg_id: String,
    traceparent: Option<&str>,
) -> Result<(), PublishError> {
    let payload = serde_json::to_vec(message).map_err(|e| PublishError {
        subject: message.subject(),
        detail: e.to_string(),
    })?;
    publish_bytes(js, message, msg_id, traceparent, payload.into()).await
}

/// Publishes `message`, already serialized as `payload` (the same bytes
/// that were journaled), under `msg_id`, and waits for its PubAck.
///
/// # Errors
/// [`PublishError`] when JetStream does not store it.
pub async fn publish_bytes<M: Routed>(
    js: &jetstream::Context,
    message: &M,
    msg_id: String,
    traceparent: Option<&str>,
    payload: bytes::Bytes,
) -> Result<(), PublishError> {
    let subject = message.subject();
    let fail = |detail: String| PublishError {
        subject: subject.clone(),
        detail,
    };
    let mut map = HeaderMap::new();
    map.insert(headers::MSG_ID, msg_id.as_str());
    map.insert(headers::SCHEMA, M::KIND.as_str());
    if let Some(traceparent) = traceparent {
        map.insert(headers::TRACEPARENT, traceparent);
    }
    js.publish_with_headers(subject.clone(), map, payload)
        .await
        .map_err(|e| fail(e.to_string()))?
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// Above this many bytes in one call, at most [`LARGE_IN_FLIGHT`]
/// publishes wait for their PubAck at once (a 64 MiB result's chunks sent
/// all together could outlast the PubAck timeout on a slow link).
const LARGE_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Publishes in flight at once in a batch over [`LARGE_BATCH_BYTES`].
const LARGE_IN_FLIGHT: usize = 8;

/// Publishes each of `messages` with its serialized `payloads` (pairwise),
/// all at once (a batch of more than 4 MiB: 8 at a time, in order), and
/// waits for every PubAck.
///
/// # Errors
/// The first [`PublishError`].
pub async fn publish_all_bytes<M: Routed>(
    js: &jetstream::Context,
    messages: &[M],
    payloads: &[bytes::Bytes],
    traceparent: Option<&str>,
) -> Result<(), PublishError> {
    let total: usize = payloads.iter().map(bytes::Bytes::len).sum();
    let at_once = if total <= LARGE_BATCH_BYTES {
        messages.len().max(1)
    } else {
        LARGE_IN_FLIGHT
    };
    for (messages, payloads) in messages.chunks(at_once).zip(payloads.chunks(at_once)) {
        try_join_all(
            messages
                .iter()
                .zip(payloads)
                .map(|(m, p)| publish_bytes(js, m, m.msg_id(), traceparent, p.clone())),
        )
        .await?;
    }
    Ok(())
}

/// Serializes each of `messages` as JSON, and all of them as one JSON array
/// (what the journal stores), from one serialization pass.
///
/// # Errors
/// The first serialization failure (not expected of the contract's types).
pub fn serialize_all<M: serde::Serialize>(
    messages: &[M],
) -> Result<(Vec<bytes::Bytes>, bytes::Bytes), serde_json::Error> {
    let mut each = Vec::with_capacity(messages.len());
    let mut array = Vec::with_capacity(messages.len() * 256 + 2);
    array.push(b'[');
    for (i, message) in messages.iter().enumerate() {
        let bytes = serde_json::to_vec(message)?;
        if i > 0 {
            array.push(b',');
        }
        array.extend_from_slice(&bytes);
        each.push(bytes::Bytes::from(bytes));
    }
    array.push(b']');
    Ok((each, array.into()))
}

/// Publishes all `messages` concurrently and waits for every PubAck.
///
/// # Errors
/// The first [`PublishError`].
pub async fn publish_all<M: Routed>(
    js: &jetstream::Context,
    messages: &[M],
    traceparent: Option<&str>,
) -> Result<(), PublishError> {
    try_join_all(messages.iter().map(|m| publish(js, m, traceparent)))
        .await
        .map(|_| ())
}

/// A stored `command.create` to publish again on its own work subject:
/// released from a limit or a fair turn, resumed from parking, or woken at
/// its `not_before`.
#[derive(Debug, Clone)]
pub struct CommandAgain<'a> {
    /// Its tenant (a valid subject token: the journal accepted it).
    pub tenant: &'a str,
    /// Its run.
    pub run_id: &'a str,
    /// The message, the bytes as delivered (its priority picks the subject).
    pub message: bytes::Bytes,
    /// The copy's `Nats-Msg-Id` (one per wait, so JetStream keeps one copy).
    pub msg_id: &'a str,
    /// `Runfleet-Waiting-Since`: when the fleet first saw it, if it waited.
    pub waiting_since: Option<chrono::DateTime<chrono::Utc>>,
    /// The trace it continues, if known.
    pub traceparent: Option<&'a str>,
}

/// Publishes a stored command again on its work subject and waits for the
/// PubAck.
///
/// # Errors
/// [`PublishError`] when JetStream does not store it (or its tenant or run
/// is not a valid subject token).
pub async fn publish_command_again(
    js: &jetstream::Context,
    again: CommandAgain<'_>,
) -> Result<(), PublishError> {
    use runfleet_schemas::{MessageKind, Priority, RunId, Tenant, subjects};
    let invalid = |detail: String| PublishError {
        subject: format!("(run {} of tenant {})", again.run_id, again.tenant),
        detail,
    };
    let subject = subjects::at_priority(
        MessageKind::CommandCreate,
        &Tenant::new(again.tenant).map_err(|e| invalid(e.to_string()))?,
        &RunId::new(again.run_id).map_err(|e| invalid(e.to_string()))?,
        Priority::of_message(&again.message),
    );
    let mut map = HeaderMap::new();
    map.insert(headers::MSG_ID, again.msg_id);
    map.insert(headers::SCHEMA, MessageKind::CommandCreate.as_str());
    if let Some(since) = again.waiting_since {
        map.insert(headers::WAITING_SINCE, since.to_rfc3339().as_str());
    }
    if let Some(traceparent) = again.traceparent {
        map.insert(headers::TRACEPARENT, traceparent);
    }
    let fail = |detail: String| PublishError {
        subject: subject.clone(),
        detail,
    };
    js.publish_with_headers(subject.clone(), map, again.message)
        .await
        .map_err(|e| fail(e.to_string()))?
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(())
}
