//! The breaker's state machine on tokio's paused clock.

use super::window::COUNT_MASK;
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
