//! The work consumer's backlog, as the benchmark and the chaos suite read it.

use async_nats::jetstream::{self, consumer::PullConsumer};
use runfleet_schemas::subjects;

/// The shared work consumer's (pending, waiting for an ack) messages.
///
/// # Errors
/// When the consumer or its info cannot be read.
pub async fn work_backlog(js: &jetstream::Context) -> Result<(u64, usize), async_nats::Error> {
    let mut consumer: PullConsumer = js
        .get_consumer_from_stream(runfleet_worker::setup::WORK_CONSUMER, subjects::WORK_STREAM)
        .await?;
    let info = consumer.info().await?;
    Ok((info.num_pending, info.num_ack_pending))
}
