//! # runfleet-worker — the worker fleet
//!
//! Workers pull runs and commands from JetStream and journal every outcome
//! in PostgreSQL. This crate is the library behind the `runfleet-worker`
//! binary, which stays thin: it parses flags, sets up tracing and calls in
//! here.
//!
//! - [`worker`]: connect, provision, register, run the task tree; `pulling`:
//!   the pull loops, bounded concurrency, drained shutdown.
//! - `handler`: one delivered message from validation to its ack.
//! - [`journal`]: the write-once journal and the fenced run claims; its
//!   hot path runs concurrent calls in batches, one statement each.
//! - [`setup`]: streams, the work consumer and migrations (idempotent).
//! - [`backend`]: what executes a command (`echo`, `process`), chosen by
//!   the run's profile ([`profiles`]); [`workspace`] prepares run directories.
//! - [`cancels`]: stopping running commands when they are cancelled.
//! - [`redact`]: scrubbing credentials from everything stored, published or logged.
//! - [`preflight`]: refuses unsupported NATS servers, checks PostgreSQL.
#![forbid(unsafe_code)]

pub mod backend;
pub mod cancels;
pub mod config;
pub mod db;
pub mod fairness;
pub mod fuzzing;
mod handler;
pub mod http;
pub mod journal;
pub mod key_gauges;
pub mod launcher;
pub mod limits;
pub mod metrics;
pub mod preflight;
pub mod profiles;
pub mod publisher;
mod pulling;
pub mod pure_runs;
pub mod readiness;
mod recurring;
pub mod redact;
pub mod resume;
pub mod retry;
pub mod run_log;
pub mod service;
pub mod setup;
pub mod subscribe;
pub mod tasks;
pub mod telemetry;
pub mod text;
pub mod timers;
pub mod waiters;
pub mod worker;
pub mod workspace;
