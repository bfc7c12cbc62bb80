//! Who may use the console, and which requests may act.
//!
//! - **Exposure.** Loopback needs nothing; any other address needs
//!   [`TOKEN_ENV`] (16 characters or more), or the console does not start.
//! - **Login.** With a token set, every page but the login form and the
//!   assets wants it: as the `runfleet_console` cookie the login form sets
//!   (`HttpOnly`, `SameSite=Strict`; it holds a SHA-256 digest of the token,
//!   not the token), or as `Authorization: Bearer <token>`. Both are
//!   compared in constant time.
//! - **Without a token** (loopback only) a request must name a loopback
//!   host (`localhost`, `127.0.0.1`, `[::1]`) in `Host`, so a web page whose
//!   name an attacker rebinds to 127.0.0.1 cannot read the console.
//! - **Actions** (cancel, re-drive) are POSTs whose form carries this
//!   process's CSRF token (random at start, compared in constant time); a
//!   cross-site form cannot read it, and one whose `Origin` is not the
//!   console's own is refused. `--read-only` refuses them all.
//! - **Headers.** Every answer forbids framing and allows scripts and styles
//!   from the console itself only (no inline script can run, whatever a
//!   value held).

use std::net::SocketAddr;

use askama::Template;
use axum::Form;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Shared;
use super::view::render;

/// The operator token's environment variable.
pub(crate) const TOKEN_ENV: &str = "RUNFLEET_CONSOLE_TOKEN";
/// The shortest token accepted.
const MIN_TOKEN_LEN: usize = 16;
/// The login cookie.
const COOKIE: &str = "runfleet_console";
/// What every answer may load and run.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// The operator token (if any), the cookie that stands for it, and this
/// process's CSRF token.
pub(super) struct Guard {
    token: Option<String>,
    cookie: Option<String>,
    csrf: String,
}

