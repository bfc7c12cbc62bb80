//! Entry points for the fuzzer (`scripts/fuzz`, the `runfleet-fuzz`
//! binary) into parsers of the worker that are not public otherwise. Each
//! takes bytes from outside the fleet and must never panic, whatever they
//! are. (The message decoder, subjects and headers are public in
//! `runfleet-schemas`, the configuration loader in [`crate::config`].)

use std::path::Path;

use crate::backend::protocol::{self, Line};
use crate::profiles::Profiles;
use crate::redact::Redactor;

/// One stdout line of a `process` program, as the backend reads it; the
/// name of what it was taken for (`"result"`, `"output"`, …).
pub fn process_line(bytes: &[u8]) -> &'static str {
    match protocol::parse_line(&protocol::line_text(bytes)) {
        Line::Event(_) => "event",
        Line::StepBegin(_) => "step_begin",
        Line::StepEnd(..) => "step_end",
        Line::StepFailed(..) => "step_failed",
        Line::Result(_) => "result",
        Line::Failure(..) => "failure",
        Line::Output(_) => "output",
    }
}

/// A configuration file's profiles (`[profiles.<name>]`): whether `text`
/// is accepted.
pub fn profiles_file(text: &str) -> bool {
    Profiles::parse(Path::new("fuzzed.toml"), text).is_ok()
}

/// The redactor's property: whatever a program prints, what is stored
/// holds neither a known secret nor U+0000.
#[derive(Debug)]
pub struct Redaction {
    redactor: Redactor,
    secrets: Vec<String>,
}

impl Redaction {
    /// A redactor that knows `secrets`.
    pub fn new(secrets: &[&str]) -> Redaction {
        let secrets: Vec<String> = secrets.iter().map(|s| (*s).to_owned()).collect();
        Redaction {
            redactor: Redactor::new(secrets.clone()),
            secrets,
        }
    }

    /// Redacts `text` (as a string and, when it is JSON, as a value's keys
    /// and values); true when something was redacted.
    ///
    /// # Panics
    /// When the result still holds a secret or a NUL: the property the
    /// fuzzer checks.
    pub fn check(&self, text: &str) -> bool {
        let out = self.redactor.redact(text);
        self.assert_clean(&out);
        if let Ok(mut value) = serde_json::from_str::<serde_json::Value>(text) {
            self.redactor.redact_value(&mut value);
            self.assert_clean(&value.to_string());
        }
        out != text
    }

    fn assert_clean(&self, out: &str) {
        assert!(!out.contains('\0'), "redacted text holds U+0000: {out:?}");
        for secret in &self.secrets {
            assert!(
                !out.contains(secret.as_str()),
                "redacted text still holds the secret {secret:?}: {out:?}"
            );
        }
    }
}
