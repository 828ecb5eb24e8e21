//! Circuit breaker: stops sending work to a server that keeps failing, and lets a few trial
//! calls through from time to time to find out when it is back.
//!
//! ```text
//!            N infrastructure failures within the window
//!   Closed ─────────────────────────────────────────────▶ Open ──(open_duration elapsed,
//!     ▲                                                    ▲        next call)──┐
//!     │ M successes                        any failure     │                    ▼
//!     └──────────────────────────────── HalfOpen ──────────┘◀───────────────────┘
//! ```

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Default failures that open the breaker: 5.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// Default window those failures must fall in: 60 s.
pub const DEFAULT_FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Default time an open breaker rejects calls before letting trial calls through: 30 s.
pub const DEFAULT_OPEN_DURATION: Duration = Duration::from_secs(30);
/// Default successful trial calls that close a half-open breaker: 3.
pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 3;

/// Settings of a pool's circuit breaker.
///
/// ```
/// use std::time::Duration;
/// use dal::{BreakerConfig, DatabaseConfig};
/// let breaker = BreakerConfig::default()
///     .failure_threshold(3)
///     .failure_window(Duration::from_secs(10))
///     .open_duration(Duration::from_secs(5))
///     .success_threshold(1);
/// let config = DatabaseConfig::new("app").circuit_breaker(breaker);
/// assert_eq!(config.get_circuit_breaker().get_failure_threshold(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    enabled: bool,
    failure_threshold: u32,
    failure_window: Duration,
    open_duration: Duration,
    success_threshold: u32,
}

impl Default for BreakerConfig {
    /// Opens after 5 failures within 60 s, half-opens after 30 s, closes after 3 successes.
    fn default() -> Self {
        BreakerConfig {
            enabled: true,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            failure_window: DEFAULT_FAILURE_WINDOW,
            open_duration: DEFAULT_OPEN_DURATION,
            success_threshold: DEFAULT_SUCCESS_THRESHOLD,
        }
    }
}

impl BreakerConfig {
    /// A breaker that never opens.
    pub fn disabled() -> Self {
        BreakerConfig {
            enabled: false,
            ..BreakerConfig::default()
        }
    }
    /// Infrastructure failures within [`failure_window`](Self::failure_window) that open the
    /// breaker (default 5; values below 1 count as 1).
    pub fn failure_threshold(mut self, n: u32) -> Self {
        self.failure_threshold = n.max(1);
        self
    }
    /// Sliding window in which failures are counted (default 60 s).
    pub fn failure_window(mut self, d: Duration) -> Self {
        self.failure_window = d;
        self
    }
    /// How long an open breaker rejects every call before it half-opens (default 30 s).
    pub fn open_duration(mut self, d: Duration) -> Self {
        self.open_duration = d;
        self
    }
    /// Successful calls while half-open that close the breaker (default 3; values below 1
    /// count as 1).
    pub fn success_threshold(mut self, n: u32) -> Self {
        self.success_threshold = n.max(1);
        self
    }

    /// False for [`BreakerConfig::disabled`].
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }
    /// Failures that open the breaker.
    pub fn get_failure_threshold(&self) -> u32 {
        self.failure_threshold
    }
    /// Window of the failure count.
    pub fn get_failure_window(&self) -> Duration {
        self.failure_window
    }
    /// Time spent open before half-opening.
    pub fn get_open_duration(&self) -> Duration {
        self.open_duration
    }
    /// Successes that close a half-open breaker.
    pub fn get_success_threshold(&self) -> u32 {
        self.success_threshold
    }
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls go through; infrastructure failures are counted.
    Closed,
    /// Calls are rejected at once with [`Error::CircuitOpen`](crate::Error::CircuitOpen).
    Open,
    /// Calls go through as trials: enough successes close the breaker, one failure opens it.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open` (for logs and metrics labels).
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

impl std::fmt::Display for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state change of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// State before.
    pub from: BreakerState,
    /// State after.
    pub to: BreakerState,
}

/// A snapshot of a breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitStatus {
    /// Current state.
    pub state: BreakerState,
    /// Failures counted in the current window (closed state only).
    pub recent_failures: u32,
    /// While open: time left before trial calls are let through.
    pub retry_in: Option<Duration>,
    /// Times the breaker opened (from closed or half-open).
    pub times_opened: u64,
    /// Times it half-opened.
    pub times_half_opened: u64,
    /// Times it closed again after half-opening.
    pub times_closed: u64,
}

