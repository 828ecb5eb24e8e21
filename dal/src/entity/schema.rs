//! Entity schema: three tables per entity (`name`, `name_meta`, `name_history`), created on
//! first save and evolved as new fields arrive. One path for dynamic and typed entities.
//!
//! Where schema changes run:
//! * outside a caller's transaction: in autocommit, before the data statements;
//! * inside a caller's transaction on PostgreSQL and SQLite: in that transaction (their DDL is
//!   transactional, so a rollback removes columns and metadata together);
//! * inside a caller's transaction on MySQL/MariaDB: DDL commits implicitly, so the column and
//!   its metadata row are written together in autocommit and the caller's transaction is then
//!   reopened. Statements the caller ran before the schema change are committed by MySQL itself
//!   (the documented MySQL caveat); metadata and table never disagree.
//!
//! The schema cache is per pool (held by the pool) and entity, revalidated after a short TTL
//! so that changes made by other processes are seen. It also knows the table's indexes, so an
//! `#[entity(index)]`/`#[entity(unique)]` declared on a field whose column exists is created at
//! the next save without a catalog query per save.
//!
//! Columns made here are always nullable and carry no default, check or foreign key: a dynamic
//! save may leave any field out, and history rows predate later fields. `NOT NULL`, defaults,
//! checks and foreign keys are the [`Migrator`](crate::migrate::Migrator)'s, which applies them
//! to the entity's table only. In [`SchemaMode::Migrations`] nothing here runs DDL: a save that
//! needs a table, a column or a wider type fails with [`Error::Entity`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::codec::F64_EXACT_INT;
use super::typed::FieldType;
use crate::backend::{Dialect, SystemTypes};
use crate::connection::Connection;
use crate::error::{DbErrorKind, Error, Result};
use crate::migrate::SchemaMode;
use crate::pool::SchemaCache;
use crate::value::Value;

/// System columns of every entity table, in order. `version` is 1 after the first save and
/// grows by one with every change (save, delete, restore); each history row carries the
/// version it recorded.
pub(crate) const SYSTEM_FIELDS: [&str; 7] = [
    "id",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "deleted_at",
    "version",
];
/// Extra columns of history tables.
pub(crate) const HISTORY_FIELDS: [&str; 3] =
    ["history_timestamp", "history_user_id", "history_comment"];

const CACHE_TTL: Duration = Duration::from_secs(2);
const MAX_ENTITY_NAME: usize = 48;
const MAX_FIELD_NAME: usize = 64;
/// Suffixes of an entity's side tables: an entity may not be named so that its table is
/// another entity's side table.
const SIDE_SUFFIXES: [&str; 2] = ["_history", "_meta"];

/// True for a system or history column name, spelt exactly.
pub(crate) fn is_reserved(name: &str) -> bool {
    SYSTEM_FIELDS.contains(&name) || HISTORY_FIELDS.contains(&name)
}

/// The reserved name `name` equals ignoring ASCII case, if any.
pub(crate) fn reserved_ignoring_case(name: &str) -> Option<&'static str> {
    SYSTEM_FIELDS
        .iter()
        .chain(HISTORY_FIELDS.iter())
        .find(|r| r.eq_ignore_ascii_case(name))
        .copied()
}

/// Checks an entity name: a letter or `_`, then letters, digits or `_`, at most 48 characters
/// (room for the `_history` suffix within every backend's identifier limit), not ending in
/// `_history` or `_meta` (those are the names of every entity's side tables).
pub(crate) fn validate_entity_name(name: &str) -> Result<()> {
    validate_ident(name, MAX_ENTITY_NAME, "entity")?;
    let lower = name.to_ascii_lowercase();
    if let Some(suffix) = SIDE_SUFFIXES.iter().find(|s| lower.ends_with(*s)) {
        return Err(Error::Entity(format!(
            "invalid entity name {name:?}: names ending in {suffix} are reserved for the side tables of entities"
        )));
    }
    Ok(())
}

