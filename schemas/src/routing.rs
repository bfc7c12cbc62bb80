//! Where each message is published, and under which `Nats-Msg-Id`.
//!
//! [`Routed`] ties a message to its subject (see [`crate::subjects`]) and to
//! the deduplication id JetStream keys on: the producer's idempotency key for
//! the messages producers publish, and an id derived from the message's
//! identity for what the fleet publishes, so that a replay republishes under
//! the same id and JetStream drops the copy.

use crate::{
    CommandCreate, Contract, ControlCancel, DeadLetter, Event, Receipt, RunCreate, subjects,
};

/// A message with a fixed subject and deduplication id.
pub trait Routed: Contract {
    /// The subject to publish on.
    fn subject(&self) -> String;
    /// The `Nats-Msg-Id` header value.
    fn msg_id(&self) -> String;
}

impl Routed for RunCreate {
    fn subject(&self) -> String {
        subjects::at_priority(
            crate::MessageKind::RunCreate,
            &self.tenant,
            &self.run_id,
            self.priority,
        )
    }
    fn msg_id(&self) -> String {
        self.idempotency_key.clone()
    }
}

impl Routed for CommandCreate {
    fn subject(&self) -> String {
        subjects::at_priority(
            crate::MessageKind::CommandCreate,
            &self.tenant,
            &self.run_id,
            self.priority,
        )
    }
    fn msg_id(&self) -> String {
        self.idempotency_key.clone()
    }
}

impl Routed for ControlCancel {
    fn subject(&self) -> String {
        subjects::control(&self.tenant, &self.run_id)
    }
    fn msg_id(&self) -> String {
        self.idempotency_key.clone()
    }
}

impl Routed for Receipt {
    fn subject(&self) -> String {
        subjects::receipt(&self.tenant, &self.run_id)
    }
    fn msg_id(&self) -> String {
        format!("receipt:{}:{}", self.run_id, self.command_id)
    }
}

impl Routed for Event {
    fn subject(&self) -> String {
        subjects::event(&self.tenant, &self.run_id)
    }
    fn msg_id(&self) -> String {
        format!("event:{}:{}", self.run_id, self.seq)
    }
}

impl Routed for DeadLetter {
    fn subject(&self) -> String {
        subjects::dead_letter(&self.tenant)
    }
    fn msg_id(&self) -> String {
        format!("dead-letter:{}", self.dead_letter_id)
    }
}
