//! Message kinds and the `schema` / `version` fields every message carries.
//!
//! Each message type has a zero-sized marker for its `schema` field that
//! serializes to the kind's name and refuses any other value, and whose JSON
//! Schema is a `const`. That keeps the generated schemas exact (a producer
//! sees `"const": "command.create"`) without hand-written JSON.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The kinds of message in the contract, by their `schema` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageKind {
    /// `run.create`: open a run.
    RunCreate,
    /// `command.create`: one turn of a run.
    CommandCreate,
    /// `control.cancel`: cancel a run or one of its commands.
    ControlCancel,
    /// `receipt`: the stored outcome of a command.
    Receipt,
    /// `event`: one entry of a run's ordered event log.
    Event,
    /// `dead-letter`: a message that could not be processed, with its reason.
    DeadLetter,
}

impl MessageKind {
    /// Every kind, in contract order.
    pub const ALL: [MessageKind; 6] = [
        MessageKind::RunCreate,
        MessageKind::CommandCreate,
        MessageKind::ControlCancel,
        MessageKind::Receipt,
        MessageKind::Event,
        MessageKind::DeadLetter,
    ];

    /// The value of the `schema` field (and of the `Runfleet-Schema` header).
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageKind::RunCreate => "run.create",
            MessageKind::CommandCreate => "command.create",
            MessageKind::ControlCancel => "control.cancel",
            MessageKind::Receipt => "receipt",
            MessageKind::Event => "event",
            MessageKind::DeadLetter => "dead-letter",
        }
    }

    /// Parses a `schema` value.
    pub fn parse(value: &str) -> Option<MessageKind> {
        MessageKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == value)
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message type of the contract: its kind is known statically.
pub trait Contract: serde::de::DeserializeOwned + Serialize + JsonSchema {
    /// The kind this type encodes.
    const KIND: MessageKind;

    /// The constraints of this kind's JSON Schema that its Rust type does
    /// not enforce by itself (lengths, ranges), checked on a typed message:
    /// `Some(true)` when it meets them all, `Some(false)` when it does not,
    /// `None` when this kind declares no such check (then [`crate::decode`]
    /// always runs the schema validator).
    fn meets_schema_constraints(&self) -> Option<bool> {
        None
    }
}

/// Whether `text` is between `min` and `max` characters long (JSON
/// Schema's `minLength`/`maxLength` count characters, not bytes).
pub(crate) fn length_within(text: &str, min: usize, max: usize) -> bool {
    let bytes = text.len();
    if bytes < min {
        return false;
    }
    bytes <= max || (min..=max).contains(&text.chars().count())
}

macro_rules! kind_marker {
    ($(#[$meta:meta])* $name:ident, $kind:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
        pub struct $name;

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str($kind.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer
                    .deserialize_str($crate::kind::ConstStr($kind.as_str()))
                    .map(|()| $name)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "description": "The message kind; always this value.",
                    "const": $kind.as_str(),
                })
            }
        }
    };
}
pub(crate) use kind_marker;

/// A visitor that accepts exactly one string.
pub(crate) struct ConstStr(pub &'static str);

impl Visitor<'_> for ConstStr {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<(), E> {
        if value == self.0 {
            Ok(())
        } else {
            Err(E::invalid_value(de::Unexpected::Str(value), &self))
        }
    }
}

/// The `version` field. This contract is version 1; a message of any other
/// version is refused with an error naming `/version`, so that a newer
/// producer never has its fields silently ignored by an older worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SchemaVersion;

impl SchemaVersion {
    /// The contract version this crate speaks.
    pub const CURRENT: u64 = 1;
}

impl Serialize for SchemaVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(Self::CURRENT)
    }
}

impl<'de> Deserialize<'de> for SchemaVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let version = u64::deserialize(deserializer)?;
        if version == Self::CURRENT {
            Ok(SchemaVersion)
        } else {
            Err(de::Error::custom(format_args!(
                "unsupported version {version}, this worker speaks version {}",
                Self::CURRENT
            )))
        }
    }
}

impl JsonSchema for SchemaVersion {
    fn schema_name() -> Cow<'static, str> {
        "SchemaVersion".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The contract version; this is version 1.",
            "const": SchemaVersion::CURRENT,
        })
    }
}
