//! Lock-free counters behind [`PoolMetrics`](super::PoolMetrics): a log-linear latency
//! histogram, a sliding window of acquisition outcomes, and the per-connection set of
//! statements seen (an approximation of the driver's prepared-statement cache).
//!
//! Everything on the checkout/return path is a handful of relaxed atomic operations: no lock,
//! no allocation.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, TimeoutKind};
use crate::pool::recover;

/// Sub-buckets per power of two: values are kept within 1/16 (6.25 %) of their true value.
const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Largest power of two tracked (2^50 ns is about 13 days); larger values are clamped.
const MAX_EXP: u32 = 50;
const BUCKETS: usize = SUB + (MAX_EXP as usize + 1 - SUB_BITS as usize) * SUB;

/// A latency histogram in nanoseconds with log-linear buckets (HdrHistogram-style, fixed
/// precision of 1/16): recording is two relaxed atomic adds and a compare-and-max.
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

/// Latency percentiles of one pool (wait time or query duration), with a precision of 1/16 (6.25 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Percentiles {
    /// Observations recorded.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest observation.
    pub max: Duration,
    /// Sum of all observations (for averages and Prometheus `_sum`).
    pub sum: Duration,
}

impl Percentiles {
    /// Mean of the observations (zero when there are none).
    pub fn mean(&self) -> Duration {
        if self.count == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(
                u64::try_from(self.sum.as_nanos() / u128::from(self.count)).unwrap_or(u64::MAX),
            )
        }
    }
}

fn bucket_of(ns: u64) -> usize {
    let v = ns.min((1u64 << (MAX_EXP + 1)) - 1);
    if v < SUB as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let sub = ((v >> (exp - SUB_BITS)) as usize) & (SUB - 1);
    SUB + (exp - SUB_BITS) as usize * SUB + sub
}

/// The largest value that falls in bucket `i`.
fn bucket_high(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let exp = ((i - SUB) / SUB) as u32 + SUB_BITS;
    let sub = ((i - SUB) % SUB) as u64;
    let width = 1u64 << (exp - SUB_BITS);
    ((SUB as u64 + sub) << (exp - SUB_BITS)) + width - 1
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub(crate) fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn percentiles(&self) -> Percentiles {
        Self::percentiles_of([self])
    }

    /// Percentiles of the union of the observations of `histograms` (several pools reported
    /// as one).
    pub(crate) fn percentiles_of<'a>(
        histograms: impl IntoIterator<Item = &'a Histogram>,
    ) -> Percentiles {
        let mut counts = vec![0u64; BUCKETS];
        let (mut max, mut sum) = (0u64, 0u64);
        for h in histograms {
            for (c, b) in counts.iter_mut().zip(h.buckets.iter()) {
                *c += b.load(Ordering::Relaxed);
            }
            max = max.max(h.max_ns.load(Ordering::Relaxed));
            sum = sum.saturating_add(h.sum_ns.load(Ordering::Relaxed));
        }
        let total: u64 = counts.iter().sum();
        let at = |q: f64| -> Duration {
            if total == 0 {
                return Duration::ZERO;
            }
            let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return Duration::from_nanos(bucket_high(i).min(max));
                }
            }
            Duration::from_nanos(max)
        };
        Percentiles {
            count: total,
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: Duration::from_nanos(max),
            sum: Duration::from_nanos(sum),
        }
    }
}

/// Length of the sliding window behind `timeout_rate()`.
pub(crate) const WINDOW_SECS: u64 = 60;
/// A slot packs its second (top 24 bits) with its count (low 40 bits), so that rolling over
/// to a new second and counting are one compare-and-swap, exact under contention.
const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const EPOCH_MASK: u64 = (1 << (64 - COUNT_BITS)) - 1;

/// Acquisition attempts and timeouts over the last [`WINDOW_SECS`] seconds, in one-second slots.
pub(crate) struct RateWindow {
    born: Instant,
    attempts: [AtomicU64; WINDOW_SECS as usize],
    timeouts: [AtomicU64; WINDOW_SECS as usize],
}

