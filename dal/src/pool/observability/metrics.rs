//! Snapshots of pools for readers: [`PoolStatus`] (sizes), [`PoolMetrics`] (counters,
//! percentiles, timeout rate) and the [`ScalingAdvice`] read from them. One pool, or every pool
//! with one configuration hash reported as one.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::stats::{timeout_index, Histogram, BREAKER_STATES, TIMEOUT_KINDS, WINDOW_SECS};
use super::Percentiles;
use crate::error::TimeoutKind;
use crate::pool::PoolInner;
#[cfg(doc)]
use crate::pool::PoolManager;

/// A snapshot of one pool's size. From [`PoolManager::pool_statuses`], the figures of every
/// pool with the same hash summed (configurations that differ only in their password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStatus {
    /// Configuration hash (the pool's key).
    pub hash: String,
    /// Friendly name.
    pub alias: String,
    /// Backend name.
    pub backend: &'static str,
    /// Connections kept open at least.
    pub min_size: usize,
    /// Connections open at most.
    pub max_size: usize,
    /// Connections open now (idle + in use + being opened or checked).
    pub size: usize,
    /// Connections lent out now.
    pub in_use: usize,
    /// Connections waiting in the pool.
    pub idle: usize,
    /// Callers waiting for a connection now.
    pub waiting: usize,
    /// True once `close_pool` was called (on every pool, when several are summed).
    pub closed: bool,
}

/// What the recent timeout rate says about capacity: the seed's four bands.
///
/// | timeout rate | advice |
/// |---|---|
/// | < 0.1 % | [`Normal`](Self::Normal) |
/// | 0.1 % – 1 % | [`ReviewSlowQueries`](Self::ReviewSlowQueries) |
/// | 1 % – 5 % | [`ScaleVertically`](Self::ScaleVertically) |
/// | > 5 % | [`ScaleHorizontally`](Self::ScaleHorizontally) |
///
/// ```
/// use dal::ScalingAdvice;
/// assert_eq!(ScalingAdvice::from_timeout_rate(0.0005), ScalingAdvice::Normal);
/// assert_eq!(ScalingAdvice::from_timeout_rate(0.005), ScalingAdvice::ReviewSlowQueries);
/// assert_eq!(ScalingAdvice::from_timeout_rate(0.02), ScalingAdvice::ScaleVertically);
/// assert_eq!(ScalingAdvice::from_timeout_rate(0.2), ScalingAdvice::ScaleHorizontally);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScalingAdvice {
    /// Under 0.1 % of acquisitions time out: normal load, no action needed.
    Normal,
    /// 0.1 % to 1 %: mild contention; look for slow queries holding connections.
    ReviewSlowQueries,
    /// 1 % to 5 %: high load; a bigger database or app servers (vertical scaling).
    ScaleVertically,
    /// Over 5 %: critical pressure; add app servers to spread the load over more pools.
    ScaleHorizontally,
}

impl ScalingAdvice {
    /// The band for a timeout rate in `0..=1`.
    pub fn from_timeout_rate(rate: f64) -> Self {
        if rate > 0.05 {
            ScalingAdvice::ScaleHorizontally
        } else if rate >= 0.01 {
            ScalingAdvice::ScaleVertically
        } else if rate >= 0.001 {
            ScalingAdvice::ReviewSlowQueries
        } else {
            ScalingAdvice::Normal
        }
    }

    /// Stable snake_case name, used as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            ScalingAdvice::Normal => "normal",
            ScalingAdvice::ReviewSlowQueries => "review_slow_queries",
            ScalingAdvice::ScaleVertically => "scale_vertically",
            ScalingAdvice::ScaleHorizontally => "scale_horizontally",
        }
    }

    /// The suggested action, in words.
    pub fn action(self) -> &'static str {
        match self {
            ScalingAdvice::Normal => "normal load: no action needed",
            ScalingAdvice::ReviewSlowQueries => "mild contention: review slow queries",
            ScalingAdvice::ScaleVertically => {
                "high load: scale vertically (bigger database or app servers)"
            }
            ScalingAdvice::ScaleHorizontally => {
                "critical pressure: scale horizontally (add app servers)"
            }
        }
    }

    pub(crate) const ALL: [ScalingAdvice; 4] = [
        ScalingAdvice::Normal,
        ScalingAdvice::ReviewSlowQueries,
        ScalingAdvice::ScaleVertically,
        ScalingAdvice::ScaleHorizontally,
    ];
}

