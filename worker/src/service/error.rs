//! How a request fails: [`ApiError`], its micro-service status code and a
//! one-line message fit for a header.

use async_nats::service;

use crate::db::DbError;

/// Longest error message sent (the header must stay small).
const MAX_ERROR_LEN: usize = 1024;

/// A request that failed, as its caller is told.
#[derive(Debug)]
pub(super) enum ApiError {
    /// 400: the request is invalid; names the field.
    BadRequest(String),
    /// 404: what was asked for does not exist.
    NotFound(String),
    /// 413: the answer is larger than the server's `max_payload`.
    TooLarge(String),
    /// 500: the database or the broker failed.
    Internal(String),
}

impl ApiError {
    /// The micro-service error: a status code and a one-line message.
    pub(super) fn into_service_error(self) -> service::error::Error {
        let (code, message) = match self {
            ApiError::BadRequest(m) => (400, m),
            ApiError::NotFound(m) => (404, m),
            ApiError::TooLarge(m) => (413, m),
            ApiError::Internal(m) => (500, m),
        };
        service::error::Error {
            status: one_line(&message),
            code,
        }
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> ApiError {
        // The full error goes to the log only; the caller gets the SQLSTATE.
        tracing::warn!(error = %err, "micro service request: PostgreSQL failed");
        let code = match err.root() {
            DbError::Postgres(err) => err
                .code()
                .map(|c| format!(" (SQLSTATE {})", c.code()))
                .unwrap_or_default(),
            DbError::Pool(_) => " (no free connection)".to_owned(),
            // Other variants (TLS set-up, unexpected values) may quote the
            // configuration: say nothing more.
            _ => String::new(),
        };
        ApiError::Internal(format!(
            "the fleet's database failed{code}; the worker's log has the details"
        ))
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(err: tokio_postgres::Error) -> ApiError {
        ApiError::from(DbError::from(err))
    }
}

/// A message fit for a header value: one line, bounded.
fn one_line(message: &str) -> String {
    let mut line: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() > MAX_ERROR_LEN {
        line.truncate(crate::text::head(&line, MAX_ERROR_LEN).len());
        line.push('…');
    }
    line
}

/// 404 for a run.
pub(super) fn no_run(tenant: &str, run_id: &str) -> ApiError {
    ApiError::NotFound(format!("tenant {tenant} has no run {run_id}"))
}

/// 404 for a dead letter.
pub(super) fn no_dead_letter(id: &str) -> ApiError {
    ApiError::NotFound(format!("there is no dead letter {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_fit_in_a_header() {
        let status = one_line(&format!("a\r\nb{}", "x".repeat(5000)));
        assert!(!status.contains(['\r', '\n']));
        assert!(status.len() <= MAX_ERROR_LEN + '…'.len_utf8());
    }
}
