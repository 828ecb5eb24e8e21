//! The typed API: the dynamic operations, reached through a struct's serde representation and
//! its [`Entity`] description.

use std::future::IntoFuture;
use std::marker::PhantomData;

use serde_json::{Map, Value as Json};

use super::ops::{EntityMap, SaveRequest};
use super::schema::{is_reserved, FieldSpec};
use super::typed::{Entity, FieldDef, FieldType};
use super::{BoxFuture, DeleteOptions, FindOptions, GetOptions, RestoreOptions, SaveOptions};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::value::IntoParams;

/// One version of a typed entity from its history.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// 1 for the first save, then +1 per change.
    pub version: i64,
    /// When this version was recorded (RFC 3339, UTC).
    pub timestamp: String,
    /// Who made the change, if recorded.
    pub user_id: Option<String>,
    /// Why, if recorded.
    pub comment: Option<String>,
    /// When the entity was soft-deleted as of this version.
    pub deleted_at: Option<String>,
    /// The entity as of this version.
    pub entity: T,
}

/// Declared fields of `T`, as the schema layer wants them (id, version and system fields
/// excluded).
fn specs<T: Entity>() -> Vec<FieldSpec> {
    T::fields()
        .iter()
        .filter(|f| !f.id && !f.version && !is_reserved(f.column))
        .map(|f| FieldSpec {
            name: f.column.to_owned(),
            ty: f.ty,
            index: f.index,
            unique: f.unique,
            value_type: None,
        })
        .collect()
}

fn default_of<T: Entity>(f: &FieldDef, default: &str) -> Result<Json> {
    serde_json::from_str(default)
        .map_err(|e| Error::Conversion(format!("default of {}.{}: {e}", T::table_name(), f.column)))
}

/// `T` → entity map keyed by column names (`id` for the id field), and the version it
/// expects when `T` has an `#[entity(version)]` field. Values that could not be read back
/// into `T` are refused here, before anything is written.
fn to_map<T: Entity>(value: &T) -> Result<(EntityMap, Option<i64>)> {
    if let Some(f) = super::finite::first_non_finite(value) {
        return Err(Error::Entity(format!(
            "{}: the float {f} cannot be stored (it would be written as null); nothing was written",
            T::table_name()
        )));
    }
    let json = serde_json::to_value(value)
        .map_err(|e| Error::Conversion(format!("{}: cannot serialize: {e}", T::table_name())))?;
    let Json::Object(mut src) = json else {
        return Err(Error::Conversion(format!(
            "{}: an entity must serialize to a JSON object",
            T::table_name()
        )));
    };
    let mut out = Map::new();
    let mut expected = None;
    for f in T::fields() {
        let v = src.remove(f.serde_name);
        if f.version {
            expected = Some(match v {
                None | Some(Json::Null) => 0,
                Some(Json::Number(n)) if n.as_i64().is_some() => n.as_i64().unwrap_or(0),
                Some(other) => {
                    return Err(Error::Entity(format!(
                        "{}.{}: the version must be an integer, got {other}",
                        T::table_name(),
                        f.column
                    )))
                }
            });
            continue;
        }
        // `#[entity(default = ..)]` stands in for an absent or null value. A field absent
        // from the serde output (`skip_serializing_if`) is stored as null: a typed entity is
        // saved whole.
        let v = match (v, f.default) {
            (None | Some(Json::Null), Some(default)) => default_of::<T>(f, default)?,
            (Some(v), _) => v,
            (None, None) => Json::Null,
        };
        if f.id {
            if v.is_null() {
                if f.ty == Some(FieldType::Int) {
                    return Err(Error::Entity(format!(
                        "{}.{}: an integer id must be set before saving (dal generates ids only for text and UUID id fields)",
                        T::table_name(),
                        f.column
                    )));
                }
                continue;
            }
            out.insert("id".to_owned(), v);
            continue;
        }
        if v.is_null() && !f.nullable && matches!(f.ty, Some(t) if t != FieldType::Json) {
            let why = if f.ty == Some(FieldType::Float) {
                " (a NaN or infinite float serializes as null and cannot be stored)"
            } else {
                ""
            };
            return Err(Error::Entity(format!(
                "{}.{} is null in the struct's serde output but is not an Option{why}; nothing was written",
                T::table_name(),
                f.column
            )));
        }
        out.insert(f.column.to_owned(), v);
    }
    Ok((out, expected))
}

