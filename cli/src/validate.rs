//! `runfleet validate FILE`: check a message against the contract.

use std::process::ExitCode;

use runfleet_schemas::decode_any;

use crate::cli::{Cli, ValidateArgs};
use crate::{input, print};

pub(crate) fn run(cli: &Cli, args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let bytes = input::message(&args.file)?;
    Ok(match decode_any(&bytes) {
        Ok(message) => {
            let json = serde_json::json!({"valid": true, "kind": message.kind().as_str()});
            print::report(cli, &json, || format!("valid {}", message.kind()));
            ExitCode::SUCCESS
        }
        Err(err) => print::invalid(cli, &err.to_string()),
    })
}
