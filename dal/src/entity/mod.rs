//! The entity layer: JSON objects (or typed structs) stored with automatic schema, evolution,
//! full history and soft delete, on every backend.
//!
//! ```
//! use dal::prelude::*;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
//! let db = Database::from_url("sqlite::memory:")?;
//! let mut conn = db.async_connection().await?;
//! let user = conn.save_entity("users", json!({"name": "Phil", "age": 30})).await?;
//! let id = user["id"].as_str().unwrap().to_owned();
//! conn.save_entity("users", json!({"id": id, "status": "premium"}))
//!     .user_id("admin").comment("Upgraded").await?;          // partial update, new column
//! let got = conn.get_entity("users", &id).await?.unwrap();
//! assert_eq!(got["age"], json!(30));                          // numbers stay numbers
//! assert_eq!(got["status"], json!("premium"));
//! let adults = conn.count_entities("users").filter("[age] >= ?", params![18]).await?;
//! assert_eq!(adults, 1);
//! assert_eq!(conn.get_entity_history("users", &id).await?.len(), 2);
//! # Ok(()) }
//! ```
//!
//! Each entity `name` has three tables: `name` (the current rows), `name_meta` (field → logical
//! type) and `name_history` (one row per change, with `version`, `history_timestamp`,
//! `history_user_id`, `history_comment`). System fields: `id` (a UUID unless given),
//! `created_at`, `created_by`, `updated_at`, `updated_by`, `deleted_at`.
//!
//! ## Options are builder methods; builders are `IntoFuture`
//!
//! Every option of an entity operation is a method on the value the operation returns:
//! `save_entity(..)` / `save(..)` / `save_all(..)` take `.user_id()`, `.comment()` (both
//! recorded in the history row) and `.expect_version()`, and the dynamic saves
//! `.field_type()` (a custom value type, see [`value_types`]); `delete_entity(..)` / `delete(..)`
//! take `.permanent()`, `.user_id()`, `.comment()`; `restore_entity(..)` / `restore(..)` take
//! `.user_id()`, `.comment()`; `get_entity(..)` / `get(..)` take `.include_deleted()`,
//! `.for_update()`; `find_entities(..)` / `find()` take `.filter()`, `.order_by()`, `.limit()`,
//! `.offset()`, `.include_deleted()`; the dynamic reads (`get_entity`, `find_entities`,
//! `get_entity_history`, `get_entity_by_version`) take `.raw()` (values as stored); `count_entities(..)` / `count()` take `.filter()`,
//! `.include_deleted()`. The same options exist as plain structs ([`SaveOptions`],
//! [`DeleteOptions`], [`RestoreOptions`], [`GetOptions`], [`FindOptions`]), taken by the
//! typed `_with` forms (`save_with`, `delete_with`, `count_with`, …) and by the blocking twin.
//!
//! The builders ([`SaveEntity`], [`FindEntities`], [`SaveTyped`], [`CountTyped`], …)
//! implement [`IntoFuture`]: nothing is sent until one is awaited, so a builder can be kept in
//! a variable, completed step by step, handed to a function and awaited there. It borrows the
//! connection mutably until then. `into_future()` turns one into a boxed `Send` future, and
//! anything that takes an `IntoFuture` (`tokio::time::timeout`, `tokio::join!`) takes a
//! builder as it is.
//!
//! ```
//! use std::future::IntoFuture;
//! use std::time::Duration;
//! use dal::prelude::*;
//!
//! /// Awaits any dal operation, giving up after `secs` seconds.
//! async fn within<F>(secs: u64, op: F) -> Option<F::Output>
//! where
//!     F: IntoFuture,
//! {
//!     tokio::time::timeout(Duration::from_secs(secs), op).await.ok()
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
//! let db = Database::from_url("sqlite::memory:")?;
//! let mut conn = db.async_connection().await?;
//! conn.save_entities("items", vec![json!({"n": 1}), json!({"n": 2}), json!({"n": 3})])
//!     .comment("import").await?;
//!
//! // A query stored in a variable, completed depending on the request, awaited later.
//! let only_large = true;
//! let mut query = conn.find_entities("items").order_by("[n] DESC");
//! if only_large {
//!     query = query.filter("[n] >= ?", params![2]);
//! }
//! let items = query.await?;
//! assert_eq!(items.len(), 2);
//!
//! // A builder handed to a function that awaits it.
//! let n = within(5, conn.count_entities("items")).await.expect("in time")?;
//! assert_eq!(n, 3);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::pin::Pin;
use std::time::Duration;

