//! A nats-server running the deployed tenant configuration,
//! `deploy/nats/tenants.conf` (only the store, the ports and the log moved
//! to a temp dir), and clients logged in as its users.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const WORKER_PASSWORD: &str = "worker-test-secret";
pub const ACME_PASSWORD: &str = "acme-test-secret";
pub const GLOBEX_PASSWORD: &str = "globex-test-secret";
pub const OPERATOR_PASSWORD: &str = "operator-test-secret";
/// How long a tenant's request waits for an answer: a publish the server
/// refuses is dropped (the client only gets an asynchronous `-ERR`), so the
/// request runs into this timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// A nats-server started with the deployed tenant configuration; killed on
/// drop (also when the test panics), its temp dir removed after.
pub struct TenantNats {
    /// The server process.
    child: Child,
    /// The configuration copy, the store, the log and the ports file.
    dir: TempDir,
    /// `nats://127.0.0.1:<port>`.
    pub url: String,
}

impl TenantNats {
    /// Starts the pinned nats-server with a copy of `deploy/nats/tenants.conf`
    /// whose `store_dir` points into a temp dir (the server refuses `-sd`
    /// beside a configured `store_dir`), on a free loopback port (`-p -1`,
    /// read back from `--ports_file_dir`, as the `TestNats` fixture does).
    pub async fn start() -> TenantNats {
        let dir = tempfile::Builder::new()
            .prefix("runfleet-tenancy-")
            .tempdir()
            .unwrap();
        let deployed = runfleet_tests::workspace_root().join("deploy/nats/tenants.conf");
        let config = dir.path().join("tenants.conf");
        std::fs::write(
            &config,
            relocated_store(&deployed, &dir.path().join("store")),
        )
        .unwrap();
        let ports = dir.path().join("ports");
        std::fs::create_dir_all(&ports).unwrap();
        let child = Command::new(nats_server_binary())
            .arg("-c")
            .arg(&config)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                "-1",
                "-m",
                "-1",
                "--ports_file_dir",
            ])
            .arg(&ports)
            .arg("-l")
            .arg(dir.path().join("nats-server.log"))
            .env("RUNFLEET_NATS_WORKER_PASSWORD", WORKER_PASSWORD)
            .env("RUNFLEET_NATS_ACME_PASSWORD", ACME_PASSWORD)
            .env("RUNFLEET_NATS_GLOBEX_PASSWORD", GLOBEX_PASSWORD)
            .env("RUNFLEET_NATS_OPERATOR_PASSWORD", OPERATOR_PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = TenantNats {
            child,
            dir,
            url: String::new(),
        };
        server.url = server.wait_for_url(&ports).await;
        server
    }

    async fn wait_for_url(&mut self, ports: &Path) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = std::fs::read_dir(ports)
                .ok()
                .and_then(|mut entries| entries.find_map(|e| e.ok()))
                .and_then(|entry| std::fs::read_to_string(entry.path()).ok())
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .and_then(|ports| ports["nats"][0].as_str().map(str::to_owned));
            if let Some(url) = url {
                return url;
            }
            let exited = self.child.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("nats-server.log"));
                panic!("nats-server did not start ({exited:?}); log:\n{log:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The server's URL with `user`'s credentials in it
    /// (`nats://user:password@127.0.0.1:<port>`), as a worker or a
    /// non-Rust producer takes it.
    pub fn url_for(&self, user: &str, password: &str) -> String {
        let address = self.url.trim_start_matches("nats://");
        format!("nats://{user}:{password}@{address}")
    }

    /// A client logged in as `user`, every server error it is told of
    /// collected in `errors`.
    pub async fn connect(
        &self,
        user: &str,
        password: &str,
        inbox_prefix: Option<&str>,
        errors: &ServerErrors,
    ) -> async_nats::Client {
        let errors = errors.clone();
        let mut options = async_nats::ConnectOptions::new()
            .user_and_password(user.into(), password.into())
            .request_timeout(Some(REQUEST_TIMEOUT))
            .event_callback(move |event| {
                let errors = errors.clone();
                async move {
                    if let async_nats::Event::ServerError(err) = event {
                        errors.0.lock().unwrap().push(err.to_string());
                    }
                }
            });
        if let Some(prefix) = inbox_prefix {
            options = options.custom_inbox_prefix(prefix);
        }
        options.connect(&self.url).await.unwrap()
    }
}

impl Drop for TenantNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pinned nats-server, found as the fixtures find it (`TestNats` does
/// not export its lookup): `$RUNFLEET_NATS_SERVER`, else
/// `scripts/stack nats-server-path` (which installs it when missing).
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RUNFLEET_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let output = Command::new(runfleet_tests::workspace_root().join("scripts/stack"))
        .arg("nats-server-path")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// The deployed configuration with its `store_dir` line pointing at `store`.
fn relocated_store(deployed: &Path, store: &Path) -> String {
    let text = std::fs::read_to_string(deployed).unwrap();
    let mut replaced = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("store_dir:") {
                replaced += 1;
                format!("  store_dir: {:?}", store.display().to_string())
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert_eq!(replaced, 1, "one store_dir line in {}", deployed.display());
    lines.join("\n")
}

/// The `-ERR` lines a client received (permission violations among them).
#[derive(Clone, Default)]
pub struct ServerErrors(pub Arc<Mutex<Vec<String>>>);

impl ServerErrors {
    /// Waits up to two seconds for an error mentioning `needle` (case-insensitive).
    pub async fn wait_for(&self, needle: &str) {
        let needle = needle.to_lowercase();
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let errors = self.0.lock().unwrap().clone();
            if errors.iter().any(|e| e.to_lowercase().contains(&needle)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no server error mentioning {needle:?}; got {errors:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
