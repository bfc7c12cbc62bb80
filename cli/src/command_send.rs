//! `runfleet command send`: one turn of a run; prints its id, or with
//! `--wait` its receipt.

use std::process::ExitCode;

use runfleet_producer::{ProducerError, new_command};
use runfleet_schemas::CommandKind;

use crate::cli::{Cli, CommandSendArgs};
use crate::{connect, input, print};

pub(crate) async fn run(cli: &Cli, args: &CommandSendArgs) -> anyhow::Result<ExitCode> {
    let (tenant, run_id) = args.target.parse().map_err(ProducerError::from)?;
    let Ok(kind) =
        serde_json::from_value::<CommandKind>(serde_json::Value::String(args.kind.clone()))
    else {
        return Ok(print::invalid(
            cli,
            &format!("--kind must be turn, steer or close, not {:?}", args.kind),
        ));
    };
    let payload = match input::payload(&args.payload) {
        Ok(payload) => payload,
        Err(err) => return Ok(print::invalid(cli, &format!("{err:#}"))),
    };
    let mut command = new_command(&tenant, &run_id, args.seq, kind, payload);
    command.not_before = args.not_before;
    command.priority = args.priority;
    command.schedule_to_start_ms = match args.schedule_to_start.map(|d| d.as_millis()) {
        None => None,
        Some(0) => {
            return Ok(print::invalid(
                cli,
                "--schedule-to-start must be at least 1ms",
            ));
        }
        Some(ms) => Some(u64::try_from(ms).unwrap_or(u64::MAX)),
    };
    let producer = connect(cli).await?;
    let accepted = producer.send_command(&command).await?;
    if !args.wait {
        let json =
            serde_json::json!({"command_id": command.command_id, "duplicate": accepted.duplicate});
        print::report(cli, &json, || command.command_id.to_string());
        return Ok(ExitCode::SUCCESS);
    }
    let delay = args
        .not_before
        .and_then(|at| (at - chrono::Utc::now()).to_std().ok())
        .unwrap_or_default();
    let timeout = args.timeout + delay;
    let progress = print::waiting(cli, command.command_id.as_str(), timeout);
    let receipt = producer.wait_for_receipt(&command, timeout).await;
    progress.finish_and_clear();
    Ok(print::receipt(cli, &receipt?))
}
