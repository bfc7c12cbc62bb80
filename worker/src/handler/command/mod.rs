//! `command.create`: idempotency, order, claim, execution under a lease,
//! the fenced commit, then publish and ack — one room per outcome:
//!
//! - here: the turn loop. A pure command (its backend computes it with no
//!   effect outside the journal) is settled in one statement ([`settle`]);
//!   any other, or one the settle leaves, goes through
//!   [`crate::journal::Journal::begin_command`], which decides: replay a
//!   stored receipt, refuse a conflicting key, wait for the run or for the
//!   command's turn, or claim the run with a new fencing token.
//! - [`execute`]: a claimed command runs under supervision. While waiting
//!   and while executing, the message's ack deadline (the lease) is renewed
//!   with in-progress acks every `ack_wait / 3`, and the run's lease in
//!   PostgreSQL with it; a claim that cannot be renewed is lost and
//!   execution stops with `heartbeat-lost`.
//! - [`commit`]: events, receipt and command state committed in one
//!   transaction under the claim's token (a superseded claim writes
//!   nothing); only then are they published (awaiting their PubAcks), and
//!   only then is the message acked.
//! - [`wait`]: a command behind an earlier seq waits without a slot,
//!   keeping its lease, and a long wait is parked in PostgreSQL.
//! - [`delay`]: run-after; a command whose `not_before` is ahead waits for
//!   its timer, recorded in PostgreSQL, its message acknowledged.
//! - [`schedule`]: schedule-to-start, checked when the command would start.
//! - [`refuse`]: what is not executed — replays, conflicts, missing runs,
//!   cancelled commands, terminal runs, turns that never come.

mod attempt;
mod commit;
mod delay;
mod execute;
mod output;
mod refuse;
mod schedule;
mod settle;
mod wait;

use self::execute::Claim;
use self::output::bound_output;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use chrono::{DateTime, Utc};
use runfleet_schemas::{
    CommandCreate, Event, EventBody, EventRange, Failure, FailureKind, Receipt, SchemaVersion,
    TerminalCommandStatus, headers,
};
use serde_json::Value;
use tracing::Instrument;

use super::{Delivery, Disposition, Retryable, attempt_i64};
use crate::handler::{Shared, Slot};
use crate::journal::{Begin, CommandRow};
use crate::retry::nak_delay;
use crate::waiters::run_key;

/// The time from `then` until now (zero when `then` is in the future).
pub(super) fn elapsed_since(then: DateTime<Utc>) -> Duration {
    Utc::now()
        .signed_duration_since(then)
        .to_std()
        .unwrap_or_default()
}

/// Whether a `Wait` answer is a wait for an earlier seq (the journal words
/// it `seq N of run R waits for seq M`), not for a lease.
fn behind_an_earlier_seq(why: &str) -> bool {
    why.contains(" waits for seq ")
}

/// How long a command waits for its turn holding its message before it is
/// parked in PostgreSQL instead.
const PARK_AFTER: Duration = Duration::from_secs(1);

/// How long a command whose run does not exist yet waits for it holding
/// its message (woken when the run is created) before it is handed back.
const HOLD_FOR_RUN: Duration = Duration::from_secs(2);

/// The first re-check of a waiting command that was not woken.
const FIRST_POLL: Duration = Duration::from_millis(50);

/// One command delivery being handled.
struct Turn<'a> {
    shared: &'a Shared,
    message: &'a jetstream::Message,
    delivery: &'a Delivery,
    /// The worker slot it holds, given up while it waits for its turn.
    slot: &'a Slot,
    command: CommandCreate,
    /// The command as the journal records it.
    row: CommandRow,
    traceparent: Option<String>,
    key: String,
    /// The run's backend profile, once known (for metrics).
    profile: std::sync::OnceLock<String>,
}

