//! `runfleet publish FILE`: validate a producer's message, then publish it
//! on its subject (awaiting the PubAck).

use std::process::ExitCode;

use runfleet_schemas::{Message, MessageKind, decode_any};

use crate::cli::{Cli, PublishArgs};
use crate::{connect, input, print};

pub(crate) async fn run(cli: &Cli, args: &PublishArgs) -> anyhow::Result<ExitCode> {
    let bytes = input::message(&args.file)?;
    let message = match decode_any(&bytes) {
        Ok(message) => message,
        Err(err) => return Ok(print::invalid(cli, &err.to_string())),
    };
    let producer = connect(cli).await?;
    let accepted = match &message {
        Message::RunCreate(m) => producer.publish(m).await?,
        Message::CommandCreate(m) => producer.publish(m).await?,
        Message::ControlCancel(m) => producer.publish(m).await?,
        other => {
            let kind: MessageKind = other.kind();
            return Ok(print::invalid(
                cli,
                &format!("{kind} messages are published by the fleet, not by producers"),
            ));
        }
    };
    let json = serde_json::json!({
        "kind": message.kind().as_str(),
        "stream": accepted.stream,
        "sequence": accepted.sequence,
        "duplicate": accepted.duplicate,
    });
    print::report(cli, &json, || {
        let verb = if accepted.duplicate {
            "already accepted:"
        } else {
            "published"
        };
        format!(
            "{verb} {} (stream {} seq {})",
            message.kind(),
            accepted.stream,
            accepted.sequence
        )
    });
    Ok(ExitCode::SUCCESS)
}
