//! The faults: what happens to the fleet while it works.

use std::time::{Duration, Instant};

use runfleet_schemas::subjects;

use crate::stack::Stack;

/// A fault, injected while commands are in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A random worker SIGKILLed (and replaced) about every 300 ms; once
    /// only in a short run.
    KillWorkers,
    /// The work stream's leader node SIGKILLed, restarted after 5 s.
    KillStreamLeader,
    /// PostgreSQL stopped immediately and started again.
    RestartPostgres,
    /// A worker SIGSTOPped past its lease (`ack_wait`, 10 s), then resumed.
    StopWorker,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 4] = [
        Fault::KillWorkers,
        Fault::KillStreamLeader,
        Fault::RestartPostgres,
        Fault::StopWorker,
    ];

    /// Its name in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillWorkers => "kill-workers",
            Fault::KillStreamLeader => "kill-stream-leader",
            Fault::RestartPostgres => "restart-postgres",
            Fault::StopWorker => "stop-worker",
        }
    }

    /// The share of receipts after which a one-off fault strikes (faults
    /// together strike one after another).
    pub fn at_share(self) -> f64 {
        match self {
            Fault::KillWorkers => 0.1,
            Fault::KillStreamLeader => 0.2,
            Fault::RestartPostgres => 0.4,
            Fault::StopWorker => 0.6,
        }
    }
}

/// What the faults did, for the summary.
#[derive(Debug, Default)]
pub struct Injected {
    /// Workers SIGKILLed.
    pub worker_kills: u64,
    /// Seconds from the leader's SIGKILL until the stream had a new leader.
    pub failover_s: Option<f64>,
    /// PostgreSQL restarts.
    pub pg_restarts: u64,
    /// Workers stopped past their lease.
    pub stops: u64,
}

/// Strikes the one-off `fault` now.
pub async fn strike(
    stack: &mut Stack,
    fault: Fault,
    injected: &mut Injected,
) -> anyhow::Result<()> {
    match fault {
        Fault::KillWorkers => {
            let victim = fastrand::usize(..stack.workers.len());
            stack.kill_and_replace(victim)?;
            injected.worker_kills += 1;
        }
        Fault::KillStreamLeader => {
            injected.failover_s = Some(kill_stream_leader(stack).await?);
        }
        Fault::RestartPostgres => {
            stack.db.restart_server()?;
            injected.pg_restarts += 1;
        }
        Fault::StopWorker => {
            let victim = fastrand::usize(..stack.workers.len());
            stack.workers[victim].signal("STOP");
            // Past the default lease (10 s): its commands go to others.
            tokio::time::sleep(Duration::from_secs(13)).await;
            stack.workers[victim].signal("CONT");
            injected.stops += 1;
        }
    }
    Ok(())
}

/// SIGKILLs the node leading the work stream, waits for a new leader,
/// restarts the node after 5 s; the failover's seconds.
async fn kill_stream_leader(stack: &mut Stack) -> anyhow::Result<f64> {
    let js = stack.jetstream().await?;
    let leader = leader_of(&js, subjects::WORK_STREAM).await?;
    let node = stack
        .cluster
        .node_named(&leader)
        .ok_or_else(|| anyhow::anyhow!("no node is named {leader}"))?;
    stack.cluster.nodes_mut()[node].kill();
    let killed = Instant::now();
    let js = stack.jetstream().await?;
    let failover = loop {
        if let Ok(now) = leader_of(&js, subjects::WORK_STREAM).await
            && now != leader
        {
            break killed.elapsed();
        }
        anyhow::ensure!(
            killed.elapsed() < Duration::from_secs(60),
            "no new leader of {} within 60 s",
            subjects::WORK_STREAM
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(killed.elapsed())).await;
    stack.cluster.nodes_mut()[node].restart().await?;
    Ok(failover.as_secs_f64())
}

async fn leader_of(js: &async_nats::jetstream::Context, stream: &str) -> anyhow::Result<String> {
    let mut stream = js.get_stream(stream).await?;
    let info = stream.info().await?;
    info.cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .ok_or_else(|| anyhow::anyhow!("{} has no leader", info.config.name))
}
