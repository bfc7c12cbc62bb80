//! The command line's shape for scheduling, flow control and control
//! keys: recurring schedules (`runfleet schedule …`), concurrency limits
//! (`runfleet limit …`), the signers of cancels (`runfleet signer …`), and
//! `--priority`, which they share with the rest.

use clap::{Args, Subcommand};
use runfleet_schemas::Priority;

#[derive(Debug, Subcommand)]
pub(crate) enum LimitCommand {
    /// Set (or replace) the limit of a key or pattern: `tenant:acme`,
    /// `tenant:*` (each tenant), `tenant:acme:*` (each of acme's keys).
    Set {
        /// The key or pattern.
        pattern: String,
        /// At most this many runs of each matching key executing at once.
        #[arg(long)]
        max_running: Option<u32>,
        /// At most this many command starts of each matching key: `50/s`,
        /// `600/m`, `100/h`.
        #[arg(long, value_parser = parse_rate)]
        rate: Option<f64>,
    },
    /// List the limits.
    List,
    /// Remove the limit of a key or pattern (its waiting commands start).
    Delete {
        /// The key or pattern, as set.
        pattern: String,
    },
}

/// `runfleet signer …`: the keys that may sign a tenant's cancels.
#[derive(Debug, Subcommand)]
pub(crate) enum SignerCommand {
    /// Make a new key pair: prints its seed (secret) and public key.
    Generate,
    /// Register a public key (`U…`) to sign a tenant's cancels.
    Add {
        /// The tenant.
        tenant: String,
        /// The public NKey.
        public_key: String,
        /// Who or what holds it.
        #[arg(long)]
        note: Option<String>,
    },
    /// List the registered keys.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Remove a key: its signatures are refused from the next cancel on.
    Remove {
        /// The tenant.
        tenant: String,
        /// The public NKey.
        public_key: String,
    },
}

/// `--rate`: `<count>/s`, `/m` or `/h`, as starts per second.
fn parse_rate(text: &str) -> Result<f64, String> {
    let (count, per) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?}: expected <count>/s, /m or /h (e.g. 50/s)"))?;
    let count: f64 = count
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: {count:?} is not a number"))?;
    let seconds = match per.trim() {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("{text:?}: the unit {other:?} is not s, m or h")),
    };
    if !(count.is_finite() && count > 0.0) {
        return Err(format!("{text:?}: the count must be above 0"));
    }
    Ok(count / seconds)
}

#[derive(Debug, Subcommand)]
pub(crate) enum ScheduleCommand {
    /// Create a schedule: a new run (with one command) at each occurrence.
    Create(ScheduleCreateArgs),
    /// List schedules.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Stop a schedule firing (it is kept).
    Pause(ScheduleTarget),
    /// Let a paused schedule fire again.
    Resume(ScheduleTarget),
    /// Stop a schedule and forget it (its runs stay).
    Delete(ScheduleTarget),
}

/// The schedule a subcommand is about.
#[derive(Debug, Args)]
pub(crate) struct ScheduleTarget {
    /// The tenant owning the schedule.
    #[arg(long, env = "RUNFLEET_TENANT")]
    pub(crate) tenant: String,
    /// The schedule.
    pub(crate) schedule: String,
}

#[derive(Debug, Args)]
pub(crate) struct ScheduleCreateArgs {
    /// The tenant owning the schedule and its runs.
    #[arg(long, env = "RUNFLEET_TENANT")]
    pub(crate) tenant: String,
    /// The schedule's id (runs are `<id>-<occurrence, Unix seconds>`).
    #[arg(long = "id")]
    pub(crate) schedule_id: String,
    /// A 6-field cron expression, UTC: `sec min hour day month weekday`.
    #[arg(long, conflicts_with = "every", required_unless_present = "every")]
    pub(crate) cron: Option<String>,
    /// A fixed interval (`30s`, `5m`, `1h`; whole seconds).
    #[arg(long)]
    pub(crate) every: Option<String>,
    /// The runs' project.
    #[arg(long)]
    pub(crate) project: String,
    /// The runs' backend profile.
    #[arg(long, default_value = "echo")]
    pub(crate) profile: String,
    /// Each run's command payload as JSON; `@FILE` reads a file.
    #[arg(long, default_value = "{}")]
    pub(crate) payload: String,
    /// `high`, `normal` or `low`.
    #[arg(long, default_value = "normal", value_parser = parse_priority)]
    pub(crate) priority: Priority,
    /// Occurrences taken more than a minute late: `skip` them, or run `once` for them all.
    #[arg(long, default_value = "skip")]
    pub(crate) catch_up: String,
}

/// `--priority`: `high`, `normal` or `low`.
pub(crate) fn parse_priority(text: &str) -> Result<Priority, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| format!("{text:?}: expected high, normal or low"))
}
