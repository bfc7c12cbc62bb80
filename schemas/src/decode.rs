//! Checking incoming bytes against the contract.
//!
//! [`decode`] parses bytes as JSON, validates them against the kind's
//! generated JSON Schema (the contract other languages follow), then reads
//! them into the Rust type. Whatever fails, the [`DecodeError`] names the
//! kind, the offending field as a JSON pointer, and the cause:
//!
//! ```text
//! command.create: /payload: expected object, found string
//! run.create: /tenant: required field is missing
//! event: /body/kind: expected one of "assistant_message", …, found "chat"
//! ```

use std::collections::BTreeMap;
use std::sync::LazyLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

pub use crate::violation::Violation;
use crate::{
    CommandCreate, Contract, ControlCancel, DeadLetter, Event, FailureKind, MessageKind, Receipt,
    RunCreate, generate, json_text,
};

/// At most this many schema violations are listed in one error.
const MAX_LISTED_VIOLATIONS: usize = 5;

/// A message that does not match the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", label(*.kind), join(.violations))]
pub struct DecodeError {
    /// The kind the message was checked as, when it is known.
    pub kind: Option<MessageKind>,
    /// What is wrong, first the most useful; never empty.
    pub violations: Vec<Violation>,
}

fn label(kind: Option<MessageKind>) -> &'static str {
    kind.map_or("message", MessageKind::as_str)
}

fn join(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl DecodeError {
    fn one(
        kind: Option<MessageKind>,
        pointer: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        DecodeError {
            kind,
            violations: vec![Violation {
                pointer: pointer.into(),
                reason: reason.into(),
            }],
        }
    }

    /// The first offending field as a JSON pointer (empty for the whole message).
    pub fn pointer(&self) -> &str {
        self.violations.first().map_or("", |v| v.pointer.as_str())
    }

    /// Always [`FailureKind::SchemaInvalid`]: the reason a dead letter carries.
    pub const fn failure_kind(&self) -> FailureKind {
        FailureKind::SchemaInvalid
    }
}

/// Any message of the contract.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A `run.create`.
    RunCreate(RunCreate),
    /// A `command.create`.
    CommandCreate(CommandCreate),
    /// A `control.cancel`.
    ControlCancel(ControlCancel),
    /// A `receipt`.
    Receipt(Receipt),
    /// An `event`.
    Event(Event),
    /// A `dead-letter`.
    DeadLetter(DeadLetter),
}

impl Message {
    /// The message's kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::RunCreate(_) => MessageKind::RunCreate,
            Message::CommandCreate(_) => MessageKind::CommandCreate,
            Message::ControlCancel(_) => MessageKind::ControlCancel,
            Message::Receipt(_) => MessageKind::Receipt,
            Message::Event(_) => MessageKind::Event,
            Message::DeadLetter(_) => MessageKind::DeadLetter,
        }
    }
}

/// Decodes `bytes` as a message of kind `T`.
///
/// Kinds that declare their schema's remaining constraints
/// ([`Contract::meets_schema_constraints`]) are read with typed serde first;
/// the JSON Schema validator runs only when that fails, to say why. Both
/// accept and refuse the same messages (the contract tests check it on
/// every example), so the fast path is only faster.
///
/// # Errors
/// [`DecodeError`] when the bytes are not JSON, do not match `T`'s JSON
/// Schema, or do not fit `T`.
pub fn decode<T: Contract>(bytes: &[u8]) -> Result<T, DecodeError> {
    if let Ok(message) = serde_json::from_slice::<T>(bytes)
        && message.meets_schema_constraints() == Some(true)
    {
        check_text(Some(T::KIND), bytes)?;
        return Ok(message);
    }
    decode_validated(bytes)
}

/// Decodes `bytes` as a message of kind `T`, always through the JSON
/// Schema validator (what [`decode`] falls back to).
///
/// # Errors
/// As [`decode`].
pub fn decode_validated<T: Contract>(bytes: &[u8]) -> Result<T, DecodeError> {
    decode_value(parse(Some(T::KIND), bytes)?)
}

/// Decodes an already parsed JSON value as a message of kind `T`.
///
/// # Errors
/// As [`decode`].
pub fn decode_value<T: Contract>(value: Value) -> Result<T, DecodeError> {
    check_schema(T::KIND, &value)?;
    serde_path_to_error::deserialize(value).map_err(|err| {
        let pointer = pointer_of(err.path());
        DecodeError::one(Some(T::KIND), pointer, err.into_inner().to_string())
    })
}

