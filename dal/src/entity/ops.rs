//! The entity operations, written once for every backend and for typed and dynamic entities.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Timelike, Utc};
use serde_json::{Map, Value as Json};

use super::codec::{from_column, infer, needs_widening, to_column, Fit};
use super::schema::{
    history_table, table, validate_field_name, FieldSpec, Schema, HISTORY_FIELDS, SYSTEM_FIELDS,
};
use super::typed::FieldType;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::row::Row;
use crate::sql::Backend;
use crate::value::Value;

/// At most this many rows per multi-row statement…
const CHUNK_ROWS: usize = 1000;
/// …and at most this many parameters (every backend accepts 32 766).
const CHUNK_PARAMS: usize = 30_000;
/// Own-transaction attempts when the server reports a deadlock or serialization failure.
const TX_ATTEMPTS: usize = 5;
const MAX_ID_LEN: usize = 255;

pub(crate) type EntityMap = Map<String, Json>;

/// Evaluates `$body` in the caller's transaction, or in one of its own that is retried as a
/// whole (up to `TX_ATTEMPTS` times) when `$retry(&error)` says the server undid it.
macro_rules! in_own_tx {
    ($conn:ident, $retry:expr, $body:expr) => {{
        let mut attempt = 0;
        loop {
            attempt += 1;
            let own = !$conn.in_transaction();
            if own {
                $conn.begin_transaction().await?;
            }
            let r = $body;
            match $conn.end_own_tx(own, r).await {
                Err(e) if own && attempt < TX_ATTEMPTS && $retry(&e) => {
                    tracing::debug!(target: "dal::entity", error = %e, attempt, "retrying entity write");
                    continue;
                }
                other => break other,
            }
        }
    }};
}

/// Who and why, recorded in history.
#[derive(Debug, Clone, Default)]
pub(crate) struct Audit {
    pub user_id: Option<String>,
    pub comment: Option<String>,
}

/// A `find_entities`/`count_entities` query.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    pub filter: Option<(String, Vec<Value>)>,
    pub order_by: Option<String>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub include_deleted: bool,
}

