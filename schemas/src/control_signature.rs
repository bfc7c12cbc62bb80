//! What a signed `control.cancel` signs, and the headers that carry it
//! (`schemas/README.md`, "Signed cancels").
//!
//! The signer's seed (an NKey user seed, `SU…`) signs with Ed25519 the
//! bytes `runfleet-control-v1\n<subject>\n<signed_at>\n<body>`, where
//! `signed_at` is Unix time in milliseconds as decimal digits. The headers
//! carry the public key ([`SIGNER`]), `signed_at` ([`SIGNED_AT`]) and the
//! signature in base64url without padding ([`SIGNATURE`]). Signing and
//! checking need an Ed25519 implementation, which this crate leaves to its
//! users (the worker and the producer use the `nkeys` crate).

/// The signer's public NKey (`U…`).
pub const SIGNER: &str = "Runfleet-Signer";
/// When it was signed: Unix time in milliseconds.
pub const SIGNED_AT: &str = "Runfleet-Signed-At";
/// The Ed25519 signature of [`signed_bytes`], base64url without padding.
pub const SIGNATURE: &str = "Runfleet-Signature";

/// How far `Runfleet-Signed-At` may be from the worker's clock, either way.
pub const MAX_SKEW_MS: u64 = 300_000;

/// The bytes a signature covers: the domain, the subject, the time, the body.
///
/// ```
/// let bytes = runfleet_schemas::control_signature::signed_bytes(
///     "runfleet.ctl.acme.r1", 1_700_000_000_000, b"{}");
/// assert_eq!(bytes, b"runfleet-control-v1\nrunfleet.ctl.acme.r1\n1700000000000\n{}");
/// ```
pub fn signed_bytes(subject: &str, signed_at_ms: u64, body: &[u8]) -> Vec<u8> {
    let head = format!("runfleet-control-v1\n{subject}\n{signed_at_ms}\n");
    let mut bytes = Vec::with_capacity(head.len() + body.len());
    bytes.extend_from_slice(head.as_bytes());
    bytes.extend_from_slice(body);
    bytes
}
