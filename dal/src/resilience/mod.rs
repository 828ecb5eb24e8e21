//! Resilience: retries with backoff, circuit breakers, and detection of stale connections.
//!
//! Layers around the one statement path ([`Connection`](crate::Connection)'s executor), from
//! the outside in:
//!
//! 1. **Circuit breaker** (one per pool, [`BreakerConfig`]): opens when a large enough share
//!    of enough recent calls failed; while open, acquisitions and statements are rejected at
//!    once with [`Error::CircuitOpen`]. Failures are infrastructure failures: connection
//!    errors, acquisition/creation timeouts, and query timeouts whose cancellation the server
//!    did not confirm. A call is recorded once, after its retries: a read that succeeded on a
//!    fresh connection after its first one was found dead is a success.
//! 2. **Retry** ([`RetryPolicy`], [`classify`]): transient failures of statements outside a
//!    transaction are run again after a jittered exponential delay. Conflicts the server rolled
//!    back (deadlock, serialization failure, lock wait timeout, SQLite BUSY/LOCKED) are retried
//!    for any statement; a lost connection is retried for reads and for statements that never
//!    left the client, on a fresh connection.
//! 3. **Timeout with server-side cancel**: in the executor itself (see `Connection`).
//!
//! Stale connections: after a pool has seen a connection loss, replacement connections are
//! checked with a ping before use, and so is the first write of each checkout for
//! [`STALE_SUSPICION`], so that a write is not sent into a connection that died while idle.

mod breaker;
mod retry;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use breaker::{
    BreakerConfig, BreakerState, CircuitBreaker, CircuitStatus, Transition, DEFAULT_FAILURE_RATE,
    DEFAULT_FAILURE_THRESHOLD, DEFAULT_FAILURE_WINDOW, DEFAULT_HALF_OPEN_CALLS,
    DEFAULT_MAX_OPEN_DURATION, DEFAULT_MINIMUM_CALLS, DEFAULT_OPEN_DURATION,
    DEFAULT_SUCCESS_THRESHOLD,
};
pub use retry::{
    classify, Backoff, FailureClass, RetryPolicy, DEFAULT_BASE_DELAY, DEFAULT_MAX_DELAY,
    DEFAULT_MAX_RETRIES, DEFAULT_RETRY_BUDGET,
};

use crate::error::{Error, Result, TimeoutKind};
use crate::sql::Backend;

/// After a pool saw a connection loss, how long the first write of each checkout is preceded
/// by a ping (a connection that died while idle is then replaced before the write is sent).
pub const STALE_SUSPICION: Duration = Duration::from_secs(60);

/// Per-pool resilience state: the breaker and when a connection was last lost.
#[derive(Debug)]
pub(crate) struct PoolResilience {
    pub breaker: CircuitBreaker,
    /// Milliseconds since `epoch` of the last connection loss, plus one (0: never).
    last_loss: AtomicU64,
    /// Connection losses noted so far.
    losses: AtomicU64,
    epoch: tokio::time::Instant,
}

impl PoolResilience {
    pub(crate) fn new(config: &crate::config::DatabaseConfig) -> Self {
        PoolResilience {
            breaker: CircuitBreaker::new(*config.get_circuit_breaker()),
            last_loss: AtomicU64::new(0),
            losses: AtomicU64::new(0),
            epoch: tokio::time::Instant::now(),
        }
    }

    /// A connection of this pool was found lost.
    pub(crate) fn note_loss(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64 + 1;
        self.last_loss.store(ms, Ordering::Relaxed);
        self.losses.fetch_add(1, Ordering::AcqRel);
    }

    /// Connection losses noted so far: a connection proven alive when this was `n` has not
    /// been proven alive since a later loss while it is still `n`.
    pub(crate) fn losses(&self) -> u64 {
        self.losses.load(Ordering::Acquire)
    }

    /// True when a write on a connection last proven alive at loss count `verified` (`None`:
    /// not on this checkout) should be preceded by a ping.
    pub(crate) fn should_validate(&self, verified: Option<u64>) -> bool {
        self.suspects_stale() && verified != Some(self.losses())
    }

    /// True within [`STALE_SUSPICION`] of a connection loss: idle connections may be dead too.
    pub(crate) fn suspects_stale(&self) -> bool {
        match self.last_loss.load(Ordering::Relaxed) {
            0 => false,
            ms => {
                let since = self
                    .epoch
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms - 1));
                since <= STALE_SUSPICION
            }
        }
    }
}

