//! Rollback to a date, from history: [`Connection::rollback_entity_to`],
//! [`Connection::rollback_entities_to`] and their typed twins.

use std::future::IntoFuture;
use std::marker::PhantomData;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::ops::{rollback_comment, Audit, RollbackReport};
use super::typed::Entity;
use super::BoxFuture;
use crate::connection::Connection;
use crate::error::Result;

/// Options of a rollback: who (recorded as `updated_by` and `history_user_id`), a comment
/// added to the `rollback to <date>` comment of each history row it appends, and a bound for
/// the whole operation. Taken by the blocking twins (`rollback_entity_to_with`, …); the async
/// builders have the same options as methods.
///
/// ```
/// let opts = dal::RollbackOptions::default().user_id("ops").comment("bad import");
/// assert_eq!(opts.user_id.as_deref(), Some("ops"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    /// Recorded as `updated_by` and `history_user_id`.
    pub user_id: Option<String>,
    /// Added to the history comment: `rollback to <at>: <comment>`.
    pub comment: Option<String>,
    /// Bound for the whole operation (see [`SaveEntity::timeout`](super::SaveEntity::timeout)).
    pub timeout: Option<Duration>,
}

impl RollbackOptions {
    /// Sets the user.
    pub fn user_id(mut self, user: impl Into<String>) -> Self {
        self.user_id = Some(user.into());
        self
    }
    /// Sets the comment added to `rollback to <at>`.
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
    /// Bounds the whole operation.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }
    fn audit(&self, at: DateTime<Utc>) -> Audit {
        Audit {
            user_id: self.user_id.clone(),
            comment: Some(rollback_comment(at, self.comment.as_deref())),
        }
    }
}

/// `rollback_entity_to` / `rollback_entities_to` being built; `.await` it. Resolves to a
/// [`RollbackReport`].
#[must_use = "nothing is rolled back until awaited"]
pub struct RollbackEntities<'c> {
    conn: &'c mut Connection,
    name: String,
    id: Option<String>,
    at: DateTime<Utc>,
    opts: RollbackOptions,
}
builder_audit!(RollbackEntities);

impl<'c> IntoFuture for RollbackEntities<'c> {
    type Output = Result<RollbackReport>;
    type IntoFuture = BoxFuture<'c, Result<RollbackReport>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let _op = self
                .conn
                .begin_operation("rollback", &self.name, self.opts.timeout);
            self.conn
                .rollback_impl(
                    &self.name,
                    self.id.as_deref(),
                    self.at,
                    &self.opts.audit(self.at),
                )
                .await
        })
    }
}

/// `conn.rollback_to::<T>(id, at)` being built; `.await` it. Resolves to the entity as it is
/// after the rollback (`None` when it did not exist at `at`, or was deleted then).
#[must_use = "nothing is rolled back until awaited"]
pub struct RollbackTyped<'c, T> {
    conn: &'c mut Connection,
    id: String,
    at: DateTime<Utc>,
    opts: RollbackOptions,
    _t: PhantomData<fn() -> T>,
}
builder_audit!(RollbackTyped<T>);

impl<'c, T: Entity> IntoFuture for RollbackTyped<'c, T> {
    type Output = Result<Option<T>>;
    type IntoFuture = BoxFuture<'c, Result<Option<T>>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let name = T::table_name();
            let _op = self
                .conn
                .begin_operation("rollback", name, self.opts.timeout);
            self.conn
                .rollback_typed_impl(&self.id, self.at, &self.opts.audit(self.at))
                .await
        })
    }
}

/// `conn.rollback_all_to::<T>(at)` being built; `.await` it. Resolves to a
/// [`RollbackReport`].
#[must_use = "nothing is rolled back until awaited"]
pub struct RollbackAllTyped<'c, T> {
    conn: &'c mut Connection,
    at: DateTime<Utc>,
    opts: RollbackOptions,
    _t: PhantomData<fn() -> T>,
}
builder_audit!(RollbackAllTyped<T>);