fn now_micros() -> DateTime<Utc> {
    let t = Utc::now();
    t.with_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// A unique violation on a primary key (the entity id or a history version) means a concurrent
/// writer created the same row first: the save is retried. A violation of a user's unique
/// field is the user's error and is not.
fn is_key_race(e: &Error) -> bool {
    if !e.is_unique_violation() {
        return false;
    }
    let text = match e {
        Error::Database {
            message,
            constraint,
            ..
        } => format!("{message} {}", constraint.as_deref().unwrap_or("")),
        _ => return false,
    };
    text.contains("_pkey")
        || text.contains("PRIMARY")
        || text.contains("_history")
        || text.contains(".id")
}

fn is_retryable_tx_error(e: &Error) -> bool {
    matches!(
        e.code(),
        Some("40001") | Some("40P01") | Some("1213") | Some("1205")
    )
}

/// Columns of an entity row, in order: system fields then user fields.
fn columns(schema: &Schema) -> Vec<String> {
    SYSTEM_FIELDS
        .iter()
        .map(|s| (*s).to_owned())
        .chain(schema.fields.keys().cloned())
        .collect()
}

fn select_list(cols: &[String]) -> String {
    cols.iter()
        .map(|c| format!("[{c}]"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn system_type(col: &str) -> FieldType {
    match col {
        "created_at" | "updated_at" | "deleted_at" | "history_timestamp" => FieldType::Timestamp,
        "version" => FieldType::Int,
        _ => FieldType::Text,
    }
}

fn row_to_map(row: Row, schema: &Schema) -> Result<EntityMap> {
    let names: Vec<String> = row.columns().to_vec();
    let mut map = Map::new();
    for (name, v) in names.into_iter().zip(row.into_values()) {
        let ty = schema
            .fields
            .get(&name)
            .copied()
            .unwrap_or_else(|| system_type(&name));
        map.insert(name, from_column(ty, v)?);
    }
    Ok(map)
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

impl Connection {
    /// Commits or rolls back a transaction this operation opened itself.
    async fn end_own_tx<T>(&mut self, own: bool, r: Result<T>) -> Result<T> {
        if !own {
            return r;
        }
        match r {
            Ok(v) => {
                self.commit_transaction().await?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.rollback_transaction().await;
                Err(e)
            }
        }
    }

    // ---- save ---------------------------------------------------------------------------

    /// Saves a batch (one entity is a batch of one): creates or partially updates each row,
    /// appends one history row each, returns the rows as stored.
    pub(crate) async fn save_entities_impl(
        &mut self,
        entity: &str,
        inputs: Vec<EntityMap>,
        audit: &Audit,
        declared: &[FieldSpec],
    ) -> Result<Vec<EntityMap>> {
        super::schema::validate_entity_name(entity)?;
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, rows) = prepare_inputs(inputs)?;

        // Schema first: new fields and widenings are decided from the whole batch.
        let schema = self.entity_schema(entity, true).await?;
        let (specs, widen) = plan_fields(&schema, &rows, declared)?;
        let schema = self.ensure_fields(entity, &specs, &widen).await?;

        // Convert every value before writing anything: bad input never leaves partial writes.
        let mut converted: Vec<BTreeMap<String, Value>> = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut out = BTreeMap::new();
            for (k, v) in row {
                let ty = match schema.fields.get(k) {
                    Some(t) => *t,
                    None if v.is_null() => continue,
                    None => return Err(Error::Internal(format!("field {k} has no column"))),
                };
                match to_column(k, ty, v)? {
                    Fit::Value(val) => out.insert(k.clone(), val),
                    Fit::Widen => {
                        return Err(Error::Entity(format!(
                            "field {k:?} changed type while saving; retry the save"
                        )))
                    }
                };
            }
            converted.push(out);
        }

        in_own_tx!(
            self,
            |e: &Error| is_retryable_tx_error(e) || is_key_race(e),
            {
                self.write_batch(entity, &schema, &ids, &converted, audit)
                    .await
            }
        )
    }

    async fn write_batch(
        &mut self,
        entity: &str,
        schema: &Schema,
        ids: &[String],
        rows: &[BTreeMap<String, Value>],
        audit: &Audit,
    ) -> Result<Vec<EntityMap>> {
        let now = now_micros();
        let user = Value::from(audit.user_id.clone());
        // Rows with the same set of fields share one multi-row upsert.
        let mut shapes: BTreeMap<Vec<&String>, Vec<usize>> = BTreeMap::new();
        for (i, r) in rows.iter().enumerate() {
            shapes
                .entry(r.keys().collect::<Vec<&String>>())
                .or_default()
                .push(i);
        }
        // MySQL's ON DUPLICATE KEY UPDATE fires on *any* unique key, so on MySQL new rows are
        // inserted plainly (a clash on another unique field is then an error, as it should be)
        // and only rows that exist (locked here) go through the upsert.
        let existing: HashSet<String> = if self.backend() == Backend::MySql {
            self.lock_existing(entity, ids).await?
        } else {
            HashSet::new()
        };
        // PostgreSQL and SQLite return the stored rows from the upsert itself; MySQL has no
        // RETURNING, so its rows are read back after.
        let returning = self.backend() != Backend::MySql;
        let mut saved: std::collections::HashMap<String, EntityMap> =
            std::collections::HashMap::with_capacity(ids.len());
        for (fields, members) in &shapes {
            let (update, insert): (Vec<usize>, Vec<usize>) =
                members.iter().partition(|&&i| existing.contains(&ids[i]));
            for (group, plain) in [
                (&insert, self.backend() == Backend::MySql),
                (&update, false),
            ] {
                let mut cols: Vec<String> =
                    SYSTEM_FIELDS[..5].iter().map(|s| (*s).to_owned()).collect();
                cols.extend(fields.iter().map(|f| (*f).clone()));
                let per_chunk = (CHUNK_PARAMS / cols.len()).clamp(1, CHUNK_ROWS);
                for chunk in group.chunks(per_chunk) {
                    let mut params = Vec::with_capacity(chunk.len() * cols.len());
                    for &i in chunk {
                        params.push(Value::from(ids[i].as_str()));
                        params.push(Value::Timestamp(now));
                        params.push(user.clone());
                        params.push(Value::Timestamp(now));
                        params.push(user.clone());
                        for f in fields {
                            params.push(rows[i].get(*f).cloned().unwrap_or(Value::Null));
                        }
                    }
                    let sql = self.upsert_sql(
                        &table(entity),
                        &cols,
                        chunk.len(),
                        &cols[5..],
                        schema,
                        plain,
                    );
                    let out = self.query_full(&sql, params).await?;
                    for r in out.rows {
                        let m = row_to_map(r, schema)?;
                        if let Some(Json::String(id)) = m.get("id") {
                            saved.insert(id.clone(), m);
                        }
                    }
                }
            }
        }
        self.append_history(entity, schema, ids, now, audit, false)
            .await?;
        if !returning {
            saved = self.fetch_by_ids(entity, schema, ids).await?;
        }
        // Same order as the input.
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match saved.remove(id) {
                Some(m) => out.push(m),
                None => return Err(Error::Internal(format!("saved entity {id} not found"))),
            }
        }
        Ok(out)
    }

    fn upsert_sql(
        &self,
        t: &str,
        cols: &[String],
        rows: usize,
        fields: &[String],
        schema: &Schema,
        plain: bool,
    ) -> String {
        let fp = schema.fingerprint();
        let one = format!("({})", placeholders(cols.len()));
        let values = vec![one; rows].join(", ");
        let col_list = select_list(cols);
        if plain {
            return format!("INSERT INTO [{t}] ({col_list}) VALUES {values} /* dal:{fp:x} */");
        }
        let mut updates: Vec<String> = fields.iter().map(|f| f.to_owned()).collect();
        updates.push("updated_at".into());
        updates.push("updated_by".into());
        let set = |fmt: &dyn Fn(&str) -> String| {
            updates
                .iter()
                .map(|c| fmt(c))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self.backend() {
            Backend::MySql => format!(
                "INSERT INTO [{t}] ({col_list}) VALUES {values} ON DUPLICATE KEY UPDATE {} /* dal:{fp:x} */",
                set(&|c| format!("[{c}] = VALUES([{c}])"))
            ),
            _ => format!(
                "INSERT INTO [{t}] ({col_list}) VALUES {values} ON CONFLICT ([id]) DO UPDATE SET {} RETURNING {} /* dal:{fp:x} */",
                set(&|c| format!("[{c}] = excluded.[{c}]")),
                select_list(&columns(schema))
            ),
        }
    }

    /// Locks the rows among `ids` that exist and returns their ids.
    async fn lock_existing(&mut self, entity: &str, ids: &[String]) -> Result<HashSet<String>> {
        let mut found = HashSet::new();
        for chunk in ids.chunks(CHUNK_ROWS * 2) {
            let sql = format!(
                "SELECT [id] FROM [{}] WHERE [id] IN ({}) FOR UPDATE",
                table(entity),
                placeholders(chunk.len())
            );
            for r in self
                .query_rows(
                    &sql,
                    chunk.iter().map(|id| Value::from(id.as_str())).collect(),
                )
                .await?
            {
                found.insert(r.try_get::<String, _>(0)?);
            }
        }
        Ok(found)
    }

    /// Appends one history row per id, copying the row as it is now, with the next version.
    /// `deleting`: the snapshot records the deletion time (for permanent deletes).
    async fn append_history(
        &mut self,
        entity: &str,
        schema: &Schema,
        ids: &[String],
        now: DateTime<Utc>,
        audit: &Audit,
        deleting: bool,
    ) -> Result<u64> {
        let cols = columns(schema);
        let h = history_table(entity);
        let t = table(entity);
        let source: Vec<String> = cols
            .iter()
            .map(|c| {
                if deleting && c == "deleted_at" {
                    "COALESCE([src].[deleted_at], ?)".to_owned()
                } else {
                    format!("[src].[{c}]")
                }
            })
            .collect();
        let mut inserted = 0;
        for chunk in ids.chunks(CHUNK_ROWS * 2) {
            let sql = format!(
                "INSERT INTO [{h}] ({}, [version], [history_timestamp], [history_user_id], [history_comment]) \
                 SELECT {}, COALESCE((SELECT MAX([prev].[version]) FROM [{h}] [prev] WHERE [prev].[id] = [src].[id]), 0) + 1, ?, ?, ? \
                 FROM [{t}] [src] WHERE [src].[id] IN ({}) /* dal:{:x} */",
                select_list(&cols),
                source.join(", "),
                placeholders(chunk.len()),
                schema.fingerprint()
            );
            let mut params = Vec::with_capacity(chunk.len() + 4);
            if deleting {
                params.push(Value::Timestamp(now));
            }
            params.push(Value::Timestamp(now));
            params.push(Value::from(audit.user_id.clone()));
            params.push(Value::from(audit.comment.clone()));
            params.extend(chunk.iter().map(|id| Value::from(id.as_str())));
            inserted += self.query_full(&sql, params).await?.rows_affected;
        }
        Ok(inserted)
    }

    async fn fetch_by_ids(
        &mut self,
        entity: &str,
        schema: &Schema,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, EntityMap>> {
        let cols = columns(schema);
        let mut out = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK_ROWS * 2) {
            let sql = format!(
                "SELECT {} FROM [{}] WHERE [id] IN ({}) /* dal:{:x} */",
                select_list(&cols),
                table(entity),
                placeholders(chunk.len()),
                schema.fingerprint()
            );
            let rows = self
                .query_rows(
                    &sql,
                    chunk.iter().map(|id| Value::from(id.as_str())).collect(),
                )
                .await?;
            for r in rows {
                let m = row_to_map(r, schema)?;
                if let Some(Json::String(id)) = m.get("id") {
                    let id = id.clone();
                    out.insert(id, m);
                }
            }
        }
        Ok(out)
    }

    // ---- read ---------------------------------------------------------------------------

    pub(crate) async fn get_entity_impl(
        &mut self,
        entity: &str,
        id: &str,
        include_deleted: bool,
    ) -> Result<Option<EntityMap>> {
        let schema = self.entity_schema(entity, false).await?;
        if !schema.exists {
            return Ok(None);
        }
        let deleted = if include_deleted {
            ""
        } else {
            " AND [deleted_at] IS NULL"
        };
        let sql = format!(
            "SELECT {} FROM [{}] WHERE [id] = ?{deleted} /* dal:{:x} */",
            select_list(&columns(&schema)),
            table(entity),
            schema.fingerprint()
        );
        let rows = self.query_rows(&sql, vec![Value::from(id)]).await?;
        rows.into_iter()
            .next()
            .map(|r| row_to_map(r, &schema))
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
        let schema = self.entity_schema(entity, false).await?;
        if !schema.exists {
            return Ok(Vec::new());
        }
        let (where_sql, params) = Self::where_clause(q);
        let mut sql = format!(
            "SELECT {} FROM [{}]{where_sql}",
            select_list(&columns(&schema)),
            table(entity)
        );
        if let Some(o) = q.order_by.as_deref().filter(|o| !o.trim().is_empty()) {
            sql.push_str(" ORDER BY ");
            sql.push_str(o);
        }
        match (q.limit, q.offset, self.backend()) {
            (Some(l), Some(o), _) => sql.push_str(&format!(" LIMIT {l} OFFSET {o}")),
            (Some(l), None, _) => sql.push_str(&format!(" LIMIT {l}")),
            (None, Some(o), Backend::MySql) => {
                sql.push_str(&format!(" LIMIT 18446744073709551615 OFFSET {o}"))
            }
            (None, Some(o), Backend::Sqlite) => sql.push_str(&format!(" LIMIT -1 OFFSET {o}")),
            (None, Some(o), Backend::Postgres) => sql.push_str(&format!(" OFFSET {o}")),
            (None, None, _) => {}
        }
        sql.push_str(&format!(" /* dal:{:x} */", schema.fingerprint()));
        let rows = self.query_rows(&sql, params).await?;
        rows.into_iter().map(|r| row_to_map(r, &schema)).collect()
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
            select_list(&cols),
            history_table(entity),
            schema.fingerprint()
        );
        let rows = self.query_rows(&sql, params).await?;
        rows.into_iter().map(|r| row_to_map(r, &schema)).collect()
    }

    // ---- delete / restore ---------------------------------------------------------------

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
                    "UPDATE [{}] SET [deleted_at] = ?, [updated_at] = ?, [updated_by] = ? WHERE [id] = ? AND [deleted_at] IS NULL",
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
                    "UPDATE [{}] SET [deleted_at] = NULL, [updated_at] = ?, [updated_by] = ? WHERE [id] = ? AND [deleted_at] IS NOT NULL",
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

/// Validates and normalises the inputs: strips system and history keys (so a version read
/// from history can be saved back), checks names, assigns ids.
fn prepare_inputs(inputs: Vec<EntityMap>) -> Result<(Vec<String>, Vec<EntityMap>)> {
    let mut ids = Vec::with_capacity(inputs.len());
    let mut rows = Vec::with_capacity(inputs.len());
    let mut seen = HashSet::new();
    for mut m in inputs {
        let id = match m.remove("id") {
            None | Some(Json::Null) => uuid::Uuid::new_v4().to_string(),
            Some(Json::String(s)) if !s.is_empty() && s.len() <= MAX_ID_LEN => s,
            // Integer ids are accepted and stored as their decimal text.
            Some(Json::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            Some(Json::String(s)) if s.is_empty() => {
                return Err(Error::Entity("entity id must not be empty".into()))
            }
            Some(other) => {
                return Err(Error::Entity(format!(
                    "entity id must be a string of at most {MAX_ID_LEN} characters (or an integer), got {other}"
                )))
            }
        };
        if !seen.insert(id.clone()) {
            return Err(Error::Entity(format!(
                "the batch contains id {id:?} more than once"
            )));
        }
        for k in SYSTEM_FIELDS.iter().chain(HISTORY_FIELDS.iter()) {
            m.remove(*k);
        }
        for k in m.keys() {
            validate_field_name(k)?;
        }
        ids.push(id);
        rows.push(m);
    }
    Ok((ids, rows))
}

/// Decides the new fields (with their types) and the Int→Float widenings a batch needs.
fn plan_fields(
    schema: &Schema,
    rows: &[EntityMap],
    declared: &[FieldSpec],
) -> Result<(Vec<FieldSpec>, Vec<String>)> {
    let mut new: BTreeMap<String, FieldSpec> = BTreeMap::new();
    let mut widen = Vec::new();
    for d in declared {
        if d.ty.is_some() && !schema.fields.contains_key(&d.name) {
            new.insert(d.name.clone(), d.clone());
        }
    }
    for row in rows {
        for (k, v) in row {
            if let Some(ty) = schema.fields.get(k) {
                if needs_widening(*ty, v) && !widen.contains(k) {
                    widen.push(k.clone());
                }
                continue;
            }
            let Some(ty) = infer(v) else { continue };
            match new.get_mut(k) {
                None => {
                    new.insert(
                        k.clone(),
                        FieldSpec {
                            name: k.clone(),
                            ty: Some(ty),
                            index: false,
                            unique: false,
                        },
                    );
                }
                // Within one batch, integers and floats in a new field make it a float field.
                Some(spec) if spec.ty == Some(FieldType::Int) && ty == FieldType::Float => {
                    spec.ty = Some(FieldType::Float)
                }
                Some(_) => {}
            }
        }
    }
    Ok((new.into_values().collect(), widen))
}