use serde_json::{Map, Value as Json};

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::value::{IntoParams, Value};

mod blocking;
mod codec;
mod finite;
mod ops;
pub(crate) mod schema;
pub mod typed;
pub mod value_types;

pub use ops::RollbackReport;
pub(crate) use ops::{part_columns, Audit, EntityMap, Layout, PageKey, Part, SaveRequest};
pub use rollback::{RollbackAllTyped, RollbackEntities, RollbackOptions, RollbackTyped};
pub(crate) use schema::validate_entity_name as validate_name;
pub use typed::{Entity, FieldDef, FieldType};
pub use typed_api::{
    CountTyped, DeleteTyped, FindTyped, GetTyped, RestoreTyped, SaveAllTyped, SaveTyped, Versioned,
};
pub use value_types::{
    is_serializer_registered, register_serializer, unregister_serializer, ValueTypeError,
};

type BoxFuture<'a, T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Anything accepted as an entity: a `serde_json::Map`, or a `json!({..})` object.
pub trait IntoEntity {
    /// The entity's fields, or an error if this is not a JSON object.
    fn into_entity(self) -> Result<Map<String, Json>>;
}

impl IntoEntity for Map<String, Json> {
    fn into_entity(self) -> Result<Map<String, Json>> {
        Ok(self)
    }
}

impl IntoEntity for &Map<String, Json> {
    fn into_entity(self) -> Result<Map<String, Json>> {
        Ok(self.clone())
    }
}

impl IntoEntity for Json {
    fn into_entity(self) -> Result<Map<String, Json>> {
        match self {
            Json::Object(m) => Ok(m),
            other => Err(Error::Entity(format!(
                "an entity must be a JSON object, got {}",
                other
            ))),
        }
    }
}

impl IntoEntity for &Json {
    fn into_entity(self) -> Result<Map<String, Json>> {
        self.clone().into_entity()
    }
}

/// Options of a save: who made it and why (recorded in history), and the version it expects.
#[derive(Debug, Clone, Default)]
pub struct SaveOptions {
    /// Recorded as `created_by`/`updated_by` and `history_user_id`.
    pub user_id: Option<String>,
    /// Recorded as `history_comment`.
    pub comment: Option<String>,
    /// Optimistic locking for a single save: the stored entity must be at this version (0:
    /// it must not exist yet), else the save fails with
    /// [`Error::Conflict`] and writes nothing.
    pub expected_version: Option<i64>,
    /// Bound for the whole operation (see [`SaveEntity::timeout`]); `None`: each statement
    /// has `query_execution_timeout`.
    pub timeout: Option<Duration>,
    /// Fields of a custom value type (field → registered type name), for dynamic saves (see
    /// [`SaveEntity::field_type`]).
    pub field_types: BTreeMap<String, String>,
}

impl SaveOptions {
    /// Declares that `field` holds values of the custom value type `type_name` (see
    /// [`SaveEntity::field_type`]).
    pub fn field_type(mut self, field: impl Into<String>, type_name: impl Into<String>) -> Self {
        self.field_types.insert(field.into(), type_name.into());
        self
    }
    /// Sets the user.
    pub fn user_id(mut self, user: impl Into<String>) -> Self {
        self.user_id = Some(user.into());
        self
    }
    /// Sets the comment.
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
    /// Sets the version the stored entity must be at (see [`SaveOptions::expected_version`]).
    pub fn expect_version(mut self, version: i64) -> Self {
        self.expected_version = Some(version);
        self
    }
    /// Bounds the whole operation (see [`SaveEntity::timeout`]).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }
    /// The expected versions of a batch of `n`: only a single save may expect one.
    fn expected(&self, n: usize) -> Result<Vec<Option<i64>>> {
        match self.expected_version {
            None => Ok(Vec::new()),
            Some(v) if n == 1 => Ok(vec![Some(v)]),
            Some(_) => Err(Error::Entity(
                "expect_version applies to the save of one entity, not to a batch".into(),
            )),
        }
    }
    fn audit(&self) -> Audit {
        Audit {
            user_id: self.user_id.clone(),
            comment: self.comment.clone(),
        }
    }
}

/// A `find_entities` / `count_entities` query: filter in portable SQL, order, page, and
/// whether soft-deleted rows are included.
#[derive(Debug, Clone, Default)]
pub struct FindOptions {
    filter: Option<(String, Vec<Value>)>,
    order_by: Option<String>,
    limit: Option<u64>,
    offset: Option<u64>,
    include_deleted: bool,
    raw: bool,
    pub(crate) timeout: Option<Duration>,
}

