//! Retry policy: exponential backoff with full jitter, a retry count and a time budget, and the
//! per-backend classification that decides which failures are worth another attempt.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::Error;
use crate::sql::Backend;

/// Default number of retries after the first attempt: 3.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// Default delay ceiling of the first retry: 100 ms (it doubles at every retry).
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(100);
/// Default cap on one delay: 10 s.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(10);
/// Default time budget of one call, first attempt included: 30 s.
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(30);

/// How transient failures of one statement are retried.
///
/// Retry `n` (0-based) waits a random delay in `[0, min(max_delay, base_delay * 2^n)]` ("full
/// jitter"), so that clients that failed together do not come back together. No retry starts
/// once it would end past `budget`, counted from the start of the first attempt.
///
/// ```
/// use std::time::Duration;
/// use dal::{DatabaseConfig, RetryPolicy};
/// let policy = RetryPolicy::default()
///     .max_retries(5)
///     .base_delay(Duration::from_millis(50))
///     .budget(Duration::from_secs(5));
/// let config = DatabaseConfig::new("app").retry_policy(policy);
/// assert_eq!(config.get_retry_policy().get_max_retries(), 5);
/// // Turn retries off:
/// let config = config.retry_policy(RetryPolicy::none());
/// assert_eq!(config.get_retry_policy().get_max_retries(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    base_delay: Duration,
    max_delay: Duration,
    budget: Duration,
}

impl Default for RetryPolicy {
    /// 3 retries, 100 ms base delay, 10 s cap, 30 s budget.
    fn default() -> Self {
        RetryPolicy {
            max_retries: DEFAULT_MAX_RETRIES,
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            budget: DEFAULT_RETRY_BUDGET,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy::default().max_retries(0)
    }
    /// Retries after the first attempt (default 3; 0 disables retrying).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }
    /// Delay ceiling of the first retry; it doubles at each further retry (default 100 ms).
    pub fn base_delay(mut self, d: Duration) -> Self {
        self.base_delay = d;
        self
    }
    /// Cap on any one delay (default 10 s).
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }
    /// Total time one call may spend, attempts and delays together, before no further retry
    /// is started (default 30 s). An attempt already running is not cut short by the budget:
    /// it ends at its own timeouts.
    pub fn budget(mut self, d: Duration) -> Self {
        self.budget = d;
        self
    }

    /// Retries after the first attempt.
    pub fn get_max_retries(&self) -> u32 {
        self.max_retries
    }
    /// Delay ceiling of the first retry.
    pub fn get_base_delay(&self) -> Duration {
        self.base_delay
    }
    /// Cap on one delay.
    pub fn get_max_delay(&self) -> Duration {
        self.max_delay
    }
    /// Time budget of one call.
    pub fn get_budget(&self) -> Duration {
        self.budget
    }

    /// The largest delay retry `retry` (0-based) may wait: `min(max_delay, base_delay * 2^retry)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let p = dal::RetryPolicy::default();
    /// assert_eq!(p.delay_ceiling(0), Duration::from_millis(100));
    /// assert_eq!(p.delay_ceiling(3), Duration::from_millis(800));
    /// assert_eq!(p.delay_ceiling(40), Duration::from_secs(10));
    /// ```
    pub fn delay_ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.max_delay)
    }

    /// The delays of one call's retries, starting now.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            policy: *self,
            retries: 0,
            started: tokio::time::Instant::now(),
            rng: XorShift::seeded(),
        }
    }
}

/// The retry schedule of one call: ask [`next_delay`](Self::next_delay) after each failure.
///
/// Time is read from tokio's clock, so a test with paused time drives it without sleeping.
#[derive(Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    retries: u32,
    started: tokio::time::Instant,
    rng: XorShift,
}

impl Backoff {
    /// How long to wait before the next attempt, or `None` when no retry is left: the retry
    /// count is used up, or waiting would end past the budget.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.retries >= self.policy.max_retries {
            return None;
        }
        let delay = self.rng.up_to(self.policy.delay_ceiling(self.retries));
        if self.started.elapsed().saturating_add(delay) > self.policy.budget {
            return None;
        }
        self.retries += 1;
        Some(delay)
    }

    /// Retries granted so far.
    pub fn retries(&self) -> u32 {
        self.retries
    }
}

/// A small xorshift generator: jitter needs spread, not cryptographic quality.
#[derive(Debug)]
struct XorShift(u64);

