//! The checks after a scenario: nothing lost, nothing twice, nothing out of
//! order, nothing executed after its commit, every dead letter explained.

use std::collections::HashMap;

use async_nats::jetstream::consumer::{self, DeliverPolicy};
use futures::StreamExt;
use runfleet_schemas::subjects;

use runfleet_tests::{Effect, read_effects};

use crate::stack::Stack;

/// What the checks found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Commands with no receipt in PostgreSQL.
    pub lost: i64,
    /// Commands whose receipt is missing from `RUNFLEET_RECEIPTS`.
    pub unpublished: i64,
    /// Receipts on the stream beyond the first of their command.
    pub duplicates: i64,
    /// Receipts that are not `completed` (each command is a plain echo).
    pub not_completed: i64,
    /// Receipts without exactly one execution of their own delivery.
    pub unbacked: i64,
    /// Runs whose counted executions are not in seq order.
    pub order_violations: i64,
    /// Executions of a later delivery than the receipt's (after its commit).
    pub after_commit: i64,
    /// Dead letters (none is expected: every one is listed).
    pub dead_letters: Vec<String>,
}

impl Verdict {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.unpublished == 0
            && self.duplicates == 0
            && self.not_completed == 0
            && self.unbacked == 0
            && self.order_violations == 0
            && self.after_commit == 0
            && self.dead_letters.is_empty()
    }
}

/// Checks `total` commands against PostgreSQL, the receipts stream and the
/// effects file.
pub async fn verify(stack: &Stack, total: i64) -> anyhow::Result<Verdict> {
    let (pg, _driver) = stack.db.connect().await?;
    let rows = pg
        .query(
            "SELECT command_id, (result->>'attempt')::bigint, result->>'worker_id', status \
               FROM journal WHERE step = 'receipt'",
            &[],
        )
        .await?;
    let mut verdict = Verdict {
        lost: total - rows.len() as i64,
        ..Verdict::default()
    };
    let receipts: HashMap<String, (u64, String)> = rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                (r.get::<_, i64>(1) as u64, r.get::<_, String>(2)),
            )
        })
        .collect();
    verdict.not_completed = rows
        .iter()
        .filter(|r| r.get::<_, String>(3) != "completed")
        .count() as i64;

    let on_stream = receipts_on_stream(stack).await?;
    verdict.duplicates = on_stream.values().map(|n| n - 1).sum();
    verdict.unpublished = receipts
        .keys()
        .filter(|id| !on_stream.contains_key(*id))
        .count() as i64;

    // A line that does not parse backs nothing: its receipt counts as unbacked.
    let lines: Vec<Effect> = read_effects(&stack.effects_path())?
        .into_iter()
        .flatten()
        .collect();
    let mut by_command: HashMap<&str, Vec<&Effect>> = HashMap::new();
    for effect in &lines {
        by_command
            .entry(&effect.command_id)
            .or_default()
            .push(effect);
    }
    let mut counted: HashMap<&str, Vec<u64>> = HashMap::new();
    for effect in &lines {
        if let Some((attempt, worker)) = receipts.get(&effect.command_id)
            && effect.attempt == *attempt
            && &effect.worker_id == worker
        {
            counted.entry(&effect.run_id).or_default().push(effect.seq);
        }
    }
    for (command_id, (attempt, worker)) in &receipts {
        let mine = by_command
            .get(command_id.as_str())
            .map_or(&[][..], Vec::as_slice);
        let backing = mine
            .iter()
            .filter(|e| e.attempt == *attempt && &e.worker_id == worker)
            .count();
        if backing != 1 {
            verdict.unbacked += 1;
        }
        verdict.after_commit += mine.iter().filter(|e| e.attempt > *attempt).count() as i64;
    }
    verdict.order_violations = counted
        .values()
        .filter(|seqs| seqs.windows(2).any(|w| w[0] >= w[1]))
        .count() as i64;
    verdict.dead_letters = pg
        .query("SELECT reason, subject FROM dead_letters", &[])
        .await?
        .iter()
        .map(|r| format!("{} on {}", r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    Ok(verdict)
}

/// How many receipts `RUNFLEET_RECEIPTS` holds per command id.
async fn receipts_on_stream(stack: &Stack) -> anyhow::Result<HashMap<String, i64>> {
    let js = stack.jetstream().await?;
    let stream = js.get_stream(subjects::RECEIPT_STREAM).await?;
    let last = stream.get_info().await?.state.last_sequence;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut counts: HashMap<String, i64> = HashMap::new();
    while let Some(message) = messages.next().await {
        let message = message?;
        let receipt: serde_json::Value = serde_json::from_slice(&message.payload)?;
        if let Some(id) = receipt["command_id"].as_str() {
            *counts.entry(id.to_owned()).or_default() += 1;
        }
        if message
            .info()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .stream_sequence
            >= last
        {
            break;
        }
    }
    Ok(counts)
}
