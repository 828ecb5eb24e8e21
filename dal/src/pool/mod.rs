//! The connection pool: one per configuration hash, shared by every [`Database`](crate::Database)
//! with that configuration.
//!
//! Acquisition is a hard contract: a caller gets a connection or an `is_timeout()` error within
//! `connection_acquisition_timeout`. Waiters are served in arrival order (tokio's semaphore is
//! fair). Checkout does no round trip: connections are validated after errors instead.
//!
//! Cancellation safety: the permit taken by a waiter is returned by a drop guard, so an
//! acquisition future dropped at any await point loses neither a permit nor a connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};

use crate::backend::{driver_for, Driver, RawConn};
use crate::config::DatabaseConfig;
use crate::error::{Error, Result, TimeoutKind};
use crate::sql::Backend;

mod manager;
pub use manager::{PoolManager, PoolMetrics, PoolStatus};

/// A physical connection with what the pool knows about it.
pub(crate) struct PooledRaw {
    pub raw: Box<dyn RawConn>,
    /// The tokio runtime whose reactor owns the socket, for runtime-bound drivers.
    runtime: Option<tokio::runtime::Id>,
}

pub(crate) struct PoolInner {
    pub hash: String,
    pub alias: String,
    pub backend: Backend,
    pub config: DatabaseConfig,
    driver: Arc<dyn Driver>,
    min: usize,
    max: usize,
    semaphore: Semaphore,
    idle: Mutex<Vec<PooledRaw>>,
    /// Physical connections open (idle and in use).
    size: AtomicUsize,
    in_use: AtomicUsize,
    closed: AtomicBool,
    /// Signalled whenever a connection is given back or discarded (close_pool waits on it).
    returned: Notify,
    initialized: tokio::sync::OnceCell<()>,
    pub stats: Stats,
}

/// Counters kept per pool; read through [`PoolMetrics`].
#[derive(Default)]
pub(crate) struct Stats {
    pub acquisitions: AtomicU64,
    pub releases: AtomicU64,
    pub created: AtomicU64,
    pub discarded: AtomicU64,
    pub peak_in_use: AtomicUsize,
    pub timeouts: [AtomicU64; 4],
    pub errors: Mutex<HashMap<&'static str, u64>>,
    pub queries: AtomicU64,
}

impl Stats {
    pub(crate) fn record_timeout(&self, kind: TimeoutKind) {
        let i = match kind {
            TimeoutKind::Acquire => 0,
            TimeoutKind::PoolCreation => 1,
            TimeoutKind::ConnectionCreation => 2,
            TimeoutKind::Query => 3,
        };
        self.timeouts[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_error(&self, e: &Error) {
        if let Error::Timeout { kind, .. } = e {
            self.record_timeout(*kind);
        }
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(e.category()).or_insert(0) += 1;
        }
    }
}

fn registry() -> &'static RwLock<HashMap<String, Arc<PoolInner>>> {
    static REGISTRY: OnceLock<RwLock<HashMap<String, Arc<PoolInner>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The open pool for `config` (created, not yet connected, if there is none).
pub(crate) fn pool_for(backend: Backend, config: &DatabaseConfig) -> Result<Arc<PoolInner>> {
    let hash = config.hash();
    if let Ok(map) = registry().read() {
        if let Some(p) = map.get(&hash) {
            return check_backend(p, backend);
        }
    }
    let mut map = registry()
        .write()
        .map_err(|_| Error::Internal("pool registry poisoned".into()))?;
    if let Some(p) = map.get(&hash) {
        return check_backend(p, backend);
    }
    let pool = Arc::new(PoolInner::new(hash.clone(), backend, config)?);
    map.insert(hash, pool.clone());
    Ok(pool)
}

fn check_backend(p: &Arc<PoolInner>, backend: Backend) -> Result<Arc<PoolInner>> {
    if p.backend != backend {
        return Err(Error::Config(format!(
            "a {} pool already exists for this configuration (alias {}); use a different alias for a {} database",
            p.backend.as_str(),
            p.alias,
            backend.as_str()
        )));
    }
    Ok(p.clone())
}

pub(crate) fn registered_pools() -> Vec<Arc<PoolInner>> {
    registry()
        .read()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default()
}

pub(crate) fn unregister(hash: &str) -> Option<Arc<PoolInner>> {
    registry().write().ok().and_then(|mut m| m.remove(hash))
}

fn current_runtime() -> Option<tokio::runtime::Id> {
    tokio::runtime::Handle::try_current().ok().map(|h| h.id())
}

/// Returns the permit to the semaphore when dropped, unless disarmed: keeps the count right when
/// an acquisition future is cancelled between taking the permit and handing out a connection.
struct PermitGuard<'a> {
    pool: &'a PoolInner,
    armed: bool,
}

