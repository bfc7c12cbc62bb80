//! What every page shares: the navigation, rendering, error pages, and how
//! times, durations and JSON are shown. Templates get display strings, so
//! every value passes through askama's HTML escaping as text.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use runfleet_producer::ProducerError;
use serde_json::Value;

use super::Console;

/// The layout's context: title, current section, actions shown or not.
pub(super) struct Nav {
    pub(super) title: String,
    pub(super) section: &'static str,
    pub(super) read_only: bool,
    pub(super) csrf: String,
    pub(super) login: bool,
}

impl Nav {
    pub(super) fn new(console: &Console, section: &'static str, title: impl Into<String>) -> Nav {
        Nav {
            title: title.into(),
            section,
            read_only: console.read_only,
            csrf: console.guard.csrf().to_owned(),
            login: console.guard.has_token(),
        }
    }
}

/// A rendered template, or a plain 500 naming the template error.
pub(super) fn render<T: Template>(page: &T) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rendering the page failed: {err}"),
        )
            .into_response(),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    nav: Nav,
    message: String,
}

/// An error page with `status`.
pub(super) fn error(console: &Console, status: StatusCode, message: impl Into<String>) -> Response {
    let page = ErrorPage {
        nav: Nav::new(console, "", format!("{}", status.as_u16())),
        message: message.into(),
    };
    let mut response = render(&page);
    *response.status_mut() = status;
    response
}

/// The fleet could not answer: 400 or 404 when the operator API said so
/// (a filter or cursor refused; no such run), else 502.
pub(super) fn fleet_error(console: &Console, err: &ProducerError) -> Response {
    let text = err.to_string();
    let status = if text.contains("(code 404)") {
        StatusCode::NOT_FOUND
    } else if text.contains("(code 400)") {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::BAD_GATEWAY
    };
    error(console, status, text)
}

/// A refused action: the console is read-only, or the form's CSRF token is wrong.
pub(super) fn refuse_action(console: &Console, csrf: &str) -> Option<Response> {
    if console.read_only {
        return Some(error(
            console,
            StatusCode::FORBIDDEN,
            "the console is read-only (--read-only): actions are refused",
        ));
    }
    if !console.guard.csrf_ok(csrf) {
        return Some(error(
            console,
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or stale: reload the page and try again",
        ));
    }
    None
}

/// `2026-12-06 14:03:05.123`, UTC.
pub(super) fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// [`when`], or `—`.
pub(super) fn when_opt(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "—".to_owned(), when)
}

/// How long from `start` to `end`: `812 ms`, `3.4 s`, `2 min 5 s`; `—` when unknown.
pub(super) fn took(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> String {
    let (Some(start), Some(end)) = (start, end) else {
        return "—".to_owned();
    };
    let ms = (end - start).num_milliseconds().max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1e3),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1_000),
    }
}

/// JSON, indented.
pub(super) fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// A query string for `pairs` (empty values left out).
pub(super) fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .collect();
    serde_urlencoded::to_string(kept).unwrap_or_default()
}

/// One URL path segment, percent-encoded.
pub(super) fn segment(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .unwrap_or_default()
        .trim_start_matches('=')
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        let start = DateTime::from_timestamp(1_000, 0);
        let at = |ms: i64| Some(start.unwrap() + chrono::TimeDelta::milliseconds(ms));
        assert_eq!(took(start, at(812)), "812 ms");
        assert_eq!(took(start, at(3_400)), "3.4 s");
        assert_eq!(took(start, at(125_000)), "2 min 5 s");
        assert_eq!(took(None, at(1)), "—");
    }

    #[test]
    fn queries_leave_out_empty_filters_and_encode_the_rest() {
        let q = query(&[
            ("tenant", Some("acme")),
            ("status", Some("")),
            ("q", Some("a b&c")),
        ]);
        assert_eq!(q, "tenant=acme&q=a+b%26c");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
