//! Priorities: three levels, each a queue of its own.
//!
//! JetStream delivers a consumer's messages in stream order and has no
//! per-message priority, so a level is a subject suffix: `normal` work is
//! published on the plain subject (`runfleet.cmd.<tenant>.<run_id>`), `high`
//! and `low` work on the same subject with a fifth token
//! (`runfleet.cmd.<tenant>.<run_id>.high`). The fleet reads each level
//! through a consumer of its own and shares its execution slots among the
//! levels that have work by weight ([`Priority::weight`]): higher levels
//! start first, and a lower level always gets its share — it is never
//! starved. A message's `priority` field must name its subject's level.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How urgent a run's or a command's work is.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Starts before normal and low work (weight 8).
    High,
    /// The default (weight 4).
    #[default]
    Normal,
    /// Starts after the others, but always gets its share (weight 1).
    Low,
}

impl Priority {
    /// Every level, highest first.
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    /// The level's name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    /// The subject suffix of the level (`None` for `normal`: the plain subject).
    pub const fn token(self) -> Option<&'static str> {
        match self {
            Priority::Normal => None,
            other => Some(other.as_str()),
        }
    }

    /// The level a subject suffix names (`high`, `low`); `None` for any other.
    pub fn from_token(token: &str) -> Option<Priority> {
        match token {
            "high" => Some(Priority::High),
            "low" => Some(Priority::Low),
            _ => None,
        }
    }

    /// The level's share of the slots when every level has work:
    /// high 8, normal 4, low 1 (of 13).
    pub const fn weight(self) -> u32 {
        match self {
            Priority::High => 8,
            Priority::Normal => 4,
            Priority::Low => 1,
        }
    }

    /// The `priority` field of a stored run or command message (`normal`
    /// when it has none, or cannot be read): where the fleet publishes a
    /// parked or delayed command again.
    pub fn of_message(bytes: &[u8]) -> Priority {
        #[derive(Deserialize)]
        struct Level {
            #[serde(default)]
            priority: Priority,
        }
        serde_json::from_slice::<Level>(bytes)
            .map(|level| level.priority)
            .unwrap_or_default()
    }

    /// Whether this is the default level (left out when serializing).
    pub fn is_normal(&self) -> bool {
        *self == Priority::Normal
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
