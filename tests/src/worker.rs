//! Real `runfleet-worker run` processes for end-to-end tests.
//!
//! [`TestWorker::start`] runs the worker binary against a [`crate::TestNats`]
//! and a [`crate::TestDb`] with test-sized settings (short leases), its log
//! in a temp file. It can be killed with SIGKILL, stopped and continued with
//! SIGSTOP/SIGCONT, or asked to shut down with SIGTERM, like a real one.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::NamedTempFile;

use crate::{FixtureError, binary};

/// One worker process.
#[derive(Debug)]
pub struct TestWorker {
    /// The process; `None` once reaped.
    child: Option<Child>,
    /// Its worker id.
    id: String,
    /// Where its stderr goes.
    log: NamedTempFile,
}

/// Settings for a worker: environment variables on top of the test defaults.
#[derive(Debug, Clone, Default)]
pub struct WorkerEnv {
    /// `(name, value)` pairs, applied last.
    pub vars: Vec<(String, String)>,
}

impl WorkerEnv {
    /// The connection settings plus short, test-sized leases.
    pub fn new(nats_url: &str, database_url: &str) -> WorkerEnv {
        let vars = [
            ("NATS_URL", nats_url),
            ("DATABASE_URL", database_url),
            ("RUNFLEET_ACK_WAIT", "2s"),
            ("RUNFLEET_MAX_DELIVER", "20"),
            ("RUNFLEET_RUN_WAIT", "5s"),
            ("RUNFLEET_ORDER_WAIT", "10s"),
            ("RUNFLEET_SHUTDOWN_GRACE", "5s"),
            ("RUNFLEET_CONCURRENCY", "32"),
            ("RUNFLEET_PG_POOL", "8"),
            (
                "RUST_LOG",
                "info,async_nats=warn,refinery_core=warn,tokio_postgres=warn",
            ),
        ];
        WorkerEnv {
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// The connection settings and nothing else: every other setting is the
    /// product's default (what crash and ordering tests must hold under).
    pub fn at_defaults(nats_url: &str, database_url: &str) -> WorkerEnv {
        let keep = ["NATS_URL", "DATABASE_URL", "RUST_LOG"];
        let mut env = WorkerEnv::new(nats_url, database_url);
        env.vars.retain(|(k, _)| keep.contains(&k.as_str()));
        env
    }

    /// Sets (or overrides) one variable.
    #[must_use]
    pub fn with(mut self, name: &str, value: impl Into<String>) -> WorkerEnv {
        self.vars.retain(|(k, _)| k != name);
        self.vars.push((name.to_owned(), value.into()));
        self
    }
}

/// Creates the streams, consumers and schema (`runfleet-worker setup`)
/// with `env`, so work can be queued before any worker runs.
///
/// # Errors
/// [`FixtureError`] when the binary cannot be had, started, or fails.
pub fn setup(env: &WorkerEnv) -> Result<(), FixtureError> {
    let program = binary("runfleet-worker")?;
    let status = Command::new(&program)
        .arg("setup")
        .envs(env.vars.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .status()
        .map_err(|source| FixtureError::Spawn {
            program: program.clone(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(FixtureError::Command {
            what: "runfleet-worker setup".into(),
            detail: status.to_string(),
        })
    }
}

impl TestWorker {
    /// Starts `runfleet-worker run` with `env` and the given worker id.
    ///
    /// # Errors
    /// [`FixtureError`] when the binary cannot be built or started.
    pub fn start(env: &WorkerEnv, id: &str) -> Result<TestWorker, FixtureError> {
        let program = binary("runfleet-worker")?;
        let log = NamedTempFile::new().map_err(FixtureError::io("creating a worker log"))?;
        let stderr = log
            .reopen()
            .map_err(FixtureError::io("opening the worker log"))?;
        let child = Command::new(&program)
            .arg("run")
            .envs(env.vars.iter().map(|(k, v)| (k, v)))
            .env("RUNFLEET_WORKER_ID", id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|source| FixtureError::Spawn { program, source })?;
        Ok(TestWorker {
            child: Some(child),
            id: id.to_owned(),
            log,
        })
    }

    /// Waits until the worker logs that it started (streams and migrations are ready).
    ///
    /// # Errors
    /// [`FixtureError::NotReady`] with the log when it does not within `timeout`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), FixtureError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_text().contains("worker started") {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                return Err(FixtureError::NotReady {
                    what: format!("worker {}", self.id),
                    seconds: timeout.as_secs(),
                    detail: format!("exit: {exited:?}; log:\n{}", self.log_text()),
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The worker id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Everything the worker logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The log file's path.
    pub fn log_path(&self) -> PathBuf {
        self.log.path().to_path_buf()
    }

    /// Sends a signal by name (`KILL`, `TERM`, `STOP`, `CONT`) with `kill(1)`.
    pub fn signal(&self, name: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{name}"))
                .arg(child.id().to_string())
                .status();
        }
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to exit (after SIGTERM, say), up to `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        None
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A stopped process cannot die until it is continued.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
        }
        self.kill();
    }
}
