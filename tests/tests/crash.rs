//! Surviving crashes: real worker processes killed with SIGKILL at random and
//! at chosen points, and a stale worker (SIGSTOP, then SIGCONT) that must not
//! overwrite its successor.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Effect, Stack, run_one, run_with_commands, text_payload, worker};

use runfleet_schemas::TerminalCommandStatus;
use runfleet_tests::TestWorker;
use serde_json::json;

/// A liveness bound: at the default settings a SIGKILLed worker's work resumes
/// after `ack_wait` (10 s), and the storm kills one about every 300 ms.
const WAIT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_while_workers_are_killed_every_300ms() {
    const RUNS: usize = 50;
    const COMMANDS_PER_RUN: u64 = 20;
    let total = RUNS as i64 * COMMANDS_PER_RUN as i64;
    let stack = Stack::start().await;
    // At the default settings: a guarantee that needs tuned ones does not hold.
    let effects = tempfile::NamedTempFile::new().unwrap();
    let env = runfleet_tests::WorkerEnv::at_defaults(stack.nats.url(), stack.db.url()).with(
        "RUNFLEET_ECHO_EFFECTS_FILE",
        effects.path().display().to_string(),
    );
    let mut workers = stack.workers(&env, 3).await;
    let producer = stack.producer().await;

    // Each command takes 100–200 ms, so kills land mid-command, between the
    // commit and the ack, and everywhere else.
    let runs: Vec<_> = (0..RUNS)
        .map(|_| {
            run_with_commands(
                COMMANDS_PER_RUN,
                |seq| json!({"text": format!("turn {seq}"), "sleep_ms": fastrand::u64(100..200)}),
            )
        })
        .collect();
    // Publish while the chaos runs (publishing 1,000 commands can take a
    // while on a loaded machine). Seq-major, as concurrent producers would
    // interleave their runs.
    let publishing = {
        let producer = producer.clone();
        let runs = runs.clone();
        tokio::spawn(async move {
            for (run, _) in &runs {
                producer.create_run(run).await.unwrap();
            }
            for seq in 0..COMMANDS_PER_RUN as usize {
                for (_, commands) in &runs {
                    producer.send_command(&commands[seq]).await.unwrap();
                }
            }
        })
    };

    // Chaos: SIGKILL a random worker about every 300 ms and start a new one in its place.
    let started = Instant::now();
    let mut kills = 0;
    while stack.receipt_count().await < total {
        assert!(
            started.elapsed() < WAIT,
            "only {} of {total} receipts after {kills} kills",
            stack.receipt_count().await
        );
        tokio::time::sleep(Duration::from_millis(fastrand::u64(250..350))).await;
        let victim = fastrand::usize(..workers.len());
        workers[victim].kill();
        kills += 1;
        workers[victim] = TestWorker::start(&env, &format!("w{victim}-{kills}")).unwrap();
    }
    let elapsed = started.elapsed();
    publishing.await.unwrap();
    stack.wait_for_receipts(total, WAIT, &workers).await;
    eprintln!("{total} receipts in {elapsed:?} with {kills} SIGKILLs");
    assert!(
        kills >= 10,
        "only {kills} kills: the chaos did not overlap the work"
    );

    // Every command has exactly one receipt (the journal's key makes a second
    // impossible; count them anyway), and all completed.
    let rows = stack
        .pg
        .query("SELECT command_id, (result->>'attempt')::bigint, result->>'worker_id', status FROM journal WHERE step = 'receipt'", &[])
        .await
        .unwrap();
    assert_eq!(rows.len() as i64, total);
    let receipts: HashMap<String, (u64, String)> = rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                (r.get::<_, i64>(1) as u64, r.get::<_, String>(2)),
            )
        })
        .collect();
    assert_eq!(receipts.len() as i64, total, "one receipt per command");
    assert!(rows.iter().all(|r| r.get::<_, String>(3) == "completed"));

    // Effects: each receipt is backed by exactly one execution of its own
    // delivery, and no execution happened after a receipt was committed.
    let lines = common::effects(effects.path());
    let mut backed = 0;
    for (command_id, (attempt, worker_id)) in &receipts {
        let mine: Vec<&Effect> = lines
            .iter()
            .filter(|e| &e.command_id == command_id)
            .collect();
        assert_eq!(
            mine.iter()
                .filter(|e| e.attempt == *attempt && &e.worker_id == worker_id)
                .count(),
            1,
            "command {command_id}: {mine:?}"
        );
        assert!(
            mine.iter().all(|e| e.attempt <= *attempt),
            "re-executed after its receipt: {mine:?}"
        );
        backed += 1;
    }
    assert_eq!(backed, total);
    eprintln!(
        "effects: {} lines, {} backing receipts, {} from attempts killed before their commit",
        lines.len(),
        backed,
        lines.len() as i64 - backed
    );

    // Each run's commands executed in seq order.
    for (run, _) in &runs {
        let seqs = common::seqs_of(&lines, run.run_id.as_str());
        assert!(
            seqs.windows(2).all(|w| w[0] <= w[1]),
            "run {} executed out of order: {seqs:?}",
            run.run_id
        );
        assert_eq!(seqs.last(), Some(&COMMANDS_PER_RUN));
    }
    assert!(
        stack.dead_letters().await.is_empty(),
        "{:?}",
        stack.dead_letters().await
    );
}

