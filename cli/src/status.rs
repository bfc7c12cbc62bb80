//! `runfleet status`: a run's commands and their receipts so far.

use std::process::ExitCode;

use runfleet_producer::{ProducerError, follow};
use runfleet_schemas::{RunId, Tenant};

use crate::cli::{Cli, StatusArgs};
use crate::{connect, print};

pub(crate) async fn run(cli: &Cli, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let tenant = Tenant::new(args.tenant.as_str()).map_err(ProducerError::from)?;
    let run_id = RunId::new(args.run.as_str()).map_err(ProducerError::from)?;
    let producer = connect(cli).await?;
    let mut receipts = follow::receipts_so_far(producer.jetstream(), &tenant, &run_id).await?;
    receipts.sort_by_key(|r| r.seq);
    if cli.json {
        println!(
            "{}",
            serde_json::json!({"tenant": tenant, "run_id": run_id, "receipts": receipts})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "run {run_id} (tenant {tenant}): {} receipt(s)",
        receipts.len()
    );
    if let Some(last) = receipts
        .iter()
        .rev()
        .find(|r| !r.budget_remaining.is_empty())
    {
        let budgets: Vec<String> = last
            .budget_remaining
            .iter()
            .map(|(currency, left)| format!("{currency} {left:.4}"))
            .collect();
        println!("  budget remaining: {}", budgets.join(", "));
    }
    for r in &receipts {
        let failure = r
            .failure
            .as_ref()
            .map(|f| format!("  {}: {}", f.kind, f.message))
            .unwrap_or_default();
        println!(
            "  seq {:>4}  {:<10} {}  attempt {}  worker {}{failure}",
            r.seq,
            print::status_word(r.status),
            r.command_id,
            r.attempt,
            r.worker_id
        );
    }
    Ok(ExitCode::SUCCESS)
}
