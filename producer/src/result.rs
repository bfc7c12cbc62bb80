//! A command's whole result: the receipt's `output`, or, for a result too
//! large for a receipt, its `result_chunk` events joined and verified
//! (`schemas/README.md`, "Result chunks").

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use runfleet_schemas::Receipt;
use runfleet_schemas::result_chunks::{ChunkError, Reassembly};
use serde_json::Value;

use crate::ProducerError;
use crate::follow;

/// How long [`receipt_output`] waits for a chunked result's events.
pub const CHUNK_WAIT: Duration = Duration::from_secs(60);

/// The result a receipt stands for: its `output` (`None` when it has
/// none), or its chunks read from the events stream, joined and verified
/// against the receipt's length and digest.
///
/// # Errors
/// [`ProducerError::Output`] when a chunk is missing (not on the stream
/// within [`CHUNK_WAIT`]) or the joined bytes are not the receipt's;
/// [`ProducerError::Read`] when the events stream cannot be read.
pub async fn receipt_output(
    js: &jetstream::Context,
    receipt: &Receipt,
) -> Result<Option<Value>, ProducerError> {
    let Some(bytes) = receipt_output_bytes(js, receipt).await? else {
        return Ok(receipt.output.clone());
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|err| output_error(receipt, ChunkError::NotJson(err.to_string())))
}

/// The JSON text of a chunked result, joined and verified; `None` when the
/// receipt's result is not chunked (it is then in `output`).
///
/// # Errors
/// As [`receipt_output`].
pub async fn receipt_output_bytes(
    js: &jetstream::Context,
    receipt: &Receipt,
) -> Result<Option<Vec<u8>>, ProducerError> {
    let Some(chunks) = &receipt.output_chunks else {
        return Ok(None);
    };
    let range = receipt
        .events
        .ok_or_else(|| output_error(receipt, ChunkError::NoEvents))?;
    let mut joined = Reassembly::new(chunks).map_err(|cause| output_error(receipt, cause))?;
    let events = follow::events(js, &receipt.tenant, &receipt.run_id, range.first_seq).await?;
    futures::pin_mut!(events);
    let collect = async {
        while let Some(event) = events.next().await {
            let event = event?;
            if event.seq > range.last_seq {
                break;
            }
            if event.command_id.as_ref() == Some(&receipt.command_id) {
                joined
                    .add(&event.body)
                    .map_err(|cause| output_error(receipt, cause))?;
                if joined.is_complete() {
                    break;
                }
            }
        }
        Ok::<(), ProducerError>(())
    };
    // Out of time: `finish` names what is missing.
    if let Ok(read) = tokio::time::timeout(CHUNK_WAIT, collect).await {
        read?;
    }
    joined
        .finish_bytes()
        .map(Some)
        .map_err(|cause| output_error(receipt, cause))
}

fn output_error(receipt: &Receipt, cause: ChunkError) -> ProducerError {
    ProducerError::Output {
        command_id: receipt.command_id.to_string(),
        cause,
    }
}
