//! Ordering without head-of-line blocking, at the default settings:
//! commands that arrive out of order wait for their turn without holding a
//! worker slot, so they never keep the commands they wait for (or other
//! runs' work) from being pulled.

mod common;

use std::time::{Duration, Instant};

use common::{Stack, run_with_commands, text_payload};
use runfleet_schemas::{CommandCreate, TerminalCommandStatus};
use runfleet_tests::WorkerEnv;

/// Far below `RUNFLEET_ORDER_WAIT`'s default (60 s), which is what a
/// blocked command would wait before being handed back.
const BOUND: Duration = Duration::from_secs(30);

/// Publishes `runs` runs of `per_run` commands, every run's commands in
/// reverse seq order (interleaved across runs), and waits for every receipt.
async fn reverse_order(stack: &Stack, workers: usize, runs: usize, per_run: u64) -> Duration {
    let env = WorkerEnv::at_defaults(stack.nats.url(), stack.db.url());
    let (env, effects) = {
        let effects = tempfile::NamedTempFile::new().unwrap();
        (
            env.with(
                "RUNFLEET_ECHO_EFFECTS_FILE",
                effects.path().display().to_string(),
            ),
            effects,
        )
    };
    let workers = stack.workers(&env, workers).await;
    let producer = stack.producer().await;
    let mut all: Vec<Vec<CommandCreate>> = Vec::new();
    for _ in 0..runs {
        let (run, commands) = run_with_commands(per_run, text_payload);
        producer.create_run(&run).await.unwrap();
        all.push(commands);
    }
    let started = Instant::now();
    for seq in (0..per_run as usize).rev() {
        for commands in &all {
            producer.send_command(&commands[seq]).await.unwrap();
        }
    }
    let total = (runs as u64 * per_run) as i64;
    stack.wait_for_receipts(total, BOUND, &workers).await;
    let took = started.elapsed();
    for commands in &all {
        let last = producer
            .wait_for_receipt(commands.last().unwrap(), BOUND)
            .await
            .unwrap();
        assert_eq!(last.status, TerminalCommandStatus::Completed);
        let ran = common::seqs_of(
            &common::effects(effects.path()),
            commands[0].run_id.as_str(),
        );
        assert_eq!(ran, (1..=per_run).collect::<Vec<_>>(), "in seq order");
    }
    took
}

#[tokio::test]
async fn commands_published_in_reverse_order_run_in_order_without_waiting_for_the_order_timeout() {
    let stack = Stack::start().await;
    // The outside report's case: 4 runs × 20 commands, 3 workers.
    let took = reverse_order(&stack, 3, 4, 20).await;
    assert!(took < BOUND, "{took:?}");
    eprintln!("4 runs x 20 commands in reverse order: {took:?}");
}

#[tokio::test]
async fn more_waiting_commands_than_slots_do_not_block_their_predecessors() {
    let stack = Stack::start().await;
    // 700 commands of one run in reverse order, one worker with its 512
    // default slots: seqs 700..189 arrive first and must not keep 1..188
    // from being pulled.
    let took = reverse_order(&stack, 1, 1, 700).await;
    eprintln!("1 run x 700 commands in reverse order: {took:?}");
}

/// How many commands are parked now.
async fn parked_commands(stack: &Stack) -> i64 {
    stack
        .pg
        .query_one(
            "SELECT count(*) FROM commands WHERE parked_at IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_command_parked_for_its_turn_survives_the_worker_that_parked_it() {
    let stack = Stack::start().await;
    let env = WorkerEnv::at_defaults(stack.nats.url(), stack.db.url());
    let mut first = common::worker(&env, "w1").await;
    let producer = stack.producer().await;
    let (run, mut commands) = run_with_commands(2, text_payload);
    // Numbers jsonb would rewrite (`1e16` → `10000000000000000`): the
    // message published again must be the very bytes that were parked, or
    // its payload hash would no longer match its own idempotency key.
    commands[1].payload =
        common::payload(serde_json::json!({"text": "late", "n": 1e16, "z": -0.0}));
    producer.create_run(&run).await.unwrap();
    // Seq 2 alone: it waits for seq 1, then is parked in PostgreSQL and its
    // message acknowledged — no worker holds it.
    producer.send_command(&commands[1]).await.unwrap();
    let deadline = Instant::now() + BOUND;
    loop {
        let parked = parked_commands(&stack).await;
        if parked == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never parked\n{}",
            common::tail(&first.log_text(), 30)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.wait_until_work_stream_is_empty().await;
    // The worker that parked it dies; another serves seq 1, and seq 2 is
    // published again from PostgreSQL when its turn comes.
    first.kill();
    let second = common::worker(&env, "w2").await;
    producer.send_command(&commands[0]).await.unwrap();
    let started = Instant::now();
    let receipt = producer.wait_for_receipt(&commands[1], BOUND).await;
    let receipt =
        receipt.unwrap_or_else(|err| panic!("{err}\n{}", common::tail(&second.log_text(), 30)));
    assert_eq!(receipt.status, TerminalCommandStatus::Completed);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let first_receipt = producer
        .wait_for_receipt(&commands[0], BOUND)
        .await
        .unwrap();
    assert!(first_receipt.fencing_token < receipt.fencing_token);
    assert_eq!(parked_commands(&stack).await, 0, "the parking is cleared");
}
