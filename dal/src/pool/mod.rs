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
//! Cancellation safety: an acquisition future may be dropped at any await point and loses
//! neither a permit nor a connection. The permit of a caller is tokio's own RAII permit until a
//! connection is handed out; everything else that must be undone on cancellation — a connection
//! counted while it is being opened, a caller counted as waiting, a connection in the middle of
//! a validation ping (dropped, and so closed, with the future) — is undone by one generic
//! [`DropGuard`](dropguard::DropGuard), disarmed once the change is meant to last.
//!
//! Poisoned locks: every lock of the pool guards data that a panic cannot leave half-updated
//! (each declaration says why), so a poisoned lock is recovered, never read as "nothing there".
//!
//! State the pool owns (not global maps keyed by hash): its [`PoolTuning`] and the entity
//! layer's [`SchemaCache`] of its database.
//!
//! One file per concern: this one is the pool itself (its state, giving back and closing);
//! [`acquire`] (permit, idle checkout, opening), [`registry`] (open pools by hash and
//! credential), [`home`] (which runtime may use a connection), [`dropguard`], [`tuning`],
//! [`schema_cache`], [`housekeeping`] (the background task: leaks, idle reaping, max lifetime,
//! minimum size), [`health`], [`manager`] (the public face); what the pool reports (counters,
//! snapshots, per-query hook, leak reports, export) is in [`observability`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LockResult, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};

use crate::backend::{driver_for, Driver, RawConn};
use crate::config::{CredentialTag, DatabaseConfig, SessionKind};
use crate::error::{Error, Result};
use crate::resilience::{BreakerState, Guarded, PoolResilience};
use crate::sql::Backend;

mod acquire;
mod dropguard;
mod health;
mod home;
mod housekeeping;
mod manager;
mod observability;
mod registry;
mod replica;
mod schema_cache;
mod tuning;

pub(crate) use dropguard::DropGuard;
pub(crate) use manager::close_pools;
pub use manager::PoolManager;
pub(crate) use observability::QueryEvent;
pub use observability::{LeakReport, Percentiles, PoolMetrics, PoolStatus, ScalingAdvice};
pub(crate) use registry::{
    registered_groups, registered_pool_for, registered_pools, registered_pools_with_hash,
    unregister, PoolSlot,
};
pub(crate) use replica::{PoolRole, ReplicaState};
pub(crate) use schema_cache::SchemaCache;
pub use tuning::PoolTuning;

use home::{current_runtime, Home};
use observability::{Lent, StatementsSeen, Stats};
use tuning::TuningCell;

/// The guard of a lock, also when a thread panicked while holding it. Only for locks whose data
/// a panic cannot leave half-updated (each says why where it is declared): a poisoned lock is
/// never read as "nothing there".
fn recover<G>(locked: LockResult<G>) -> G {
    locked.unwrap_or_else(PoisonError::into_inner)
}

/// A physical connection with what the pool knows about it.
pub(crate) struct PooledRaw {
    pub raw: Box<dyn RawConn>,
    /// Where its socket is registered (see [`Home`]).
    home: Home,
    created_at: Instant,
    /// When it was last put back in the pool.
    idle_since: Instant,
    /// Its slot in the pool's lend records while lent, `NOT_LENT` otherwise.
    lend: usize,
    /// Statements it ran: the approximate prepared-statement cache behind the hit/miss metrics.
    pub(crate) seen: StatementsSeen,
    /// The pool's failover epoch when it was opened: older ones are closed at checkout.
    epoch: u64,
    /// Non-zero once the pool took it back from a holder who kept it too long
    /// ([`PoolTuning::reclaim_leaks`]): how long it had been held, in milliseconds, plus one.
    /// Shared with its lend record; written under the state lock.
    pub(crate) reclaimed: Arc<AtomicU64>,
}

impl PooledRaw {
    /// How long it had been held when the pool reclaimed it, if it did.
    pub(crate) fn reclaimed_after(&self) -> Option<Duration> {
        match self.reclaimed.load(Ordering::Acquire) {
            0 => None,
            ms => Some(Duration::from_millis(ms - 1)),
        }
    }
}

