//! Runs whose commands may be settled in one statement.
//!
//! A command whose backend computes its outcome from the command alone,
//! without effects outside the journal (`echo` without an effects file,
//! say), needs no separate claim: its outcome is computed first and
//! PostgreSQL claims the run and commits it in one call. That needs the
//! run's profile before the first round trip, so the worker remembers it
//! for runs it has seen claimed (a run's profile never changes) and that
//! have neither a resource bundle nor budgets (both need the claim first).
//! Until a run is remembered, its commands take the two-step path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most runs remembered; past this the memory starts over (it is only a shortcut).
const MAX_REMEMBERED: usize = 100_000;

/// The profiles of runs that may be settled in one statement, by run key.
#[derive(Debug, Default)]
pub struct PureRuns {
    runs: Mutex<HashMap<String, Arc<str>>>,
}

impl PureRuns {
    /// Remembers that the run `key` is served by `profile` and needs no claim before its outcome.
    pub fn remember(&self, key: &str, profile: &str) {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        if runs.contains_key(key) {
            return;
        }
        if runs.len() >= MAX_REMEMBERED {
            runs.clear();
        }
        runs.insert(key.to_owned(), Arc::from(profile));
    }

    /// The profile of the run `key`, when it is remembered.
    pub fn profile(&self, key: &str) -> Option<Arc<str>> {
        self.runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }
}