/// Entity map → `T`: the columns `T` declares, renamed back to serde names, values shaped as
/// the Rust types expect them (integer ids, naive timestamps), defaults applied to fields
/// stored before they existed. A struct may declare system fields, e.g.
/// `created_at: Option<DateTime<Utc>>`, to receive them.
pub(super) fn from_map<T: Entity>(mut map: EntityMap) -> Result<T> {
    let mut out = Map::new();
    for f in T::fields() {
        let key = if f.id { "id" } else { f.column };
        let mut v = map.remove(key);
        if f.id && f.ty == Some(FieldType::Int) {
            if let Some(Json::String(s)) = &v {
                if let Ok(i) = s.parse::<i64>() {
                    v = Some(Json::from(i));
                } else if let Ok(u) = s.parse::<u64>() {
                    v = Some(Json::from(u));
                }
            }
        }
        if f.naive_timestamp {
            if let Some(Json::String(s)) = &mut v {
                if let Some(naive) = s.strip_suffix('Z') {
                    *s = naive.to_owned();
                }
            }
        }
        if let (None | Some(Json::Null), Some(default)) = (&v, f.default) {
            v = Some(default_of::<T>(f, default)?);
        }
        if let Some(v) = v {
            out.insert(f.serde_name.to_owned(), v);
        }
    }
    // Columns `T` does not declare (system fields it does not receive, fields other code
    // added) are left out, so `#[serde(deny_unknown_fields)]` works.
    crate::mapping::from_json_fields(out).map_err(|e| {
        let table = T::table_name();
        Error::Conversion(match e.field {
            Some(field) => format!("{table}: cannot read entity: field {field:?}: {}", e.msg),
            None => format!("{table}: cannot read entity: {}", e.msg),
        })
    })
}

/// Saves typed entities: declared fields, expected versions, and the check that each reads
/// back before anything is written.
async fn save_typed<T: Entity>(
    conn: &mut Connection,
    entities: &[&T],
    opts: &SaveOptions,
) -> Result<Vec<T>> {
    if !opts.field_types.is_empty() {
        return Err(Error::Entity(
            "field_type (custom value types) applies to dynamic saves (save_entity, save_entities), not to typed entities".into(),
        ));
    }
    let mut maps = Vec::with_capacity(entities.len());
    let mut expected = Vec::with_capacity(entities.len());
    for e in entities {
        let (m, v) = to_map(*e)?;
        maps.push(m);
        expected.push(v);
    }
    let forced = opts.expected(entities.len())?;
    if !forced.is_empty() {
        expected = forced;
    } else if expected.iter().all(Option::is_none) {
        expected.clear();
    }
    let audit = opts.audit();
    let specs = specs::<T>();
    let mut req = SaveRequest::new(T::table_name(), maps, &audit);
    req.declared = &specs;
    req.expected = expected;
    req.check = true;
    conn.save_entities_impl(req, from_map::<T>).await
}

