//! The connection pool: one per configuration, shared by every [`Database`](crate::Database)
//! with that configuration. Pools are keyed by the configuration [`hash`] (which leaves the
//! password out, so it can be shown) *and* a keyed digest of the password held only in memory:
//! configurations that differ only in their password get separate pools, and a wrong password
//! can neither borrow an authenticated connection nor poison the pool of the right one.
//!
//! [`hash`]: crate::DatabaseConfig::hash
//!
//! Runtimes: PostgreSQL and MySQL connections hold sockets registered with the tokio runtime
//! that opened them, usable from elsewhere only while that runtime's I/O driver runs. Each
//! connection remembers its home ([`Home`]): connections opened on the library's own runtime
//! (the one behind the blocking API, which lives as long as the process and whose worker always
//! drives its I/O) are usable from every runtime and from blocking code; connections opened on
//! a user's runtime are lent only on that runtime. Once a pool is used from the blocking API or
//! from a second runtime, it opens all its connections on the library's runtime, so a
//! connection opened on a user's runtime is replaced at most once (counted as
//! `connections_discarded_runtime_mismatch`).
//!
//! Acquisition is a hard contract: a caller gets a connection or an error within
//! `connection_acquisition_timeout` (an `is_timeout()` error when the time ran out). Waiters are
//! served in arrival order (tokio's semaphore is fair). Checkout does no round trip: a
//! connection is pinged only after it idled longer than [`PoolTuning::validate_after_idle`],
//! and connections that failed are closed instead of being put back.
//!
//! Cancellation safety: the permit taken by a waiter is returned by a drop guard, a connection
//! being opened is uncounted by another, and a connection being validated is closed by a third,
//! so an acquisition future dropped at any await point loses neither a permit nor a connection.
//!
//! One file per concern: [`stats`] (counters and histograms), [`leak`] (who holds what),
//! [`housekeeping`] (the background task: leaks, idle reaping, max lifetime, minimum size),
//! [`health`], [`observe`] (per-query hook: metrics, tracing span, slow-query log),
//! [`export`] (Prometheus text, `metrics` facade), [`manager`] (the public face).

use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};

use crate::backend::{driver_for, Driver, RawConn};
use crate::config::{CredentialTag, DatabaseConfig};
use crate::error::{Error, Result, TimeoutKind};
use crate::sql::Backend;

mod export;
mod health;
mod housekeeping;
mod leak;
mod manager;
mod observe;
mod stats;

pub use housekeeping::PoolTuning;
pub use leak::LeakReport;
pub(crate) use manager::close_pools;
pub use manager::{PoolManager, PoolMetrics, PoolStatus, ScalingAdvice};
pub(crate) use observe::QueryEvent;
pub use stats::Percentiles;

use housekeeping::TuningCell;
use leak::{LendRecord, Lent, NOT_LENT};
use stats::{StatementsSeen, Stats};

/// Where a connection's socket is registered, which says where it may be used.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Home {
    /// Not bound to any runtime (SQLite: its own worker thread).
    Free,
    /// The library's runtime ([`crate::blocking`]): it lives as long as the process and its
    /// worker thread always drives its I/O, so the socket works from any runtime and from
    /// blocking code.
    Library,
    /// A user's runtime: its I/O driver runs only while that runtime does (a current-thread
    /// runtime only inside `block_on`, any runtime only until it is dropped), so the socket is
    /// used on that runtime only.
    Runtime(tokio::runtime::Id),
    /// Opened outside any runtime: cannot happen for a runtime-bound driver (a socket needs a
    /// reactor), and never lent if it does.
    Unknown,
}

impl Home {
    /// The home of a connection opened here now by `driver`.
    fn here(driver: &dyn Driver) -> Home {
        if !driver.runtime_bound() {
            return Home::Free;
        }
        match current_runtime() {
            Some(id) if Some(id) == crate::blocking::library_runtime_id() => Home::Library,
            Some(id) => Home::Runtime(id),
            None => Home::Unknown,
        }
    }