impl Drop for PermitGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.pool.semaphore.add_permits(1);
        }
    }
}

/// Decrements `size` when dropped, unless disarmed: a connection being created is counted, and
/// stays counted only if creation succeeds and nobody cancelled us.
struct SizeGuard<'a> {
    pool: &'a PoolInner,
    armed: bool,
}

impl Drop for SizeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.pool.size.fetch_sub(1, Ordering::AcqRel);
            self.pool.returned.notify_waiters();
        }
    }
}

impl PoolInner {
    fn new(hash: String, backend: Backend, config: &DatabaseConfig) -> Result<Self> {
        let (min, max) = config.get_pool_size();
        if max == 0 || min > max {
            return Err(Error::Config(format!(
                "pool size: min {min} and max {max} must satisfy 0 < max and min <= max"
            )));
        }
        let driver = driver_for(backend, config)?;
        Ok(PoolInner {
            hash,
            alias: config.get_alias().to_owned(),
            backend,
            config: config.clone(),
            driver,
            min,
            max,
            semaphore: Semaphore::new(max),
            idle: Mutex::new(Vec::with_capacity(max)),
            size: AtomicUsize::new(0),
            in_use: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            returned: Notify::new(),
            initialized: tokio::sync::OnceCell::new(),
            stats: Stats::default(),
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Gets a connection within the acquisition timeout.
    pub(crate) async fn acquire(&self) -> Result<PooledRaw> {
        let start = Instant::now();
        let limit = self.config.get_connection_acquisition_timeout();
        let result = self.acquire_inner(start, limit).await;
        match &result {
            Ok(_) => {
                self.stats.acquisitions.fetch_add(1, Ordering::Relaxed);
                let now = self.in_use.fetch_add(1, Ordering::AcqRel) + 1;
                self.stats.peak_in_use.fetch_max(now, Ordering::Relaxed);
            }
            Err(e) => self.stats.record_error(e),
        }
        result
    }

    async fn acquire_inner(&self, start: Instant, limit: Duration) -> Result<PooledRaw> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let acquire_timeout = || Error::timeout(TimeoutKind::Acquire, limit, start.elapsed());

        // First use: set the pool up (open `min` connections) under pool_creation_timeout,
        // itself inside the acquisition deadline.
        if !self.initialized.initialized() {
            let creation = self.config.get_pool_creation_timeout();
            let bound = creation.min(limit);
            match tokio::time::timeout(bound, self.initialized.get_or_try_init(|| self.warm_up()))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) if creation <= limit => {
                    return Err(Error::timeout(
                        TimeoutKind::PoolCreation,
                        creation,
                        start.elapsed(),
                    ))
                }
                Err(_) => return Err(acquire_timeout()),
            }
        }

        let remaining = limit.saturating_sub(start.elapsed());
        let permit = match tokio::time::timeout(remaining, self.semaphore.acquire()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(self.closed_error()),
            Err(_) => return Err(acquire_timeout()),
        };
        permit.forget();
        let mut guard = PermitGuard {
            pool: self,
            armed: true,
        };
        if self.is_closed() {
            return Err(self.closed_error());
        }

        let here = current_runtime();
        while let Some(conn) = self.pop_idle() {
            if self.driver.runtime_bound() && conn.runtime.is_some() && conn.runtime != here {
                // Its socket belongs to another (possibly finished) runtime: not usable here.
                self.discard(conn);
                continue;
            }
            guard.armed = false;
            return Ok(conn);
        }

        let remaining = limit.saturating_sub(start.elapsed());
        let conn = self.open_within(remaining, start, limit).await?;
        guard.armed = false;
        Ok(conn)
    }

    fn closed_error(&self) -> Error {
        Error::PoolClosed(format!("the pool of {} is closed", self.alias))
    }

    fn pop_idle(&self) -> Option<PooledRaw> {
        self.idle.lock().ok().and_then(|mut v| v.pop())
    }