impl FindOptions {
    /// Values as stored, without conversion back (see [`FindEntities::raw`]).
    pub fn raw(mut self) -> Self {
        self.raw = true;
        self
    }

    /// Bounds the whole operation, all its statements and retries included (see
    /// [`SaveEntity::timeout`]).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// `WHERE` condition in portable SQL (`[field] < ?`) and its parameters.
    pub fn filter<P: IntoParams>(mut self, sql: impl Into<String>, params: P) -> Self {
        self.filter = Some((sql.into(), params.into_params()));
        self
    }
    /// `ORDER BY` clause in portable SQL (`[name] ASC`).
    pub fn order_by(mut self, order: impl Into<String>) -> Self {
        self.order_by = Some(order.into());
        self
    }
    /// At most this many rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }
    /// Skip this many rows.
    pub fn offset(mut self, n: u64) -> Self {
        self.offset = Some(n);
        self
    }
    /// Include soft-deleted rows.
    pub fn include_deleted(mut self) -> Self {
        self.include_deleted = true;
        self
    }
    pub(crate) fn query(&self) -> ops::Query {
        ops::Query {
            filter: self.filter.clone(),
            order_by: self.order_by.clone(),
            limit: self.limit,
            offset: self.offset,
            include_deleted: self.include_deleted,
            raw: self.raw,
        }
    }
}

/// Options of a delete: soft or permanent, and who and why (recorded in the history row the
/// deletion appends). Taken by the typed [`Connection::delete_with`] and by the blocking twin;
/// the async builders ([`Connection::delete_entity`], [`Connection::delete`]) have the same
/// options as methods.
///
/// ```
/// use dal::DeleteOptions;
/// let opts = DeleteOptions::default().permanent().user_id("u-17").comment("GDPR request");
/// assert!(opts.permanent);
/// assert_eq!(opts.comment.as_deref(), Some("GDPR request"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// Remove the row instead of setting `deleted_at` (history stays).
    pub permanent: bool,
    /// Recorded as `updated_by` (soft delete) and `history_user_id`.
    pub user_id: Option<String>,
    /// Recorded as `history_comment`.
    pub comment: Option<String>,
    /// Bound for the whole operation (see [`SaveEntity::timeout`]); `None`: each statement
    /// has `query_execution_timeout`.
    pub timeout: Option<Duration>,
}

impl DeleteOptions {
    /// Bounds the whole operation, all its statements and retries included (see
    /// [`SaveEntity::timeout`]).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Removes the row instead of soft-deleting it (its history stays).
    pub fn permanent(mut self) -> Self {
        self.permanent = true;
        self
    }
    /// Sets the user.
    pub fn user_id(mut self, user: impl Into<String>) -> Self {
        self.user_id = Some(user.into());
        self
    }
    /// Sets the comment.
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
    fn audit(&self) -> Audit {
        Audit {
            user_id: self.user_id.clone(),
            comment: self.comment.clone(),
        }
    }
}

/// Options of a restore: who and why (recorded in the history row the restore appends, and
/// `updated_by`). Taken by the typed [`Connection::restore_with`] and by the blocking twin.
///
/// ```
/// let opts = dal::RestoreOptions::default().user_id("admin").comment("deleted by mistake");
/// assert_eq!(opts.user_id.as_deref(), Some("admin"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Recorded as `updated_by` and `history_user_id`.
    pub user_id: Option<String>,
    /// Recorded as `history_comment`.
    pub comment: Option<String>,
    /// Bound for the whole operation (see [`SaveEntity::timeout`]); `None`: each statement
    /// has `query_execution_timeout`.
    pub timeout: Option<Duration>,
}

impl RestoreOptions {
    /// Bounds the whole operation, all its statements and retries included (see
    /// [`SaveEntity::timeout`]).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Sets the user.
    pub fn user_id(mut self, user: impl Into<String>) -> Self {
        self.user_id = Some(user.into());
        self
    }
    /// Sets the comment.
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
    fn audit(&self) -> Audit {
        Audit {
            user_id: self.user_id.clone(),
            comment: self.comment.clone(),
        }
    }
}

/// Options of a read by id: include soft-deleted entities, lock the row. Taken by the typed
/// [`Connection::get_with`] and by the blocking twin; [`Connection::get_entity`] and
/// [`Connection::get`] have the same options as methods.
///
/// ```
/// let opts = dal::GetOptions::default().include_deleted();
/// assert!(opts.include_deleted && !opts.for_update);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GetOptions {
    /// Also return a soft-deleted entity.
    pub include_deleted: bool,
    /// Lock the row until the open transaction ends (see [`GetEntity::for_update`]).
    pub for_update: bool,
    /// Values as stored, without conversion back (see [`GetEntity::raw`]).
    pub raw: bool,
    /// Bound for the whole operation (see [`SaveEntity::timeout`]); `None`: each statement
    /// has `query_execution_timeout`.
    pub timeout: Option<Duration>,
}

