//! # runfleet-worker — the worker fleet
//!
//! Workers pull runs and commands from JetStream and journal every outcome
//! in PostgreSQL. This crate is the library behind the `runfleet-worker`
//! binary, which stays thin: it parses flags, sets up tracing and calls in
//! here.
//!
//! - [`preflight`]: checks that the NATS server is new enough and has
//!   JetStream, and that PostgreSQL answers, before anything else runs.
#![forbid(unsafe_code)]

pub mod preflight;
