//! The [`Producer`]: validated, deduplicated, acknowledged publishes.

use async_nats::HeaderMap;
use async_nats::jetstream;
use backon::Retryable as _;
use runfleet_schemas::{Routed, decode_value, headers};

use crate::ProducerError;

/// A connection to NATS that publishes contract messages.
#[derive(Debug, Clone)]
pub struct Producer {
    /// The core NATS client (for subscriptions and requests).
    client: async_nats::Client,
    /// JetStream on that client (for acknowledged publishes).
    jetstream: jetstream::Context,
    /// A limit below the server's `max_payload`, if any.
    max_payload: Option<usize>,
    /// How long a publish is retried while JetStream cannot answer.
    retry_for: std::time::Duration,
    /// The key that signs cancels, if any.
    signer: Option<crate::Signer>,
}

/// How long a publish is retried by default while JetStream cannot answer
/// (no responders while a stream elects a leader, a PubAck timeout): a
/// leader's failover on a 3-node cluster takes about 5 s.
pub const DEFAULT_PUBLISH_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// Room kept for the headers when checking a message against the limit.
const HEADER_ALLOWANCE: usize = 1024;

/// The limit when the server does not say: NATS's default `max_payload`.
pub const DEFAULT_MAX_PAYLOAD: usize = 1 << 20;

/// JetStream stored the message (or had stored it before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The stream that stored it.
    pub stream: String,
    /// Its sequence in that stream (the original's, for a duplicate).
    pub sequence: u64,
    /// `true` when the same `Nats-Msg-Id` was accepted before: nothing new was stored.
    pub duplicate: bool,
}

impl Producer {
    /// Connects to NATS at `url` (e.g. `nats://127.0.0.1:4222`).
    ///
    /// # Errors
    /// [`ProducerError::Connect`] when the server does not answer.
    pub async fn connect(url: &str) -> Result<Producer, ProducerError> {
        Producer::connect_with(url, &crate::NatsAuth::default()).await
    }

    /// Connects to NATS at `url` with authentication and TLS settings.
    ///
    /// # Errors
    /// [`ProducerError::Auth`] for unusable settings, [`ProducerError::Connect`]
    /// when the server does not answer or refuses the credentials.
    pub async fn connect_with(
        url: &str,
        auth: &crate::NatsAuth,
    ) -> Result<Producer, ProducerError> {
        Ok(Producer::from_client(auth.connect(url).await?))
    }

    /// Wraps an existing client (with whatever authentication it was built with).
    pub fn from_client(client: async_nats::Client) -> Producer {
        let jetstream = jetstream::new(client.clone());
        Producer {
            client,
            jetstream,
            max_payload: None,
            retry_for: DEFAULT_PUBLISH_RETRY,
            signer: None,
        }
    }

    /// Signs every `control.cancel` with `signer` (a fleet that requires
    /// signed cancels accepts only those of keys registered for the tenant).
    #[must_use]
    pub fn with_signer(mut self, signer: crate::Signer) -> Producer {
        self.signer = Some(signer);
        self
    }

    /// Retries a publish JetStream could not answer for up to `period`
    /// ([`DEFAULT_PUBLISH_RETRY`]; zero: never retry).
    #[must_use]
    pub fn with_publish_retry(mut self, period: std::time::Duration) -> Producer {
        self.retry_for = period;
        self
    }

    /// The largest message this producer publishes: the server's
    /// `max_payload`, or less when [`Producer::with_max_payload`] says so.
    pub fn max_payload(&self) -> usize {
        let server = self.client.server_info().max_payload;
        match (self.max_payload, server) {
            (Some(mine), 0) => mine,
            (Some(mine), server) => mine.min(server),
            (None, 0) => DEFAULT_MAX_PAYLOAD,
            (None, server) => server,
        }
    }

    /// Refuses messages larger than `bytes` (the fleet's `max_payload`)
    /// before they are sent.
    #[must_use]
    pub fn with_max_payload(mut self, bytes: usize) -> Producer {
        self.max_payload = Some(bytes);
        self
    }

    /// JetStream on the underlying client.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// Publishes a `run.create` ([`Producer::publish`]).
    ///
    /// # Errors
    /// As [`Producer::publish`].
    pub async fn create_run(
        &self,
        run: &runfleet_schemas::RunCreate,
    ) -> Result<Accepted, ProducerError> {
        self.publish(run).await
    }

    /// Publishes a `command.create` ([`Producer::publish`]).
    ///
    /// # Errors
    /// As [`Producer::publish`].
    pub async fn send_command(
        &self,
        command: &runfleet_schemas::CommandCreate,
    ) -> Result<Accepted, ProducerError> {
        self.publish(command).await
    }

