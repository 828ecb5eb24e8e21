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

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Default share of failed calls, within the window, that opens the breaker: 50 %.
pub const DEFAULT_FAILURE_RATE: f64 = 0.5;
/// Default fewest calls within the window before the rate is judged at all: 20.
pub const DEFAULT_MINIMUM_CALLS: u32 = 20;
/// Default fewest failures within the window that can open the breaker: 5. With the default
/// rate and minimum this is always met (20 calls at 50 % is 10 failures); it matters when the
/// minimum is lowered.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// Default sliding window in which calls and failures are counted: 10 s.
pub const DEFAULT_FAILURE_WINDOW: Duration = Duration::from_secs(10);
/// Default first open period (before trial calls are let through): 1 s.
pub const DEFAULT_OPEN_DURATION: Duration = Duration::from_secs(1);
/// Default longest open period, reached when an outage lasts: 30 s.
pub const DEFAULT_MAX_OPEN_DURATION: Duration = Duration::from_secs(30);
/// Default successful trial calls that close a half-open breaker: 1.
pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 1;
/// Default trial calls let through at a time while half-open: 1.
pub const DEFAULT_HALF_OPEN_CALLS: u32 = 1;

/// Time buckets of the sliding window.
const BUCKETS: u64 = 10;

/// Settings of a pool's circuit breaker.
///
/// The breaker **opens** when, within the last [`failure_window`](Self::failure_window)
/// (default 10 s), at least [`minimum_calls`](Self::minimum_calls) calls ended (default 20),
/// at least [`failure_threshold`](Self::failure_threshold) of them failed (default 5), and the
/// failures make up at least [`failure_rate`](Self::failure_rate) of them (default 50 %).
///
/// It then rejects calls for an open period: [`open_duration`](Self::open_duration) (default
/// 1 s) the first time; after a failed trial, a quarter of the time since it first opened,
/// between `open_duration` and [`max_open_duration`](Self::max_open_duration) (default 30 s).
/// So it probes every second early in an outage and every 30 s after two minutes, and service
/// resumes at most about a quarter of the outage's length after the server is back.
///
/// Then it **half-opens**: up to [`half_open_calls`](Self::half_open_calls) callers at a time
/// (default 1) are let through as trials, the others are still rejected at once.
/// [`success_threshold`](Self::success_threshold) successes (default 1) close it; one failure
/// opens it again.
///
/// ```
/// use std::time::Duration;
/// use dal::{BreakerConfig, DatabaseConfig};
/// let breaker = BreakerConfig::default()
///     .failure_rate(0.25)
///     .minimum_calls(50)
///     .failure_window(Duration::from_secs(30))
///     .open_duration(Duration::from_secs(2))
///     .max_open_duration(Duration::from_secs(60));
/// let config = DatabaseConfig::new("app").circuit_breaker(breaker);
/// assert_eq!(config.get_circuit_breaker().get_minimum_calls(), 50);
/// assert_eq!(config.get_circuit_breaker().get_failure_rate(), 0.25);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    enabled: bool,
    /// In thousandths (1..=1000), so that the configuration stays `Eq`.
    failure_rate_permille: u16,
    minimum_calls: u32,
    failure_threshold: u32,
    failure_window: Duration,
    open_duration: Duration,
    max_open_duration: Duration,
    success_threshold: u32,
    half_open_calls: u32,
}

impl Default for BreakerConfig {
    /// Opens when at least 50 % of at least 20 calls (and at least 5 calls) failed within
    /// 10 s; half-opens after 1 s, later after up to 30 s while an outage lasts; lets one trial
    /// call through at a time; closes on its success.
    fn default() -> Self {
        BreakerConfig {
            enabled: true,
            failure_rate_permille: permille(DEFAULT_FAILURE_RATE),
            minimum_calls: DEFAULT_MINIMUM_CALLS,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            failure_window: DEFAULT_FAILURE_WINDOW,
            open_duration: DEFAULT_OPEN_DURATION,
            max_open_duration: DEFAULT_MAX_OPEN_DURATION,
            success_threshold: DEFAULT_SUCCESS_THRESHOLD,
            half_open_calls: DEFAULT_HALF_OPEN_CALLS,
        }
    }
}

/// `rate` in thousandths, within 1..=1000 (NaN: the default).
fn permille(rate: f64) -> u16 {
    if rate.is_nan() {
        return 500;
    }
    (rate * 1000.0).round().clamp(1.0, 1000.0) as u16
}