fn bump(slot: &AtomicU64, sec: u64) {
    let epoch = sec & EPOCH_MASK;
    let mut cur = slot.load(Ordering::Relaxed);
    loop {
        let next = if cur >> COUNT_BITS == epoch {
            (cur & !COUNT_MASK) | ((cur & COUNT_MASK) + 1).min(COUNT_MASK)
        } else {
            (epoch << COUNT_BITS) | 1
        };
        match slot.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => cur = actual,
        }
    }
}

impl RateWindow {
    pub(crate) fn new() -> Self {
        RateWindow {
            born: Instant::now(),
            attempts: std::array::from_fn(|_| AtomicU64::new(0)),
            timeouts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn sec(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.born).as_secs()
    }

    /// Counts one acquisition attempt that ended at `at`.
    pub(crate) fn record(&self, at: Instant, timed_out: bool) {
        let sec = self.sec(at);
        let i = (sec % WINDOW_SECS) as usize;
        bump(&self.attempts[i], sec);
        if timed_out {
            bump(&self.timeouts[i], sec);
        }
    }

    /// (attempts, timeouts) over the last [`WINDOW_SECS`] seconds.
    pub(crate) fn totals(&self) -> (u64, u64) {
        self.totals_at(Instant::now())
    }

    fn totals_at(&self, at: Instant) -> (u64, u64) {
        let now = self.sec(at) & EPOCH_MASK;
        let sum = |slots: &[AtomicU64]| -> u64 {
            slots
                .iter()
                .map(|s| s.load(Ordering::Relaxed))
                .filter(|v| (now.wrapping_sub(v >> COUNT_BITS) & EPOCH_MASK) < WINDOW_SECS)
                .map(|v| v & COUNT_MASK)
                .sum()
        };
        (sum(&self.attempts), sum(&self.timeouts))
    }
}

/// Identity hasher for keys that are already hashes.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Statements a physical connection has run, as 64-bit hashes, bounded like the driver's
/// prepared-statement cache (512 per connection in every backend). A statement seen before is
/// counted as a cache hit. When full, an arbitrary entry is evicted: an approximation of the
/// driver's LRU, good enough to tell "all hits" from "all misses".
#[derive(Default)]
pub(crate) struct StatementsSeen {
    set: HashSet<u64, BuildHasherDefault<IdHasher>>,
}

/// Mirrors `statement_cache_capacity(512)` in the backends.
const STATEMENTS_SEEN_CAPACITY: usize = 512;

impl StatementsSeen {
    /// True when `sql` ran on this connection before. Remembers it when `remember` is set
    /// (the driver keeps only statements that prepared successfully).
    #[cfg(test)]
    pub(crate) fn check(&mut self, sql: &str, remember: bool) -> bool {
        self.check_hash(crate::sql::cache::text_hash(sql), remember)
    }

