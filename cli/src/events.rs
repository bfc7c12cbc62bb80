//! `runfleet events`: a run's events in seq order, each once; with
//! `--follow`, new ones as they come.

use std::process::ExitCode;

use futures::StreamExt;
use runfleet_producer::{ProducerError, follow};
use runfleet_schemas::{Event, EventBody};

use crate::cli::{Cli, EventsArgs};
use crate::{connect, print};

pub(crate) async fn run(cli: &Cli, args: &EventsArgs) -> anyhow::Result<ExitCode> {
    let (tenant, run_id) = args.target.parse().map_err(ProducerError::from)?;
    let producer = connect(cli).await?;
    let show = |event: &Event| {
        print::report(cli, event, || {
            // `a<n>`: the command's attempt (an earlier one ended without a receipt).
            let attempt = event
                .attempt
                .map_or_else(|| "-".to_owned(), |a| format!("a{a}"));
            let body = match &event.body {
                // Its base64 is for machines (`--json`, `runfleet wait --output`).
                EventBody::ResultChunk {
                    index,
                    count,
                    digest,
                    data,
                } => format!(
                    "result_chunk {}/{count} of {digest} ({} bytes of base64)",
                    index + 1,
                    data.len()
                ),
                body => serde_json::to_string(body).unwrap_or_default(),
            };
            format!(
                "{:>5}  {}  {attempt:>3}  {body}",
                event.seq,
                event.at.format("%H:%M:%S%.3f"),
            )
        });
    };
    if args.follow {
        let events = follow::events(producer.jetstream(), &tenant, &run_id, args.from).await?;
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            show(&event?);
        }
    } else {
        let events =
            follow::events_so_far(producer.jetstream(), &tenant, &run_id, args.from).await?;
        for event in &events {
            show(event);
        }
    }
    Ok(ExitCode::SUCCESS)
}
