//! The blocking twin of the entity API on [`SyncConnection`], dynamic and typed: the same
//! operations, their options passed as [`SaveOptions`], [`GetOptions`], [`FindOptions`],
//! [`DeleteOptions`] and [`RestoreOptions`].
//!
//! Every method runs the very builder its async twin returns (with the options struct in
//! place of the builder calls), so both have the same semantics by construction: an
//! options struct's `timeout` bounds the whole operation as `.timeout()` does, user and
//! comment are recorded in history, expected versions are checked.

use std::future::IntoFuture;

use super::{
    CountEntities, DeleteEntity, DeleteOptions, Entity, EntityHistory, EntityMap, EntityVersion,
    FindEntities, FindOptions, GetEntity, GetOptions, HistoryOptions, IntoEntity, RestoreEntity,
    RestoreOptions, SaveEntities, SaveEntity, SaveOptions, Versioned,
};
use crate::blocking::SyncConnection;
use crate::error::Result;

/// The dynamic entity API.
impl SyncConnection {
    /// Blocking [`Connection::save_entity`](crate::Connection::save_entity): creates or
    /// partially updates an entity; returns it as stored.
    pub fn save_entity(&mut self, name: &str, entity: impl IntoEntity) -> Result<EntityMap> {
        self.save_entity_with(name, entity, SaveOptions::default())
    }

    /// [`save_entity`](Self::save_entity) with options: user, comment, expected version,
    /// timeout of the whole operation.
    ///
    /// ```
    /// use dal::prelude::*;
    /// use std::time::Duration;
    /// let db = Database::from_url("sqlite::memory:")?;
    /// let mut conn = db.sync_connection()?;
    /// let opts = SaveOptions::default().user_id("ann").comment("first").timeout(Duration::from_secs(5));
    /// let e = conn.save_entity_with("notes", json!({"text": "hi"}), opts)?;
    /// assert_eq!(e["version"], json!(1));
    /// # Ok::<(), dal::Error>(())
    /// ```
    pub fn save_entity_with(
        &mut self,
        name: &str,
        entity: impl IntoEntity,
        opts: SaveOptions,
    ) -> Result<EntityMap> {
        let entity = entity.into_entity();
        self.with(|conn| {
            SaveEntity {
                conn,
                name: name.to_owned(),
                entity,
                opts,
            }
            .into_future()
        })
    }

    /// Blocking [`Connection::save_entities`](crate::Connection::save_entities): a batch, all
    /// or nothing.
    pub fn save_entities<E: IntoEntity>(
        &mut self,
        name: &str,
        entities: Vec<E>,
    ) -> Result<Vec<EntityMap>> {
        self.save_entities_with(name, entities, SaveOptions::default())
    }

    /// [`save_entities`](Self::save_entities) with user, comment and timeout (an expected
    /// version applies to a batch of one only).
    pub fn save_entities_with<E: IntoEntity>(
        &mut self,
        name: &str,
        entities: Vec<E>,
        opts: SaveOptions,
    ) -> Result<Vec<EntityMap>> {
        let entities = entities.into_iter().map(IntoEntity::into_entity).collect();
        self.with(|conn| {
            SaveEntities {
                conn,
                name: name.to_owned(),
                entities,
                opts,
            }
            .into_future()
        })
    }

    /// Blocking [`Connection::get_entity`](crate::Connection::get_entity): the entity, unless
    /// soft-deleted, or `None`.
    pub fn get_entity(&mut self, name: &str, id: impl AsRef<str>) -> Result<Option<EntityMap>> {
        self.get_entity_with(name, id, GetOptions::default())
    }

    /// [`get_entity`](Self::get_entity) with options: include soft-deleted entities, lock the
    /// row, timeout.
    pub fn get_entity_with(
        &mut self,
        name: &str,
        id: impl AsRef<str>,
        opts: GetOptions,
    ) -> Result<Option<EntityMap>> {
        let id = id.as_ref().to_owned();
        self.with(|conn| {
            GetEntity {
                conn,
                name: name.to_owned(),
                id,
                opts,
            }
            .into_future()
        })
    }

    /// [`get_entity`](Self::get_entity) including soft-deleted entities (the same as
    /// `get_entity_with(name, id, GetOptions::default().include_deleted())`).
    pub fn get_entity_including_deleted(
        &mut self,
        name: &str,
        id: impl AsRef<str>,
    ) -> Result<Option<EntityMap>> {
        self.get_entity_with(name, id, GetOptions::default().include_deleted())
    }

    /// Blocking [`GetEntity::for_update`]: the entity, its row locked until the open
    /// transaction ends (needs one).
    pub fn get_entity_for_update(
        &mut self,
        name: &str,
        id: impl AsRef<str>,
    ) -> Result<Option<EntityMap>> {
        self.get_entity_with(name, id, GetOptions::default().for_update())
    }

