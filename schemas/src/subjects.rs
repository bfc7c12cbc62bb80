//! Subjects and streams.
//!
//! Every subject carries the tenant as its third token, so NATS permissions
//! can confine a producer to `runfleet.*.<tenant>.>`:
//!
//! | subject                               | message          | stream              |
//! |---------------------------------------|------------------|---------------------|
//! | `runfleet.run.<tenant>.<run_id>[.high\|.low]` | `run.create` | [`WORK_STREAM`] |
//! | `runfleet.cmd.<tenant>.<run_id>[.high\|.low]` | `command.create` | [`WORK_STREAM`] |
//! | `runfleet.ctl.<tenant>.<run_id>`      | `control.cancel` | [`CONTROL_STREAM`]  |
//! | `runfleet.receipt.<tenant>.<run_id>`  | `receipt`        | [`RECEIPT_STREAM`]  |
//! | `runfleet.evt.<tenant>.<run_id>`      | `event`          | [`EVENT_STREAM`]    |
//! | `runfleet.dlq.<tenant>`               | `dead-letter`    | [`DEAD_LETTER_STREAM`] |
//! | `runfleet.timer.<tenant>.<run_id>.<command_id>` | a delayed command's schedule (fleet-internal) | [`TIMER_STREAM`] |
//! | `runfleet.due.<tenant>.<run_id>.<command_id>`   | the schedule firing (fleet-internal) | [`TIMER_STREAM`] |
//!
//! Tokens are the validated identifier types of [`crate::Tenant`] and
//! [`crate::RunId`], so a subject built here can never contain a stray `.`,
//! `*`, `>` or whitespace.

use crate::{MessageKind, Priority, RunId, Tenant};

/// The first token of every runfleet subject.
pub const PREFIX: &str = "runfleet";

/// Runs and commands: the work the fleet pulls.
pub const WORK_STREAM: &str = "RUNFLEET_WORK";
/// Control messages (cancellation).
pub const CONTROL_STREAM: &str = "RUNFLEET_CONTROL";
/// Receipts, for producers waiting on an outcome.
pub const RECEIPT_STREAM: &str = "RUNFLEET_RECEIPTS";
/// Run events, for live followers (bounded; PostgreSQL keeps the full log).
pub const EVENT_STREAM: &str = "RUNFLEET_EVENTS";
/// Dead letters, for operators.
pub const DEAD_LETTER_STREAM: &str = "RUNFLEET_DLQ";

/// The dead-letter subject's tenant token when the original subject has none.
pub const UNKNOWN_TENANT: &str = "_unknown";

/// The subject family of each kind (the second token).
pub const fn family(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::RunCreate => "run",
        MessageKind::CommandCreate => "cmd",
        MessageKind::ControlCancel => "ctl",
        MessageKind::Receipt => "receipt",
        MessageKind::Event => "evt",
        MessageKind::DeadLetter => "dlq",
    }
}

/// The subject a message of `kind` for this run is published on.
/// (Dead letters have no run token: use [`dead_letter`].)
pub fn for_run(kind: MessageKind, tenant: &Tenant, run_id: &RunId) -> String {
    format!("{PREFIX}.{}.{tenant}.{run_id}", family(kind))
}

/// `runfleet.run.<tenant>.<run_id>`
pub fn run(tenant: &Tenant, run_id: &RunId) -> String {
    for_run(MessageKind::RunCreate, tenant, run_id)
}

/// The subject of `kind` (run or command) for this run at `priority`: the
/// plain subject for `normal`, with `.high` or `.low` appended otherwise.
pub fn at_priority(
    kind: MessageKind,
    tenant: &Tenant,
    run_id: &RunId,
    priority: Priority,
) -> String {
    let subject = for_run(kind, tenant, run_id);
    match priority.token() {
        Some(token) => format!("{subject}.{token}"),
        None => subject,
    }
}

/// The filters of the work consumer of one priority level: the run and
/// command subjects of that level (`runfleet.cmd.*.*` for `normal`,
/// `runfleet.cmd.*.*.high` for `high`).
pub fn work_filters(priority: Priority) -> Vec<String> {
    [MessageKind::RunCreate, MessageKind::CommandCreate]
        .into_iter()
        .map(|kind| {
            let base = format!("{PREFIX}.{}.*.*", family(kind));
            match priority.token() {
                Some(token) => format!("{base}.{token}"),
                None => base,
            }
        })
        .collect()
}

