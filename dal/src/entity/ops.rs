//! The entity operations, written once for every backend and for typed and dynamic entities.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Timelike, Utc};
use serde_json::{Map, Value as Json};

use super::codec::{from_column, infer, infer_declared, needs_widening, to_column, Fit};
use super::schema::{
    history_table, is_reserved, reserved_ignoring_case, table, validate_field_name, FieldSpec,
    Schema, HISTORY_FIELDS, SYSTEM_FIELDS,
};
use super::typed::FieldType;
use crate::backend::column_list;
use crate::backend::Dialect;
use crate::connection::Connection;
use crate::error::{DbErrorKind, Error, Result};
use crate::row::Row;
use crate::value::Value;

/// At most this many rows per multi-row statement…
const CHUNK_ROWS: usize = 1000;
/// …and at most this many parameters (every backend accepts 32 766).
const CHUNK_PARAMS: usize = 30_000;
const MAX_ID_LEN: usize = 255;

pub(crate) type EntityMap = Map<String, Json>;

/// Evaluates `$body` in the caller's transaction, or in one of its own that is retried as a
/// whole, after a jittered backoff from the pool's [`RetryPolicy`](crate::RetryPolicy), when
/// `$retry(&error)` says the server undid it (deadlock, serialization failure, key race).
macro_rules! in_own_tx {
    ($conn:ident, $retry:expr, $body:expr) => {{
        let mut backoff = $conn.retry_policy().backoff();
        loop {
            let own = !$conn.in_transaction();
            if own {
                $conn.begin_transaction().await?;
            }
            let r = $body;
            match $conn.end_own_tx(own, r).await {
                Err(e) if own && $retry(&e) => match backoff.next_delay() {
                    Some(delay) => {
                        tracing::debug!(target: "dal::entity", error = %e, retry = backoff.retries(), "retrying entity write");
                        tokio::time::sleep(delay).await;
                    }
                    None => break Err(e),
                },
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

/// A primary key violation (the entity id, or a history version) means a concurrent writer
/// created the same row first: the save is retried. A violation of a user's unique field is
/// the user's error and is not.
fn is_key_race(e: &Error) -> bool {
    e.kind() == DbErrorKind::PrimaryKeyViolation
}

/// A conflict the server resolved by undoing the work (deadlock, serialization failure, lock
/// timeout, SQLite busy): the whole own transaction is run again.
fn is_retryable_tx_error(e: &Error) -> bool {
    e.kind().is_conflict()
}

impl Connection {
    /// This connection's backend facts.
    pub(crate) fn dialect(&self) -> &'static dyn Dialect {
        crate::backend::dialect(self.backend())
    }
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
    /// appends one history row each, and returns the rows as stored, converted by `out`.
    ///
    /// Everything that can be checked is checked before the first write: names, values, the
    /// expected versions, and — with `check` — that every row as it will be stored converts
    /// back through `out`. `out` runs inside the transaction, so a row that still fails to
    /// convert rolls the save back (in the caller's transaction, the error reaches the
    /// caller before any commit).
    pub(crate) async fn save_entities_impl<R, F>(
        &mut self,
        req: SaveRequest<'_>,
        out: F,
    ) -> Result<Vec<R>>
    where
        R: Send,
        F: Fn(EntityMap) -> Result<R> + Send + Sync,
    {
        let entity = req.entity;
        super::schema::validate_entity_name(entity)?;
        if req.inputs.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, rows) = prepare_inputs(req.inputs)?;
        let expected = req.expected;
        if !expected.is_empty() && expected.len() != ids.len() {
            return Err(Error::Internal(
                "expected versions do not match the batch".into(),
            ));
        }

        // Schema first: new fields and widenings are decided from the whole batch.
        let schema = self.entity_schema(entity, true).await?;
        let (specs, widen) = plan_fields(entity, &schema, &rows, req.declared)?;
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
        if req.check {
            for (i, row) in converted.iter().enumerate() {
                let version = expected.get(i).copied().flatten().unwrap_or(0) + 1;
                out(simulate_stored(&schema, &ids[i], row, req.audit, version)?)?;
            }
        }

        let batch = Batch {
            entity,
            schema: &schema,
            ids: &ids,
            rows: &converted,
            expected: &expected,
            audit: req.audit,
        };
        in_own_tx!(
            self,
            |e: &Error| is_retryable_tx_error(e) || is_key_race(e),
            {
                match self.write_batch(&batch).await {
                    Ok(saved) => saved.into_iter().map(&out).collect::<Result<Vec<R>>>(),
                    Err(e) => Err(e),
                }
            }
        )
    }

    async fn write_batch(&mut self, b: &Batch<'_>) -> Result<Vec<EntityMap>> {
        let Batch {
            entity,
            schema,
            ids,
            rows,
            expected,
            audit,
        } = *b;
        let dialect = self.dialect();
        let now = now_micros();
        let user = Value::from(audit.user_id.clone());
        // Rows are written in id order, so that concurrent batches over the same ids take
        // their row locks in the same order and cannot deadlock each other.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by(|a, b| ids[*a].cmp(&ids[*b]));

        // The rows that exist, locked (in id order) with their versions: MySQL needs them to
        // split inserts from updates; a batch locks them up front on PostgreSQL; an expected
        // version is checked against them.
        let checking = expected.iter().any(Option::is_some);
        let lock = checking || dialect.lock_batch_up_front(ids.len());
        let existing: HashMap<String, i64> = if lock {
            let sorted: Vec<&str> = order.iter().map(|&i| ids[i].as_str()).collect();
            self.lock_rows(entity, &sorted).await?
        } else {
            HashMap::new()
        };
        for (i, want) in expected.iter().enumerate() {
            if let Some(want) = *want {
                let actual = existing.get(&ids[i]).copied().unwrap_or(0);
                if actual != want {
                    return Err(Error::Conflict {
                        entity: entity.to_owned(),
                        id: ids[i].clone(),
                        expected: want,
                        actual,
                    });
                }
            }
        }

        // Rows with the same set of fields share one multi-row upsert.
        let mut shapes: BTreeMap<Vec<&String>, Vec<usize>> = BTreeMap::new();
        for &i in &order {
            shapes
                .entry(rows[i].keys().collect::<Vec<&String>>())
                .or_default()
                .push(i);
        }
        // Where the upsert fires on *any* unique key (MySQL), new rows are inserted plainly (a
        // clash on another unique field is then an error, as it should be) and only rows that
        // exist (locked above) go through the upsert. Where the upsert cannot return the stored
        // rows, they are read back after.
        let split = dialect.upsert_fires_on_any_unique_key();
        let mut saved: HashMap<String, EntityMap> = HashMap::with_capacity(ids.len());
        for (fields, members) in &shapes {
            let (update, insert): (Vec<usize>, Vec<usize>) = if split {
                members
                    .iter()
                    .partition(|&&i| existing.contains_key(&ids[i]))
            } else {
                (Vec::new(), members.clone())
            };
            for (group, plain) in [(&insert, split), (&update, false)] {
                // id, created_at, created_by, updated_at, updated_by, version (from the id).
                let per_row = 6 + fields.len();
                let per_chunk = (CHUNK_PARAMS / per_row).clamp(1, CHUNK_ROWS);
                for chunk in group.chunks(per_chunk) {
                    let mut params = Vec::with_capacity(chunk.len() * per_row);
                    for &i in chunk {
                        params.push(Value::from(ids[i].as_str()));
                        params.push(Value::Timestamp(now));
                        params.push(user.clone());
                        params.push(Value::Timestamp(now));
                        params.push(user.clone());
                        params.push(Value::from(ids[i].as_str()));
                        for f in fields {
                            params.push(rows[i].get(*f).cloned().unwrap_or(Value::Null));
                        }
                    }
                    let sql = upsert_sql(dialect, entity, fields, chunk.len(), schema, plain);
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
        let sorted_ids: Vec<String> = order.iter().map(|&i| ids[i].clone()).collect();
        self.append_history(entity, schema, &sorted_ids, now, audit, false)
            .await?;
        if !dialect.upsert_returns_rows() {
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

    /// Locks the rows among `ids` (given in the order to lock them) that exist, and returns
    /// their versions. SQLite needs no row lock: a transaction there holds the database's
    /// write lock from its start.
    async fn lock_rows(&mut self, entity: &str, ids: &[&str]) -> Result<HashMap<String, i64>> {
        let lock = self.dialect().lock_rows();
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK_ROWS * 2) {
            let sql = format!(
                "SELECT [id], [version] FROM [{}] WHERE [id] IN ({}) ORDER BY [id]{lock}",
                table(entity),
                placeholders(chunk.len())
            );
            let params = chunk.iter().map(|id| Value::from(*id)).collect();
            for r in self.query_rows(&sql, params).await? {
                found.insert(r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?);
            }
        }
        Ok(found)
    }

    /// Appends one history row per id, copying the row as it is now (with its version).
    /// `deleting`: the snapshot records the deletion (for permanent deletes: the row is about
    /// to go, so its deletion is the next version).
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
            .map(|c| match c.as_str() {
                "deleted_at" if deleting => "COALESCE([src].[deleted_at], ?)".to_owned(),
                "version" if deleting => "[src].[version] + 1".to_owned(),
                _ => format!("[src].[{c}]"),
            })
            .collect();
        let mut inserted = 0;
        for chunk in ids.chunks(CHUNK_ROWS * 2) {
            let sql = format!(
                "INSERT INTO [{h}] ({}, [history_timestamp], [history_user_id], [history_comment]) \
                 SELECT {}, ?, ?, ? FROM [{t}] [src] WHERE [src].[id] IN ({}) ORDER BY [src].[id] /* dal:{:x} */",
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
    ) -> Result<HashMap<String, EntityMap>> {
        let cols = columns(schema);
        let mut out = HashMap::with_capacity(ids.len());
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

    /// With `lock`, the row is locked until the caller's transaction ends (`FOR UPDATE`;
    /// on SQLite the transaction already holds the database's write lock).
    pub(crate) async fn get_entity_impl(
        &mut self,
        entity: &str,
        id: &str,
        include_deleted: bool,
        lock: bool,
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
        let deleted = if include_deleted {
            ""
        } else {
            " AND [deleted_at] IS NULL"
        };
        let lock = if lock { self.dialect().lock_rows() } else { "" };
        let sql = format!(
            "SELECT {} FROM [{}] WHERE [id] = ?{deleted}{lock} /* dal:{:x} */",
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
        sql.push_str(&self.dialect().limit_offset(q.limit, q.offset));
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

/// What to save: the entity, its inputs, who and why, and the fields a typed entity declares.
pub(crate) struct SaveRequest<'a> {
    pub entity: &'a str,
    pub inputs: Vec<EntityMap>,
    /// Per input, the version the stored entity must be at (0: it must not exist), or empty.
    pub expected: Vec<Option<i64>>,
    pub audit: &'a Audit,
    pub declared: &'a [FieldSpec],
    /// Check before writing that every row, as it will be stored, converts through `out`.
    pub check: bool,
}

impl<'a> SaveRequest<'a> {
    /// A dynamic save of `inputs`.
    pub(crate) fn new(entity: &'a str, inputs: Vec<EntityMap>, audit: &'a Audit) -> Self {
        SaveRequest {
            entity,
            inputs,
            expected: Vec::new(),
            audit,
            declared: &[],
            check: false,
        }
    }
}

/// One batch, validated and converted, ready to write.
#[derive(Clone, Copy)]
struct Batch<'a> {
    entity: &'a str,
    schema: &'a Schema,
    ids: &'a [String],
    rows: &'a [BTreeMap<String, Value>],
    expected: &'a [Option<i64>],
    audit: &'a Audit,
}

/// The multi-row upsert of `rows` rows with `fields` (after the system columns). A new row's
/// version is one past the highest in its history (1 for a new id; more for an id whose entity
/// was permanently deleted); an existing row's version grows by one under its row lock.
fn upsert_sql(
    dialect: &dyn Dialect,
    entity: &str,
    fields: &[&String],
    rows: usize,
    schema: &Schema,
    plain: bool,
) -> String {
    let t = table(entity);
    let h = history_table(entity);
    let fp = schema.fingerprint();
    let one = format!(
        "(?, ?, ?, ?, ?, (SELECT COALESCE(MAX([h].[version]), 0) + 1 FROM [{h}] [h] WHERE [h].[id] = ?){})",
        ", ?".repeat(fields.len())
    );
    let values = vec![one; rows].join(", ");
    let mut cols: Vec<&str> = vec![
        "id",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
        "version",
    ];
    cols.extend(fields.iter().map(|f| f.as_str()));
    let insert = format!("INSERT INTO [{t}] ({}) VALUES {values}", column_list(&cols));
    if plain {
        return format!("{insert} /* dal:{fp:x} */");
    }
    let mut updates: Vec<&str> = fields.iter().map(|f| f.as_str()).collect();
    updates.push("updated_at");
    updates.push("updated_by");
    let tail = dialect.upsert_tail(&t, &updates, &select_list(&columns(schema)));
    format!("{insert}{tail} /* dal:{fp:x} */")
}

/// The entity as it will read back once `row` is saved: system fields filled in, each value
/// through the same conversion a read uses.
fn simulate_stored(
    schema: &Schema,
    id: &str,
    row: &BTreeMap<String, Value>,
    audit: &Audit,
    version: i64,
) -> Result<EntityMap> {
    let now = Value::Timestamp(now_micros());
    let user = Value::from(audit.user_id.clone());
    let mut m = Map::new();
    for (col, v) in [
        ("id", Value::from(id)),
        ("created_at", now.clone()),
        ("created_by", user.clone()),
        ("updated_at", now),
        ("updated_by", user),
        ("deleted_at", Value::Null),
        ("version", Value::Int(version)),
    ] {
        m.insert(col.to_owned(), from_column(system_type(col), v)?);
    }
    for (name, ty) in &schema.fields {
        let v = row.get(name).cloned().unwrap_or(Value::Null);
        m.insert(name.clone(), from_column(*ty, v)?);
    }
    Ok(m)
}

/// Validates and normalises the inputs: strips system and history keys spelt exactly (so a
/// version read from history can be saved back), refuses them in any other spelling and
/// field names that differ only in case, assigns ids.
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
        m.retain(|k, _| !is_reserved(k));
        let mut lower: HashMap<String, &str> = HashMap::with_capacity(m.len());
        for k in m.keys() {
            validate_field_name(k)?;
            if let Some(other) = lower.insert(k.to_ascii_lowercase(), k) {
                return Err(Error::Entity(format!(
                    "fields {other:?} and {k:?} differ only in case: field names are case-insensitive"
                )));
            }
        }
        ids.push(id);
        rows.push(m);
    }
    Ok((ids, rows))
}

/// Decides the new fields (with their types) and the Int→Float widenings a batch needs.
/// A new field whose name differs only in case from an existing or another new one is refused.
fn plan_fields(
    entity: &str,
    schema: &Schema,
    rows: &[EntityMap],
    declared: &[FieldSpec],
) -> Result<(Vec<FieldSpec>, Vec<String>)> {
    let existing: HashMap<String, &String> = schema
        .fields
        .keys()
        .map(|k| (k.to_ascii_lowercase(), k))
        .collect();
    let mut spelled: HashMap<String, String> = HashMap::new();
    let mut check_name = |name: &str| -> Result<()> {
        if schema.fields.contains_key(name) {
            return Ok(());
        }
        let key = name.to_ascii_lowercase();
        if let Some(other) = existing.get(&key) {
            return Err(Error::Entity(format!(
                "field {name:?} of {entity} differs only in case from its existing field {other:?}: field names are case-insensitive"
            )));
        }
        if let Some(reserved) = reserved_ignoring_case(name) {
            return Err(Error::Entity(format!(
                "field name {name:?} is reserved: it is the system field {reserved:?} (field names are case-insensitive)"
            )));
        }
        match spelled.get(&key) {
            Some(other) if other != name => Err(Error::Entity(format!(
                "fields {other:?} and {name:?} of {entity} differ only in case: field names are case-insensitive"
            ))),
            Some(_) => Ok(()),
            None => {
                spelled.insert(key, name.to_owned());
                Ok(())
            }
        }
    };
    let declared_by_name: HashMap<&str, &FieldSpec> =
        declared.iter().map(|d| (d.name.as_str(), d)).collect();
    let mut new: BTreeMap<String, FieldSpec> = BTreeMap::new();
    let mut widen = Vec::new();
    for d in declared {
        check_name(&d.name)?;
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
            check_name(k)?;
            let decl = declared_by_name.get(k.as_str());
            let inferred = match decl {
                // A declared type the derive could not see through: from its serde output.
                Some(_) => infer_declared(v),
                None => infer(v),
            };
            let Some(ty) = inferred else { continue };
            match new.get_mut(k) {
                None => {
                    new.insert(
                        k.clone(),
                        FieldSpec {
                            name: k.clone(),
                            ty: Some(ty),
                            index: decl.is_some_and(|d| d.index),
                            unique: decl.is_some_and(|d| d.unique),
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