/// Decodes `bytes` as whichever kind its `schema` field names.
///
/// # Errors
/// [`DecodeError`] when `schema` is missing or unknown, or as [`decode`].
pub fn decode_any(bytes: &[u8]) -> Result<Message, DecodeError> {
    let value = parse(None, bytes)?;
    let Some(schema) = value.get("schema") else {
        let reason = if value.is_object() {
            "required field is missing"
        } else {
            "the message is not a JSON object"
        };
        return Err(DecodeError::one(None, "/schema", reason));
    };
    let kind = schema
        .as_str()
        .and_then(MessageKind::parse)
        .ok_or_else(|| {
            let known: Vec<_> = MessageKind::ALL
                .iter()
                .map(|k| format!("\"{k}\""))
                .collect();
            DecodeError::one(
                None,
                "/schema",
                format!("expected one of {}, found {schema}", known.join(", ")),
            )
        })?;
    Ok(match kind {
        MessageKind::RunCreate => Message::RunCreate(decode_value(value)?),
        MessageKind::CommandCreate => Message::CommandCreate(decode_value(value)?),
        MessageKind::ControlCancel => Message::ControlCancel(decode_value(value)?),
        MessageKind::Receipt => Message::Receipt(decode_value(value)?),
        MessageKind::Event => Message::Event(decode_value(value)?),
        MessageKind::DeadLetter => Message::DeadLetter(decode_value(value)?),
    })
}

/// Parses `bytes` as JSON that [`json_text::check`] accepts.
fn parse(kind: Option<MessageKind>, bytes: &[u8]) -> Result<Value, DecodeError> {
    let value = serde_json::from_slice(bytes)
        .map_err(|err| DecodeError::one(kind, "", format!("invalid JSON: {err}")))?;
    check_text(kind, bytes)?;
    Ok(value)
}

/// Refuses what JSON allows but the contract does not (U+0000, repeated keys).
fn check_text(kind: Option<MessageKind>, bytes: &[u8]) -> Result<(), DecodeError> {
    match json_text::check(bytes) {
        None => Ok(()),
        Some(violation) => Err(DecodeError {
            kind,
            violations: vec![violation],
        }),
    }
}

/// One compiled validator per kind, built on first use from the generated schemas.
static VALIDATORS: LazyLock<BTreeMap<MessageKind, Validator>> = LazyLock::new(|| {
    MessageKind::ALL
        .into_iter()
        .map(|kind| {
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&generate::schema_value_of(kind))
                .unwrap_or_else(|err| {
                    panic!("the generated {kind} schema does not compile: {err}")
                });
            (kind, validator)
        })
        .collect()
});

fn check_schema(kind: MessageKind, value: &Value) -> Result<(), DecodeError> {
    let mut violations: Vec<Violation> = VALIDATORS[&kind]
        .iter_errors(value)
        .map(|err| violation(&err))
        .collect();
    // A message of another kind fails everywhere; its `schema` says it all.
    if let Some(wrong_kind) = violations.iter().position(|v| v.pointer == "/schema") {
        violations = vec![violations.swap_remove(wrong_kind)];
    }
    violations.truncate(MAX_LISTED_VIOLATIONS);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(DecodeError {
            kind: Some(kind),
            violations,
        })
    }
}

/// Turns a schema violation into a pointer and a reason a person can act on.
fn violation(err: &ValidationError<'_>) -> Violation {
    let here = err.instance_path().as_str().to_owned();
    let found = err.instance();
    let at = |pointer: String, reason: String| Violation { pointer, reason };
    match err.kind() {
        ValidationErrorKind::Required { property } => at(
            format!("{here}/{}", property.as_str().unwrap_or_default()),
            "required field is missing".into(),
        ),
        ValidationErrorKind::AdditionalProperties { unexpected } => match unexpected.as_slice() {
            [one] => at(format!("{here}/{one}"), "unknown field".into()),
            many => at(here, format!("unknown fields {}", many.join(", "))),
        },
        ValidationErrorKind::Type { kind } => at(
            here,
            format!("expected {}, found {}", type_names(kind), type_of(found)),
        ),
        ValidationErrorKind::Constant { expected_value } => {
            at(here, format!("expected {expected_value}, found {found}"))
        }
        ValidationErrorKind::Enum { options } => at(
            here,
            format!("expected one of {}, found {found}", list(options)),
        ),
        ValidationErrorKind::Pattern { pattern } => at(
            here,
            format!("{found} does not match the pattern {pattern}"),
        ),
        ValidationErrorKind::Minimum { limit } => {
            at(here, format!("must be at least {limit}, found {found}"))
        }
        ValidationErrorKind::Maximum { limit } => {
            at(here, format!("must be at most {limit}, found {found}"))
        }
        ValidationErrorKind::MinLength { limit: 1 } => at(here, "must not be empty".into()),
        ValidationErrorKind::MinLength { limit } => {
            at(here, format!("must be at least {limit} characters long"))
        }
        ValidationErrorKind::MaxLength { limit } => {
            at(here, format!("must be at most {limit} characters long"))
        }
        ValidationErrorKind::Format { format } => {
            at(here, format!("expected a {format} string, found {found}"))
        }
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            tagged_union_violation(&here, context).unwrap_or_else(|| at(here, err.to_string()))
        }
        _ => at(here, err.to_string()),
    }
}

