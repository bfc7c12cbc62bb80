//! One scenario's servers and workers: a 3-node nats-server cluster
//! (`sync_interval: always`, R3 streams), PostgreSQL on a server of its own
//! (so it can be restarted), and workers at the product's defaults.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream;
use runfleet_producer::Producer;
use runfleet_tests::{TestCluster, TestDb, TestWorker, WorkerEnv};

/// The servers, the workers and their effects file.
pub struct Stack {
    /// The cluster.
    pub cluster: TestCluster,
    /// The database (its own server).
    pub db: TestDb,
    /// Worker settings: URLs, R3, the effects file; defaults otherwise.
    pub env: WorkerEnv,
    /// The workers (a killed one is replaced in its slot).
    pub workers: Vec<TestWorker>,
    /// Where echo appends one line per execution.
    pub effects: tempfile::NamedTempFile,
    /// How many workers were started in all (for unique ids).
    started: usize,
}

impl Stack {
    /// Starts everything and `workers` workers, waiting until they serve.
    pub async fn start(workers: usize) -> anyhow::Result<Stack> {
        let cluster = TestCluster::start_synced().await?;
        let db = TestDb::create_on_own_server().await?;
        let effects = tempfile::NamedTempFile::new()?;
        let env = WorkerEnv::at_defaults(&cluster.urls().join(","), db.url())
            .with("RUNFLEET_REPLICAS", "3")
            .with(
                "RUNFLEET_ECHO_EFFECTS_FILE",
                effects.path().display().to_string(),
            )
            .with("RUST_LOG", "warn,runfleet_worker::worker=info");
        let mut stack = Stack {
            cluster,
            db,
            env,
            workers: Vec::new(),
            effects,
            started: 0,
        };
        for _ in 0..workers {
            let worker = stack.new_worker()?;
            stack.workers.push(worker);
            // The first one provisions the streams and the schema.
            if let Some(first) = stack.workers.last_mut() {
                first.wait_ready(Duration::from_secs(120)).await?;
            }
        }
        Ok(stack)
    }

    /// A new worker process (not yet ready).
    pub fn new_worker(&mut self) -> anyhow::Result<TestWorker> {
        self.started += 1;
        Ok(TestWorker::start(&self.env, &format!("w{}", self.started))?)
    }

    /// SIGKILLs the worker in slot `i` and starts a new one there.
    pub fn kill_and_replace(&mut self, i: usize) -> anyhow::Result<()> {
        self.workers[i].kill();
        self.workers[i] = self.new_worker()?;
        Ok(())
    }

    /// A producer connected to every node.
    pub async fn producer(&self) -> anyhow::Result<Producer> {
        Ok(Producer::connect(&self.cluster.urls().join(",")).await?)
    }

    /// JetStream on a client of the cluster.
    pub async fn jetstream(&self) -> anyhow::Result<jetstream::Context> {
        Ok(jetstream::new(self.cluster.client().await?))
    }

    /// Receipts committed in PostgreSQL (0 while it restarts).
    pub async fn receipt_count(&self) -> i64 {
        let Ok((pg, _driver)) = self.db.connect().await else {
            return 0;
        };
        pg.query_one("SELECT count(*) FROM journal WHERE step = 'receipt'", &[])
            .await
            .map_or(0, |row| row.get(0))
    }

    /// The effects file's path.
    pub fn effects_path(&self) -> PathBuf {
        self.effects.path().to_path_buf()
    }
}