impl BreakerConfig {
    /// A breaker that never opens (and counts nothing).
    pub fn disabled() -> Self {
        BreakerConfig {
            enabled: false,
            ..BreakerConfig::default()
        }
    }
    /// Share of failed calls within the window that opens the breaker, from 0.001 to 1
    /// (default 0.5; values outside are brought within).
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.failure_rate_permille = permille(rate);
        self
    }
    /// Calls that must have ended within the window before the failure rate is judged
    /// (default 20; values below 1 count as 1). A pool with less traffic than this per window
    /// never opens its breaker: lower it for such pools.
    pub fn minimum_calls(mut self, n: u32) -> Self {
        self.minimum_calls = n.max(1);
        self
    }
    /// Fewest failures within the window that can open the breaker, whatever the rate
    /// (default 5; values below 1 count as 1). With the default rate and minimum number of
    /// calls it is always met; it matters when [`minimum_calls`](Self::minimum_calls) is low.
    pub fn failure_threshold(mut self, n: u32) -> Self {
        self.failure_threshold = n.max(1);
        self
    }
    /// Sliding window in which calls and failures are counted (default 10 s), kept as ten
    /// buckets of a tenth of it each.
    pub fn failure_window(mut self, d: Duration) -> Self {
        self.failure_window = d.max(Duration::from_millis(10));
        self
    }
    /// The first open period: how long an open breaker rejects every call before it
    /// half-opens (default 1 s). Later periods of the same outage grow up to
    /// [`max_open_duration`](Self::max_open_duration).
    pub fn open_duration(mut self, d: Duration) -> Self {
        self.open_duration = d;
        self
    }
    /// Longest open period (default 30 s): after a failed trial the breaker stays open for a
    /// quarter of the time since it first opened, at least [`open_duration`](Self::open_duration)
    /// and at most this.
    pub fn max_open_duration(mut self, d: Duration) -> Self {
        self.max_open_duration = d;
        self
    }
    /// Successful calls while half-open that close the breaker (default 1; values below 1
    /// count as 1).
    pub fn success_threshold(mut self, n: u32) -> Self {
        self.success_threshold = n.max(1);
        self
    }
    /// Callers let through at a time while half-open (default 1; values below 1 count as 1).
    /// A caller keeps its place for all its calls (borrowing a connection, then its
    /// statements) until one of them reports an outcome; a place not reported on within one
    /// open period is given to another caller.
    pub fn half_open_calls(mut self, n: u32) -> Self {
        self.half_open_calls = n.max(1);
        self
    }

    /// False for [`BreakerConfig::disabled`].
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }
    /// Share of failed calls that opens the breaker.
    pub fn get_failure_rate(&self) -> f64 {
        f64::from(self.failure_rate_permille) / 1000.0
    }
    /// Calls needed within the window before the rate is judged.
    pub fn get_minimum_calls(&self) -> u32 {
        self.minimum_calls
    }
    /// Fewest failures that can open the breaker.
    pub fn get_failure_threshold(&self) -> u32 {
        self.failure_threshold
    }
    /// Window of the counts.
    pub fn get_failure_window(&self) -> Duration {
        self.failure_window
    }
    /// First open period.
    pub fn get_open_duration(&self) -> Duration {
        self.open_duration
    }
    /// Longest open period.
    pub fn get_max_open_duration(&self) -> Duration {
        self.max_open_duration
    }
    /// Successes that close a half-open breaker.
    pub fn get_success_threshold(&self) -> u32 {
        self.success_threshold
    }
    /// Trial callers at a time while half-open.
    pub fn get_half_open_calls(&self) -> u32 {
        self.half_open_calls
    }

    /// The open period after a failed trial, `outage` after the breaker first opened.
    fn reopen_period(&self, outage: Duration) -> Duration {
        let max = self.max_open_duration.max(self.open_duration);
        (outage / 4).clamp(self.open_duration, max)
    }
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls go through; their outcomes are counted.
    Closed,
    /// Calls are rejected at once with [`Error::CircuitOpen`](crate::Error::CircuitOpen).
    Open,
    /// A few calls go through as trials (the others are rejected): enough successes close the
    /// breaker, one failure opens it.
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
    /// Failed calls counted in the current window (closed state only).
    pub recent_failures: u32,
    /// Calls counted in the current window, failed or not (closed state only).
    pub recent_calls: u32,
    /// While open: time left before trial calls are let through.
    pub retry_in: Option<Duration>,
    /// Times the breaker opened (from closed or half-open).
    pub times_opened: u64,
    /// Times it half-opened.
    pub times_half_opened: u64,
    /// Times it closed again after half-opening.
    pub times_closed: u64,
}

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

