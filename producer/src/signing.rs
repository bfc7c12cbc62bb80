//! Signing cancels with an NKey (`schemas/README.md`, "Signed cancels"):
//! a fleet that requires it accepts a `control.cancel` only with the three
//! signature headers made here, by a key registered for the tenant.

use std::sync::Arc;

use async_nats::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use runfleet_schemas::control_signature::{SIGNATURE, SIGNED_AT, SIGNER, signed_bytes};

use crate::ProducerError;

/// A signing key: an NKey user seed (`SU…`).
#[derive(Clone)]
pub struct Signer {
    key: Arc<nkeys::KeyPair>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the seed.
        f.debug_struct("Signer")
            .field("public_key", &self.public_key())
            .finish()
    }
}

impl Signer {
    /// The signer of a user seed (`SU…`, as `nk -gen user` or
    /// [`Signer::generate`] prints it).
    ///
    /// # Errors
    /// [`ProducerError::Auth`] when `seed` is not a user seed.
    pub fn from_seed(seed: &str) -> Result<Signer, ProducerError> {
        let refuse = |detail: String| ProducerError::Auth {
            setting: "signing key".into(),
            detail,
        };
        let key = nkeys::KeyPair::from_seed(seed.trim())
            .map_err(|err| refuse(format!("not an NKey seed ({err})")))?;
        if !key.public_key().starts_with('U') {
            return Err(refuse(
                "not a user seed (`SU…`); make one with `runfleet signer generate`".into(),
            ));
        }
        Ok(Signer { key: Arc::new(key) })
    }

    /// A new random user key: its seed (keep it secret) and signer.
    pub fn generate() -> (String, Signer) {
        let key = nkeys::KeyPair::new_user();
        let seed = key.seed().unwrap_or_default();
        (seed, Signer { key: Arc::new(key) })
    }

    /// The public key to register (`signer.add`).
    pub fn public_key(&self) -> String {
        self.key.public_key()
    }

    /// Adds the signature headers of `body` published on `subject` now.
    pub fn sign(&self, headers: &mut HeaderMap, subject: &str, body: &[u8]) {
        let now = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        self.sign_at(headers, subject, body, now);
    }

    /// Adds the signature headers as of `signed_at_ms` (Unix milliseconds).
    pub fn sign_at(&self, headers: &mut HeaderMap, subject: &str, body: &[u8], signed_at_ms: u64) {
        // Signing with a key made from a seed cannot fail.
        let signature = self
            .key
            .sign(&signed_bytes(subject, signed_at_ms, body))
            .unwrap_or_default();
        headers.insert(SIGNER, self.public_key().as_str());
        headers.insert(SIGNED_AT, signed_at_ms.to_string().as_str());
        headers.insert(SIGNATURE, URL_SAFE_NO_PAD.encode(signature).as_str());
    }
}
