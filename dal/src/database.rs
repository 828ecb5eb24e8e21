//! [`Database`] and [`DatabaseFactory`]: from a configuration to connections.

use std::future::Future;
use std::panic::Location;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::blocking::SyncConnection;
use crate::config::{CredentialTag, DatabaseConfig};
use crate::connection::Connection;
use crate::error::Result;
use crate::pool::{
    close_pools, registered_pool_for, LeakReport, PoolInner, PoolManager, PoolMetrics, PoolSlot,
    PoolStatus, PoolTuning,
};
use crate::sql::Backend;
use crate::topology::Routing;

/// A database: configuration plus the shared pool behind it. Cheap to clone, `Send + Sync`.
///
/// Databases with the same configuration share one pool: the same [`hash`](Self::hash) *and*
/// the same password (compared through a keyed digest held only in memory). Two configurations
/// that differ only in their password have the same `hash()` but separate pools, so a wrong
/// password fails to authenticate instead of borrowing a connection opened with the right one.
/// This type's pool methods ([`pool_metrics`](Self::pool_metrics),
/// [`pool_status`](Self::pool_status), [`close`](Self::close), …) always act on its own pool.
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
    /// With `hash`, the key of this database's pool (a keyed digest of the password; never
    /// shown).
    credential: CredentialTag,
    /// The pool last used, so the registry is consulted only when it was closed, and the
    /// tuning last set through this database.
    pool: Mutex<PoolSlot>,
    /// Replicas, the primary's read pool and this handle's writes (see [`crate::topology`]).
    routing: Routing,
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
        let backend: Backend = kind.parse()?;
        Ok(Database::new(backend, config))
    }
}

