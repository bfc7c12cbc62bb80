//! Idempotent provisioning: streams, the work consumer, and the PostgreSQL
//! migrations. Safe to run from many workers at once: JetStream stream and
//! consumer creation converge (create-or-update), and migrations run under a
//! PostgreSQL advisory lock.
//!
//! | stream | subjects | retention | why |
//! |---|---|---|---|
//! | `RUNFLEET_WORK` | `runfleet.run.>`, `runfleet.cmd.>` | work queue | one consumer per priority level, acked messages leave; PostgreSQL holds the history |
//! | `RUNFLEET_CONTROL` | `runfleet.ctl.>` | limits, 1 day | every worker sees every cancel |
//! | `RUNFLEET_RECEIPTS` | `runfleet.receipt.>` | limits, 7 days | producers wait on receipts, late or early |
//! | `RUNFLEET_EVENTS` | `runfleet.evt.>` | limits, 1 day | live followers; the full log is in PostgreSQL |
//! | `RUNFLEET_DLQ` | `runfleet.dlq.>` | limits, 30 days | operators inspect and re-drive |
//! | `RUNFLEET_TIMERS` | `runfleet.timer.>`, `runfleet.due.>`, `runfleet.sched.>`, `runfleet.fire.>` | work queue, message schedules | delayed commands' wake-ups ([`crate::timers`]) and recurring schedules' firings ([`crate::recurring`]) |

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use runfleet_schemas::{MessageKind, Priority, subjects};

use crate::config::StreamSettings;
use crate::db::{DbError, Pool};

/// The durable pull consumer the whole fleet shares on the work stream
/// for `normal` work (see [`work_consumer_name`] for the other levels).
pub const WORK_CONSUMER: &str = "runfleet-workers";

/// The work consumer of a priority level: `runfleet-workers` for
/// `normal`, `runfleet-workers-high` and `runfleet-workers-low`.
pub fn work_consumer_name(priority: Priority) -> String {
    match priority.token() {
        Some(token) => format!("{WORK_CONSUMER}-{token}"),
        None => WORK_CONSUMER.to_owned(),
    }
}

/// The fleet's work consumers, one per priority level, highest first.
pub type WorkConsumers = Vec<(Priority, consumer::Consumer<consumer::pull::Config>)>;

/// The durable pull consumer the whole fleet shares on the control stream.
pub const CONTROL_CONSUMER: &str = "runfleet-control";

/// Key of the advisory lock that serializes migrations across workers.
const MIGRATION_LOCK: i64 = 0x7275_6e66_6c65_6574; // "runfleet"

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The schema version this build expects (its newest migration).
pub fn expected_migration_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// The schema version the database is at (0 before the first migration).
///
/// # Errors
/// [`DbError`] when the database cannot be read.
pub async fn applied_migration_version(pool: &Pool) -> Result<i64, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_one(
            "SELECT coalesce(max(version), 0)::bigint FROM schema_migrations",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A stream could not be created or updated.
    #[error("cannot create or update stream {stream}: {detail}")]
    Stream {
        /// The stream.
        stream: String,
        /// JetStream's reason.
        detail: String,
    },
    /// The work consumer could not be created or updated.
    #[error("cannot create or update a consumer on {stream}: {detail}")]
    Consumer {
        /// The stream.
        stream: &'static str,
        /// JetStream's reason.
        detail: String,
    },
    /// PostgreSQL failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A migration failed.
    #[error("PostgreSQL migration failed: {0}")]
    Migration(#[from] refinery::Error),
}

/// The stream configurations, derived from the settings.
pub fn stream_configs(settings: &StreamSettings) -> Vec<stream::Config> {
    let day = Duration::from_secs(24 * 3600);
    let base = |name: &str, kinds: &[MessageKind]| stream::Config {
        name: name.into(),
        subjects: kinds.iter().map(|k| subjects::wildcard(*k)).collect(),
        num_replicas: settings.replicas,
        storage: stream::StorageType::File,
        duplicate_window: settings.dedupe_window,
        ..Default::default()
    };
    vec![
        stream::Config {
            retention: stream::RetentionPolicy::WorkQueue,
            description: Some("runfleet runs and commands: the fleet's work".into()),
            ..base(
                subjects::WORK_STREAM,
                &[MessageKind::RunCreate, MessageKind::CommandCreate],
            )
        },
        stream::Config {
            max_age: day,
            description: Some("runfleet cancellations".into()),
            ..base(subjects::CONTROL_STREAM, &[MessageKind::ControlCancel])
        },
        stream::Config {
            max_age: settings.receipt_retention,
            description: Some("runfleet receipts: one per command".into()),
            ..base(subjects::RECEIPT_STREAM, &[MessageKind::Receipt])
        },
        stream::Config {
            max_age: settings.event_retention,
            description: Some("runfleet run events (bounded copy; PostgreSQL keeps all)".into()),
            ..base(subjects::EVENT_STREAM, &[MessageKind::Event])
        },
        stream::Config {
            max_age: 30 * day,
            description: Some("runfleet dead letters".into()),
            ..base(subjects::DEAD_LETTER_STREAM, &[MessageKind::DeadLetter])
        },
        stream::Config {
            name: subjects::TIMER_STREAM.into(),
            subjects: [
                subjects::TIMER_FAMILY,
                subjects::DUE_FAMILY,
                subjects::SCHEDULE_FAMILY,
                subjects::FIRE_FAMILY,
            ]
            .iter()
            .map(|family| format!("{}.{family}.>", subjects::PREFIX))
            .collect(),
            retention: stream::RetentionPolicy::WorkQueue,
            allow_message_schedules: true,
            description: Some(
                "runfleet timers: delayed commands' wake-ups, recurring schedules".into(),
            ),
            ..base(subjects::TIMER_STREAM, &[])
        },
    ]
}

/// The configuration of the work consumer of one priority level.
pub fn work_consumer_config(
    settings: &StreamSettings,
    priority: Priority,
) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(work_consumer_name(priority)),
        description: Some(format!(
            "the runfleet worker fleet: {priority} priority work"
        )),
        filter_subjects: subjects::work_filters(priority),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: settings.ack_wait,
        max_deliver: settings.max_deliver,
        max_ack_pending: settings.max_ack_pending,
        deliver_policy: consumer::DeliverPolicy::All,
        ..Default::default()
    }
}

