//! `run.create`: open a run.
//!
//! Published on `runfleet.run.<tenant>.<run_id>` with `Nats-Msg-Id` set to
//! `idempotency_key`. Creating a run that already exists with the same
//! content is a no-op; with different content it is an
//! `idempotency-conflict`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Priority;
use crate::kind::kind_marker;
use crate::{
    Contract, MessageKind, ProfileName, ProjectId, RunId, SchemaVersion, SessionId, Tenant,
};

kind_marker!(
    /// The `schema` field of a [`RunCreate`]: always `"run.create"`.
    RunCreateKind,
    MessageKind::RunCreate
);

/// Opens a run: who owns it, which backend profile serves it, what it starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "run.create")]
pub struct RunCreate {
    /// Always `"run.create"`.
    pub schema: RunCreateKind,
    /// Always `1`.
    pub version: SchemaVersion,
    /// The run's identifier, chosen by the producer; unique per tenant.
    pub run_id: RunId,
    /// The tenant that owns the run.
    pub tenant: Tenant,
    /// The project inside the tenant.
    pub project: ProjectId,
    /// Which backend profile executes the run's commands.
    pub backend_profile: ProfileName,
    /// Continuity across runs; a session is bound to one tenant, project and profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// What to materialize as the run's working directory before its first command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_bundle: Option<ResourceBundle>,
    /// Spending limits per currency (e.g. `{"usd": 5.0}`); `cost.<currency>` metric events
    /// draw them down and a run that exhausts one is stopped with `budget-exhausted`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub budgets: BTreeMap<String, f64>,
    /// Free-form labels for operators (not interpreted by the fleet).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Binding idempotency key; also the `Nats-Msg-Id` header. 1–256 characters.
    #[schemars(length(min = 1, max = 256))]
    pub idempotency_key: String,
    /// When the producer created the message (RFC 3339).
    #[serde(deserialize_with = "crate::timestamp::strict")]
    pub created_at: DateTime<Utc>,
    /// Priority (`high`, `normal`, `low`); its subject carries it as a fifth
    /// token (`.high`, `.low`; none for `normal`) and must agree.
    #[serde(default, skip_serializing_if = "Priority::is_normal")]
    pub priority: Priority,
    /// The run's concurrency key inside its tenant (1–128 of `A-Z a-z 0-9 _ - . : / @`).
    /// Limits apply per key: the run's key is `tenant:<tenant>:<concurrency_key>`,
    /// or `tenant:<tenant>` without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_.:/@-]{1,128}$"))]
    pub concurrency_key: Option<String>,
}

/// Whether `key` is a valid `concurrency_key`.
pub fn concurrency_key_is_valid(key: &str) -> bool {
    (1..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:/@-".contains(&b))
}

impl RunCreate {
    /// The key the fleet's concurrency limits apply to.
    pub fn limit_key(&self) -> String {
        match &self.concurrency_key {
            Some(key) => format!("tenant:{}:{key}", self.tenant),
            None => format!("tenant:{}", self.tenant),
        }
    }
}

impl Contract for RunCreate {
    const KIND: MessageKind = MessageKind::RunCreate;

    fn meets_schema_constraints(&self) -> Option<bool> {
        let bundle = match &self.resource_bundle {
            None => true,
            Some(ResourceBundle::Directory { path }) => !path.is_empty(),
            Some(ResourceBundle::Git { url, commit }) => {
                !url.is_empty()
                    && (7..=64).contains(&commit.len())
                    && commit
                        .bytes()
                        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            }
        };
        let key = self
            .concurrency_key
            .as_deref()
            .is_none_or(concurrency_key_is_valid);
        Some(bundle && key && crate::kind::length_within(&self.idempotency_key, 1, 256))
    }
}

/// Where a run's working directory comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ResourceBundle {
    /// A directory on the worker's host, copied into the run's working directory.
    Directory {
        /// Absolute path of the directory.
        #[schemars(length(min = 1))]
        path: String,
    },
    /// A git repository checked out at one commit.
    Git {
        /// Clone URL (credentials in it are redacted from every log and event).
        #[schemars(length(min = 1))]
        url: String,
        /// The commit to check out (a full or abbreviated hash).
        #[schemars(regex(pattern = r"^[0-9a-f]{7,64}$"))]
        commit: String,
    },
}