impl GetOptions {
    /// Bounds the whole operation, all its statements and retries included (see
    /// [`SaveEntity::timeout`]).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Also return a soft-deleted entity.
    pub fn include_deleted(mut self) -> Self {
        self.include_deleted = true;
        self
    }
    /// Lock the row until the open transaction ends (needs one).
    pub fn for_update(mut self) -> Self {
        self.for_update = true;
        self
    }
    /// Values as stored, without conversion back (see [`GetEntity::raw`]).
    pub fn raw(mut self) -> Self {
        self.raw = true;
        self
    }
}

/// `.timeout()` on a builder with an `opts` field whose options struct has `timeout()`.
macro_rules! builder_timeout {
    ($($t:ident $(<$g:ident>)?),* $(,)?) => {
        $(impl$(<$g>)? $t<'_ $(, $g)?> {
            /// Bounds the whole operation — every statement it runs, schema changes and
            /// retries included — by `limit`: a statement still running at the deadline is
            /// stopped on the server (as a statement timeout is), the operation's own
            /// transaction is rolled back (nothing is written), and the result is an
            /// [`Error::Timeout`](crate::Error::Timeout) of kind [`TimeoutKind::Operation`](crate::TimeoutKind::Operation).
            /// Inside the caller's transaction, the transaction stays the caller's to roll
            /// back. Without it, each statement has `query_execution_timeout` (60 s).
            pub fn timeout(mut self, limit: std::time::Duration) -> Self {
                self.opts = self.opts.timeout(limit);
                self
            }
        })*
    };
}

/// `.user_id()` and `.comment()` on a builder with an `opts` field that has `user_id` and
/// `comment` ([`SaveOptions`], [`DeleteOptions`], [`RestoreOptions`]).
macro_rules! builder_audit {
    ($t:ident $(<$g:ident>)?) => {
        impl$(<$g>)? $t<'_ $(, $g)?> {
            /// Records who made the change (`updated_by`, `history_user_id`).
            pub fn user_id(mut self, user: impl Into<String>) -> Self {
                self.opts.user_id = Some(user.into());
                self
            }
            /// Records why (`history_comment` of the history row this change appends).
            pub fn comment(mut self, comment: impl Into<String>) -> Self {
                self.opts.comment = Some(comment.into());
                self
            }
        }
    };
}

/// `.include_deleted()` and `.for_update()` on a builder with an `opts: GetOptions` field.
macro_rules! builder_get {
    ($t:ident $(<$g:ident>)?) => {
        impl$(<$g>)? $t<'_ $(, $g)?> {
            /// Also return the entity if it is soft-deleted.
            pub fn include_deleted(mut self) -> Self {
                self.opts.include_deleted = true;
                self
            }
            /// Locks the entity's row until the caller's transaction ends (`SELECT … FOR
            /// UPDATE`; on SQLite a transaction holds the database's write lock from its
            /// start): the read-check-write of a `#[auto_transaction]` function is then safe
            /// against concurrent writers. Needs an open transaction (an error otherwise).
            pub fn for_update(mut self) -> Self {
                self.opts.for_update = true;
                self
            }
        }
    };
}

/// `.permanent()` on a builder with an `opts: DeleteOptions` field.
macro_rules! builder_delete {
    ($t:ident $(<$g:ident>)?) => {
        builder_audit!($t $(<$g>)?);
        impl$(<$g>)? $t<'_ $(, $g)?> {
            /// Remove the row instead of soft-deleting it (its history stays, and records the
            /// deletion).
            pub fn permanent(mut self) -> Self {
                self.opts.permanent = true;
                self
            }
        }
    };
}

/// `save_entity` being built; `.await` it.
#[must_use = "nothing is saved until awaited"]
pub struct SaveEntity<'c> {
    conn: &'c mut Connection,
    name: String,
    entity: Result<EntityMap>,
    opts: SaveOptions,
}
builder_audit!(SaveEntity);

