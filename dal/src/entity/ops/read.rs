//! Reading entities: one by id (optionally locking its row), a filtered and paged list, a
//! count, and the history of one.

use std::sync::Arc;

use super::super::schema::{history_table, table, Schema, HISTORY_FIELDS};
use super::{column_list, columns, row_to_map, Decode, EntityMap, Query};
use crate::connection::{Connection, QueryOptions, Yielder};
use crate::error::{Error, Result};
use crate::row::Row;
use crate::value::Value;

/// A find's statement, and how to decode its rows.
struct FindPlan {
    sql: String,
    params: Vec<Value>,
    schema: Arc<Schema>,
    how: Decode,
}

impl Connection {
    /// With `lock`, the row is locked until the caller's transaction ends (`FOR UPDATE`;
    /// on SQLite the transaction already holds the database's write lock).
    pub(crate) async fn get_entity_impl(
        &mut self,
        entity: &str,
        id: &str,
        include_deleted: bool,
        lock: bool,
    ) -> Result<Option<EntityMap>> {
        self.get_entity_read(entity, id, include_deleted, lock, false)
            .await
    }

    /// [`get_entity_impl`](Self::get_entity_impl); with `raw`, values as stored.
    pub(crate) async fn get_entity_read(
        &mut self,
        entity: &str,
        id: &str,
        include_deleted: bool,
        lock: bool,
        raw: bool,
    ) -> Result<Option<EntityMap>> {
        if lock && !self.in_transaction() {
            return Err(Error::Transaction(
                "a locking read (for_update / get_for_update) needs an open transaction: the lock would end with the statement; use #[auto_transaction] or begin_transaction".into(),
            ));
        }
        let schema = self.entity_schema(entity, false).await?;
        if !schema.exists {
            return Ok(None);
        }
        // Built once per schema (and translated once per text: see `sql::cache`).
        let lock_rows = self.dialect().lock_rows();
        let sql = schema.get_sql(include_deleted, lock, || {
            let deleted = if include_deleted {
                ""
            } else {
                " AND [deleted_at] IS NULL"
            };
            let lock = if lock { lock_rows } else { "" };
            format!(
                "SELECT {} FROM [{}] WHERE [id] = ?{deleted}{lock} /* dal:{:x} */",
                column_list(&columns(&schema)),
                table(entity),
                schema.fingerprint()
            )
        });
        let rows = self.query_rows(sql, vec![Value::from(id)]).await?;
        let how = self.decode(raw);
        rows.into_iter()
            .next()
            .map(|r| row_to_map(r, entity, &schema, how))
            .transpose()
    }

    fn where_clause(q: &Query) -> (String, Vec<Value>) {
        let mut parts = Vec::new();
        if !q.include_deleted {
            parts.push("[deleted_at] IS NULL".to_owned());
        }
        let mut params = Vec::new();
        if let Some((f, p)) = &q.filter {
            if !f.trim().is_empty() {
                parts.push(format!("({f})"));
                params.extend(p.iter().cloned());
            }
        }
        if parts.is_empty() {
            (String::new(), params)
        } else {
            (format!(" WHERE {}", parts.join(" AND ")), params)
        }
    }

    pub(crate) async fn find_entities_impl(
        &mut self,
        entity: &str,
        q: &Query,
    ) -> Result<Vec<EntityMap>> {
        let Some(plan) = self.find_plan(entity, q).await? else {
            return Ok(Vec::new());
        };
        let rows = self.query_rows(&plan.sql, plan.params).await?;
        rows.into_iter()
            .map(|r| row_to_map(r, entity, &plan.schema, plan.how))
            .collect()
    }

    /// The statement a find runs (`None`: the entity has no table yet, so nothing matches).
    async fn find_plan(&mut self, entity: &str, q: &Query) -> Result<Option<FindPlan>> {
        let schema = self.entity_schema(entity, false).await?;
        if !schema.exists {
            return Ok(None);
        }
        let (where_sql, params) = Self::where_clause(q);
        let mut sql = format!(
            "SELECT {} FROM [{}]{where_sql}",
            column_list(&columns(&schema)),
            table(entity)
        );
        if let Some(o) = q.order_by.as_deref().filter(|o| !o.trim().is_empty()) {
            sql.push_str(" ORDER BY ");
            sql.push_str(o);
        }
        sql.push_str(&self.dialect().limit_offset(q.limit, q.offset));
        sql.push_str(&format!(" /* dal:{:x} */", schema.fingerprint()));
        let how = self.decode(q.raw);
        Ok(Some(FindPlan {
            sql,
            params,
            schema,
            how,
        }))
    }

    /// The streaming find (`find_entities(..).stream()`, `find::<T>().stream()`): the same
    /// statement as [`find_entities_impl`](Self::find_entities_impl), its rows converted one at
    /// a time (by `convert` after the entity decoding) as the stream is polled.
    pub(crate) async fn stream_entities<T>(
        &mut self,
        entity: &str,
        q: &Query,
        opts: &QueryOptions,
        convert: fn(EntityMap) -> Result<T>,
        out: &Yielder<T>,
    ) {
        let plan = match self.find_plan(entity, q).await {
            Ok(Some(plan)) => plan,
            Ok(None) => return,
            Err(e) => return out.put(Err(e)).await,
        };
        let (schema, how) = (&plan.schema, plan.how);
        let mut map = |r: Row| row_to_map(r, entity, schema, how).and_then(convert);
        self.stream_rows(&plan.sql, &plan.params, opts, &mut map, out)
            .await;
    }

    pub(crate) async fn count_entities_impl(&mut self, entity: &str, q: &Query) -> Result<i64> {
        let schema = self.entity_schema(entity, false).await?;
        if !schema.exists {
            return Ok(0);
        }
        let (where_sql, params) = Self::where_clause(q);
        let sql = format!("SELECT COUNT(*) FROM [{}]{where_sql}", table(entity));
        self.query_count(&sql, params).await
    }

    pub(crate) async fn history_impl(
        &mut self,
        entity: &str,
        id: &str,
        version: Option<i64>,
    ) -> Result<Vec<EntityMap>> {
        self.history_read(entity, id, version, false).await
    }

    /// [`history_impl`](Self::history_impl); with `raw`, values as stored.
    pub(crate) async fn history_read(
        &mut self,
        entity: &str,
        id: &str,
        version: Option<i64>,
        raw: bool,
    ) -> Result<Vec<EntityMap>> {
        let schema = self.entity_schema(entity, false).await?;
        if !schema.exists {
            return Ok(Vec::new());
        }
        let mut cols = columns(&schema);
        cols.extend(HISTORY_FIELDS.iter().map(|s| (*s).to_owned()));
        let mut params = vec![Value::from(id)];
        let version_sql = match version {
            Some(v) => {
                params.push(Value::Int(v));
                " AND [version] = ?"
            }
            None => "",
        };
        let sql = format!(
            "SELECT {} FROM [{}] WHERE [id] = ?{version_sql} ORDER BY [version] /* dal:{:x} */",
            column_list(&cols),
            history_table(entity),
            schema.fingerprint()
        );
        let rows = self.query_rows(&sql, params).await?;
        let how = self.decode(raw);
        rows.into_iter()
            .map(|r| row_to_map(r, entity, &schema, how))
            .collect()
    }
}