    /// Waits up to `timeout` for the answer to `command`: its receipt, or
    /// the dead letter that refused it ([`crate::follow::wait_for_answer`]).
    ///
    /// # Errors
    /// [`ProducerError::Refused`] when the fleet dead-lettered it (an
    /// idempotency conflict, say); [`ProducerError::Timeout`], or
    /// [`ProducerError::Read`].
    pub async fn wait_for_receipt(
        &self,
        command: &runfleet_schemas::CommandCreate,
        timeout: std::time::Duration,
    ) -> Result<runfleet_schemas::Receipt, ProducerError> {
        crate::follow::wait_for_answer(&self.jetstream, command, timeout).await
    }

    /// The underlying client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Validates `message` against its JSON Schema and publishes it on its
    /// subject with its `Nats-Msg-Id`, waiting for JetStream's PubAck.
    ///
    /// A publish JetStream could not answer is retried with the same bytes
    /// and the same `Nats-Msg-Id` for up to [`DEFAULT_PUBLISH_RETRY`]
    /// ([`Producer::with_publish_retry`]): `503 no responders` (a stream
    /// electing a leader, its stream missing), a PubAck that did not arrive
    /// (it may have been stored: JetStream deduplicates the retry), a
    /// broken connection. Giving up there would leave a gap in the run's
    /// seqs that stalls it.
    ///
    /// # Errors
    /// [`ProducerError::Invalid`] naming the field when the message breaks
    /// the contract (nothing is published); [`ProducerError::Publish`] when
    /// JetStream does not store it.
    pub async fn publish<M: Routed>(&self, message: &M) -> Result<Accepted, ProducerError> {
        self.publish_traced(message, &new_traceparent()).await
    }

    /// [`Producer::publish`] under an existing W3C trace context: the
    /// `traceparent` header travels with the message to the worker, its
    /// events and its receipt (whose `traceparent` field repeats it).
    ///
    /// # Errors
    /// As [`Producer::publish`].
    pub async fn publish_traced<M: Routed>(
        &self,
        message: &M,
        traceparent: &str,
    ) -> Result<Accepted, ProducerError> {
        let value = serde_json::to_value(message)?;
        decode_value::<M>(value.clone())?;
        let payload = serde_json::to_vec(&value)?;
        let limit = self.max_payload();
        // NATS counts the headers too (id, schema, traceparent: well under 1 KiB).
        if payload.len() + HEADER_ALLOWANCE > limit {
            return Err(ProducerError::TooLarge {
                kind: M::KIND.as_str(),
                size: payload.len(),
                limit,
            });
        }
        let subject = message.subject();
        let mut headers = HeaderMap::new();
        headers.insert(
            headers::MSG_ID,
            headers::producer_msg_id(&message.msg_id(), &payload).as_str(),
        );
        headers.insert(headers::SCHEMA, M::KIND.as_str());
        headers.insert(headers::TRACEPARENT, traceparent);
        if let Some(signer) = &self.signer
            && M::KIND == runfleet_schemas::MessageKind::ControlCancel
        {
            signer.sign(&mut headers, &subject, &payload);
        }
        let publish_error = |cause| ProducerError::Publish {
            subject: subject.clone(),
            cause,
        };
        let payload = bytes::Bytes::from(payload);
        let once = || async {
            self.jetstream
                .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
                .await?
                .await
        };
        let ack = once
            .retry(
                backon::ExponentialBuilder::default()
                    .with_min_delay(std::time::Duration::from_millis(100))
                    .with_max_delay(std::time::Duration::from_secs(2))
                    .with_total_delay(Some(self.retry_for))
                    .without_max_times(),
            )
            .when(|err| transient(err) && !self.retry_for.is_zero())
            .notify(|err, delay| {
                tracing::debug!(subject = %subject, error = %err, ?delay, "publish not answered; retrying with the same message id");
            })
            .await
            .map_err(publish_error)?;
        Ok(Accepted {
            stream: ack.stream,
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }
}

/// Whether JetStream may answer the same publish later: no responders
/// (reported as "stream not found"), no PubAck in time, a broken
/// connection, too many unacknowledged publishes.
fn transient(err: &jetstream::context::PublishError) -> bool {
    use jetstream::context::PublishErrorKind as Kind;
    matches!(
        err.kind(),
        Kind::StreamNotFound | Kind::TimedOut | Kind::BrokenPipe | Kind::MaxAckPending
    )
}

/// A fresh W3C trace context (`00-<trace id>-<span id>-01`, sampled).
pub fn new_traceparent() -> String {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let span = uuid::Uuid::new_v4().simple().to_string();
    format!("00-{trace}-{}-01", &span[..16])
}