/// The idle stack and the lend records, under one lock held for a few instructions.
///
/// Poisoning: every change under the lock is a single `push`, `pop`, `remove` or `drain` on
/// the idle stack or the lend slab, or a flag set on one record, and no user code (not even
/// logging) runs under it; a panic while it is held cannot leave it half-updated, so a
/// poisoned lock is recovered ([`recover`]) — never read as "no idle connection", which
/// would make the pool open connection after connection.
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
    /// The configuration of the database that created the pool. Its settings outside the
    /// hash (retry policy, breaker, slow-query threshold, parameter logging) apply to every
    /// database that joins (see [`DatabaseConfig::hash`]).
    pub config: DatabaseConfig,
    driver: Arc<dyn Driver>,
    /// Pool bounds; set from the configuration, and once from the server's
    /// `max_connections` when the pool sizes itself (`expected_app_servers`).
    min: AtomicUsize,
    max: AtomicUsize,
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
    pub(crate) resilience: PoolResilience,
    /// Housekeeping and recycling settings: this pool's own (see [`PoolTuning`]).
    pub(crate) tuning: TuningCell,
    /// The entity layer's schemas of this pool's database (see [`SchemaCache`]).
    pub(crate) schema_cache: Arc<SchemaCache>,
    /// True while a housekeeping task runs for this pool.
    housekeeper: Arc<AtomicBool>,
    /// Last health-check result and when it was taken. Poisoning: the value is replaced
    /// whole, never half-written, so a poisoned lock is recovered.
    health: Mutex<Option<(Instant, bool)>>,
    /// Bumped when the server the pool connects to may have changed role (a write refused as
    /// read-only, a connection lost on a host list): idle connections opened before are
    /// closed at checkout, and new ones look for the right server again.
    failover_epoch: AtomicU64,
    /// Its role in a replicated topology, and a replica's routing state.
    pub(crate) replica: ReplicaState,
    #[cfg(feature = "metrics")]
    facade: observability::Facade,
}

