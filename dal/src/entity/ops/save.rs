//! Saving a batch: inputs checked and converted before anything is written, rows locked in id
//! order where needed, expected versions checked, one multi-row upsert per shape of row, one
//! history row each, all in the caller's transaction or one of its own.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

use super::super::codec::{from_column, to_column, Fit};
use super::super::schema::{history_table, table, validate_field_name, FieldSpec, Schema};
use super::super::typed::FieldType;
use super::super::value_types;
use super::copy::encode_rows;
use super::input::{plan_fields, prepare_inputs};
use super::sql::{
    copy_stage_sql, create_stage_sql, drop_stage_sql, kept, merge_stage_sql, next_versions_sql,
    save_one_sql, upsert_sql, Expect, NewVersion,
};
use super::{
    column_list, columns, field_json, is_key_race, is_retryable_tx_error, now_micros, placeholders,
    row_to_map, system_type, Audit, Decode, EntityMap, CHUNK_PARAMS, CHUNK_ROWS,
};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::value::Value;

impl Connection {
    /// Saves a batch (one entity is a batch of one): creates or partially updates each row,
    /// appends one history row each, and returns the rows as stored, converted by `out`.
    ///
    /// Everything that can be checked is checked before the first write: names, values, the
    /// expected versions, and — with `check` — that every row as it will be stored converts
    /// back through `out`. `out` runs inside the transaction, so a row that still fails to
    /// convert rolls the save back (in the caller's transaction, the error reaches the
    /// caller before any commit) — except for the one-statement save of a single entity on
    /// PostgreSQL, taken only where nothing after the statement can fail (see below).
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
        super::super::schema::validate_entity_name(entity)?;
        self.refuse_writes_if_read_only()?;
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

        // Custom value types declared by this save: registered, and every value serialized,
        // before anything is touched.
        let declared_types = req.value_types;
        for (field, type_name) in &declared_types {
            validate_field_name(field)?;
            value_types::validate_type_name(type_name)?;
            value_types::require_registered(entity, field, type_name)?;
        }
        let mut custom = serialize_custom(entity, &rows, &declared_types)?;

        // Schema first: new fields and widenings are decided from the whole batch.
        let schema = self.entity_schema(entity, true).await?;
        // Fields already recorded with a custom type are serialized too, before any schema
        // change; a declaration must agree with what is recorded.
        let mut expected_types = declared_types.clone();
        for (field, type_name) in &declared_types {
            if let Some(ty) = schema.fields.get(field) {
                let recorded = schema.custom.get(field).map_or(ty.as_str(), String::as_str);
                if recorded != type_name {
                    return Err(Error::Entity(format!(
                        "field {field:?} of {entity} is stored as {recorded:?}; it cannot be declared as value type {type_name:?} (use a new field name)"
                    )));
                }
            }
        }
        let recorded: BTreeMap<String, String> = schema
            .custom
            .iter()
            .filter(|(f, _)| {
                !declared_types.contains_key(*f) && rows.iter().any(|r| r.contains_key(*f))
            })
            .map(|(f, t)| (f.clone(), t.clone()))
            .collect();
        for (row, more) in custom
            .iter_mut()
            .zip(serialize_custom(entity, &rows, &recorded)?)
        {
            row.extend(more);
        }
        expected_types.extend(recorded);

        let mut declared: Vec<FieldSpec> = req.declared.to_vec();
        declared.extend(declared_types.iter().map(|(field, type_name)| FieldSpec {
            name: field.clone(),
            ty: Some(FieldType::Text),
            index: false,
            unique: false,
            value_type: Some(type_name.clone()),
        }));
        let (specs, widen) = plan_fields(entity, &schema, &rows, &declared)?;
        let schema = self.ensure_fields(entity, &specs, &widen).await?;
        self.ensure_declared_indexes(entity, &schema, &declared)
            .await?;
        // A concurrent writer may have recorded a field first, with another type.
        for row in &rows {
            for field in row.keys() {
                if schema.custom.get(field) != expected_types.get(field) {
                    return Err(Error::Entity(format!(
                        "field {field:?} of {entity} changed type while saving (another writer recorded it first); retry the save"
                    )));
                }
            }
        }

