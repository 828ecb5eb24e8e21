//! Health checks: one round trip on one connection of the pool, cached briefly so that a busy
//! health endpoint does not become load on the database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::dropguard::DropGuard;
use super::{recover, PoolInner};

/// How long a health result is reused.
pub(crate) const HEALTH_CACHE: Duration = Duration::from_secs(1);
/// Upper bound for one probe (acquisition plus ping), below the acquisition timeout if that is
/// shorter.
pub(crate) const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl PoolInner {
    /// True when a connection could be had and answered a ping within the probe timeout.
    /// Probes are not counted as acquisitions or timeouts in the pool's metrics.
    pub(crate) async fn health_check(self: &Arc<Self>) -> bool {
        if let Some(ok) = self.cached_health() {
            return ok;
        }
        let ok = self.probe().await;
        *recover(self.health.lock()) = Some((Instant::now(), ok));
        ok
    }

    fn cached_health(&self) -> Option<bool> {
        recover(self.health.lock())
            .filter(|(at, _)| at.elapsed() < HEALTH_CACHE)
            .map(|(_, ok)| ok)
    }

    /// Last health result, whatever its age.
    pub(crate) fn last_health(&self) -> Option<bool> {
        recover(self.health.lock()).map(|(_, ok)| ok)
    }

    async fn probe(&self) -> bool {
        if self.is_closed() {
            return false;
        }
        let limit = self
            .config
            .get_connection_acquisition_timeout()
            .min(HEALTH_PROBE_TIMEOUT);
        let start = Instant::now();
        let mut conn = match self.acquire_inner(start, limit).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(target: "dal::pool", alias = %self.alias, error = %e, "health probe failed");
                return false;
            }
        };
        // From here a cancelled probe gives the permit back and uncounts the connection,
        // which is dropped with this future (its protocol state is unknown mid-ping).
        let cancelled = DropGuard::new(|| {
            self.uncount_dropped();
            self.semaphore.add_permits(1);
        });
        let left = limit.saturating_sub(start.elapsed());
        let ok = matches!(
            tokio::time::timeout(left, conn.raw.ping()).await,
            Ok(Ok(()))
        );
        cancelled.disarm();
        self.give_back_unlent(conn, ok);
        ok
    }
}