/// Checks a field name like an entity name (at most 64 characters). Field names are
/// case-insensitive on every backend: system and history column names, in any spelling, are
/// not field names.
pub(crate) fn validate_field_name(name: &str) -> Result<()> {
    validate_ident(name, MAX_FIELD_NAME, "field")?;
    if let Some(reserved) = reserved_ignoring_case(name) {
        return Err(Error::Entity(format!(
            "field name {name:?} is reserved: it is the system field {reserved:?} (field names are case-insensitive)"
        )));
    }
    Ok(())
}

fn validate_ident(name: &str, max: usize, what: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= max;
    if ok {
        Ok(())
    } else {
        Err(Error::Entity(format!(
            "invalid {what} name {name:?}: use a letter or _ followed by letters, digits or _ (at most {max} characters)"
        )))
    }
}

/// What is known of one entity's tables.
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    pub exists: bool,
    /// User fields and their logical types (a field of a custom value type is `Text`).
    pub fields: BTreeMap<String, FieldType>,
    /// Fields of a custom value type (see [`super::value_types`]), and the type's name as
    /// recorded in `_meta`.
    pub custom: BTreeMap<String, String>,
    /// Names of the indexes of the entity's table (to add a declared index to an existing
    /// column without asking the catalog at every save).
    pub indexes: BTreeSet<String>,
    /// Fields whose column is NOT NULL without a default (set by the migrator). An upsert
    /// that leaves one out still gives it a value — the stored one — because the server
    /// checks NOT NULL on the row it proposes to insert before it sees the conflict.
    pub required: BTreeSet<String>,
    /// Fields whose column is NOT NULL, with a default or without (`required` is a subset).
    pub not_null: BTreeSet<String>,
    loaded: Instant,
    /// What is derived from the fields, computed on first use (a schema never changes once
    /// loaded: a changed table is a new `Schema`).
    memo: SchemaMemo,
}

/// A schema's derived values: its fingerprint and the text of its get-by-id statements.
#[derive(Debug, Default)]
struct SchemaMemo {
    fingerprint: OnceLock<u64>,
    /// Indexed by `include_deleted as usize | (lock as usize) << 1`.
    get_sql: [OnceLock<String>; 4],
}

impl Clone for SchemaMemo {
    /// A clone computes its own (nothing derived is shared with another schema value).
    fn clone(&self) -> Self {
        SchemaMemo::default()
    }
}

impl Schema {
    /// A schema with these fields (tests of the statement builders).
    #[cfg(test)]
    pub(crate) fn with_fields(fields: BTreeMap<String, FieldType>) -> Self {
        Schema {
            exists: true,
            fields,
            custom: BTreeMap::new(),
            indexes: BTreeSet::new(),
            required: BTreeSet::new(),
            not_null: BTreeSet::new(),
            loaded: Instant::now(),
            memo: SchemaMemo::default(),
        }
    }

    fn absent() -> Self {
        Schema {
            exists: false,
            fields: BTreeMap::new(),
            custom: BTreeMap::new(),
            indexes: BTreeSet::new(),
            required: BTreeSet::new(),
            not_null: BTreeSet::new(),
            loaded: Instant::now(),
            memo: SchemaMemo::default(),
        }
    }

    /// A short tag of the field set and types: put in statement text so that a prepared
    /// statement cached by the server is never reused across a column type change.
    pub fn fingerprint(&self) -> u64 {
        *self
            .memo
            .fingerprint
            .get_or_init(|| self.compute_fingerprint())
    }

    /// The get-by-id statement of this schema for `include_deleted` and `lock`, built by
    /// `build` on first use and kept with the schema.
    pub(crate) fn get_sql(
        &self,
        include_deleted: bool,
        lock: bool,
        build: impl FnOnce() -> String,
    ) -> &str {
        self.memo.get_sql[usize::from(include_deleted) | usize::from(lock) << 1].get_or_init(build)
    }