    /// [`check`](Self::check) of the statement whose text has the
    /// [`text_hash`](crate::sql::cache::text_hash) `h`.
    pub(crate) fn check_hash(&mut self, h: u64, remember: bool) -> bool {
        if self.set.contains(&h) {
            return true;
        }
        if remember {
            if self.set.len() >= STATEMENTS_SEEN_CAPACITY {
                if let Some(victim) = self.set.iter().next().copied() {
                    self.set.remove(&victim);
                }
            }
            self.set.insert(h);
        }
        false
    }
}

/// Circuit-breaker states, as reported by the resilience layer.
pub(crate) const BREAKER_STATES: [&str; 3] = ["closed", "open", "half_open"];

/// Counters kept per pool; read through [`PoolMetrics`](super::PoolMetrics).
pub(crate) struct Stats {
    pub acquisitions: AtomicU64,
    pub releases: AtomicU64,
    pub created: AtomicU64,
    pub discarded: AtomicU64,
    /// Closed because they were checked out on a runtime (or by blocking code) that cannot use
    /// their socket: it belongs to another user runtime.
    pub discarded_runtime_mismatch: AtomicU64,
    /// Closed by the housekeeper after idling longer than `idle_timeout` above `min`.
    pub reaped: AtomicU64,
    /// Closed because they outlived `max_lifetime`.
    pub retired: AtomicU64,
    /// Idle connections that failed their validation ping at checkout.
    pub failed_validation: AtomicU64,
    pub peak_in_use: AtomicUsize,
    pub timeouts: [AtomicU64; 5],
    /// Errors by category. Poisoning: each update is one counter increment, so a poisoned
    /// lock is recovered (see [`errors`](Self::errors)).
    errors: Mutex<HashMap<&'static str, u64>>,
    pub queries: AtomicU64,
    pub slow_queries: AtomicU64,
    pub stmt_hits: AtomicU64,
    pub stmt_misses: AtomicU64,
    pub leaks_detected: AtomicU64,
    pub reclaimed: AtomicU64,
    /// Transitions into each of [`BREAKER_STATES`], then "other".
    pub breaker_transitions: [AtomicU64; 4],
    /// Index into [`BREAKER_STATES`] of the last state entered, `usize::MAX` before any.
    pub breaker_state: AtomicUsize,
    pub wait: Histogram,
    pub query_time: Histogram,
    pub window: RateWindow,
    /// Per tag pair. Poisoning: each update is one entry's counters, so a poisoned lock is
    /// recovered (see [`tags`](Self::tags)).
    tags: Mutex<HashMap<(String, String), TagStats>>,
}

/// Per tag key/value pair: queries, errors, total time.
#[derive(Default, Clone, Copy)]
pub(crate) struct TagStats {
    pub queries: u64,
    pub errors: u64,
    pub seconds: f64,
}

/// Distinct tag key/value pairs tracked per pool; later ones are folded into `_other`.
pub(crate) const MAX_TAG_SERIES: usize = 256;

pub(crate) fn timeout_index(kind: TimeoutKind) -> usize {
    match kind {
        TimeoutKind::Acquire => 0,
        TimeoutKind::PoolCreation => 1,
        TimeoutKind::ConnectionCreation => 2,
        TimeoutKind::Query => 3,
        TimeoutKind::Operation => 4,
    }
}

pub(crate) const TIMEOUT_KINDS: [TimeoutKind; 5] = [
    TimeoutKind::Acquire,
    TimeoutKind::PoolCreation,
    TimeoutKind::ConnectionCreation,
    TimeoutKind::Query,
    TimeoutKind::Operation,
];

impl Stats {
    pub(crate) fn new() -> Self {
        Stats {
            acquisitions: AtomicU64::new(0),
            releases: AtomicU64::new(0),
            created: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
            discarded_runtime_mismatch: AtomicU64::new(0),
            reaped: AtomicU64::new(0),
            retired: AtomicU64::new(0),
            failed_validation: AtomicU64::new(0),
            peak_in_use: AtomicUsize::new(0),
            timeouts: Default::default(),
            errors: Mutex::new(HashMap::new()),
            queries: AtomicU64::new(0),
            slow_queries: AtomicU64::new(0),
            stmt_hits: AtomicU64::new(0),
            stmt_misses: AtomicU64::new(0),
            leaks_detected: AtomicU64::new(0),
            reclaimed: AtomicU64::new(0),
            breaker_transitions: Default::default(),
            breaker_state: AtomicUsize::new(usize::MAX),
            wait: Histogram::default(),
            query_time: Histogram::default(),
            window: RateWindow::new(),
            tags: Mutex::new(HashMap::new()),
        }
    }

    /// Errors by category (the lock recovered if poisoned: counters are never half-updated).
    pub(crate) fn errors(&self) -> MutexGuard<'_, HashMap<&'static str, u64>> {
        recover(self.errors.lock())
    }

    /// Statements by tag pair (the lock recovered if poisoned, as for [`errors`](Self::errors)).
    pub(crate) fn tags(&self) -> MutexGuard<'_, HashMap<(String, String), TagStats>> {
        recover(self.tags.lock())
    }