        // Convert every value before writing anything: bad input never leaves partial writes.
        let mut converted: Vec<BTreeMap<String, Value>> = Vec::with_capacity(rows.len());
        for (row, mut custom) in rows.iter().zip(custom) {
            let mut out = BTreeMap::new();
            for (k, v) in row {
                if let Some(stored) = custom.remove(k) {
                    out.insert(k.clone(), stored);
                    continue;
                }
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
                out(simulate_stored(
                    entity, &schema, &ids[i], row, req.audit, version,
                )?)?;
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
        let dialect = self.dialect();
        // One entity, one statement: it is atomic by itself, so no transaction of its own,
        // and what runs after it must not be able to fail. A checked save's `out` was checked
        // on the row as it will be stored, which the statement returns unchanged when the
        // input holds every declared field (a typed entity is saved whole); decoding the
        // returned row cannot fail on PostgreSQL's native types, but a custom value type's
        // deserializer can, so an entity with one keeps its transaction (`out` before COMMIT).
        if ids.len() == 1
            && dialect.writes_in_cte()
            && schema.custom.is_empty()
            && (!req.check || declared.iter().all(|d| rows[0].contains_key(&d.name)))
        {
            return self.save_one_statement(&batch, &out).await;
        }
        if let Some(data) = copy_data(dialect, &batch) {
            return in_own_tx!(
                self,
                |e: &Error| is_retryable_tx_error(e) || is_key_race(e),
                {
                    match self.write_by_copy(&batch, &data).await {
                        Ok(saved) => saved.into_iter().map(&out).collect::<Result<Vec<R>>>(),
                        Err(e) => Err(e),
                    }
                }
            );
        }
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

    /// Saves one entity with ONE statement ([`save_one_sql`]), in the caller's transaction
    /// or on its own. On its own, a statement the server undid (deadlock, serialization
    /// failure) is retried by the statement pipeline, and a key race here (a concurrent
    /// writer took the history version first, e.g. around a permanent delete): the failed
    /// statement wrote nothing.
    async fn save_one_statement<R, F>(&mut self, b: &Batch<'_>, out: &F) -> Result<Vec<R>>
    where
        F: Fn(EntityMap) -> Result<R>,
    {
        let outer = self.in_transaction();
        let mut backoff = self.retry_policy().backoff();
        loop {
            match self.write_one(b).await {
                Ok(saved) => return Ok(vec![out(saved)?]),
                Err(e) if !outer && is_key_race(&e) => {
                    let Some(delay) = backoff.next_delay() else {
                        return Err(e);
                    };
                    self.check_op_sleep(delay)?;
                    tracing::debug!(target: "dal::entity", error = %e, retry = backoff.retries(), "retrying entity write");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The one statement of a single save, and the conflict it reports when the stored
    /// entity is not at the expected version (then nothing was written).
    async fn write_one(&mut self, b: &Batch<'_>) -> Result<EntityMap> {
        let now = Value::Timestamp(now_micros());
        let id = b.ids[0].as_str();
        let row = &b.rows[0];
        let fields: Vec<&String> = row.keys().collect();
        let values = row.values().cloned();
        let user = Value::from(b.audit.user_id.clone());
        let want = b.expected.first().copied().flatten();
        let expect = match want {
            None => Expect::Any,
            Some(0) => Expect::Absent,
            Some(_) => Expect::At,
        };
        let mut params = Vec::with_capacity(fields.len() + 9);
        if let (Expect::At, Some(v)) = (expect, want) {
            params.extend(values);
            params.extend([now.clone(), user.clone(), Value::from(id), Value::Int(v)]);
        } else {
            params.extend([Value::from(id), now.clone(), user.clone()]);
            params.extend([now.clone(), user.clone(), Value::from(id)]);
            params.extend(values);
            if expect == Expect::Any {
                let kept = kept(b.schema, &fields).len();
                params.extend(std::iter::repeat_n(Value::from(id), kept));
            }
        }
        params.extend([now, user, Value::from(b.audit.comment.clone())]);
        let sql = save_one_sql(self.dialect(), b.entity, &fields, b.schema, expect);
        if let Some(r) = self.query_rows(&sql, params).await?.into_iter().next() {
            return row_to_map(r, b.entity, b.schema, Decode::Converted);
        }
        let Some(expected) = want else {
            return Err(Error::Internal(format!("saved entity {id} not returned")));
        };
        let sql = format!("SELECT [version] FROM [{}] WHERE [id] = ?", table(b.entity));
        let actual = match self.query_rows(&sql, vec![Value::from(id)]).await?.first() {
            Some(r) => r.try_get::<i64, _>(0)?,
            None => 0,
        };
        Err(Error::Conflict {
            entity: b.entity.to_owned(),
            id: id.to_owned(),
            expected,
            actual,
        })
    }

    /// A large batch on PostgreSQL: its rows (`data`, from [`copy_data`]) copied into a
    /// staging table, merged into the entity table and the history in one statement, the
    /// staging table dropped — inside the save's transaction.
    async fn write_by_copy(&mut self, b: &Batch<'_>, data: &[u8]) -> Result<Vec<EntityMap>> {
        let now = Value::Timestamp(now_micros());
        let user = Value::from(b.audit.user_id.clone());
        let fields: Vec<&String> = b.rows[0].keys().collect();
        self.query_full(&create_stage_sql(b.entity, &fields), Vec::new())
            .await?;
        let copied = self.copy_in(&copy_stage_sql(&fields), data).await?;
        if copied != b.ids.len() as u64 {
            // No server error: a caller's transaction goes on, so the staging table must go.
            self.query_full(&drop_stage_sql(), Vec::new()).await?;
            return Err(Error::Internal(format!(
                "COPY took {copied} of {} rows",
                b.ids.len()
            )));
        }
        let params = vec![
            now.clone(),
            user.clone(),
            now.clone(),
            user.clone(),
            now,
            user,
            Value::from(b.audit.comment.clone()),
        ];
        let sql = merge_stage_sql(self.dialect(), b.entity, &fields, b.schema);
        let rows = self.query_rows(&sql, params).await?;
        self.query_full(&drop_stage_sql(), Vec::new()).await?;
        let mut saved: HashMap<String, EntityMap> = HashMap::with_capacity(rows.len());
        for r in rows {
            let m = row_to_map(r, b.entity, b.schema, Decode::Converted)?;
            if let Some(Json::String(id)) = m.get("id") {
                saved.insert(id.clone(), m);
            }
        }
        let mut out = Vec::with_capacity(b.ids.len());
        for id in b.ids {
            match saved.remove(id) {
                Some(m) => out.push(m),
                None => return Err(Error::Internal(format!("saved entity {id} not found"))),
            }
        }
        Ok(out)
    }

    async fn write_batch(&mut self, b: &Batch<'_>) -> Result<Vec<EntityMap>> {
        let now = now_micros();
        // Rows are written in id order, so that concurrent batches over the same ids take
        // their row locks in the same order and cannot deadlock each other.
        let mut order: Vec<usize> = (0..b.ids.len()).collect();
        order.sort_by(|x, y| b.ids[*x].cmp(&b.ids[*y]));
        let existing = self.lock_and_check_versions(b, &order).await?;
        let mut saved = self.upsert_rows(b, &order, &existing, now).await?;
        let sorted_ids: Vec<String> = order.iter().map(|&i| b.ids[i].clone()).collect();
        if self.dialect().upsert_returns_rows() {
            self.append_history(b.entity, b.schema, &sorted_ids, now, b.audit, false)
                .await?;
        } else if self.history_append_returns_rows() {
            // The history rows are copies of the stored rows: they come back from the append.
            saved = HashMap::with_capacity(sorted_ids.len());
            for r in self
                .history_append(b.entity, b.schema, &sorted_ids, now, b.audit, false, true)
                .await?
                .rows
            {
                let m = row_to_map(r, b.entity, b.schema, Decode::Converted)?;
                if let Some(Json::String(id)) = m.get("id") {
                    saved.insert(id.clone(), m);
                }
            }
        } else {
            self.append_history(b.entity, b.schema, &sorted_ids, now, b.audit, false)
                .await?;
            saved = self.fetch_by_ids(b.entity, b.schema, b.ids).await?;
        }
        // Same order as the input.
        let mut out = Vec::with_capacity(b.ids.len());
        for id in b.ids {
            match saved.remove(id) {
                Some(m) => out.push(m),
                None => return Err(Error::Internal(format!("saved entity {id} not found"))),
            }
        }
        Ok(out)
    }

    /// The rows that exist, locked in id order (`order`) with their versions, where needed:
    /// to split inserts from updates (MySQL), to queue concurrent batches (PostgreSQL), or to
    /// check the versions the save expects — a mismatch is a [`Error::Conflict`] before
    /// anything is written.
    async fn lock_and_check_versions(
        &mut self,
        b: &Batch<'_>,
        order: &[usize],
    ) -> Result<HashMap<String, i64>> {
        let checking = b.expected.iter().any(Option::is_some);
        if !checking && !self.dialect().lock_batch_up_front(b.ids.len()) {
            return Ok(HashMap::new());
        }
        let sorted: Vec<&str> = order.iter().map(|&i| b.ids[i].as_str()).collect();
        let existing = self.lock_rows(b.entity, &sorted).await?;
        for (i, want) in b.expected.iter().enumerate() {
            if let Some(want) = *want {
                let actual = existing.get(&b.ids[i]).copied().unwrap_or(0);
                if actual != want {
                    return Err(Error::Conflict {
                        entity: b.entity.to_owned(),
                        id: b.ids[i].clone(),
                        expected: want,
                        actual,
                    });
                }
            }
        }
        Ok(existing)
    }

    /// One multi-row upsert per set of fields (in chunks), rows in `order`. Where the upsert
    /// fires on *any* unique key (MySQL), new rows are inserted plainly (a clash on another
    /// unique field is then an error, as it should be) and only rows that exist (locked) go
    /// through the upsert. Returns the stored rows where the upsert returns them.
    async fn upsert_rows(
        &mut self,
        b: &Batch<'_>,
        order: &[usize],
        existing: &HashMap<String, i64>,
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, EntityMap>> {
        let dialect = self.dialect();
        let user = Value::from(b.audit.user_id.clone());
        // One row: its statement looks its version up itself. Many: one lookup for the batch,
        // instead of a subquery per row for the server to plan.
        let (version, next) = if b.ids.len() > 1 {
            (
                NewVersion::Given,
                self.next_versions(b.entity, b.ids).await?,
            )
        } else {
            (NewVersion::FromHistory, HashMap::new())
        };
        let mut shapes: BTreeMap<Vec<&String>, Vec<usize>> = BTreeMap::new();
        for &i in order {
            shapes
                .entry(b.rows[i].keys().collect::<Vec<&String>>())
                .or_default()
                .push(i);
        }
        let split = dialect.upsert_fires_on_any_unique_key();
        let mut saved: HashMap<String, EntityMap> = HashMap::with_capacity(b.ids.len());
        for (fields, members) in &shapes {
            let (update, insert): (Vec<usize>, Vec<usize>) = if split {
                members
                    .iter()
                    .partition(|&&i| existing.contains_key(&b.ids[i]))
            } else {
                (Vec::new(), members.clone())
            };
            for (group, plain) in [(&insert, split), (&update, false)] {
                // id, created_at, created_by, updated_at, updated_by, version (from the id).
                let per_row = 6
                    + fields.len()
                    + if plain {
                        0
                    } else {
                        kept(b.schema, fields).len()
                    };
                let per_chunk = (CHUNK_PARAMS / per_row).clamp(1, CHUNK_ROWS);
                for chunk in group.chunks(per_chunk) {
                    let mut params = Vec::with_capacity(chunk.len() * per_row);
                    for &i in chunk {
                        let id = Value::from(b.ids[i].as_str());
                        params.extend([id.clone(), Value::Timestamp(now), user.clone()]);
                        params.extend([Value::Timestamp(now), user.clone()]);
                        params.push(match version {
                            NewVersion::FromHistory => id,
                            NewVersion::Given => {
                                Value::Int(next.get(&b.ids[i]).copied().unwrap_or(0) + 1)
                            }
                        });
                        for f in fields {
                            params.push(b.rows[i].get(*f).cloned().unwrap_or(Value::Null));
                        }
                        if !plain {
                            let kept = kept(b.schema, fields).len();
                            params
                                .extend(std::iter::repeat_n(Value::from(b.ids[i].as_str()), kept));
                        }
                    }
                    let sql = upsert_sql(
                        dialect,
                        b.entity,
                        fields,
                        chunk.len(),
                        b.schema,
                        plain,
                        version,
                    );
                    for r in self.query_full(&sql, params).await?.rows {
                        let m = row_to_map(r, b.entity, b.schema, Decode::Converted)?;
                        if let Some(Json::String(id)) = m.get("id") {
                            saved.insert(id.clone(), m);
                        }
                    }
                }
            }
        }
        Ok(saved)
    }

    /// The highest history version of each of `ids` that has history (ids of entities that
    /// exist, or were permanently deleted).
    async fn next_versions(
        &mut self,
        entity: &str,
        ids: &[String],
    ) -> Result<HashMap<String, i64>> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(CHUNK_ROWS * 2) {
            let sql = next_versions_sql(entity, chunk.len());
            let params = chunk.iter().map(|id| Value::from(id.as_str())).collect();
            for r in self.query_rows(&sql, params).await? {
                found.insert(r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?);
            }
        }
        Ok(found)
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
    pub(super) async fn append_history(
        &mut self,
        entity: &str,
        schema: &Schema,
        ids: &[String],
        now: DateTime<Utc>,
        audit: &Audit,
        deleting: bool,
    ) -> Result<u64> {
        Ok(self
            .history_append(entity, schema, ids, now, audit, deleting, false)
            .await?
            .rows_affected)
    }

    /// True when the server returns the rows an `INSERT … SELECT` inserted (MariaDB 10.5+).
    fn history_append_returns_rows(&self) -> bool {
        self.system_name()
            .is_some_and(|system| self.dialect().insert_select_returning(system))
    }

    /// [`append_history`](Self::append_history), the appended rows' entity columns returned
    /// when `returning` (where [`history_append_returns_rows`](Self::history_append_returns_rows)).
    #[allow(clippy::too_many_arguments)]
    async fn history_append(
        &mut self,
        entity: &str,
        schema: &Schema,
        ids: &[String],
        now: DateTime<Utc>,
        audit: &Audit,
        deleting: bool,
        returning: bool,
    ) -> Result<crate::backend::QueryOutput> {
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
        let returning = if returning {
            format!(" RETURNING {}", column_list(&cols))
        } else {
            String::new()
        };
        let mut inserted = crate::backend::QueryOutput::default();
        for chunk in ids.chunks(CHUNK_ROWS * 2) {
            let sql = format!(
                "INSERT INTO [{h}] ({}, [history_timestamp], [history_user_id], [history_comment]) \
                 SELECT {}, ?, ?, ? FROM [{t}] [src] WHERE [src].[id] IN ({}) ORDER BY [src].[id]{returning} /* dal:{:x} */",
                column_list(&cols),
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
            let out = self.query_full(&sql, params).await?;
            inserted.rows_affected += out.rows_affected;
            inserted.rows.extend(out.rows);
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
                column_list(&cols),
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
                let m = row_to_map(r, entity, schema, Decode::Converted)?;
                if let Some(Json::String(id)) = m.get("id") {
                    let id = id.clone();
                    out.insert(id, m);
                }
            }
        }
        Ok(out)
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
    /// Fields of a custom value type, declared by a dynamic save: field → type name.
    pub value_types: BTreeMap<String, String>,
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
            value_types: BTreeMap::new(),
            check: false,
        }
    }
}

/// Per row, the values of the fields in `types` (field → custom value type) that the row
/// holds, through their serializers.
fn serialize_custom(
    entity: &str,
    rows: &[EntityMap],
    types: &BTreeMap<String, String>,
) -> Result<Vec<BTreeMap<String, Value>>> {
    rows.iter()
        .map(|row| {
            types
                .iter()
                .filter_map(|(field, type_name)| {
                    row.get(field).map(|v| {
                        value_types::to_stored(entity, field, type_name, v)
                            .map(|stored| (field.clone(), stored))
                    })
                })
                .collect()
        })
        .collect()
}

/// The batch in `COPY` form when it goes through a staging table: the dialect streams
/// batches this large, no version is expected (those go through the row locks), every row
/// has the same fields (a partial update leaves the others alone), and every value has a
/// `COPY` text form.
fn copy_data(dialect: &dyn crate::backend::Dialect, b: &Batch<'_>) -> Option<Vec<u8>> {
    let min = dialect.bulk_copy_rows()?;
    let first = b.rows.first()?;
    if b.ids.len() < min
        || b.expected.iter().any(Option::is_some)
        || b.rows.iter().any(|r| !r.keys().eq(first.keys()))
    {
        return None;
    }
    let fields: Vec<&String> = first.keys().collect();
    encode_rows(b.ids, b.rows, &fields)
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

/// The entity as it will read back once `row` is saved: system fields filled in, each value
/// through the same conversion a read uses.
fn simulate_stored(
    entity: &str,
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
    for name in schema.fields.keys() {
        let v = row.get(name).cloned().unwrap_or(Value::Null);
        m.insert(name.clone(), field_json(entity, schema, name, v)?);
    }
    Ok(m)
}
