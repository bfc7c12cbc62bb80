//! The signer registry and the accepted signatures of signed cancels
//! (`V15__control_signers.sql`).

use super::Journal;
use crate::db::{Context, DbError};

impl Journal {
    /// Whether `public_key` is registered to sign `tenant`'s cancels.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn is_signer(&self, tenant: &str, public_key: &str) -> Result<bool, DbError> {
        let what = || format!("signer {public_key} of tenant {tenant}");
        let conn = self.pool.get().await.during("control_signers", what)?;
        let row = conn
            .query_opt(
                "SELECT 1 FROM control_signers WHERE tenant = $1 AND public_key = $2",
                &[&tenant, &public_key],
            )
            .await
            .during("control_signers", what)?;
        Ok(row.is_some())
    }

    /// Records `signature` as accepted for the stored message at
    /// `stream_sequence`; returns the sequence it was first accepted for
    /// (another one: a replay), or `None` when a concurrent delivery took it.
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn accept_signature(
        &self,
        signature: &str,
        stream_sequence: u64,
    ) -> Result<Option<u64>, DbError> {
        let what = || format!("signature of stream sequence {stream_sequence}");
        let sequence = i64::try_from(stream_sequence).unwrap_or(i64::MAX);
        let conn = self
            .pool
            .get()
            .await
            .during("runfleet_accept_signature", what)?;
        let row = conn
            .query_one(
                "SELECT runfleet_accept_signature($1, $2)",
                &[&signature, &sequence],
            )
            .await
            .during("runfleet_accept_signature", what)?;
        Ok(row
            .get::<_, Option<i64>>(0)
            .and_then(|s| u64::try_from(s).ok()))
    }
}
