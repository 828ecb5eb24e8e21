//! Rolling entities back to their state at a point in time, from their history: each entity
//! that differs from its latest version recorded at or before that time gets one new version
//! with that state (or is soft-deleted when it did not exist then), appended to history like
//! any change. All in one transaction, rows locked in id order as saves lock them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::super::schema::{history_table, table, Schema};
use super::sql::next_versions_sql;
use super::CHUNK_ROWS;
use super::{column_list, columns, is_retryable_tx_error, now_micros, placeholders, Audit};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::row::Row;
use crate::value::Value;

/// What a rollback did, entity by entity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RollbackReport {
    /// Entities whose fields were set back to their earlier values.
    pub restored: u64,
    /// Entities deleted (soft or permanently) since, that existed then: back again.
    pub recreated: u64,
    /// Entities created since (or deleted then): soft-deleted.
    pub deleted: u64,
    /// Entities already in their earlier state: untouched.
    pub unchanged: u64,
}

/// One stored row: column → value as stored.
type Stored = BTreeMap<String, Value>;

fn stored(row: Row) -> Stored {
    let cols: Vec<String> = row.columns().to_vec();
    cols.into_iter().zip(row.into_values()).collect()
}

fn id_of(row: &Stored) -> Result<String> {
    match row.get("id") {
        Some(Value::Text(s)) => Ok(s.clone()),
        Some(Value::Uuid(u)) => Ok(u.to_string()),
        other => Err(Error::Internal(format!("entity row with id {other:?}"))),
    }
}

/// `state` with the NULLs of `required` fields (NOT NULL columns) replaced by `row`'s values:
/// a field added since `state` was recorded (a migration adding a NOT NULL column with a
/// default) has no earlier value, and the column cannot hold NULL, so it keeps what it holds.
fn fill_required(mut state: Stored, row: &Stored, required: &BTreeSet<String>) -> Stored {
    for f in required {
        if state.get(f).is_none_or(Value::is_null) {
            if let Some(v) = row.get(f) {
                state.insert(f.clone(), v.clone());
            }
        }
    }
    state
}

fn is_deleted(row: &Stored) -> bool {
    row.get("deleted_at").is_some_and(|v| !v.is_null())
}

/// The change one entity needs.
enum Change {
    /// Set these fields and `deleted_at` (the state then).
    Set { deleted_at: Value, state: Stored },
    /// Soft-delete it now.
    Delete,
}

