//! `runfleet console`: the fleet in a browser.
//!
//! A small web server in the CLI that talks to the fleet the way the other
//! subcommands do, through the operator API (the `runfleet` NATS micro
//! service) and the streams; it never opens PostgreSQL. Pages are rendered
//! on the server (askama, every value HTML-escaped) and read without
//! JavaScript; two small scripts make them live: htmx refreshes the
//! overview, and `console.js` appends a run's events as they are published
//! (server-sent events from the events stream, resumed after the last seq
//! shown).
//!
//! Security ([`guard`]): loopback by default; any other address needs
//! `RUNFLEET_CONSOLE_TOKEN` (checked in constant time, from a login cookie
//! or a bearer header) or the console refuses to start. Actions (cancel,
//! re-drive) are POSTs carrying a CSRF token; `--read-only` hides and
//! refuses them.

mod assets;
mod dead_letters;
mod guard;
mod live;
mod overview;
mod rates;
mod runs;
mod sessions;
mod view;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use runfleet_producer::Producer;

use crate::cli::{Cli, ConsoleArgs};
use crate::connect;

pub(crate) use guard::TOKEN_ENV;

/// What every handler shares.
pub(crate) struct Console {
    /// The fleet's NATS connection.
    producer: Producer,
    /// Actions hidden and refused.
    read_only: bool,
    /// Login and CSRF.
    guard: guard::Guard,
    /// Throughput and latency of the last minutes.
    rates: rates::Rates,
}

type Shared = Arc<Console>;

/// Serves the console until Ctrl-C (or SIGTERM).
pub(crate) async fn run(cli: &Cli, args: &ConsoleArgs) -> anyhow::Result<ExitCode> {
    let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
    guard::check_exposure(args.listen, token.as_deref())?;
    let producer = connect(cli).await?;
    let rates = rates::Rates::start(producer.jetstream().clone());
    let console = Arc::new(Console {
        producer,
        read_only: args.read_only,
        guard: guard::Guard::new(token),
        rates,
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", args.listen))?;
    let address: SocketAddr = listener.local_addr()?;
    println!("runfleet console: http://{address}/");
    eprintln!(
        "serving {} (Ctrl-C stops)",
        if args.read_only {
            "read-only"
        } else {
            "with actions (cancel, re-drive)"
        }
    );
    axum::serve(listener, router(console))
        .with_graceful_shutdown(stopped())
        .await?;
    Ok(ExitCode::SUCCESS)
}

/// Every page, fragment and action.
fn router(console: Shared) -> Router {
    Router::new()
        .route("/", get(overview::page))
        .route("/fragments/overview", get(overview::fragment))
        .route("/runs", get(runs::list))
        .route("/runs/{tenant}/{run_id}", get(runs::detail))
        .route("/runs/{tenant}/{run_id}/events/live", get(live::events))
        .route("/runs/{tenant}/{run_id}/cancel", post(runs::cancel_run))
        .route(
            "/runs/{tenant}/{run_id}/commands/{command_id}/cancel",
            post(runs::cancel_command),
        )
        .route("/dead-letters", get(dead_letters::list))
        .route("/dead-letters/{id}", get(dead_letters::show))
        .route(
            "/dead-letters/{id}/redrive",
            get(dead_letters::confirm).post(dead_letters::redrive),
        )
        .route("/sessions", get(sessions::find))
        .route("/sessions/{tenant}/{session_id}", get(sessions::show))
        .route("/login", get(guard::login_form).post(guard::login))
        .route("/logout", post(guard::logout))
        .route("/assets/{name}", get(assets::serve))
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            guard::require_login,
        ))
        .with_state(console)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stopped() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
