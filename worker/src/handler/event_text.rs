//! How an event's text is kept and told: redacted then bounded before it
//! is journaled ([`scrubbed`]), and summarized in a line for watchdog
//! messages ([`summary`]).

use runfleet_schemas::EventBody;

use crate::redact::Redactor;

/// The longest text field of one event (well under NATS's 1 MiB payload limit).
pub(crate) const MAX_EVENT_TEXT_BYTES: usize = 64 * 1024;

/// A short description of an event for breadcrumbs.
pub(crate) fn summary(body: &EventBody) -> String {
    let clip = |s: &str| {
        let head = crate::text::head(s, 120);
        if head.len() < s.len() {
            format!("{head:?}…")
        } else {
            format!("{s:?}")
        }
    };
    match body {
        EventBody::BackendStatus { status, .. } => format!("backend_status {status}"),
        EventBody::AssistantMessage { text } => format!("assistant_message {}", clip(text)),
        EventBody::CommandOutput { stream, text } => {
            format!("command_output ({stream:?}) {}", clip(text))
        }
        EventBody::Diff { path, .. } => format!("diff {}", path.as_deref().unwrap_or("")),
        EventBody::Progress { done, total } => match total {
            Some(total) => format!("progress {done}/{total}"),
            None => format!("progress {done}"),
        },
        EventBody::Phase { name } => format!("phase {name}"),
        EventBody::Step { name, status } => format!("step {name} {status:?}"),
        EventBody::Metric { name, value } => format!("metric {name}={value}"),
        EventBody::Error { message, .. } => format!("error {}", clip(message)),
        EventBody::ResultChunk { index, count, .. } => {
            format!("result_chunk {}/{count}", index + 1)
        }
        EventBody::TerminalStatus { status, .. } => format!("terminal_status {status:?}"),
    }
}

/// A text field cut to [`MAX_EVENT_TEXT_BYTES`] (its head, with a note).
fn bound(text: &mut String) {
    if text.len() <= MAX_EVENT_TEXT_BYTES {
        return;
    }
    let end = crate::text::head(text, MAX_EVENT_TEXT_BYTES).len();
    let cut = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("… [{cut} bytes cut]"));
}

/// An event as it is kept: redacted first (so no cut splits a secret), then bounded.
pub(crate) fn scrubbed(redactor: &Redactor, body: EventBody) -> EventBody {
    let mut body = match serde_json::to_value(&body) {
        Ok(mut value) => {
            redactor.redact_value(&mut value);
            serde_json::from_value(value).unwrap_or(EventBody::Error {
                message: "an event could not be redacted and was dropped".into(),
                failure_kind: None,
            })
        }
        Err(_) => body,
    };
    match &mut body {
        EventBody::BackendStatus { status, detail } => {
            bound(status);
            if let Some(detail) = detail {
                bound(detail);
            }
        }
        EventBody::AssistantMessage { text } | EventBody::CommandOutput { text, .. } => {
            bound(text);
        }
        EventBody::Diff { path, patch } => {
            bound(patch);
            if let Some(path) = path {
                bound(path);
            }
        }
        EventBody::Phase { name }
        | EventBody::Step { name, .. }
        | EventBody::Metric { name, .. } => {
            bound(name);
        }
        EventBody::Error { message, .. } => bound(message),
        // A result chunk is made by the worker from the redacted result:
        // its base64 is not text to redact or cut.
        EventBody::Progress { .. }
        | EventBody::ResultChunk { .. }
        | EventBody::TerminalStatus { .. } => {}
    }
    body
}