impl Connection {
    /// Saves a typed entity (create or update, with history); resolves to it as stored, with
    /// its id (and version). Declared indexes and unique constraints are created with the
    /// table. With an `#[entity(version)]` field (or `.expect_version(n)`), the save fails with
    /// [`Error::Conflict`](crate::Error::Conflict) and writes nothing when the stored entity is
    /// not at that version. Options: `.user_id(..)`, `.comment(..)` (recorded in history),
    /// `.expect_version(n)`.
    ///
    /// ```
    /// # use dal::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Entity, Serialize, Deserialize)]
    /// # #[entity(table = "doc_save_users")]
    /// # struct User { id: Option<String>, name: String }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
    /// # let db = Database::from_url("sqlite::memory:")?;
    /// # let mut conn = db.async_connection().await?;
    /// let saved = conn.save(&User { id: None, name: "Ann".into() })
    ///     .user_id("admin").comment("signed up").await?;
    /// let id = saved.id.unwrap();
    /// assert_eq!(conn.history::<User>(&id).await?[0].comment.as_deref(), Some("signed up"));
    /// # Ok(()) }
    /// ```
    pub fn save<'c, T: Entity>(&'c mut self, entity: &'c T) -> SaveTyped<'c, T> {
        self.save_with(entity, SaveOptions::default())
    }

