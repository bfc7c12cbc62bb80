//! The worker's HTTP listener: liveness, readiness and metrics.
//!
//! [`serve`] binds an address, spawns the server as a service of the
//! worker's [`TaskTree`] and returns the bound address; the server stops
//! accepting as soon as the tree stops and finishes the requests under way.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | `200 {"status":"ok"}` while the process runs |
//! | `GET /readyz` | `{"ready": bool, "checks": [...]}`, `200` if every check passed, else `503` |
//! | `GET /metrics` | `200`, the OpenMetrics text of [`Metrics::encode`] |
//!
//! Any other path is `404`; another method on a known path is `405`.
//!
//! # Readiness
//!
//! The worker implements [`Readiness`] (NATS connected, PostgreSQL
//! reachable, migrations at the expected version, every background task
//! running, not draining after a shutdown request). Each check reports a
//! [`DependencyStatus`] whose `detail` is served to whoever can reach the
//! port, so it must never contain a credential. That is the implementer's
//! duty; as a second line of defence, the handler replaces the userinfo of
//! every URL in `detail` (`postgres://user:pass@host` becomes
//! `postgres://[REDACTED]@host`). Checks that take longer than
//! [`READINESS_TIMEOUT`] make the worker not ready.
//!
//! # Example
//!
//! ```no_run
//! # async fn example(readiness: std::sync::Arc<dyn runfleet_worker::http::Readiness>) {
//! use runfleet_worker::{http, metrics::Metrics, tasks::TaskTree};
//!
//! let tasks = TaskTree::new();
//! let addr = "127.0.0.1:9090".parse().expect("valid address");
//! let bound = http::serve(addr, Metrics::new(), readiness, &tasks).await;
//! // ... later, on shutdown:
//! tasks.stop(std::time::Duration::from_secs(5)).await;
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::tasks::TaskTree;

/// The content type of `GET /metrics`: what `prometheus-client`'s text
/// encoder produces.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long `GET /readyz` waits for [`Readiness::check`] before answering
/// `503`.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(5);

/// What replaces the userinfo of a URL in a [`DependencyStatus::detail`].
const REDACTED: &str = "[REDACTED]";

/// The state of one dependency, as reported by `GET /readyz`.
#[derive(Debug, Clone, Serialize)]
pub struct DependencyStatus {
    /// A short stable name (`"nats"`, `"postgres"`, `"migrations"`).
    pub name: String,
    /// Whether the dependency is usable.
    pub ok: bool,
    /// A human-readable explanation. Served to anyone who can reach the
    /// port: it must never contain a credential.
    pub detail: String,
}

/// Checks the dependencies the worker needs before it can take work.
pub trait Readiness: Send + Sync + 'static {
    /// Checks every dependency, one [`DependencyStatus`] each.
    ///
    /// Implementations must keep credentials out of every `detail` (for
    /// example by formatting connection settings without their password);
    /// the handler's URL scrubbing is only a second line of defence. A check
    /// should finish well within [`READINESS_TIMEOUT`].
    fn check(&self) -> BoxFuture<'_, Vec<DependencyStatus>>;
}

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address could not be bound (in use, not local, not permitted).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// What the handlers share.
struct AppState {
    /// Rendered by `GET /metrics`.
    metrics: Metrics,
    /// Run by `GET /readyz`.
    readiness: Arc<dyn Readiness>,
}

/// Binds `addr`, spawns the HTTP server and returns the address actually
/// bound (so port `0` picks a free port).
///
/// The server is a service of `tasks`: it stops accepting connections as
/// soon as they stop, then finishes the requests under way.
///
/// # Errors
///
/// [`HttpError::Bind`] if `addr` cannot be bound.
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    readiness: Arc<dyn Readiness>,
    tasks: &TaskTree,
) -> Result<SocketAddr, HttpError> {
    let bind_error = |source| HttpError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;

    let app = router(AppState { metrics, readiness });
    tasks.spawn_service("http", |stop| async move {
        let server = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await });
        // `axum::serve` only fails if accepting fails fatally; it logs and
        // retries transient accept errors itself.
        match server.await {
            Ok(()) => tracing::info!(addr = %bound, "http listener stopped"),
            Err(error) => tracing::error!(addr = %bound, %error, "http listener failed"),
        }
    });
    tracing::info!(addr = %bound, "http listener ready");
    Ok(bound)
}

/// The routes, over shared state.
fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(state))
}

/// `GET /healthz`: the process is alive.
async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: every dependency, `503` unless all are usable.
async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let checks = match tokio::time::timeout(READINESS_TIMEOUT, state.readiness.check()).await {
        Ok(checks) => checks,
        Err(_elapsed) => vec![DependencyStatus {
            name: "readiness".to_owned(),
            ok: false,
            detail: format!("checks did not finish within {READINESS_TIMEOUT:?}"),
        }],
    };
    let checks: Vec<DependencyStatus> = checks
        .into_iter()
        .map(|status| DependencyStatus {
            detail: scrub_userinfo(&status.detail),
            ..status
        })
        .collect();
    let ready = checks.iter().all(|check| check.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": ready, "checks": checks })))
}

