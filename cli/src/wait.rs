//! `runfleet wait`: a command's receipt (exit code 3 when it did not
//! complete, 4 when none came in time); with `--output FILE`, its whole
//! result written to a file.

use std::process::ExitCode;

use anyhow::Context;
use runfleet_producer::{ProducerError, follow, result};

use crate::cli::{Cli, WaitArgs};
use crate::{connect, print};

pub(crate) async fn run(cli: &Cli, args: &WaitArgs) -> anyhow::Result<ExitCode> {
    let (tenant, run_id) = args.target.parse().map_err(ProducerError::from)?;
    let producer = connect(cli).await?;
    let progress = print::waiting(cli, &args.command, args.timeout);
    let receipt = follow::wait_for_receipt(
        producer.jetstream(),
        &tenant,
        &run_id,
        &args.command,
        args.timeout,
    )
    .await;
    progress.finish_and_clear();
    let receipt = receipt?;
    let code = print::receipt(cli, &receipt);
    if let Some(path) = &args.output {
        if receipt.output_truncated {
            eprintln!(
                "warning: the result was over 64 MiB and is cut to its last 64 KiB; {} gets that tail",
                path.display()
            );
        }
        let bytes = match result::receipt_output_bytes(producer.jetstream(), &receipt).await? {
            Some(bytes) => Some(bytes),
            None => receipt
                .output
                .as_ref()
                .map(serde_json::to_vec)
                .transpose()?,
        };
        match bytes {
            Some(bytes) => std::fs::write(path, bytes)
                .with_context(|| format!("writing the result to {}", path.display()))?,
            None => eprintln!("the command has no result: {} not written", path.display()),
        }
    }
    Ok(code)
}
