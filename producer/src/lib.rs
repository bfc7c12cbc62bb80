//! # runfleet-producer — publish runs and commands to the fleet
//!
//! Upstream Rust services use [`Producer`] to publish the producer-side
//! messages of the contract (`run.create`, `command.create`,
//! `control.cancel`) to NATS JetStream. Every message is checked against
//! its JSON Schema before it leaves the process, is published on its
//! subject with `Nats-Msg-Id` set to its idempotency key and
//! `Runfleet-Schema` set to its kind, and the call returns only when
//! JetStream has stored it (the PubAck). A publish JetStream recognises as
//! a duplicate is reported as [`Accepted::duplicate`], not as an error: the
//! message was accepted before.
//!
//! Producers in other languages follow `schemas/README.md` instead.
#![forbid(unsafe_code)]

mod error;
pub mod follow;
mod in_seq_order;
pub mod inspect;
pub mod messages;
mod producer;
pub mod result;
mod signing;

pub use error::ProducerError;
pub use messages::{new_cancel, new_command, new_run};
pub use producer::{Accepted, Producer};
/// Connecting to NATS (authentication, TLS): the `runfleet-nats` crate.
pub use runfleet_nats as connect;
pub use runfleet_nats::NatsAuth;
pub use signing::Signer;