    /// Blocking [`Connection::find_entities`](crate::Connection::find_entities): filter,
    /// order, paging, soft-deleted rows and timeout come in `opts`.
    pub fn find_entities(&mut self, name: &str, opts: FindOptions) -> Result<Vec<EntityMap>> {
        self.with(|conn| {
            FindEntities {
                conn,
                name: name.to_owned(),
                opts,
            }
            .into_future()
        })
    }

    /// Blocking [`Connection::count_entities`](crate::Connection::count_entities): filter,
    /// soft-deleted rows and timeout come in `opts` (order and paging do not apply).
    pub fn count_entities(&mut self, name: &str, opts: FindOptions) -> Result<i64> {
        self.with(|conn| {
            CountEntities {
                conn,
                name: name.to_owned(),
                opts,
            }
            .into_future()
        })
    }

    /// Blocking soft delete ([`Connection::delete_entity`](crate::Connection::delete_entity));
    /// `true` when an entity was deleted.
    pub fn delete_entity(&mut self, name: &str, id: impl AsRef<str>) -> Result<bool> {
        self.delete_entity_with(name, id, DeleteOptions::default())
    }

    /// Blocking delete with options: permanent, user, comment, timeout.
    pub fn delete_entity_with(
        &mut self,
        name: &str,
        id: impl AsRef<str>,
        opts: DeleteOptions,
    ) -> Result<bool> {
        let id = id.as_ref().to_owned();
        self.with(|conn| {
            DeleteEntity {
                conn,
                name: name.to_owned(),
                id,
                opts,
            }
            .into_future()
        })
    }

    /// Blocking [`Connection::restore_entity`](crate::Connection::restore_entity); `true`
    /// when a soft-deleted entity was restored.
    pub fn restore_entity(&mut self, name: &str, id: impl AsRef<str>) -> Result<bool> {
        self.restore_entity_with(name, id, RestoreOptions::default())
    }

    /// [`restore_entity`](Self::restore_entity) with options: user, comment, timeout.
    pub fn restore_entity_with(
        &mut self,
        name: &str,
        id: impl AsRef<str>,
        opts: RestoreOptions,
    ) -> Result<bool> {
        let id = id.as_ref().to_owned();
        self.with(|conn| {
            RestoreEntity {
                conn,
                name: name.to_owned(),
                id,
                opts,
            }
            .into_future()
        })
    }

    /// Blocking [`Connection::get_entity_history`](crate::Connection::get_entity_history):
    /// every version, oldest first.
    pub fn get_entity_history(
        &mut self,
        name: &str,
        id: impl AsRef<str>,
    ) -> Result<Vec<EntityMap>> {
        let id = id.as_ref().to_owned();
        self.with(|c| async move { c.get_entity_history(name, &id).await })
    }

    /// Blocking [`Connection::get_entity_by_version`](crate::Connection::get_entity_by_version).
    pub fn get_entity_by_version(
        &mut self,
        name: &str,
        id: impl AsRef<str>,
        version: i64,
    ) -> Result<Option<EntityMap>> {
        let id = id.as_ref().to_owned();
        self.with(|c| async move { c.get_entity_by_version(name, &id, version).await })
    }
}

/// The typed entity API (`#[derive(Entity)]` structs).
impl SyncConnection {
    /// Blocking [`Connection::save`](crate::Connection::save): creates or updates a typed
    /// entity and returns it as stored, with its id (and version). With an
    /// `#[entity(version)]` field, a stale save fails with
    /// [`Error::Conflict`](crate::Error::Conflict) and writes nothing.
    pub fn save<T: Entity>(&mut self, entity: &T) -> Result<T> {
        self.save_with(entity, SaveOptions::default())
    }

    /// [`save`](Self::save) with options: user and comment (recorded in history), expected
    /// version, timeout of the whole operation.
    pub fn save_with<T: Entity>(&mut self, entity: &T, opts: SaveOptions) -> Result<T> {
        self.with(|c| c.save_with(entity, opts).into_future())
    }

    /// Blocking [`Connection::save_all`](crate::Connection::save_all): a batch with
    /// multi-row statements, all or nothing.
    pub fn save_all<T: Entity>(&mut self, entities: &[T]) -> Result<Vec<T>> {
        self.save_all_with(entities, SaveOptions::default())
    }

    /// [`save_all`](Self::save_all) with user, comment (on every history row of the batch)
    /// and timeout; an expected version applies to a batch of one only.
    pub fn save_all_with<T: Entity>(
        &mut self,
        entities: &[T],
        opts: SaveOptions,
    ) -> Result<Vec<T>> {
        self.with(|c| c.save_all_with(entities, opts).into_future())
    }

    /// Blocking [`Connection::get`](crate::Connection::get): the entity, unless soft-deleted,
    /// or `None`.
    pub fn get<T: Entity>(&mut self, id: impl AsRef<str>) -> Result<Option<T>> {
        self.get_with(id, GetOptions::default())
    }

    /// [`get`](Self::get) with options: include soft-deleted entities, lock the row, timeout.
    pub fn get_with<T: Entity>(
        &mut self,
        id: impl AsRef<str>,
        opts: GetOptions,
    ) -> Result<Option<T>> {
        let id = id.as_ref().to_owned();
        self.with(|c| c.get_with(id, opts).into_future())
    }