impl Database {
    /// A database for `backend` and `config`. Nothing connects until first use.
    pub fn new(backend: Backend, config: DatabaseConfig) -> Self {
        let config = config.with_backend(backend);
        let hash = config.hash();
        let routing = Routing::new(&config);
        let credential = config.credential_tag();
        Database {
            inner: Arc::new(DbInner {
                backend,
                config,
                hash,
                credential,
                pool: Mutex::default(),
                routing,
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

    /// A database from the environment: `DATABASE_URL`, with the password possibly from
    /// `DAL_PASSWORD_FILE` or `PGPASSFILE`; see [`DatabaseConfig::from_env`].
    pub fn from_env() -> Result<Self> {
        let config = DatabaseConfig::from_env()?;
        let backend = config
            .backend()
            .ok_or_else(|| crate::Error::Config("DATABASE_URL names no backend".into()))?;
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

    /// The configuration hash: the key of the shared pool together with the password, which it
    /// leaves out (see [`DatabaseConfig::hash`]).
    pub fn hash(&self) -> &str {
        &self.inner.hash
    }

    pub(crate) fn routing(&self) -> &Routing {
        &self.inner.routing
    }

    pub(crate) fn pool(&self) -> Result<Arc<PoolInner>> {
        let mut slot = self
            .inner
            .pool
            .lock()
            .map_err(|_| crate::Error::Internal("database pool slot poisoned".into()))?;
        slot.open(self.inner.backend, &self.inner.config)
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

    pub(crate) async fn connection_at(
        &self,
        location: &'static Location<'static>,
    ) -> Result<Connection> {
        let pool = self.pool()?;
        // An open circuit breaker rejects at once, without waiting or connecting.
        crate::resilience::admit(&pool)?;
        match pool.acquire(location).await {
            Ok(raw) => Ok(Connection::new(pool, raw).noting_writes(self.inner.routing.write_log())),
            Err(e) => {
                let (_, max) = pool.bounds();
                crate::resilience::record_acquire_failure(&pool, &e, pool.in_use() >= max);
                Err(e)
            }
        }
    }

    /// Streams the rows of one statement on a pooled connection that the stream owns, so the
    /// stream is `'static` and `Send`: hand it to a web framework (axum's
    /// `Body::from_stream`, a channel, a spawned task) and forget the connection. It is
    /// borrowed on the first poll and goes back to the pool when the stream ends or is
    /// dropped — dropped early, after the statement was stopped on the server and the
    /// connection cleaned up (see [`Connection::fetch`] for the streaming semantics).
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
    /// let db = dal::Database::from_url("sqlite::memory:")?;
    /// let rows = db.fetch_owned("SELECT ? AS [a] UNION ALL SELECT ?", dal::params![1, 2]);
    /// let task = tokio::spawn(rows.map(|r| r.and_then(|r| r.try_get::<i64, _>(0))).collect::<Vec<_>>());
    /// let got: Vec<i64> = task.await.unwrap().into_iter().collect::<dal::Result<_>>()?;
    /// assert_eq!(got, [1, 2]);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn fetch_owned<P: crate::value::IntoParams>(
        &self,
        sql: &str,
        params: P,
    ) -> crate::RowStream<'static> {
        let location = Location::caller();
        let db = self.clone();
        let sql = sql.to_owned();
        let params = params.into_params();
        crate::RowStream::new(move |opts, out| {
            Box::pin(async move {
                let mut conn = match db.connection_at(location).await {
                    Ok(c) => c,
                    Err(e) => return out.put(Err(e)).await,
                };
                conn.stream_rows(
                    &sql,
                    &params,
                    &opts,
                    &mut Ok::<crate::Row, crate::Error>,
                    &out,
                )
                .await;
            })
        })
    }

    /// The blocking twin of [`async_connection`](Self::async_connection), for code that runs
    /// outside any async runtime (a plain `fn main`). Called from inside a runtime it returns
    /// an error instead of blocking the runtime's thread.
    ///
    /// It runs on the library's own runtime, started on first use and kept for the life of
    /// the process, and shares the pool with `async_connection` called from your runtime(s).
    /// PostgreSQL and MySQL connections are sockets registered with the runtime that opened
    /// them, which must keep driving their I/O wherever they are used:
    ///
    /// * Connections opened by blocking calls live on the library's runtime, whose worker
    ///   thread always drives their I/O: your runtimes use them as they are. Once a pool has
    ///   been used from blocking code (or a connection of one runtime was needed on another),
    ///   it opens every new connection there, whichever side asks; so alternating blocking and
    ///   async use keeps reusing the same connections.
    /// * A connection that your runtime opened *before* that can be driven only by your
    ///   runtime (a current-thread runtime drives it only inside its `block_on`, and no runtime
    ///   after it is dropped), so it is never lent elsewhere: when blocking code or another
    ///   runtime checks it out, it is closed and replaced by one opened on the library's
    ///   runtime. This happens at most once per such connection and is counted in
    ///   [`PoolMetrics::connections_discarded_runtime_mismatch`] (Prometheus:
    ///   `dal_pool_connections_closed_total{reason="runtime_mismatch"}`).
    /// * SQLite connections are not tied to a runtime and are always reused.
    ///
    /// Cost: for connections living on the library's runtime, I/O readiness reaches your
    /// runtime's tasks through the library's thread (one extra thread wake-up per wait). A
    /// pool used only from one runtime never pays it.
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
    /// this database's pool (see [`PoolMetrics`]); `None` before the pool exists (and after it
    /// was closed, until it is used again). Always this database's own pool, even when other
    /// pools share its hash.
    pub fn pool_metrics(&self) -> Option<PoolMetrics> {
        registered_pool_for(&self.inner.hash, self.inner.credential).map(|p| PoolMetrics::of(&p))
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
    /// of this database's pool, creating the pool (without connecting) if it does not exist
    /// yet; see [`PoolManager::set_pool_tuning`]. Pools whose configurations differ only in
    /// their password (same hash, same database) get it too. The database remembers it: a
    /// pool it creates after this one was closed starts with it (unless an open pool with the
    /// same hash has its own).
    pub fn set_pool_tuning(&self, tuning: PoolTuning) {
        if let Ok(mut slot) = self.inner.pool.lock() {
            slot.tuning = Some(tuning);
        }
        // A configuration error (bad pool size) surfaces on first use; tuning stays remembered.
        let _ = self.pool();
        PoolManager::set_pool_tuning(&self.inner.hash, tuning);
    }

    /// Closes this database's own pool, as [`PoolManager::close_pool`] does, and the pools
    /// of its replicas and of its reads on the primary (see
    /// [`read_connection`](Self::read_connection)); pools that only share its hash (other
    /// passwords) stay open. A later use opens fresh pools.
    pub async fn close(&self, timeout: Duration) -> Result<()> {
        let mut pools = self.inner.routing.opened_pools();
        if let Some(p) = registered_pool_for(&self.inner.hash, self.inner.credential) {
            pools.insert(0, p);
        }
        close_pools(&pools, timeout).await
    }
}
