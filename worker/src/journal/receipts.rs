//! Receipts: the fenced commit of a claimed command's outcome, and the
//! write-once receipt of a command that was not executed.

use super::*;
use crate::db::{Context, command_subject};

impl Journal {
    /// Commits a claimed command's events, receipt and state in one fenced
    /// transaction; `receipt` and `events` (a JSON array) are serialized.
    ///
    /// # Errors
    /// [`DbError`] on database failure (nothing is committed).
    pub async fn complete_command(
        &self,
        receipt: &Receipt,
        receipt_json: bytes::Bytes,
        events: bytes::Bytes,
        run_change: RunChange,
    ) -> Result<Complete, DbError> {
        let RunChange {
            status: run_status,
            failure_kind,
            reason,
            spent,
        } = run_change;
        let spent = spent
            .map(|s| serde_json::to_vec(&s))
            .transpose()
            .map_err(|e| DbError::Unexpected(e.to_string()))?;
        self.completes
            .call(CompleteRequest {
                tenant: receipt.tenant.to_string(),
                run_id: receipt.run_id.to_string(),
                command_id: receipt.command_id.to_string(),
                seq: i64::try_from(receipt.seq).unwrap_or(i64::MAX),
                token: i64::try_from(receipt.fencing_token).unwrap_or(i64::MAX),
                attempt: i64::try_from(receipt.attempt).unwrap_or(i64::MAX),
                status: status_str(receipt.status),
                receipt: RawJson(receipt_json),
                events: RawJson(events),
                run_status: run_status.map(|s| s.as_str()),
                failure_kind: failure_kind.map(FailureKind::as_str),
                reason,
                spent: spent.map(|s| RawJson(s.into())),
            })
            .await
    }

    /// Records the receipt of a command that was not executed under a claim;
    /// returns the receipt that is stored (an earlier one wins).
    ///
    /// # Errors
    /// [`DbError`] on database failure.
    pub async fn record_receipt(&self, receipt: &Receipt) -> Result<Value, DbError> {
        let subject = || {
            command_subject(
                receipt.tenant.as_str(),
                receipt.run_id.as_str(),
                receipt.command_id.as_str(),
            )
        };
        let conn = self
            .pool
            .get()
            .await
            .during("runfleet_record_receipt", subject)?;
        let receipt_json =
            serde_json::to_value(receipt).map_err(|e| DbError::Unexpected(e.to_string()))?;
        let row = conn
            .query_one(
                "SELECT runfleet_record_receipt($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &receipt.tenant.as_str(),
                    &receipt.run_id.as_str(),
                    &receipt.command_id.as_str(),
                    &i64::try_from(receipt.seq).unwrap_or(i64::MAX),
                    &i64::try_from(receipt.attempt).unwrap_or(i64::MAX),
                    &status_str(receipt.status),
                    &receipt_json,
                ],
            )
            .await
            .during("runfleet_record_receipt", subject)?;
        row.get::<_, Option<Value>>(0)
            .ok_or_else(|| DbError::Unexpected("record_receipt stored nothing".into()))
    }
}