impl<'c, T: Entity> IntoFuture for RollbackAllTyped<'c, T> {
    type Output = Result<RollbackReport>;
    type IntoFuture = BoxFuture<'c, Result<RollbackReport>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let name = T::table_name();
            let _op = self
                .conn
                .begin_operation("rollback", name, self.opts.timeout);
            self.conn
                .rollback_impl(name, None, self.at, &self.opts.audit(self.at))
                .await
        })
    }
}

builder_timeout!(RollbackEntities, RollbackTyped<T>, RollbackAllTyped<T>);

impl Connection {
    /// Rolls one entity back to its state at `at`: its latest history version recorded at or
    /// before `at`. If it differs from the entity now (fields, or deleted or not), that state
    /// becomes a new version, appended to history with the comment `rollback to <at>` (and
    /// `.user_id(..)`, `.comment(..)` if given); an entity deleted since (soft or permanently)
    /// comes back; one created after `at` is soft-deleted. In the caller's transaction or one
    /// of its own, the row locked. Resolves to a [`RollbackReport`] (one of its counts is 1).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
    /// use dal::prelude::*;
    /// let db = Database::from_url("sqlite::memory:")?;
    /// let mut conn = db.async_connection().await?;
    /// let saved = conn.save_entity("doc_prices", json!({"amount": 10})).await?;
    /// let id = saved["id"].as_str().unwrap().to_owned();
    /// let before = chrono::Utc::now();
    /// conn.save_entity("doc_prices", json!({"id": id, "amount": 99})).await?;
    ///
    /// let report = conn.rollback_entity_to("doc_prices", &id, before).user_id("ops").await?;
    /// assert_eq!(report.restored, 1);
    /// let now = conn.get_entity("doc_prices", &id).await?.unwrap();
    /// assert_eq!((now["amount"].clone(), now["version"].clone()), (json!(10), json!(3)));
    /// let history = conn.get_entity_history("doc_prices", &id).await?;
    /// assert!(history[2]["history_comment"].as_str().unwrap().starts_with("rollback to "));
    /// # Ok(()) }
    /// ```
    pub fn rollback_entity_to(
        &mut self,
        name: &str,
        id: impl AsRef<str>,
        at: DateTime<Utc>,
    ) -> RollbackEntities<'_> {
        RollbackEntities {
            conn: self,
            name: name.to_owned(),
            id: Some(id.as_ref().to_owned()),
            at,
            opts: RollbackOptions::default(),
        }
    }

    /// Rolls every entity of `name` back to its state at `at` (see
    /// [`rollback_entity_to`](Self::rollback_entity_to)), in one transaction: entities
    /// changed since get their earlier state back, deleted ones come back, ones created
    /// after `at` are soft-deleted, unchanged ones are untouched (no new version).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
    /// use dal::prelude::*;
    /// let db = Database::from_url("sqlite::memory:")?;
    /// let mut conn = db.async_connection().await?;
    /// let kept = conn.save_entity("doc_stock", json!({"qty": 5})).await?;
    /// let at = chrono::Utc::now();
    /// conn.save_entity("doc_stock", json!({"qty": 7})).await?;          // created after `at`
    /// conn.delete_entity("doc_stock", kept["id"].as_str().unwrap()).await?;
    ///
    /// let report = conn.rollback_entities_to("doc_stock", at).await?;
    /// assert_eq!((report.recreated, report.deleted), (1, 1));
    /// assert_eq!(conn.count_entities("doc_stock").await?, 1);
    /// # Ok(()) }
    /// ```
    pub fn rollback_entities_to(&mut self, name: &str, at: DateTime<Utc>) -> RollbackEntities<'_> {
        RollbackEntities {
            conn: self,
            name: name.to_owned(),
            id: None,
            at,
            opts: RollbackOptions::default(),
        }
    }

    /// The typed [`rollback_entity_to`](Self::rollback_entity_to): resolves to the `T` as it
    /// is after the rollback, `None` when it did not exist (or was deleted) at `at`.
    pub fn rollback_to<T: Entity>(
        &mut self,
        id: impl AsRef<str>,
        at: DateTime<Utc>,
    ) -> RollbackTyped<'_, T> {
        self.rollback_to_with(id, at, RollbackOptions::default())
    }

    /// [`rollback_to`](Self::rollback_to) with a [`RollbackOptions`].
    pub fn rollback_to_with<T: Entity>(
        &mut self,
        id: impl AsRef<str>,
        at: DateTime<Utc>,
        opts: RollbackOptions,
    ) -> RollbackTyped<'_, T> {
        RollbackTyped {
            conn: self,
            id: id.as_ref().to_owned(),
            at,
            opts,
            _t: PhantomData,
        }
    }

    /// The typed [`rollback_entities_to`](Self::rollback_entities_to).
    pub fn rollback_all_to<T: Entity>(&mut self, at: DateTime<Utc>) -> RollbackAllTyped<'_, T> {
        self.rollback_all_to_with(at, RollbackOptions::default())
    }

    /// [`rollback_all_to`](Self::rollback_all_to) with a [`RollbackOptions`].
    pub fn rollback_all_to_with<T: Entity>(
        &mut self,
        at: DateTime<Utc>,
        opts: RollbackOptions,
    ) -> RollbackAllTyped<'_, T> {
        RollbackAllTyped {
            conn: self,
            at,
            opts,
            _t: PhantomData,
        }
    }
}

