//! [`PoolManager`]: the process-wide registry of pools, their status, metrics, health and
//! export.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::stats::{timeout_index, BREAKER_STATES, TIMEOUT_KINDS, WINDOW_SECS};
use super::{
    housekeeping, registered_pool, registered_pools, unregister, LeakReport, Percentiles,
    PoolInner, PoolTuning,
};
use crate::error::{Result, TimeoutKind};

/// Process-wide operations on the shared pools (one pool per configuration [`hash`]).
///
/// [`hash`]: crate::DatabaseConfig::hash
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
/// use dal::prelude::*;
/// let db = Database::from_url("sqlite::memory:")?;
/// db.async_connection().await?.execute("SELECT 1", ()).await?;
/// let m = PoolManager::get_pool_metrics(db.hash()).unwrap();
/// assert_eq!(m.acquisitions, 1);
/// assert_eq!(m.scaling_advice(), ScalingAdvice::Normal);
/// assert!(PoolManager::prometheus_text().contains("dal_pool_acquisitions_total"));
/// PoolManager::close_pool(Some(db.hash()), std::time::Duration::from_secs(5)).await?;
/// # Ok(()) }
/// ```
pub struct PoolManager;

/// A snapshot of one pool's size.
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
    /// True once `close_pool` was called.
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
    /// Physical connections closed because they were broken, dirty, failed validation or came
    /// from a finished runtime, or because the pool closed.
    pub connections_discarded: u64,
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
    /// Length of the sliding window behind `timeout_rate()`.
    pub window: Duration,
    /// Acquisition attempts in the window.
    pub window_acquisitions: u64,
    /// Acquisition attempts in the window that ran out of time (acquisition, pool creation or
    /// connection creation timeout).
    pub window_timeouts: u64,
}

impl PoolMetrics {
    pub(crate) fn of(p: &PoolInner) -> Self {
        let s = &p.stats;
        let (window_acquisitions, window_timeouts) = s.window.totals();
        let mut breaker_transitions = HashMap::new();
        for (i, c) in s.breaker_transitions.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            if n > 0 {
                let name = BREAKER_STATES.get(i).copied().unwrap_or("other");
                breaker_transitions.insert(name.to_owned(), n);
            }
        }
        let state = s.breaker_state.load(Ordering::Relaxed);
        PoolMetrics {
            hash: p.hash.clone(),
            alias: p.alias.clone(),
            backend: p.backend.as_str(),
            acquisitions: s.acquisitions.load(Ordering::Relaxed),
            releases: s.releases.load(Ordering::Relaxed),
            in_use: p.in_use(),
            size: p.size(),
            idle: p.idle_count(),
            waiting: p.waiting(),
            peak_in_use: s.peak_in_use.load(Ordering::Relaxed),
            connections_created: s.created.load(Ordering::Relaxed),
            connections_discarded: s.discarded.load(Ordering::Relaxed),
            connections_reaped: s.reaped.load(Ordering::Relaxed),
            connections_retired: s.retired.load(Ordering::Relaxed),
            validation_failures: s.failed_validation.load(Ordering::Relaxed),
            wait_time: s.wait.percentiles(),
            timeouts: TIMEOUT_KINDS
                .iter()
                .map(|k| (*k, s.timeouts[timeout_index(*k)].load(Ordering::Relaxed)))
                .collect(),
            errors: s
                .errors
                .lock()
                .map(|m| m.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect())
                .unwrap_or_default(),
            queries: s.queries.load(Ordering::Relaxed),
            query_duration: s.query_time.percentiles(),
            slow_queries: s.slow_queries.load(Ordering::Relaxed),
            statement_cache_hits: s.stmt_hits.load(Ordering::Relaxed),
            statement_cache_misses: s.stmt_misses.load(Ordering::Relaxed),
            breaker_transitions,
            breaker_state: (state != usize::MAX).then(|| {
                BREAKER_STATES
                    .get(state)
                    .copied()
                    .unwrap_or("other")
                    .to_owned()
            }),
            leaks_detected: s.leaks_detected.load(Ordering::Relaxed),
            window: Duration::from_secs(WINDOW_SECS),
            window_acquisitions,
            window_timeouts,
        }
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
}

