//! `runfleet cancel`: cancel a run, or one of its commands.

use std::process::ExitCode;

use runfleet_producer::{ProducerError, new_cancel};
use runfleet_schemas::{CommandId, RunId, Tenant};

use crate::cli::{CancelArgs, Cli};
use crate::{connect, print};

pub(crate) async fn run(cli: &Cli, args: &CancelArgs) -> anyhow::Result<ExitCode> {
    let tenant = Tenant::new(args.tenant.as_str()).map_err(ProducerError::from)?;
    let run_id = RunId::new(args.run.as_str()).map_err(ProducerError::from)?;
    let command_id = args
        .command
        .as_deref()
        .map(CommandId::new)
        .transpose()
        .map_err(ProducerError::from)?;
    let cancel = new_cancel(&tenant, &run_id, command_id, args.reason.clone());
    let accepted = connect(cli).await?.publish(&cancel).await?;
    let json = serde_json::json!({"run_id": run_id, "command_id": cancel.command_id, "duplicate": accepted.duplicate});
    print::report(cli, &json, || match &cancel.command_id {
        Some(c) => format!("cancel requested for command {c} of run {run_id}"),
        None => format!("cancel requested for run {run_id}"),
    });
    Ok(ExitCode::SUCCESS)
}
