//! Request numbers as PostgreSQL reads them.

/// Converts a request number to a PostgreSQL bigint.
pub(super) fn bigint(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