impl fmt::Display for ScalingAdvice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.action())
    }
}

/// A snapshot of one pool's counters.
///
/// Counters (`acquisitions`, `timeouts`, …) count since the pool was created; the
/// percentiles cover the same span; [`timeout_rate`](Self::timeout_rate) covers the last
/// [`window`](Self::window) only.
///
/// When several pools share a hash (configurations that differ only in their password), the
/// lookups by hash of [`PoolManager`] report them as one: counters, gauges and window totals
/// are summed, percentiles are those of all their observations together, `peak_in_use` is the
/// sum of the pools' peaks (an upper bound), and `breaker_state` is the most severe of their
/// states (`open`, then `half_open`, then `closed`).
/// [`Database::pool_metrics`](crate::Database::pool_metrics) always reports its own pool only.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolMetrics {
    /// Configuration hash.
    pub hash: String,
    /// Friendly name.
    pub alias: String,
    /// Backend name.
    pub backend: &'static str,
    /// Successful acquisitions.
    pub acquisitions: u64,
    /// Connections given back.
    pub releases: u64,
    /// Connections lent out now.
    pub in_use: usize,
    /// Connections open now.
    pub size: usize,
    /// Connections idle in the pool now.
    pub idle: usize,
    /// Callers waiting for a connection now.
    pub waiting: usize,
    /// Most connections lent out at once.
    pub peak_in_use: usize,
    /// Physical connections opened.
    pub connections_created: u64,
    /// Physical connections closed because they were broken, dirty or failed validation, or
    /// because the pool closed.
    pub connections_discarded: u64,
    /// PostgreSQL/MySQL connections closed because they were checked out where their socket
    /// cannot be used: opened on one user runtime, then needed by the blocking API or by
    /// another runtime (maybe after the first one ended). After the first such discard (or the
    /// first blocking use) a pool opens its connections on the library's runtime, usable
    /// everywhere, so this stays at most the number of connections opened before. See
    /// [`Database::sync_connection`](crate::Database::sync_connection).
    pub connections_discarded_runtime_mismatch: u64,
    /// Idle connections closed after `idle_timeout` (above the pool's minimum).
    pub connections_reaped: u64,
    /// Connections closed because they outlived `max_lifetime`.
    pub connections_retired: u64,
    /// Idle connections that failed their validation ping at checkout.
    pub validation_failures: u64,
    /// Time callers waited for a connection (successful acquisitions).
    pub wait_time: Percentiles,
    /// Timeouts by kind.
    pub timeouts: HashMap<TimeoutKind, u64>,
    /// Errors by category (`timeout`, `connection`, `database`, …).
    pub errors: HashMap<String, u64>,
    /// Statements run.
    pub queries: u64,
    /// Statement durations.
    pub query_duration: Percentiles,
    /// Statements over the slow-query threshold.
    pub slow_queries: u64,
    /// Prepared statements the connection had run before (approximate driver cache hits).
    pub statement_cache_hits: u64,
    /// Prepared statements new to their connection.
    pub statement_cache_misses: u64,
    /// Circuit-breaker transitions by the state entered (`closed`, `open`, `half_open`).
    pub breaker_transitions: HashMap<String, u64>,
    /// The state the breaker last entered, if it ever changed.
    pub breaker_state: Option<String>,
    /// Connections reported by the background leak detector.
    pub leaks_detected: u64,
    /// Connections taken back from holders who kept them past
    /// [`PoolTuning::reclaim_leaks`](crate::PoolTuning::reclaim_leaks).
    pub connections_reclaimed: u64,
    /// Length of the sliding window behind `timeout_rate()`.
    pub window: Duration,
    /// Acquisition attempts in the window.
    pub window_acquisitions: u64,
    /// Acquisition attempts in the window that ran out of time (acquisition, pool creation or
    /// connection creation timeout).
    pub window_timeouts: u64,
    /// What the pool serves: `primary` (reads and writes), `primary_read` (read connections
    /// no replica could serve) or `replica` (see [`Database::read_connection`](crate::Database::read_connection)).
    pub role: &'static str,
    /// A replica's last measured lag behind the primary (`None`: not a replica, not measured
    /// yet, or unknown).
    pub replica_lag: Option<Duration>,
    /// Whether reads are routed to it (always true for primary pools).
    pub in_rotation: bool,
    /// Read connections lent from it by `read_connection` (0 for the primary's own pool).
    pub routed_reads: u64,
}

