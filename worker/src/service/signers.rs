//! `signer.add`, `signer.list`, `signer.remove`: the public NKeys that may
//! sign a tenant's cancels, rows of `control_signers` (see
//! `V15__control_signers.sql`), read by every signed cancel
//! ([`crate::handler`]'s signature check), so a change holds from the next
//! cancel on, on every worker.

use runfleet_schemas::api::{
    SignerAddRequest, SignerAnswer, SignerList, SignerListRequest, SignerRemoveRequest,
};

use super::Api;
use super::error::ApiError;

/// The columns [`answer`] reads.
const COLUMNS: &str = "tenant, public_key, note, added_at";

fn answer(row: &tokio_postgres::Row, removed: bool) -> Result<SignerAnswer, ApiError> {
    Ok(SignerAnswer {
        tenant: row.try_get(0)?,
        public_key: row.try_get(1)?,
        note: row.try_get(2)?,
        added_at: row.try_get(3)?,
        removed,
    })
}

impl Api {
    /// `signer.add`: registers a key (again: answered unchanged).
    pub(super) async fn signer_add(
        &self,
        request: SignerAddRequest,
    ) -> Result<SignerAnswer, ApiError> {
        // The format is checked with the request; the checksum here.
        nkeys::KeyPair::from_public_key(&request.public_key).map_err(|err| {
            ApiError::BadRequest(format!("`public_key`: not a valid NKey ({err})"))
        })?;
        let conn = self.pool.get().await?;
        let row = conn
            .query_one(
                // Added again (even concurrently): answered as it is.
                &format!(
                    "INSERT INTO control_signers (tenant, public_key, note) VALUES ($1, $2, $3) \
                     ON CONFLICT (tenant, public_key) DO UPDATE SET note = control_signers.note \
                     RETURNING {COLUMNS}"
                ),
                &[&request.tenant, &request.public_key, &request.note],
            )
            .await?;
        tracing::info!(tenant = %request.tenant, public_key = %request.public_key, "control signer registered");
        answer(&row, false)
    }

    /// `signer.list`: the registrations, by tenant and key.
    pub(super) async fn signer_list(
        &self,
        request: SignerListRequest,
    ) -> Result<SignerList, ApiError> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM control_signers \
                      WHERE $1::text IS NULL OR tenant = $1 ORDER BY tenant, public_key"
                ),
                &[&request.tenant],
            )
            .await?;
        let signers = rows
            .iter()
            .map(|row| answer(row, false))
            .collect::<Result<_, _>>()?;
        Ok(SignerList { signers })
    }

    /// `signer.remove`: removes a registration.
    pub(super) async fn signer_remove(
        &self,
        request: SignerRemoveRequest,
    ) -> Result<SignerAnswer, ApiError> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                &format!(
                    "DELETE FROM control_signers WHERE tenant = $1 AND public_key = $2 \
                     RETURNING {COLUMNS}"
                ),
                &[&request.tenant, &request.public_key],
            )
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "no signer {} for tenant {}",
                    request.public_key, request.tenant
                ))
            })?;
        tracing::info!(tenant = %request.tenant, public_key = %request.public_key, "control signer removed");
        answer(&row, true)
    }
}