/// The blocking twins.
impl crate::blocking::SyncConnection {
    /// Blocking [`Connection::rollback_entity_to`].
    pub fn rollback_entity_to(
        &mut self,
        name: &str,
        id: impl AsRef<str>,
        at: DateTime<Utc>,
    ) -> Result<RollbackReport> {
        self.rollback_entity_to_with(name, id, at, RollbackOptions::default())
    }

    /// [`rollback_entity_to`](Self::rollback_entity_to) with user, comment and timeout.
    pub fn rollback_entity_to_with(
        &mut self,
        name: &str,
        id: impl AsRef<str>,
        at: DateTime<Utc>,
        opts: RollbackOptions,
    ) -> Result<RollbackReport> {
        let id = id.as_ref().to_owned();
        self.with(|conn| {
            RollbackEntities {
                conn,
                name: name.to_owned(),
                id: Some(id),
                at,
                opts,
            }
            .into_future()
        })
    }

    /// Blocking [`Connection::rollback_entities_to`].
    pub fn rollback_entities_to(
        &mut self,
        name: &str,
        at: DateTime<Utc>,
    ) -> Result<RollbackReport> {
        self.rollback_entities_to_with(name, at, RollbackOptions::default())
    }

    /// [`rollback_entities_to`](Self::rollback_entities_to) with user, comment and timeout.
    pub fn rollback_entities_to_with(
        &mut self,
        name: &str,
        at: DateTime<Utc>,
        opts: RollbackOptions,
    ) -> Result<RollbackReport> {
        self.with(|conn| {
            RollbackEntities {
                conn,
                name: name.to_owned(),
                id: None,
                at,
                opts,
            }
            .into_future()
        })
    }

    /// Blocking [`Connection::rollback_to`].
    pub fn rollback_to<T: Entity>(
        &mut self,
        id: impl AsRef<str>,
        at: DateTime<Utc>,
    ) -> Result<Option<T>> {
        self.rollback_to_with(id, at, RollbackOptions::default())
    }

    /// Blocking [`Connection::rollback_to_with`].
    pub fn rollback_to_with<T: Entity>(
        &mut self,
        id: impl AsRef<str>,
        at: DateTime<Utc>,
        opts: RollbackOptions,
    ) -> Result<Option<T>> {
        let id = id.as_ref().to_owned();
        self.with(|conn| conn.rollback_to_with::<T>(id, at, opts).into_future())
    }

    /// Blocking [`Connection::rollback_all_to`].
    pub fn rollback_all_to<T: Entity>(&mut self, at: DateTime<Utc>) -> Result<RollbackReport> {
        self.rollback_all_to_with::<T>(at, RollbackOptions::default())
    }

    /// Blocking [`Connection::rollback_all_to_with`].
    pub fn rollback_all_to_with<T: Entity>(
        &mut self,
        at: DateTime<Utc>,
        opts: RollbackOptions,
    ) -> Result<RollbackReport> {
        self.with(|conn| conn.rollback_all_to_with::<T>(at, opts).into_future())
    }
}