/// `.field_type()` on a builder with an `opts: SaveOptions` field.
macro_rules! builder_field_type {
    ($t:ident) => {
        impl $t<'_> {
            /// Declares that `field` holds values of the custom value type `type_name`,
            /// registered with [`register_serializer`](crate::register_serializer): its
            /// values are stored as the serializer's text in a `TEXT` column, the type name
            /// is recorded in the entity's `_meta` table, and reads convert them back through
            /// the deserializer. Once recorded, later saves and reads convert the field
            /// without being told again. An unregistered type, a field already stored as
            /// another type, or a serializer error fails the save with [`Error::Entity`]
            /// before anything is written. Repeat for several fields.
            ///
            /// ```
            /// # use dal::prelude::*;
            /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
            /// dal::register_serializer(
            ///     "doc_csv",
            ///     |v: &JsonValue| {
            ///         let items = v.as_array().ok_or("not an array")?;
            ///         Ok(items.iter().filter_map(JsonValue::as_str).collect::<Vec<_>>().join(","))
            ///     },
            ///     |s: &str| Ok(json!(s.split(',').collect::<Vec<_>>())),
            /// )?;
            /// let db = Database::from_url("sqlite::memory:")?;
            /// let mut conn = db.async_connection().await?;
            /// let saved = conn.save_entity("doc_posts", json!({"tags": ["a", "b"]}))
            ///     .field_type("tags", "doc_csv").await?;
            /// assert_eq!(saved["tags"], json!(["a", "b"]));
            /// # Ok(()) }
            /// ```
            pub fn field_type(
                mut self,
                field: impl Into<String>,
                type_name: impl Into<String>,
            ) -> Self {
                self.opts = self.opts.field_type(field, type_name);
                self
            }
        }
    };
}
builder_field_type!(SaveEntity);
builder_field_type!(SaveEntities);

impl SaveEntity<'_> {
    /// Optimistic locking: the stored entity must be at `version` (its `version` field as
    /// last read; 0: it must not exist yet). Otherwise the save fails with
    /// [`Error::Conflict`] and writes nothing.
    pub fn expect_version(mut self, version: i64) -> Self {
        self.opts.expected_version = Some(version);
        self
    }
}

impl<'c> IntoFuture for SaveEntity<'c> {
    type Output = Result<EntityMap>;
    type IntoFuture = BoxFuture<'c, Result<EntityMap>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let _op = self
                .conn
                .begin_operation("save_entity", &self.name, self.opts.timeout);
            save_one(self.conn, &self.name, self.entity?, &self.opts).await
        })
    }
}

/// One dynamic save with its options.
async fn save_one(
    conn: &mut Connection,
    name: &str,
    entity: EntityMap,
    opts: &SaveOptions,
) -> Result<EntityMap> {
    let audit = opts.audit();
    let mut req = SaveRequest::new(name, vec![entity], &audit);
    req.expected = opts.expected(1)?;
    req.value_types = opts.field_types.clone();
    conn.save_entities_impl(req, Ok)
        .await?
        .pop()
        .ok_or_else(|| Error::Internal("save returned nothing".into()))
}

/// A dynamic batch save with its options.
async fn save_many(
    conn: &mut Connection,
    name: &str,
    entities: Vec<EntityMap>,
    opts: &SaveOptions,
) -> Result<Vec<EntityMap>> {
    let audit = opts.audit();
    let mut req = SaveRequest::new(name, entities, &audit);
    req.expected = opts.expected(req.inputs.len())?;
    req.value_types = opts.field_types.clone();
    conn.save_entities_impl(req, Ok).await
}

/// `save_entities` being built; `.await` it.
#[must_use = "nothing is saved until awaited"]
pub struct SaveEntities<'c> {
    conn: &'c mut Connection,
    name: String,
    entities: Result<Vec<EntityMap>>,
    opts: SaveOptions,
}
builder_audit!(SaveEntities);

impl<'c> IntoFuture for SaveEntities<'c> {
    type Output = Result<Vec<EntityMap>>;
    type IntoFuture = BoxFuture<'c, Result<Vec<EntityMap>>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let _op = self
                .conn
                .begin_operation("save_entities", &self.name, self.opts.timeout);
            save_many(self.conn, &self.name, self.entities?, &self.opts).await
        })
    }
}

/// `get_entity` being built; `.await` it.
#[must_use = "nothing is read until awaited"]
pub struct GetEntity<'c> {
    conn: &'c mut Connection,
    name: String,
    id: String,
    opts: GetOptions,
}
builder_get!(GetEntity);

impl GetEntity<'_> {
    /// Returns the values as stored, without converting them back (the seed's
    /// `deserialize=False`): each column as the driver decodes it — custom value types as
    /// their stored text, booleans, timestamps, JSON and decimals in the backend's own form
    /// (see the README, "Custom value types and raw reads"). Works without the custom types
    /// being registered.
    pub fn raw(mut self) -> Self {
        self.opts.raw = true;
        self
    }
}

