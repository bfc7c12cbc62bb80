//! `runfleet dlq list | show | redrive`: dead letters.

use std::process::ExitCode;

use runfleet_producer::inspect;

use crate::cli::{Cli, DlqCommand};
use crate::{connect, print};

pub(crate) async fn run(cli: &Cli, command: &DlqCommand) -> anyhow::Result<ExitCode> {
    let producer = connect(cli).await?;
    let client = producer.client();
    match command {
        DlqCommand::List { tenant, limit, all } => {
            let listed = inspect::dlq_list(client, tenant.as_deref(), *limit, *all).await?;
            print::report(cli, &listed, || {
                let letters = &listed.dead_letters;
                let mut text = format!("{} dead letter(s)", letters.len());
                for d in letters {
                    text.push_str(&format!(
                        "\n  {}  {}  {:<22} {}  {}{}",
                        d.dead_letter_id,
                        print::timestamp(&d.created_at),
                        d.reason,
                        d.tenant,
                        d.message.as_deref().unwrap_or_default(),
                        if d.redriven_at.is_none() {
                            ""
                        } else {
                            "  (re-driven)"
                        },
                    ));
                }
                text
            });
        }
        DlqCommand::Show { id } => {
            let shown = inspect::dlq_show(client, id).await?;
            print::report(cli, &shown, || {
                // Keys sorted, as the answer's JSON value prints them.
                serde_json::to_value(&shown)
                    .and_then(|v| serde_json::to_string_pretty(&v))
                    .unwrap_or_default()
            });
        }
        DlqCommand::Redrive { id } => {
            let done = inspect::dlq_redrive(client, id).await?;
            print::report(cli, &done, || {
                format!(
                    "re-driven: published again on {} (stream {} seq {})",
                    done.subject, done.stream, done.sequence
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
