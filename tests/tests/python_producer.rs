//! A producer the project did not write: the Python program in
//! `schemas/README.md`, run as it is with the `nats-py` package against a
//! real fleet on the deployed tenant configuration, logged in as the tenant
//! `acme` with nothing but that tenant's permissions, gets its receipt.

mod common;

use std::process::Command;

use common::tenant_nats::{ACME_PASSWORD, TenantNats, WORKER_PASSWORD};
use runfleet_tests::{TestDb, WorkerEnv, workspace_root};

/// The first ```python block of schemas/README.md.
fn readme_program() -> String {
    let readme = std::fs::read_to_string(workspace_root().join("schemas/README.md")).unwrap();
    let start = readme
        .find("```python\n")
        .expect("schemas/README.md has a Python example")
        + 10;
    let end = start + readme[start..].find("```").unwrap();
    readme[start..end].to_owned()
}

#[tokio::test]
async fn the_readme_python_producer_gets_its_receipt() {
    let nats = TenantNats::start().await;
    let db = TestDb::create().await.unwrap();
    let env = WorkerEnv::new(&nats.url_for("worker", WORKER_PASSWORD), db.url());
    let worker = common::worker(&env, "w1").await;
    let pythonpath = Command::new(workspace_root().join("scripts/stack"))
        .arg("nats-py-path")
        .output()
        .unwrap();
    assert!(
        pythonpath.status.success(),
        "{}",
        String::from_utf8_lossy(&pythonpath.stderr)
    );
    let pythonpath = String::from_utf8(pythonpath.stdout)
        .unwrap()
        .trim()
        .to_owned();

    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), readme_program()).unwrap();
    let output = tokio::process::Command::new("python3")
        .arg(script.path())
        .env("PYTHONPATH", &pythonpath)
        .env("NATS_URL", nats.url_for("acme", ACME_PASSWORD))
        .env("RUNFLEET_TENANT", "acme")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python failed:\n{stdout}\n{}\nworker:\n{}",
        String::from_utf8_lossy(&output.stderr),
        worker.log_text()
    );
    let receipt: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(receipt["status"], "completed");
    assert_eq!(receipt["output"]["echo"]["text"], "hello from Python");
    assert_eq!(receipt["tenant"], "acme");
    let (pg, _driver) = db.connect().await.unwrap();
    let receipts: i64 = pg
        .query_one("SELECT count(*) FROM journal WHERE step = 'receipt'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(receipts, 1);
}
