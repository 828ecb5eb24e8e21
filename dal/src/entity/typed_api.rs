//! The typed API: the dynamic operations, reached through a struct's serde representation and
//! its [`Entity`] description.

use std::future::IntoFuture;
use std::marker::PhantomData;

use serde_json::{Map, Value as Json};

use super::ops::{Audit, EntityMap, SaveRequest};
use super::schema::{is_reserved, FieldSpec};
use super::typed::{Entity, FieldDef, FieldType};
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
fn from_map<T: Entity>(mut map: EntityMap) -> Result<T> {
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
    /// Saves a typed entity (create or update, with history); returns it as stored, with its
    /// id (and version). Declared indexes and unique constraints are created with the table.
    /// With an `#[entity(version)]` field, the save fails with
    /// [`Error::Conflict`](crate::Error::Conflict) and writes nothing when the stored entity is
    /// not at that version.
    pub async fn save<T: Entity>(&mut self, entity: &T) -> Result<T> {
        self.save_with(entity, SaveOptions::default()).await
    }

    /// [`save`](Self::save) with user, comment and expected version for the history.
    pub async fn save_with<T: Entity>(&mut self, entity: &T, opts: SaveOptions) -> Result<T> {
        save_typed(self, &[entity], &opts)
            .await?
            .pop()
            .ok_or_else(|| Error::Internal("save returned nothing".into()))
    }

    /// Saves a batch of typed entities with multi-row statements; all or nothing.
    pub async fn save_all<T: Entity>(&mut self, entities: &[T]) -> Result<Vec<T>> {
        let refs: Vec<&T> = entities.iter().collect();
        save_typed(self, &refs, &SaveOptions::default()).await
    }

    /// The entity with this id (not soft-deleted), or `None`.
    pub async fn get<T: Entity>(&mut self, id: impl AsRef<str>) -> Result<Option<T>> {
        self.get_entity_impl(T::table_name(), id.as_ref(), false, false)
            .await?
            .map(from_map)
            .transpose()
    }

    /// The entity with this id, its row locked until the open transaction ends (`SELECT …
    /// FOR UPDATE`; SQLite: the transaction's write lock). Use it for read-check-write inside
    /// `#[auto_transaction]`: concurrent writers wait instead of overwriting each other.
    /// Needs an open transaction.
    pub async fn get_for_update<T: Entity>(&mut self, id: impl AsRef<str>) -> Result<Option<T>> {
        self.get_entity_impl(T::table_name(), id.as_ref(), false, true)
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