/// Calls and failures over a sliding window, in [`BUCKETS`] time buckets. Each bucket is one
/// atomic word: the bucket's number in time (24 bits) and its calls and failures (20 bits each,
/// saturating at about a million per bucket), updated with a compare-and-swap loop. A bucket
/// whose number is not recent counts as empty and is reset by the next call that lands in it.
#[derive(Debug)]
struct Window {
    epoch: Instant,
    bucket_nanos: u64,
    buckets: [AtomicU64; BUCKETS as usize],
}

const STAMP_BITS: u32 = 24;
const COUNT_BITS: u32 = 20;
const STAMP_MASK: u64 = (1 << STAMP_BITS) - 1;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

impl Window {
    fn new(window: Duration) -> Self {
        let nanos = u64::try_from(window.as_nanos() / u128::from(BUCKETS)).unwrap_or(u64::MAX);
        Window {
            epoch: Instant::now(),
            bucket_nanos: nanos.max(1),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// The current bucket number (from 1: a zeroed bucket is never current by accident early
    /// on, and holds no counts anyway).
    fn now(&self) -> u64 {
        let nanos = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        nanos / self.bucket_nanos + 1
    }

    /// Counts one call, and returns the window's (calls, failures) when it failed (a success
    /// does not need them).
    fn record(&self, failed: bool) -> (u32, u32) {
        let now = self.now();
        let stamp = now & STAMP_MASK;
        let slot = &self.buckets[(now % BUCKETS) as usize];
        let mut cur = slot.load(Ordering::Relaxed);
        loop {
            let (calls, failures) = if cur >> (2 * COUNT_BITS) == stamp {
                ((cur >> COUNT_BITS) & COUNT_MASK, cur & COUNT_MASK)
            } else {
                (0, 0)
            };
            let calls = (calls + 1).min(COUNT_MASK);
            let failures = (failures + u64::from(failed)).min(COUNT_MASK);
            let next = (stamp << (2 * COUNT_BITS)) | (calls << COUNT_BITS) | failures;
            match slot.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        if failed {
            self.totals_at(now)
        } else {
            (0, 0)
        }
    }

    fn totals(&self) -> (u32, u32) {
        self.totals_at(self.now())
    }

    fn totals_at(&self, now: u64) -> (u32, u32) {
        let stamp = now & STAMP_MASK;
        let (mut calls, mut failures) = (0u64, 0u64);
        for slot in &self.buckets {
            let v = slot.load(Ordering::Acquire);
            let age = stamp.wrapping_sub(v >> (2 * COUNT_BITS)) & STAMP_MASK;
            if age < BUCKETS {
                calls += (v >> COUNT_BITS) & COUNT_MASK;
                failures += v & COUNT_MASK;
            }
        }
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        (clamp(calls), clamp(failures))
    }

    fn clear(&self) {
        for slot in &self.buckets {
            slot.store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BreakerState::*;
    use super::*;

    fn advance(d: Duration) -> impl std::future::Future<Output = ()> {
        tokio::time::advance(d)
    }

    const fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// Opens `b` (closed) with failures only, and checks it did.
    fn open(b: &CircuitBreaker) {
        for _ in 0..b
            .config()
            .get_minimum_calls()
            .max(b.config().get_failure_threshold())
        {
            b.on_failure();
        }
        assert_eq!(b.state(), Open);
    }

    /// Runs `f` in its own tokio task: a caller distinct from every other.
    async fn as_task<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        match tokio::spawn(async move { f() }).await {
            Ok(v) => v,
            Err(e) => panic!("task failed: {e}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn it_opens_only_with_enough_calls_and_a_high_enough_failure_rate() {
        let b = CircuitBreaker::new(BreakerConfig::default());
        // 19 failures, 100 %, but fewer calls than the minimum of 20.
        for _ in 0..19 {
            assert_eq!(b.on_failure(), None);
        }
        assert_eq!(b.state(), Closed);
        assert_eq!(
            b.on_failure(),
            Some(Transition {
                from: Closed,
                to: Open
            })
        );

        // Below 50 % it stays closed, at 50 % it opens.
        let b = CircuitBreaker::new(BreakerConfig::default());
        for _ in 0..12 {
            b.on_success();
        }
        for _ in 0..11 {
            assert_eq!(b.on_failure(), None); // 11 of 23: 47.8 %
        }
        assert_eq!(b.status().recent_calls, 23);
        assert_eq!(b.status().recent_failures, 11);
        assert!(b.on_failure().is_some()); // 12 of 24: 50 %
        assert_eq!(b.state(), Open);
    }

    #[tokio::test(start_paused = true)]
    async fn a_few_failures_among_many_successes_never_open_it() {
        // The kill scenario in miniature: a busy pool, 7 dead connections in one second.
        let b = CircuitBreaker::new(BreakerConfig::default());
        for round in 0..30 {
            for _ in 0..500 {
                b.on_success();
            }
            if round == 10 {
                for _ in 0..7 {
                    assert_eq!(b.on_failure(), None);
                }
            }
            advance(Duration::from_millis(100)).await;
        }
        assert_eq!(b.state(), Closed);
        assert_eq!(b.status().times_opened, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_older_than_the_window_are_forgotten() {
        let b = CircuitBreaker::new(BreakerConfig::default().failure_window(secs(10)));
        for _ in 0..15 {
            b.on_failure();
        }
        assert_eq!(b.status().recent_failures, 15);
        advance(secs(11)).await;
        assert_eq!(b.status().recent_calls, 0);
        // 15 more would have opened it had the first 15 still counted.
        for _ in 0..5 {
            b.on_success();
        }
        for _ in 0..14 {
            assert_eq!(b.on_failure(), None);
        }
        assert_eq!(b.state(), Closed);
        // 5 s later the 19 calls above still count: with 1 more failure, 15 of 20 calls.
        advance(secs(5)).await;
        assert!(b.on_failure().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn failure_threshold_is_a_floor_on_the_failures() {
        let b = CircuitBreaker::new(
            BreakerConfig::default()
                .minimum_calls(1)
                .failure_threshold(3),
        );
        assert_eq!(b.on_failure(), None);
        assert_eq!(b.on_failure(), None); // 2 of 2: 100 %, but fewer than 3 failures
        assert!(b.on_failure().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn it_half_opens_after_the_open_period_and_closes_on_one_success() {
        let b = CircuitBreaker::new(BreakerConfig::default());
        open(&b);
        let retry_in = b.try_acquire().unwrap_err();
        assert!(
            retry_in <= secs(1) && retry_in > Duration::ZERO,
            "{retry_in:?}"
        );
        assert_eq!(b.status().retry_in, Some(secs(1)));
        // Outcomes of calls let in before it opened change nothing.
        assert_eq!(b.on_failure(), None);
        assert_eq!(b.on_success(), None);
        advance(Duration::from_millis(999)).await;
        assert!(b.try_acquire().is_err());
        advance(Duration::from_millis(1)).await;
        assert_eq!(
            b.try_acquire(),
            Ok(Some(Transition {
                from: Open,
                to: HalfOpen
            }))
        );
        // The same caller keeps its place (borrowing a connection, then its statement).
        assert_eq!(b.try_acquire(), Ok(None));
        assert_eq!(
            b.on_success(),
            Some(Transition {
                from: HalfOpen,
                to: Closed
            })
        );
        let s = b.status();
        assert_eq!(
            (s.state, s.times_opened, s.times_half_opened, s.times_closed),
            (Closed, 1, 1, 1)
        );
        // Closed again with a clean slate: it takes a full sample of failures to open.
        assert_eq!((s.recent_calls, s.recent_failures), (0, 0));
        for _ in 0..19 {
            assert_eq!(b.on_failure(), None);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_one_caller_through_at_a_time() {
        let b = std::sync::Arc::new(CircuitBreaker::new(BreakerConfig::default()));
        open(&b);
        advance(secs(1)).await;
        let b1 = b.clone();
        // Task A half-opens it and takes the trial place, twice (acquire, then statement).
        let a = as_task(move || (b1.try_acquire(), b1.try_acquire())).await;
        assert_eq!(
            a,
            (
                Ok(Some(Transition {
                    from: Open,
                    to: HalfOpen
                })),
                Ok(None)
            )
        );
        // Task B is rejected while A's trial runs.
        let b2 = b.clone();
        let rejected = as_task(move || b2.try_acquire()).await;
        assert!(rejected.is_err(), "{rejected:?}");
        // A trial not reported on within one open period is presumed lost: B gets the place.
        advance(secs(1)).await;
        let b3 = b.clone();
        let (acquired, closed) = as_task(move || (b3.try_acquire(), b3.on_success())).await;
        assert_eq!(acquired, Ok(None));
        assert_eq!(closed.map(|t| t.to), Some(Closed));
    }

    #[tokio::test(start_paused = true)]
    async fn an_ignored_trial_gives_its_place_up_and_a_failed_one_reopens() {
        let b = std::sync::Arc::new(CircuitBreaker::new(
            BreakerConfig::default().success_threshold(2),
        ));
        open(&b);
        advance(secs(1)).await;
        let b1 = b.clone();
        as_task(move || {
            assert!(b1.try_acquire().is_ok());
            b1.on_ignored();
        })
        .await;
        let b2 = b.clone();
        as_task(move || {
            assert_eq!(b2.try_acquire(), Ok(None));
            assert_eq!(b2.on_success(), None); // 1 of 2 successes
        })
        .await;
        let b3 = b.clone();
        let t = as_task(move || {
            assert_eq!(b3.try_acquire(), Ok(None));
            b3.on_failure()
        })
        .await;
        assert_eq!(
            t,
            Some(Transition {
                from: HalfOpen,
                to: Open
            })
        );
        assert!(b.try_acquire().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_open_period_grows_with_the_outage_up_to_the_maximum() {
        let b = CircuitBreaker::new(BreakerConfig::default());
        open(&b);
        let start = Instant::now();
        let mut periods = Vec::new();
        // Every trial fails for five minutes.
        while start.elapsed() < secs(300) {
            let wait = match b.try_acquire() {
                Err(wait) => wait,
                Ok(_) => {
                    assert!(b.on_failure().is_some());
                    let wait = b.status().retry_in.unwrap_or_default();
                    periods.push((start.elapsed(), wait));
                    wait
                }
            };
            advance(wait).await;
        }
        for (at, period) in &periods {
            let expected = (*at / 4).clamp(secs(1), secs(30));
            assert_eq!(*period, expected, "at {at:?}");
        }
        // Probes every second early on: a 3 s restart costs at most about 1 s more.
        assert_eq!(periods[0], (secs(1), secs(1)));
        assert_eq!(periods[1], (secs(2), secs(1)));
        assert_eq!(periods.last().map(|p| p.1), Some(secs(30)));
        // Recovery resets the schedule.
        advance(secs(30)).await;
        assert!(b.try_acquire().is_ok());
        assert!(b.on_success().is_some());
        open(&b);
        assert_eq!(b.status().retry_in, Some(secs(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_disabled_breaker_never_opens() {
        let b = CircuitBreaker::new(BreakerConfig::disabled().minimum_calls(1));
        for _ in 0..100 {
            assert_eq!(b.on_failure(), None);
        }
        assert_eq!(b.try_acquire(), Ok(None));
        assert_eq!(b.status().recent_calls, 0);
    }

    #[test]
    fn settings_are_brought_within_their_bounds() {
        let c = BreakerConfig::default()
            .failure_rate(7.0)
            .minimum_calls(0)
            .failure_threshold(0)
            .success_threshold(0)
            .half_open_calls(0)
            .failure_window(Duration::ZERO);
        assert_eq!(c.get_failure_rate(), 1.0);
        assert_eq!(
            (
                c.get_minimum_calls(),
                c.get_failure_threshold(),
                c.get_success_threshold(),
                c.get_half_open_calls()
            ),
            (1, 1, 1, 1)
        );
        assert!(c.get_failure_window() > Duration::ZERO);
        assert_eq!(
            BreakerConfig::default()
                .failure_rate(-1.0)
                .get_failure_rate(),
            0.001
        );
        assert_eq!(
            BreakerConfig::default()
                .failure_rate(f64::NAN)
                .get_failure_rate(),
            0.5
        );
        // A maximum below the first period does not shorten it.
        let c = BreakerConfig::default()
            .open_duration(secs(5))
            .max_open_duration(secs(1));
        assert_eq!(c.reopen_period(secs(1000)), secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn window_counts_saturate_instead_of_wrapping() {
        let w = Window::new(secs(10));
        for _ in 0..(COUNT_MASK + 10) {
            w.record(true);
        }
        let (calls, failures) = w.totals();
        assert_eq!(
            (u64::from(calls), u64::from(failures)),
            (COUNT_MASK, COUNT_MASK)
        );
        // The next bucket starts from zero; both still count within the window.
        advance(secs(1)).await;
        w.record(false);
        assert_eq!(u64::from(w.totals().0), COUNT_MASK + 1);
        w.clear();
        assert_eq!(w.totals(), (0, 0));
    }
}