impl<'c> IntoFuture for GetEntity<'c> {
    type Output = Result<Option<EntityMap>>;
    type IntoFuture = BoxFuture<'c, Result<Option<EntityMap>>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let _op = self
                .conn
                .begin_operation("get_entity", &self.name, self.opts.timeout);
            self.conn
                .get_entity_read(
                    &self.name,
                    &self.id,
                    self.opts.include_deleted,
                    self.opts.for_update,
                    self.opts.raw,
                )
                .await
        })
    }
}

/// Query builder methods over an `opts: FindOptions` field: `filter` and `include_deleted`
/// for every query, plus `order_by`, `limit` and `offset` with `paged`.
macro_rules! builder_find {
    ($t:ident $(<$g:ident>)?) => {
        impl$(<$g>)? $t<'_ $(, $g)?> {
            /// `WHERE` condition in portable SQL and its parameters.
            pub fn filter<P: IntoParams>(mut self, sql: impl Into<String>, params: P) -> Self {
                self.opts = self.opts.filter(sql, params);
                self
            }
            /// Include soft-deleted rows.
            pub fn include_deleted(mut self) -> Self {
                self.opts = self.opts.include_deleted();
                self
            }
        }
    };
    (paged $t:ident $(<$g:ident>)?) => {
        builder_find!($t $(<$g>)?);
        impl$(<$g>)? $t<'_ $(, $g)?> {
            /// `ORDER BY` in portable SQL.
            pub fn order_by(mut self, order: impl Into<String>) -> Self {
                self.opts = self.opts.order_by(order);
                self
            }
            /// At most this many rows.
            pub fn limit(mut self, n: u64) -> Self {
                self.opts = self.opts.limit(n);
                self
            }
            /// Skip this many rows.
            pub fn offset(mut self, n: u64) -> Self {
                self.opts = self.opts.offset(n);
                self
            }
        }
    };
}

// Declared after the builder macros so that it can use them.
mod rollback;
mod typed_api;

/// `find_entities` being built; `.await` it.
#[must_use = "nothing is read until awaited"]
pub struct FindEntities<'c> {
    conn: &'c mut Connection,
    name: String,
    opts: FindOptions,
}
builder_find!(paged FindEntities);

impl<'c> FindEntities<'c> {
    /// Returns the values as stored, without converting them back (see [`GetEntity::raw`]).
    pub fn raw(mut self) -> Self {
        self.opts = self.opts.raw();
        self
    }

    /// The same entities as awaiting the find, as a stream read from the server as it is
    /// polled (bounded memory; see [`Connection::fetch`] for timeouts, retries and what
    /// dropping the stream early does). The find's `.timeout()` bounds the wait for the first
    /// entity.
    ///
    /// ```
    /// use dal::prelude::*;
    /// use futures_util::TryStreamExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
    /// let db = Database::from_url("sqlite::memory:")?;
    /// let mut conn = db.async_connection().await?;
    /// conn.save_entities("doc_stream_items", (1..=3).map(|i| json!({"n": i})).collect::<Vec<_>>()).await?;
    /// let mut items = conn.find_entities("doc_stream_items").order_by("[n]").stream();
    /// let mut seen = Vec::new();
    /// while let Some(item) = items.try_next().await? {
    ///     seen.push(item["n"].as_i64());
    /// }
    /// assert_eq!(seen, [Some(1), Some(2), Some(3)]);
    /// # Ok(()) }
    /// ```
    pub fn stream(self) -> crate::RowStream<'c, EntityMap> {
        let FindEntities { conn, name, opts } = self;
        crate::RowStream::new(move |qopts, out| {
            Box::pin(async move {
                let _op = conn.begin_operation("find_entities", &name, opts.timeout);
                conn.stream_entities(&name, &opts.query(), &qopts, Ok, &out)
                    .await;
            })
        })
    }
}

impl<'c> IntoFuture for FindEntities<'c> {
    type Output = Result<Vec<EntityMap>>;
    type IntoFuture = BoxFuture<'c, Result<Vec<EntityMap>>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let _op = self
                .conn
                .begin_operation("find_entities", &self.name, self.opts.timeout);
            self.conn
                .find_entities_impl(&self.name, &self.opts.query())
                .await
        })
    }
}

/// `count_entities` being built; `.await` it.
#[must_use = "nothing is read until awaited"]
pub struct CountEntities<'c> {
    conn: &'c mut Connection,
    name: String,
    opts: FindOptions,
}
builder_find!(CountEntities);

