//! Real `nats-server` processes for tests.
//!
//! [`TestNats`] runs the pinned server with JetStream on a free loopback port
//! (`--port -1`, read back from `--ports_file_dir`), its store in a temp dir
//! that is deleted on drop, after the process is killed. [`TestCluster`] runs
//! three of them routed into one JetStream cluster.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::FixtureError;
use crate::paths::nats_server_binary;

/// How long a server may take to write its ports file.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a cluster may take to elect a JetStream meta leader and accept R3 streams.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One real JetStream-enabled nats-server on loopback.
#[derive(Debug)]
pub struct TestNats {
    /// The running process; `None` after [`TestNats::kill`].
    child: Option<Child>,
    /// Holds the store, the log and the ports file; removed on drop.
    dir: TempDir,
    /// The arguments the server was started with (the port fixed after the first start).
    args: Vec<String>,
    /// The client URL, `nats://127.0.0.1:<port>`.
    url: String,
    /// The cluster route URL, when the server is part of a cluster.
    route_url: Option<String>,
}

impl TestNats {
    /// Starts a standalone JetStream server.
    ///
    /// # Errors
    /// [`FixtureError`] when the binary cannot be had or the server does not start.
    pub async fn start() -> Result<TestNats, FixtureError> {
        Self::start_with(Vec::new()).await
    }

    /// Starts a server with extra command-line arguments.
    async fn start_with(extra: Vec<String>) -> Result<TestNats, FixtureError> {
        let dir = tempfile::Builder::new()
            .prefix("runfleet-nats-")
            .tempdir()
            .map_err(FixtureError::io("creating the nats-server temp dir"))?;
        let store = dir.path().join("store");
        let mut args: Vec<String> = vec![
            "--jetstream".into(),
            "--addr".into(),
            "127.0.0.1".into(),
            "--store_dir".into(),
            store.display().to_string(),
            "--log".into(),
            dir.path().join("nats-server.log").display().to_string(),
        ];
        args.extend(extra);
        let mut server = TestNats {
            child: None,
            dir,
            args,
            url: String::new(),
            route_url: None,
        };
        server.spawn("-1").await?;
        Ok(server)
    }

