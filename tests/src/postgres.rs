//! A fresh PostgreSQL database per test.
//!
//! [`TestDb::create`] makes a uniquely named database on the server that
//! `DATABASE_URL` points at and drops it (with `FORCE`) when the test ends.
//! When `DATABASE_URL` is unset or does not answer, it makes an ephemeral
//! cluster instead: `initdb` into a temp dir with the system's PostgreSQL
//! binaries (as the `postgres` user when running as root, since PostgreSQL
//! refuses to run as root), `pg_ctl start` on a free loopback port, and
//! `pg_ctl stop -m immediate` plus removal on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;
use tokio_postgres::NoTls;

use crate::FixtureError;

/// The superuser of ephemeral clusters.
const EPHEMERAL_USER: &str = "runfleet";

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDb {
    /// URL of the test database.
    url: String,
    /// URL of the server's maintenance database, to drop the test database.
    admin_url: String,
    /// The test database's name.
    name: String,
    /// The ephemeral cluster, when `DATABASE_URL` was not usable.
    cluster: Option<EphemeralCluster>,
}

impl TestDb {
    /// Creates a fresh database.
    ///
    /// # Errors
    /// [`FixtureError`] when no PostgreSQL can be reached or started.
    pub async fn create() -> Result<TestDb, FixtureError> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if tokio_postgres::connect(&url, NoTls).await.is_ok() => {
                TestDb::create_in(url, None).await
            }
            _ => TestDb::create_on_own_server().await,
        }
    }

    /// Creates a fresh database on a server of its own (an ephemeral
    /// cluster, whatever `DATABASE_URL` says), which
    /// [`TestDb::restart_server`] may restart.
    ///
    /// # Errors
    /// [`FixtureError`] when no PostgreSQL can be started.
    pub async fn create_on_own_server() -> Result<TestDb, FixtureError> {
        let cluster = EphemeralCluster::start()?;
        TestDb::create_in(cluster.url("postgres"), Some(cluster)).await
    }

    /// Restarts the database's own server: an immediate stop (like a
    /// crash: no checkpoint, connections cut), then a start on the same
    /// port and data.
    ///
    /// # Errors
    /// [`FixtureError::Command`] when the database has no server of its
    /// own, or `pg_ctl` fails.
    pub fn restart_server(&self) -> Result<(), FixtureError> {
        let Some(cluster) = &self.cluster else {
            return Err(FixtureError::Command {
                what: "restarting PostgreSQL".into(),
                detail: "the test database is on DATABASE_URL's server, not one of its own".into(),
            });
        };
        cluster.stop()?;
        cluster.start_server()
    }

    async fn create_in(
        admin_url: String,
        cluster: Option<EphemeralCluster>,
    ) -> Result<TestDb, FixtureError> {
        let name = format!("rf_test_{}", uuid::Uuid::now_v7().simple());
        let (client, connection) = tokio_postgres::connect(&admin_url, NoTls)
            .await
            .map_err(FixtureError::pg("connecting to create the test database"))?;
        let connection = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(FixtureError::pg(format!("CREATE DATABASE {name}")))?;
        drop(client);
        let _ = connection.await;
        let url = with_database(&admin_url, &name)?;
        Ok(TestDb {
            url,
            admin_url,
            name,
            cluster,
        })
    }

    /// The test database's URL (what a worker's `DATABASE_URL` would be).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The test database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection to the test database; its driver task runs on the current runtime.
    ///
    /// # Errors
    /// [`FixtureError::Postgres`] when the server does not answer.
    pub async fn connect(
        &self,
    ) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), FixtureError> {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .map_err(FixtureError::pg("connecting to the test database"))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok((client, driver))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.cluster.is_some() {
            return; // the whole cluster goes away with it
        }
        let admin_url = self.admin_url.clone();
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop cannot await, and may run inside a runtime: use a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&admin_url, NoTls).await?;
                tokio::spawn(connection);
                client.batch_execute(&statement).await
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if let Ok(Err(err)) = dropped {
            eprintln!("warning: could not drop test database {}: {err}", self.name);
        }
    }
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> Result<String, FixtureError> {
    let mut parsed = url::Url::parse(url).map_err(|err| FixtureError::Command {
        what: "reading DATABASE_URL".into(),
        detail: format!("{url:?} is not a URL: {err}"),
    })?;
    parsed.set_path(&format!("/{database}"));
    Ok(parsed.into())
}

/// A throwaway PostgreSQL cluster in a temp dir.
#[derive(Debug)]
struct EphemeralCluster {
    /// Holds the data directory, socket and log; removed on drop.
    dir: TempDir,
    /// The PostgreSQL binaries' directory.
    bindir: PathBuf,
    /// The loopback port it listens on.
    port: u16,
}

impl EphemeralCluster {
    fn start() -> Result<EphemeralCluster, FixtureError> {
        let bindir = find_bindir().ok_or_else(|| FixtureError::Command {
            what: "looking for PostgreSQL".into(),
            detail: "DATABASE_URL is unset or unreachable and no initdb/pg_ctl was found under \
                     /usr/lib/postgresql/*/bin: run `scripts/stack install postgres` or set \
                     DATABASE_URL"
                .into(),
        })?;
        let dir = tempfile::Builder::new()
            .prefix("runfleet-pg-")
            .tempdir()
            .map_err(FixtureError::io("creating the PostgreSQL temp dir"))?;
        if is_root() {
            hand_to_postgres_user(dir.path())?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(FixtureError::io("finding a free port"))?
            .port();
        let cluster = EphemeralCluster { dir, bindir, port };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "--pgdata",
                &data.display().to_string(),
                "--username",
                EPHEMERAL_USER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        )?;
        cluster.start_server()?;
        Ok(cluster)
    }

    /// `pg_ctl start` on the cluster's port.
    fn start_server(&self) -> Result<(), FixtureError> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=300",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir().display().to_string(),
                "-l",
                &log,
                "-w",
                "-t",
                "30",
                "-o",
                &options,
                "start",
            ],
        )
    }

    /// `pg_ctl stop -m immediate`.
    fn stop(&self) -> Result<(), FixtureError> {
        let data = self.data_dir().display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &data, "-m", "immediate", "-w", "-t", "10", "stop"],
        )
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self, database: &str) -> String {
        format!(
            "postgres://{EPHEMERAL_USER}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// Runs a PostgreSQL binary, as the `postgres` user when we are root.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), FixtureError> {
        let path = self.bindir.join(program);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let output = command
            .args(args)
            .output()
            .map_err(|source| FixtureError::Spawn {
                program: path.clone(),
                source,
            })?;
        if output.status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default();
        Err(FixtureError::Command {
            what: format!("{program} {}", args.join(" ")),
            detail: format!(
                "{}\n{}\n{log}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        })
    }
}

impl Drop for EphemeralCluster {
    fn drop(&mut self) {
        let _ = self.stop();
        // Give the postmaster a moment to release the directory before it is removed.
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn find_bindir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    dirs.sort_by_key(|bin| {
        bin.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Makes the `postgres` user own `dir` (initdb refuses to run as root).
fn hand_to_postgres_user(dir: &Path) -> Result<(), FixtureError> {
    let status = Command::new("chown")
        .arg("postgres:")
        .arg(dir)
        .status()
        .map_err(|source| FixtureError::Spawn {
            program: "chown".into(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(FixtureError::Command {
            what: format!("chown postgres: {}", dir.display()),
            detail: format!("exited with {status}; is there a 'postgres' user?"),
        })
    }
}