    fn compute_fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for (k, v) in &self.fields {
            k.hash(&mut h);
            v.as_str().hash(&mut h);
        }
        self.custom.hash(&mut h);
        h.finish()
    }
}

/// A field the caller wants to store, with its index hints (typed entities).
#[derive(Debug, Clone)]
pub(crate) struct FieldSpec {
    pub name: String,
    /// `None`: decided from the first non-null value saved.
    pub ty: Option<FieldType>,
    pub index: bool,
    pub unique: bool,
    /// A custom value type (the column is `TEXT`, `ty` is `Text`): recorded in `_meta` by
    /// this name instead of `ty`'s.
    pub value_type: Option<String>,
}

/// Where an entity's schema is cached: its name in the cache of the connection's pool.
struct CacheKey {
    cache: Arc<SchemaCache>,
    entity: String,
}

fn cache_put(key: CacheKey, schema: Arc<Schema>) {
    let loaded = schema.loaded;
    key.cache.put(key.entity, schema, loaded);
}

fn cache_forget(key: &CacheKey) {
    key.cache.forget(&key.entity);
}

pub(crate) fn table(entity: &str) -> String {
    entity.to_owned()
}
pub(crate) fn meta_table(entity: &str) -> String {
    format!("{entity}_meta")
}
pub(crate) fn history_table(entity: &str) -> String {
    format!("{entity}_history")
}

impl Connection {
    fn schema_key(&self, entity: &str) -> CacheKey {
        CacheKey {
            cache: self.schema_cache().clone(),
            entity: entity.to_owned(),
        }
    }

    /// Drops what the schema cache knows of `entity` (after its tables were dropped or
    /// created behind the cache's back).
    pub(crate) fn forget_schema(&self, entity: &str) {
        cache_forget(&self.schema_key(entity));
    }

    /// The schema of `entity`, from cache or the database. With `create`, missing tables are
    /// created.
    pub(crate) async fn entity_schema(
        &mut self,
        entity: &str,
        create: bool,
    ) -> Result<Arc<Schema>> {
        validate_entity_name(entity)?;
        // The hot path (a cached schema) allocates nothing.
        if let Some(s) = self.schema_cache().get::<Schema>(entity, CACHE_TTL) {
            if s.exists || !create {
                return Ok(s);
            }
        }
        let key = self.schema_key(entity);
        let mut schema = self.load_schema(entity).await?;
        if !schema.exists && create && self.schema_mode() == SchemaMode::Migrations {
            return Err(Error::Entity(format!(
                "entity {entity} has no tables and the schema mode is migrations (saves run no DDL): run the migrator (dal::migrate::Migrator) to create them; nothing was written"
            )));
        }
        if !schema.exists && create {
            self.create_tables(entity).await?;
            schema = self.load_schema(entity).await?;
        }
        let schema = Arc::new(schema);
        if !self.schema_changed_in_tx() {
            cache_put(key, schema.clone());
        }
        Ok(schema)
    }

    async fn load_schema(&mut self, entity: &str) -> Result<Schema> {
        if !self.table_exists(&meta_table(entity)).await?
            || !self.table_exists(&history_table(entity)).await?
        {
            return Ok(Schema::absent());
        }
        if !self.column_exists(&table(entity), "version").await? {
            self.add_version_column(entity).await?;
        }
        let rows = self
            .query_rows(
                &format!("SELECT [name], [type] FROM [{}]", meta_table(entity)),
                vec![],
            )
            .await?;
        let mut fields = BTreeMap::new();
        let mut custom = BTreeMap::new();
        for r in rows {
            let name: String = r.try_get(0)?;
            let ty: String = r.try_get(1)?;
            match FieldType::parse(&ty) {
                Some(ty) => {
                    fields.insert(name, ty);
                }
                // Any other name is a custom value type, stored as text; whether it is
                // registered is checked where a value is converted (a raw read needs not).
                None => {
                    fields.insert(name.clone(), FieldType::Text);
                    custom.insert(name, ty);
                }
            }
        }
        let mut indexes = BTreeSet::new();
        for r in self
            .query_rows(
                self.dialect().index_names_sql(),
                vec![Value::from(table(entity))],
            )
            .await?
        {
            if let Some(name) = r.try_get::<Option<String>, _>(0)? {
                indexes.insert(name);
            }
        }
        let mut required = BTreeSet::new();
        let mut not_null = BTreeSet::new();
        for (name, c) in crate::migrate::catalog::columns(self, &table(entity)).await? {
            if c.nullable || !fields.contains_key(&name) {
                continue;
            }
            if c.default.is_none() {
                required.insert(name.clone());
            }
            not_null.insert(name);
        }
        Ok(Schema {
            exists: true,
            fields,
            custom,
            indexes,
            required,
            not_null,
            loaded: Instant::now(),
            memo: SchemaMemo::default(),
        })
    }