/// A union failed. When it is a union of constants (a documented enum) or of
/// objects tagged by `kind`, report the tag's allowed values, or the errors of
/// the variant the message's tag chose.
fn tagged_union_violation(here: &str, branches: &[Vec<ValidationError<'_>>]) -> Option<Violation> {
    let nested_tag = format!("{here}/kind");
    let tag_error = |branch: &[ValidationError<'_>]| -> Option<(String, String, String)> {
        branch.iter().find_map(|e| match e.kind() {
            ValidationErrorKind::Constant { expected_value }
                if e.instance_path().as_str() == here
                    || e.instance_path().as_str() == nested_tag =>
            {
                Some((
                    e.instance_path().as_str().to_owned(),
                    expected_value.to_string(),
                    e.instance().to_string(),
                ))
            }
            _ => None,
        })
    };
    if let Some(chosen) = branches.iter().find(|branch| tag_error(branch).is_none()) {
        return chosen.first().map(violation);
    }
    let refused: Vec<_> = branches
        .iter()
        .filter_map(|branch| tag_error(branch))
        .collect();
    let (pointer, _, found) = refused.first()?.clone();
    let expected: Vec<_> = refused
        .into_iter()
        .map(|(_, expected, _)| expected)
        .collect();
    Some(Violation {
        pointer,
        reason: format!("expected one of {}, found {found}", expected.join(", ")),
    })
}

fn type_names(kind: &TypeKind) -> String {
    match kind {
        TypeKind::Single(one) => one.to_string(),
        TypeKind::Multiple(set) => set
            .into_iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn list(options: &Value) -> String {
    match options {
        Value::Array(items) => items
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(format!("/{index}")),
            Segment::Map { key } => Some(format!("/{key}")),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn command(payload: Value) -> Value {
        json!({
            "schema": "command.create", "version": 1, "command_id": "c1", "tenant": "acme",
            "run_id": "r1", "seq": 1, "kind": "turn", "payload": payload,
            "idempotency_key": "k1", "created_at": "2026-01-01T00:00:00Z"
        })
    }

    fn error_of<T: Contract + std::fmt::Debug>(value: Value) -> String {
        decode_value::<T>(value).unwrap_err().to_string()
    }

    #[test]
    fn names_the_field_and_the_expected_type() {
        assert_eq!(
            error_of::<CommandCreate>(command(json!("hi"))),
            "command.create: /payload: expected object, found string"
        );
    }

    #[test]
    fn names_missing_and_unknown_fields() {
        let mut value = command(json!({}));
        value.as_object_mut().unwrap().remove("seq");
        value["palyoad"] = json!({});
        let err = error_of::<CommandCreate>(value);
        assert!(err.contains("/palyoad: unknown field"), "{err}");
        assert!(err.contains("/seq: required field is missing"), "{err}");
    }

    #[test]
    fn refuses_other_versions_and_kinds() {
        let mut value = command(json!({}));
        value["version"] = json!(2);
        assert_eq!(
            error_of::<CommandCreate>(value),
            "command.create: /version: expected 1, found 2"
        );
        assert_eq!(
            error_of::<RunCreate>(command(json!({}))),
            "run.create: /schema: expected \"run.create\", found \"command.create\""
        );
    }

    #[test]
    fn decode_any_dispatches_on_schema() {
        let bytes = serde_json::to_vec(&command(json!({"text": "hi"}))).unwrap();
        assert_eq!(
            decode_any(&bytes).unwrap().kind(),
            MessageKind::CommandCreate
        );
        assert_eq!(
            decode_any(br#"{"schema":"nope"}"#).unwrap_err().to_string(),
            "message: /schema: expected one of \"run.create\", \"command.create\", \
             \"control.cancel\", \"receipt\", \"event\", \"dead-letter\", found \"nope\""
        );
        assert!(
            decode_any(b"{not json")
                .unwrap_err()
                .to_string()
                .starts_with("message: invalid JSON")
        );
    }
}