    async fn warm_up(&self) -> Result<()> {
        for _ in 0..self.min {
            // Bounded by connection_creation_timeout here, and by the caller's
            // pool_creation_timeout around the whole warm-up.
            let conn = self
                .open_within(Duration::MAX, Instant::now(), Duration::MAX)
                .await?;
            self.push_idle(conn);
        }
        Ok(())
    }

    /// Opens a connection, bounded by `connection_creation_timeout` and by `remaining` (what is
    /// left of the caller's acquisition deadline `limit` that started at `start`).
    async fn open_within(
        &self,
        remaining: Duration,
        start: Instant,
        limit: Duration,
    ) -> Result<PooledRaw> {
        let creation = self.config.get_connection_creation_timeout();
        let bound = creation.min(remaining);
        self.size.fetch_add(1, Ordering::AcqRel);
        let mut size_guard = SizeGuard {
            pool: self,
            armed: true,
        };
        let raw = match tokio::time::timeout(bound, self.driver.connect()).await {
            Ok(Ok(raw)) => raw,
            Ok(Err(e)) => return Err(e),
            Err(_) if creation < remaining => {
                return Err(Error::timeout(
                    TimeoutKind::ConnectionCreation,
                    creation,
                    start.elapsed(),
                ))
            }
            Err(_) => return Err(Error::timeout(TimeoutKind::Acquire, limit, start.elapsed())),
        };
        size_guard.armed = false;
        self.stats.created.fetch_add(1, Ordering::Relaxed);
        Ok(PooledRaw {
            raw,
            runtime: if self.driver.runtime_bound() {
                current_runtime()
            } else {
                None
            },
        })
    }

    fn push_idle(&self, conn: PooledRaw) {
        match self.idle.lock() {
            Ok(mut v) => v.push(conn),
            Err(_) => self.discard(conn),
        }
    }

    /// Gives a clean connection back. Called by the connection's drop path.
    pub(crate) fn release(&self, conn: PooledRaw) {
        self.in_use.fetch_sub(1, Ordering::AcqRel);
        self.stats.releases.fetch_add(1, Ordering::Relaxed);
        if self.is_closed() {
            self.discard(conn);
        } else {
            self.push_idle(conn);
        }
        self.semaphore.add_permits(1);
        self.returned.notify_waiters();
    }

    /// Closes a connection that must not be reused, and gives its permit back.
    pub(crate) fn release_broken(&self, conn: PooledRaw) {
        self.in_use.fetch_sub(1, Ordering::AcqRel);
        self.stats.releases.fetch_add(1, Ordering::Relaxed);
        self.discard(conn);
        self.semaphore.add_permits(1);
        self.returned.notify_waiters();
    }

    fn discard(&self, conn: PooledRaw) {
        self.size.fetch_sub(1, Ordering::AcqRel);
        self.stats.discarded.fetch_add(1, Ordering::Relaxed);
        match tokio::runtime::Handle::try_current() {
            Ok(h) if conn.runtime.is_none() || conn.runtime == Some(h.id()) => {
                h.spawn(conn.raw.close());
            }
            // Dropping closes the socket; the server cleans up (and rolls back) on its side.
            _ => drop(conn),
        }
        self.returned.notify_waiters();
    }

    pub(crate) fn size(&self) -> usize {
        self.size.load(Ordering::Acquire)
    }

    pub(crate) fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Acquire)
    }

    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    pub(crate) fn bounds(&self) -> (usize, usize) {
        (self.min, self.max)
    }

    /// Refuses new acquisitions, waits up to `timeout` for connections in use to come back,
    /// then closes everything. Returns once no connection of this pool is open, or with a
    /// timeout error saying how many were still in use.
    pub(crate) async fn close(&self, timeout: Duration) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        self.semaphore.close();
        let start = Instant::now();
        loop {
            let notified = self.returned.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let idle: Vec<PooledRaw> = self
                .idle
                .lock()
                .map(|mut v| v.drain(..).collect())
                .unwrap_or_default();
            for c in idle {
                self.size.fetch_sub(1, Ordering::AcqRel);
                c.raw.close().await;
            }
            if self.size() == 0 {
                return Ok(());
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                return Err(Error::PoolClosed(format!(
                    "pool of {} closed with {} connection(s) still in use after {timeout:?}",
                    self.alias,
                    self.in_use()
                )));
            }
        }
    }
}
