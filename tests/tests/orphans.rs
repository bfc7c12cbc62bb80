//! A program dies with its worker: a SIGKILLed worker leaves no program
//! running, so the redelivered command never runs alongside a leftover copy
//! of the previous attempt (invariant 2: one execution of a run at a time).

mod common;

use std::time::{Duration, Instant};

use common::{Stack, payload, tail, worker};
use runfleet_producer::{new_command, new_run};
use runfleet_schemas::{CommandKind, TerminalCommandStatus};
use runfleet_tests::{WorkerEnv, workspace_root};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);

/// Whether process `pid` is still running (a zombie is not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // `pid (comm) state …`: the state follows the last `)`.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned))
        })
        .is_some_and(|state| state != "Z" && state != "X")
}

fn pids(file: &std::path::Path) -> Vec<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[tokio::test]
async fn a_sigkilled_workers_program_dies_with_it_and_the_retry_runs_alone() {
    let stack = Stack::start().await;
    let pid_file = tempfile::NamedTempFile::new().unwrap();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        format!(
            "[profiles.slow]\nkind = \"process\"\nprogram = \"python3\"\nargs = [{:?}]\nenv = [\"RUNFLEET_TEST_PID_FILE\"]\n",
            workspace_root().join("tests/programs/records_pid.py").display()
        ),
    )
    .unwrap();
    // The default settings, but for the profile.
    let env = WorkerEnv::at_defaults(stack.nats.url(), stack.db.url())
        .with("RUNFLEET_CONFIG", config.path().display().to_string())
        .with(
            "RUNFLEET_TEST_PID_FILE",
            pid_file.path().display().to_string(),
        );
    let mut first = worker(&env, "w1").await;
    let producer = stack.producer().await;
    let run = new_run("acme", "tests", "slow").unwrap();
    producer.create_run(&run).await.unwrap();
    let command = new_command(
        &run.tenant,
        &run.run_id,
        1,
        CommandKind::Turn,
        payload(json!({"text": "work"})),
    );
    producer.send_command(&command).await.unwrap();

    let deadline = Instant::now() + WAIT;
    while pids(pid_file.path()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the program never started\n{}",
            tail(&first.log_text(), 30)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let program = pids(pid_file.path())[0];
    assert!(alive(program));
    first.kill();
    let killed = Instant::now();
    while alive(program) {
        assert!(
            killed.elapsed() < Duration::from_secs(3),
            "the program (pid {program}) outlived its SIGKILLed worker"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The redelivery (after ack_wait) starts one new copy, alone.
    let second = worker(&env, "w2").await;
    let receipt = producer.wait_for_receipt(&command, WAIT).await;
    let receipt = receipt.unwrap_or_else(|err| panic!("{err}\n{}", tail(&second.log_text(), 30)));
    assert_eq!(receipt.status, TerminalCommandStatus::Completed);
    let started = pids(pid_file.path());
    assert_eq!(started.len(), 2, "{started:?}");
    assert_eq!(receipt.output, Some(json!({"pid": started[1]})));
    assert!(!alive(started[0]));
}