/// What the resilience layer needs from the pool it guards — its resilience state, its name,
/// its backend, and where breaker transitions are counted — so that this module does not
/// depend on the pool (the pool implements it and holds a [`PoolResilience`]; the dependency
/// runs one way, `pool → resilience`). Implemented for `Arc<G>` too, so callers holding an
/// `Arc` of the pool pass it as it is.
pub(crate) trait Guarded {
    /// The breaker and connection-loss tracking of the guarded pool.
    fn resilience(&self) -> &PoolResilience;
    /// The pool's alias, for logs and [`Error::CircuitOpen`].
    fn alias(&self) -> &str;
    /// The pool's backend, to classify its errors.
    fn backend(&self) -> Backend;
    /// Counts a breaker state change in the pool's metrics (it is logged here).
    fn breaker_transition(&self, to: BreakerState);
}

impl<G: Guarded + ?Sized> Guarded for Arc<G> {
    fn resilience(&self) -> &PoolResilience {
        (**self).resilience()
    }
    fn alias(&self) -> &str {
        (**self).alias()
    }
    fn backend(&self) -> Backend {
        (**self).backend()
    }
    fn breaker_transition(&self, to: BreakerState) {
        (**self).breaker_transition(to);
    }
}

/// Lets a call in, or rejects it at once while the pool's breaker is open.
pub(crate) fn admit(pool: &impl Guarded) -> Result<()> {
    match pool.resilience().breaker.try_acquire() {
        Ok(None) => Ok(()),
        Ok(Some(t)) => {
            report(pool, t);
            Ok(())
        }
        Err(retry_in) => Err(Error::CircuitOpen {
            pool: pool.alias().to_owned(),
            retry_in,
        }),
    }
}

/// True when `e` says the infrastructure failed (and so counts for the breaker).
pub(crate) fn is_infrastructure(backend: Backend, e: &Error) -> bool {
    e.is_infrastructure() || classify(backend, e) == FailureClass::ConnectionLost
}

/// Records the final outcome of one call (after its retries) with the pool's breaker.
/// `connection_usable`: the connection the call ended on is still fit for use — after a query
/// timeout, that means the server confirmed the cancellation (see [`record_error`]).
pub(crate) fn record<T>(pool: &impl Guarded, result: &Result<T>, connection_usable: bool) {
    match result {
        Ok(_) => {
            if let Some(t) = pool.resilience().breaker.on_success() {
                report(pool, t);
            }
        }
        Err(e) => record_error(pool, e, connection_usable),
    }
}

/// Records the end of a call that never got as far as the server (its connection was known
/// lost and could not be replaced here): no signal, but a half-open breaker's trial place is
/// given up.
pub(crate) fn record_ignored(pool: &impl Guarded) {
    pool.resilience().breaker.on_ignored();
}

/// Records a failed acquisition. Waiting in vain for a connection while every connection of
/// the pool is lent out (`all_lent`) is back-pressure, not an infrastructure failure, and is
/// not counted.
pub(crate) fn record_acquire_failure(pool: &impl Guarded, e: &Error, all_lent: bool) {
    if e.timeout_kind() == Some(TimeoutKind::Acquire) && all_lent {
        pool.resilience().breaker.on_ignored();
        return;
    }
    record_error(pool, e, false);
}

/// What one failed call says about the server:
///
/// - a connection error or a timeout is a failure — except a query timeout whose
///   cancellation the server confirmed (the connection is still usable): the statement was
///   slow, the server answered;
/// - a database error is a success: the server answered, whatever it thought of the statement;
/// - anything raised before reaching the server (bad input, closed pool, open circuit) says
///   nothing.
fn record_error(pool: &impl Guarded, e: &Error, connection_usable: bool) {
    let state = pool.resilience();
    let backend = pool.backend();
    let answered_cancel = e.timeout_kind() == Some(TimeoutKind::Query) && connection_usable;
    let transition = if is_infrastructure(backend, e) && !answered_cancel {
        if classify(backend, e) == FailureClass::ConnectionLost {
            state.note_loss();
        }
        state.breaker.on_failure()
    } else if answered_cancel || matches!(e, Error::Database { .. }) {
        state.breaker.on_success()
    } else {
        state.breaker.on_ignored();
        None
    };
    if let Some(t) = transition {
        report(pool, t);
    }
}

/// Logs a breaker state change and has the pool count it in its metrics.
fn report(pool: &impl Guarded, t: Transition) {
    tracing::warn!(
        target: "dal::circuit_breaker",
        alias = %pool.alias(),
        backend = pool.backend().as_str(),
        from = t.from.as_str(),
        to = t.to.as_str(),
        "circuit breaker of pool {} changed from {} to {}",
        pool.alias(),
        t.from,
        t.to
    );
    pool.breaker_transition(t.to);
}
