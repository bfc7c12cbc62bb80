//! Runs: the list (filtered, paged by keyset through `runs.list`), a run's
//! page (spec, commands with their receipts, event log), and cancelling a
//! run or one of its commands (`control.cancel`, as `runfleet cancel`).

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use runfleet_producer::{inspect, new_cancel};
use runfleet_schemas::api::{CommandSummary, EventsPage, RUN_STATUSES, RunListRequest, RunSummary};
use runfleet_schemas::{CommandId, RunId, Tenant};
use serde::Deserialize;

use super::live::EventRow;
use super::view::{
    Nav, error, fleet_error, pretty, query, refuse_action, render, segment, took, when, when_opt,
};
use super::{Console, Shared};

/// Events shown when a run's page loads (the latest; older ones are a link away).
const EVENTS_SHOWN: u32 = 500;

/// The list's filters, as the form sends them.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RunFilter {
    tenant: Option<String>,
    project: Option<String>,
    status: Option<String>,
    profile: Option<String>,
    q: Option<String>,
    after: Option<String>,
}

fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A run's row.
struct RunRow {
    href: String,
    tenant: String,
    run_id: String,
    project: String,
    profile: String,
    status: String,
    failure_kind: String,
    commands: i64,
    created_at: String,
    updated_at: String,
}

impl From<RunSummary> for RunRow {
    fn from(run: RunSummary) -> RunRow {
        RunRow {
            href: run_href(&run.tenant, &run.run_id),
            failure_kind: run.failure_kind.unwrap_or_default(),
            commands: (run.next_seq - 1).max(0),
            created_at: when(run.created_at),
            updated_at: when(run.updated_at),
            tenant: run.tenant,
            run_id: run.run_id,
            project: run.project,
            profile: run.profile,
            status: run.status,
        }
    }
}