/// What the login cookie holds for `token`: a digest, so the cookie is no
/// copy of the token and any token fits in a cookie.
fn cookie_value(token: &str) -> String {
    Sha256::digest(format!("runfleet-console-login\0{token}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The host `Host` names, without its port.
fn host_name(headers: &HeaderMap) -> Option<&str> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    Some(match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    })
}

/// Whether `Host` names this machine's loopback.
fn loopback_host(headers: &HeaderMap) -> bool {
    matches!(host_name(headers), Some("localhost" | "127.0.0.1" | "::1"))
}

/// Whether an `Origin` header, when there is a telling one, is the
/// console's own: `Host`, or `X-Forwarded-Host` behind a reverse proxy (a
/// cross-site form can set neither). Absent or `null` (a privacy-minded
/// browser or page), it says nothing, and the CSRF token decides.
fn same_origin(headers: &HeaderMap) -> bool {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let Some(origin) = origin.filter(|o| *o != "null") else {
        return true;
    };
    let Some((_, origin_host)) = origin.split_once("://") else {
        return false;
    };
    [header::HOST.as_str(), "x-forwarded-host"]
        .into_iter()
        .filter_map(|name| headers.get(name).and_then(|v| v.to_str().ok()))
        .any(|host| host.eq_ignore_ascii_case(origin_host))
}

fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

impl Guard {
    pub(super) fn new(token: Option<String>) -> Guard {
        let csrf = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        Guard {
            cookie: token.as_deref().map(cookie_value),
            token,
            csrf,
        }
    }

    /// Whether an operator token is set (then the layout offers to log out).
    pub(super) fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The CSRF token forms carry.
    pub(super) fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether a form's CSRF token is this process's.
    pub(super) fn csrf_ok(&self, sent: &str) -> bool {
        same(sent, &self.csrf)
    }

    /// Whether the request carries the operator token (without one set:
    /// whether it names a loopback host).
    fn admits(&self, headers: &HeaderMap) -> bool {
        let (Some(token), Some(expected_cookie)) = (&self.token, &self.cookie) else {
            return loopback_host(headers);
        };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
            .next();
        bearer.is_some_and(|sent| same(sent, token))
            || cookie.is_some_and(|sent| same(sent, expected_cookie))
    }
}

/// Refuses to expose the console beyond loopback without a token.
///
/// # Errors
/// The address is not loopback and no (long enough) token is set.
pub(super) fn check_exposure(listen: SocketAddr, token: Option<&str>) -> anyhow::Result<()> {
    if listen.ip().is_loopback() {
        return Ok(());
    }
    match token {
        Some(token) if token.len() >= MIN_TOKEN_LEN => Ok(()),
        Some(_) => anyhow::bail!(
            "refusing to listen on {listen}: {TOKEN_ENV} must be at least {MIN_TOKEN_LEN} characters"
        ),
        None => anyhow::bail!(
            "refusing to listen on {listen}: it is not a loopback address and {TOKEN_ENV} is not set \
             (set it to a secret of {MIN_TOKEN_LEN} characters or more; operators log in with it), \
             or listen on 127.0.0.1"
        ),
    }
}

/// Sends a request without the token to the login form (a POST gets 401),
/// and sets the security headers on every answer.
pub(super) async fn require_login(
    State(console): State<Shared>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let open = path == "/login" || path.starts_with("/assets/");
    let foreign_post = request.method() == Method::POST && !same_origin(request.headers());
    let mut response = if foreign_post {
        (
            StatusCode::FORBIDDEN,
            "refused: the form came from another site",
        )
            .into_response()
    } else if open || console.guard.admits(request.headers()) {
        next.run(request).await
    } else if console.guard.token.is_none() {
        (
            StatusCode::FORBIDDEN,
            "refused: without RUNFLEET_CONSOLE_TOKEN the console answers only requests to localhost",
        )
            .into_response()
    } else if request.method() == Method::GET {
        Redirect::to("/login").into_response()
    } else {
        (StatusCode::UNAUTHORIZED, "log in first (/login)").into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    refused: bool,
}

/// `GET /login`.
pub(super) async fn login_form(State(console): State<Shared>) -> Response {
    if console.guard.token.is_none() {
        return Redirect::to("/").into_response();
    }
    render(&LoginPage { refused: false })
}

#[derive(serde::Deserialize)]
pub(super) struct LoginForm {
    token: String,
}

/// `POST /login`: the token right, the cookie set.
pub(super) async fn login(State(console): State<Shared>, Form(form): Form<LoginForm>) -> Response {
    let Some(token) = &console.guard.token else {
        return Redirect::to("/").into_response();
    };
    if !same(&form.token, token) {
        let mut response = render(&LoginPage { refused: true });
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        cookie_value(token)
    );
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /logout`: the cookie cleared.
pub(super) async fn logout() -> Response {
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("runfleet_console=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn only_loopback_goes_without_a_token() {
        assert!(check_exposure("127.0.0.1:8080".parse().unwrap(), None).is_ok());
        assert!(check_exposure("[::1]:8080".parse().unwrap(), None).is_ok());
        let err = check_exposure("0.0.0.0:8080".parse().unwrap(), None).unwrap_err();
        assert!(err.to_string().contains(TOKEN_ENV), "{err}");
        assert!(check_exposure("0.0.0.0:8080".parse().unwrap(), Some("short")).is_err());
        assert!(
            check_exposure(
                "0.0.0.0:8080".parse().unwrap(),
                Some("a-long-enough-secret")
            )
            .is_ok()
        );
    }

    #[test]
    fn the_token_is_taken_from_the_cookie_or_a_bearer_header() {
        let token = "s3cret; s3cret s3cret";
        let guard = Guard::new(Some(token.into()));
        assert!(!guard.admits(&HeaderMap::new()));
        assert!(guard.admits(&with(header::AUTHORIZATION, &format!("Bearer {token}"))));
        assert!(!guard.admits(&with(header::AUTHORIZATION, "Bearer wrong")));
        let cookie = format!("a=b; runfleet_console={}", cookie_value(token));
        assert!(guard.admits(&with(header::COOKIE, &cookie)));
        assert!(
            !cookie.contains("s3cret"),
            "the cookie is no copy of the token"
        );
        assert!(!guard.admits(&with(header::COOKIE, &format!("runfleet_console={token}"))));
    }

    #[test]
    fn without_a_token_only_loopback_hosts_are_answered() {
        let guard = Guard::new(None);
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "[::1]:8080",
            "localhost",
        ] {
            assert!(guard.admits(&with(header::HOST, host)), "{host}");
        }
        for host in [
            "attacker.example:8080",
            "127.0.0.1.attacker.example",
            "[::2]:80",
        ] {
            assert!(!guard.admits(&with(header::HOST, host)), "{host}");
        }
        assert!(!guard.admits(&HeaderMap::new()));
    }

    #[test]
    fn a_post_from_another_origin_is_told_apart() {
        let mut headers = with(header::HOST, "127.0.0.1:8080");
        assert!(same_origin(&headers), "no Origin: the CSRF token decides");
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(same_origin(&headers), "null: the CSRF token decides");
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://console.example"),
        );
        assert!(!same_origin(&headers));
        headers.insert(
            "x-forwarded-host",
            HeaderValue::from_static("console.example"),
        );
        assert!(same_origin(&headers), "behind a reverse proxy");
        headers.remove("x-forwarded-host");
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&headers));
    }

    #[test]
    fn a_csrf_token_is_this_processs_own() {
        let guard = Guard::new(None);
        assert!(guard.csrf_ok(guard.csrf()));
        assert!(!guard.csrf_ok(""));
        assert!(!guard.csrf_ok(Guard::new(None).csrf()));
    }
}