impl XorShift {
    fn seeded() -> Self {
        static SEQ: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        // splitmix64 of a per-process sequence mixed with the clock: distinct per call.
        let mut z = SEQ
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(nanos);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `[0, max]`.
    fn up_to(&mut self, max: Duration) -> Duration {
        let max = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        let n = match max.checked_add(1) {
            Some(range) => self.next() % range,
            None => self.next(),
        };
        Duration::from_nanos(n)
    }
}

/// What a failure says about running the statement again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureClass {
    /// Running it again would fail the same way, or must not be done blindly: errors in the
    /// statement or its data (syntax, constraint, type, permission), timeouts, API misuse.
    Permanent,
    /// The server gave the statement up because of a conflict with concurrent work and
    /// guarantees it had no effect: deadlock, serialization failure, lock wait timeout, SQLite
    /// BUSY/LOCKED. Another attempt may succeed.
    Conflict,
    /// The connection was lost or the server is going away. A statement in flight may or may
    /// not have taken effect; one that was never sent certainly did not.
    ConnectionLost,
}

impl FailureClass {
    /// True for [`Conflict`](Self::Conflict) and [`ConnectionLost`](Self::ConnectionLost).
    pub fn is_transient(self) -> bool {
        !matches!(self, FailureClass::Permanent)
    }
}

/// Classifies `error` as returned by a `backend` connection.
///
/// | backend | [`Conflict`](FailureClass::Conflict) | [`ConnectionLost`](FailureClass::ConnectionLost) |
/// |---|---|---|
/// | every backend | — | [`Error::Connection`] (I/O error, reset, closed socket, and the server codes below, which the driver-error mapping turns into `Error::Connection`) |
/// | PostgreSQL (SQLSTATE) | `40001` serialization failure, `40P01` deadlock | class `08` (connection exception), `57P01` admin shutdown, `57P02` crash shutdown, `57P03` cannot connect now |
/// | MySQL/MariaDB (error number) | `1213` deadlock, `1205` lock wait timeout | `2006` server gone away, `2013` lost connection during query, `1053` server shutdown, `1927` connection killed, `4031` inactivity disconnect |
/// | SQLite (result code) | `5` BUSY, `6` LOCKED and their extended codes (`261`, `517`, `773`, `262`, `518`, …) | — |
///
/// Everything else is [`Permanent`](FailureClass::Permanent), timeouts included: a statement
/// that ran out of time is not run again.
///
/// ```
/// use dal::{Backend, Error};
/// use dal::resilience::{classify, FailureClass};
/// use dal::DbErrorKind;
/// let deadlock = Error::Database { code: Some("40P01".into()), message: "deadlock".into(), constraint: None, kind: DbErrorKind::Deadlock };
/// let pg: Backend = "postgres".parse()?;
/// assert_eq!(classify(pg, &deadlock), FailureClass::Conflict);
/// let syntax = Error::Database { code: Some("42601".into()), message: "syntax".into(), constraint: None, kind: DbErrorKind::Other };
/// assert_eq!(classify(pg, &syntax), FailureClass::Permanent);
/// # Ok::<(), dal::Error>(())
/// ```
pub fn classify(backend: Backend, error: &Error) -> FailureClass {
    match error {
        Error::Connection(_) => FailureClass::ConnectionLost,
        Error::Database {
            code: Some(code),
            message,
            constraint,
            kind,
        } => {
            // The backend's dialect holds its codes; an error built by hand with only a code
            // is classified the same way as one the driver reported.
            let dialect = crate::backend::dialect(backend);
            if dialect.session_ended(code) {
                return FailureClass::ConnectionLost;
            }
            let (from_code, _) = dialect.error_kind(code, message, constraint.as_deref());
            if kind.is_conflict() || from_code.is_conflict() {
                FailureClass::Conflict
            } else {
                FailureClass::Permanent
            }
        }
        Error::Database { kind, .. } if kind.is_conflict() => FailureClass::Conflict,
        _ => FailureClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_bounds() {
        let mut rng = XorShift::seeded();
        for _ in 0..10_000 {
            assert!(rng.up_to(Duration::from_millis(7)) <= Duration::from_millis(7));
        }
        assert_eq!(rng.up_to(Duration::ZERO), Duration::ZERO);
        let _ = rng.up_to(Duration::MAX);
    }

    #[test]
    fn two_schedules_do_not_share_their_jitter() {
        let a: Vec<u64> = (0..8).map(|_| XorShift::seeded().next()).collect();
        let mut b = a.clone();
        b.dedup();
        assert_eq!(a.len(), b.len());
    }
}
