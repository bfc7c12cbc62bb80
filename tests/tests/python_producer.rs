//! A producer the project did not write: the Python program in
//! `schemas/README.md`, run as it is with the `nats-py` package, against a
//! real fleet, gets its receipt.

mod common;

use std::process::Command;

use common::Stack;
use runfleet_tests::workspace_root;

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
    let stack = Stack::start().await;
    let workers = stack.workers(&stack.env, 1).await;
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
        .env("NATS_URL", stack.nats.url())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python failed:\n{stdout}\n{}\nworker:\n{}",
        String::from_utf8_lossy(&output.stderr),
        workers[0].log_text()
    );
    let receipt: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(receipt["status"], "completed");
    assert_eq!(receipt["output"]["echo"]["text"], "hello from Python");
    assert_eq!(stack.receipt_count().await, 1);
}
