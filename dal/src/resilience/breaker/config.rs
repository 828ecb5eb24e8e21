//! The breaker's settings, their defaults, and the state it reports.

use std::time::Duration;

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
    pub(super) enabled: bool,
    /// In thousandths (1..=1000), so that the configuration stays `Eq`.
    pub(super) failure_rate_permille: u16,
    pub(super) minimum_calls: u32,
    pub(super) failure_threshold: u32,
    pub(super) failure_window: Duration,
    pub(super) open_duration: Duration,
    pub(super) max_open_duration: Duration,
    pub(super) success_threshold: u32,
    pub(super) half_open_calls: u32,
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
    pub(super) fn reopen_period(&self, outage: Duration) -> Duration {
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

    pub(super) fn from_u8(v: u8) -> Self {
        match v {
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }

    pub(super) fn to_u8(self) -> u8 {
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
