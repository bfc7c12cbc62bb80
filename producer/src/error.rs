//! What can go wrong when publishing.

use runfleet_schemas::DecodeError;

/// A publish that did not happen, and why.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// NATS could not be reached.
    #[error(
        "cannot reach NATS at {url}: {cause} — is the stack running? (`scripts/stack start`, see README)"
    )]
    Connect {
        /// The URL tried.
        url: String,
        /// The client's reason.
        cause: async_nats::ConnectError,
    },
    /// The message does not match the contract; nothing was published.
    #[error("not published: {0}")]
    Invalid(#[from] DecodeError),
    /// The message could not be serialized.
    #[error("cannot serialize the message: {0}")]
    Serialize(#[from] serde_json::Error),
    /// JetStream did not store the message (no stream for the subject, timeout, …).
    #[error(
        "JetStream did not accept the message on {subject}: {cause} — has `runfleet-worker setup` created the streams?"
    )]
    Publish {
        /// The subject published on.
        subject: String,
        /// JetStream's reason.
        cause: async_nats::jetstream::context::PublishError,
    },
    /// Reading receipts or events failed.
    #[error("cannot read {what}: {detail}")]
    Read {
        /// What was being read.
        what: String,
        /// The broker's reason.
        detail: String,
    },
    /// The fleet refused the message: it was dead-lettered, and no receipt
    /// will answer it.
    #[error("refused by the fleet ({reason}): {message}")]
    Refused {
        /// The dead letter's reason.
        reason: runfleet_schemas::FailureKind,
        /// The dead letter's explanation.
        message: String,
    },
    /// Nothing arrived in time.
    #[error("no {what} within {}", humantime::format_duration(*.waited))]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: std::time::Duration,
    },
    /// The message is larger than the fleet or the server accepts; nothing was published.
    #[error(
        "not published: the {kind} message is {size} bytes; the limit is {limit} (max_payload)"
    )]
    TooLarge {
        /// The message kind.
        kind: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// An authentication or TLS setting is unusable (the message names it, never its value).
    #[error("{setting}: {detail}")]
    Auth {
        /// Which setting.
        setting: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A chunked result could not be joined (a chunk missing or altered).
    #[error("the result of command {command_id}: {cause}")]
    Output {
        /// The command.
        command_id: String,
        /// What is wrong with its chunks.
        cause: runfleet_schemas::result_chunks::ChunkError,
    },
    /// An identifier is not a valid subject token.
    #[error(transparent)]
    Id(#[from] runfleet_schemas::IdError),
}

impl From<runfleet_nats::ConnectError> for ProducerError {
    fn from(err: runfleet_nats::ConnectError) -> ProducerError {
        match err {
            runfleet_nats::ConnectError::Auth { setting, detail } => {
                ProducerError::Auth { setting, detail }
            }
            runfleet_nats::ConnectError::Connect { url, cause } => {
                ProducerError::Connect { url, cause }
            }
        }
    }
}
