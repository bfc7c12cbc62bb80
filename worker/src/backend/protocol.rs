//! The process backend's stdout line protocol (`schemas/README.md`,
//! "process backend"): what one line a program prints means.
//!
//! A line is read as bytes and decoded lossily ([`line_text`]): a program
//! may print anything, and nothing it prints ends the conversation. A line
//! that is a JSON object with a known `type` is a protocol message; any
//! other line is plain output.

use runfleet_schemas::EventBody;
use serde_json::Value;

/// One parsed stdout line.
#[derive(Debug)]
pub(crate) enum Line {
    /// An event to record.
    Event(EventBody),
    /// `step_begin`: the step's name.
    StepBegin(String),
    /// `step_end`: name and result to journal.
    StepEnd(String, Value),
    /// `step_failed`: name and message.
    StepFailed(String, String),
    /// `result`: the command's output.
    Result(Value),
    /// `failure`: message, and whether it is retryable.
    Failure(String, bool),
    /// Anything else: plain output.
    Output(String),
}

/// One stdout line (without its `\n`) as text: invalid UTF-8 becomes
/// U+FFFD, and a trailing `\r` goes (a CRLF line ending).
pub(crate) fn line_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

/// Reads one stdout line of the protocol; anything else is plain output.
pub(crate) fn parse_line(text: &str) -> Line {
    let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(text) else {
        return Line::Output(text.to_owned());
    };
    let Some(Value::String(kind)) = object.remove("type") else {
        return Line::Output(text.to_owned());
    };
    let name = || {
        object
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty() && n.len() <= 128)
            .map(str::to_owned)
    };
    match kind.as_str() {
        "step_begin" => name().map_or_else(|| Line::Output(text.to_owned()), Line::StepBegin),
        "step_end" => match name() {
            Some(name) => Line::StepEnd(name, object.get("result").cloned().unwrap_or(Value::Null)),
            None => Line::Output(text.to_owned()),
        },
        "step_failed" => match name() {
            Some(name) => Line::StepFailed(
                name,
                object
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("no message")
                    .to_owned(),
            ),
            None => Line::Output(text.to_owned()),
        },
        "result" => Line::Result(object.remove("output").unwrap_or(Value::Null)),
        "failure" => Line::Failure(
            object
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the program reported a failure")
                .to_owned(),
            object
                .get("retryable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        ),
        "assistant_message" | "command_output" | "diff" | "progress" | "phase" | "metric"
        | "backend_status" => {
            object.insert("kind".into(), Value::String(kind.clone()));
            match serde_json::from_value::<EventBody>(Value::Object(object)) {
                Ok(body) => Line::Event(body),
                Err(err) => Line::Event(EventBody::Error {
                    message: format!("a stdout line is not a valid {kind} message ({err}): {text}"),
                    failure_kind: None,
                }),
            }
        }
        _ => Line::Output(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_that_is_not_utf8_is_output_not_an_end() {
        let text = line_text(b"caf\xe9 au lait\r");
        assert_eq!(text, "caf\u{fffd} au lait");
        assert!(matches!(parse_line(&text), Line::Output(_)));
    }

    #[test]
    fn a_result_line_after_bad_bytes_still_parses() {
        let text = line_text(b"{\"type\":\"result\",\"output\":{\"k\":\"\xff\"}}");
        assert!(matches!(parse_line(&text), Line::Result(_)));
    }
}
