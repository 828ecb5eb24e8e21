//! Acquisition: a permit, then an idle connection (checked if it idled long) or a new one,
//! all within the acquisition deadline.

use std::panic::Location;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{SemaphorePermit, TryAcquireError};

use super::dropguard::DropGuard;
use super::home::{current_runtime, Home};
use super::observability::{StatementsSeen, NOT_LENT};
use super::{housekeeping, CloseReason, PoolInner, PooledRaw};
use crate::backend::RawConn;
use crate::error::{Error, Result, TimeoutKind};

/// True for the timeouts that mean "no connection in time" (what `timeout_rate()` counts).
fn is_acquisition_timeout(e: &Error) -> bool {
    matches!(
        e.timeout_kind(),
        Some(TimeoutKind::Acquire | TimeoutKind::PoolCreation | TimeoutKind::ConnectionCreation)
    )
}

impl PoolInner {
    /// Gets a connection within the acquisition timeout, recording `location` as the place
    /// that holds it (for leak reports).
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        location: &'static Location<'static>,
    ) -> Result<PooledRaw> {
        housekeeping::ensure_running(self);
        let start = Instant::now();
        let limit = self.config.get_connection_acquisition_timeout();
        let result = self.acquire_inner(start, limit).await;
        let end = Instant::now();
        match result {
            Ok(mut conn) => {
                let waited = end.saturating_duration_since(start);
                self.stats.window.record(end, false);
                self.stats.acquisitions.fetch_add(1, Ordering::Relaxed);
                self.stats.wait.record(waited);
                let now = self.in_use.fetch_add(1, Ordering::AcqRel) + 1;
                self.stats.peak_in_use.fetch_max(now, Ordering::Relaxed);
                self.lend(&mut conn, end, location);
                #[cfg(feature = "metrics")]
                self.facade.acquired(waited);
                Ok(conn)
            }
            Err(e) => {
                self.stats.window.record(end, is_acquisition_timeout(&e));
                self.stats.record_error(&e);
                #[cfg(feature = "metrics")]
                self.facade.error(&e);
                Err(e)
            }
        }
    }

    /// Takes a permit and a connection (idle or new) within `limit` from `start`. Records no
    /// statistics: [`acquire`](Self::acquire) and the health probe do that (or not).
    ///
    /// The permit travels with the connection: it is given back by `release` (or
    /// `release_broken`, `give_back_unlent`). Until a connection is handed out, tokio's own
    /// permit guard gives it back if this fails or is cancelled.
    pub(super) async fn acquire_inner(&self, start: Instant, limit: Duration) -> Result<PooledRaw> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let here = current_runtime();
        if self.driver.runtime_bound()
            && here.is_some()
            && here == crate::blocking::library_runtime_id()
        {
            // Used from blocking code: from now on open connections where blocking code and
            // every runtime can use them.
            self.open_on_library.store(true, Ordering::Relaxed);
        }
        self.initialize(start, limit).await?;
        let permit = self.take_permit(start, limit).await?;
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let conn = match self.checkout_idle(here, start, limit).await? {
            Some(conn) => conn,
            None => {
                let remaining = limit.saturating_sub(start.elapsed());
                self.open_within(remaining, start, limit).await?
            }
        };
        permit.forget();
        Ok(conn)
    }

    /// First use: sets the pool up (opens `min` connections) under `pool_creation_timeout`,
    /// itself inside the acquisition deadline.
    async fn initialize(&self, start: Instant, limit: Duration) -> Result<()> {
        if self.initialized.initialized() {
            return Ok(());
        }
        let creation = self.config.get_pool_creation_timeout();
        let bound = creation.min(limit);
        match tokio::time::timeout(bound, self.initialized.get_or_try_init(|| self.warm_up())).await
        {
            Ok(done) => done.map(|_| ()),
            Err(_) if creation <= limit => Err(Error::timeout(
                TimeoutKind::PoolCreation,
                creation,
                start.elapsed(),
            )),
            Err(_) => Err(Error::timeout(TimeoutKind::Acquire, limit, start.elapsed())),
        }
    }

    /// A permit at once when one is free; otherwise waits in line (FIFO) until the deadline,
    /// counted in `waiting` meanwhile.
    async fn take_permit(&self, start: Instant, limit: Duration) -> Result<SemaphorePermit<'_>> {
        match self.semaphore.try_acquire() {
            Ok(permit) => Ok(permit),
            Err(TryAcquireError::Closed) => Err(self.closed_error()),
            Err(TryAcquireError::NoPermits) => {
                self.waiting.fetch_add(1, Ordering::Relaxed);
                let _waiting = DropGuard::new(|| {
                    self.waiting.fetch_sub(1, Ordering::Relaxed);
                });
                let remaining = limit.saturating_sub(start.elapsed());
                match tokio::time::timeout(remaining, self.semaphore.acquire()).await {
                    Ok(Ok(permit)) => Ok(permit),
                    Ok(Err(_)) => Err(self.closed_error()),
                    Err(_) => Err(Error::timeout(TimeoutKind::Acquire, limit, start.elapsed())),
                }
            }
        }
    }

    /// Pops idle connections until one is fit to lend on runtime `here`: its socket usable
    /// here, younger than `max_lifetime`, and answering a ping if it idled longer than
    /// `validate_after_idle`. Closes the unfit ones. `None` when the idle stack ran out.
    async fn checkout_idle(
        &self,
        here: Option<tokio::runtime::Id>,
        start: Instant,
        limit: Duration,
    ) -> Result<Option<PooledRaw>> {
        let tuning = self.tuning.get();
        while let Some(conn) = self.pop_idle() {
            if !conn.home.usable_on(here) {
                // Its socket belongs to another user runtime (maybe finished, maybe not being
                // driven now): not usable here. Replace it with one every runtime can use.
                self.open_on_library.store(true, Ordering::Relaxed);
                self.close_conn(conn, CloseReason::RuntimeMismatch);
                continue;
            }
            if conn.epoch < self.epoch() {
                // Opened before the server changed role (failover): maybe on the wrong server.
                self.close_conn(conn, CloseReason::Discard);
                continue;
            }
            if tuning
                .max_lifetime
                .is_some_and(|l| start.saturating_duration_since(conn.created_at) >= l)
            {
                self.close_conn(conn, CloseReason::Lifetime);
                continue;
            }
            let idle_for = start.saturating_duration_since(conn.idle_since);
            if tuning.validate_after_idle.is_none_or(|v| idle_for < v) {
                // Idled briefly: lent without a round trip.
                return Ok(Some(conn));
            }
            let remaining = limit.saturating_sub(start.elapsed());
            if let Some(conn) = self.validate(conn, remaining).await {
                return Ok(Some(conn));
            }
            if start.elapsed() >= limit {
                return Err(Error::timeout(TimeoutKind::Acquire, limit, start.elapsed()));
            }
        }
        Ok(None)
    }

    /// One round trip to make sure the server still knows a connection that idled long: the
    /// connection if it answered within `within`; otherwise it is closed and `None` returned.
    async fn validate(&self, mut conn: PooledRaw, within: Duration) -> Option<PooledRaw> {
        // Cancelled mid-ping, the connection's protocol state is unknown: it is dropped with
        // this future (which closes its socket; the server cleans up) and uncounted here.
        let dropped = DropGuard::new(|| self.uncount_dropped());
        let alive = matches!(
            tokio::time::timeout(within, conn.raw.ping()).await,
            Ok(Ok(()))
        );
        dropped.disarm();
        if alive {
            Some(conn)
        } else {
            self.close_conn(conn, CloseReason::Validation);
            None
        }
    }

    fn closed_error(&self) -> Error {
        Error::PoolClosed(format!(
            "the pool of {} is closed or closing (close_pool was called): it lends no more connections",
            self.alias
        ))
    }

    fn pop_idle(&self) -> Option<PooledRaw> {
        self.state().idle.pop()
    }

    async fn warm_up(&self) -> Result<()> {
        self.size_from_server().await?;
        for _ in self.idle_count()..self.bounds().0 {
            // Bounded by connection_creation_timeout here, and by the caller's
            // pool_creation_timeout around the whole warm-up.
            let conn = self
                .open_within(Duration::MAX, Instant::now(), Duration::MAX)
                .await?;
            self.push_idle(conn);
        }
        Ok(())
    }

    /// With `expected_app_servers` (and no explicit pool size): reads the server's
    /// `max_connections` on the pool's first connection (kept idle) and sets the pool's
    /// maximum from it (see [`DatabaseConfig::expected_app_servers`](crate::DatabaseConfig::expected_app_servers)).
    async fn size_from_server(&self) -> Result<()> {
        if self.config.auto_pool_max(100).is_none() {
            return Ok(());
        }
        let Some(sql) = crate::backend::dialect(self.backend).max_connections_sql() else {
            return Ok(());
        };
        let mut conn = self
            .open_within(Duration::MAX, Instant::now(), Duration::MAX)
            .await?;
        let answer = conn.raw.query(sql, &[]).await;
        self.push_idle(conn);
        let limit = answer?
            .rows
            .first()
            .and_then(|r| r.get("n").cloned())
            .and_then(|v| match v {
                crate::value::Value::Int(n) => usize::try_from(n).ok(),
                _ => None,
            })
            .ok_or_else(|| Error::Internal("the server did not say its max_connections".into()))?;
        if let Some(max) = self.config.auto_pool_max(limit) {
            tracing::info!(
                target: "dal::pool",
                alias = %self.alias,
                max_connections = limit,
                pool_max = max,
                "pool sized from the server's max_connections and expected_app_servers"
            );
            self.resize(max);
        }
        Ok(())
    }

    /// Opens a connection, bounded by `connection_creation_timeout` and by `remaining` (what is
    /// left of the caller's acquisition deadline `limit` that started at `start`).
    pub(super) async fn open_within(
        &self,
        remaining: Duration,
        start: Instant,
        limit: Duration,
    ) -> Result<PooledRaw> {
        let creation = self.config.get_connection_creation_timeout();
        let bound = creation.min(remaining);
        let epoch = self.epoch();
        self.size.fetch_add(1, Ordering::SeqCst);
        // Counted from now on; uncounted if opening fails or this future is dropped.
        let counted = DropGuard::new(|| {
            self.size.fetch_sub(1, Ordering::SeqCst);
            self.wake_closer();
        });
        let (raw, home) = match tokio::time::timeout(bound, self.connect()).await {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => return Err(e),
            Err(_) if creation < remaining => {
                return Err(Error::timeout(
                    TimeoutKind::ConnectionCreation,
                    creation,
                    start.elapsed(),
                ))
            }
            Err(_) => return Err(Error::timeout(TimeoutKind::Acquire, limit, start.elapsed())),
        };
        counted.disarm();
        self.stats.created.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.facade.created();
        let now = Instant::now();
        Ok(PooledRaw {
            raw,
            home,
            created_at: now,
            idle_since: now,
            lend: NOT_LENT,
            seen: StatementsSeen::default(),
            epoch,
            reclaimed: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        })
    }

    /// Opens one physical connection and says where its socket lives: on the library's runtime
    /// once the pool is in that mode ([`open_on_library`](Self::open_on_library)), on the
    /// current runtime otherwise (and if the library's runtime cannot be started).
    async fn connect(&self) -> Result<(Box<dyn RawConn>, Home)> {
        if self.driver.runtime_bound() && self.open_on_library.load(Ordering::Relaxed) {
            let library = crate::blocking::library_runtime_id();
            if library.is_none() || current_runtime() != library {
                if let Ok(rt) = crate::blocking::library_runtime() {
                    let driver = self.driver.clone();
                    let task = rt.spawn(async move { driver.connect().await });
                    // Aborted if we are cancelled (acquisition dropped or timed out); a no-op
                    // once it has finished.
                    let abort = task.abort_handle();
                    let _abort = DropGuard::new(move || abort.abort());
                    return match task.await {
                        Ok(opened) => opened.map(|raw| (raw, Home::Library)),
                        Err(e) => Err(Error::Internal(format!(
                            "the task opening a connection on the library runtime failed: {e}"
                        ))),
                    };
                }
            }
        }
        let raw = self.driver.connect().await?;
        Ok((raw, Home::here(self.driver.as_ref())))
    }
}
