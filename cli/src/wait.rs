//! `runfleet wait`: a command's receipt (exit code 3 when it did not
//! complete, 4 when none came in time).

use std::process::ExitCode;

use runfleet_producer::{ProducerError, follow};

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
    Ok(print::receipt(cli, &receipt?))
}
