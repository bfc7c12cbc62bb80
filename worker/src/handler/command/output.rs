//! A command's result on its way into the receipt: redacted, then kept
//! whole when small, split into `result_chunk` events when too large for a
//! receipt ([`runfleet_schemas::result_chunks`]), cut to its tail only
//! past [`MAX_OUTPUT_BYTES`].

use runfleet_schemas::result_chunks::{self, MAX_OUTPUT_BYTES, OutputChunks};
use runfleet_schemas::{EventBody, MAX_RECEIPT_OUTPUT_BYTES};
use serde_json::Value;

use crate::redact::Redactor;

/// What a receipt says of a chunked result, and the chunks' events.
pub(super) type Chunked = (OutputChunks, Vec<EventBody>);

/// A result ready for the receipt: the `output` it carries (none when
/// chunked), and the chunks when there are any.
pub(super) type Prepared = (Option<Value>, Option<Chunked>);

/// The length of `value`'s JSON text, without making the text.
pub(super) fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` to a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// The result redacted, then chunked when larger than a receipt carries
/// but not over [`MAX_OUTPUT_BYTES`]; otherwise as it is.
pub(super) fn prepare(redactor: &Redactor, output: Option<Value>) -> Prepared {
    let Some(mut value) = output else {
        return (None, None);
    };
    redactor.redact_value(&mut value);
    let len = json_len(&value);
    if len <= MAX_RECEIPT_OUTPUT_BYTES || len > MAX_OUTPUT_BYTES {
        return (Some(value), None);
    }
    (None, Some(result_chunks::split(&value.to_string())))
}

/// Keeps at most [`MAX_RECEIPT_OUTPUT_BYTES`] of output: larger output (a
/// result over [`MAX_OUTPUT_BYTES`]: smaller ones are chunked) is replaced
/// by the tail of its JSON text.
pub(super) fn bound_output(output: Option<Value>) -> (Option<Value>, bool) {
    let Some(output) = output else {
        return (None, false);
    };
    if json_len(&output) <= MAX_RECEIPT_OUTPUT_BYTES {
        return (Some(output), false);
    }
    let text = output.to_string();
    let tail = crate::text::tail(&text, MAX_RECEIPT_OUTPUT_BYTES);
    (Some(Value::String(tail.to_owned())), true)
}