pub(super) fn run_href(tenant: &str, run_id: &str) -> String {
    format!("/runs/{}/{}", segment(tenant), segment(run_id))
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    nav: Nav,
    tenant: String,
    project: String,
    profile: String,
    q: String,
    /// Each status, and whether it is the one filtered on.
    statuses: Vec<(&'static str, bool)>,
    runs: Vec<RunRow>,
    next: Option<String>,
    first_page: Option<String>,
}

/// `GET /runs`.
pub(super) async fn list(
    State(console): State<Shared>,
    Query(filter): Query<RunFilter>,
) -> Response {
    let request = RunListRequest {
        tenant: given(&filter.tenant),
        project: given(&filter.project),
        status: given(&filter.status),
        profile: given(&filter.profile),
        session_id: None,
        run_id_prefix: given(&filter.q),
        after: given(&filter.after),
        limit: Some(50),
    };
    let page = match inspect::call(console.producer.client(), &request).await {
        Ok(page) => page,
        Err(err) => return fleet_error(&console, &err),
    };
    let filters = |after: Option<&str>| {
        format!(
            "/runs?{}",
            query(&[
                ("tenant", request.tenant.as_deref()),
                ("project", request.project.as_deref()),
                ("status", request.status.as_deref()),
                ("profile", request.profile.as_deref()),
                ("q", request.run_id_prefix.as_deref()),
                ("after", after),
            ])
        )
    };
    render(&RunsPage {
        nav: Nav::new(&console, "runs", "Runs"),
        next: page.next.as_deref().map(|next| filters(Some(next))),
        first_page: request.after.is_some().then(|| filters(None)),
        tenant: request.tenant.clone().unwrap_or_default(),
        project: request.project.clone().unwrap_or_default(),
        profile: request.profile.clone().unwrap_or_default(),
        q: request.run_id_prefix.clone().unwrap_or_default(),
        statuses: RUN_STATUSES
            .iter()
            .map(|s| (*s, request.status.as_deref() == Some(*s)))
            .collect(),
        runs: page.runs.into_iter().map(RunRow::from).collect(),
    })
}

/// A command's row, with its receipt's outcome.
struct CommandRow {
    seq: i64,
    command_id: String,
    kind: String,
    status: String,
    failure_kind: String,
    failure_message: String,
    attempt: String,
    worker: String,
    started_at: String,
    finished_at: String,
    took: String,
    cancel_href: Option<String>,
}

fn command_row(tenant: &str, run_id: &str, c: CommandSummary) -> CommandRow {
    let field = |name: &str| {
        c.failure
            .as_ref()
            .and_then(|f| f.get(name))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let open = matches!(c.status.as_str(), "acknowledged" | "running");
    CommandRow {
        failure_kind: field("kind"),
        failure_message: field("message"),
        attempt: c.attempt.map_or_else(String::new, |a| a.to_string()),
        worker: c.worker_id.unwrap_or_default(),
        took: took(c.started_at, c.finished_at),
        started_at: when_opt(c.started_at),
        finished_at: when_opt(c.finished_at),
        cancel_href: open.then(|| {
            format!(
                "{}/commands/{}/cancel",
                run_href(tenant, run_id),
                segment(&c.command_id)
            )
        }),
        seq: c.seq,
        command_id: c.command_id,
        kind: c.kind,
        status: c.status,
    }
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    nav: Nav,
    href: String,
    tenant: String,
    run_id: String,
    status: String,
    project: String,
    profile: String,
    session_href: Option<String>,
    session_id: String,
    failure_kind: String,
    status_reason: String,
    next_seq: i64,
    created_at: String,
    updated_at: String,
    lease: String,
    spent: String,
    budgets: String,
    spec: String,
    commands_total: i64,
    commands: Vec<CommandRow>,
    events: Vec<EventRow>,
    events_hidden: u64,
    last_seq: u64,
    cancellable: bool,
    notice: String,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Notice {
    cancelled: Option<String>,
}

/// `GET /runs/{tenant}/{run_id}`.
pub(super) async fn detail(
    State(console): State<Shared>,
    Path((tenant, run_id)): Path<(String, String)>,
    Query(notice): Query<Notice>,
) -> Response {
    let client = console.producer.client();
    let run = match inspect::run_status(client, &tenant, &run_id).await {
        Ok(run) => run,
        Err(err) => return fleet_error(&console, &err),
    };
    let (events, events_hidden, last_seq) = match latest_events(&console, &tenant, &run_id).await {
        Ok(shown) => shown,
        Err(response) => return response,
    };
    let href = run_href(&tenant, &run_id);
    let lease = match (&run.lease_holder, run.lease_expires_at) {
        (Some(holder), Some(until)) => format!("{holder} until {}", when(until)),
        _ => "—".to_owned(),
    };
    let page = RunPage {
        nav: Nav::new(&console, "runs", format!("Run {run_id}")),
        session_href: run
            .session_id
            .as_deref()
            .map(|s| format!("/sessions/{}/{}", segment(&tenant), segment(s))),
        session_id: run.session_id.clone().unwrap_or_default(),
        cancellable: matches!(run.status.as_str(), "pending" | "claimed"),
        commands: run
            .commands
            .into_iter()
            .map(|c| command_row(&tenant, &run_id, c))
            .collect(),
        status: run.status,
        project: run.project,
        profile: run.profile,
        failure_kind: run.failure_kind.unwrap_or_default(),
        status_reason: run.status_reason.unwrap_or_default(),
        next_seq: run.next_seq,
        created_at: when(run.created_at),
        updated_at: when(run.updated_at),
        lease,
        spent: pretty(&run.spent),
        budgets: pretty(&run.budgets),
        spec: pretty(&run.spec),
        commands_total: run.commands_total,
        events,
        events_hidden,
        last_seq,
        notice: match notice.cancelled.as_deref() {
            Some("run") => "Cancel requested for the run.".to_owned(),
            Some(_) => "Cancel requested for the command.".to_owned(),
            None => String::new(),
        },
        href,
        tenant,
        run_id,
    };
    render(&page)
}

/// The run's latest [`EVENTS_SHOWN`] events, how many earlier ones are not
/// shown, and the last seq.
async fn latest_events(
    console: &Console,
    tenant: &str,
    run_id: &str,
) -> Result<(Vec<EventRow>, u64, u64), Response> {
    let client = console.producer.client();
    let ask = |after: u64| inspect::events_after(client, tenant, run_id, after, EVENTS_SHOWN);
    let mut page: EventsPage = ask(0).await.map_err(|err| fleet_error(console, &err))?;
    let last_seq = u64::try_from(page.last_seq).unwrap_or(0);
    let mut hidden = 0;
    if page.more {
        hidden = last_seq.saturating_sub(u64::from(EVENTS_SHOWN));
        page = ask(hidden)
            .await
            .map_err(|err| fleet_error(console, &err))?;
    }
    let rows = page.events.iter().map(EventRow::from_value).collect();
    Ok((rows, hidden, last_seq))
}

/// An action's form: its CSRF token.
#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    csrf: String,
}

impl ActionForm {
    pub(super) fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /runs/{tenant}/{run_id}/cancel`.
pub(super) async fn cancel_run(
    State(console): State<Shared>,
    Path((tenant, run_id)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    cancel(&console, &tenant, &run_id, None, &form.csrf).await
}

/// `POST /runs/{tenant}/{run_id}/commands/{command_id}/cancel`.
pub(super) async fn cancel_command(
    State(console): State<Shared>,
    Path((tenant, run_id, command_id)): Path<(String, String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    cancel(&console, &tenant, &run_id, Some(&command_id), &form.csrf).await
}

async fn cancel(
    console: &Console,
    tenant: &str,
    run_id: &str,
    command_id: Option<&str>,
    csrf: &str,
) -> Response {
    if let Some(refused) = refuse_action(console, csrf) {
        return refused;
    }
    let ids = (|| {
        Ok::<_, runfleet_schemas::IdError>((
            Tenant::new(tenant)?,
            RunId::new(run_id)?,
            command_id.map(CommandId::new).transpose()?,
        ))
    })();
    let (tenant_id, run, command) = match ids {
        Ok(ids) => ids,
        Err(err) => return error(console, StatusCode::BAD_REQUEST, err.to_string()),
    };
    let reason = Some("cancelled from the web console".to_owned());
    let message = new_cancel(&tenant_id, &run, command, reason);
    if let Err(err) = console.producer.publish(&message).await {
        return error(
            console,
            StatusCode::BAD_GATEWAY,
            format!("the cancel was not published: {err}"),
        );
    }
    let notice = query(&[("cancelled", Some(command_id.unwrap_or("run")))]);
    Redirect::to(&format!("{}?{notice}", run_href(tenant, run_id))).into_response()
}