/// `GET /metrics`: the OpenMetrics text.
async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        state.metrics.encode(),
    )
}

/// Replaces the userinfo of every `scheme://userinfo@host` in `text` with
/// [`REDACTED`].
///
/// The authority of a URL ends at the first `/`, `?`, `#`, whitespace,
/// quote or angle bracket; if it holds an `@`, everything up to the last
/// one is userinfo. Anything looking like a URL is scrubbed, so prose such
/// as `a://b@c` is rewritten too: over-redaction is harmless here.
fn scrub_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find("://") {
        let authority_start = found + "://".len();
        out.push_str(&rest[..authority_start]);
        rest = &rest[authority_start..];
        let authority_end = rest
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            out.push_str(REDACTED);
            rest = &rest[at..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// One usable dependency and one failing with a credential in its detail.
    struct FakeReadiness;

    impl Readiness for FakeReadiness {
        fn check(&self) -> BoxFuture<'_, Vec<DependencyStatus>> {
            Box::pin(async {
                vec![
                    DependencyStatus {
                        name: "nats".to_owned(),
                        ok: true,
                        detail: "connected".to_owned(),
                    },
                    DependencyStatus {
                        name: "postgres".to_owned(),
                        ok: false,
                        detail: "cannot reach postgres://u:secret@h/db: refused".to_owned(),
                    },
                ]
            })
        }
    }

    /// Every dependency usable.
    struct AllReady;

    impl Readiness for AllReady {
        fn check(&self) -> BoxFuture<'_, Vec<DependencyStatus>> {
            Box::pin(async {
                vec![DependencyStatus {
                    name: "nats".to_owned(),
                    ok: true,
                    detail: "connected".to_owned(),
                }]
            })
        }
    }

    /// Sends `GET path` and returns the status code, the head and the body.
    async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("status code");
        (status, head.to_owned(), body.to_owned())
    }

    async fn start(readiness: Arc<dyn Readiness>) -> (SocketAddr, Metrics, TaskTree) {
        let metrics = Metrics::new();
        let stop = TaskTree::new();
        let addr = serve(
            "127.0.0.1:0".parse().expect("address"),
            metrics.clone(),
            readiness,
            &stop,
        )
        .await
        .expect("serve");
        (addr, metrics, stop)
    }

    #[tokio::test]
    async fn routes_answer_and_stop_closes_the_port() {
        let (addr, metrics, stop) = start(Arc::new(FakeReadiness)).await;
        assert_ne!(addr.port(), 0);

        let (status, _, body) = get(addr, "/healthz").await;
        assert_eq!(status, 200);
        assert_eq!(body, r#"{"status":"ok"}"#);

        let (status, _, body) = get(addr, "/readyz").await;
        assert_eq!(status, 503);
        assert!(!body.contains("secret"), "{body}");
        assert!(body.contains("postgres://[REDACTED]@h/db"), "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(json["ready"], false);
        assert_eq!(json["checks"][0]["name"], "nats");
        assert_eq!(json["checks"][0]["ok"], true);
        assert_eq!(json["checks"][1]["ok"], false);

        metrics.command_started("echo", "acme");
        let (status, head, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-type: {METRICS_CONTENT_TYPE}")),
            "{head}"
        );
        assert!(
            body.contains(r#"runfleet_commands_started_total{profile="echo",tenant="acme"} 1"#),
            "{body}"
        );

        let (status, _, _) = get(addr, "/nope").await;
        assert_eq!(status, 404);

        stop.stop(Duration::from_secs(5)).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            if TcpStream::connect(addr).await.is_err() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still accepting after stop"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn readyz_is_200_when_all_ok() {
        let (addr, _metrics, stop) = start(Arc::new(AllReady)).await;
        let (status, _, body) = get(addr, "/readyz").await;
        assert_eq!(status, 200);
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(json["ready"], true);
        stop.stop(Duration::from_secs(5)).await;
    }

    #[tokio::test]
    async fn bind_error_names_the_address() {
        let (addr, _metrics, stop) = start(Arc::new(AllReady)).await;
        let error = serve(addr, Metrics::new(), Arc::new(AllReady), &TaskTree::new())
            .await
            .expect_err("port in use");
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot listen on {addr}: ")),
            "{error}"
        );
        stop.stop(Duration::from_secs(5)).await;
    }

    #[test]
    fn scrubs_userinfo_of_every_url() {
        assert_eq!(
            scrub_userinfo("postgres://u:secret@h/db and nats://tok@n:4222"),
            "postgres://[REDACTED]@h/db and nats://[REDACTED]@n:4222"
        );
        assert_eq!(
            scrub_userinfo("postgres://u:p@ss@h:5432?x=1"),
            "postgres://[REDACTED]@h:5432?x=1"
        );
        assert_eq!(
            scrub_userinfo("https://host/path@x no creds"),
            "https://host/path@x no creds"
        );
        assert_eq!(scrub_userinfo("plain text"), "plain text");
        assert_eq!(scrub_userinfo("trailing ://"), "trailing ://");
        assert_eq!(scrub_userinfo("ünï://ü:ß@h"), "ünï://[REDACTED]@h");
    }
}