    /// Blocking [`Connection::get_for_update`](crate::Connection::get_for_update): the entity,
    /// its row locked until the open transaction ends (needs one). For a timeout, use
    /// `get_with(id, GetOptions::default().for_update().timeout(..))`.
    pub fn get_for_update<T: Entity>(&mut self, id: impl AsRef<str>) -> Result<Option<T>> {
        self.get_with(id, GetOptions::default().for_update())
    }

    /// Blocking [`Connection::find`](crate::Connection::find): every `T` that is not
    /// soft-deleted. For a filter, order, paging or a timeout, use
    /// [`find_with`](Self::find_with).
    pub fn find<T: Entity>(&mut self) -> Result<Vec<T>> {
        self.find_with(FindOptions::default())
    }

    /// [`find`](Self::find) with a [`FindOptions`]: filter, order, limit, offset,
    /// soft-deleted rows, timeout.
    pub fn find_with<T: Entity>(&mut self, opts: FindOptions) -> Result<Vec<T>> {
        self.with(|c| c.find_with::<T>(opts).into_future())
    }

    /// Blocking [`Connection::count`](crate::Connection::count): the number of `T` that are
    /// not soft-deleted.
    pub fn count<T: Entity>(&mut self) -> Result<i64> {
        self.count_with::<T>(FindOptions::default())
    }

    /// [`count`](Self::count) with a [`FindOptions`]: its filter, soft-deleted rows and
    /// timeout (order and paging do not apply to a count).
    pub fn count_with<T: Entity>(&mut self, opts: FindOptions) -> Result<i64> {
        self.with(|c| c.count_with::<T>(opts).into_future())
    }

    /// Blocking [`Connection::delete`](crate::Connection::delete): soft-deletes a `T`; `true`
    /// when one was deleted.
    pub fn delete<T: Entity>(&mut self, id: impl AsRef<str>) -> Result<bool> {
        self.delete_with::<T>(id, DeleteOptions::default())
    }

    /// [`delete`](Self::delete) with options: permanent, user, comment, timeout.
    pub fn delete_with<T: Entity>(
        &mut self,
        id: impl AsRef<str>,
        opts: DeleteOptions,
    ) -> Result<bool> {
        let id = id.as_ref().to_owned();
        self.with(|c| c.delete_with::<T>(id, opts).into_future())
    }

    /// Blocking [`Connection::restore`](crate::Connection::restore): restores a soft-deleted
    /// `T`; `true` when one was restored.
    pub fn restore<T: Entity>(&mut self, id: impl AsRef<str>) -> Result<bool> {
        self.restore_with::<T>(id, RestoreOptions::default())
    }

    /// [`restore`](Self::restore) with options: user, comment, timeout.
    pub fn restore_with<T: Entity>(
        &mut self,
        id: impl AsRef<str>,
        opts: RestoreOptions,
    ) -> Result<bool> {
        let id = id.as_ref().to_owned();
        self.with(|c| c.restore_with::<T>(id, opts).into_future())
    }

    /// Blocking [`Connection::history`](crate::Connection::history): every version of a
    /// `T`, oldest first, with its history metadata.
    pub fn history<T: Entity>(&mut self, id: impl AsRef<str>) -> Result<Vec<Versioned<T>>> {
        let id = id.as_ref().to_owned();
        self.with(|c| async move { c.history::<T>(id).await })
    }

    /// Blocking [`Connection::get_version`](crate::Connection::get_version): one version of
    /// a `T`, or `None`.
    pub fn get_version<T: Entity>(
        &mut self,
        id: impl AsRef<str>,
        version: i64,
    ) -> Result<Option<Versioned<T>>> {
        let id = id.as_ref().to_owned();
        self.with(|c| async move { c.get_version::<T>(id, version).await })
    }
}

/// The history reads with options.
impl SyncConnection {
    /// [`get_entity_history`](crate::SyncConnection::get_entity_history) with options:
    /// values as stored ([`HistoryOptions::raw`]), timeout.
    pub fn get_entity_history_with(
        &mut self,
        name: &str,
        id: impl AsRef<str>,
        opts: HistoryOptions,
    ) -> Result<Vec<EntityMap>> {
        let id = id.as_ref().to_owned();
        self.with(|conn| {
            EntityHistory {
                conn,
                name: name.to_owned(),
                id,
                version: None,
                opts,
            }
            .into_future()
        })
    }

    /// [`get_entity_by_version`](crate::SyncConnection::get_entity_by_version) with options:
    /// values as stored ([`HistoryOptions::raw`]), timeout.
    pub fn get_entity_by_version_with(
        &mut self,
        name: &str,
        id: impl AsRef<str>,
        version: i64,
        opts: HistoryOptions,
    ) -> Result<Option<EntityMap>> {
        let id = id.as_ref().to_owned();
        self.with(|conn| {
            EntityVersion(EntityHistory {
                conn,
                name: name.to_owned(),
                id,
                version: Some(version),
                opts,
            })
            .into_future()
        })
    }
}