    /// True when the connection can be used by a task running on runtime `here` (`None`: no
    /// runtime).
    fn usable_on(self, here: Option<tokio::runtime::Id>) -> bool {
        match self {
            Home::Free | Home::Library => true,
            Home::Runtime(id) => here == Some(id),
            Home::Unknown => false,
        }
    }
}

/// A physical connection with what the pool knows about it.
pub(crate) struct PooledRaw {
    pub raw: Box<dyn RawConn>,
    /// Where its socket is registered (see [`Home`]).
    home: Home,
    created_at: Instant,
    /// When it was last put back in the pool.
    idle_since: Instant,
    /// Its slot in the pool's lend records while lent, [`NOT_LENT`] otherwise.
    lend: usize,
    /// Statements it ran: the approximate prepared-statement cache behind the hit/miss metrics.
    pub(crate) seen: StatementsSeen,
}

/// The idle stack and the lend records, under one lock held for a few instructions.
struct State {
    idle: Vec<PooledRaw>,
    lent: Lent,
}

/// Why a connection is closed rather than kept.
#[derive(Clone, Copy)]
enum CloseReason {
    /// Broken, dirty, or the pool is closing.
    Discard,
    /// Its socket belongs to a user's runtime other than the one (or the blocking code) that
    /// checked it out: not usable there (see [`Home`]).
    RuntimeMismatch,
    /// Failed its validation ping at checkout.
    Validation,
    /// Idled longer than `idle_timeout` above the pool's minimum.
    Idle,
    /// Older than `max_lifetime`.
    Lifetime,
}

/// Connections being closed in the background, so `close_pool` can wait for them.
struct Closing {
    count: AtomicUsize,
}

pub(crate) struct PoolInner {
    /// The configuration hash (no password): what metrics, logs and `PoolManager` show.
    pub hash: String,
    /// With `hash`, the pool's registry key: which password it connects with. Never shown.
    credential: CredentialTag,
    pub alias: String,
    pub backend: Backend,
    pub config: DatabaseConfig,
    driver: Arc<dyn Driver>,
    min: usize,
    max: usize,
    semaphore: Semaphore,
    state: Mutex<State>,
    /// Physical connections open (idle, in use, or being opened/validated).
    size: AtomicUsize,
    in_use: AtomicUsize,
    /// Callers queued for a permit.
    waiting: AtomicUsize,
    closed: AtomicBool,
    closing: Arc<Closing>,
    /// Signalled when a connection is given back or closed while the pool is closing.
    returned: Arc<Notify>,
    initialized: tokio::sync::OnceCell<()>,
    /// Set once the pool was used from the blocking API or found a connection of one runtime
    /// checked out on another: from then on, runtime-bound connections are opened on the
    /// library's runtime, where every runtime and blocking code can use them.
    open_on_library: AtomicBool,
    pub stats: Stats,
    /// Circuit breaker and connection-loss tracking (see [`crate::resilience`]).
    pub(crate) resilience: crate::resilience::PoolResilience,
    pub(crate) tuning: TuningCell,
    /// True while a housekeeping task runs for this pool.
    housekeeper: Arc<AtomicBool>,
    /// Last health-check result and when it was taken.
    health: Mutex<Option<(Instant, bool)>>,
    #[cfg(feature = "metrics")]
    facade: export::Facade,
}

/// Open pools by configuration hash, each hash with one pool per credential (in creation
/// order). Almost always one.
type Registry = HashMap<String, Vec<Arc<PoolInner>>>;