/// A circuit breaker (closed → open after repeated infrastructure failures → half-open trials → closed). Every pool has one;
/// it can also guard anything else. Time comes from tokio's clock, so tests can pause it.
///
/// ```
/// use std::time::Duration;
/// use dal::resilience::{BreakerConfig, BreakerState, CircuitBreaker};
/// let b = CircuitBreaker::new(BreakerConfig::default().failure_threshold(2));
/// assert!(b.try_acquire().is_ok());
/// b.on_failure();
/// b.on_failure();
/// assert_eq!(b.state(), BreakerState::Open);
/// assert!(b.try_acquire().is_err());
/// ```
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    /// Mirror of `inner.state` for the lock-free fast path of closed breakers.
    state: AtomicU8,
    inner: Mutex<Inner>,
    opened: AtomicU64,
    half_opened: AtomicU64,
    closed: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    /// Failure instants within the window (closed state), oldest first.
    failures: VecDeque<Instant>,
    opened_at: Option<Instant>,
    /// Successes since half-opening.
    successes: u32,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreaker {
            config,
            state: AtomicU8::new(BreakerState::Closed.to_u8()),
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: VecDeque::new(),
                opened_at: None,
                successes: 0,
            }),
            opened: AtomicU64::new(0),
            half_opened: AtomicU64::new(0),
            closed: AtomicU64::new(0),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state (an open breaker whose time is up still says `Open` until the next
    /// call half-opens it).
    pub fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Asks to make a call. `Err(retry_in)` while open; `Ok` otherwise, with the transition
    /// to half-open when this call is the first after the open period.
    pub fn try_acquire(&self) -> Result<Option<Transition>, Duration> {
        if !self.config.enabled || self.state() != BreakerState::Open {
            return Ok(None);
        }
        let mut inner = self.lock();
        if inner.state != BreakerState::Open {
            return Ok(None);
        }
        let now = Instant::now();
        let opened_at = inner.opened_at.unwrap_or(now);
        let reopen = opened_at + self.config.open_duration;
        if now < reopen {
            return Err(reopen - now);
        }
        inner.successes = 0;
        Ok(Some(self.set(&mut inner, BreakerState::HalfOpen)))
    }

    /// Records a successful call (or one the server answered, even with an error).
    pub fn on_success(&self) -> Option<Transition> {
        if !self.config.enabled || self.state() != BreakerState::HalfOpen {
            return None;
        }
        let mut inner = self.lock();
        if inner.state != BreakerState::HalfOpen {
            return None;
        }
        inner.successes += 1;
        if inner.successes < self.config.success_threshold {
            return None;
        }
        inner.failures.clear();
        inner.opened_at = None;
        Some(self.set(&mut inner, BreakerState::Closed))
    }

    /// Records an infrastructure failure.
    pub fn on_failure(&self) -> Option<Transition> {
        if !self.config.enabled {
            return None;
        }
        let mut inner = self.lock();
        let now = Instant::now();
        match inner.state {
            BreakerState::Closed => {
                let window = self.config.failure_window;
                while inner
                    .failures
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) > window)
                {
                    inner.failures.pop_front();
                }
                inner.failures.push_back(now);
                if inner.failures.len() < self.config.failure_threshold as usize {
                    return None;
                }
                inner.failures.clear();
                inner.opened_at = Some(now);
                Some(self.set(&mut inner, BreakerState::Open))
            }
            BreakerState::HalfOpen => {
                inner.opened_at = Some(now);
                Some(self.set(&mut inner, BreakerState::Open))
            }
            // A call let through before the breaker opened: the open period stands as it is.
            BreakerState::Open => None,
        }
    }

    /// A snapshot of state and counters.
    pub fn status(&self) -> CircuitStatus {
        let inner = self.lock();
        let now = Instant::now();
        let window = self.config.failure_window;
        CircuitStatus {
            state: inner.state,
            recent_failures: inner
                .failures
                .iter()
                .filter(|t| now.saturating_duration_since(**t) <= window)
                .count() as u32,
            retry_in: match (inner.state, inner.opened_at) {
                (BreakerState::Open, Some(at)) => {
                    Some((at + self.config.open_duration).saturating_duration_since(now))
                }
                _ => None,
            },
            times_opened: self.opened.load(Ordering::Relaxed),
            times_half_opened: self.half_opened.load(Ordering::Relaxed),
            times_closed: self.closed.load(Ordering::Relaxed),
        }
    }

    fn set(&self, inner: &mut Inner, to: BreakerState) -> Transition {
        let from = inner.state;
        inner.state = to;
        self.state.store(to.to_u8(), Ordering::Release);
        match to {
            BreakerState::Open => &self.opened,
            BreakerState::HalfOpen => &self.half_opened,
            BreakerState::Closed => &self.closed,
        }
        .fetch_add(1, Ordering::Relaxed);
        Transition { from, to }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state is consistent after every statement under the lock: a panic elsewhere
        // cannot leave it half-updated, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
