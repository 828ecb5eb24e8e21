//! The background task of a pool (HikariCP's "housekeeper"): reports leaked connections,
//! closes idle connections above the minimum, retires connections past their maximum lifetime,
//! and reopens connections up to the minimum.
//!
//! One task per pool, spawned on the tokio runtime of the pool's first acquisition. It holds
//! only a `Weak` to the pool between rounds, ends when the pool is closed or dropped, and is
//! respawned by the next acquisition if its runtime shut down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::dropguard::DropGuard;
use super::{CloseReason, PoolInner, PooledRaw};

/// Tuning of a pool's background work and connection recycling. Every field has a default;
/// `None` switches the behaviour off.
///
/// ```
/// use std::time::Duration;
/// use dal::PoolTuning;
/// let t = PoolTuning::default()
///     .leak_detection_threshold(Some(Duration::from_secs(60)))
///     .max_lifetime(Some(Duration::from_secs(15 * 60)));
/// assert_eq!(t.idle_timeout, Some(Duration::from_secs(600)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolTuning {
    /// A connection held longer than this is reported once at WARN (target `dal::pool::leak`)
    /// with where it was acquired. Default 300 s.
    pub leak_detection_threshold: Option<Duration>,
    /// Idle connections above the pool's minimum are closed after idling this long. Default 600 s.
    pub idle_timeout: Option<Duration>,
    /// Connections older than this are closed when given back (or found idle), and replaced
    /// on demand. Default 30 min.
    pub max_lifetime: Option<Duration>,
    /// A connection idle at least this long is pinged before it is lent; younger ones are lent
    /// without a round trip. Default 30 s.
    pub validate_after_idle: Option<Duration>,
}

impl Default for PoolTuning {
    fn default() -> Self {
        PoolTuning {
            leak_detection_threshold: Some(Duration::from_secs(300)),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            validate_after_idle: Some(Duration::from_secs(30)),
        }
    }
}

impl PoolTuning {
    /// See [`leak_detection_threshold`](Self#structfield.leak_detection_threshold).
    pub fn leak_detection_threshold(mut self, t: Option<Duration>) -> Self {
        self.leak_detection_threshold = t;
        self
    }
    /// See [`idle_timeout`](Self#structfield.idle_timeout).
    pub fn idle_timeout(mut self, t: Option<Duration>) -> Self {
        self.idle_timeout = t;
        self
    }
    /// See [`max_lifetime`](Self#structfield.max_lifetime).
    pub fn max_lifetime(mut self, t: Option<Duration>) -> Self {
        self.max_lifetime = t;
        self
    }
    /// See [`validate_after_idle`](Self#structfield.validate_after_idle).
    pub fn validate_after_idle(mut self, t: Option<Duration>) -> Self {
        self.validate_after_idle = t;
        self
    }

    /// How often the housekeeper runs: every second, or more often when a threshold is short.
    fn period(&self) -> Duration {
        [
            self.leak_detection_threshold,
            self.idle_timeout,
            self.max_lifetime,
        ]
        .into_iter()
        .flatten()
        .map(|d| d / 2)
        .fold(Duration::from_secs(1), Duration::min)
        .max(Duration::from_millis(10))
    }
}

/// Tuning overrides by configuration hash, applied to pools created later. Tuning belongs to
/// the configuration hash, not to one pool: pools whose configurations differ only in their
/// password (same hash, same database) share it.
fn overrides() -> &'static Mutex<HashMap<String, PoolTuning>> {
    static O: OnceLock<Mutex<HashMap<String, PoolTuning>>> = OnceLock::new();
    O.get_or_init(Default::default)
}

pub(crate) fn tuning_for(hash: &str) -> PoolTuning {
    overrides()
        .lock()
        .ok()
        .and_then(|m| m.get(hash).copied())
        .unwrap_or_default()
}

pub(crate) fn set_tuning(hash: &str, t: PoolTuning) {
    if let Ok(mut m) = overrides().lock() {
        m.insert(hash.to_owned(), t);
    }
    for p in super::registered_pools_with_hash(hash) {
        p.tuning.set(t);
    }
}

const NONE: u64 = u64::MAX;

fn enc(d: Option<Duration>) -> u64 {
    d.map_or(NONE, |d| u64::try_from(d.as_nanos()).unwrap_or(NONE - 1))
}

fn dec(v: u64) -> Option<Duration> {
    (v != NONE).then(|| Duration::from_nanos(v))
}

/// [`PoolTuning`] in atomics, readable on the hot path without a lock.
pub(crate) struct TuningCell {
    leak: AtomicU64,
    idle: AtomicU64,
    lifetime: AtomicU64,
    validate: AtomicU64,
}

impl TuningCell {
    pub(crate) fn new(t: PoolTuning) -> Self {
        let c = TuningCell {
            leak: AtomicU64::new(NONE),
            idle: AtomicU64::new(NONE),
            lifetime: AtomicU64::new(NONE),
            validate: AtomicU64::new(NONE),
        };
        c.set(t);
        c
    }

