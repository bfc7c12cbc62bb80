//! Schedule-to-start: a command with `schedule_to_start_ms` that was not
//! started within it of being scheduled ends `timed-out` with
//! `schedule-to-start` when its turn comes, without executing (the check is
//! made when it would start: on its first claim, and before a pure command
//! is settled). Scheduled is its `not_before`, or when the fleet first saw
//! it, whichever is later. Without the field there is no limit, but a
//! command whose profile no worker serves still ends `no-backend` after the
//! fleet's `RUNFLEET_SCHEDULE_TO_START`, its default.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Turn, elapsed_since};

impl Turn<'_> {
    /// When the command was scheduled: its `not_before`, or when the fleet
    /// first saw it, whichever is later.
    pub(super) fn scheduled_at(&self) -> DateTime<Utc> {
        let seen = self.first_seen();
        self.command
            .not_before
            .map_or(seen, |not_before| not_before.max(seen))
    }

    /// How long the command may wait to start: its own
    /// `schedule_to_start_ms`, else `fleet_default` when given.
    pub(super) fn schedule_to_start(&self, fleet_default: Option<Duration>) -> Option<Duration> {
        self.command
            .schedule_to_start_ms
            .map(Duration::from_millis)
            .or(fleet_default)
    }

    /// Why the command may no longer start, when its own
    /// `schedule_to_start_ms` has passed.
    pub(super) fn past_schedule_to_start(&self) -> Option<String> {
        let limit = self.schedule_to_start(None)?;
        let waited = elapsed_since(self.scheduled_at());
        (waited >= limit).then(|| {
            format!(
                "not started within its schedule_to_start_ms ({}): scheduled {} ago",
                humantime::format_duration(limit),
                humantime::format_duration(Duration::from_millis(
                    u64::try_from(waited.as_millis()).unwrap_or(u64::MAX)
                ))
            )
        })
    }
}