impl Connection {
    /// Rolls `entity` back to its state at `at`: only `id`, or every entity.
    pub(crate) async fn rollback_impl(
        &mut self,
        entity: &str,
        id: Option<&str>,
        at: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<RollbackReport> {
        let schema = self.rollback_schema(entity).await?;
        in_own_tx!(self, is_retryable_tx_error, {
            self.rollback_inner(entity, &schema, id, at, audit).await
        })
    }

    /// Rolls one typed entity back and reads it as `T` in the same transaction, so that a
    /// state `T` cannot hold (a field added since, now required by the struct) rolls back
    /// instead of failing after the commit.
    pub(crate) async fn rollback_typed_impl<T: crate::entity::Entity>(
        &mut self,
        id: &str,
        at: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<Option<T>> {
        let entity = T::table_name();
        let schema = self.rollback_schema(entity).await?;
        in_own_tx!(self, is_retryable_tx_error, {
            match self
                .rollback_inner(entity, &schema, Some(id), at, audit)
                .await
            {
                Ok(_) => match self.get_entity_impl(entity, id, false, false).await {
                    Ok(map) => map.map(super::super::typed_api::from_map::<T>).transpose(),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        })
    }

    /// The schema of an entity to roll back: it must have tables.
    async fn rollback_schema(&mut self, entity: &str) -> Result<std::sync::Arc<Schema>> {
        let schema = self.entity_schema(entity, false).await?;
        if !schema.exists {
            return Err(Error::Entity(format!(
                "no entity {entity:?} to roll back: it has no tables"
            )));
        }
        Ok(schema)
    }

    async fn rollback_inner(
        &mut self,
        entity: &str,
        schema: &Schema,
        id: Option<&str>,
        at: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<RollbackReport> {
        let now = now_micros();
        let mut report = RollbackReport::default();
        let cols = columns(schema);
        let lock = self.dialect().lock_rows();
        // Fields whose column is NOT NULL (set by the migrator): history rows recorded before
        // the column existed hold NULL there, which is no state to go back to.
        let required = &schema.not_null;
        // 1. Entities that have a row: page by page in id order, each page locked.
        let mut after: Option<String> = None;
        loop {
            let (filter, params) = match (id, &after) {
                (Some(id), _) => (" WHERE [id] = ?", vec![Value::from(id)]),
                (None, Some(last)) => (" WHERE [id] > ?", vec![Value::from(last.as_str())]),
                (None, None) => ("", vec![]),
            };
            let sql = format!(
                "SELECT {} FROM [{}]{filter} ORDER BY [id]{}{lock} /* dal:{:x} */",
                column_list(&cols),
                table(entity),
                self.dialect().limit_offset(Some(CHUNK_ROWS as u64), None),
                schema.fingerprint()
            );
            let rows: Vec<Stored> = self
                .query_rows(&sql, params)
                .await?
                .into_iter()
                .map(stored)
                .collect();
            let Some(last) = rows.last() else { break };
            after = Some(id_of(last)?);
            let ids: Vec<String> = rows.iter().map(id_of).collect::<Result<_>>()?;
            let then = self.states_at(entity, schema, &ids, at).await?;
            let mut changes: Vec<(String, Change)> = Vec::new();
            for (row, rid) in rows.iter().zip(ids) {
                match then.get(&rid) {
                    None if is_deleted(row) => report.unchanged += 1,
                    None => {
                        report.deleted += 1;
                        changes.push((rid, Change::Delete));
                    }
                    Some(state) => {
                        let state = &fill_required(state.clone(), row, required);
                        let same_fields = schema.fields.keys().all(|f| row.get(f) == state.get(f));
                        let (now_gone, then_gone) = (is_deleted(row), is_deleted(state));
                        if same_fields && now_gone == then_gone {
                            report.unchanged += 1;
                            continue;
                        }
                        match (now_gone, then_gone) {
                            (true, false) => report.recreated += 1,
                            (false, true) => report.deleted += 1,
                            _ => report.restored += 1,
                        }
                        let deleted_at = state.get("deleted_at").cloned().unwrap_or(Value::Null);
                        changes.push((
                            rid,
                            Change::Set {
                                deleted_at,
                                state: state.clone(),
                            },
                        ));
                    }
                }
            }
            self.apply_changes(entity, schema, &changes, now, audit)
                .await?;
            if id.is_some() || rows.len() < CHUNK_ROWS {
                break;
            }
        }
        // 2. Entities deleted permanently since: back if they existed then.
        let gone = self.permanently_deleted(entity, id).await?;
        for chunk in gone.chunks(CHUNK_ROWS) {
            let then = self.states_at(entity, schema, chunk, at).await?;
            let alive: Vec<(&String, &Stored)> = chunk
                .iter()
                .filter_map(|i| then.get(i).map(|s| (i, s)))
                .filter(|(_, s)| !is_deleted(s))
                .collect();
            report.unchanged += (chunk.len() - alive.len()) as u64;
            if alive.is_empty() {
                continue;
            }
            let wanted: Vec<String> = alive.iter().map(|(i, _)| (*i).clone()).collect();
            let latest = self.latest_versions(entity, &wanted).await?;
            for (rid, state) in &alive {
                let version = latest.get(*rid).copied().unwrap_or(0) + 1;
                self.reinsert(entity, schema, rid, state, version, now, audit, required)
                    .await?;
                report.recreated += 1;
            }
            self.append_history(entity, schema, &wanted, now, audit, false)
                .await?;
        }
        Ok(report)
    }

    /// The latest history row of each of `ids` recorded at or before `at`.
    async fn states_at(
        &mut self,
        entity: &str,
        schema: &Schema,
        ids: &[String],
        at: DateTime<Utc>,
    ) -> Result<HashMap<String, Stored>> {
        let h = history_table(entity);
        let select: Vec<String> = columns(schema)
            .iter()
            .map(|c| format!("[h].[{c}]"))
            .collect();
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK_ROWS) {
            let sql = format!(
                "SELECT {} FROM [{h}] [h] JOIN (SELECT [id], MAX([version]) AS [v] FROM [{h}] WHERE [id] IN ({}) AND [history_timestamp] <= ? GROUP BY [id]) [m] ON [h].[id] = [m].[id] AND [h].[version] = [m].[v] /* dal:{:x} */",
                select.join(", "),
                placeholders(chunk.len()),
                schema.fingerprint()
            );
            let mut params: Vec<Value> = chunk.iter().map(|i| Value::from(i.as_str())).collect();
            params.push(Value::Timestamp(at));
            for row in self.query_rows(&sql, params).await? {
                let s = stored(row);
                out.insert(id_of(&s)?, s);
            }
        }
        Ok(out)
    }

    /// Ids that have history but no row.
    async fn permanently_deleted(&mut self, entity: &str, id: Option<&str>) -> Result<Vec<String>> {
        let (filter, params) = match id {
            Some(id) => (" AND [h].[id] = ?", vec![Value::from(id)]),
            None => ("", vec![]),
        };
        let sql = format!(
            "SELECT DISTINCT [h].[id] FROM [{}] [h] WHERE NOT EXISTS (SELECT 1 FROM [{}] [t] WHERE [t].[id] = [h].[id]){filter} ORDER BY [h].[id]",
            history_table(entity),
            table(entity)
        );
        self.query_rows(&sql, params)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect()
    }

    async fn latest_versions(
        &mut self,
        entity: &str,
        ids: &[String],
    ) -> Result<HashMap<String, i64>> {
        let sql = next_versions_sql(entity, ids.len());
        let params = ids.iter().map(|i| Value::from(i.as_str())).collect();
        self.query_rows(&sql, params)
            .await?
            .iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
            .collect()
    }

    /// Applies the changes of one page (one statement per entity) and appends their history.
    async fn apply_changes(
        &mut self,
        entity: &str,
        schema: &Schema,
        changes: &[(String, Change)],
        now: DateTime<Utc>,
        audit: &Audit,
    ) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let t = table(entity);
        let user = Value::from(audit.user_id.clone());
        let fields: Vec<&String> = schema.fields.keys().collect();
        let set_all = format!(
            "UPDATE [{t}] SET {}[deleted_at] = ?, [updated_at] = ?, [updated_by] = ?, [version] = [version] + 1 WHERE [id] = ? /* dal:{:x} */",
            fields.iter().map(|f| format!("[{f}] = ?, ")).collect::<String>(),
            schema.fingerprint()
        );
        let delete = format!(
            "UPDATE [{t}] SET [deleted_at] = ?, [updated_at] = ?, [updated_by] = ?, [version] = [version] + 1 WHERE [id] = ?"
        );
        for (rid, change) in changes {
            let (sql, mut params) = match change {
                Change::Set { deleted_at, state } => {
                    let mut p: Vec<Value> = fields
                        .iter()
                        .map(|f| state.get(*f).cloned().unwrap_or(Value::Null))
                        .collect();
                    p.push(deleted_at.clone());
                    (&set_all, p)
                }
                Change::Delete => (&delete, vec![Value::Timestamp(now)]),
            };
            params.extend([
                Value::Timestamp(now),
                user.clone(),
                Value::from(rid.as_str()),
            ]);
            self.query_full(sql, params).await?;
        }
        let ids: Vec<String> = changes.iter().map(|(i, _)| i.clone()).collect();
        self.append_history(entity, schema, &ids, now, audit, false)
            .await?;
        Ok(())
    }

    /// Inserts a permanently deleted entity again with its state `state`, as `version`.
    #[allow(clippy::too_many_arguments)]
    async fn reinsert(
        &mut self,
        entity: &str,
        schema: &Schema,
        id: &str,
        state: &Stored,
        version: i64,
        now: DateTime<Utc>,
        audit: &Audit,
        required: &BTreeSet<String>,
    ) -> Result<()> {
        // A NOT NULL field without an earlier value takes the column's default.
        let cols: Vec<String> = columns(schema)
            .into_iter()
            .filter(|c| !(required.contains(c) && state.get(c).is_none_or(Value::is_null)))
            .collect();
        let mut params = Vec::with_capacity(cols.len());
        for c in &cols {
            params.push(match c.as_str() {
                "id" => Value::from(id),
                "updated_at" => Value::Timestamp(now),
                "updated_by" => Value::from(audit.user_id.clone()),
                "deleted_at" => Value::Null,
                "version" => Value::Int(version),
                other => state.get(other).cloned().unwrap_or(Value::Null),
            });
        }
        let sql = format!(
            "INSERT INTO [{}] ({}) VALUES ({}) /* dal:{:x} */",
            table(entity),
            column_list(&cols),
            placeholders(cols.len()),
            schema.fingerprint()
        );
        self.query_full(&sql, params).await?;
        Ok(())
    }
}

/// The comment of a rollback's history rows: `rollback to <at>`, and the caller's.
pub(crate) fn rollback_comment(at: DateTime<Utc>, comment: Option<&str>) -> String {
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    match comment {
        Some(c) if !c.is_empty() => format!("rollback to {at}: {c}"),
        _ => format!("rollback to {at}"),
    }
}
