//! The work consumers' backlog, as the benchmark and the chaos suite read it.

use async_nats::jetstream::{self, consumer::PullConsumer};
use runfleet_schemas::{Priority, subjects};

/// The (pending, waiting for an ack) messages of the shared work consumers,
/// every priority level together.
///
/// # Errors
/// When a consumer or its info cannot be read.
pub async fn work_backlog(js: &jetstream::Context) -> Result<(u64, usize), async_nats::Error> {
    let (mut pending, mut unacked) = (0, 0);
    for priority in Priority::ALL {
        let mut consumer: PullConsumer = js
            .get_consumer_from_stream(
                runfleet_worker::setup::work_consumer_name(priority),
                subjects::WORK_STREAM,
            )
            .await?;
        let info = consumer.info().await?;
        pending += info.num_pending;
        unacked += info.num_ack_pending;
    }
    Ok((pending, unacked))
}
