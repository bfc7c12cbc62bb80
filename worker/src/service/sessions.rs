//! Session summaries, answered over core NATS request/reply on
//! `runfleet.session.<tenant>.<session_id>` by any worker (queue group
//! `runfleet-workers`): what `runfleet session show` prints.
//!
//! A session is bound to the tenant, project and backend profile of its
//! first run (`runfleet_create_run` refuses any other with
//! `tenant-policy-denied`); its summary says whether one of its runs is
//! still active, which run came last, when anything last happened and the
//! last event seq of that run. A tenant only ever sees its own sessions.

use futures::StreamExt;
use runfleet_schemas::subjects::SESSION_PREFIX;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::db::{DbError, Pool};

/// The queue group session requests are shared in.
const QUEUE_GROUP: &str = "runfleet-workers";

/// The summary of `session_id` if it belongs to `tenant`.
///
/// # Errors
/// [`DbError`] on database failure.
pub async fn summary(
    pool: &Pool,
    tenant: &str,
    session_id: &str,
) -> Result<Option<Value>, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            "SELECT s.session_id, s.tenant, s.project, s.backend_profile, s.created_at, \
                    last.run_id, last.status, last.next_event_seq - 1, \
                    (SELECT count(*) FROM runs r WHERE r.tenant = s.tenant AND r.session_id = s.session_id), \
                    EXISTS (SELECT 1 FROM runs r WHERE r.tenant = s.tenant AND r.session_id = s.session_id \
                            AND r.status IN ('pending', 'claimed')), \
                    (SELECT max(r.updated_at) FROM runs r WHERE r.tenant = s.tenant AND r.session_id = s.session_id) \
               FROM sessions s \
               LEFT JOIN LATERAL (SELECT r.run_id, r.status, r.next_event_seq FROM runs r \
                                   WHERE r.tenant = s.tenant AND r.session_id = s.session_id \
                                   ORDER BY r.created_at DESC LIMIT 1) last ON true \
              WHERE s.session_id = $1 AND s.tenant = $2",
            &[&session_id, &tenant],
        )
        .await?;
    Ok(row.map(|row| {
        let active: bool = row.get(9);
        let created: chrono::DateTime<chrono::Utc> = row.get(4);
        let last_activity: Option<chrono::DateTime<chrono::Utc>> = row.get(10);
        json!({
            "session_id": row.get::<_, String>(0),
            "tenant": row.get::<_, String>(1),
            "project": row.get::<_, String>(2),
            "backend_profile": row.get::<_, String>(3),
            "created_at": created,
            "state": if active { "active" } else { "idle" },
            "last_run_id": row.get::<_, Option<String>>(5),
            "last_run_status": row.get::<_, Option<String>>(6),
            "last_event_seq": row.get::<_, Option<i64>>(7).map(|s| s.max(0)),
            "runs": row.get::<_, i64>(8),
            "last_activity": last_activity.unwrap_or(created),
        })
    }))
}

/// Whether `reply` is an inbox: `_INBOX.…` or the tenant's own `_INBOX_<tenant>.…`.
fn reply_is_an_inbox(reply: &str, tenant: &str) -> bool {
    reply.starts_with("_INBOX.")
        || reply
            .strip_prefix("_INBOX_")
            .and_then(|rest| rest.strip_prefix(tenant))
            .is_some_and(|rest| rest.starts_with('.'))
}

/// Answers session requests until `stop`.
pub async fn serve(client: async_nats::Client, pool: Pool, stop: CancellationToken) {
    let Some(mut requests) = crate::subscribe::until_subscribed(
        &client,
        format!("{SESSION_PREFIX}.*.*"),
        Some(QUEUE_GROUP),
        "session summaries",
        &stop,
    )
    .await
    else {
        return;
    };
    loop {
        let request = tokio::select! {
            () = stop.cancelled() => return,
            request = requests.next() => match request {
                Some(request) => request,
                None => return,
            },
        };
        let Some(reply) = request.reply.clone() else {
            continue;
        };
        let mut tokens = request.subject.as_str().splitn(4, '.').skip(2);
        let (tenant, session) = (tokens.next().unwrap_or(""), tokens.next().unwrap_or(""));
        // Answer only into an inbox: the worker may publish almost anywhere,
        // and a reply subject is the requester's choice (a tenant must not
        // make the worker write into another tenant's subjects).
        if !reply_is_an_inbox(reply.as_str(), tenant) {
            tracing::warn!(reply = %reply, tenant, "session request with a reply subject that is not an inbox; ignored");
            continue;
        }
        let answer = match summary(&pool, tenant, session).await {
            Ok(Some(summary)) => summary,
            Ok(None) => json!({ "error": format!("tenant {tenant} has no session {session}") }),
            Err(err) => json!({ "error": format!("the fleet could not read the session: {err}") }),
        };
        if let Err(err) = client.publish(reply, answer.to_string().into()).await {
            tracing::debug!(error = %err, "could not answer a session request");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reply_is_an_inbox;

    #[test]
    fn answers_go_to_inboxes_only() {
        assert!(reply_is_an_inbox("_INBOX.abc.1", "acme"));
        assert!(reply_is_an_inbox("_INBOX_acme.abc.1", "acme"));
        assert!(!reply_is_an_inbox("_INBOX_acmeX.abc", "acme"));
        assert!(!reply_is_an_inbox("_INBOX_globex.abc", "acme"));
        assert!(!reply_is_an_inbox("runfleet.receipt.globex.r1", "acme"));
        assert!(!reply_is_an_inbox(
            "$JS.API.STREAM.PURGE.RUNFLEET_WORK",
            "acme"
        ));
    }
}
