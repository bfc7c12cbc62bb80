//! Results larger than a receipt carries, as ordered `result_chunk` events.
//!
//! A command's result whose JSON text is over [`MAX_RECEIPT_OUTPUT_BYTES`]
//! (and at most [`MAX_OUTPUT_BYTES`]) travels as `count` events of kind
//! `result_chunk`: chunk `index` holds, base64-encoded, bytes
//! `index × RESULT_CHUNK_BYTES` onwards of that text; its receipt carries
//! [`OutputChunks`] (count, length, SHA-256) instead of `output`. [`split`]
//! makes the chunks (the worker), [`Reassembly`] joins and verifies them
//! (the producers).
//!
//! ```
//! use runfleet_schemas::result_chunks::{split, Reassembly};
//!
//! let value = serde_json::json!({"blob": "x".repeat(300_000)});
//! let text = value.to_string();
//! let (chunks, bodies) = split(&text);
//! assert_eq!(chunks.count, 2);
//! let mut joined = Reassembly::new(&chunks).unwrap();
//! for body in &bodies {
//!     joined.add(body).unwrap();
//! }
//! assert_eq!(joined.finish().unwrap(), value);
//! ```
//!
//! [`MAX_RECEIPT_OUTPUT_BYTES`]: crate::MAX_RECEIPT_OUTPUT_BYTES

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::EventBody;

/// The most a command's result may hold, in bytes of JSON text; a larger
/// one is cut to the tail of its text (`output_truncated`).
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024 * 1024;

/// Bytes of the result's text per chunk (256 KiB once base64-encoded, well
/// under NATS's default 1 MiB `max_payload`).
pub const RESULT_CHUNK_BYTES: usize = 192 * 1024;

/// What a receipt says of a result sent as chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputChunks {
    /// How many `result_chunk` events hold it.
    #[schemars(range(min = 1))]
    pub count: u64,
    /// The length of its JSON text, in bytes (UTF-8).
    pub bytes: u64,
    /// `sha256:` and the 64 lowercase hex digits of the SHA-256 of that text.
    #[schemars(regex(pattern = r"^sha256:[0-9a-f]{64}$"))]
    pub digest: String,
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut text = String::with_capacity(7 + 64);
    text.push_str("sha256:");
    for byte in hash {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// The chunks of `text` (a result's JSON text) and what its receipt says of them.
pub fn split(text: &str) -> (OutputChunks, Vec<EventBody>) {
    let bytes = text.as_bytes();
    let digest = digest(bytes);
    let count = bytes.len().div_ceil(RESULT_CHUNK_BYTES).max(1) as u64;
    let bodies = (0..count)
        .map(|index| {
            let start = index as usize * RESULT_CHUNK_BYTES;
            let end = (start + RESULT_CHUNK_BYTES).min(bytes.len());
            EventBody::ResultChunk {
                index,
                count,
                digest: digest.clone(),
                data: STANDARD.encode(&bytes[start..end]),
            }
        })
        .collect();
    let chunks = OutputChunks {
        count,
        bytes: bytes.len() as u64,
        digest,
    };
    (chunks, bodies)
}

/// Why chunks could not be joined into the result.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    /// A chunk names another result (count or digest differ from the receipt's).
    #[error("result chunk {index} belongs to another result (count {count}, {digest})")]
    Foreign {
        /// The chunk's index.
        index: u64,
        /// The count it names.
        count: u64,
        /// The digest it names.
        digest: String,
    },
    /// A chunk's index is not below the count.
    #[error("result chunk index {index} is out of range (count {count})")]
    OutOfRange {
        /// The chunk's index.
        index: u64,
        /// The receipt's count.
        count: u64,
    },
    /// A chunk's data is not base64.
    #[error("result chunk {index}: data is not base64 ({cause})")]
    NotBase64 {
        /// The chunk's index.
        index: u64,
        /// The decoder's message.
        cause: String,
    },
    /// Chunks are missing.
    #[error("result chunks missing: {missing} of {count} (first missing index {first})")]
    Missing {
        /// How many.
        missing: u64,
        /// The receipt's count.
        count: u64,
        /// The first missing index.
        first: u64,
    },
    /// The joined bytes are not as long as the receipt says.
    #[error("the joined result is {found} bytes, the receipt says {expected}")]
    Length {
        /// The receipt's `bytes`.
        expected: u64,
        /// What the chunks hold.
        found: u64,
    },
    /// The joined bytes' digest is not the receipt's.
    #[error("the joined result's digest is {found}, the receipt says {expected}")]
    Digest {
        /// The receipt's digest.
        expected: String,
        /// The joined bytes'.
        found: String,
    },
    /// The joined bytes are not JSON.
    #[error("the joined result is not JSON: {0}")]
    NotJson(String),
    /// The receipt's `count` and `bytes` disagree, or `bytes` is over the bound.
    #[error(
        "the receipt's output_chunks are inconsistent: {count} chunks of {bytes} bytes (expected {expected} chunks; at most {MAX_OUTPUT_BYTES} bytes)"
    )]
    Inconsistent {
        /// The receipt's `count`.
        count: u64,
        /// The receipt's `bytes`.
        bytes: u64,
        /// The count `bytes` makes.
        expected: u64,
    },
    /// The receipt has chunks but no event range to find them in.
    #[error("the receipt has output_chunks but no events range")]
    NoEvents,
}

/// Chunks of one result collected in any order, then joined and verified.
#[derive(Debug)]
pub struct Reassembly {
    expected: OutputChunks,
    parts: Vec<Option<Vec<u8>>>,
}

