//! [`PoolTuning`]: a pool's housekeeping and recycling settings, held by the pool itself in a
//! [`TuningCell`] (atomics, read on the checkout path without a lock).
//!
//! Tuning is pool state, not configuration: it is not part of the configuration
//! [`hash`](crate::DatabaseConfig::hash). [`PoolManager::set_pool_tuning`](crate::PoolManager::set_pool_tuning)
//! sets it on every open pool with a hash; a pool starts from the tuning of an open pool with
//! the same hash (configurations differing only in their password share it), else from the
//! tuning the creating [`Database`](crate::Database) was given, else from the defaults.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
    /// A connection held longer than this is taken back: the pool counts its slot free again
    /// at once (so a leak cannot starve other callers), logs it at WARN (target
    /// `dal::pool::leak`) with where it was acquired, and the holder's next call on it fails
    /// with [`Error::Connection`](crate::Error::Connection) `reclaimed after …` (the physical
    /// connection is closed when the holder drops it; an open transaction is rolled back by
    /// the server then). Counted in [`PoolMetrics::connections_reclaimed`](crate::PoolMetrics::connections_reclaimed).
    /// Default `None` (off): set it well above your longest legitimate use of a connection.
    pub reclaim_leaks: Option<Duration>,
}

impl Default for PoolTuning {
    fn default() -> Self {
        PoolTuning {
            leak_detection_threshold: Some(Duration::from_secs(300)),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            validate_after_idle: Some(Duration::from_secs(30)),
            reclaim_leaks: None,
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
    /// See [`reclaim_leaks`](Self#structfield.reclaim_leaks).
    ///
    /// ```
    /// use std::time::Duration;
    /// let t = dal::PoolTuning::default().reclaim_leaks(Some(Duration::from_secs(600)));
    /// assert_eq!(t.reclaim_leaks, Some(Duration::from_secs(600)));
    /// ```
    pub fn reclaim_leaks(mut self, t: Option<Duration>) -> Self {
        self.reclaim_leaks = t;
        self
    }

    /// How often the housekeeper runs: every second, or more often when a threshold is short.
    pub(super) fn period(&self) -> Duration {
        [
            self.leak_detection_threshold,
            self.idle_timeout,
            self.max_lifetime,
            self.reclaim_leaks,
        ]
        .into_iter()
        .flatten()
        .map(|d| d / 2)
        .fold(Duration::from_secs(1), Duration::min)
        .max(Duration::from_millis(10))
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
    reclaim: AtomicU64,
}

impl TuningCell {
    pub(crate) fn new(t: PoolTuning) -> Self {
        let c = TuningCell {
            leak: AtomicU64::new(NONE),
            idle: AtomicU64::new(NONE),
            lifetime: AtomicU64::new(NONE),
            validate: AtomicU64::new(NONE),
            reclaim: AtomicU64::new(NONE),
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
        self.reclaim.store(enc(t.reclaim_leaks), Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> PoolTuning {
        PoolTuning {
            leak_detection_threshold: dec(self.leak.load(Ordering::Relaxed)),
            idle_timeout: dec(self.idle.load(Ordering::Relaxed)),
            max_lifetime: dec(self.lifetime.load(Ordering::Relaxed)),
            validate_after_idle: dec(self.validate.load(Ordering::Relaxed)),
            reclaim_leaks: dec(self.reclaim.load(Ordering::Relaxed)),
        }
    }

    pub(crate) fn max_lifetime(&self) -> Option<Duration> {
        dec(self.lifetime.load(Ordering::Relaxed))
    }
}
