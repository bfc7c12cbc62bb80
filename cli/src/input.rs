//! Reading a message file (or stdin) and a `--payload`.

use std::io::Read;
use std::path::Path;

use anyhow::Context;

/// A `--payload`: JSON text, `@FILE`, or `-` for stdin; it must be an object.
pub(crate) fn payload(arg: &str) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let text = if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the payload from stdin")?;
        text
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::read_to_string(path).with_context(|| format!("reading the payload from {path}"))?
    } else {
        arg.to_owned()
    };
    match serde_json::from_str(&text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(other) => anyhow::bail!("--payload must be a JSON object, not {other}"),
        Err(err) => anyhow::bail!("--payload is not JSON: {err}"),
    }
}

/// A message file's bytes; `-` reads stdin.
pub(crate) fn message(file: &Path) -> anyhow::Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading the message from stdin")?;
        Ok(bytes)
    } else {
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))
    }
}