    pub(crate) fn record_timeout(&self, kind: TimeoutKind) {
        self.timeouts[timeout_index(kind)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_error(&self, e: &Error) {
        if let Error::Timeout { kind, .. } = e {
            self.record_timeout(*kind);
        }
        *self.errors().entry(e.category()).or_insert(0) += 1;
    }

    pub(crate) fn record_breaker_transition(&self, to: &str) {
        let i = BREAKER_STATES
            .iter()
            .position(|s| s.eq_ignore_ascii_case(to))
            .unwrap_or(BREAKER_STATES.len());
        self.breaker_transitions[i].fetch_add(1, Ordering::Relaxed);
        self.breaker_state.store(i, Ordering::Relaxed);
    }

    pub(crate) fn record_tags(&self, tags: &[(String, String)], elapsed: Duration, failed: bool) {
        let mut m = self.tags();
        for (k, v) in tags {
            let key = (k.clone(), v.clone());
            let key = if m.contains_key(&key) || m.len() < MAX_TAG_SERIES {
                key
            } else {
                ("_other".to_owned(), "_other".to_owned())
            };
            let e = m.entry(key).or_default();
            e.queries += 1;
            e.errors += u64::from(failed);
            e.seconds += elapsed.as_secs_f64();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for i in 0..BUCKETS {
            let hi = bucket_high(i);
            assert!(i == 0 || hi > last, "bucket {i}");
            assert_eq!(bucket_of(hi), i, "bucket {i} high {hi}");
            last = hi;
        }
        for v in [0u64, 1, 15, 16, 17, 100, 1_000, 123_456_789, 1 << 40] {
            let hi = bucket_high(bucket_of(v));
            assert!(
                hi >= v && (hi - v) as f64 <= v as f64 / 16.0 + 1.0,
                "{v} -> {hi}"
            );
        }
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let h = Histogram::default();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let p = h.percentiles();
        assert_eq!(p.count, 100);
        let near = |d: Duration, ms: f64| (d.as_secs_f64() * 1e3 - ms).abs() <= ms / 16.0 + 0.01;
        assert!(near(p.p50, 50.0), "{p:?}");
        assert!(near(p.p95, 95.0), "{p:?}");
        assert!(near(p.p99, 99.0), "{p:?}");
        assert_eq!(p.max, Duration::from_millis(100));
        assert_eq!(p.mean(), Duration::from_micros(50_500));
        assert_eq!(Histogram::default().percentiles(), Percentiles::default());
    }

    #[test]
    fn percentiles_of_several_histograms_are_those_of_their_union() {
        let (a, b, all) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for ms in 1..=100u64 {
            let h = if ms % 3 == 0 { &a } else { &b };
            h.record(Duration::from_millis(ms));
            all.record(Duration::from_millis(ms));
        }
        assert_eq!(Histogram::percentiles_of([&a, &b]), all.percentiles());
        assert_eq!(Histogram::percentiles_of([&a]), a.percentiles());
        assert_eq!(
            Histogram::percentiles_of(std::iter::empty()),
            Percentiles::default()
        );
    }

    #[test]
    fn window_counts_attempts_and_timeouts() {
        let w = RateWindow::new();
        let now = Instant::now();
        for i in 0..200 {
            w.record(now, i % 50 == 0);
        }
        assert_eq!(w.totals_at(now), (200, 4));
        // Seconds later: still in the window; a minute later: gone.
        assert_eq!(w.totals_at(now + Duration::from_secs(30)), (200, 4));
        let later = now + Duration::from_secs(WINDOW_SECS + 5);
        assert_eq!(w.totals_at(later), (0, 0));
        // The slot is reused for the new second, not added to.
        w.record(later, true);
        assert_eq!(w.totals_at(later), (1, 1));
    }

    #[test]
    fn statements_seen_is_bounded() {
        let mut s = StatementsSeen::default();
        assert!(!s.check("SELECT 1", true));
        assert!(s.check("SELECT 1", true));
        assert!(!s.check("SELECT 2", false));
        assert!(!s.check("SELECT 2", true));
        for i in 0..2000 {
            s.check(&format!("SELECT {i}"), true);
        }
        assert!(s.set.len() <= STATEMENTS_SEEN_CAPACITY);
    }
}