    pub(crate) fn set(&self, t: PoolTuning) {
        self.leak
            .store(enc(t.leak_detection_threshold), Ordering::Relaxed);
        self.idle.store(enc(t.idle_timeout), Ordering::Relaxed);
        self.lifetime.store(enc(t.max_lifetime), Ordering::Relaxed);
        self.validate
            .store(enc(t.validate_after_idle), Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> PoolTuning {
        PoolTuning {
            leak_detection_threshold: dec(self.leak.load(Ordering::Relaxed)),
            idle_timeout: dec(self.idle.load(Ordering::Relaxed)),
            max_lifetime: dec(self.lifetime.load(Ordering::Relaxed)),
            validate_after_idle: dec(self.validate.load(Ordering::Relaxed)),
        }
    }

    pub(crate) fn max_lifetime(&self) -> Option<Duration> {
        dec(self.lifetime.load(Ordering::Relaxed))
    }
}

/// Starts the housekeeper on the current runtime unless one is running. One atomic load when
/// it is.
pub(crate) fn ensure_running(pool: &Arc<PoolInner>) {
    if pool.housekeeper.load(Ordering::Acquire) {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if pool
        .housekeeper
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    // Clears the flag when the task ends, however it ends (including its runtime shutting
    // down and dropping it), so that the next acquisition starts a new one.
    let flag = pool.housekeeper.clone();
    let running = DropGuard::new(move || flag.store(false, Ordering::Release));
    let weak = Arc::downgrade(pool);
    handle.spawn(async move {
        let _running = running;
        run(weak).await;
    });
}

async fn run(weak: Weak<PoolInner>) {
    loop {
        let period = {
            let Some(pool) = weak.upgrade() else { return };
            if pool.is_closed() {
                return;
            }
            pool.housekeep().await;
            pool.tuning.get().period()
        };
        tokio::time::sleep(period).await;
    }
}

impl PoolInner {
    /// One round of housekeeping.
    async fn housekeep(&self) {
        let tuning = self.tuning.get();
        if let Some(threshold) = tuning.leak_detection_threshold {
            self.report_leaks(threshold);
        }
        self.reap(&tuning);
        self.top_up().await;
        #[cfg(feature = "metrics")]
        {
            // Pools with the same hash share the facade's series (same labels): report their
            // sum, not whichever pool's housekeeper ran last.
            let group = super::registered_pools_with_hash(&self.hash);
            let (size, idle, waiting) = if group.is_empty() {
                (self.size(), self.idle_count(), self.waiting())
            } else {
                group.iter().fold((0, 0, 0), |(s, i, w), p| {
                    (s + p.size(), i + p.idle_count(), w + p.waiting())
                })
            };
            self.facade.gauges(size, idle, waiting);
        }
    }

    /// Closes idle connections past their lifetime, and those idle too long above `min`.
    fn reap(&self, tuning: &super::PoolTuning) {
        let now = Instant::now();
        let mut out: Vec<(PooledRaw, CloseReason)> = Vec::new();
        {
            let mut s = self.state();
            let mut keep_above = self.size().saturating_sub(self.min);
            // Oldest idle first: the stack is pushed and popped at its end.
            let mut i = 0;
            while i < s.idle.len() {
                let c = &s.idle[i];
                let reason = if tuning
                    .max_lifetime
                    .is_some_and(|l| now.saturating_duration_since(c.created_at) >= l)
                {
                    Some(CloseReason::Lifetime)
                } else if keep_above > 0
                    && tuning
                        .idle_timeout
                        .is_some_and(|t| now.saturating_duration_since(c.idle_since) >= t)
                {
                    Some(CloseReason::Idle)
                } else {
                    None
                };
                match reason {
                    Some(r) => {
                        keep_above = keep_above.saturating_sub(1);
                        out.push((s.idle.remove(i), r));
                    }
                    None => i += 1,
                }
            }
        }
        for (c, r) in out {
            self.close_conn(c, r);
        }
    }

    /// Opens connections until the pool holds `min` again (after reaping, retirement or
    /// failures), one at a time, without ever exceeding `max`: each opening holds a permit.
    async fn top_up(&self) {
        while self.initialized.initialized() && !self.is_closed() && self.size() < self.min {
            // Held while opening, given back when dropped: a connection being opened counts
            // against `max` like one in use.
            let Ok(_permit) = self.semaphore.try_acquire() else {
                return;
            };
            let creation = self.config.get_connection_creation_timeout();
            match self.open_within(creation, Instant::now(), creation).await {
                Ok(conn) => self.push_idle(conn),
                Err(e) => {
                    tracing::debug!(target: "dal::pool", alias = %self.alias, error = %e,
                        "could not reopen a connection up to the pool minimum");
                    return;
                }
            }
        }
    }
}
