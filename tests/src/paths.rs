//! Where the project's scripts and pinned tools live.

use std::path::PathBuf;
use std::process::Command;

use crate::FixtureError;

/// The workspace root (the directory holding `scripts/` and `.tools/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits inside the workspace")
        .to_path_buf()
}

/// The pinned nats-server: `$RUNFLEET_NATS_SERVER` when set, otherwise the
/// one `scripts/stack` installs into `.tools/` (installing it if needed).
///
/// # Errors
/// [`FixtureError::Command`] when the install script fails.
pub fn nats_server_binary() -> Result<PathBuf, FixtureError> {
    if let Some(path) = std::env::var_os("RUNFLEET_NATS_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let script = workspace_root().join("scripts/stack");
    let output = Command::new(&script)
        .arg("nats-server-path")
        .output()
        .map_err(|source| FixtureError::Spawn {
            program: script.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(FixtureError::Command {
            what: format!("{} nats-server-path", script.display()),
            detail: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}
