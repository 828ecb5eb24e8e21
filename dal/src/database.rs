//! [`Database`] and [`DatabaseFactory`]: from a configuration to connections.

use std::future::Future;
use std::panic::Location;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::blocking::SyncConnection;
use crate::config::DatabaseConfig;
use crate::connection::Connection;
use crate::error::Result;
use crate::pool::{
    pool_for, LeakReport, PoolInner, PoolManager, PoolMetrics, PoolStatus, PoolTuning,
};
use crate::sql::Backend;

/// A database: configuration plus the shared pool behind it. Cheap to clone, `Send + Sync`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
/// let db = dal::Database::from_url("sqlite::memory:")?;
/// let mut conn = db.async_connection().await?;
/// let rows = conn.execute("SELECT 1 + 1 AS [two]", ()).await?;
/// assert_eq!(rows[0].try_get::<i64, _>("two")?, 2);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Database {
    inner: Arc<DbInner>,
}

struct DbInner {
    backend: Backend,
    config: DatabaseConfig,
    hash: String,
    /// The pool last used, so the registry is consulted only when it was closed.
    pool: Mutex<Option<Arc<PoolInner>>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.inner.backend)
            .field("config", &self.inner.config)
            .finish()
    }
}

/// Creates databases by backend name.
pub struct DatabaseFactory;

impl DatabaseFactory {
    /// `kind`: `postgres` | `postgresql` | `mysql` | `mariadb` | `sqlite`. Any other name is a
    /// clear [`Error::Config`](crate::Error::Config). Nothing connects until first use.
    pub fn create_database(kind: &str, config: DatabaseConfig) -> Result<Database> {
        let backend = Backend::from_name(kind)?;
        Ok(Database::new(backend, config))
    }
}

impl Database {
    /// A database for `backend` and `config`. Nothing connects until first use.
    pub fn new(backend: Backend, config: DatabaseConfig) -> Self {
        let config = config.with_backend(backend);
        let hash = config.hash();
        Database {
            inner: Arc::new(DbInner {
                backend,
                config,
                hash,
                pool: Mutex::new(None),
            }),
        }
    }

    /// A database from a URL (`postgres://…`, `mysql://…`, `mariadb://…`, `sqlite::memory:`,
    /// `sqlite://file.db`); see [`DatabaseConfig::from_url`].
    pub fn from_url(url: &str) -> Result<Self> {
        let config = DatabaseConfig::from_url(url)?;
        let backend = config
            .backend()
            .ok_or_else(|| crate::Error::Config("URL names no backend".into()))?;
        Ok(Database::new(backend, config))
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The configuration.
    pub fn config(&self) -> &DatabaseConfig {
        &self.inner.config
    }

    /// The configuration hash (the key of the shared pool).
    pub fn hash(&self) -> &str {
        &self.inner.hash
    }

    pub(crate) fn pool(&self) -> Result<Arc<PoolInner>> {
        let mut slot = self
            .inner
            .pool
            .lock()
            .map_err(|_| crate::Error::Internal("database pool slot poisoned".into()))?;
        match slot.as_ref() {
            Some(p) if !p.is_closed() => Ok(p.clone()),
            _ => {
                let p = pool_for(self.inner.backend, &self.inner.config)?;
                *slot = Some(p.clone());
                Ok(p)
            }
        }
    }

    /// Borrows a connection from the shared pool, within `connection_acquisition_timeout`.
    /// It goes back when dropped (rolled back first if a transaction is open).
    ///
    /// The caller's file and line are recorded for leak reports
    /// ([`check_for_leaked_connections`](Self::check_for_leaked_connections)); this is why it
    /// is a plain `fn` returning a future (`#[track_caller]` does not reach into `async fn`).
    #[track_caller]
    pub fn async_connection(&self) -> impl Future<Output = Result<Connection>> + Send + '_ {
        self.connection_at(Location::caller())
    }

    async fn connection_at(&self, location: &'static Location<'static>) -> Result<Connection> {
        let pool = self.pool()?;
        // An open circuit breaker rejects at once, without waiting or connecting.
        crate::resilience::admit(&pool)?;
        match pool.acquire(location).await {
            Ok(raw) => Ok(Connection::new(pool, raw)),
            Err(e) => {
                crate::resilience::record_acquire_failure(&pool, &e);
                Err(e)
            }
        }
    }

    /// The blocking twin of [`async_connection`](Self::async_connection), for code that runs
    /// outside any async runtime (a plain `fn main`). Called from inside a runtime it returns
    /// an error instead of blocking the runtime's thread.
    #[track_caller]
    pub fn sync_connection(&self) -> Result<SyncConnection> {
        let conn = crate::blocking::block_on(self.connection_at(Location::caller()))??;
        Ok(SyncConnection::new(conn))
    }

    /// State and counters of this database's circuit breaker (see [`crate::resilience`]);
    /// a closed breaker before the pool exists.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
    /// let db = dal::Database::from_url("sqlite::memory:")?;
    /// db.async_connection().await?;
    /// assert_eq!(db.circuit_status().state, dal::BreakerState::Closed);
    /// # Ok(()) }
    /// ```
    pub fn circuit_status(&self) -> crate::CircuitStatus {
        match self.pool() {
            Ok(p) => p.resilience.breaker.status(),
            Err(_) => {
                crate::resilience::CircuitBreaker::new(*self.inner.config.get_circuit_breaker())
                    .status()
            }
        }
    }

    /// Size and use of this database's pool.
    pub fn pool_status(&self) -> PoolStatus {
        match self.pool() {
            Ok(p) => PoolStatus::of(&p),
            Err(_) => PoolStatus::unopened(&self.inner.config, self.inner.backend),
        }
    }

    /// Counters, wait-time and query-duration percentiles, timeout rate and scaling advice of
    /// this database's pool (see [`PoolMetrics`]); `None` before the pool exists.
    pub fn pool_metrics(&self) -> Option<PoolMetrics> {
        PoolManager::get_pool_metrics(&self.inner.hash)
    }

    /// Connections of this database's pool held for at least `threshold`, longest first, each
    /// with how long it has been held and where (`file:line`) it was acquired.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
    /// use std::time::Duration;
    /// let db = dal::Database::from_url("sqlite::memory:")?;
    /// let held = db.async_connection().await?;
    /// let leaks = db.check_for_leaked_connections(Duration::ZERO);
    /// assert_eq!(leaks.len(), 1);
    /// assert!(leaks[0].location.contains(':'));
    /// # drop(held); Ok(()) }
    /// ```
    pub fn check_for_leaked_connections(&self, threshold: Duration) -> Vec<LeakReport> {
        match self.pool() {
            Ok(p) => p.leaks(threshold),
            Err(_) => Vec::new(),
        }
    }

    /// Sets the housekeeping tuning (leak threshold, idle timeout, max lifetime, validation)
    /// of this database's pool; see [`PoolManager::set_pool_tuning`].
    pub fn set_pool_tuning(&self, tuning: PoolTuning) {
        PoolManager::set_pool_tuning(&self.inner.hash, tuning);
    }

    /// Closes this database's pool (see [`PoolManager::close_pool`]).
    pub async fn close(&self, timeout: Duration) -> Result<()> {
        PoolManager::close_pool(Some(&self.inner.hash), timeout).await
    }
}