fn registry() -> &'static RwLock<Registry> {
    static REGISTRY: OnceLock<RwLock<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The open pool for `config`, exactly (same hash and same password; created, not yet
/// connected, if there is none).
pub(crate) fn pool_for(backend: Backend, config: &DatabaseConfig) -> Result<Arc<PoolInner>> {
    let hash = config.hash();
    let credential = config.credential_tag();
    if let Ok(map) = registry().read() {
        if let Some(p) = find_exact(&map, &hash, credential, backend)? {
            return Ok(p);
        }
    }
    let mut map = registry()
        .write()
        .map_err(|_| Error::Internal("pool registry poisoned".into()))?;
    if let Some(p) = find_exact(&map, &hash, credential, backend)? {
        return Ok(p);
    }
    let pool = Arc::new(PoolInner::new(hash.clone(), backend, config)?);
    map.entry(hash).or_default().push(pool.clone());
    Ok(pool)
}

/// The pool registered for `hash` and `credential`, after checking that no pool of another
/// backend has this hash.
fn find_exact(
    map: &Registry,
    hash: &str,
    credential: CredentialTag,
    backend: Backend,
) -> Result<Option<Arc<PoolInner>>> {
    let Some(pools) = map.get(hash) else {
        return Ok(None);
    };
    if let Some(p) = pools.iter().find(|p| p.backend != backend) {
        return Err(Error::Config(format!(
            "a {} pool already exists for this configuration (alias {}); use a different alias for a {} database",
            p.backend.as_str(),
            p.alias,
            backend.as_str()
        )));
    }
    Ok(pools.iter().find(|p| p.credential == credential).cloned())
}

/// Every open pool.
pub(crate) fn registered_pools() -> Vec<Arc<PoolInner>> {
    registry()
        .read()
        .map(|m| m.values().flatten().cloned().collect())
        .unwrap_or_default()
}

/// Every open pool, grouped by configuration hash (groups in no particular order, pools of a
/// group in creation order).
pub(crate) fn registered_groups() -> Vec<Vec<Arc<PoolInner>>> {
    registry()
        .read()
        .map(|m| m.values().filter(|v| !v.is_empty()).cloned().collect())
        .unwrap_or_default()
}

/// The open pools with configuration hash `hash` (several when configurations differ only in
/// their password), in creation order.
pub(crate) fn registered_pools_with_hash(hash: &str) -> Vec<Arc<PoolInner>> {
    registry()
        .read()
        .ok()
        .and_then(|m| m.get(hash).cloned())
        .unwrap_or_default()
}

/// The open pool for exactly one configuration (its hash and its password's tag), if any.
/// Creates nothing.
pub(crate) fn registered_pool_for(hash: &str, credential: CredentialTag) -> Option<Arc<PoolInner>> {
    registry().read().ok().and_then(|m| {
        m.get(hash)
            .and_then(|v| v.iter().find(|p| p.credential == credential).cloned())
    })
}

/// Removes `pool` from the registry (if it is still registered).
pub(crate) fn unregister(pool: &Arc<PoolInner>) {
    if let Ok(mut m) = registry().write() {
        if let Some(v) = m.get_mut(&pool.hash) {
            v.retain(|p| !Arc::ptr_eq(p, pool));
            if v.is_empty() {
                m.remove(&pool.hash);
            }
        }
    }
}

fn current_runtime() -> Option<tokio::runtime::Id> {
    tokio::runtime::Handle::try_current().ok().map(|h| h.id())
}

/// True for the timeouts that mean "no connection in time" (what `timeout_rate()` counts).
fn is_acquisition_timeout(e: &Error) -> bool {
    matches!(
        e.timeout_kind(),
        Some(TimeoutKind::Acquire | TimeoutKind::PoolCreation | TimeoutKind::ConnectionCreation)
    )
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
            self.pool.size.fetch_sub(1, Ordering::SeqCst);
            self.pool.wake_closer();
        }
    }
}

/// Closes the connection it holds when dropped (a validation or health ping was cancelled:
/// the connection's protocol state is unknown).
struct CloseOnDrop<'a> {
    pool: &'a PoolInner,
    conn: Option<PooledRaw>,
}