/// Rank of a breaker state index for "most severe": open, then half open, then anything
/// else, then closed, then none.
fn breaker_severity(state: usize) -> u8 {
    match BREAKER_STATES.get(state).copied() {
        Some("open") => 4,
        Some("half_open") => 3,
        Some("closed") => 1,
        Some(_) => 2,
        None if state == usize::MAX => 0,
        None => 2,
    }
}

impl PoolMetrics {
    /// The metrics of one pool.
    pub(crate) fn of(p: &Arc<PoolInner>) -> Self {
        Self::of_group(std::slice::from_ref(p)).unwrap_or_else(|| Self::empty(p))
    }

    fn empty(p: &PoolInner) -> Self {
        PoolMetrics {
            hash: p.hash.clone(),
            alias: p.alias.clone(),
            backend: p.backend.as_str(),
            acquisitions: 0,
            releases: 0,
            in_use: 0,
            size: 0,
            idle: 0,
            waiting: 0,
            peak_in_use: 0,
            connections_created: 0,
            connections_discarded: 0,
            connections_discarded_runtime_mismatch: 0,
            connections_reaped: 0,
            connections_retired: 0,
            validation_failures: 0,
            wait_time: Percentiles::default(),
            timeouts: TIMEOUT_KINDS.iter().map(|k| (*k, 0)).collect(),
            errors: HashMap::new(),
            queries: 0,
            query_duration: Percentiles::default(),
            slow_queries: 0,
            statement_cache_hits: 0,
            statement_cache_misses: 0,
            breaker_transitions: HashMap::new(),
            breaker_state: None,
            leaks_detected: 0,
            connections_reclaimed: 0,
            window: Duration::from_secs(WINDOW_SECS),
            window_acquisitions: 0,
            window_timeouts: 0,
            role: p.replica.role.as_str(),
            replica_lag: p.replica.lag(),
            in_rotation: p.replica.role != super::super::PoolRole::Replica
                || p.replica.in_rotation(),
            routed_reads: 0,
        }
    }

    /// The metrics of `pools` (pools with the same hash) reported as one; `None` for none.
    pub(crate) fn of_group(pools: &[Arc<PoolInner>]) -> Option<Self> {
        let first = pools.first()?;
        let mut m = Self::empty(first);
        let mut worst_state = usize::MAX;
        for p in pools {
            let s = &p.stats;
            let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            m.acquisitions += load(&s.acquisitions);
            m.releases += load(&s.releases);
            m.in_use += p.in_use();
            m.size += p.size();
            m.idle += p.idle_count();
            m.waiting += p.waiting();
            m.peak_in_use += s.peak_in_use.load(Ordering::Relaxed);
            m.connections_created += load(&s.created);
            m.connections_discarded += load(&s.discarded);
            m.connections_discarded_runtime_mismatch += load(&s.discarded_runtime_mismatch);
            m.connections_reaped += load(&s.reaped);
            m.connections_retired += load(&s.retired);
            m.validation_failures += load(&s.failed_validation);
            for k in TIMEOUT_KINDS {
                *m.timeouts.entry(k).or_insert(0) += load(&s.timeouts[timeout_index(k)]);
            }
            for (k, v) in s.errors().iter() {
                *m.errors.entry((*k).to_owned()).or_insert(0) += *v;
            }
            m.queries += load(&s.queries);
            m.slow_queries += load(&s.slow_queries);
            m.statement_cache_hits += load(&s.stmt_hits);
            m.statement_cache_misses += load(&s.stmt_misses);
            for (i, c) in s.breaker_transitions.iter().enumerate() {
                let n = load(c);
                if n > 0 {
                    let name = BREAKER_STATES.get(i).copied().unwrap_or("other");
                    *m.breaker_transitions.entry(name.to_owned()).or_insert(0) += n;
                }
            }
            let state = s.breaker_state.load(Ordering::Relaxed);
            if breaker_severity(state) > breaker_severity(worst_state) {
                worst_state = state;
            }
            m.leaks_detected += load(&s.leaks_detected);
            m.connections_reclaimed += load(&s.reclaimed);
            let (acquisitions, timeouts) = s.window.totals();
            m.window_acquisitions += acquisitions;
            m.window_timeouts += timeouts;
            m.routed_reads += p.replica.routed();
        }
        m.wait_time = Histogram::percentiles_of(pools.iter().map(|p| &p.stats.wait));
        m.query_duration = Histogram::percentiles_of(pools.iter().map(|p| &p.stats.query_time));
        m.breaker_state = (worst_state != usize::MAX).then(|| {
            BREAKER_STATES
                .get(worst_state)
                .copied()
                .unwrap_or("other")
                .to_owned()
        });
        Some(m)
    }

