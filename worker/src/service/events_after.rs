//! `events.after`: a run's events after a seq, a page at a time.

use runfleet_schemas::api::{EventsAfterRequest, EventsPage};

use super::error::{ApiError, no_run};
use super::{Api, bigint};

impl Api {
    /// `events.after`: up to `limit` events with seq > `after_seq`, in order.
    pub(super) async fn events_after(
        &self,
        request: EventsAfterRequest,
    ) -> Result<EventsPage, ApiError> {
        let (after, limit) = (request.after_seq(), request.limit());
        let EventsAfterRequest { tenant, run_id, .. } = request;
        let conn = self.pool.get().await?;
        let last_seq: i64 = conn
            .query_opt(
                "SELECT next_event_seq - 1 FROM runs WHERE tenant = $1 AND run_id = $2",
                &[&tenant, &run_id],
            )
            .await?
            .ok_or_else(|| no_run(&tenant, &run_id))?
            .try_get(0)?;
        // One more than asked for, to know whether there are more.
        let rows = conn
            .query(
                "SELECT seq, event FROM events WHERE tenant = $1 AND run_id = $2 AND seq > $3 \
                  ORDER BY seq LIMIT $4",
                &[&tenant, &run_id, &bigint(after), &bigint(limit + 1)],
            )
            .await?;
        let more = rows.len() as u64 > limit;
        let mut events = Vec::with_capacity(rows.len());
        let mut next_after = bigint(after);
        for row in rows
            .iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
        {
            next_after = row.try_get(0)?;
            events.push(row.try_get(1)?);
        }
        Ok(EventsPage {
            tenant,
            run_id,
            after_seq: after,
            last_seq: last_seq.max(0),
            next_after_seq: next_after,
            more,
            events,
        })
    }
}