impl<'c> IntoFuture for CountEntities<'c> {
    type Output = Result<i64>;
    type IntoFuture = BoxFuture<'c, Result<i64>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let _op = self
                .conn
                .begin_operation("count_entities", &self.name, self.opts.timeout);
            self.conn
                .count_entities_impl(&self.name, &self.opts.query())
                .await
        })
    }
}

/// `delete_entity` being built; `.await` it. Resolves to whether an entity was deleted.
#[must_use = "nothing is deleted until awaited"]
pub struct DeleteEntity<'c> {
    conn: &'c mut Connection,
    name: String,
    id: String,
    opts: DeleteOptions,
}

builder_delete!(DeleteEntity);

impl<'c> IntoFuture for DeleteEntity<'c> {
    type Output = Result<bool>;
    type IntoFuture = BoxFuture<'c, Result<bool>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let _op = self
                .conn
                .begin_operation("delete_entity", &self.name, self.opts.timeout);
            self.conn
                .delete_entity_impl(
                    &self.name,
                    &self.id,
                    self.opts.permanent,
                    &self.opts.audit(),
                )
                .await
        })
    }
}

/// `restore_entity` being built; `.await` it. Resolves to whether an entity was restored.
#[must_use = "nothing is restored until awaited"]
pub struct RestoreEntity<'c> {
    conn: &'c mut Connection,
    name: String,
    id: String,
    opts: RestoreOptions,
}
builder_audit!(RestoreEntity);

impl<'c> IntoFuture for RestoreEntity<'c> {
    type Output = Result<bool>;
    type IntoFuture = BoxFuture<'c, Result<bool>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let _op = self
                .conn
                .begin_operation("restore_entity", &self.name, self.opts.timeout);
            self.conn
                .restore_entity_impl(&self.name, &self.id, &self.opts.audit())
                .await
        })
    }
}

/// Options of a history read ([`Connection::get_entity_history`],
/// [`Connection::get_entity_by_version`]): values as stored, and a bound for the whole
/// operation. Taken by the blocking twin's `get_entity_history_with` and
/// `get_entity_by_version_with`; the async builders have the same options as methods.
///
/// ```
/// let opts = dal::HistoryOptions::default().raw();
/// assert!(opts.raw && opts.timeout.is_none());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct HistoryOptions {
    /// Values as stored, without conversion back (see [`GetEntity::raw`]).
    pub raw: bool,
    /// Bound for the whole operation (see [`SaveEntity::timeout`]); `None`: each statement
    /// has `query_execution_timeout`.
    pub timeout: Option<Duration>,
}

impl HistoryOptions {
    /// Values as stored, without conversion back (see [`GetEntity::raw`]).
    pub fn raw(mut self) -> Self {
        self.raw = true;
        self
    }
    /// Bounds the whole operation (see [`SaveEntity::timeout`]).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }
}

/// `get_entity_history` being built; `.await` it. Resolves to every version, oldest first.
#[must_use = "nothing is read until awaited"]
pub struct EntityHistory<'c> {
    conn: &'c mut Connection,
    name: String,
    id: String,
    version: Option<i64>,
    opts: HistoryOptions,
}

impl EntityHistory<'_> {
    /// Returns the values as stored, without converting them back (see [`GetEntity::raw`]).
    pub fn raw(mut self) -> Self {
        self.opts.raw = true;
        self
    }

    async fn run(self) -> Result<Vec<EntityMap>> {
        let op = if self.version.is_some() {
            "get_entity_by_version"
        } else {
            "get_entity_history"
        };
        let _op = self.conn.begin_operation(op, &self.name, self.opts.timeout);
        self.conn
            .history_read(&self.name, &self.id, self.version, self.opts.raw)
            .await
    }
}

impl<'c> IntoFuture for EntityHistory<'c> {
    type Output = Result<Vec<EntityMap>>;
    type IntoFuture = BoxFuture<'c, Result<Vec<EntityMap>>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// `get_entity_by_version` being built; `.await` it. Resolves to that version, or `None`.
#[must_use = "nothing is read until awaited"]
pub struct EntityVersion<'c>(EntityHistory<'c>);

impl EntityVersion<'_> {
    /// Returns the values as stored, without converting them back (see [`GetEntity::raw`]).
    pub fn raw(self) -> Self {
        EntityVersion(self.0.raw())
    }
    /// Bounds the whole operation (see [`SaveEntity::timeout`]).
    pub fn timeout(self, limit: Duration) -> Self {
        EntityVersion(self.0.timeout(limit))
    }
}