    /// [`save`](Self::save) with its options given as a [`SaveOptions`] (the form the
    /// blocking twin takes); builder methods may still be chained.
    pub fn save_with<'c, T: Entity>(
        &'c mut self,
        entity: &'c T,
        opts: SaveOptions,
    ) -> SaveTyped<'c, T> {
        SaveTyped {
            conn: self,
            entity,
            opts,
        }
    }

    /// Saves a batch of typed entities with multi-row statements; all or nothing. Options:
    /// `.user_id(..)` and `.comment(..)`, recorded in every history row of the batch.
    pub fn save_all<'c, T: Entity>(&'c mut self, entities: &'c [T]) -> SaveAllTyped<'c, T> {
        self.save_all_with(entities, SaveOptions::default())
    }

    /// [`save_all`](Self::save_all) with a [`SaveOptions`] (an expected version applies to a
    /// batch of one only).
    pub fn save_all_with<'c, T: Entity>(
        &'c mut self,
        entities: &'c [T],
        opts: SaveOptions,
    ) -> SaveAllTyped<'c, T> {
        SaveAllTyped {
            conn: self,
            entities,
            opts,
        }
    }

    /// The entity with this id, or `None`; not soft-deleted unless `.include_deleted()`;
    /// `.for_update()` locks its row (see [`get_for_update`](Self::get_for_update)).
    pub fn get<T: Entity>(&mut self, id: impl AsRef<str>) -> GetTyped<'_, T> {
        self.get_with(id, GetOptions::default())
    }

    /// [`get`](Self::get) with a [`GetOptions`].
    pub fn get_with<T: Entity>(
        &mut self,
        id: impl AsRef<str>,
        opts: GetOptions,
    ) -> GetTyped<'_, T> {
        GetTyped {
            conn: self,
            id: id.as_ref().to_owned(),
            opts,
            _t: PhantomData,
        }
    }

    /// The entity with this id, its row locked until the open transaction ends (`SELECT …
    /// FOR UPDATE`; SQLite: the transaction's write lock). Use it for read-check-write inside
    /// `#[auto_transaction]`: concurrent writers wait instead of overwriting each other.
    /// Needs an open transaction. The same as `get::<T>(id).for_update()`.
    pub fn get_for_update<T: Entity>(&mut self, id: impl AsRef<str>) -> GetTyped<'_, T> {
        self.get_with(id, GetOptions::default().for_update())
    }

    /// Typed query: `.filter()`, `.order_by()`, `.limit()`, `.offset()`, `.include_deleted()`.
    pub fn find<T: Entity>(&mut self) -> FindTyped<'_, T> {
        self.find_with(FindOptions::default())
    }

    /// [`find`](Self::find) starting from a [`FindOptions`].
    pub fn find_with<T: Entity>(&mut self, opts: FindOptions) -> FindTyped<'_, T> {
        FindTyped {
            conn: self,
            opts,
            _t: PhantomData,
        }
    }

    /// Number of `T` entities: all that are not soft-deleted, or those matching
    /// `.filter(..)`; `.include_deleted()` counts soft-deleted ones too.
    ///
    /// ```
    /// # use dal::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Entity, Serialize, Deserialize)]
    /// # #[entity(table = "doc_count_users")]
    /// # struct User { id: Option<String>, age: i32 }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
    /// # let db = Database::from_url("sqlite::memory:")?;
    /// # let mut conn = db.async_connection().await?;
    /// conn.save_all(&[User { id: None, age: 12 }, User { id: None, age: 40 }]).await?;
    /// assert_eq!(conn.count::<User>().await?, 2);
    /// assert_eq!(conn.count::<User>().filter("[age] >= ?", params![18]).await?, 1);
    /// # Ok(()) }
    /// ```
    pub fn count<T: Entity>(&mut self) -> CountTyped<'_, T> {
        self.count_with(FindOptions::default())
    }

    /// [`count`](Self::count) with a [`FindOptions`] (its filter and `include_deleted`; order
    /// and paging do not apply to a count).
    pub fn count_with<T: Entity>(&mut self, opts: FindOptions) -> CountTyped<'_, T> {
        CountTyped {
            conn: self,
            opts,
            _t: PhantomData,
        }
    }

    /// Soft-deletes a `T` (or with `.permanent()`, removes its row; history stays); resolves
    /// to `true` when one was deleted. `.user_id(..)` and `.comment(..)` are recorded in the
    /// history row of the deletion.
    pub fn delete<T: Entity>(&mut self, id: impl AsRef<str>) -> DeleteTyped<'_, T> {
        self.delete_with(id, DeleteOptions::default())
    }

    /// [`delete`](Self::delete) with a [`DeleteOptions`].
    pub fn delete_with<T: Entity>(
        &mut self,
        id: impl AsRef<str>,
        opts: DeleteOptions,
    ) -> DeleteTyped<'_, T> {
        DeleteTyped {
            conn: self,
            id: id.as_ref().to_owned(),
            opts,
            _t: PhantomData,
        }
    }

    /// Restores a soft-deleted `T`; resolves to `true` when one was restored. `.user_id(..)`
    /// and `.comment(..)` are recorded in the history row of the restore.
    pub fn restore<T: Entity>(&mut self, id: impl AsRef<str>) -> RestoreTyped<'_, T> {
        self.restore_with(id, RestoreOptions::default())
    }

    /// [`restore`](Self::restore) with a [`RestoreOptions`].
    pub fn restore_with<T: Entity>(
        &mut self,
        id: impl AsRef<str>,
        opts: RestoreOptions,
    ) -> RestoreTyped<'_, T> {
        RestoreTyped {
            conn: self,
            id: id.as_ref().to_owned(),
            opts,
            _t: PhantomData,
        }
    }

    /// Every version of a `T`, oldest first, with its history metadata.
    pub async fn history<T: Entity>(&mut self, id: impl AsRef<str>) -> Result<Vec<Versioned<T>>> {
        let _op = self.begin_operation("history", T::table_name(), None);
        let rows = self
            .history_impl(T::table_name(), id.as_ref(), None)
            .await?;
        rows.into_iter().map(versioned).collect()
    }

    /// One version of a `T`, or `None`.
    pub async fn get_version<T: Entity>(
        &mut self,
        id: impl AsRef<str>,
        version: i64,
    ) -> Result<Option<Versioned<T>>> {
        let _op = self.begin_operation("get_version", T::table_name(), None);
        let mut rows = self
            .history_impl(T::table_name(), id.as_ref(), Some(version))
            .await?;
        rows.pop().map(versioned).transpose()
    }
}

fn versioned<T: Entity>(mut m: EntityMap) -> Result<Versioned<T>> {
    let text = |v: Option<Json>| match v {
        Some(Json::String(s)) => Some(s),
        _ => None,
    };
    let version = m.get("version").and_then(Json::as_i64).unwrap_or(0);
    let timestamp = text(m.remove("history_timestamp")).unwrap_or_default();
    let user_id = text(m.remove("history_user_id"));
    let comment = text(m.remove("history_comment"));
    let deleted_at = text(m.get("deleted_at").cloned());
    Ok(Versioned {
        version,
        timestamp,
        user_id,
        comment,
        deleted_at,
        entity: from_map(m)?,
    })
}

