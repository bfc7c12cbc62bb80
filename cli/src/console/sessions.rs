//! Sessions: find one by tenant and id, and its page (the fleet's summary
//! and its runs, newest first).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use runfleet_producer::{follow, inspect};
use runfleet_schemas::api::RunListRequest;
use runfleet_schemas::{SessionId, Tenant};
use serde::Deserialize;

use super::Shared;
use super::runs::run_href;
use super::view::{Nav, error, fleet_error, render, segment, when};

#[derive(Debug, Default, Deserialize)]
pub(super) struct Lookup {
    tenant: Option<String>,
    session_id: Option<String>,
}

#[derive(Template)]
#[template(path = "sessions.html")]
struct FindPage {
    nav: Nav,
    tenant: String,
    session_id: String,
}

/// `GET /sessions`: the form, or straight to the session asked for.
pub(super) async fn find(State(console): State<Shared>, Query(lookup): Query<Lookup>) -> Response {
    let tenant = lookup.tenant.unwrap_or_default().trim().to_owned();
    let session_id = lookup.session_id.unwrap_or_default().trim().to_owned();
    if !tenant.is_empty() && !session_id.is_empty() {
        let to = format!("/sessions/{}/{}", segment(&tenant), segment(&session_id));
        return Redirect::to(&to).into_response();
    }
    render(&FindPage {
        nav: Nav::new(&console, "sessions", "Sessions"),
        tenant,
        session_id,
    })
}

struct SessionRun {
    href: String,
    run_id: String,
    status: String,
    commands: i64,
    created_at: String,
}

#[derive(Template)]
#[template(path = "session.html")]
struct SessionPage {
    nav: Nav,
    tenant: String,
    summary: Vec<(String, String)>,
    runs: Vec<SessionRun>,
    more: bool,
}

/// `GET /sessions/{tenant}/{session_id}`.
pub(super) async fn show(
    State(console): State<Shared>,
    Path((tenant, session_id)): Path<(String, String)>,
) -> Response {
    let (Ok(tenant_id), Ok(session)) = (
        Tenant::new(tenant.as_str()),
        SessionId::new(session_id.as_str()),
    ) else {
        return error(
            &console,
            axum::http::StatusCode::NOT_FOUND,
            "no such session",
        );
    };
    let client = console.producer.client();
    let summary = match follow::session_summary(client, &tenant_id, &session).await {
        Ok(summary) => summary,
        Err(err) => return fleet_error(&console, &err),
    };
    let request = RunListRequest {
        tenant: Some(tenant.clone()),
        session_id: Some(session_id.clone()),
        limit: Some(200),
        ..Default::default()
    };
    let runs = match inspect::call(client, &request).await {
        Ok(runs) => runs,
        Err(err) => return fleet_error(&console, &err),
    };
    let summary = summary
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    render(&SessionPage {
        nav: Nav::new(&console, "sessions", format!("Session {session_id}")),
        summary,
        more: runs.next.is_some(),
        runs: runs
            .runs
            .into_iter()
            .map(|r| SessionRun {
                href: run_href(&r.tenant, &r.run_id),
                commands: (r.next_seq - 1).max(0),
                created_at: when(r.created_at),
                run_id: r.run_id,
                status: r.status,
            })
            .collect(),
        tenant,
    })
}
