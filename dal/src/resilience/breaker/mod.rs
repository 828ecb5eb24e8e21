//! Circuit breaker: stops sending work to a server that is failing, and lets a trial call
//! through from time to time to find out when it is back.
//!
//! ```text
//!        failure rate ≥ failure_rate over ≥ minimum_calls calls
//!        (and ≥ failure_threshold failures) within failure_window
//!   Closed ─────────────────────────────────────────────────────▶ Open ──(open period over,
//!     ▲                                                            ▲       next call)──┐
//!     │ success_threshold successes           a failure: open again │                   ▼
//!     └────────────────────────────────── HalfOpen ────────────────┘◀──────────────────┘
//!                                      (half_open_calls trials at a time)
//! ```
//!
//! While closed, every call's outcome is counted in a sliding window of time buckets held in
//! atomics: the fast path (closed, recording a success) takes no lock. Counting a *rate* over
//! a minimum number of calls, rather than failures alone, keeps a few dead connections or slow
//! statements on a busy, healthy server from being taken for an outage.
//!
//! `config` holds the settings and their defaults, `window` the lock-free sliding window of
//! call outcomes; the state machine is here.

mod config;
mod window;

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub use config::{
    BreakerConfig, BreakerState, CircuitStatus, Transition, DEFAULT_FAILURE_RATE,
    DEFAULT_FAILURE_THRESHOLD, DEFAULT_FAILURE_WINDOW, DEFAULT_HALF_OPEN_CALLS,
    DEFAULT_MAX_OPEN_DURATION, DEFAULT_MINIMUM_CALLS, DEFAULT_OPEN_DURATION,
    DEFAULT_SUCCESS_THRESHOLD,
};
use window::Window;

/// A circuit breaker (closed → open when too many calls fail → half-open trials → closed).
/// Every pool has one; it can also guard anything else: ask [`try_acquire`](Self::try_acquire)
/// before a call, report its end with [`on_success`](Self::on_success),
/// [`on_failure`](Self::on_failure) or [`on_ignored`](Self::on_ignored). Time comes from
/// tokio's clock, so tests can pause it.
///
/// ```
/// use std::time::Duration;
/// use dal::resilience::{BreakerConfig, BreakerState, CircuitBreaker};
/// let b = CircuitBreaker::new(BreakerConfig::default().minimum_calls(4).failure_threshold(2));
/// assert!(b.try_acquire().is_ok());
/// b.on_success();
/// b.on_success();
/// b.on_failure();
/// assert_eq!(b.state(), BreakerState::Closed); // 1 failure of 3 calls: too few calls
/// b.on_failure();
/// assert_eq!(b.state(), BreakerState::Open); // 2 of 4: 50 %
/// assert!(b.try_acquire().is_err());
/// ```
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    /// Mirror of `inner.state` for the lock-free fast path of closed breakers.
    state: AtomicU8,
    window: Window,
    inner: Mutex<Inner>,
    opened: AtomicU64,
    half_opened: AtomicU64,
    closed: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    /// When the current open period started, and how long it is.
    opened_at: Option<Instant>,
    period: Duration,
    /// When the breaker first opened in the current outage (reset when it closes).
    outage_since: Option<Instant>,
    /// Successes since half-opening.
    successes: u32,
    /// Callers let through as trials while half-open, with when.
    trials: Vec<(Caller, Instant)>,
}

/// Who is calling: a tokio task, or a thread outside any task (the blocking API's
/// `block_on`). A caller that borrowed a connection as a trial keeps its place for the
/// statements it then runs on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Task(tokio::task::Id),
    Thread(std::thread::ThreadId),
}