/// A typed query being built; `.await` it.
#[must_use = "nothing is read until awaited"]
pub struct FindTyped<'c, T> {
    conn: &'c mut Connection,
    opts: FindOptions,
    _t: PhantomData<fn() -> T>,
}

builder_find!(paged FindTyped<T>);

impl<'c, T: Entity + Send + 'c> FindTyped<'c, T> {
    /// The same entities as awaiting the find, as a stream read from the server as it is
    /// polled (bounded memory; see [`Connection::fetch`] for timeouts, retries and what
    /// dropping the stream early does).
    ///
    /// ```
    /// use dal::prelude::*;
    /// use futures_util::TryStreamExt;
    /// use serde::{Deserialize, Serialize};
    /// #[derive(Entity, Serialize, Deserialize)]
    /// #[entity(table = "doc_stream_users")]
    /// struct User { id: Option<String>, name: String }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
    /// let db = Database::from_url("sqlite::memory:")?;
    /// let mut conn = db.async_connection().await?;
    /// conn.save_all(&[User { id: None, name: "Ann".into() }, User { id: None, name: "Bob".into() }]).await?;
    /// let users: Vec<User> = conn.find::<User>().order_by("[name]").stream().try_collect().await?;
    /// assert_eq!(users[1].name, "Bob");
    /// # Ok(()) }
    /// ```
    pub fn stream(self) -> crate::RowStream<'c, T> {
        let FindTyped { conn, opts, .. } = self;
        crate::RowStream::new(move |qopts, out| {
            Box::pin(async move {
                let _op = conn.begin_operation("find", T::table_name(), opts.timeout);
                conn.stream_entities(T::table_name(), &opts.query(), &qopts, from_map::<T>, &out)
                    .await;
            })
        })
    }
}

impl<'c, T: Entity> IntoFuture for FindTyped<'c, T> {
    type Output = Result<Vec<T>>;
    type IntoFuture = BoxFuture<'c, Result<Vec<T>>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let _op = self
                .conn
                .begin_operation("find", T::table_name(), self.opts.timeout);
            let rows = self
                .conn
                .find_entities_impl(T::table_name(), &self.opts.query())
                .await?;
            rows.into_iter().map(from_map).collect()
        })
    }
}

/// A typed save being built (`conn.save(&e)`): `.user_id()`, `.comment()`,
/// `.expect_version()`, then `.await` it.
#[must_use = "nothing is saved until awaited"]
pub struct SaveTyped<'c, T> {
    conn: &'c mut Connection,
    entity: &'c T,
    opts: SaveOptions,
}
builder_audit!(SaveTyped<T>);

impl<T> SaveTyped<'_, T> {
    /// Optimistic locking: the stored entity must be at `version` (0: it must not exist
    /// yet), else the save fails with [`Error::Conflict`] and writes nothing. Overrides the
    /// value of an `#[entity(version)]` field.
    pub fn expect_version(mut self, version: i64) -> Self {
        self.opts.expected_version = Some(version);
        self
    }
}

impl<'c, T: Entity> IntoFuture for SaveTyped<'c, T> {
    type Output = Result<T>;
    type IntoFuture = BoxFuture<'c, Result<T>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let _op = self
                .conn
                .begin_operation("save", T::table_name(), self.opts.timeout);
            save_typed(self.conn, &[self.entity], &self.opts)
                .await?
                .pop()
                .ok_or_else(|| Error::Internal("save returned nothing".into()))
        })
    }
}

/// A typed batch save being built (`conn.save_all(&items)`): `.user_id()`, `.comment()`,
/// then `.await` it.
#[must_use = "nothing is saved until awaited"]
pub struct SaveAllTyped<'c, T> {
    conn: &'c mut Connection,
    entities: &'c [T],
    opts: SaveOptions,
}
builder_audit!(SaveAllTyped<T>);

