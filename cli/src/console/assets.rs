//! The console's static files, compiled into the binary (no CDN, no Node).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// htmx, vendored unmodified (`cli/assets/README.md`).
const HTMX: &str = include_str!("../../assets/htmx-2.0.11.min.js");
/// The run page's live event log.
const CONSOLE_JS: &str = include_str!("../../assets/console.js");
/// The layout.
const CONSOLE_CSS: &str = include_str!("../../assets/console.css");

/// `GET /assets/{name}`.
pub(super) async fn serve(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "htmx.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        "console.js" => (CONSOLE_JS, "text/javascript; charset=utf-8"),
        "console.css" => (CONSOLE_CSS, "text/css; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
