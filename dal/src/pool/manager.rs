//! [`PoolManager`]: the process-wide registry of pools, their status, metrics, health and
//! export.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::observability::prometheus_text;
use super::{
    registered_groups, registered_pools, registered_pools_with_hash, unregister, LeakReport,
    PoolInner, PoolMetrics, PoolStatus, PoolTuning,
};
use crate::error::Result;

/// Process-wide operations on the shared pools.
///
/// A pool serves one configuration: its [`hash`] plus its password. The hash leaves the
/// password out (it is safe to show), so configurations that differ only in their password —
/// a password rotation, or a wrong password somewhere in the process — have the same hash but
/// separate pools. Everything here that takes or reports a hash treats the pools with that hash
/// as one configuration:
///
/// * [`close_pool(Some(hash), …)`](Self::close_pool) closes every pool with that hash;
/// * [`get_pool_metrics`](Self::get_pool_metrics), [`all_pool_metrics`](Self::all_pool_metrics),
///   [`pool_statuses`](Self::pool_statuses) and [`prometheus_text`](Self::prometheus_text)
///   report one entry (one series) per hash, summed over its pools (see [`PoolMetrics`]);
/// * [`health_check_all_pools`](Self::health_check_all_pools) reports a hash healthy only if
///   every pool with that hash is;
/// * [`set_pool_tuning`](Self::set_pool_tuning) applies to every open pool with that hash.
///
/// With one pool per hash (the usual case) all of this is simply that pool. To see or close
/// exactly the pool of one [`Database`](crate::Database), use its own methods
/// ([`pool_metrics`](crate::Database::pool_metrics), [`pool_status`](crate::Database::pool_status),
/// [`close`](crate::Database::close), …).
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

/// `hash → healthy` from one result per pool: a hash is healthy only if all its pools are.
fn healthy_by_hash(results: impl IntoIterator<Item = (String, bool)>) -> HashMap<String, bool> {
    let mut out: HashMap<String, bool> = HashMap::new();
    for (hash, ok) in results {
        *out.entry(hash).or_insert(true) &= ok;
    }
    out
}

/// Closes `pools` (each waiting up to `timeout`) and takes them out of the registry; the first
/// error, if any.
pub(crate) async fn close_pools(pools: &[Arc<PoolInner>], timeout: Duration) -> Result<()> {
    let closes = pools.iter().map(|p| async move {
        let r = p.close(timeout).await;
        unregister(p);
        r
    });
    let results = futures_util::future::join_all(closes).await;
    results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
}

impl PoolManager {
    /// Closes the pools with configuration hash `hash` — every one of them, whatever its
    /// password — or every pool when `None`. ([`Database::close`](crate::Database::close)
    /// closes only that database's own pool.)
    ///
    /// While it closes, the pool refuses acquisitions at once with
    /// [`Error::PoolClosed`](crate::Error::PoolClosed) (callers already waiting get it too);
    /// connections in use are waited for up to `timeout`; the call returns when every
    /// connection of the pool(s) is closed, or with an error saying how many were still in use
    /// (they are closed as soon as they are given back). Once it has returned, a later use of
    /// the same configuration creates a fresh pool.
    pub async fn close_pool(hash: Option<&str>, timeout: Duration) -> Result<()> {
        let pools: Vec<_> = match hash {
            Some(h) => registered_pools_with_hash(h),
            None => registered_pools(),
        };
        close_pools(&pools, timeout).await
    }

    /// Counters of the open pools with configuration hash `hash`, if there is one: that pool's,
    /// or, when configurations differing only in their password have several, their sum (see
    /// [`PoolMetrics`]).
    pub fn get_pool_metrics(hash: &str) -> Option<PoolMetrics> {
        PoolMetrics::of_group(&registered_pools_with_hash(hash))
    }

    /// Counters of every open pool: one entry per configuration hash (pools with the same hash
    /// summed, as in [`get_pool_metrics`](Self::get_pool_metrics)).
    pub fn all_pool_metrics() -> Vec<PoolMetrics> {
        registered_groups()
            .iter()
            .filter_map(|g| PoolMetrics::of_group(g))
            .collect()
    }

    /// Status of every open pool: one entry per configuration hash (pools with the same hash
    /// summed).
    pub fn pool_statuses() -> Vec<PoolStatus> {
        registered_groups()
            .iter()
            .filter_map(|g| PoolStatus::of_group(g))
            .collect()
    }

    /// Pings one connection of every open pool (an idle one, or one acquired within
    /// min(acquisition timeout, 2 s)), all pools at once, and returns `hash → healthy`.
    /// Results are cached for one second per pool, so a busy health endpoint costs the database
    /// at most one ping per pool per second. Probes do not count in the pools' metrics.
    ///
    /// A hash is healthy only if every pool with that hash is (with several pools, i.e.
    /// configurations that differ only in their password, one failing — say, a wrong
    /// password — makes the hash unhealthy).
    pub async fn health_check_all_pools() -> HashMap<String, bool> {
        let pools = registered_pools();
        let checks = pools
            .iter()
            .map(|p| async move { (p.hash.clone(), p.health_check().await) });
        healthy_by_hash(futures_util::future::join_all(checks).await)
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

    /// Sets the housekeeping and recycling tuning of the open pools with configuration hash
    /// `hash` (every one of them, whatever its password), at once.
    ///
    /// Tuning is held by each pool, not by the hash: a pool created later for that hash starts
    /// from the tuning of an open pool with the same hash, else from the tuning last given to
    /// the [`Database`](crate::Database) that creates it
    /// ([`Database::set_pool_tuning`](crate::Database::set_pool_tuning), which also creates its
    /// pool, without connecting, so that it always takes effect), else from the defaults. Once every
    /// pool of a hash is closed, nothing of this call remains.
    pub fn set_pool_tuning(hash: &str, tuning: PoolTuning) {
        for pool in registered_pools_with_hash(hash) {
            pool.tuning.set(tuning);
        }
    }

    /// The tuning of the open pools with configuration hash `hash` (they share it), or the
    /// defaults when none is open.
    pub fn pool_tuning(hash: &str) -> PoolTuning {
        registered_pools_with_hash(hash)
            .first()
            .map_or_else(PoolTuning::default, |p| p.tuning.get())
    }

    /// Every open pool's metrics in the Prometheus text exposition format (version 0.0.4):
    /// counters, gauges and summaries (`quantile` 0.5/0.95/0.99) labelled with `alias`,
    /// `backend` and `hash`; one series per hash (pools with the same hash summed, as in
    /// [`get_pool_metrics`](Self::get_pool_metrics); `dal_pool_healthy` is 0 if any of them
    /// failed its last check). Never contains a password, nor anything derived from one. Serve
    /// it at `/metrics`.
    pub fn prometheus_text() -> String {
        prometheus_text(&registered_groups())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_healthy_only_if_all_its_pools_are() {
        let h = |s: &str| s.to_owned();
        let out = healthy_by_hash([
            (h("one"), true),
            (h("mixed"), true),
            (h("mixed"), false),
            (h("mixed"), true),
            (h("down"), false),
        ]);
        assert_eq!(out.len(), 3);
        assert!(out["one"]);
        assert!(!out["mixed"]);
        assert!(!out["down"]);
    }
}