    /// Runs a `SELECT COUNT(*) …` and returns the count.
    pub(crate) async fn query_count(&mut self, sql: &str, params: Vec<Value>) -> Result<i64> {
        let rows = self.query_rows(sql, params).await?;
        Ok(rows
            .first()
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()?
            .unwrap_or(0))
    }

    pub(crate) async fn table_exists(&mut self, name: &str) -> Result<bool> {
        let sql = self.dialect().table_exists_sql();
        Ok(self.query_count(sql, vec![Value::from(name)]).await? > 0)
    }

    async fn column_exists(&mut self, table: &str, column: &str) -> Result<bool> {
        let sql = self.dialect().column_exists_sql();
        let params = vec![Value::from(table), Value::from(column)];
        Ok(self.query_count(sql, params).await? > 0)
    }

    async fn create_tables(&mut self, entity: &str) -> Result<()> {
        let statements = create_table_statements(self.dialect(), entity);
        let reopen = self.start_schema_change();
        let mut result = Ok(());
        for sql in &statements {
            result = self.ddl(sql).await;
            if result.is_err() {
                break;
            }
        }
        self.finish_schema_change(reopen, result).await
    }

    /// Tables made before entity rows carried their version get the column, filled from
    /// their history.
    async fn add_version_column(&mut self, entity: &str) -> Result<()> {
        let t = table(entity);
        let h = history_table(entity);
        let reopen = self.start_schema_change();
        let result = async {
            self.ddl(&format!(
                "ALTER TABLE [{t}] ADD COLUMN [version] BIGINT NOT NULL DEFAULT 0"
            ))
            .await?;
            self.query_rows(
                &format!(
                    "UPDATE [{t}] SET [version] = (SELECT COALESCE(MAX([h].[version]), 0) FROM [{h}] [h] WHERE [h].[id] = [{t}].[id])"
                ),
                vec![],
            )
            .await
            .map(|_| ())
        }
        .await;
        self.finish_schema_change(reopen, result).await
    }