impl PoolManager {
    /// Closes the pool with configuration hash `hash`, or every pool when `None`.
    ///
    /// While it closes, the pool refuses acquisitions at once with
    /// [`Error::PoolClosed`](crate::Error::PoolClosed) (callers already waiting get it too);
    /// connections in use are waited for up to `timeout`; the call returns when every
    /// connection of the pool(s) is closed, or with an error saying how many were still in use
    /// (they are closed as soon as they are given back). Once it has returned, a later use of
    /// the same configuration creates a fresh pool.
    pub async fn close_pool(hash: Option<&str>, timeout: Duration) -> Result<()> {
        let pools: Vec<_> = match hash {
            Some(h) => registered_pool(h).into_iter().collect(),
            None => registered_pools(),
        };
        let closes = pools.iter().map(|p| async move {
            let r = p.close(timeout).await;
            unregister(p);
            r
        });
        let results = futures_util::future::join_all(closes).await;
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    }

    /// Counters of the pool with configuration hash `hash`, if it exists.
    pub fn get_pool_metrics(hash: &str) -> Option<PoolMetrics> {
        registered_pool(hash).map(|p| PoolMetrics::of(&p))
    }

    /// Counters of every open pool.
    pub fn all_pool_metrics() -> Vec<PoolMetrics> {
        registered_pools()
            .iter()
            .map(|p| PoolMetrics::of(p))
            .collect()
    }

    /// Status of every open pool.
    pub fn pool_statuses() -> Vec<PoolStatus> {
        registered_pools()
            .iter()
            .map(|p| PoolStatus::of(p))
            .collect()
    }

    /// Pings one connection of every open pool (an idle one, or one acquired within
    /// min(acquisition timeout, 2 s)), all pools at once, and returns `hash → healthy`.
    /// Results are cached for one second per pool, so a busy health endpoint costs the database
    /// at most one ping per pool per second. Probes do not count in the pools' metrics.
    pub async fn health_check_all_pools() -> HashMap<String, bool> {
        let pools = registered_pools();
        let checks = pools
            .iter()
            .map(|p| async move { (p.hash.clone(), p.health_check().await) });
        futures_util::future::join_all(checks)
            .await
            .into_iter()
            .collect()
    }

    /// Connections of every open pool held for at least `threshold`, longest first, with
    /// where they were acquired.
    pub fn check_for_leaked_connections(threshold: Duration) -> Vec<LeakReport> {
        let mut all: Vec<LeakReport> = registered_pools()
            .iter()
            .flat_map(|p| p.leaks(threshold))
            .collect();
        all.sort_by_key(|r| std::cmp::Reverse(r.held_for));
        all
    }

    /// Sets the housekeeping and recycling tuning of the pool with configuration hash `hash`:
    /// at once if it is open, and for any pool later created for that hash.
    pub fn set_pool_tuning(hash: &str, tuning: PoolTuning) {
        housekeeping::set_tuning(hash, tuning);
    }

    /// The tuning in effect (or to be) for the pool with configuration hash `hash`.
    pub fn pool_tuning(hash: &str) -> PoolTuning {
        registered_pool(hash).map_or_else(|| housekeeping::tuning_for(hash), |p| p.tuning.get())
    }

    /// Every open pool's metrics in the Prometheus text exposition format (version 0.0.4):
    /// counters, gauges and summaries (`quantile` 0.5/0.95/0.99) labelled with `alias`,
    /// `backend` and `hash`. Never contains a password. Serve it at `/metrics`.
    pub fn prometheus_text() -> String {
        super::export::prometheus_text(&registered_pools())
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
}