impl<'c, T: Entity> IntoFuture for SaveAllTyped<'c, T> {
    type Output = Result<Vec<T>>;
    type IntoFuture = BoxFuture<'c, Result<Vec<T>>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let _op = self
                .conn
                .begin_operation("save_all", T::table_name(), self.opts.timeout);
            let refs: Vec<&T> = self.entities.iter().collect();
            save_typed(self.conn, &refs, &self.opts).await
        })
    }
}

/// A typed read by id being built (`conn.get::<T>(id)`): `.include_deleted()`,
/// `.for_update()`, then `.await` it.
#[must_use = "nothing is read until awaited"]
pub struct GetTyped<'c, T> {
    conn: &'c mut Connection,
    id: String,
    opts: GetOptions,
    _t: PhantomData<fn() -> T>,
}
builder_get!(GetTyped<T>);

impl<'c, T: Entity> IntoFuture for GetTyped<'c, T> {
    type Output = Result<Option<T>>;
    type IntoFuture = BoxFuture<'c, Result<Option<T>>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let _op = self
                .conn
                .begin_operation("get", T::table_name(), self.opts.timeout);
            self.conn
                .get_entity_impl(
                    T::table_name(),
                    &self.id,
                    self.opts.include_deleted,
                    self.opts.for_update,
                )
                .await?
                .map(from_map)
                .transpose()
        })
    }
}

/// A typed count being built (`conn.count::<T>()`): `.filter()`, `.include_deleted()`, then
/// `.await` it.
#[must_use = "nothing is read until awaited"]
pub struct CountTyped<'c, T> {
    conn: &'c mut Connection,
    opts: FindOptions,
    _t: PhantomData<fn() -> T>,
}
builder_find!(CountTyped<T>);

impl<'c, T: Entity> IntoFuture for CountTyped<'c, T> {
    type Output = Result<i64>;
    type IntoFuture = BoxFuture<'c, Result<i64>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let _op = self
                .conn
                .begin_operation("count", T::table_name(), self.opts.timeout);
            self.conn
                .count_entities_impl(T::table_name(), &self.opts.query())
                .await
        })
    }
}

/// A typed delete being built (`conn.delete::<T>(id)`): `.permanent()`, `.user_id()`,
/// `.comment()`, then `.await` it.
#[must_use = "nothing is deleted until awaited"]
pub struct DeleteTyped<'c, T> {
    conn: &'c mut Connection,
    id: String,
    opts: DeleteOptions,
    _t: PhantomData<fn() -> T>,
}
builder_delete!(DeleteTyped<T>);

impl<'c, T: Entity> IntoFuture for DeleteTyped<'c, T> {
    type Output = Result<bool>;
    type IntoFuture = BoxFuture<'c, Result<bool>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let _op = self
                .conn
                .begin_operation("delete", T::table_name(), self.opts.timeout);
            self.conn
                .delete_entity_impl(
                    T::table_name(),
                    &self.id,
                    self.opts.permanent,
                    &self.opts.audit(),
                )
                .await
        })
    }
}

/// A typed restore being built (`conn.restore::<T>(id)`): `.user_id()`, `.comment()`, then
/// `.await` it.
#[must_use = "nothing is restored until awaited"]
pub struct RestoreTyped<'c, T> {
    conn: &'c mut Connection,
    id: String,
    opts: RestoreOptions,
    _t: PhantomData<fn() -> T>,
}
builder_audit!(RestoreTyped<T>);

impl<'c, T: Entity> IntoFuture for RestoreTyped<'c, T> {
    type Output = Result<bool>;
    type IntoFuture = BoxFuture<'c, Result<bool>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let _op = self
                .conn
                .begin_operation("restore", T::table_name(), self.opts.timeout);
            self.conn
                .restore_entity_impl(T::table_name(), &self.id, &self.opts.audit())
                .await
        })
    }
}

builder_timeout!(
    FindTyped<T>,
    SaveTyped<T>,
    SaveAllTyped<T>,
    GetTyped<T>,
    CountTyped<T>,
    DeleteTyped<T>,
    RestoreTyped<T>,
);