/// Creates or updates every stream and the work consumer.
///
/// # Errors
/// [`SetupError::Stream`] or [`SetupError::Consumer`].
pub async fn ensure_streams(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<WorkConsumers, SetupError> {
    for config in stream_configs(settings) {
        let name = config.name.clone();
        js.create_or_update_stream(config)
            .await
            .map_err(|err| SetupError::Stream {
                stream: name,
                detail: err.to_string(),
            })?;
    }
    // Create-or-update: a changed ack_wait or max_deliver takes effect on
    // the next start. `normal` first: before priorities, its consumer took
    // the whole stream, and a work-queue stream refuses overlapping
    // consumers until it is narrowed to its own level's subjects.
    let mut consumers = Vec::new();
    for priority in [Priority::Normal, Priority::High, Priority::Low] {
        let consumer = js
            .create_consumer_on_stream(
                work_consumer_config(settings, priority),
                subjects::WORK_STREAM,
            )
            .await
            .map_err(|err| SetupError::Consumer {
                stream: subjects::WORK_STREAM,
                detail: err.to_string(),
            })?;
        consumers.push((priority, consumer));
    }
    consumers.sort_by_key(|(priority, _)| *priority);
    Ok(consumers)
}

/// The control consumer's configuration: cancel requests, one worker each.
pub fn control_consumer_config(settings: &StreamSettings) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(CONTROL_CONSUMER.into()),
        description: Some("runfleet cancel requests".into()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: settings.ack_wait,
        max_deliver: settings.max_deliver,
        deliver_policy: consumer::DeliverPolicy::All,
        ..Default::default()
    }
}

/// The wake consumer's configuration: timers firing, one worker each.
pub fn wake_consumer_config() -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(crate::timers::WAKE_CONSUMER.into()),
        description: Some("runfleet delayed commands waking".into()),
        filter_subjects: [subjects::DUE_FAMILY, subjects::FIRE_FAMILY]
            .iter()
            .map(|family| format!("{}.{family}.>", subjects::PREFIX))
            .collect(),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: crate::timers::WAKE_ACK_WAIT,
        deliver_policy: consumer::DeliverPolicy::All,
        ..Default::default()
    }
}

/// Creates or updates the wake consumer.
///
/// # Errors
/// [`SetupError::Consumer`].
pub async fn ensure_wake_consumer(
    js: &jetstream::Context,
) -> Result<consumer::Consumer<consumer::pull::Config>, SetupError> {
    js.create_consumer_on_stream(wake_consumer_config(), subjects::TIMER_STREAM)
        .await
        .map_err(|err| SetupError::Consumer {
            stream: subjects::TIMER_STREAM,
            detail: err.to_string(),
        })
}

/// Creates or updates the control consumer.
///
/// # Errors
/// [`SetupError::Consumer`].
pub async fn ensure_control_consumer(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<consumer::Consumer<consumer::pull::Config>, SetupError> {
    js.create_consumer_on_stream(control_consumer_config(settings), subjects::CONTROL_STREAM)
        .await
        .map_err(|err| SetupError::Consumer {
            stream: subjects::CONTROL_STREAM,
            detail: err.to_string(),
        })
}

/// Runs the pending migrations under an advisory lock; returns how many were applied.
///
/// # Errors
/// [`SetupError::Db`] or [`SetupError::Migration`].
pub async fn migrate(pool: &Pool) -> Result<usize, SetupError> {
    let mut conn = pool.dedicated().await?;
    conn.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(DbError::from)?;
    let result = embedded::migrations::runner()
        .set_migration_table_name("schema_migrations")
        .run_async(&mut conn)
        .await;
    conn.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(DbError::from)?;
    Ok(result?.applied_migrations().len())
}
