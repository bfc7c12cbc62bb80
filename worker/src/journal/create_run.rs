//! Recording runs, batched: `runfleet_create_run` for every `run.create`
//! of the batch in one statement.

use super::CreateRun;
use super::batch::{Conn, Op, RawJson};
use crate::db::DbError;

/// `runfleet_create_run` for every element of the arrays, in order.
pub(crate) const SQL: &str = "\
SELECT c.outcome, c.detail \
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], \
              $7::text[], $8::bytea[]) \
       WITH ORDINALITY AS u(tenant, run_id, project, profile, session, spec, key, hash, idx) \
 CROSS JOIN LATERAL runfleet_create_run(u.tenant, u.run_id, u.project, u.profile, u.session, \
       u.spec, u.key, u.hash) AS c \
 ORDER BY u.idx";

/// One `run.create`.
#[derive(Debug)]
pub(crate) struct CreateRunRequest {
    pub tenant: String,
    pub run_id: String,
    pub project: String,
    pub profile: String,
    pub session: Option<String>,
    /// The `run.create` message (JSON).
    pub spec: RawJson,
    pub key: String,
    pub hash: Vec<u8>,
}

/// The batched run creation.
pub(crate) struct CreateRunOp;

impl Op for CreateRunOp {
    type Request = CreateRunRequest;
    type Answer = CreateRun;
    const CALL: &'static str = "runfleet_create_run";

    fn order(request: &CreateRunRequest) -> (&str, &str, i64) {
        (&request.tenant, &request.run_id, 0)
    }

    async fn run(conn: &Conn, requests: &[&CreateRunRequest]) -> Result<Vec<CreateRun>, DbError> {
        let c =
            |f: fn(&CreateRunRequest) -> &str| requests.iter().map(|r| f(r)).collect::<Vec<_>>();
        let tenants = c(|r| &r.tenant);
        let runs = c(|r| &r.run_id);
        let projects = c(|r| &r.project);
        let profiles = c(|r| &r.profile);
        let keys = c(|r| &r.key);
        let sessions: Vec<Option<&str>> = requests.iter().map(|r| r.session.as_deref()).collect();
        let specs: Vec<&RawJson> = requests.iter().map(|r| &r.spec).collect();
        let hashes: Vec<&[u8]> = requests.iter().map(|r| r.hash.as_slice()).collect();
        let rows = conn
            .client
            .query(
                conn.statement(SQL)?,
                &[
                    &tenants, &runs, &projects, &profiles, &sessions, &specs, &keys, &hashes,
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let detail = || row.get::<_, Option<String>>(1).unwrap_or_default();
                Ok(match row.try_get::<_, &str>(0)? {
                    "created" => CreateRun::Created,
                    "exists" => CreateRun::Exists,
                    "denied" => CreateRun::Denied(detail()),
                    "conflict" => CreateRun::Conflict(detail()),
                    other => {
                        return Err(DbError::unknown_outcome(
                            "runfleet_create_run",
                            other,
                            "created, exists, denied, conflict",
                        ));
                    }
                })
            })
            .collect()
    }
}