impl<'c> IntoFuture for EntityVersion<'c> {
    type Output = Result<Option<EntityMap>>;
    type IntoFuture = BoxFuture<'c, Result<Option<EntityMap>>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { Ok(self.0.run().await?.pop()) })
    }
}

builder_timeout!(
    EntityHistory,
    SaveEntity,
    SaveEntities,
    GetEntity,
    FindEntities,
    CountEntities,
    DeleteEntity,
    RestoreEntity,
);

impl Connection {
    /// Creates or partially updates an entity: fields not mentioned keep their values; new
    /// fields become new columns; one history row is appended. Joins the caller's transaction
    /// or runs in its own. Resolves to the entity as stored (with its system fields).
    pub fn save_entity(&mut self, name: &str, entity: impl IntoEntity) -> SaveEntity<'_> {
        SaveEntity {
            conn: self,
            name: name.to_owned(),
            entity: entity.into_entity(),
            opts: SaveOptions::default(),
        }
    }

    /// Saves a batch with multi-row statements (a bounded number of round trips, not one per
    /// row), with one history row per entity. All or nothing.
    pub fn save_entities<E: IntoEntity>(
        &mut self,
        name: &str,
        entities: Vec<E>,
    ) -> SaveEntities<'_> {
        SaveEntities {
            conn: self,
            name: name.to_owned(),
            entities: entities.into_iter().map(IntoEntity::into_entity).collect(),
            opts: SaveOptions::default(),
        }
    }

    /// The entity with this id (not soft-deleted unless `.include_deleted()`), or `None`.
    pub fn get_entity(&mut self, name: &str, id: impl AsRef<str>) -> GetEntity<'_> {
        GetEntity {
            conn: self,
            name: name.to_owned(),
            id: id.as_ref().to_owned(),
            opts: GetOptions::default(),
        }
    }

    /// Entities matching `.filter(..)`, with `.order_by`, `.limit`, `.offset`, `.include_deleted`.
    pub fn find_entities(&mut self, name: &str) -> FindEntities<'_> {
        FindEntities {
            conn: self,
            name: name.to_owned(),
            opts: FindOptions::default(),
        }
    }

    /// Number of entities matching `.filter(..)`.
    pub fn count_entities(&mut self, name: &str) -> CountEntities<'_> {
        CountEntities {
            conn: self,
            name: name.to_owned(),
            opts: FindOptions::default(),
        }
    }

    /// Soft-deletes (sets `deleted_at`), or with `.permanent()` removes the row. History stays
    /// and records the deletion, with `.user_id(..)` and `.comment(..)` if given. Resolves to
    /// `true` when an entity was deleted.
    pub fn delete_entity(&mut self, name: &str, id: impl AsRef<str>) -> DeleteEntity<'_> {
        DeleteEntity {
            conn: self,
            name: name.to_owned(),
            id: id.as_ref().to_owned(),
            opts: DeleteOptions::default(),
        }
    }

    /// Clears `deleted_at`, recording `.user_id(..)` and `.comment(..)` in history if given.
    /// Resolves to `true` when a soft-deleted entity was restored.
    pub fn restore_entity(&mut self, name: &str, id: impl AsRef<str>) -> RestoreEntity<'_> {
        RestoreEntity {
            conn: self,
            name: name.to_owned(),
            id: id.as_ref().to_owned(),
            opts: RestoreOptions::default(),
        }
    }

    /// Every version of the entity, oldest first, each with `version`, `history_timestamp`,
    /// `history_user_id` and `history_comment`. Options: `.raw()` (values as stored),
    /// `.timeout(d)`.
    pub fn get_entity_history(&mut self, name: &str, id: impl AsRef<str>) -> EntityHistory<'_> {
        EntityHistory {
            conn: self,
            name: name.to_owned(),
            id: id.as_ref().to_owned(),
            version: None,
            opts: HistoryOptions::default(),
        }
    }

    /// One version of the entity, or `None`. Saving it back restores that version's values
    /// (system and history fields in it are ignored by saves). Options: `.raw()` (values as
    /// stored), `.timeout(d)`.
    pub fn get_entity_by_version(
        &mut self,
        name: &str,
        id: impl AsRef<str>,
        version: i64,
    ) -> EntityVersion<'_> {
        EntityVersion(EntityHistory {
            conn: self,
            name: name.to_owned(),
            id: id.as_ref().to_owned(),
            version: Some(version),
            opts: HistoryOptions::default(),
        })
    }
}