impl Caller {
    fn current() -> Caller {
        match tokio::task::try_id() {
            Some(id) => Caller::Task(id),
            None => Caller::Thread(std::thread::current().id()),
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreaker {
            config,
            state: AtomicU8::new(BreakerState::Closed.to_u8()),
            window: Window::new(config.failure_window),
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                opened_at: None,
                period: config.open_duration,
                outage_since: None,
                successes: 0,
                trials: Vec::new(),
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

    /// Asks to make a call. `Ok` while closed. While open, `Err(retry_in)`; the first call
    /// after the open period half-opens the breaker (`Ok` with that transition) and is the
    /// first trial. While half-open, `Ok` for a caller that holds a trial place or gets a free
    /// one, `Err` for the others.
    pub fn try_acquire(&self) -> Result<Option<Transition>, Duration> {
        if !self.config.enabled || self.state() == BreakerState::Closed {
            return Ok(None);
        }
        let mut inner = self.lock();
        let now = Instant::now();
        match inner.state {
            BreakerState::Closed => Ok(None),
            BreakerState::Open => {
                let opened_at = inner.opened_at.unwrap_or(now);
                match opened_at.checked_add(inner.period) {
                    Some(reopen) if now < reopen => return Err(reopen - now),
                    Some(_) => {}
                    None => return Err(inner.period),
                }
                inner.successes = 0;
                inner.trials.clear();
                inner.trials.push((Caller::current(), now));
                Ok(Some(self.set(&mut inner, BreakerState::HalfOpen)))
            }
            BreakerState::HalfOpen => {
                let me = Caller::current();
                // A trial that has not reported within one open period is presumed lost.
                let lease = inner.period;
                inner
                    .trials
                    .retain(|(_, at)| now.saturating_duration_since(*at) < lease);
                if inner.trials.iter().any(|(c, _)| *c == me) {
                    return Ok(None);
                }
                if inner.trials.len() < self.config.half_open_calls as usize {
                    inner.trials.push((me, now));
                    return Ok(None);
                }
                let oldest = inner.trials.iter().map(|(_, at)| *at).min().unwrap_or(now);
                let free_in = oldest
                    .checked_add(lease)
                    .map_or(lease, |t| t.saturating_duration_since(now));
                Err(free_in.max(Duration::from_millis(1)))
            }
        }
    }

    /// Records a successful call (or one the server answered, even with an error).
    pub fn on_success(&self) -> Option<Transition> {
        if !self.config.enabled {
            return None;
        }
        match self.state() {
            BreakerState::Closed => {
                self.window.record(false);
                None
            }
            // A call let in before the breaker opened: the open period stands as it is.
            BreakerState::Open => None,
            BreakerState::HalfOpen => {
                let mut inner = self.lock();
                if inner.state != BreakerState::HalfOpen {
                    return None;
                }
                forget_trial(&mut inner);
                inner.successes += 1;
                if inner.successes < self.config.success_threshold {
                    return None;
                }
                inner.opened_at = None;
                inner.outage_since = None;
                inner.period = self.config.open_duration;
                inner.trials.clear();
                // A fresh start: what was counted before the outage says nothing now.
                self.window.clear();
                Some(self.set(&mut inner, BreakerState::Closed))
            }
        }
    }

    /// Records a failed call (an infrastructure failure).
    pub fn on_failure(&self) -> Option<Transition> {
        if !self.config.enabled {
            return None;
        }
        match self.state() {
            BreakerState::Closed => {
                let (calls, failures) = self.window.record(true);
                if !self.trips(calls, failures) {
                    return None;
                }
                let mut inner = self.lock();
                if inner.state != BreakerState::Closed {
                    return None;
                }
                let now = Instant::now();
                inner.opened_at = Some(now);
                inner.outage_since = Some(now);
                inner.period = self.config.open_duration;
                self.window.clear();
                Some(self.set(&mut inner, BreakerState::Open))
            }
            // A call let in before the breaker opened: the open period stands as it is.
            BreakerState::Open => None,
            BreakerState::HalfOpen => {
                let mut inner = self.lock();
                if inner.state != BreakerState::HalfOpen {
                    return None;
                }
                let now = Instant::now();
                let since = inner.outage_since.unwrap_or(now);
                inner.period = self
                    .config
                    .reopen_period(now.saturating_duration_since(since));
                inner.opened_at = Some(now);
                inner.trials.clear();
                Some(self.set(&mut inner, BreakerState::Open))
            }
        }
    }

    /// Records the end of a call that says nothing about the infrastructure (it was rejected,
    /// or failed before reaching it): counts nothing, but gives up the caller's trial place
    /// while half-open.
    pub fn on_ignored(&self) {
        if !self.config.enabled || self.state() != BreakerState::HalfOpen {
            return;
        }
        let mut inner = self.lock();
        if inner.state == BreakerState::HalfOpen {
            forget_trial(&mut inner);
        }
    }

    /// A snapshot of state and counters.
    pub fn status(&self) -> CircuitStatus {
        let inner = self.lock();
        let now = Instant::now();
        let (calls, failures) = match inner.state {
            BreakerState::Closed => self.window.totals(),
            _ => (0, 0),
        };
        CircuitStatus {
            state: inner.state,
            recent_failures: failures,
            recent_calls: calls,
            retry_in: match (inner.state, inner.opened_at) {
                (BreakerState::Open, Some(at)) => Some(
                    at.checked_add(inner.period)
                        .map_or(inner.period, |t| t.saturating_duration_since(now)),
                ),
                _ => None,
            },
            times_opened: self.opened.load(Ordering::Relaxed),
            times_half_opened: self.half_opened.load(Ordering::Relaxed),
            times_closed: self.closed.load(Ordering::Relaxed),
        }
    }

    /// True when `failures` of `calls` within the window open the breaker.
    fn trips(&self, calls: u32, failures: u32) -> bool {
        calls >= self.config.minimum_calls
            && failures >= self.config.failure_threshold
            && u64::from(failures) * 1000
                >= u64::from(self.config.failure_rate_permille) * u64::from(calls)
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

/// The calling task's (or thread's) trial is over.
fn forget_trial(inner: &mut Inner) {
    let me = Caller::current();
    if let Some(i) = inner.trials.iter().position(|(c, _)| *c == me) {
        inner.trials.swap_remove(i);
    }
}

#[cfg(test)]
mod tests;
