//! Dead letters: the list, one letter (payload, headers, delivery history,
//! reason), and re-driving it after a confirmation page.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use runfleet_producer::inspect;
use runfleet_schemas::DeadLetter;
use serde::Deserialize;

use super::Shared;
use super::runs::ActionForm;
use super::view::{Nav, fleet_error, pretty, refuse_action, render, segment, when, when_opt};

/// The list's filters.
#[derive(Debug, Default, Deserialize)]
pub(super) struct DeadLetterFilter {
    tenant: Option<String>,
    /// `1`: re-driven ones too.
    all: Option<String>,
}

struct DeadLetterRow {
    href: String,
    dead_letter_id: String,
    tenant: String,
    reason: String,
    message: String,
    subject: String,
    created_at: String,
    redriven_at: String,
}

#[derive(Template)]
#[template(path = "dead_letters.html")]
struct DeadLettersPage {
    nav: Nav,
    tenant: String,
    all: bool,
    letters: Vec<DeadLetterRow>,
    more: bool,
}

fn href(id: &str) -> String {
    format!("/dead-letters/{}", segment(id))
}

/// `GET /dead-letters`.
pub(super) async fn list(
    State(console): State<Shared>,
    Query(filter): Query<DeadLetterFilter>,
) -> Response {
    let tenant = filter
        .tenant
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let all = filter.all.as_deref() == Some("1");
    let list = match inspect::dlq_list(console.producer.client(), tenant, 200, all).await {
        Ok(list) => list,
        Err(err) => return fleet_error(&console, &err),
    };
    render(&DeadLettersPage {
        nav: Nav::new(&console, "dead-letters", "Dead letters"),
        tenant: tenant.unwrap_or_default().to_owned(),
        all,
        more: list.more,
        letters: list
            .dead_letters
            .into_iter()
            .map(|d| DeadLetterRow {
                href: href(&d.dead_letter_id),
                message: d.message.unwrap_or_default(),
                created_at: when(d.created_at),
                redriven_at: when_opt(d.redriven_at),
                dead_letter_id: d.dead_letter_id,
                tenant: d.tenant,
                reason: d.reason,
                subject: d.subject,
            })
            .collect(),
    })
}

struct DeliveryRow {
    attempt: u64,
    worker_id: String,
    at: String,
    outcome: String,
}

/// A dead letter as its page shows it.
struct Letter {
    tenant: String,
    reason: String,
    message: String,
    original_subject: String,
    stream_sequence: u64,
    idempotency_key: String,
    payload: String,
    payload_encoding: String,
    headers: String,
    deliveries: Vec<DeliveryRow>,
    dead_lettered_at: String,
    redriven_at: String,
    redriven: bool,
}

async fn letter(console: &super::Console, id: &str) -> Result<Letter, Response> {
    let shown = inspect::dlq_show(console.producer.client(), id)
        .await
        .map_err(|err| fleet_error(console, &err))?;
    let letter: DeadLetter = serde_json::from_value(shown.dead_letter.clone()).map_err(|err| {
        super::view::error(
            console,
            axum::http::StatusCode::BAD_GATEWAY,
            format!("the stored dead letter does not read as one: {err}"),
        )
    })?;
    let headers = serde_json::to_value(&letter.original_headers).unwrap_or_default();
    Ok(Letter {
        tenant: letter.tenant,
        reason: letter.reason.as_str().to_owned(),
        message: letter.message,
        original_subject: letter.original_subject,
        stream_sequence: letter.stream_sequence,
        idempotency_key: letter.idempotency_key.unwrap_or_default(),
        // JSON shown indented; anything else exactly as stored.
        payload: serde_json::from_str::<serde_json::Value>(&letter.payload)
            .map_or(letter.payload, |json| pretty(&json)),
        payload_encoding: format!("{:?}", letter.payload_encoding).to_lowercase(),
        headers: pretty(&headers),
        deliveries: letter
            .deliveries
            .into_iter()
            .map(|d| DeliveryRow {
                attempt: d.attempt,
                worker_id: d.worker_id,
                at: when(d.at),
                outcome: d.outcome,
            })
            .collect(),
        dead_lettered_at: when(letter.dead_lettered_at),
        redriven: shown.redriven_at.is_some(),
        redriven_at: when_opt(shown.redriven_at),
    })
}

#[derive(Template)]
#[template(path = "dead_letter.html")]
struct DeadLetterPage {
    nav: Nav,
    href: String,
    letter: Letter,
    notice: String,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Redrove {
    redriven: Option<String>,
}

/// `GET /dead-letters/{id}`.
pub(super) async fn show(
    State(console): State<Shared>,
    Path(id): Path<String>,
    Query(redrove): Query<Redrove>,
) -> Response {
    match letter(&console, &id).await {
        Ok(letter) => render(&DeadLetterPage {
            nav: Nav::new(&console, "dead-letters", format!("Dead letter {id}")),
            href: href(&id),
            notice: if redrove.redriven.is_some() {
                "Re-driven: its original message was published again.".to_owned()
            } else {
                String::new()
            },
            letter,
        }),
        Err(response) => response,
    }
}

#[derive(Template)]
#[template(path = "redrive.html")]
struct RedrivePage {
    nav: Nav,
    href: String,
    letter: Letter,
}

/// `GET /dead-letters/{id}/redrive`: what re-driving publishes, and a confirm button.
pub(super) async fn confirm(State(console): State<Shared>, Path(id): Path<String>) -> Response {
    if let Some(refused) = console
        .read_only
        .then(|| refuse_action(&console, ""))
        .flatten()
    {
        return refused;
    }
    match letter(&console, &id).await {
        Ok(letter) => render(&RedrivePage {
            nav: Nav::new(&console, "dead-letters", format!("Re-drive {id}?")),
            href: href(&id),
            letter,
        }),
        Err(response) => response,
    }
}

/// `POST /dead-letters/{id}/redrive`.
pub(super) async fn redrive(
    State(console): State<Shared>,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refused) = refuse_action(&console, form.csrf()) {
        return refused;
    }
    match inspect::dlq_redrive(console.producer.client(), &id).await {
        Ok(_) => Redirect::to(&format!("{}?redriven=1", href(&id))).into_response(),
        Err(err) => fleet_error(&console, &err),
    }
}