impl CloseOnDrop<'_> {
    fn conn(&mut self) -> Result<&mut PooledRaw> {
        self.conn
            .as_mut()
            .ok_or_else(|| Error::Internal("connection already taken".into()))
    }

    fn take(mut self) -> Option<PooledRaw> {
        self.conn.take()
    }
}

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.close_conn(c, CloseReason::Discard);
        }
    }
}

/// Aborts the task when dropped (a no-op once it has finished).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Counts a caller waiting for a permit while it waits.
struct WaitingGuard<'a>(&'a AtomicUsize);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
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
        let alias = config.get_alias().to_owned();
        Ok(PoolInner {
            #[cfg(feature = "metrics")]
            facade: export::Facade::new(&alias, backend.as_str(), &hash),
            tuning: TuningCell::new(housekeeping::tuning_for(&hash)),
            hash,
            credential: config.credential_tag(),
            alias,
            backend,
            config: config.clone(),
            driver,
            min,
            max,
            semaphore: Semaphore::new(max),
            state: Mutex::new(State {
                idle: Vec::with_capacity(max),
                lent: Lent::with_capacity(max),
            }),
            size: AtomicUsize::new(0),
            in_use: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            closing: Arc::new(Closing {
                count: AtomicUsize::new(0),
            }),
            returned: Arc::new(Notify::new()),
            initialized: tokio::sync::OnceCell::new(),
            open_on_library: AtomicBool::new(false),
            stats: Stats::new(),
            resilience: crate::resilience::PoolResilience::new(config),
            housekeeper: Arc::new(AtomicBool::new(false)),
            health: Mutex::new(None),
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Wakes `close()` if it is waiting. Called after every change it waits for; cheap when the
    /// pool is open. (`close` sets `closed` before it looks, and polls as a backstop.)
    fn wake_closer(&self) {
        if self.is_closed() {
            self.returned.notify_waiters();
        }
    }

    /// Gets a connection within the acquisition timeout, recording `location` as the place
    /// that holds it (for leak reports).
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        location: &'static Location<'static>,
    ) -> Result<PooledRaw> {
        housekeeping::ensure_running(self);
        let start = Instant::now();
        let limit = self.config.get_connection_acquisition_timeout();
        let result = self.acquire_inner(start, limit).await;
        let end = Instant::now();
        match result {
            Ok(mut conn) => {
                let waited = end.saturating_duration_since(start);
                self.stats.window.record(end, false);
                self.stats.acquisitions.fetch_add(1, Ordering::Relaxed);
                self.stats.wait.record(waited);
                let now = self.in_use.fetch_add(1, Ordering::AcqRel) + 1;
                self.stats.peak_in_use.fetch_max(now, Ordering::Relaxed);
                self.lend(&mut conn, end, location);
                #[cfg(feature = "metrics")]
                self.facade.acquired(waited);
                Ok(conn)
            }
            Err(e) => {
                self.stats.window.record(end, is_acquisition_timeout(&e));
                self.stats.record_error(&e);
                #[cfg(feature = "metrics")]
                self.facade.error(&e);
                Err(e)
            }
        }
    }

    /// Takes a permit and a connection (idle or new) within `limit` from `start`. Records no
    /// statistics: [`acquire`](Self::acquire) and the health probe do that (or not).
    async fn acquire_inner(&self, start: Instant, limit: Duration) -> Result<PooledRaw> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let here = current_runtime();
        if self.driver.runtime_bound()
            && here.is_some()
            && here == crate::blocking::library_runtime_id()
        {
            // Used from blocking code: from now on open connections where blocking code and
            // every runtime can use them.
            self.open_on_library.store(true, Ordering::Relaxed);
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

        // Fast path: a free permit, no queue. Otherwise wait in line (FIFO).
        match self.semaphore.try_acquire() {
            Ok(p) => p.forget(),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(self.closed_error()),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                self.waiting.fetch_add(1, Ordering::Relaxed);
                let _waiting = WaitingGuard(&self.waiting);
                let remaining = limit.saturating_sub(start.elapsed());
                match tokio::time::timeout(remaining, self.semaphore.acquire()).await {
                    Ok(Ok(p)) => p.forget(),
                    Ok(Err(_)) => return Err(self.closed_error()),
                    Err(_) => return Err(acquire_timeout()),
                }
            }
        }
        let mut guard = PermitGuard {
            pool: self,
            armed: true,
        };
        if self.is_closed() {
            return Err(self.closed_error());
        }

        let tuning = self.tuning.get();
        while let Some(conn) = self.pop_idle() {
            if !conn.home.usable_on(here) {
                // Its socket belongs to another user runtime (maybe finished, maybe not being
                // driven now): not usable here. Replace it with one every runtime can use.
                self.open_on_library.store(true, Ordering::Relaxed);
                self.close_conn(conn, CloseReason::RuntimeMismatch);
                continue;
            }
            if tuning
                .max_lifetime
                .is_some_and(|l| start.saturating_duration_since(conn.created_at) >= l)
            {
                self.close_conn(conn, CloseReason::Lifetime);
                continue;
            }
            let idle_for = start.saturating_duration_since(conn.idle_since);
            if tuning.validate_after_idle.is_some_and(|v| idle_for >= v) {
                // Idle for long: one round trip to make sure the server still knows it.
                let mut held = CloseOnDrop {
                    pool: self,
                    conn: Some(conn),
                };
                let remaining = limit.saturating_sub(start.elapsed());
                let ping = held.conn()?.raw.ping();
                let alive = matches!(tokio::time::timeout(remaining, ping).await, Ok(Ok(())));
                if !alive {
                    if let Some(c) = held.take() {
                        self.close_conn(c, CloseReason::Validation);
                    }
                    if start.elapsed() >= limit {
                        return Err(acquire_timeout());
                    }
                    continue;
                }
                if let Some(c) = held.take() {
                    guard.armed = false;
                    return Ok(c);
                }
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
        Error::PoolClosed(format!(
            "the pool of {} is closed or closing (close_pool was called): it lends no more connections",
            self.alias
        ))
    }

    fn pop_idle(&self) -> Option<PooledRaw> {
        self.state.lock().ok().and_then(|mut s| s.idle.pop())
    }

    /// Records who holds `conn` from now on.
    fn lend(&self, conn: &mut PooledRaw, at: Instant, location: &'static Location<'static>) {
        let rec = LendRecord::new(at, location);
        if let Ok(mut s) = self.state.lock() {
            conn.lend = s.lent.insert(rec);
        }
    }

    /// Forgets the lend record of `conn`; logs when it had been reported as a leak.
    fn unlend(&self, state: &mut State, conn: &mut PooledRaw) {
        if conn.lend == NOT_LENT {
            return;
        }
        if let Some(rec) = state.lent.remove(conn.lend) {
            if rec.reported {
                tracing::info!(
                    target: "dal::pool::leak",
                    alias = %self.alias,
                    held_ms = rec.since.elapsed().as_millis() as u64,
                    location = %rec.location,
                    "previously reported leaked connection was returned"
                );
            }
        }
        conn.lend = NOT_LENT;
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
        self.size.fetch_add(1, Ordering::SeqCst);
        let mut size_guard = SizeGuard {
            pool: self,
            armed: true,
        };
        let (raw, home) = match tokio::time::timeout(bound, self.connect()).await {
            Ok(Ok(opened)) => opened,
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
        #[cfg(feature = "metrics")]
        self.facade.created();
        let now = Instant::now();
        Ok(PooledRaw {
            raw,
            home,
            created_at: now,
            idle_since: now,
            lend: NOT_LENT,
            seen: StatementsSeen::default(),
        })
    }

    /// Opens one physical connection and says where its socket lives: on the library's runtime
    /// once the pool is in that mode ([`open_on_library`](Self::open_on_library)), on the
    /// current runtime otherwise (and if the library's runtime cannot be started).
    async fn connect(&self) -> Result<(Box<dyn RawConn>, Home)> {
        if self.driver.runtime_bound() && self.open_on_library.load(Ordering::Relaxed) {
            let library = crate::blocking::library_runtime_id();
            if library.is_none() || current_runtime() != library {
                if let Ok(rt) = crate::blocking::library_runtime() {
                    let driver = self.driver.clone();
                    // Aborted if we are cancelled (acquisition dropped or timed out).
                    let mut task = AbortOnDrop(rt.spawn(async move { driver.connect().await }));
                    return match (&mut task.0).await {
                        Ok(opened) => opened.map(|raw| (raw, Home::Library)),
                        Err(e) => Err(Error::Internal(format!(
                            "the task opening a connection on the library runtime failed: {e}"
                        ))),
                    };
                }
            }
        }
        let raw = self.driver.connect().await?;
        Ok((raw, Home::here(self.driver.as_ref())))
    }

    fn push_idle(&self, mut conn: PooledRaw) {
        conn.idle_since = Instant::now();
        match self.state.lock() {
            Ok(mut s) => s.idle.push(conn),
            Err(_) => self.close_conn(conn, CloseReason::Discard),
        }
        self.wake_closer();
    }

    /// Gives a clean connection back. Called by the connection's drop path.
    pub(crate) fn release(&self, mut conn: PooledRaw) {
        self.in_use.fetch_sub(1, Ordering::AcqRel);
        self.stats.releases.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.facade.released();
        let now = Instant::now();
        let expired = self
            .tuning
            .max_lifetime()
            .is_some_and(|l| now.saturating_duration_since(conn.created_at) >= l);
        if let Ok(mut s) = self.state.lock() {
            self.unlend(&mut s, &mut conn);
            if !expired && !self.is_closed() {
                conn.idle_since = now;
                s.idle.push(conn);
                drop(s);
                self.semaphore.add_permits(1);
                self.wake_closer();
                return;
            }
        }
        let reason = if expired {
            CloseReason::Lifetime
        } else {
            CloseReason::Discard
        };
        self.close_conn(conn, reason);
        self.semaphore.add_permits(1);
    }

    /// Closes a connection that must not be reused, and gives its permit back.
    pub(crate) fn release_broken(&self, mut conn: PooledRaw) {
        self.in_use.fetch_sub(1, Ordering::AcqRel);
        self.stats.releases.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.facade.released();
        if let Ok(mut s) = self.state.lock() {
            self.unlend(&mut s, &mut conn);
        }
        self.close_conn(conn, CloseReason::Discard);
        self.semaphore.add_permits(1);
    }

    /// Puts back a connection that was taken without being lent (health probe): idle if it
    /// answered, closed otherwise; and returns its permit.
    fn give_back_unlent(&self, conn: PooledRaw, healthy: bool) {
        if healthy && !self.is_closed() {
            self.push_idle(conn);
        } else {
            self.close_conn(conn, CloseReason::Discard);
        }
        self.semaphore.add_permits(1);
    }

    /// Closes one physical connection (politely on a runtime that can drive its socket: the
    /// library's for connections living there, the current one for the others when it is their
    /// own) and uncounts it. Counts why.
    fn close_conn(&self, conn: PooledRaw, reason: CloseReason) {
        let counter = match reason {
            CloseReason::Discard => &self.stats.discarded,
            CloseReason::RuntimeMismatch => &self.stats.discarded_runtime_mismatch,
            CloseReason::Validation => {
                self.stats.failed_validation.fetch_add(1, Ordering::Relaxed);
                &self.stats.discarded
            }
            CloseReason::Idle => &self.stats.reaped,
            CloseReason::Lifetime => &self.stats.retired,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.facade.closed(reason);
        let current = tokio::runtime::Handle::try_current().ok();
        let closer = match conn.home {
            Home::Library => crate::blocking::library_runtime()
                .ok()
                .map(|rt| rt.handle().clone()),
            home if home.usable_on(current.as_ref().map(tokio::runtime::Handle::id)) => current,
            _ => None,
        };
        match closer {
            Some(h) => {
                let closing = self.closing.clone();
                let returned = self.returned.clone();
                closing.count.fetch_add(1, Ordering::SeqCst);
                self.size.fetch_sub(1, Ordering::SeqCst);
                h.spawn(async move {
                    // Bounded: a silent server must not keep close_pool waiting forever.
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn.raw.close()).await;
                    closing.count.fetch_sub(1, Ordering::SeqCst);
                    returned.notify_waiters();
                });
            }
            // Dropping closes the socket; the server cleans up (and rolls back) on its side.
            _ => {
                self.size.fetch_sub(1, Ordering::SeqCst);
                drop(conn);
            }
        }
        self.wake_closer();
    }

    pub(crate) fn size(&self) -> usize {
        self.size.load(Ordering::Acquire)
    }

    pub(crate) fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Acquire)
    }

    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    pub(crate) fn idle_count(&self) -> usize {
        self.state.lock().map(|s| s.idle.len()).unwrap_or(0)
    }

    pub(crate) fn bounds(&self) -> (usize, usize) {
        (self.min, self.max)
    }

    /// Records a circuit-breaker state change (`closed`, `open`, `half_open`) for metrics.
    pub(crate) fn record_breaker_transition(&self, to: &str) {
        // Logged by the resilience layer; counted here.
        self.stats.record_breaker_transition(to);
        #[cfg(feature = "metrics")]
        self.facade.breaker(to);
    }

    /// Connections lent for at least `threshold`, with where they were acquired.
    pub(crate) fn leaks(&self, threshold: Duration) -> Vec<LeakReport> {
        let now = Instant::now();
        let Ok(mut s) = self.state.lock() else {
            return Vec::new();
        };
        let mut out: Vec<LeakReport> = s
            .lent
            .iter_mut()
            .filter(|r| now.saturating_duration_since(r.since) >= threshold)
            .map(|r| r.report(&self.hash, &self.alias, now))
            .collect();
        drop(s);
        out.sort_by_key(|r| std::cmp::Reverse(r.held_for));
        out
    }

    /// Refuses new acquisitions, waits up to `timeout` for connections in use to come back,
    /// then closes everything. Returns once no connection of this pool is open, or with an
    /// error saying how many were still in use (those are closed when given back).
    pub(crate) async fn close(&self, timeout: Duration) -> Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        self.semaphore.close();
        let start = Instant::now();
        let here = current_runtime();
        loop {
            let notified = self.returned.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let idle: Vec<PooledRaw> = self
                .state
                .lock()
                .map(|mut s| s.idle.drain(..).collect())
                .unwrap_or_default();
            for c in idle {
                self.stats.discarded.fetch_add(1, Ordering::Relaxed);
                self.size.fetch_sub(1, Ordering::SeqCst);
                if c.home.usable_on(here) {
                    let left = timeout.saturating_sub(start.elapsed());
                    let _ = tokio::time::timeout(left, c.raw.close()).await;
                }
            }
            // Size first: a closing connection is counted in `closing` before it leaves `size`.
            let size = self.size();
            let closing = self.closing.count.load(Ordering::SeqCst);
            if size == 0 && closing == 0 {
                return Ok(());
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(Error::PoolClosed(format!(
                    "pool of {} did not close within {timeout:?}: {} connection(s) still in use, \
                     {closing} still closing; they are closed as soon as they are given back",
                    self.alias,
                    self.in_use()
                )));
            }
            // The notification is the fast path; the short poll is a backstop.
            let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), notified).await;
        }
    }
}