impl Reassembly {
    /// Collects the chunks of the result a receipt describes.
    ///
    /// # Errors
    /// [`ChunkError::Inconsistent`] when its `count` is not what `bytes`
    /// makes, or `bytes` is over [`MAX_OUTPUT_BYTES`] (nothing is allocated
    /// for a count a receipt merely claims).
    pub fn new(expected: &OutputChunks) -> Result<Reassembly, ChunkError> {
        let chunk = RESULT_CHUNK_BYTES as u64;
        let count = expected.bytes.div_ceil(chunk).max(1);
        if expected.count != count || expected.bytes > MAX_OUTPUT_BYTES as u64 {
            return Err(ChunkError::Inconsistent {
                count: expected.count,
                bytes: expected.bytes,
                expected: count,
            });
        }
        Ok(Reassembly {
            expected: expected.clone(),
            parts: vec![None; count as usize],
        })
    }

    /// Takes one event body; anything but a `result_chunk` is ignored, and
    /// a chunk seen before replaces its copy.
    ///
    /// # Errors
    /// [`ChunkError`] when the chunk belongs to another result or is not base64.
    pub fn add(&mut self, body: &EventBody) -> Result<(), ChunkError> {
        let EventBody::ResultChunk {
            index,
            count,
            digest,
            data,
        } = body
        else {
            return Ok(());
        };
        if *count != self.expected.count || *digest != self.expected.digest {
            return Err(ChunkError::Foreign {
                index: *index,
                count: *count,
                digest: digest.clone(),
            });
        }
        let slot = usize::try_from(*index)
            .ok()
            .and_then(|i| self.parts.get_mut(i))
            .ok_or(ChunkError::OutOfRange {
                index: *index,
                count: *count,
            })?;
        let bytes = STANDARD.decode(data).map_err(|err| ChunkError::NotBase64 {
            index: *index,
            cause: err.to_string(),
        })?;
        *slot = Some(bytes);
        Ok(())
    }

    /// Whether every chunk is in.
    pub fn is_complete(&self) -> bool {
        self.parts.iter().all(Option::is_some)
    }

    /// The joined, verified JSON text's bytes.
    ///
    /// # Errors
    /// [`ChunkError`] when chunks are missing, or the length or digest differ.
    pub fn finish_bytes(self) -> Result<Vec<u8>, ChunkError> {
        let missing = self.parts.iter().filter(|p| p.is_none()).count() as u64;
        if let Some(first) = self.parts.iter().position(Option::is_none) {
            return Err(ChunkError::Missing {
                missing,
                count: self.expected.count,
                first: first as u64,
            });
        }
        let joined: Vec<u8> = self.parts.into_iter().flatten().flatten().collect();
        if joined.len() as u64 != self.expected.bytes {
            return Err(ChunkError::Length {
                expected: self.expected.bytes,
                found: joined.len() as u64,
            });
        }
        let found = digest(&joined);
        if found != self.expected.digest {
            return Err(ChunkError::Digest {
                expected: self.expected.digest,
                found,
            });
        }
        Ok(joined)
    }

    /// The joined, verified result.
    ///
    /// # Errors
    /// [`ChunkError`] as [`Reassembly::finish_bytes`], or when it is not JSON.
    pub fn finish(self) -> Result<serde_json::Value, ChunkError> {
        let bytes = self.finish_bytes()?;
        serde_json::from_slice(&bytes).map_err(|err| ChunkError::NotJson(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks_of(value: &serde_json::Value) -> (OutputChunks, Vec<EventBody>) {
        split(&value.to_string())
    }

    #[test]
    fn chunks_join_in_any_order_and_multibyte_text_survives_cuts() {
        // 'é' is two bytes: some chunk boundary falls inside one.
        let value = serde_json::json!({"text": "é".repeat(400_000), "n": 1});
        let (chunks, mut bodies) = chunks_of(&value);
        assert_eq!(chunks.count, 5);
        bodies.reverse();
        let mut joined = Reassembly::new(&chunks).unwrap();
        for body in &bodies {
            joined.add(body).unwrap();
        }
        assert!(joined.is_complete());
        assert_eq!(joined.finish().unwrap(), value);
    }

    #[test]
    fn a_missing_or_altered_chunk_is_named() {
        let value = serde_json::json!("x".repeat(500_000));
        let (chunks, bodies) = chunks_of(&value);
        let mut joined = Reassembly::new(&chunks).unwrap();
        joined.add(&bodies[0]).unwrap();
        joined.add(&bodies[2]).unwrap();
        assert_eq!(
            joined.finish().unwrap_err().to_string(),
            "result chunks missing: 1 of 3 (first missing index 1)"
        );

        let mut altered = bodies.clone();
        if let EventBody::ResultChunk { data, .. } = &mut altered[1] {
            *data = STANDARD.encode(vec![b'y'; RESULT_CHUNK_BYTES]);
        }
        let mut joined = Reassembly::new(&chunks).unwrap();
        for body in &altered {
            joined.add(body).unwrap();
        }
        assert!(matches!(joined.finish(), Err(ChunkError::Digest { .. })));

        let claimed = OutputChunks {
            count: 1 << 40,
            ..chunks.clone()
        };
        assert!(matches!(
            Reassembly::new(&claimed),
            Err(ChunkError::Inconsistent { .. })
        ));

        let other = chunks_of(&serde_json::json!("z".repeat(500_000))).1;
        let mut joined = Reassembly::new(&chunks).unwrap();
        assert!(matches!(
            joined.add(&other[0]),
            Err(ChunkError::Foreign { .. })
        ));
    }
}