impl PoolInner {
    fn new(
        hash: String,
        backend: Backend,
        config: &DatabaseConfig,
        tuning: PoolTuning,
    ) -> Result<Self> {
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
            facade: observability::Facade::new(&alias, backend.as_str(), &hash),
            tuning: TuningCell::new(tuning),
            schema_cache: Arc::default(),
            hash,
            credential: config.credential_tag(),
            alias,
            backend,
            config: config.clone(),
            driver,
            min: AtomicUsize::new(min),
            max: AtomicUsize::new(max),
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
            resilience: PoolResilience::new(config),
            housekeeper: Arc::new(AtomicBool::new(false)),
            health: Mutex::new(None),
            failover_epoch: AtomicU64::new(0),
            replica: ReplicaState::new(match config.session_kind() {
                SessionKind::ReadWrite => PoolRole::Primary,
                SessionKind::PrimaryRead => PoolRole::PrimaryRead,
                SessionKind::Replica => PoolRole::Replica,
            }),
        })
    }

    /// The server may have changed role: connections opened before now are not reused, and
    /// the next ones look for a server with the wanted role again.
    pub(crate) fn rediscover(&self) {
        self.failover_epoch.fetch_add(1, Ordering::AcqRel);
    }

    fn epoch(&self) -> u64 {
        self.failover_epoch.load(Ordering::Acquire)
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

    /// The idle stack and lend records (see [`State`] for why a poisoned lock is recovered).
    fn state(&self) -> MutexGuard<'_, State> {
        recover(self.state.lock())
    }

    fn push_idle(&self, mut conn: PooledRaw) {
        conn.idle_since = Instant::now();
        self.state().idle.push(conn);
        self.wake_closer();
    }

    /// Gives a clean connection back. Called by the connection's drop path.
    pub(crate) fn release(&self, mut conn: PooledRaw) {
        let now = Instant::now();
        let expired = self
            .tuning
            .max_lifetime()
            .is_some_and(|l| now.saturating_duration_since(conn.created_at) >= l);
        let mut state = self.state();
        if conn.reclaimed_after().is_some() {
            // Its slot was given back when it was reclaimed: only the socket is left.
            drop(state);
            self.close_reclaimed(conn);
            return;
        }
        let reported = Self::unlend(&mut state, &mut conn);
        let to_close = if !expired && !self.is_closed() {
            conn.idle_since = now;
            state.idle.push(conn);
            None
        } else {
            Some(conn)
        };
        drop(state);
        self.in_use.fetch_sub(1, Ordering::AcqRel);
        self.stats.releases.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.facade.released();
        if let Some(rec) = reported {
            self.log_returned_leak(&rec);
        }
        match to_close {
            None => {
                self.semaphore.add_permits(1);
                self.wake_closer();
            }
            Some(conn) => {
                let reason = if expired {
                    CloseReason::Lifetime
                } else {
                    CloseReason::Discard
                };
                self.close_conn(conn, reason);
                self.semaphore.add_permits(1);
            }
        }
    }

    /// Closes a connection that must not be reused, and gives its permit back.
    pub(crate) fn release_broken(&self, mut conn: PooledRaw) {
        let mut state = self.state();
        if conn.reclaimed_after().is_some() {
            drop(state);
            self.close_reclaimed(conn);
            return;
        }
        let reported = Self::unlend(&mut state, &mut conn);
        drop(state);
        self.in_use.fetch_sub(1, Ordering::AcqRel);
        self.stats.releases.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.facade.released();
        if let Some(rec) = reported {
            self.log_returned_leak(&rec);
        }
        self.close_conn(conn, CloseReason::Discard);
        self.semaphore.add_permits(1);
    }

    /// Closes a reclaimed connection its holder finally gave back: its permit, lend record
    /// and in-use count were given back when it was reclaimed.
    fn close_reclaimed(&self, mut conn: PooledRaw) {
        conn.lend = observability::NOT_LENT;
        self.close_conn(conn, CloseReason::Discard);
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
        self.count_close(reason);
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

    /// Counts one connection closed for `reason` (statistics and metrics facade).
    fn count_close(&self, reason: CloseReason) {
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
    }

    /// Uncounts a connection dropped where it stood by a future cancelled in the middle of a
    /// round trip on it (its protocol state unknown): the drop closes its socket and the server
    /// cleans up, as for any connection closed without a runtime to drive a polite close.
    fn uncount_dropped(&self) {
        self.count_close(CloseReason::Discard);
        self.size.fetch_sub(1, Ordering::SeqCst);
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
        self.state().idle.len()
    }

    pub(crate) fn bounds(&self) -> (usize, usize) {
        (
            self.min.load(Ordering::Relaxed),
            self.max.load(Ordering::Relaxed),
        )
    }

    /// New bounds (while the pool sets itself up, before any permit is taken): the permits
    /// follow the maximum, the minimum stays at most the maximum.
    fn resize(&self, max: usize) {
        let old = self.max.swap(max, Ordering::AcqRel);
        if max > old {
            self.semaphore.add_permits(max - old);
        } else {
            self.semaphore.forget_permits(old - max);
        }
        self.min.fetch_min(max, Ordering::AcqRel);
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
            let idle: Vec<PooledRaw> = self.state().idle.drain(..).collect();
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

/// The pool as the resilience layer sees it (which keeps `resilience` free of `pool`).
impl Guarded for PoolInner {
    fn resilience(&self) -> &PoolResilience {
        &self.resilience
    }

    fn alias(&self) -> &str {
        &self.alias
    }

    fn backend(&self) -> Backend {
        self.backend
    }

    fn breaker_transition(&self, to: BreakerState) {
        // Logged by the resilience layer; counted here.
        self.stats.record_breaker_transition(to.as_str());
        #[cfg(feature = "metrics")]
        self.facade.breaker(to.as_str());
    }
}

#[cfg(test)]
mod tests {
    use std::panic::Location;

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_poisoned_state_lock_still_lends_the_idle_connection() -> Result<()> {
        let config = DatabaseConfig::from_url("sqlite::memory:")?
            .alias("poisoned-state-lock")
            .pool_size(1, 1);
        let hash = config.hash();
        let pool = Arc::new(PoolInner::new(
            hash,
            "sqlite".parse()?,
            &config,
            PoolTuning::default(),
        )?);
        let conn = pool.acquire(Location::caller()).await?;
        pool.release(conn);
        let holder = pool.clone();
        let poisoner = std::thread::spawn(move || {
            let _held = holder.state.lock();
            panic!("poisoning the pool's state lock on purpose");
        });
        assert!(poisoner.join().is_err());
        assert!(pool.state.is_poisoned());
        // Still one idle connection, lent again: no second connection is opened.
        assert_eq!(pool.idle_count(), 1);
        let conn = pool.acquire(Location::caller()).await?;
        assert_eq!(pool.stats.created.load(Ordering::Relaxed), 1);
        assert_eq!(pool.leaks(Duration::ZERO).len(), 1);
        pool.release(conn);
        assert_eq!(pool.idle_count(), 1);
        pool.close(Duration::from_secs(5)).await
    }
}