    /// Starts the process on `port` and waits until it has written its ports file.
    async fn spawn(&mut self, port: &str) -> Result<(), FixtureError> {
        let ports_dir = self.dir.path().join("ports");
        // A stale ports file from a previous process must not be read as this one's.
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir).map_err(FixtureError::io("creating the ports dir"))?;
        let program = nats_server_binary()?;
        let child = Command::new(&program)
            .args(&self.args)
            .args(["--port", port, "--ports_file_dir"])
            .arg(&ports_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| FixtureError::Spawn {
                program: program.clone(),
                source,
            })?;
        self.child = Some(child);
        let ports = self.wait_for_ports(&ports_dir).await?;
        self.url = first_url(&ports, "nats").ok_or_else(|| self.not_ready("no client URL"))?;
        self.route_url = first_url(&ports, "cluster");
        Ok(())
    }

    async fn wait_for_ports(&mut self, dir: &Path) -> Result<serde_json::Value, FixtureError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(file) = std::fs::read_dir(dir).ok().and_then(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .find(|path| is_ports_file(path))
            }) && let Ok(text) = std::fs::read_to_string(&file)
                && let Ok(ports) = serde_json::from_str(&text)
            {
                return Ok(ports);
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(self.not_ready(&format!("nats-server exited with {status}")));
            }
            if Instant::now() > deadline {
                return Err(self.not_ready("no ports file"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn not_ready(&self, why: &str) -> FixtureError {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        FixtureError::NotReady {
            what: "nats-server".into(),
            seconds: START_TIMEOUT.as_secs(),
            detail: format!(
                "{why}; log tail:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ),
        }
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// A connected client.
    ///
    /// # Errors
    /// [`FixtureError::NatsConnect`] when the server does not answer.
    pub async fn client(&self) -> Result<async_nats::Client, FixtureError> {
        async_nats::connect(&self.url)
            .await
            .map_err(|source| FixtureError::NatsConnect {
                url: self.url.clone(),
                source,
            })
    }

    /// Kills the server with SIGKILL (the store stays, for [`TestNats::restart`]).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs and starts it again on the same port and store.
    ///
    /// # Errors
    /// As [`TestNats::start`].
    pub async fn restart(&mut self) -> Result<(), FixtureError> {
        self.kill();
        let port = self.url.rsplit(':').next().unwrap_or("-1").to_owned();
        self.spawn(&port).await
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        self.kill();
    }
}

fn is_ports_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "ports")
}

fn first_url(ports: &serde_json::Value, key: &str) -> Option<String> {
    ports
        .get(key)?
        .as_array()?
        .first()?
        .as_str()
        .map(str::to_owned)
}

/// Three nats-servers routed into one JetStream cluster on loopback.
#[derive(Debug)]
pub struct TestCluster {
    /// The nodes, `n1`, `n2`, `n3`.
    nodes: Vec<TestNats>,
    /// Their configuration file (kept for restarts).
    _config: tempfile::NamedTempFile,
}

impl TestCluster {
    /// Starts a three-node cluster and waits until it accepts R3 streams.
    ///
    /// # Errors
    /// [`FixtureError`] when a node does not start or the cluster does not form.
    pub async fn start() -> Result<TestCluster, FixtureError> {
        TestCluster::start_with(&[]).await
    }

    /// [`TestCluster::start`] with every node writing each stored message
    /// to disk before acknowledging it (`sync_interval: always`), as a
    /// cluster that must survive losing its machines runs.
    ///
    /// # Errors
    /// As [`TestCluster::start`].
    pub async fn start_synced() -> Result<TestCluster, FixtureError> {
        TestCluster::start_with(&["jetstream { sync_interval: always }"]).await
    }

    /// Starts the nodes with `config` lines in a configuration file of
    /// theirs (command-line flags set the rest).
    async fn start_with(config: &[&str]) -> Result<TestCluster, FixtureError> {
        const SIZE: usize = 3;
        let config_file = tempfile::Builder::new()
            .prefix("runfleet-cluster-")
            .suffix(".conf")
            .tempfile()
            .map_err(FixtureError::io("creating the cluster's config file"))?;
        std::fs::write(config_file.path(), config.join("\n"))
            .map_err(FixtureError::io("writing the cluster's config file"))?;
        let route_ports = free_ports(SIZE)?;
        let routes = route_ports
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::with_capacity(SIZE);
        for (index, port) in route_ports.iter().enumerate() {
            let args = vec![
                "--config".into(),
                config_file.path().display().to_string(),
                "--server_name".into(),
                format!("n{}", index + 1),
                "--cluster_name".into(),
                "runfleet-test".into(),
                "--cluster".into(),
                format!("nats://127.0.0.1:{port}"),
                "--routes".into(),
                routes.clone(),
            ];
            nodes.push(TestNats::start_with(args).await?);
        }
        let cluster = TestCluster {
            nodes,
            _config: config_file,
        };
        cluster.wait_for_jetstream().await?;
        Ok(cluster)
    }

    /// Waits until an R3 stream can be created (meta leader elected, all peers known).
    async fn wait_for_jetstream(&self) -> Result<(), FixtureError> {
        let client = self.nodes[0].client().await?;
        let js = async_nats::jetstream::new(client);
        let deadline = Instant::now() + CLUSTER_READY_TIMEOUT;
        let config = async_nats::jetstream::stream::Config {
            name: "FIXTURE_READY".into(),
            subjects: vec!["fixture.ready".into()],
            num_replicas: 3,
            ..Default::default()
        };
        loop {
            match js.create_stream(config.clone()).await {
                Ok(_) => {
                    let _ = js.delete_stream("FIXTURE_READY").await;
                    return Ok(());
                }
                Err(err) if Instant::now() > deadline => {
                    return Err(FixtureError::NotReady {
                        what: "the JetStream cluster".into(),
                        seconds: CLUSTER_READY_TIMEOUT.as_secs(),
                        detail: err.to_string(),
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// The nodes.
    pub fn nodes(&self) -> &[TestNats] {
        &self.nodes
    }

    /// The index in [`TestCluster::nodes`] of the node named `name` (`n2`).
    pub fn node_named(&self, name: &str) -> Option<usize> {
        name.strip_prefix('n')?
            .parse::<usize>()
            .ok()?
            .checked_sub(1)
            .filter(|i| *i < self.nodes.len())
    }

    /// Mutable access to the nodes (to kill or restart one).
    pub fn nodes_mut(&mut self) -> &mut [TestNats] {
        &mut self.nodes
    }

    /// A client URL list naming every node, as a client's server list.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url.clone()).collect()
    }

    /// A client connected to the cluster (any node).
    ///
    /// # Errors
    /// [`FixtureError::NatsConnect`] when no node answers.
    pub async fn client(&self) -> Result<async_nats::Client, FixtureError> {
        let addrs: Vec<async_nats::ServerAddr> = self
            .nodes
            .iter()
            .filter_map(|n| n.url.parse().ok())
            .collect();
        async_nats::connect(addrs)
            .await
            .map_err(|source| FixtureError::NatsConnect {
                url: self.urls().join(","),
                source,
            })
    }
}

/// Reserves `count` distinct free loopback ports (released before use; the
/// window in which another process could take one is a few milliseconds).
pub fn free_ports(count: usize) -> Result<Vec<u16>, FixtureError> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(FixtureError::io("reserving free ports"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(FixtureError::io("reading a reserved port"))
}
