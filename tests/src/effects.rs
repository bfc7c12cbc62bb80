//! The echo backend's effects file (`RUNFLEET_ECHO_EFFECTS_FILE`): one line
//! per execution, `tenant run_id seq command_id attempt worker_id`, the
//! side-effect counter exactly-once checks compare with the receipts.

use std::path::Path;

/// One line of the effects file: one execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// The run's tenant.
    pub tenant: String,
    /// The run.
    pub run_id: String,
    /// The command's seq.
    pub seq: u64,
    /// The command.
    pub command_id: String,
    /// The delivery that executed it.
    pub attempt: u64,
    /// The worker that executed it.
    pub worker_id: String,
}

impl Effect {
    /// Reads one line; `None` when it is not six fields with numbers where due.
    pub fn parse(line: &str) -> Option<Effect> {
        let f: Vec<&str> = line.split(' ').collect();
        let [tenant, run_id, seq, command_id, attempt, worker_id] = f.as_slice() else {
            return None;
        };
        Some(Effect {
            tenant: (*tenant).into(),
            run_id: (*run_id).into(),
            seq: seq.parse().ok()?,
            command_id: (*command_id).into(),
            attempt: attempt.parse().ok()?,
            worker_id: (*worker_id).into(),
        })
    }
}

/// Every line of the effects file at `path`, in the order written; a line
/// that does not parse is `None` (a torn write would be a bug to report).
///
/// # Errors
/// When the file cannot be read (a missing file is no executions).
pub fn read_effects(path: &Path) -> std::io::Result<Vec<Option<Effect>>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().map(Effect::parse).collect()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(err),
    }
}
