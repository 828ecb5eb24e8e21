//! Soft delete (sets `deleted_at`), permanent delete (the row goes, its history stays with the
//! deletion recorded), and restore; each one version, in its own transaction or the caller's.

use super::super::schema::{table, Schema};
use super::{is_retryable_tx_error, now_micros, Audit};
use crate::connection::Connection;
use crate::error::Result;
use crate::value::Value;

impl Connection {
    pub(crate) async fn delete_entity_impl(
        &mut self,
        entity: &str,
        id: &str,
        permanent: bool,
        audit: &Audit,
    ) -> Result<bool> {
        let schema = self.entity_schema(entity, false).await?;
        if !schema.exists {
            return Ok(false);
        }
        in_own_tx!(self, is_retryable_tx_error, {
            self.delete_inner(entity, &schema, id, permanent, audit)
                .await
        })
    }

    async fn delete_inner(
        &mut self,
        entity: &str,
        schema: &Schema,
        id: &str,
        permanent: bool,
        audit: &Audit,
    ) -> Result<bool> {
        let now = now_micros();
        let ids = [id.to_owned()];
        if permanent {
            // Record the last state (as deleted) before the row goes; history stays.
            let recorded = self
                .append_history(entity, schema, &ids, now, audit, true)
                .await?;
            let out = self
                .query_full(
                    &format!("DELETE FROM [{}] WHERE [id] = ?", table(entity)),
                    vec![Value::from(id)],
                )
                .await?;
            return Ok(recorded > 0 && out.rows_affected > 0);
        }
        let out = self
            .query_full(
                &format!(
                    "UPDATE [{}] SET [deleted_at] = ?, [updated_at] = ?, [updated_by] = ?, [version] = [version] + 1 WHERE [id] = ? AND [deleted_at] IS NULL",
                    table(entity)
                ),
                vec![Value::Timestamp(now), Value::Timestamp(now), Value::from(audit.user_id.clone()), Value::from(id)],
            )
            .await?;
        if out.rows_affected == 0 {
            return Ok(false);
        }
        self.append_history(entity, schema, &ids, now, audit, false)
            .await?;
        Ok(true)
    }

    pub(crate) async fn restore_entity_impl(
        &mut self,
        entity: &str,
        id: &str,
        audit: &Audit,
    ) -> Result<bool> {
        let schema = self.entity_schema(entity, false).await?;
        if !schema.exists {
            return Ok(false);
        }
        in_own_tx!(self, is_retryable_tx_error, {
            self.restore_inner(entity, &schema, id, audit).await
        })
    }

    async fn restore_inner(
        &mut self,
        entity: &str,
        schema: &Schema,
        id: &str,
        audit: &Audit,
    ) -> Result<bool> {
        let now = now_micros();
        let out = self
            .query_full(
                &format!(
                    "UPDATE [{}] SET [deleted_at] = NULL, [updated_at] = ?, [updated_by] = ?, [version] = [version] + 1 WHERE [id] = ? AND [deleted_at] IS NOT NULL",
                    table(entity)
                ),
                vec![Value::Timestamp(now), Value::from(audit.user_id.clone()), Value::from(id)],
            )
            .await?;
        if out.rows_affected == 0 {
            return Ok(false);
        }
        self.append_history(entity, schema, &[id.to_owned()], now, audit, false)
            .await?;
        Ok(true)
    }
}
