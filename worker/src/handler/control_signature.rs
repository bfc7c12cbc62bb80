//! The check of a signed `control.cancel`, when the fleet requires one
//! (`RUNFLEET_REQUIRE_SIGNED_CONTROL`; `schemas/README.md`, "Signed
//! cancels"): the three headers, the time, the Ed25519 signature of the
//! subject, time and body by the signer's NKey, the signer's registration
//! for the tenant, and that the signature was not accepted for another
//! stored message before. Cheap checks first; the database last.

use async_nats::jetstream;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use runfleet_schemas::api::is_user_public_key;
use runfleet_schemas::control_signature::{
    MAX_SKEW_MS, SIGNATURE, SIGNED_AT, SIGNER, signed_bytes,
};

use super::{Delivery, Shared};
use crate::db::DbError;

/// Why a cancel's signature is refused (the dead letter's message).
pub(crate) type Refusal = String;

/// Checks the signature of a cancel of `tenant`: `Ok(Ok(()))` when it is
/// accepted (and recorded, so another message carrying it is a replay),
/// `Ok(Err(why))` when it is refused.
///
/// # Errors
/// [`DbError`] when the registry cannot be read (the delivery is retried).
pub(crate) async fn check(
    shared: &Shared,
    message: &jetstream::Message,
    delivery: &Delivery,
    tenant: &str,
) -> Result<Result<(), Refusal>, DbError> {
    // Fresh as of when JetStream stored it (the server's clock, which a
    // client cannot set), not as of this delivery: a cancel retried after
    // a database failure, or delivered after a backlog, stays valid; a
    // copy published again later (a replay, a re-drive) does not.
    let published_ms = u64::try_from(delivery.published.timestamp_millis()).unwrap_or(0);
    let (signer, signature) = match verify(message, delivery, published_ms) {
        Ok(checked) => checked,
        Err(why) => return Ok(Err(why)),
    };
    if !shared.journal.is_signer(tenant, &signer).await? {
        return Ok(Err(format!(
            "signer {signer} is not registered for tenant {tenant} (signer.add; removed keys are refused)"
        )));
    }
    match shared
        .journal
        .accept_signature(&signature, delivery.stream_sequence)
        .await?
    {
        Some(first) if first == delivery.stream_sequence => Ok(Ok(())),
        Some(first) => Ok(Err(format!(
            "replayed: this signature was already accepted for another message (stream sequence {first})"
        ))),
        None => Ok(Err(
            "replayed: this signature was accepted for another message at the same moment".into(),
        )),
    }
}

/// The checks that need no database: headers, freshness against
/// `published_ms` (when the stream stored the message), the signature
/// itself. The signer and the signature's text when they pass.
fn verify(
    message: &jetstream::Message,
    delivery: &Delivery,
    published_ms: u64,
) -> Result<(String, String), Refusal> {
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("missing header {name}: this fleet accepts only signed cancels"))
    };
    let (signer, signed_at, signature) = (header(SIGNER)?, header(SIGNED_AT)?, header(SIGNATURE)?);
    let signed_at_ms: u64 = signed_at.parse().map_err(|_| {
        format!("{SIGNED_AT}: expected Unix time in milliseconds, found {signed_at:?}")
    })?;
    let skew = published_ms.abs_diff(signed_at_ms);
    if skew > MAX_SKEW_MS {
        let direction = if signed_at_ms < published_ms {
            "before"
        } else {
            "after"
        };
        return Err(format!(
            "stale: signed {} s {direction} it was published (at most {} s either way)",
            skew / 1000,
            MAX_SKEW_MS / 1000
        ));
    }
    if !is_user_public_key(&signer) {
        return Err(format!(
            "{SIGNER}: expected a public user NKey (`U…`, 56 characters), found {:?}",
            crate::text::head(&signer, 64)
        ));
    }
    let key = nkeys::KeyPair::from_public_key(&signer)
        .map_err(|err| format!("{SIGNER}: not a valid NKey ({err})"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(&signature)
        .map_err(|err| format!("{SIGNATURE}: not base64url without padding ({err})"))?;
    let signed = signed_bytes(&delivery.subject, signed_at_ms, &message.payload);
    key.verify(&signed, &bytes).map_err(|_| {
        format!(
            "the signature does not verify for signer {signer} (signed another body, subject or time, or with another key)"
        )
    })?;
    Ok((signer, signature))
}