/// `runfleet.cmd.<tenant>.<run_id>`
pub fn command(tenant: &Tenant, run_id: &RunId) -> String {
    for_run(MessageKind::CommandCreate, tenant, run_id)
}

/// `runfleet.ctl.<tenant>.<run_id>`
pub fn control(tenant: &Tenant, run_id: &RunId) -> String {
    for_run(MessageKind::ControlCancel, tenant, run_id)
}

/// `runfleet.receipt.<tenant>.<run_id>`
pub fn receipt(tenant: &Tenant, run_id: &RunId) -> String {
    for_run(MessageKind::Receipt, tenant, run_id)
}

/// `runfleet.evt.<tenant>.<run_id>`
pub fn event(tenant: &Tenant, run_id: &RunId) -> String {
    for_run(MessageKind::Event, tenant, run_id)
}

/// `runfleet.dlq.<tenant>`, where `tenant` is the original subject's tenant
/// token or [`UNKNOWN_TENANT`].
pub fn dead_letter(tenant: &str) -> String {
    format!("{PREFIX}.dlq.{tenant}")
}

/// All subjects of one family, for stream configuration: `runfleet.<family>.>`.
pub fn wildcard(kind: MessageKind) -> String {
    format!("{PREFIX}.{}.>", family(kind))
}

/// The parts of a runfleet subject, as read back from a delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSubject<'a> {
    /// The message kind its family implies.
    pub kind: MessageKind,
    /// The tenant token, as it appears (not yet validated).
    pub tenant: &'a str,
    /// The run token, absent for dead letters.
    pub run_id: Option<&'a str>,
    /// The priority level its suffix names (`normal` without one).
    pub priority: Priority,
}

/// Reads a subject built by this module; `None` when it is not one.
pub fn parse(subject: &str) -> Option<ParsedSubject<'_>> {
    let mut tokens = subject.split('.');
    if tokens.next()? != PREFIX {
        return None;
    }
    let family_token = tokens.next()?;
    let kind = MessageKind::ALL
        .into_iter()
        .find(|k| family(*k) == family_token)?;
    let tenant = tokens.next().filter(|t| !t.is_empty())?;
    let run_id = tokens.next();
    let expected_tokens = if kind == MessageKind::DeadLetter {
        None
    } else {
        Some(())
    };
    // Runs and commands may name a priority level in a fifth token.
    let priority = match tokens.next() {
        None => Priority::Normal,
        Some(token) if matches!(kind, MessageKind::RunCreate | MessageKind::CommandCreate) => {
            Priority::from_token(token)?
        }
        Some(_) => return None,
    };
    if tokens.next().is_some() || run_id.is_some() != expected_tokens.is_some() {
        return None;
    }
    Some(ParsedSubject {
        kind,
        tenant,
        run_id,
        priority,
    })
}

/// The prefix of session lookups: request/reply on core NATS at
/// `runfleet.session.<tenant>.<session_id>`, answered by any worker (queue
/// group `runfleet-workers`) with the session's summary as JSON.
pub const SESSION_PREFIX: &str = "runfleet.session";

/// The subject a session's summary is requested on.
pub fn session_subject(tenant: &crate::Tenant, session: &crate::SessionId) -> String {
    format!("{SESSION_PREFIX}.{tenant}.{session}")
}

/// Timers: JetStream message schedules (nats-server ≥ 2.12) that wake
/// delayed work. Its subjects are the fleet's own, not a producer's.
pub const TIMER_STREAM: &str = "RUNFLEET_TIMERS";

/// The family of timer definitions: one per delayed command.
pub const TIMER_FAMILY: &str = "timer";

/// The family of the messages timers produce when they fire (not
/// `wake`: core NATS `runfleet.wake.<tenant>.<run>` wakes waiting commands).
pub const DUE_FAMILY: &str = "due";

