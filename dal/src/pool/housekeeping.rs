//! The background task of a pool (HikariCP's "housekeeper"): reports leaked connections,
//! closes idle connections above the minimum, retires connections past their maximum lifetime,
//! and reopens connections up to the minimum.
//!
//! One task per pool, spawned on the tokio runtime of the pool's first acquisition. It holds
//! only a `Weak` to the pool between rounds, ends when the pool is closed or dropped, and is
//! respawned by the next acquisition if its runtime shut down.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use super::dropguard::DropGuard;
use super::{CloseReason, PoolInner, PooledRaw};

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
        if let Some(threshold) = tuning.reclaim_leaks {
            self.reclaim(threshold);
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
            let mut keep_above = self.size().saturating_sub(self.bounds().0);
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
        while self.initialized.initialized() && !self.is_closed() && self.size() < self.bounds().0 {
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
