//! Identifiers that become NATS subject tokens.
//!
//! Tenants, projects, runs, commands, sessions and backend profiles appear
//! inside subjects (`runfleet.cmd.<tenant>.<run_id>`), so they are restricted
//! to a charset that can never be read as a subject separator (`.`) or
//! wildcard (`*`, `>`), nor contain whitespace: ASCII letters, digits, `_`
//! and `-`, 1 to 128 characters. This lets NATS permissions confine a
//! producer to `runfleet.*.<tenant>.>`.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The pattern every identifier matches (also written into the JSON Schemas).
pub const TOKEN_PATTERN: &str = "^[A-Za-z0-9_-]{1,128}$";

/// Longest identifier, in bytes.
pub const MAX_TOKEN_LEN: usize = 128;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string is empty.
    #[error("{what} is empty")]
    Empty {
        /// Which identifier (`tenant`, `run_id`, …).
        what: &'static str,
    },
    /// The string is longer than [`MAX_TOKEN_LEN`].
    #[error("{what} is {len} bytes long, at most {MAX_TOKEN_LEN} are allowed")]
    TooLong {
        /// Which identifier.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The string holds a character outside `[A-Za-z0-9_-]`.
    #[error(
        "{what} {value:?} contains {found:?}; only ASCII letters, digits, '_' and '-' are allowed"
    )]
    BadChar {
        /// Which identifier.
        what: &'static str,
        /// The refused value.
        value: String,
        /// The first refused character.
        found: char,
    },
}

/// Checks `value` against [`TOKEN_PATTERN`].
///
/// # Errors
/// [`IdError`] naming `what` and the cause.
pub fn check_token(what: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { what });
    }
    if value.len() > MAX_TOKEN_LEN {
        return Err(IdError::TooLong {
            what,
            len: value.len(),
        });
    }
    match value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        Some(found) => Err(IdError::BadChar {
            what,
            value: value.to_owned(),
            found,
        }),
        None => Ok(()),
    }
}

macro_rules! token_type {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `value`.
            ///
            /// # Errors
            /// [`IdError`] when `value` is not a valid subject token.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check_token($what, &value)?;
                Ok(Self(value))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;

            fn try_from(value: &str) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;

            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "description": concat!(
                        "A ", $what, ": a NATS subject token of ASCII letters, digits, '_' and '-'."
                    ),
                    "type": "string",
                    "pattern": TOKEN_PATTERN,
                })
            }
        }
    };
}

token_type!(
    /// The tenant that owns a run. Tenants never see each other's runs.
    Tenant,
    "tenant"
);
token_type!(
    /// A project inside a tenant.
    ProjectId,
    "project"
);
token_type!(
    /// A run's identifier, chosen by the producer (the producer library uses a UUIDv7).
    RunId,
    "run id"
);
token_type!(
    /// A command's identifier, unique within its run.
    CommandId,
    "command id"
);
token_type!(
    /// A session: continuity across runs of one tenant, project and profile.
    SessionId,
    "session id"
);
token_type!(
    /// The name of a backend profile (which kind of executor serves a run).
    ProfileName,
    "backend profile"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_subject_safe_tokens() {
        for ok in ["acme", "run-01J", "A_b-9", &"x".repeat(MAX_TOKEN_LEN)] {
            assert!(Tenant::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_subject_syntax_and_whitespace() {
        for (bad, found) in [
            ("a.b", '.'),
            ("a*", '*'),
            ("a>", '>'),
            ("a b", ' '),
            ("é", 'é'),
        ] {
            assert_eq!(
                Tenant::new(bad).unwrap_err(),
                IdError::BadChar {
                    what: "tenant",
                    value: bad.into(),
                    found
                }
            );
        }
        assert_eq!(
            RunId::new("").unwrap_err(),
            IdError::Empty { what: "run id" }
        );
        assert!(matches!(
            RunId::new("x".repeat(MAX_TOKEN_LEN + 1)),
            Err(IdError::TooLong { len: 129, .. })
        ));
    }
}
token_type!(
    /// A schedule's identifier (recurring runs), unique per tenant.
    ScheduleId,
    "schedule"
);
