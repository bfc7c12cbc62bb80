//! A run's event log, live: each event as a table row rendered here (so
//! escaped here), sent as a server-sent event whose id is its seq. The
//! page's script asks again after the last seq it shows when the
//! connection drops; a browser's own reconnect sends `Last-Event-ID`,
//! which counts the same.

use std::convert::Infallible;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use runfleet_producer::follow;
use runfleet_schemas::{RunId, Tenant};
use serde::Deserialize;
use serde_json::Value;

use super::Shared;
use super::view::{error, when};

/// One event as the page shows it.
pub(super) struct EventRow {
    pub(super) seq: u64,
    pub(super) at: String,
    pub(super) attempt: String,
    pub(super) command_id: String,
    pub(super) kind: String,
    pub(super) text: String,
}

impl EventRow {
    /// The row of an event message (as stored or published).
    pub(super) fn from_value(event: &Value) -> EventRow {
        let body = &event["body"];
        let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let kind = s(&body["kind"]);
        let text = match kind.as_str() {
            "assistant_message" => s(&body["text"]),
            "command_output" => format!("[{}] {}", s(&body["stream"]), s(&body["text"])),
            "progress" => match body["total"].as_u64() {
                Some(total) => format!("{} / {total}", body["done"]),
                None => body["done"].to_string(),
            },
            "phase" => s(&body["name"]),
            "step" => format!("{} {}", s(&body["name"]), s(&body["status"])),
            "metric" => format!("{} = {}", s(&body["name"]), body["value"]),
            "error" | "terminal_status" | "backend_status" => {
                let main = [&body["message"], &body["status"]]
                    .into_iter()
                    .find_map(|v| v.as_str())
                    .unwrap_or_default();
                let extra = [&body["failure_kind"], &body["detail"]]
                    .into_iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                if extra.is_empty() {
                    main.to_owned()
                } else {
                    format!("{main} ({extra})")
                }
            }
            "diff" => format!("{}\n{}", s(&body["path"]), s(&body["patch"])),
            "result_chunk" => format!(
                "part {} of {} of the result ({} bytes of base64; {})",
                body["index"].as_u64().unwrap_or_default() + 1,
                body["count"],
                body["data"].as_str().map_or(0, str::len),
                s(&body["digest"])
            ),
            _ => body.to_string(),
        };
        EventRow {
            seq: event["seq"].as_u64().unwrap_or_default(),
            at: event["at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map_or_else(String::new, |t| when(t.into())),
            attempt: event["attempt"]
                .as_u64()
                .map_or_else(String::new, |a| a.to_string()),
            command_id: s(&event["command_id"]),
            kind,
            text,
        }
    }
}

#[derive(Template)]
#[template(path = "event_row.html")]
struct EventRowHtml<'a> {
    row: &'a EventRow,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct After {
    after: Option<u64>,
}

/// `GET /runs/{tenant}/{run_id}/events/live?after=N`: the events after seq
/// `N` (or `Last-Event-ID`), stored ones first, then as they are published.
pub(super) async fn events(
    State(console): State<Shared>,
    Path((tenant, run_id)): Path<(String, String)>,
    Query(after): Query<After>,
    headers: HeaderMap,
) -> Response {
    let (Ok(tenant), Ok(run)) = (Tenant::new(tenant.as_str()), RunId::new(run_id.as_str())) else {
        return error(&console, axum::http::StatusCode::NOT_FOUND, "no such run");
    };
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let after = after.after.max(resumed).unwrap_or(0);
    let js = console.producer.jetstream();
    match follow::events(js, &tenant, &run, after.saturating_add(1)).await {
        Ok(events) => Sse::new(rows(events))
            .keep_alive(KeepAlive::default())
            .into_response(),
        Err(err) => error(
            &console,
            axum::http::StatusCode::BAD_GATEWAY,
            err.to_string(),
        ),
    }
}

fn rows(
    events: impl Stream<Item = Result<runfleet_schemas::Event, runfleet_producer::ProducerError>>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    events.filter_map(|event| async move {
        let event = event.ok()?;
        let value = serde_json::to_value(&event).ok()?;
        let row = EventRow::from_value(&value);
        let html = EventRowHtml { row: &row }.render().ok()?;
        Some(Ok(SseEvent::default()
            .event("event")
            .id(row.seq.to_string())
            .data(html)))
    })
}
