//! The operator API's signer registry: `signer.add`, `signer.list`,
//! `signer.remove`. A fleet that requires signed cancels
//! (`RUNFLEET_REQUIRE_SIGNED_CONTROL`) accepts a `control.cancel` only when
//! it is signed by a key registered here for its tenant
//! ([`crate::control_signature`]).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ApiRequest, RequestError};

/// The longest note on a registration.
pub const MAX_NOTE: usize = 256;

/// Whether `key` reads as a public NKey of a user: `U` and 55 more
/// characters of base32 (`A-Z`, `2-7`). The checksum is the worker's to check.
pub fn is_user_public_key(key: &str) -> bool {
    key.len() == 56
        && key.starts_with('U')
        && key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

fn check_key(tenant: &str, key: &str) -> Result<(), RequestError> {
    crate::Tenant::new(tenant).map_err(|err| RequestError::Bounds {
        field: "tenant".to_owned(),
        rule: err.to_string(),
    })?;
    if is_user_public_key(key) {
        Ok(())
    } else {
        Err(RequestError::Bounds {
            field: "public_key".to_owned(),
            rule:
                "must be a public user NKey: `U` and 55 more characters of `A-Z 2-7` (not a seed)"
                    .to_owned(),
        })
    }
}

/// `signer.add`: registers a public key for a tenant's signed cancels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignerAddRequest {
    /// The tenant whose cancels the key may sign.
    pub tenant: String,
    /// The public NKey (`U…`).
    pub public_key: String,
    /// Who or what holds the key (for operators).
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub note: Option<String>,
}

impl ApiRequest for SignerAddRequest {
    const ENDPOINT: &'static str = "signer.add";
    type Response = SignerAnswer;
    fn check(&self) -> Result<(), RequestError> {
        check_key(&self.tenant, &self.public_key)?;
        if self.note.as_ref().is_some_and(|n| n.len() > MAX_NOTE) {
            return Err(RequestError::Bounds {
                field: "note".to_owned(),
                rule: format!("must be at most {MAX_NOTE} bytes"),
            });
        }
        Ok(())
    }
}

/// `signer.list`: the registered keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignerListRequest {
    /// Only this tenant's (every tenant's when absent).
    #[serde(default)]
    pub tenant: Option<String>,
}

impl ApiRequest for SignerListRequest {
    const ENDPOINT: &'static str = "signer.list";
    type Response = SignerList;
    fn check(&self) -> Result<(), RequestError> {
        Ok(())
    }
}

/// `signer.remove`: removes a key; its signatures are refused from the
/// next cancel on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignerRemoveRequest {
    /// The tenant it was registered for.
    pub tenant: String,
    /// The public NKey (`U…`).
    pub public_key: String,
}

impl ApiRequest for SignerRemoveRequest {
    const ENDPOINT: &'static str = "signer.remove";
    type Response = SignerAnswer;
    fn check(&self) -> Result<(), RequestError> {
        check_key(&self.tenant, &self.public_key)
    }
}

/// A registration, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignerAnswer {
    /// The tenant.
    pub tenant: String,
    /// The public NKey.
    pub public_key: String,
    /// The note given when it was added.
    pub note: Option<String>,
    /// When it was added.
    pub added_at: DateTime<Utc>,
    /// Whether it was removed (by this request).
    pub removed: bool,
}

/// `signer.list`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SignerList {
    /// The registrations, by tenant and key.
    pub signers: Vec<SignerAnswer>,
}