    /// Runs DDL, treating "already exists" from a concurrent creator as success.
    async fn ddl(&mut self, sql: &str) -> Result<()> {
        match self.query_rows(sql, vec![]).await {
            Ok(_) => Ok(()),
            Err(e) if is_already_exists(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Before a schema change: applies the transaction rules described in the module docs.
    /// Returns whether the caller's MySQL transaction must be reopened afterwards.
    fn start_schema_change(&mut self) -> bool {
        let in_tx = self.in_transaction();
        let transactional = self.dialect().transactional_ddl();
        if in_tx && transactional {
            self.mark_schema_changed_in_tx();
        }
        if in_tx && !transactional {
            tracing::warn!(
                target: "dal::entity",
                "schema change inside a MySQL transaction: MySQL commits the statements before it implicitly; the transaction is reopened afterwards"
            );
        }
        in_tx && !transactional
    }

    /// After a schema change (successful or not).
    async fn finish_schema_change(&mut self, reopen: bool, result: Result<()>) -> Result<()> {
        if reopen {
            self.reopen_transaction_after_ddl().await?;
        }
        result
    }

    /// Makes sure every field in `wanted` has a column and a metadata row of a compatible type;
    /// widens `Int` fields to `Float` where asked. Returns the schema to write with.
    pub(crate) async fn ensure_fields(
        &mut self,
        entity: &str,
        wanted: &[FieldSpec],
        widen: &[String],
    ) -> Result<Arc<Schema>> {
        let schema = self.entity_schema(entity, true).await?;
        let missing: Vec<&FieldSpec> = wanted
            .iter()
            .filter(|f| !schema.fields.contains_key(&f.name))
            .collect();
        if missing.is_empty() && widen.is_empty() {
            return Ok(schema);
        }
        if self.schema_mode() == SchemaMode::Migrations {
            let mut names: Vec<&str> = missing.iter().map(|f| f.name.as_str()).collect();
            names.extend(widen.iter().map(String::as_str));
            let what = if missing.is_empty() {
                "fields that need a wider type"
            } else {
                "unknown fields"
            };
            return Err(Error::Entity(format!(
                "entity {entity}: {what} {names:?} and the schema mode is migrations (saves run no DDL): declare them and run the migrator (dal::migrate::Migrator); nothing was written"
            )));
        }
        let missing: Vec<FieldSpec> = missing.into_iter().cloned().collect();
        let reopen = self.start_schema_change();
        let result = self.add_fields(entity, &missing, widen).await;
        self.finish_schema_change(reopen, result).await?;
        cache_forget(&self.schema_key(entity));
        self.entity_schema(entity, true).await
    }

    /// Auto mode: creates the `#[entity(index)]` / `#[entity(unique)]` indexes declared on
    /// fields whose column already exists (a column added by a save gets its index with it).
    /// Known indexes come from the cached schema, so a save whose indexes exist asks nothing.
    /// A unique index that stored duplicates prevent is an [`Error::Entity`].
    pub(crate) async fn ensure_declared_indexes(
        &mut self,
        entity: &str,
        schema: &Schema,
        declared: &[FieldSpec],
    ) -> Result<()> {
        if self.schema_mode() != SchemaMode::Auto {
            return Ok(());
        }
        let mut wanted = Vec::new();
        for f in declared
            .iter()
            .filter(|f| schema.fields.contains_key(&f.name))
        {
            for (on, unique) in [(f.index, false), (f.unique, true)] {
                let name = index_name(entity, &f.name, unique);
                if on && !schema.indexes.contains(&name) {
                    wanted.push((f.name.clone(), unique, name));
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let dialect = self.dialect();
        let reopen = self.start_schema_change();
        let mut result = Ok(());
        for (field, unique, name) in &wanted {
            let sql = dialect.create_index(*unique, name, &table(entity), field);
            result = match self.ddl(&sql).await {
                Err(e) if *unique && e.is_unique_violation() => Err(Error::Entity(format!(
                    "cannot add the unique index on {entity}.{field}: stored values are not unique ({e}); remove the duplicates or drop #[entity(unique)]"
                ))),
                // E.g. MySQL cannot index the LONGTEXT column of a text field created
                // unindexed: the save goes on, the Migrator changes the column type.
                // Not inside a transaction: there a failed statement aborts it (PostgreSQL),
                // and the cause must reach the caller.
                Err(e) if matches!(e, Error::Database { .. }) && !self.in_transaction() => {
                    tracing::warn!(
                        target: "dal::entity",
                        entity, field = field.as_str(), error = %e,
                        "the declared index could not be added to the existing column; run the migrator (dal::migrate::Migrator)"
                    );
                    Ok(())
                }
                other => other,
            };
            if result.is_err() {
                break;
            }
        }
        self.finish_schema_change(reopen, result).await?;
        cache_forget(&self.schema_key(entity));
        Ok(())
    }

    async fn add_fields(
        &mut self,
        entity_owned: &str,
        missing: &[FieldSpec],
        widen: &[String],
    ) -> Result<()> {
        let dialect = self.dialect();
        let conn = self;
        {
            for f in missing {
                let Some(ty) = f.ty else { continue };
                let col_ty = dialect.column_type(ty, f.index || f.unique);
                for t in [table(entity_owned), history_table(entity_owned)] {
                    if !conn.column_exists(&t, &f.name).await? {
                        conn.ddl(&dialect.add_column(&t, &f.name, col_ty)).await?;
                    }
                }
                if f.index || f.unique {
                    let idx = index_name(entity_owned, &f.name, f.unique);
                    conn.ddl(&dialect.create_index(f.unique, &idx, &table(entity_owned), &f.name))
                        .await?;
                }
                let insert =
                    dialect.insert_if_absent(&meta_table(entity_owned), &["name", "type"], "name");
                let recorded = f.value_type.as_deref().unwrap_or(ty.as_str());
                conn.query_rows(
                    &insert,
                    vec![Value::from(f.name.as_str()), Value::from(recorded)],
                )
                .await?;
            }
            for field in widen {
                conn.widen_to_float(entity_owned, field).await?;
            }
            Ok(())
        }
    }

    /// Int → Float, only when every stored value converts exactly.
    async fn widen_to_float(&mut self, entity: &str, field: &str) -> Result<()> {
        for t in [table(entity), history_table(entity)] {
            let n = self
                .query_count(
                    &format!("SELECT COUNT(*) FROM [{t}] WHERE [{field}] > ? OR [{field}] < ?"),
                    vec![Value::Int(F64_EXACT_INT), Value::Int(-F64_EXACT_INT)],
                )
                .await?;
            if n > 0 {
                return Err(Error::Entity(format!(
                    "field {field:?} of {entity} holds integers too large to become floats exactly; store the new value in another field"
                )));
            }
        }
        for t in [table(entity), history_table(entity)] {
            if let Some(sql) = self.dialect().widen_to_float(&t, field) {
                self.ddl(&sql).await?;
            }
        }
        self.query_rows(
            &format!(
                "UPDATE [{}] SET [type] = ? WHERE [name] = ?",
                meta_table(entity)
            ),
            vec![Value::from(FieldType::Float.as_str()), Value::from(field)],
        )
        .await?;
        Ok(())
    }
}

/// The statements that create an entity's three tables (`IF NOT EXISTS`), `_meta` last: its
/// presence means the entity's tables are complete.
pub(crate) fn create_table_statements(dialect: &dyn Dialect, entity: &str) -> [String; 3] {
    let SystemTypes {
        id,
        timestamp: ts,
        short_text: short,
        long_text: long,
    } = dialect.system_types();
    let opts = dialect.table_options();
    let system = format!(
        "[id] {id} NOT NULL, [created_at] {ts} NOT NULL, [created_by] {short}, [updated_at] {ts} NOT NULL, [updated_by] {short}, [deleted_at] {ts}, [version] BIGINT NOT NULL DEFAULT 0"
    );
    [
        format!(
            "CREATE TABLE IF NOT EXISTS [{}] ({system}, PRIMARY KEY ([id])){opts}",
            table(entity)
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS [{}] ({system}, [history_timestamp] {ts} NOT NULL, [history_user_id] {short}, [history_comment] {long}, PRIMARY KEY ([id], [version])){opts}",
            history_table(entity)
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS [{}] ([name] VARCHAR(255) NOT NULL, [type] VARCHAR(32) NOT NULL, PRIMARY KEY ([name])){opts}",
            meta_table(entity)
        ),
    ]
}

/// `entity_field_idx` / `entity_field_key`, or a hashed name when that exceeds identifier limits.
pub(crate) fn index_name(entity: &str, field: &str, unique: bool) -> String {
    let kind = if unique { "key" } else { "idx" };
    let name = format!("{entity}_{field}_{kind}");
    if name.len() <= 60 {
        return name;
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    format!("dal_{:016x}_{kind}", h.finish())
}

/// "Already exists", e.g. from a concurrent creator.
fn is_already_exists(e: &Error) -> bool {
    e.kind() == DbErrorKind::AlreadyExists
}
