//! # runfleet-schemas — the wire contract
//!
//! Every message that crosses NATS between an upstream producer and the
//! runfleet worker fleet is defined here, once, as a Rust type. The JSON
//! Schemas (draft 2020-12) under `schemas/json/` are generated from these
//! types ([`generate`]) and a test fails when the committed files drift from
//! them, so the Rust types are the single source of truth and producers in
//! any other language follow the JSON files.
//!
//! | kind             | type                | subject                                  |
//! |------------------|---------------------|------------------------------------------|
//! | `run.create`     | [`RunCreate`]       | `runfleet.run.<tenant>.<run_id>[.<priority>]` |
//! | `command.create` | [`CommandCreate`]   | `runfleet.cmd.<tenant>.<run_id>[.<priority>]` |
//! | `control.cancel` | [`ControlCancel`]   | `runfleet.ctl.<tenant>.<run_id>`         |
//! | `receipt`        | [`Receipt`]         | `runfleet.receipt.<tenant>.<run_id>`     |
//! | `event`          | [`Event`]           | `runfleet.evt.<tenant>.<run_id>`         |
//! | `dead-letter`    | [`DeadLetter`]      | `runfleet.dlq.<tenant>`                  |
//!
//! Every message carries `schema` (its kind) and `version`. Incoming bytes are
//! checked with [`decode`] (or [`decode_any`] when the kind is not known
//! up front): first against the JSON Schema, then into the Rust type, and any
//! failure is a [`DecodeError`] whose message names the kind, the offending
//! field as a JSON pointer and the cause, e.g.
//! `command.create: /payload: expected object, found string`.
//!
//! ```
//! use runfleet_schemas::{decode, CommandCreate};
//!
//! let bytes = br#"{"schema":"command.create","version":1,"command_id":"c1",
//!     "tenant":"acme","run_id":"r1","seq":1,"kind":"turn","payload":"hi",
//!     "idempotency_key":"k1","created_at":"2026-01-01T00:00:00Z"}"#;
//! let err = decode::<CommandCreate>(bytes).unwrap_err();
//! assert_eq!(err.to_string(), "command.create: /payload: expected object, found string");
//! ```
#![forbid(unsafe_code)]

pub mod api;
mod command_create;
mod control_cancel;
pub mod control_signature;
mod dead_letter;
mod decode;
mod event;
mod failure;
pub mod generate;
pub mod headers;
mod ids;
mod json_text;
mod kind;
mod priority;
mod receipt;
pub mod result_chunks;
mod routing;
mod run_create;
mod status;
pub mod subjects;
mod timestamp;
mod violation;

pub use command_create::{CommandCreate, CommandKind};
pub use control_cancel::ControlCancel;
pub use dead_letter::{DeadLetter, DeliveryRecord, PayloadEncoding};
pub use decode::{DecodeError, Message, decode, decode_any, decode_validated, decode_value};
pub use event::{Event, EventBody, OutputStream, StepStatus};
pub use failure::{FailureKind, Retry};
pub use ids::{CommandId, IdError, ProfileName, ProjectId, RunId, ScheduleId, SessionId, Tenant};
pub use kind::{Contract, MessageKind, SchemaVersion};
pub use priority::Priority;
pub use receipt::{EventRange, Failure, Receipt};
pub use routing::Routed;
pub use run_create::{ResourceBundle, RunCreate};
pub use status::{CommandStatus, RunStatus, TerminalCommandStatus};

/// Largest `output` a receipt carries, in bytes of serialized JSON; larger
/// results travel as `result_chunk` events ([`result_chunks`]), and those
/// over [`result_chunks::MAX_OUTPUT_BYTES`] keep their tail and set
/// `output_truncated`.
pub const MAX_RECEIPT_OUTPUT_BYTES: usize = 64 * 1024;