/// `runfleet.timer.<tenant>.<run_id>.<command_id>`: the schedule that wakes
/// one delayed command (one schedule per subject: publishing again replaces it).
pub fn timer(tenant: &Tenant, run_id: &RunId, command_id: &crate::CommandId) -> String {
    format!("{PREFIX}.{TIMER_FAMILY}.{tenant}.{run_id}.{command_id}")
}

/// `runfleet.due.<tenant>.<run_id>.<command_id>`: where that schedule fires.
pub fn due(tenant: &Tenant, run_id: &RunId, command_id: &crate::CommandId) -> String {
    format!("{PREFIX}.{DUE_FAMILY}.{tenant}.{run_id}.{command_id}")
}

/// The tenant, run and command tokens of a due subject (not yet validated);
/// `None` when it is not one.
pub fn parse_due(subject: &str) -> Option<(&str, &str, &str)> {
    let mut tokens = subject.split('.');
    if tokens.next()? != PREFIX || tokens.next()? != DUE_FAMILY {
        return None;
    }
    let tenant = tokens.next().filter(|t| !t.is_empty())?;
    let run_id = tokens.next().filter(|t| !t.is_empty())?;
    let command_id = tokens.next().filter(|t| !t.is_empty())?;
    tokens
        .next()
        .is_none()
        .then_some((tenant, run_id, command_id))
}

/// The family of recurring schedules' definitions (fleet-internal).
pub const SCHEDULE_FAMILY: &str = "sched";

/// The family of the messages recurring schedules produce when they fire.
pub const FIRE_FAMILY: &str = "fire";

/// `runfleet.sched.<tenant>.<schedule_id>`: a recurring schedule's timing.
pub fn schedule(tenant: &Tenant, schedule_id: &crate::ScheduleId) -> String {
    format!("{PREFIX}.{SCHEDULE_FAMILY}.{tenant}.{schedule_id}")
}

/// `runfleet.fire.<tenant>.<schedule_id>`: where it fires.
pub fn fire(tenant: &Tenant, schedule_id: &crate::ScheduleId) -> String {
    format!("{PREFIX}.{FIRE_FAMILY}.{tenant}.{schedule_id}")
}

/// The tenant and schedule tokens of a fire subject (not yet validated).
pub fn parse_fire(subject: &str) -> Option<(&str, &str)> {
    let mut tokens = subject.split('.');
    if tokens.next()? != PREFIX || tokens.next()? != FIRE_FAMILY {
        return None;
    }
    let tenant = tokens.next().filter(|t| !t.is_empty())?;
    let schedule_id = tokens.next().filter(|t| !t.is_empty())?;
    tokens.next().is_none().then_some((tenant, schedule_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_subjects() {
        let tenant = Tenant::new("acme").unwrap();
        let run_id = RunId::new("r-1").unwrap();
        assert_eq!(command(&tenant, &run_id), "runfleet.cmd.acme.r-1");
        assert_eq!(
            parse("runfleet.cmd.acme.r-1"),
            Some(ParsedSubject {
                kind: MessageKind::CommandCreate,
                tenant: "acme",
                run_id: Some("r-1"),
                priority: Priority::Normal,
            })
        );
        let high = at_priority(MessageKind::CommandCreate, &tenant, &run_id, Priority::High);
        assert_eq!(high, "runfleet.cmd.acme.r-1.high");
        assert_eq!(parse(&high).map(|p| p.priority), Some(Priority::High));
        assert_eq!(
            parse("runfleet.run.acme.r-1.low").map(|p| p.priority),
            Some(Priority::Low)
        );
        assert_eq!(
            work_filters(Priority::Normal),
            ["runfleet.run.*.*", "runfleet.cmd.*.*"]
        );
        assert_eq!(
            work_filters(Priority::High),
            ["runfleet.run.*.*.high", "runfleet.cmd.*.*.high"]
        );
        assert_eq!(
            parse(&dead_letter("acme")).map(|p| p.kind),
            Some(MessageKind::DeadLetter)
        );
        for bad in [
            "runfleet.cmd.acme",
            "other.cmd.a.b",
            "runfleet.cmd.a.b.c",
            "runfleet.cmd.a.b.normal",
            "runfleet.cmd.a.b.high.x",
            "runfleet.ctl.a.b.high",
            "runfleet.nope.a.b",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(wildcard(MessageKind::Event), "runfleet.evt.>");
    }
}
