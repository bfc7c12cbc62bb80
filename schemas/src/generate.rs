//! Generating the JSON Schemas from the Rust types.
//!
//! `cargo run -p runfleet-schemas --bin runfleet-schemas -- schemas/json`
//! rewrites the committed files; the `contract` test fails when they differ
//! from what the types generate.

use schemars::JsonSchema;
use serde_json::Value;

use crate::{CommandCreate, ControlCancel, DeadLetter, Event, MessageKind, Receipt, RunCreate};

/// The JSON Schema of `T` (draft 2020-12) as a JSON value.
pub fn schema_value<T: JsonSchema>() -> Value {
    schemars::schema_for!(T).to_value()
}

/// The JSON Schema of one message kind.
pub fn schema_value_of(kind: MessageKind) -> Value {
    match kind {
        MessageKind::RunCreate => schema_value::<RunCreate>(),
        MessageKind::CommandCreate => schema_value::<CommandCreate>(),
        MessageKind::ControlCancel => schema_value::<ControlCancel>(),
        MessageKind::Receipt => schema_value::<Receipt>(),
        MessageKind::Event => schema_value::<Event>(),
        MessageKind::DeadLetter => schema_value::<DeadLetter>(),
    }
}

/// The file name a kind's schema is committed under, e.g. `command.create.json`.
pub fn file_name(kind: MessageKind) -> String {
    format!("{}.json", kind.as_str())
}

/// Every schema file: `(file name, pretty JSON with a trailing newline)`.
pub fn files() -> Vec<(String, String)> {
    MessageKind::ALL
        .into_iter()
        .map(|kind| {
            let mut text = serde_json::to_string_pretty(&schema_value_of(kind))
                .expect("a JSON value always serializes");
            text.push('\n');
            (file_name(kind), text)
        })
        .collect()
}
