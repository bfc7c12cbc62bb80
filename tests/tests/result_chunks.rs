//! Results larger than a receipt carries: a 20 MiB result from a real
//! program (the process backend) is stored whole in PostgreSQL as
//! `result_chunk` events, published in order, and its receipt names them;
//! the Rust producer joins and verifies them, and `runfleet wait --output`
//! writes the very bytes. Workers at the default settings.

mod common;

use std::time::Duration;

use runfleet_producer::result::{receipt_output, receipt_output_bytes};
use runfleet_schemas::result_chunks::{RESULT_CHUNK_BYTES, digest};
use runfleet_schemas::{EventBody, MAX_RECEIPT_OUTPUT_BYTES, TerminalCommandStatus};
use runfleet_tests::{WorkerEnv, binary};
use serde_json::{Value, json};

const BLOB_BYTES: usize = 20 * 1024 * 1024;

/// The result `big_result.py` prints for `bytes`.
fn expected(bytes: usize) -> Value {
    let mut blob = "0123456789abcdef".repeat(bytes / 16 + 1);
    blob.truncate(bytes);
    json!({"blob": blob, "tail": "fin ✓ é"})
}

#[tokio::test]
async fn a_20_mib_result_travels_as_verified_chunks() {
    let stack = common::Stack::start().await;
    // The product's defaults (a 10 s lease, renewed while the result is
    // prepared and committed).
    let defaults = WorkerEnv::at_defaults(stack.nats.url(), stack.db.url());
    let (env, _config) =
        common::with_profiles(&defaults, &[common::profile("big", "big_result.py", "")]);
    let worker = common::worker(&env, "w1").await;
    let producer = stack.producer().await;
    let run = runfleet_producer::new_run("acme", "tests", "big").unwrap();
    producer.create_run(&run).await.unwrap();
    let large = common::turn(&run, 1, json!({"bytes": BLOB_BYTES}));
    let small = common::turn(&run, 2, json!({"bytes": 1000}));
    producer.send_command(&large).await.unwrap();
    producer.send_command(&small).await.unwrap();

    let started = std::time::Instant::now();
    let receipt = producer
        .wait_for_receipt(&large, Duration::from_secs(120))
        .await
        .unwrap_or_else(|err| panic!("{err}\nworker:\n{}", worker.log_text()));
    assert_eq!(
        receipt.status,
        TerminalCommandStatus::Completed,
        "{:?}\nworker:\n{}",
        receipt.failure,
        common::tail(&worker.log_text(), 30)
    );
    assert_eq!(receipt.output, None, "a large result is not in the receipt");
    assert!(!receipt.output_truncated);
    let chunks = receipt.output_chunks.clone().expect("output_chunks");
    let want = expected(BLOB_BYTES);
    let text = want.to_string();
    assert_eq!(chunks.bytes, text.len() as u64);
    assert_eq!(chunks.digest, digest(text.as_bytes()));
    assert_eq!(
        chunks.count,
        text.len().div_ceil(RESULT_CHUNK_BYTES) as u64,
        "192 KiB a chunk"
    );

    eprintln!("receipt after {:?}", started.elapsed());
    // The producer joins and verifies them; the value is the program's.
    let started = std::time::Instant::now();
    let output = receipt_output(producer.jetstream(), &receipt)
        .await
        .unwrap()
        .unwrap();
    assert!(
        output == want,
        "the joined result differs from the program's"
    );
    eprintln!("joined after {:?}", started.elapsed());

    // PostgreSQL holds them, in order, right before the terminal status,
    // inside the receipt's range.
    let range = receipt.events.unwrap();
    let rows = stack
        .pg
        .query(
            "SELECT seq, event -> 'body' FROM events WHERE tenant = 'acme' AND run_id = $1 \
              AND seq BETWEEN $2 AND $3 ORDER BY seq",
            &[
                &run.run_id.as_str(),
                &(range.first_seq as i64),
                &(range.last_seq as i64),
            ],
        )
        .await
        .unwrap();
    let bodies: Vec<EventBody> = rows
        .iter()
        .map(|row| serde_json::from_value(row.get(1)).unwrap())
        .collect();
    let indexes: Vec<u64> = bodies
        .iter()
        .filter_map(|b| match b {
            EventBody::ResultChunk { index, .. } => Some(*index),
            _ => None,
        })
        .collect();
    assert_eq!(indexes, (0..chunks.count).collect::<Vec<_>>());
    let n = bodies.len();
    assert!(matches!(bodies[n - 1], EventBody::TerminalStatus { .. }));
    assert!(matches!(
        bodies[n - 2],
        EventBody::ResultChunk { index, .. } if index == chunks.count - 1
    ));

    // `runfleet wait --output FILE` writes exactly the joined bytes.
    let file = tempfile::NamedTempFile::new().unwrap();
    let started = std::time::Instant::now();
    let out = std::process::Command::new(binary("runfleet").unwrap())
        .args(["wait", "--tenant", "acme", "--run", run.run_id.as_str()])
        .args(["--command", large.command_id.as_str(), "--output"])
        .arg(file.path())
        .env("NATS_URL", stack.nats.url())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("runfleet wait --output took {:?}", started.elapsed());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{} result_chunk events", chunks.count)),
        "{stdout}"
    );
    let written = std::fs::read(file.path()).unwrap();
    assert_eq!(written.len(), text.len());
    assert!(
        written == text.as_bytes(),
        "the file differs from the result"
    );

    // A small result stays in its receipt, unchunked.
    let receipt = producer
        .wait_for_receipt(&small, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(receipt.output, Some(expected(1000)));
    assert_eq!(receipt.output_chunks, None);
    assert_eq!(
        receipt_output_bytes(producer.jetstream(), &receipt)
            .await
            .unwrap(),
        None
    );
    assert!(expected(1000).to_string().len() < MAX_RECEIPT_OUTPUT_BYTES);
}
