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

/// Every schema file: `(file name, pretty JSON with a trailing newline)`:
/// each message kind's, then each operator API endpoint's request and
/// response (`api.<endpoint>.request.json`, `api.<endpoint>.response.json`).
pub fn files() -> Vec<(String, String)> {
    let pretty = |value: &Value| {
        let mut text = serde_json::to_string_pretty(value).expect("a JSON value always serializes");
        text.push('\n');
        text
    };
    let messages = MessageKind::ALL
        .into_iter()
        .map(|kind| (file_name(kind), pretty(&schema_value_of(kind))));
    let api = crate::api::schemas()
        .into_iter()
        .flat_map(|(endpoint, request, response)| {
            [
                (format!("api.{endpoint}.request.json"), pretty(&request)),
                (format!("api.{endpoint}.response.json"), pretty(&response)),
            ]
        });
    messages.chain(api).collect()
}