    /// Share of acquisition attempts in the last [`window`](Self::window) (60 s) that timed
    /// out, in `0..=1` (0 when there were none).
    pub fn timeout_rate(&self) -> f64 {
        if self.window_acquisitions == 0 {
            0.0
        } else {
            self.window_timeouts as f64 / self.window_acquisitions as f64
        }
    }

    /// The seed's reading of [`timeout_rate`](Self::timeout_rate); see [`ScalingAdvice`].
    pub fn scaling_advice(&self) -> ScalingAdvice {
        ScalingAdvice::from_timeout_rate(self.timeout_rate())
    }

    /// Statement-cache hit ratio in `0..=1` (0 before any prepared statement ran).
    pub fn statement_cache_hit_ratio(&self) -> f64 {
        let total = self.statement_cache_hits + self.statement_cache_misses;
        if total == 0 {
            0.0
        } else {
            self.statement_cache_hits as f64 / total as f64
        }
    }
}

impl PoolStatus {
    pub(crate) fn unopened(
        config: &crate::config::DatabaseConfig,
        backend: crate::sql::Backend,
    ) -> Self {
        let (min_size, max_size) = config.get_pool_size();
        PoolStatus {
            hash: config.hash(),
            alias: config.get_alias().to_owned(),
            backend: backend.as_str(),
            min_size,
            max_size,
            size: 0,
            in_use: 0,
            idle: 0,
            waiting: 0,
            closed: false,
        }
    }

    /// The status of one pool.
    pub(crate) fn of(p: &PoolInner) -> Self {
        let (min_size, max_size) = p.bounds();
        PoolStatus {
            hash: p.hash.clone(),
            alias: p.alias.clone(),
            backend: p.backend.as_str(),
            min_size,
            max_size,
            size: p.size(),
            in_use: p.in_use(),
            idle: p.idle_count(),
            waiting: p.waiting(),
            closed: p.is_closed(),
        }
    }

    /// The status of `pools` (pools with the same hash) summed; `None` for none.
    pub(crate) fn of_group(pools: &[Arc<PoolInner>]) -> Option<Self> {
        let mut all = pools.iter().map(|p| Self::of(p));
        let first = all.next()?;
        Some(all.fold(first, |mut acc, s| {
            acc.min_size += s.min_size;
            acc.max_size += s.max_size;
            acc.size += s.size;
            acc.in_use += s.in_use;
            acc.idle += s.idle;
            acc.waiting += s.waiting;
            acc.closed &= s.closed;
            acc
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_edges_follow_the_seed() {
        use ScalingAdvice::*;
        let cases = [
            (0.0, Normal),
            (0.000_999, Normal),
            (0.001, ReviewSlowQueries),
            (0.009_99, ReviewSlowQueries),
            (0.01, ScaleVertically),
            (0.05, ScaleVertically),
            (0.050_01, ScaleHorizontally),
            (1.0, ScaleHorizontally),
        ];
        for (rate, advice) in cases {
            assert_eq!(ScalingAdvice::from_timeout_rate(rate), advice, "{rate}");
        }
        assert_eq!(ScalingAdvice::ALL.len(), 4);
    }

    #[test]
    fn breaker_severity_orders_open_half_open_closed_none() {
        let idx = |name: &str| BREAKER_STATES.iter().position(|s| *s == name).unwrap();
        let (open, half, closed) = (idx("open"), idx("half_open"), idx("closed"));
        assert!(breaker_severity(open) > breaker_severity(half));
        assert!(breaker_severity(half) > breaker_severity(closed));
        assert!(breaker_severity(closed) > breaker_severity(usize::MAX));
    }
}
