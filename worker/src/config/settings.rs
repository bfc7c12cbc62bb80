//! Every setting of the worker, each declared once (see [`super::declare`]):
//! its key and type, its default, its flag and environment variable, a help
//! line for `--help` and its meaning for the README's settings table.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use runfleet_nats::NatsAuth;
use serde::{Deserialize, Serialize};

use super::declare::{is_hidden, optional, settings};
use super::{Failpoint, human, nonzero};
use crate::profiles::Profile;

settings! {
    flags {
        nats_url: String = "nats://127.0.0.1:4222".into(),
            flag String, env "NATS_URL", clap(hide_env_values = true);
            help "The NATS server(s), comma-separated";
            meaning "the NATS server(s), comma-separated; credentials in the URL or the `NATS_*` variables above";
        database_url: String = "postgres://runfleet@127.0.0.1:54329/runfleet".into(),
            flag String, env "DATABASE_URL", clap(hide_env_values = true);
            help "The PostgreSQL database";
            meaning "the PostgreSQL database of the journal (TLS with `sslmode=require`)";
        replicas: usize = 1,
            flag usize, env "RUNFLEET_REPLICAS";
            help "Stream replicas";
            meaning "stream replicas (1 to 5; 3 on a cluster)";
        #[serde(with = "human")]
        ack_wait: Duration = Duration::from_secs(10),
            flag String, env "RUNFLEET_ACK_WAIT";
            help "The lease";
            meaning "the lease: how long a delivered message may go without an ack or an in-progress ack before JetStream redelivers it; heartbeats every third of it; also how soon the work of a crashed worker resumes";
        max_deliver: i64 = 100,
            flag i64, env "RUNFLEET_MAX_DELIVER";
            help "Deliveries before a message is dead-lettered, a backstop";
            meaning "deliveries before a message is dead-lettered: a far backstop (a worker's crash costs every message it held a delivery, though only the executing ones failed)";
        max_attempts: i64 = 10,
            flag i64, env "RUNFLEET_MAX_ATTEMPTS";
            help "Executions of a command before it fails `max-deliveries`";
            meaning "a command's own retry budget: executions (claims, counted in PostgreSQL) before it ends `failed` with `max-deliveries`; a command waiting for its turn gives up after `max_attempts × order_wait` since it was published";
        max_ack_pending: i64 = 4096,
            flag i64, env "RUNFLEET_MAX_ACK_PENDING";
            help "Unacknowledged messages fleet-wide";
            meaning "unacked messages fleet-wide (size it to the fleet's concurrency)";
        #[serde(with = "human")]
        dedupe_window: Duration = Duration::from_secs(600),
            flag String, env "RUNFLEET_DEDUPE_WINDOW";
            help "JetStream's deduplication window";
            meaning "JetStream's `Nats-Msg-Id` window (PostgreSQL keeps the promise after it)";
        #[serde(with = "human")]
        receipt_retention: Duration = Duration::from_secs(7 * 86_400),
            flag String, env "RUNFLEET_RECEIPT_RETENTION";
            help "How long receipts stay in their stream";
            meaning "how long the receipts stream keeps messages";
        #[serde(with = "human")]
        event_retention: Duration = Duration::from_secs(86_400),
            flag String, env "RUNFLEET_EVENT_RETENTION";
            help "How long events stay in their stream";
            meaning "how long the events stream keeps messages";
        worker_id: Option<String> = None,
            flag String, env "RUNFLEET_WORKER_ID", shown "`w-<uuidv7>` (a fresh one at each start)";
            help "This worker's identity";
            meaning "the worker's identity";
        #[serde(deserialize_with = "nonzero::deserialize")]
        concurrency: NonZeroUsize = const { NonZeroUsize::new(512).unwrap() },
            flag usize, env "RUNFLEET_CONCURRENCY";
            help "Messages handled at once";
            meaning "messages one worker handles at once (and pulls); also bounds how many programs a `process` profile runs at once";
        #[serde(deserialize_with = "nonzero::deserialize")]
        pg_pool_size: NonZeroU32 = const { NonZeroU32::new(8).unwrap() },
            flag u32, env "RUNFLEET_PG_POOL";
            help "PostgreSQL connections";
            meaning "PostgreSQL connections per worker";
        #[serde(deserialize_with = "nonzero::deserialize")]
        group_commits: NonZeroUsize = const { NonZeroUsize::new(2).unwrap() },
            flag usize, env "RUNFLEET_GROUP_COMMITS";
            help "Journal batches in flight, each on its own connection";
            meaning "journal batches in flight per worker, each on a PostgreSQL connection of its own (outside the pool)";
        #[serde(with = "human")]
        run_wait: Duration = Duration::from_secs(30),
            flag String, env "RUNFLEET_RUN_WAIT";
            help "How long a command waits for its run";
            meaning "how long a command waits for its run before `run-not-found` (the first 2 s holding its delivery, woken when the run is created, so a command published just before its run still completes on attempt 1; then handed back with growing delays)";
        #[serde(with = "human")]
        order_wait: Duration = Duration::from_secs(60),
            flag String, env "RUNFLEET_ORDER_WAIT";
            help "How long a command holds its message waiting for its turn";
            meaning "how long a command holds its message waiting for its turn";
        #[serde(with = "human")]
        shutdown_grace: Duration = Duration::from_secs(30),
            flag String, env "RUNFLEET_SHUTDOWN_GRACE";
            help "Time in-flight commands get on SIGTERM";
            meaning "time in-flight commands get on SIGTERM before they are NAKed for redelivery";
        workdir_root: PathBuf = std::env::temp_dir().join("runfleet").join("runs"),
            flag PathBuf, env "RUNFLEET_WORKDIR_ROOT", shown "`$TMPDIR/runfleet/runs` (`$TMPDIR` the system's temporary directory)";
            help "Where runs' working directories are created";
            meaning "where runs' working directories are created";
        #[serde(with = "human")]
        schedule_to_start: Duration = Duration::from_secs(300),
            flag String, env "RUNFLEET_SCHEDULE_TO_START";
            help "Wait before `no-backend`";
            meaning "how long a command whose profile no worker serves waits before `no-backend`: the default of its own `schedule_to_start_ms` for that case";
        #[serde(deserialize_with = "nonzero::deserialize")]
        max_missed_heartbeats: NonZeroU32 = const { NonZeroU32::new(3).unwrap() },
            flag u32, env "RUNFLEET_MAX_MISSED_HEARTBEATS";
            help "Failed renewals in a row before `heartbeat-lost`";
            meaning "lease renewals failing in a row before `heartbeat-lost`";
        #[serde(with = "human")]
        git_timeout: Duration = Duration::from_secs(300),
            flag String, env "RUNFLEET_GIT_TIMEOUT";
            help "Bound on each git invocation";
            meaning "bound on each git invocation when materializing a bundle";
        #[serde(skip_serializing_if = "Option::is_none")]
        max_payload: Option<usize> = None,
            flag usize, env "RUNFLEET_MAX_PAYLOAD", shown "the server's `max_payload`";
            help "Largest accepted message in bytes";
            meaning "largest message accepted (at least 1024 bytes); larger ones are dead-lettered `payload-too-large`. Unset, it is the NATS server's own `max_payload` (1 MiB by default), so no stored message is larger and `payload-too-large` happens only when a fleet sets a lower limit than its server; producers refuse messages over the server's `max_payload` before sending";
        http_addr: Option<SocketAddr> = None,
            flag String, env "RUNFLEET_HTTP_ADDR", shown "off";
            help "Health and metrics listener address, e.g. 127.0.0.1:9464";
            meaning "the health and metrics listener (`/healthz`, `/readyz`, `/metrics`), e.g. `0.0.0.0:9464`";
        log_json: bool = false,
            flag bool, env "RUNFLEET_LOG_JSON", clap(
                num_args = 0..=1,
                default_missing_value = "true",
                value_parser = clap::builder::BoolishValueParser::new()
            );
            help "Log as JSON lines (`--log-json`, or `RUNFLEET_LOG_JSON=1|true`)";
            meaning "JSON log lines; `RUST_LOG` filters";
        require_signed_control: bool = false,
            flag bool, env "RUNFLEET_REQUIRE_SIGNED_CONTROL", clap(
                num_args = 0..=1,
                default_missing_value = "true",
                value_parser = clap::builder::BoolishValueParser::new()
            );
            help "Accept only signed cancels (`--require-signed-control`, or `RUNFLEET_REQUIRE_SIGNED_CONTROL=1|true`)";
            meaning "accept a `control.cancel` only when it carries a fresh, unreplayed Ed25519 (NKey) signature of a key registered for its tenant (`signer.add`); others are dead-lettered `signature-invalid` (schemas/README.md, \"Signed cancels\"). Off, signatures are neither needed nor checked";
        echo_effects_file: Option<PathBuf> = None,
            flag PathBuf, env "RUNFLEET_ECHO_EFFECTS_FILE";
            help "Append one line per `echo` execution to this file (tests)";
            meaning "`echo` appends a line per execution (side-effect counting in tests): `<tenant> <run_id> <seq> <command_id> <attempt> <worker_id>`, space-separated, one `O_APPEND` write each";
        failpoint: Option<Failpoint> = None,
            flag Failpoint, env "RUNFLEET_FAILPOINT", hidden = true;
            help "Crash-test hook: `exit-after-commit`";
            meaning "crash tests only: `exit-after-commit` aborts the process right after a receipt is committed, before it is published and acked";
    }
    more {
        /// NATS authentication and TLS (the `[nats]` table and the `NATS_*` variables).
        nats: NatsAuth = NatsAuth::default();
        /// The backend profiles this worker serves (without any: `echo`).
        profiles: BTreeMap<String, Profile> = BTreeMap::new();
    }
}