#[tokio::test]
async fn killed_after_commit_before_ack_the_redelivery_replays() {
    let stack = Stack::start().await;
    let (env, effects) = stack.counting_effects();
    let env = env.with("RUNFLEET_ACK_WAIT", "1s");
    let mut doomed = worker(
        &env.clone().with("RUNFLEET_FAILPOINT", "exit-after-commit"),
        "doomed",
    )
    .await;
    let producer = stack.producer().await;
    let (run, commands) = run_with_commands(1, text_payload);
    producer.create_run(&run).await.unwrap();
    producer.send_command(&commands[0]).await.unwrap();
    assert!(
        doomed.wait_exit(WAIT).await.is_some(),
        "the failpoint did not fire"
    );
    assert_eq!(
        stack.receipt_count().await,
        1,
        "the receipt was committed before the crash"
    );

    let successor = worker(&env, "successor").await;
    let receipt = producer.wait_for_receipt(&commands[0], WAIT).await.unwrap();
    assert_eq!(
        receipt.worker_id, "doomed",
        "the committed receipt is the one published"
    );
    let effects = common::effects(effects.path());
    assert_eq!(effects.len(), 1, "the backend did not run again");
    // (Usually attempt 1; 2 when the command overtook its run.create and was NAKed once.)
    assert_eq!(receipt.attempt, effects[0].attempt);
    let deadline = Instant::now() + WAIT;
    while !successor.log_text().contains("replayed the stored receipt") {
        assert!(Instant::now() < deadline, "{}", successor.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn killed_mid_command_the_redelivery_completes_after_ack_wait() {
    let stack = Stack::start().await;
    let env = stack.env.clone().with("RUNFLEET_ACK_WAIT", "1s");
    let mut first = worker(&env, "first").await;
    let producer = stack.producer().await;
    let slow = run_one(&producer, json!({"sleep_ms": 3000})).await;
    stack.wait_until_running(Some("first")).await;
    first.kill();

    let second = worker(&env, "second").await;
    let receipt = producer.wait_for_receipt(&slow, WAIT).await.unwrap();
    assert_eq!(receipt.status, TerminalCommandStatus::Completed);
    assert_eq!(receipt.worker_id, "second");
    // At least one redelivery. (Sometimes two: a pull request the killed
    // worker left on the server can absorb the first redelivery, which then
    // waits out its own ack_wait.)
    assert!(receipt.attempt >= 2, "{}", second.log_text());
    assert_eq!(
        receipt.fencing_token, 2,
        "the second claim has the next token"
    );
}

#[tokio::test]
async fn a_stale_worker_cannot_overwrite_its_successor() {
    let stack = Stack::start().await;
    let env = stack.env.clone().with("RUNFLEET_ACK_WAIT", "1s");
    let stale = worker(&env, "stale").await;
    let producer = stack.producer().await;
    let slow = run_one(&producer, json!({"sleep_ms": 2500})).await;
    stack.wait_until_running(Some("stale")).await;
    stale.signal("STOP");

    let successor = worker(&env, "successor").await;
    let receipt = producer.wait_for_receipt(&slow, WAIT).await.unwrap();
    assert_eq!(
        (receipt.worker_id.as_str(), receipt.fencing_token),
        ("successor", 2)
    );

    // The stale worker wakes up, finds its claim superseded, and writes nothing.
    stale.signal("CONT");
    let deadline = Instant::now() + WAIT;
    loop {
        let log = stale.log_text();
        if log.contains("superseded") || log.contains("heartbeat-lost") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stale worker log:\n{log}\nsuccessor:\n{}",
            successor.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stack.receipt_count().await, 1);
    let stored = stack.receipt(&slow).await.unwrap();
    assert_eq!(
        stored["worker_id"], "successor",
        "the successor's receipt stands"
    );
}
