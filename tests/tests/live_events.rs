//! Live events, at the default settings: a command's events reach
//! PostgreSQL and the events stream (and `runfleet events --follow`) while
//! it executes, not with its receipt; an attempt killed mid-command keeps
//! its events, each marked with its attempt, and the receipt's range names
//! the seqs of the attempt that counted.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{Stack, profile, turn, with_profiles, worker};
use runfleet_producer::new_run;
use runfleet_schemas::{Event, EventBody, TerminalCommandStatus};
use runfleet_tests::{WorkerEnv, binary};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(60);

/// `runfleet events --follow --json` for the run, each line it prints sent
/// (decoded) to the returned channel as it arrives.
fn follow_with_the_cli(
    nats_url: &str,
    run_id: &str,
) -> (tokio::process::Child, mpsc::UnboundedReceiver<Event>) {
    let mut child = tokio::process::Command::new(binary("runfleet").unwrap())
        .args(["events", "--run", run_id, "--follow", "--json"])
        .env("NATS_URL", nats_url)
        .env("RUNFLEET_TENANT", "acme")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let event: Event = serde_json::from_str(&line).expect("an event per line");
            if tx.send(event).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

async fn next(events: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("no event within a minute")
        .expect("the follower stopped")
}

#[tokio::test]
async fn events_are_live_and_a_killed_attempt_keeps_its_own() {
    let stack = Stack::start().await;
    let defaults = WorkerEnv::at_defaults(stack.nats.url(), stack.db.url());
    let (env, _config) = with_profiles(&defaults, &[profile("agent", "agent.py", "")]);
    let mut first = worker(&env, "first").await;
    let producer = stack.producer().await;
    let run = new_run("acme", "live", "agent").unwrap();
    producer.create_run(&run).await.unwrap();
    let (_cli, mut followed) = follow_with_the_cli(stack.nats.url(), run.run_id.as_str());
    // 30 steps of 200 ms: about 6 s, a progress event after each step.
    let body = json!({"text": "long", "steps": 30, "step_sleep_ms": 200});
    let command = turn(&run, 1, body);
    producer.send_command(&command).await.unwrap();

    // The follower sees the first attempt's progress while it runs.
    let mut seen = Vec::new();
    let mut worst_lag = chrono::TimeDelta::zero();
    loop {
        let event = next(&mut followed).await;
        worst_lag = worst_lag.max(Utc::now() - event.at);
        let done = matches!(event.body, EventBody::Progress { done, .. } if done >= 3);
        seen.push(event);
        if done {
            break;
        }
    }
    assert!(
        stack.receipt(&command).await.is_none(),
        "the events arrived only with the receipt"
    );
    eprintln!(
        "{} events followed live; worst lag from emitted to printed {} ms",
        seen.len(),
        worst_lag.num_milliseconds()
    );
    assert!(
        worst_lag < chrono::TimeDelta::seconds(2),
        "an event took {} ms to reach the follower",
        worst_lag.num_milliseconds()
    );
    assert!(seen.iter().all(|e| e.attempt == Some(1)), "{seen:?}");

    // Killed mid-command: the redelivery (after the default ack_wait)
    // executes it again under a new claim.
    first.kill();
    let second = worker(&env, "second").await;
    let receipt = producer.wait_for_receipt(&command, WAIT).await.unwrap();
    assert_eq!(receipt.status, TerminalCommandStatus::Completed);
    assert!(receipt.attempt >= 2, "{}", second.log_text());
    let range = receipt.events.expect("the receipt names its events");

    // The journal's log: gap-free, the killed attempt's events first, each
    // marked with its attempt; the receipt's range is the counted attempt's.
    let rows = stack
        .pg
        .query(
            "SELECT seq, event FROM events WHERE tenant = 'acme' AND run_id = $1 ORDER BY seq",
            &[&run.run_id.as_str()],
        )
        .await
        .unwrap();
    let stored: Vec<(i64, Value)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let seqs: Vec<i64> = stored.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "gaps");
    assert_eq!(
        range.last_seq,
        seqs.len() as u64,
        "the receipt's range ends the log"
    );
    let attempt_of = |event: &Value| event["attempt"].as_u64().unwrap();
    let killed: Vec<&Value> = stored
        .iter()
        .filter(|(seq, _)| (*seq as u64) < range.first_seq)
        .map(|(_, e)| e)
        .collect();
    assert!(
        killed.len() >= seen.len(),
        "the killed attempt's live events stay: {} of {}",
        killed.len(),
        seen.len()
    );
    assert!(killed.iter().all(|e| attempt_of(e) < receipt.attempt));
    assert!(killed.iter().any(|e| attempt_of(e) == 1));
    let counted: Vec<&Value> = stored
        .iter()
        .filter(|(seq, _)| (*seq as u64) >= range.first_seq)
        .map(|(_, e)| e)
        .collect();
    assert!(counted.iter().all(|e| attempt_of(e) == receipt.attempt));
    assert_eq!(
        counted.last().unwrap()["body"]["kind"],
        "terminal_status",
        "the counted attempt ends with its terminal status"
    );

    // The follower got every event, in seq order, each once.
    let deadline = Instant::now() + WAIT;
    while seen.last().map(|e| e.seq) < Some(range.last_seq) {
        assert!(Instant::now() < deadline, "the follower stopped short");
        seen.push(next(&mut followed).await);
    }
    let followed_seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert_eq!(followed_seqs, (1..=range.last_seq).collect::<Vec<_>>());
}
