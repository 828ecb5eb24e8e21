//! The typed API: the dynamic operations, reached through a struct's serde representation and
//! its [`Entity`] description.

use std::future::IntoFuture;
use std::marker::PhantomData;

use serde_json::{Map, Value as Json};

use super::ops::{Audit, EntityMap};
use super::schema::{FieldSpec, HISTORY_FIELDS, SYSTEM_FIELDS};
use super::typed::Entity;
use super::{BoxFuture, DeleteOptions, FindOptions, SaveOptions};
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

fn is_system(name: &str) -> bool {
    SYSTEM_FIELDS.contains(&name) || HISTORY_FIELDS.contains(&name)
}

/// Declared fields of `T`, as the schema layer wants them (system fields excluded).
fn specs<T: Entity>() -> Vec<FieldSpec> {
    T::fields()
        .iter()
        .filter(|f| !f.id && !f.version && !is_system(f.column))
        .map(|f| FieldSpec {
            name: f.column.to_owned(),
            ty: f.ty,
            index: f.index,
            unique: f.unique,
        })
        .collect()
}

/// `T` → entity map keyed by column names (`id` for the id field).
fn to_map<T: Entity>(value: &T) -> Result<EntityMap> {
    let json = serde_json::to_value(value)
        .map_err(|e| Error::Conversion(format!("{}: cannot serialize: {e}", T::table_name())))?;
    let Json::Object(mut src) = json else {
        return Err(Error::Conversion(format!(
            "{}: an entity must serialize to a JSON object",
            T::table_name()
        )));
    };
    let mut out = Map::new();
    for f in T::fields() {
        let v = src.remove(f.serde_name);
        // `#[entity(default = ..)]` stands in for an absent or null value.
        let v = match (v, f.default) {
            (None | Some(Json::Null), Some(default)) => {
                serde_json::from_str(default).map_err(|e| {
                    Error::Conversion(format!("default of {}.{}: {e}", T::table_name(), f.column))
                })?
            }
            (Some(v), _) => v,
            (None, None) => continue,
        };
        let key = if f.id { "id" } else { f.column };
        if f.id && v.is_null() {
            continue;
        }
        out.insert(key.to_owned(), v);
    }
    Ok(out)
}

/// Entity map → `T`: columns renamed back to serde names; system fields kept, so a struct may
/// declare e.g. `created_at: Option<DateTime<Utc>>` to receive them.
fn from_map<T: Entity>(mut map: EntityMap) -> Result<T> {
    let mut out = Map::new();
    for f in T::fields() {
        let key = if f.id { "id" } else { f.column };
        if let Some(v) = map.remove(key) {
            out.insert(f.serde_name.to_owned(), v);
        }
    }
    for (k, v) in map {
        out.entry(k).or_insert(v);
    }
    serde_json::from_value(Json::Object(out))
        .map_err(|e| Error::Conversion(format!("{}: cannot read entity: {e}", T::table_name())))
}

impl Connection {
    /// Saves a typed entity (create or update, with history); returns it as stored, with its
    /// id. Declared indexes and unique constraints are created with the table.
    pub async fn save<T: Entity>(&mut self, entity: &T) -> Result<T> {
        self.save_with(entity, SaveOptions::default()).await
    }

    /// [`save`](Self::save) with user and comment for the history.
    pub async fn save_with<T: Entity>(&mut self, entity: &T, opts: SaveOptions) -> Result<T> {
        let map = to_map(entity)?;
        let mut saved = self
            .save_entities_impl(T::table_name(), vec![map], &opts.audit(), &specs::<T>())
            .await?;
        from_map(
            saved
                .pop()
                .ok_or_else(|| Error::Internal("save returned nothing".into()))?,
        )
    }

    /// Saves a batch of typed entities with multi-row statements; all or nothing.
    pub async fn save_all<T: Entity>(&mut self, entities: &[T]) -> Result<Vec<T>> {
        let maps = entities.iter().map(to_map).collect::<Result<Vec<_>>>()?;
        let saved = self
            .save_entities_impl(T::table_name(), maps, &Audit::default(), &specs::<T>())
            .await?;
        saved.into_iter().map(from_map).collect()
    }

    /// The entity with this id (not soft-deleted), or `None`.
    pub async fn get<T: Entity>(&mut self, id: impl AsRef<str>) -> Result<Option<T>> {
        self.get_entity_impl(T::table_name(), id.as_ref(), false)
            .await?
            .map(from_map)
            .transpose()
    }

    /// Typed query: `.filter()`, `.order_by()`, `.limit()`, `.offset()`, `.include_deleted()`.
    pub fn find<T: Entity>(&mut self) -> FindTyped<'_, T> {
        FindTyped {
            conn: self,
            opts: FindOptions::default(),
            _t: PhantomData,
        }
    }

    /// Number of `T` entities matching `opts` (use `FindOptions::default()` for all).
    pub async fn count<T: Entity>(&mut self, opts: FindOptions) -> Result<i64> {
        self.count_entities_impl(T::table_name(), &opts.query())
            .await
    }

    /// Soft-deletes (or with `permanent`, removes) a `T`; `true` when one was deleted.
    pub async fn delete<T: Entity>(
        &mut self,
        id: impl AsRef<str>,
        opts: DeleteOptions,
    ) -> Result<bool> {
        let audit = Audit {
            user_id: opts.user_id.clone(),
            comment: None,
        };
        self.delete_entity_impl(T::table_name(), id.as_ref(), opts.permanent, &audit)
            .await
    }

    /// Restores a soft-deleted `T`; `true` when one was restored.
    pub async fn restore<T: Entity>(&mut self, id: impl AsRef<str>) -> Result<bool> {
        self.restore_entity_impl(T::table_name(), id.as_ref(), &Audit::default())
            .await
    }

    /// Every version of a `T`, oldest first, with its history metadata.
    pub async fn history<T: Entity>(&mut self, id: impl AsRef<str>) -> Result<Vec<Versioned<T>>> {
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
    let version = m.remove("version").and_then(|v| v.as_i64()).unwrap_or(0);
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

impl<'c, T: Entity> IntoFuture for FindTyped<'c, T> {
    type Output = Result<Vec<T>>;
    type IntoFuture = BoxFuture<'c, Result<Vec<T>>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let rows = self
                .conn
                .find_entities_impl(T::table_name(), &self.opts.query())
                .await?;
            rows.into_iter().map(from_map).collect()
        })
    }
}
