//! The workspace's binaries, for tests that run them as real processes.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::{FixtureError, workspace_root};

/// The path of a workspace binary (`runfleet`, `runfleet-worker`), built
/// with `cargo build --workspace --bins` (the same feature set as
/// `scripts/test`, so it is a no-op there) on first use in this process so
/// it is never stale. `RUNFLEET_BIN_PROFILE=release` builds and uses
/// release binaries (the benchmark does).
///
/// # Errors
/// [`FixtureError::Command`] when the build fails.
pub fn binary(name: &str) -> Result<PathBuf, FixtureError> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let output = Command::new(cargo)
                .current_dir(workspace_root())
                .args([
                    "build",
                    "--quiet",
                    "--bins",
                    "-p",
                    "runfleet-worker",
                    "-p",
                    "runfleet-cli",
                ])
                .output()
                .map_err(|err| err.to_string())?;
            if output.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&output.stderr).into_owned())
            }
        })
        .clone()
        .map_err(|detail| FixtureError::Command {
            what: "cargo build --bins".into(),
            detail,
        })?;
    let path = target_dir()
        .join(if release() { "release" } else { "debug" })
        .join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(FixtureError::Command {
            what: format!("looking for {name}"),
            detail: format!("{} does not exist after cargo build", path.display()),
        })
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn release() -> bool {
    std::env::var("RUNFLEET_BIN_PROFILE").is_ok_and(|p| p == "release")
}
