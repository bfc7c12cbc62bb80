//! Publishing what the fleet produces (receipts, events, dead letters) with
//! their deterministic `Nats-Msg-Id`, waiting for every PubAck.
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
    let subject = message.subject();
    let fail = |detail: String| PublishError {
        subject: subject.clone(),
        detail,
    };
    let payload = serde_json::to_vec(message).map_err(|e| fail(e.to_string()))?;
    let mut map = HeaderMap::new();
    map.insert(headers::MSG_ID, msg_id.as_str());
    map.insert(headers::SCHEMA, M::KIND.as_str());
    if let Some(traceparent) = traceparent {
        map.insert(headers::TRACEPARENT, traceparent);
    }
    js.publish_with_headers(subject.clone(), map, payload.into())
        .await
        .map_err(|e| fail(e.to_string()))?
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(())
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
