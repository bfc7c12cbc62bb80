//! `runs.list`: runs, newest first, filtered, paged by keyset
//! (`created_at`, tenant, run id) so a page costs the same on the millionth
//! run as on the first (indexes of `V13__runs_list.sql`).

use chrono::{DateTime, Utc};
use runfleet_schemas::api::{RunList, RunListRequest, RunSummary};
use tokio_postgres::types::ToSql;

use super::error::ApiError;
use super::{Api, bigint};

/// A statement's parameters.
pub type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// Where a page continues: after this run in the list's order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    created_at: DateTime<Utc>,
    tenant: String,
    run_id: String,
}

impl Cursor {
    /// `<created_at in µs since the epoch>:<tenant>:<run_id>` (identifiers never hold `:`).
    fn encode(&self) -> String {
        format!(
            "{}:{}:{}",
            self.created_at.timestamp_micros(),
            self.tenant,
            self.run_id
        )
    }

    fn decode(text: &str) -> Result<Cursor, String> {
        let bad = || format!("after: {text:?} is not a cursor this endpoint gave");
        let mut parts = text.splitn(3, ':');
        let (Some(micros), Some(tenant), Some(run_id)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        Ok(Cursor {
            created_at: DateTime::from_timestamp_micros(micros).ok_or_else(bad)?,
            tenant: tenant.to_owned(),
            run_id: run_id.to_owned(),
        })
    }
}

/// `LIKE` text matching `prefix` literally, then anything.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The statement of a `runs.list` page and its parameters: only the
/// filters asked for, and the keyset condition in the column order of the
/// index that serves it (with a tenant: `(tenant, created_at, run_id)`;
/// without: `(created_at, tenant, run_id)`).
///
/// # Errors
/// Why `after` is not a cursor this endpoint gave.
pub fn page_query(request: &RunListRequest) -> Result<(String, Params), String> {
    let mut params: Params = Vec::new();
    let mut conditions: Vec<String> = Vec::new();
    let bind = |params: &mut Params, value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        format!("${}", params.len())
    };
    let filters = [
        ("tenant", &request.tenant),
        ("project", &request.project),
        ("status", &request.status),
        ("backend_profile", &request.profile),
        ("session_id", &request.session_id),
    ];
    for (column, value) in filters {
        if let Some(value) = value {
            let p = bind(&mut params, Box::new(value.clone()));
            conditions.push(format!("{column} = {p}"));
        }
    }
    if let Some(prefix) = &request.run_id_prefix {
        let p = bind(&mut params, Box::new(like_prefix(prefix)));
        conditions.push(format!("run_id LIKE {p}"));
    }
    if let Some(after) = request.after.as_deref().map(Cursor::decode).transpose()? {
        let at = bind(&mut params, Box::new(after.created_at));
        let run = bind(&mut params, Box::new(after.run_id));
        if request.tenant.is_some() {
            conditions.push(format!("(created_at, run_id) < ({at}, {run})"));
        } else {
            let tenant = bind(&mut params, Box::new(after.tenant));
            conditions.push(format!(
                "(created_at, tenant, run_id) < ({at}, {tenant}, {run})"
            ));
        }
    }
    let limit = bind(&mut params, Box::new(bigint(request.limit() + 1)));
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT tenant, run_id, project, backend_profile, session_id, status, failure_kind, \
                next_seq, created_at, updated_at \
           FROM runs{filter} \
          ORDER BY created_at DESC, tenant DESC, run_id DESC LIMIT {limit}"
    );
    Ok((sql, params))
}

impl Api {
    /// `runs.list`: a page of runs, newest first.
    pub(super) async fn runs_list(&self, request: RunListRequest) -> Result<RunList, ApiError> {
        let limit = request.limit();
        let (sql, params) = page_query(&request).map_err(ApiError::BadRequest)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
        let conn = self.pool.get().await?;
        let rows = conn.query(&sql, &params).await?;
        let more = rows.len() as u64 > limit;
        let mut runs = Vec::with_capacity(rows.len());
        for row in rows
            .iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
        {
            runs.push(RunSummary {
                tenant: row.try_get(0)?,
                run_id: row.try_get(1)?,
                project: row.try_get(2)?,
                profile: row.try_get(3)?,
                session_id: row.try_get(4)?,
                status: row.try_get(5)?,
                failure_kind: row.try_get(6)?,
                next_seq: row.try_get(7)?,
                created_at: row.try_get(8)?,
                updated_at: row.try_get(9)?,
            });
        }
        let next = more
            .then(|| runs.last())
            .flatten()
            .map(|last| Cursor {
                created_at: last.created_at,
                tenant: last.tenant.clone(),
                run_id: last.run_id.clone(),
            })
            .map(|cursor| cursor.encode());
        Ok(RunList { runs, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_a_foreign_one_is_refused() {
        let cursor = Cursor {
            created_at: DateTime::from_timestamp_micros(1_765_000_000_123_456).unwrap(),
            tenant: "acme".into(),
            run_id: "run-1".into(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        for text in ["", "x:acme:r", "12", "12:acme"] {
            assert!(Cursor::decode(text).is_err(), "{text}");
        }
    }

    #[test]
    fn a_prefix_matches_literally() {
        assert_eq!(like_prefix("a_b%c"), "a\\_b\\%c%");
    }
}
