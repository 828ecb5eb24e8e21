//! [`PoolManager`]: the process-wide registry of pools, their status and metrics.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{registered_pools, unregister, PoolInner};
use crate::error::{Error, Result, TimeoutKind};

/// Process-wide operations on the shared pools.
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
    /// Connections open now (idle + in use).
    pub size: usize,
    /// Connections lent out now.
    pub in_use: usize,
    /// Connections waiting in the pool.
    pub idle: usize,
    /// True once `close_pool` was called.
    pub closed: bool,
}

/// A snapshot of one pool's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolMetrics {
    /// Configuration hash.
    pub hash: String,
    /// Friendly name.
    pub alias: String,
    /// Successful acquisitions.
    pub acquisitions: u64,
    /// Connections given back.
    pub releases: u64,
    /// Connections lent out now.
    pub in_use: usize,
    /// Most connections lent out at once.
    pub peak_in_use: usize,
    /// Physical connections opened.
    pub connections_created: u64,
    /// Physical connections closed because they were broken, dirty or from a finished runtime.
    pub connections_discarded: u64,
    /// Timeouts by kind.
    pub timeouts: HashMap<TimeoutKind, u64>,
    /// Errors by category (`timeout`, `connection`, `database`, …).
    pub errors: HashMap<String, u64>,
}

impl PoolMetrics {
    fn of(p: &PoolInner) -> Self {
        let s = &p.stats;
        let kinds = [
            TimeoutKind::Acquire,
            TimeoutKind::PoolCreation,
            TimeoutKind::ConnectionCreation,
            TimeoutKind::Query,
        ];
        PoolMetrics {
            hash: p.hash.clone(),
            alias: p.alias.clone(),
            acquisitions: s.acquisitions.load(Ordering::Relaxed),
            releases: s.releases.load(Ordering::Relaxed),
            in_use: p.in_use(),
            peak_in_use: s.peak_in_use.load(Ordering::Relaxed),
            connections_created: s.created.load(Ordering::Relaxed),
            connections_discarded: s.discarded.load(Ordering::Relaxed),
            timeouts: kinds
                .iter()
                .enumerate()
                .map(|(i, k)| (*k, s.timeouts[i].load(Ordering::Relaxed)))
                .collect(),
            errors: s
                .errors
                .lock()
                .map(|m| m.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect())
                .unwrap_or_default(),
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
            closed: p.is_closed(),
        }
    }
}

impl PoolManager {
    /// Closes the pool with configuration hash `hash`, or every pool when `None`.
    ///
    /// New acquisitions are refused at once with [`Error::PoolClosed`]; connections in use are
    /// waited for up to `timeout`; the call returns when every connection of the pool(s) is
    /// closed, or with an error saying how many were still in use. A later use of the same
    /// configuration creates a fresh pool.
    pub async fn close_pool(hash: Option<&str>, timeout: Duration) -> Result<()> {
        let pools: Vec<_> = match hash {
            Some(h) => unregister(h).into_iter().collect(),
            None => registered_pools()
                .into_iter()
                .filter_map(|p| unregister(&p.hash))
                .collect(),
        };
        let mut first_err: Option<Error> = None;
        for p in pools {
            if let Err(e) = p.close(timeout).await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Counters of the pool with configuration hash `hash`, if it exists.
    pub fn get_pool_metrics(hash: &str) -> Option<PoolMetrics> {
        registered_pools()
            .iter()
            .find(|p| p.hash == hash)
            .map(|p| PoolMetrics::of(p))
    }

    /// Status of every open pool.
    pub fn pool_statuses() -> Vec<PoolStatus> {
        registered_pools()
            .iter()
            .map(|p| PoolStatus::of(p))
            .collect()
    }
}
