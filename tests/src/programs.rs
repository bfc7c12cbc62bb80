//! The test programs of the `process` backend (`tests/programs/`), as
//! worker profile tables, and the tail of a log, shared by the end-to-end
//! tests and `runfleet-test-fleet`.

use crate::workspace_root;

/// The absolute path of `tests/programs/<name>`.
pub fn program(name: &str) -> String {
    workspace_root()
        .join("tests/programs")
        .join(name)
        .display()
        .to_string()
}

/// A `[profiles.<name>]` table running `tests/programs/<script>` with `extra` keys.
pub fn profile(name: &str, script: &str, extra: &str) -> String {
    format!(
        "[profiles.{name}]\nkind = \"process\"\nprogram = \"/usr/bin/python3\"\nargs = [{:?}]\n{extra}\n",
        program(script)
    )
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
