//! The blocking twin of the dynamic entity API on [`SyncConnection`]: the same operations,
//! options passed as [`SaveOptions`], [`FindOptions`] and [`DeleteOptions`].

use super::{
    save_many, save_one, Audit, DeleteOptions, EntityMap, FindOptions, IntoEntity, SaveOptions,
};
use crate::blocking::SyncConnection;
use crate::error::Result;

impl SyncConnection {
    /// Blocking [`Connection::save_entity`](crate::Connection::save_entity).
    pub fn save_entity(&mut self, name: &str, entity: impl IntoEntity) -> Result<EntityMap> {
        self.save_entity_with(name, entity, SaveOptions::default())
    }

    /// [`save_entity`](Self::save_entity) with options: user, comment, expected version.
    pub fn save_entity_with(
        &mut self,
        name: &str,
        entity: impl IntoEntity,
        opts: SaveOptions,
    ) -> Result<EntityMap> {
        let e = entity.into_entity()?;
        self.with(|c| async move { save_one(c, name, e, &opts).await })
    }

    /// Blocking [`Connection::save_entities`](crate::Connection::save_entities).
    pub fn save_entities<E: IntoEntity>(
        &mut self,
        name: &str,
        entities: Vec<E>,
    ) -> Result<Vec<EntityMap>> {
        self.save_entities_with(name, entities, SaveOptions::default())
    }

    /// [`save_entities`](Self::save_entities) with user and comment (an expected version
    /// applies to a batch of one only).
    pub fn save_entities_with<E: IntoEntity>(
        &mut self,
        name: &str,
        entities: Vec<E>,
        opts: SaveOptions,
    ) -> Result<Vec<EntityMap>> {
        let es = entities
            .into_iter()
            .map(IntoEntity::into_entity)
            .collect::<Result<Vec<_>>>()?;
        self.with(|c| async move { save_many(c, name, es, &opts).await })
    }

    /// Blocking [`Connection::get_entity`](crate::Connection::get_entity).
    pub fn get_entity(&mut self, name: &str, id: impl AsRef<str>) -> Result<Option<EntityMap>> {
        let id = id.as_ref().to_owned();
        self.with(|c| async move { c.get_entity_impl(name, &id, false, false).await })
    }

    /// [`get_entity`](Self::get_entity) including soft-deleted entities.
    pub fn get_entity_including_deleted(
        &mut self,
        name: &str,
        id: impl AsRef<str>,
    ) -> Result<Option<EntityMap>> {
        let id = id.as_ref().to_owned();
        self.with(|c| async move { c.get_entity_impl(name, &id, true, false).await })
    }

    /// Blocking [`GetEntity::for_update`](super::GetEntity::for_update): the entity, its row locked until the open
    /// transaction ends.
    pub fn get_entity_for_update(
        &mut self,
        name: &str,
        id: impl AsRef<str>,
    ) -> Result<Option<EntityMap>> {
        let id = id.as_ref().to_owned();
        self.with(|c| async move { c.get_entity_impl(name, &id, false, true).await })
    }

    /// Blocking [`Connection::find_entities`](crate::Connection::find_entities).
    pub fn find_entities(&mut self, name: &str, opts: FindOptions) -> Result<Vec<EntityMap>> {
        self.with(|c| async move { c.find_entities_impl(name, &opts.query()).await })
    }

    /// Blocking [`Connection::count_entities`](crate::Connection::count_entities).
    pub fn count_entities(&mut self, name: &str, opts: FindOptions) -> Result<i64> {
        self.with(|c| async move { c.count_entities_impl(name, &opts.query()).await })
    }

    /// Blocking soft delete.
    pub fn delete_entity(&mut self, name: &str, id: impl AsRef<str>) -> Result<bool> {
        self.delete_entity_with(name, id, DeleteOptions::default())
    }

    /// Blocking delete with options (permanent, user).
    pub fn delete_entity_with(
        &mut self,
        name: &str,
        id: impl AsRef<str>,
        opts: DeleteOptions,
    ) -> Result<bool> {
        let id = id.as_ref().to_owned();
        let audit = opts.audit();
        self.with(|c| async move {
            c.delete_entity_impl(name, &id, opts.permanent, &audit)
                .await
        })
    }

    /// Blocking [`Connection::restore_entity`](crate::Connection::restore_entity).
    pub fn restore_entity(&mut self, name: &str, id: impl AsRef<str>) -> Result<bool> {
        let id = id.as_ref().to_owned();
        self.with(|c| async move { c.restore_entity_impl(name, &id, &Audit::default()).await })
    }

    /// Blocking [`Connection::get_entity_history`](crate::Connection::get_entity_history).
    pub fn get_entity_history(
        &mut self,
        name: &str,
        id: impl AsRef<str>,
    ) -> Result<Vec<EntityMap>> {
        let id = id.as_ref().to_owned();
        self.with(|c| async move { c.history_impl(name, &id, None).await })
    }

    /// Blocking [`Connection::get_entity_by_version`](crate::Connection::get_entity_by_version).
    pub fn get_entity_by_version(
        &mut self,
        name: &str,
        id: impl AsRef<str>,
        version: i64,
    ) -> Result<Option<EntityMap>> {
        let id = id.as_ref().to_owned();
        self.with(|c| async move { Ok(c.history_impl(name, &id, Some(version)).await?.pop()) })
    }
}
