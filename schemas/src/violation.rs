//! One thing wrong with a message: the field (a JSON pointer) and why; what
//! the decoder, the schema validator and the text checks all report.

use std::fmt;

/// One thing wrong with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The offending field as a JSON pointer (`/payload`, `/body/kind`), or
    /// empty for the message as a whole.
    pub pointer: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.pointer, self.reason)
        }
    }
}