pub(super) async fn handle(
    shared: &Shared,
    message: &jetstream::Message,
    delivery: &Delivery,
    slot: &Slot,
    command: CommandCreate,
) -> Result<Disposition, Retryable> {
    let traceparent = message
        .headers
        .as_ref()
        .and_then(|h| h.get(headers::TRACEPARENT))
        .map(|v| v.as_str().to_owned());
    let key = run_key(command.tenant.as_str(), command.run_id.as_str());
    // `instrument`, not `span.enter()`: a guard held across `.await` would
    // leak the span into whatever else runs on this thread.
    let span = tracing::info_span!(
        "command",
        run.id = %command.run_id,
        command.id = %command.command_id,
        tenant = %command.tenant,
        seq = command.seq,
        traceparent = traceparent.as_deref().unwrap_or_default(),
    );
    if let Some(disposition) = delay::until_due(shared, message, &command, traceparent.as_deref())
        .instrument(span.clone())
        .await?
    {
        return Ok(disposition);
    }
    let row = CommandRow::new(&command, message.payload.clone());
    let turn = Turn {
        shared,
        message,
        delivery,
        slot,
        command,
        row,
        traceparent,
        key,
        profile: std::sync::OnceLock::new(),
    };
    turn.run().instrument(span).await
}

impl Turn<'_> {
    async fn run(&self) -> Result<Disposition, Retryable> {
        let shared = self.shared;
        let waiting_since = Instant::now();
        let mut last_heartbeat = Instant::now();
        let mut poll = FIRST_POLL;
        let guard = shared.waiters.register(&self.key, self.command.seq);
        loop {
            let notified = guard.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Computed afresh on every try: its timestamps are the settle's.
            let mut pure = self.pure();
            // Woken after waiting without a slot: a pure command needs none
            // (it settles in one statement), any other waits for one.
            if pure.is_none() {
                if !self.take_slot(&mut last_heartbeat).await {
                    return Ok(Disposition::Nak(None));
                }
            } else {
                self.slot.try_acquire();
            }
            let beginning = Instant::now();
            let mut begin = Begin::Slow;
            if let Some(pure) = &pure {
                begin = shared
                    .journal
                    .settle_pure(
                        self.row.clone(),
                        attempt_i64(self.delivery),
                        &shared.worker_id,
                        &pure.profile,
                        pure.receipt_json.clone(),
                        pure.events_json.clone(),
                    )
                    .await?;
            }
            if begin == Begin::Slow {
                // The two-step path may claim and execute: it needs a slot.
                if !self.take_slot(&mut last_heartbeat).await {
                    return Ok(Disposition::Nak(None));
                }
                begin = shared
                    .journal
                    .begin_command(
                        self.row.clone(),
                        attempt_i64(self.delivery),
                        &shared.worker_id,
                        shared.config.ack_wait,
                    )
                    .await?;
            }
            if !matches!(begin, Begin::Wait(_) | Begin::NoRun(_)) {
                // No longer in line: the run's next wake-up is for the next one.
                guard.leave();
            }
            match begin {
                Begin::Settled {
                    fencing_token,
                    next_event_seq,
                    waiter,
                } => {
                    let Some(pure) = pure.take() else {
                        return Err(crate::db::DbError::Unexpected(format!(
                            "command {} (run {}) settled without a computed outcome",
                            self.command.command_id, self.command.run_id
                        ))
                        .into());
                    };
                    return self
                        .settled(
                            pure,
                            fencing_token,
                            next_event_seq,
                            waiter,
                            beginning.elapsed(),
                        )
                        .await;
                }
                Begin::Claimed {
                    fencing_token,
                    next_event_seq,
                    run_spec,
                    spent,
                    executions,
                } => {
                    tracing::debug!(
                        begin_ms = beginning.elapsed().as_secs_f64() * 1e3,
                        waited_ms = waiting_since.elapsed().as_secs_f64() * 1e3,
                        fencing_token,
                        "claimed"
                    );
                    let claim = Claim {
                        token: fencing_token,
                        next_event_seq,
                        spent,
                        executions,
                    };
                    return self.execute(claim, run_spec).await;
                }
                Begin::Replay(receipt, events) => return self.replay(receipt, events).await,
                Begin::Conflict(why) => return self.conflict(why).await,
                Begin::RunTerminal(why, kind) => return self.not_executed(kind, why).await,
                Begin::Cancelled(why) => {
                    return self.not_executed(FailureKind::Cancelled, why).await;
                }
                Begin::NoRun(why) if waiting_since.elapsed() < HOLD_FOR_RUN => {
                    // Its `run.create` is likely a moment behind (published
                    // just before it, handled by another worker): wait here,
                    // woken when the run is created, rather than spend a
                    // delivery on it.
                    tracing::debug!(why = %why, "waiting for its run");
                    if !self.pause(notified, &mut poll, &mut last_heartbeat).await {
                        return Ok(Disposition::Nak(None));
                    }
                }
                Begin::NoRun(why) => return self.no_run(why).await,
                Begin::Slow => {
                    return Err(crate::db::DbError::Unexpected(format!(
                        "the two-step begin of command {} (run {}) answered as a settle",
                        self.command.command_id, self.command.run_id
                    ))
                    .into());
                }
                Begin::Limited(key) => return self.limited(key).await,
                Begin::Wait(why) => {
                    // Only a wait for an earlier seq can go on for ever; a
                    // wait on a lease (this very command claimed elsewhere,
                    // say) ends when the lease does.
                    if behind_an_earlier_seq(&why) && self.waited_out() {
                        return self.give_up_waiting(why).await;
                    }
                    if waiting_since.elapsed() >= PARK_AFTER && self.park().await? {
                        return Ok(Disposition::Ack);
                    }
                    if waiting_since.elapsed() >= shared.config.order_wait {
                        tracing::info!(why = %why, "waited too long for its turn; handing the message back");
                        self.log(&format!("waited: {why}")).await;
                        return Ok(Disposition::Nak(Some(nak_delay(self.delivery.attempt))));
                    }
                    tracing::trace!(why = %why, "waiting for its turn");
                    if !self.pause(notified, &mut poll, &mut last_heartbeat).await {
                        return Ok(Disposition::Nak(None));
                    }
                }
            }
        }
    }

    /// Events of this command from `bodies`, numbered from `first_seq`.
    pub(super) fn events(&self, bodies: Vec<EventBody>, first_seq: u64) -> Vec<Event> {
        bodies
            .into_iter()
            .zip(first_seq..)
            .map(|(body, seq)| Event {
                schema: Default::default(),
                version: SchemaVersion,
                tenant: self.command.tenant.clone(),
                run_id: self.command.run_id.clone(),
                command_id: Some(self.command.command_id.clone()),
                seq,
                attempt: Some(self.delivery.attempt),
                at: Utc::now(),
                // Every body was redacted (and bounded) where it was made.
                body,
            })
            .collect()
    }

    pub(super) fn receipt(
        &self,
        status: TerminalCommandStatus,
        failure: Option<Failure>,
        output: Option<Value>,
        events: Option<EventRange>,
        fencing_token: u64,
        started_at: Option<DateTime<Utc>>,
    ) -> Receipt {
        let (output, output_truncated) = bound_output(output);
        Receipt {
            schema: Default::default(),
            version: SchemaVersion,
            tenant: self.command.tenant.clone(),
            run_id: self.command.run_id.clone(),
            command_id: self.command.command_id.clone(),
            seq: self.command.seq,
            idempotency_key: self.command.idempotency_key.clone(),
            status,
            failure,
            output,
            output_chunks: None,
            output_truncated,
            events,
            attempt: self.delivery.attempt,
            worker_id: self.shared.worker_id.clone(),
            fencing_token,
            started_at,
            finished_at: Utc::now(),
            traceparent: self.traceparent.clone(),
            budget_remaining: BTreeMap::new(),
        }
    }

    pub(super) async fn log(&self, outcome: &str) {
        let outcome = self.shared.redactor.redact(outcome);
        let _ = self
            .shared
            .journal
            .log_delivery(
                &self.delivery.stored(),
                attempt_i64(self.delivery),
                &self.shared.worker_id,
                &outcome,
            )
            .await;
    }
}
