//! The pool's contract on every backend, modelled on HikariCP's and sqlx's own pool tests:
//! acquisition within the timeout (also against a refusing server), FIFO waiters served at
//! once on release, cancelled acquisitions that lose nothing, failed transactions that hand
//! their connection back, timed-out waiters that cause no churn, leak reports with the
//! acquiring file and line, idle reaping, max lifetime, and `close_pool`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::logs::Captured;
use common::{each_backend, each_backend_with, eventually, fresh_table};
use dal::prelude::*;
use dal::{BreakerConfig, PoolTuning, RetryPolicy};

fn metrics(db: &Database) -> PoolMetrics {
    db.pool_metrics().expect("the pool exists")
}

fn status_of(db: &Database) -> Option<PoolStatus> {
    PoolManager::pool_statuses()
        .into_iter()
        .find(|s| s.hash == db.hash())
}

#[tokio::test]
async fn a_refusing_server_fails_within_the_acquisition_timeout_and_loses_no_permit() {
    let limit = Duration::from_secs(2);
    let mut failures = Vec::new();
    for backend in common::selected() {
        let alias = format!("pool_refused-{}", backend.as_str());
        let config = match backend {
            // SQLite's "refusing server": a database file that cannot be opened.
            Backend::Sqlite => DatabaseConfig::new("/nonexistent-dal-dir/sub/db.sqlite"),
            _ => common::config(backend, "pool_refused")
                .host("127.0.0.1")
                .port(common::refused_port()),
        }
        .alias(alias)
        .pool_size(0, 1)
        .connection_acquisition_timeout(limit);
        let db = Database::new(backend, config);
        for attempt in 0..3 {
            let start = Instant::now();
            let e = match db.async_connection().await {
                Ok(_) => {
                    failures.push(format!("{backend:?}: attempt {attempt} got a connection"));
                    break;
                }
                Err(e) => e,
            };
            let took = start.elapsed();
            if took > limit + Duration::from_millis(500) {
                failures.push(format!("{backend:?}: attempt {attempt} took {took:?}: {e}"));
            }
            if !matches!(
                e,
                Error::Connection(_)
                    | Error::Database { .. }
                    | Error::Timeout { .. }
                    | Error::CircuitOpen { .. }
            ) {
                failures.push(format!("{backend:?}: unexpected error {e:?}"));
            }
        }
        // Nothing is left counted: no connection, no permit, nobody waiting.
        let s = db.pool_status();
        assert_eq!(
            (s.size, s.in_use, s.waiting),
            (0, 0, 0),
            "{backend:?}: {s:?}"
        );
        let m = metrics(&db);
        assert_eq!(m.acquisitions, 0);
        assert!(m.errors.values().sum::<u64>() >= 3, "{backend:?}: {m:?}");
        PoolManager::close_pool(Some(db.hash()), Duration::from_secs(5))
            .await
            .unwrap();
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn a_waiter_is_served_as_soon_as_a_connection_is_released() {
    let timeout = Duration::from_secs(30);
    each_backend_with(
        "pool_waiter",
        |c| c.pool_size(1, 1).connection_acquisition_timeout(timeout),
        |db| async move {
            let held = db.async_connection().await?;
            let db2 = db.clone();
            let waiter = tokio::spawn(async move {
                let conn = db2.async_connection().await;
                (Instant::now(), conn.map(|_| ()))
            });
            assert!(
                eventually(Duration::from_secs(10), || async {
                    db.pool_status().waiting == 1
                })
                .await
            );
            let released = Instant::now();
            drop(held);
            let (served, got) = waiter.await.expect("waiter task");
            got?;
            // Served by the release, not by the end of its 30 s timeout.
            assert!(served.duration_since(released) < timeout / 2);
            let m = metrics(&db);
            assert_eq!(m.acquisitions, 2);
            assert_eq!(m.connections_created, 1);
            assert!(
                m.wait_time.count == 2 && m.wait_time.max > Duration::ZERO,
                "{m:?}"
            );
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn waiters_are_served_in_arrival_order() {
    each_backend_with(
        "pool_fifo",
        |c| c.pool_size(1, 1),
        |db| async move {
            let held = db.async_connection().await?;
            let order = Arc::new(Mutex::new(Vec::new()));
            let mut tasks = Vec::new();
            for i in 0..4 {
                let (db2, order2) = (db.clone(), order.clone());
                tasks.push(tokio::spawn(async move {
                    let conn = db2.async_connection().await?;
                    order2.lock().unwrap().push(i);
                    drop(conn);
                    Ok::<_, Error>(())
                }));
                // The next one arrives only once this one is queued.
                assert!(
                    eventually(Duration::from_secs(10), || async {
                        db.pool_status().waiting == i + 1
                    })
                    .await
                );
            }
            drop(held);
            for t in tasks {
                t.await.expect("task")?;
            }
            assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
            Ok(())
        },
    )
    .await;
}

/// Polls `db.async_connection()` exactly once, then drops it.
async fn poll_once_then_drop(db: Database) {
    let fut = db.async_connection();
    tokio::pin!(fut);
    tokio::select! {
        biased;
        r = &mut fut => drop(r),
        _ = std::future::ready(()) => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_acquisitions_lose_no_permit_and_close_pool_ends_at_size_zero() {
    each_backend_with(
        "pool_cancel",
        |c| {
            c.pool_size(0, 1)
                .connection_acquisition_timeout(Duration::from_secs(5))
        },
        |db| async move {
            // Round 1: the pool is empty, so the first acquisitions start opening a connection
            // and are dropped mid-way.
            let tasks: Vec<_> = (0..200)
                .map(|_| tokio::spawn(poll_once_then_drop(db.clone())))
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
            // Round 2: the one connection is held; 200 acquisitions queue and are dropped, and
            // half-way the connection is released (so one of them is handed a permit as it
            // is dropped).
            let held = db.async_connection().await?;
            let mut held = Some(held);
            let mut tasks = Vec::new();
            for i in 0..200 {
                if i == 100 {
                    drop(held.take());
                }
                tasks.push(tokio::spawn(poll_once_then_drop(db.clone())));
            }
            for t in tasks {
                t.await.expect("task");
            }
            // No permit and no connection lost: the pool still lends its one connection.
            let s = status_of(&db).expect("status");
            assert_eq!((s.in_use, s.waiting), (0, 0), "{s:?}");
            assert!(s.size <= 1, "{s:?}");
            let mut conn = db.async_connection().await?;
            conn.execute("SELECT 1", ()).await?;
            drop(conn);
            assert_eq!(metrics(&db).in_use, 0);
            // close_pool returns only once every connection is closed.
            PoolManager::close_pool(Some(db.hash()), Duration::from_secs(10)).await?;
            assert!(PoolManager::get_pool_metrics(db.hash()).is_none());
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_failed_transaction_hands_its_connection_back() {
    each_backend_with(
        "pool_failed_tx",
        |c| {
            c.pool_size(1, 1)
                .connection_acquisition_timeout(Duration::from_secs(10))
        },
        |db| async move {
            let mut conn = db.async_connection().await?;
            fresh_table(&mut conn, "pool_failed_tx").await?;
            conn.execute("CREATE TABLE [pool_failed_tx] ([a] INTEGER)", ())
                .await?;
            conn.begin_transaction().await?;
            conn.execute("INSERT INTO [pool_failed_tx] ([a]) VALUES (?)", params![1])
                .await?;
            let e = conn
                .execute("SELECT * FROM [pool_no_such_table]", ())
                .await
                .unwrap_err();
            assert!(matches!(e, Error::Database { .. }), "{e:?}");
            drop(conn); // transaction still open: rolled back, then given back

            // The only connection comes back (within the acquisition timeout), clean.
            let mut conn = db.async_connection().await?;
            assert!(!conn.in_transaction());
            let n: i64 = conn
                .execute("SELECT COUNT(*) FROM [pool_failed_tx]", ())
                .await?[0]
                .try_get(0)?;
            assert_eq!(n, 0);
            drop(conn);
            let m = metrics(&db);
            assert_eq!((m.in_use, m.acquisitions, m.releases), (0, 2, 2), "{m:?}");
            assert!(m.errors.get("database").copied().unwrap_or(0) >= 1);
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_timed_out_waiter_causes_no_connection_churn() {
    each_backend_with(
        "pool_no_churn",
        |c| {
            c.pool_size(1, 1)
                .connection_acquisition_timeout(Duration::from_millis(300))
        },
        |db| async move {
            // Opening the first connection may itself take longer than 300 ms on a loaded
            // machine: try again until it is open. Counts below are differences.
            let mut held = None;
            for _ in 0..20 {
                match db.async_connection().await {
                    Ok(c) => {
                        held = Some(c);
                        break;
                    }
                    Err(e) if e.is_timeout() => continue,
                    Err(e) => return Err(e),
                }
            }
            let held = held.expect("the first connection opened");
            let before = metrics(&db);
            for _ in 0..5 {
                let e = db.async_connection().await.unwrap_err();
                assert_eq!(e.timeout_kind(), Some(TimeoutKind::Acquire), "{e:?}");
            }
            drop(held);
            let mut conn = db.async_connection().await?;
            conn.execute("SELECT 1", ()).await?;
            drop(conn);
            let after = metrics(&db);
            assert_eq!(after.connections_created, before.connections_created);
            assert_eq!(after.connections_discarded, before.connections_discarded);
            let acquire_timeouts = |m: &PoolMetrics| m.timeouts[&TimeoutKind::Acquire];
            assert_eq!(acquire_timeouts(&after) - acquire_timeouts(&before), 5);
            assert_eq!(after.window_timeouts - before.window_timeouts, 5);
            assert_eq!(db.pool_status().size, 1);
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_held_connection_appears_in_the_leak_report_with_file_and_line() {
    each_backend("pool_leak_report", |db| async move {
        let line = line!() + 1;
        let held = db.async_connection().await?;
        let threshold = Duration::from_millis(100);
        assert!(
            eventually(Duration::from_secs(10), || async {
                !db.check_for_leaked_connections(threshold).is_empty()
            })
            .await
        );
        let leaks = db.check_for_leaked_connections(threshold);
        assert_eq!(leaks.len(), 1, "{leaks:?}");
        let leak = &leaks[0];
        assert!(leak.held_for >= threshold, "{leak:?}");
        assert!(
            leak.location.ends_with(&format!("pool.rs:{line}")),
            "{} does not point at pool.rs:{line}",
            leak.location
        );
        assert!(leak.file.ends_with("pool.rs") && leak.line == line);
        assert_eq!(leak.alias, db.config().get_alias());
        assert!(PoolManager::check_for_leaked_connections(threshold)
            .iter()
            .any(|l| l.hash == db.hash()));
        drop(held);
        assert!(db.check_for_leaked_connections(Duration::ZERO).is_empty());
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn the_housekeeper_reports_a_leak_at_warn_once() {
    let logs = Captured::default();
    // current_thread runtime: the housekeeper runs on this thread, under this subscriber.
    let _guard = logs.install(tracing::Level::WARN);
    each_backend("pool_leak_warn", |db| {
        let logs = logs.clone();
        async move {
            db.set_pool_tuning(
                PoolTuning::default().leak_detection_threshold(Some(Duration::from_millis(100))),
            );
            let line = line!() + 1;
            let held = db.async_connection().await?;
            assert!(
                eventually(Duration::from_secs(10), || async {
                    metrics(&db).leaks_detected == 1
                })
                .await
            );
            let text = logs.text();
            let alias = db.config().get_alias().to_owned();
            let ours: Vec<&str> = text.lines().filter(|l| l.contains(&alias)).collect();
            assert!(
                ours.iter().any(|l| l.contains("possible connection leak")
                    && l.contains(&format!("pool.rs:{line}"))),
                "{text}"
            );
            assert_eq!(
                ours.iter()
                    .filter(|l| l.contains("possible connection leak"))
                    .count(),
                1
            );
            drop(held);
            Ok(())
        }
    })
    .await;
}

#[tokio::test]
async fn idle_connections_above_the_minimum_are_reaped() {
    each_backend_with(
        "pool_reap",
        |c| c.pool_size(1, 3),
        |db| async move {
            db.set_pool_tuning(
                PoolTuning::default().idle_timeout(Some(Duration::from_millis(100))),
            );
            let a = db.async_connection().await?;
            let b = db.async_connection().await?;
            let c = db.async_connection().await?;
            assert_eq!(db.pool_status().size, 3);
            drop((a, b, c));
            assert!(
                eventually(Duration::from_secs(10), || async {
                    let m = metrics(&db);
                    m.size == 1 && m.connections_reaped == 2
                })
                .await,
                "{:?}",
                metrics(&db)
            );
            // The minimum stays: the next checkout needs no new connection.
            let created = metrics(&db).connections_created;
            db.async_connection().await?.execute("SELECT 1", ()).await?;
            assert_eq!(metrics(&db).connections_created, created);
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_connection_past_its_max_lifetime_is_closed_when_given_back_and_replaced() {
    each_backend_with(
        "pool_lifetime",
        |c| c.pool_size(1, 1),
        |db| async move {
            let lifetime = Duration::from_millis(200);
            db.set_pool_tuning(PoolTuning::default().max_lifetime(Some(lifetime)));
            let held = db.async_connection().await?;
            // Wait until it is older than its lifetime (lent that long means created earlier).
            assert!(
                eventually(Duration::from_secs(10), || async {
                    !db.check_for_leaked_connections(lifetime).is_empty()
                })
                .await
            );
            drop(held);
            let m = metrics(&db);
            assert!(m.connections_retired >= 1, "{m:?}");
            // The housekeeper (or the next checkout) brings the pool back to its minimum.
            let mut conn = db.async_connection().await?;
            conn.execute("SELECT 1", ()).await?;
            assert!(metrics(&db).connections_created >= 2);
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn tuning_is_held_by_the_pool_and_remembered_by_its_database_across_close() {
    each_backend("pool_tuning_owner", |db| async move {
        let tuning = PoolTuning::default().idle_timeout(Some(Duration::from_secs(42)));
        // Set before any connection: the database creates its pool (unconnected) to hold it.
        db.set_pool_tuning(tuning);
        assert_eq!(PoolManager::pool_tuning(db.hash()), tuning);
        db.async_connection().await?.execute("SELECT 1", ()).await?;
        assert_eq!(PoolManager::pool_tuning(db.hash()), tuning);
        // Nothing is kept by hash once the pool is closed ...
        db.close(Duration::from_secs(5)).await?;
        assert_eq!(PoolManager::pool_tuning(db.hash()), PoolTuning::default());
        // ... but the database gives the pool it creates next the tuning it was given.
        db.async_connection().await?.execute("SELECT 1", ()).await?;
        assert_eq!(PoolManager::pool_tuning(db.hash()), tuning);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn joining_a_pool_with_another_retry_policy_or_breaker_warns_which_the_pool_keeps() {
    let logs = Captured::default();
    // current_thread runtime: the warning is logged on this thread, under this subscriber.
    let _guard = logs.install(tracing::Level::WARN);
    each_backend("pool_join_warn", |db| {
        let logs = logs.clone();
        async move {
            let alias = db.config().get_alias().to_owned();
            let joins = || -> Vec<String> {
                logs.lines_with(&alias)
                    .into_iter()
                    .filter(|l| l.contains("dal::pool") && l.contains("joins the existing pool"))
                    .collect()
            };
            db.async_connection().await?.execute("SELECT 1", ()).await?;
            // The same settings join silently.
            let same = Database::new(db.backend(), db.config().clone());
            same.async_connection().await?;
            assert!(joins().is_empty(), "{:?}", joins());
            // Another retry policy and breaker: the same pool, one warning per setting, each
            // naming the value the pool keeps.
            let other = Database::new(
                db.backend(),
                db.config()
                    .clone()
                    .retry_policy(RetryPolicy::none())
                    .circuit_breaker(BreakerConfig::disabled()),
            );
            other.async_connection().await?;
            assert_eq!(metrics(&db).acquisitions, 3);
            let warned = joins();
            assert_eq!(warned.len(), 2, "{warned:?}");
            let kept_retry = format!("keeps {:?}", db.config().get_retry_policy());
            let kept_breaker = format!("keeps {:?}", db.config().get_circuit_breaker());
            assert!(
                warned
                    .iter()
                    .any(|l| l.contains("another retry policy") && l.contains(&kept_retry)),
                "{warned:?}"
            );
            assert!(
                warned
                    .iter()
                    .any(|l| l.contains("another circuit breaker") && l.contains(&kept_breaker)),
                "{warned:?}"
            );
            // A database already in the pool does not warn again.
            other.async_connection().await?;
            assert_eq!(joins().len(), 2);
            Ok(())
        }
    })
    .await;
}

#[tokio::test]
async fn close_pool_refuses_new_acquisitions_waits_for_connections_in_use_then_closes_all() {
    each_backend_with(
        "pool_close",
        |c| c.pool_size(1, 2),
        |db| async move {
            let held = db.async_connection().await?;
            let hash = db.hash().to_owned();
            let closer = tokio::spawn(async move {
                PoolManager::close_pool(Some(&hash), Duration::from_secs(30)).await
            });
            // While it waits for `held`, new acquisitions are refused with a clear error.
            let refused = std::cell::RefCell::new(None);
            let (r, d) = (&refused, &db);
            assert!(
                eventually(Duration::from_secs(10), move || async move {
                    match d.async_connection().await {
                        Err(e @ Error::PoolClosed(_)) => {
                            *r.borrow_mut() = Some(e);
                            true
                        }
                        _ => false,
                    }
                })
                .await
            );
            let msg = refused.take().expect("refused").to_string();
            assert!(
                msg.contains("closed") && msg.contains(db.config().get_alias()),
                "{msg}"
            );
            assert!(!closer.is_finished());
            drop(held);
            closer.await.expect("closer")?;
            // Afterwards the configuration gets a fresh pool.
            let mut conn = db.async_connection().await?;
            conn.execute("SELECT 1", ()).await?;
            assert_eq!(metrics(&db).acquisitions, 1);
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn close_pool_gives_up_after_its_timeout_and_closes_late_connections_on_return() {
    each_backend("pool_close_timeout", |db| async move {
        let held = db.async_connection().await?;
        let e = PoolManager::close_pool(Some(db.hash()), Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("1 connection(s) still in use"),
            "{e}"
        );
        drop(held);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn pool_status_counts_size_in_use_idle_and_waiting() {
    each_backend_with(
        "pool_status",
        |c| {
            c.pool_size(2, 3)
                .connection_acquisition_timeout(Duration::from_secs(10))
        },
        |db| async move {
            let s = db.pool_status();
            assert_eq!((s.min_size, s.max_size, s.size), (2, 3, 0));
            let a = db.async_connection().await?;
            let s = db.pool_status();
            assert_eq!((s.size, s.in_use, s.idle, s.waiting), (2, 1, 1, 0), "{s:?}");
            let b = db.async_connection().await?;
            let c = db.async_connection().await?;
            let s = db.pool_status();
            assert_eq!((s.size, s.in_use, s.idle), (3, 3, 0), "{s:?}");
            let db2 = db.clone();
            let waiter = tokio::spawn(async move { db2.async_connection().await.map(drop) });
            assert!(
                eventually(Duration::from_secs(10), || async {
                    db.pool_status().waiting == 1
                })
                .await
            );
            drop(a);
            waiter.await.expect("waiter")?;
            drop((b, c));
            let s = db.pool_status();
            assert_eq!((s.size, s.in_use, s.idle, s.waiting), (3, 0, 3, 0), "{s:?}");
            assert_eq!(metrics(&db).peak_in_use, 3);
            Ok(())
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Pools are keyed by configuration hash *and* password. (No process-wide health check here: it
// probes every pool of the process, and the tests above count their pools' connections and
// waiters; how health results combine per hash is a unit test in `pool::manager`.)

/// The password of the test users below, and a wrong one. Distinctive, so a leak is visible.
const RIGHT_PASSWORD: &str = "right-Pw-5a1c9e";
const WRONG_PASSWORD: &str = "wrong-Pw-e07d33";

/// Runs `body` with a MariaDB/MySQL user that really checks its password
/// ([`RIGHT_PASSWORD`]), created for this test (`dal_pw_<test>`) and dropped afterwards, also
/// when `body` fails or panics. `body` gets the user name and a configuration for that user
/// without a password. Skipped (with a note) when MySQL is not among the selected backends:
/// on PostgreSQL the test server trusts every password.
async fn with_password_user<F, Fut>(test: &str, body: F)
where
    F: FnOnce(String, DatabaseConfig) -> Fut,
    Fut: std::future::Future<Output = dal::Result<()>>,
{
    use futures_util::FutureExt;

    if !common::selected().contains(&Backend::MySql) {
        eprintln!("{test}: needs MySQL/MariaDB, which DAL_TEST_BACKENDS does not select");
        return;
    }
    let user = format!("dal_pw_{test}");
    let admin = Database::new(
        Backend::MySql,
        common::config(Backend::MySql, &format!("{test}-admin")),
    );
    let admin_sql = |sql: String| {
        let admin = admin.clone();
        async move {
            let mut conn = admin.async_connection().await?;
            conn.execute(&sql, ()).await.map(drop)
        }
    };
    for sql in [
        format!("DROP USER IF EXISTS '{user}'@'%'"),
        format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{RIGHT_PASSWORD}'"),
        format!("GRANT SELECT ON dal_test.* TO '{user}'@'%'"),
    ] {
        admin_sql(sql).await.expect("set up the password test user");
    }
    let base = common::config(Backend::MySql, test)
        .user(user.clone())
        .connection_acquisition_timeout(Duration::from_secs(5));
    let hash = base.hash();
    let outcome = std::panic::AssertUnwindSafe(body(user.clone(), base))
        .catch_unwind()
        .await;
    // Every pool of this configuration, whatever its password (close_pool by hash).
    let _ = PoolManager::close_pool(Some(&hash), Duration::from_secs(10)).await;
    let dropped = admin_sql(format!("DROP USER IF EXISTS '{user}'@'%'")).await;
    let _ = admin.close(Duration::from_secs(10)).await;
    match outcome {
        Ok(Ok(())) => dropped.expect("drop the password test user"),
        Ok(Err(e)) => panic!("{test} failed: {e}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// `CURRENT_USER()` on a fresh checkout: proves the connection authenticated as whom.
async fn current_user(db: &Database) -> dal::Result<String> {
    let mut conn = db.async_connection().await?;
    conn.execute("SELECT CURRENT_USER() AS [u]", ()).await?[0].try_get("u")
}

/// The error of an acquisition that must fail authentication (MySQL error 1045).
async fn access_denied(db: &Database) -> Error {
    let e = match db.async_connection().await {
        Ok(conn) => panic!("a wrong password got a connection: {conn:?}"),
        Err(e) => e,
    };
    assert!(
        matches!(&e, Error::Database { code: Some(c), .. } if c == "1045"),
        "expected access denied (1045), got {e:?}"
    );
    e
}

#[tokio::test]
async fn a_wrong_password_after_the_right_one_fails_authentication_and_the_right_one_keeps_working()
{
    with_password_user("rtw", |user, base| async move {
        let right = Database::new(Backend::MySql, base.clone().password(RIGHT_PASSWORD));
        let wrong = Database::new(Backend::MySql, base.clone().password(WRONG_PASSWORD));
        assert_eq!(right.hash(), wrong.hash(), "hash() leaves the password out");
        // The right password opens a connection, which goes back to its pool, idle.
        assert!(current_user(&right).await?.starts_with(&format!("{user}@")));
        assert_eq!(right.pool_status().idle, 1);
        // Same configuration, wrong password: it must not be handed that connection.
        for _ in 0..3 {
            access_denied(&wrong).await;
        }
        // The right one keeps working, on the connection it opened.
        assert!(current_user(&right).await?.starts_with(&format!("{user}@")));
        let m = right.pool_metrics().expect("right pool");
        assert_eq!((m.acquisitions, m.connections_created), (2, 1), "{m:?}");
        let w = wrong.pool_metrics().expect("wrong pool");
        assert_eq!((w.acquisitions, w.connections_created), (0, 0), "{w:?}");
        assert!(w.errors.values().sum::<u64>() >= 3, "{w:?}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_right_password_after_a_wrong_one_works_without_close_pool() {
    with_password_user("wtr", |user, base| async move {
        let wrong = Database::new(Backend::MySql, base.clone().password(WRONG_PASSWORD));
        let right = Database::new(Backend::MySql, base.clone().password(RIGHT_PASSWORD));
        for _ in 0..3 {
            access_denied(&wrong).await;
        }
        // No close_pool in between: the wrong password did not poison the right one's pool.
        for _ in 0..2 {
            assert!(current_user(&right).await?.starts_with(&format!("{user}@")));
        }
        access_denied(&wrong).await;
        let m = right.pool_metrics().expect("right pool");
        assert_eq!((m.acquisitions, m.connections_created), (2, 1), "{m:?}");
        // Both pools are open, under the one hash.
        let status = PoolManager::pool_statuses()
            .into_iter()
            .find(|s| s.hash == right.hash())
            .expect("status by hash");
        assert_eq!(status.max_size, 2 * right.config().get_pool_size().1);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn no_password_reaches_debug_display_errors_metrics_or_logs() {
    let logs = Captured::default();
    let texts = std::sync::Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let collected = texts.clone();
    let captured = logs.clone();
    with_password_user("noleak", |_user, base| async move {
        // From here on (not the test's own CREATE USER, whose SQL holds the password), all
        // that dal logs, at every level. current_thread runtime: it all runs on this thread.
        let _guard = captured.install(tracing::Level::TRACE);
        let right = Database::new(Backend::MySql, base.clone().password(RIGHT_PASSWORD));
        let wrong = Database::new(Backend::MySql, base.clone().password(WRONG_PASSWORD));
        let held = right.async_connection().await?;
        let e = access_denied(&wrong).await;
        let hash = right.hash().to_owned();
        let mut t = collected.lock().unwrap();
        let mut add = |what: &str, text: String| t.push((what.to_owned(), text));
        add("Debug of Database", format!("{right:?} {wrong:?}"));
        add(
            "config",
            format!(
                "{} {:?} {} {:?}",
                right.config(),
                right.config(),
                wrong.config(),
                wrong.config()
            ),
        );
        add("hash", hash.clone());
        add("error", format!("{e} {e:?}"));
        add("connection", format!("{held:?}"));
        add(
            "metrics",
            format!(
                "{:?} {:?} {:?} {:?}",
                right.pool_metrics(),
                wrong.pool_metrics(),
                PoolManager::get_pool_metrics(&hash),
                PoolManager::all_pool_metrics()
            ),
        );
        add(
            "status",
            format!(
                "{:?} {:?} {:?}",
                right.pool_status(),
                wrong.pool_status(),
                PoolManager::pool_statuses()
            ),
        );
        add(
            "circuit",
            format!("{:?} {:?}", right.circuit_status(), wrong.circuit_status()),
        );
        add(
            "leaks",
            format!(
                "{:?}",
                PoolManager::check_for_leaked_connections(Duration::ZERO)
            ),
        );
        add("prometheus", PoolManager::prometheus_text());
        drop(held);
        Ok(())
    })
    .await;
    let mut texts = std::mem::take(&mut *texts.lock().unwrap());
    texts.push(("logs".to_owned(), logs.text()));
    assert!(
        texts
            .iter()
            .any(|(w, t)| w == "prometheus" && t.contains("dal_pool_size")),
        "the checks ran: {texts:?}"
    );
    for (what, text) in &texts {
        for pw in [RIGHT_PASSWORD, WRONG_PASSWORD] {
            assert!(!text.contains(pw), "{what} shows a password: {text}");
        }
    }
}

#[tokio::test]
async fn pools_that_differ_only_in_password_are_separate_and_lookups_by_hash_cover_them_all() {
    let base = common::config(Backend::Sqlite, "pool_same_hash").pool_size(1, 2);
    let a = Database::new(Backend::Sqlite, base.clone().password("pw-a"));
    let b = Database::new(Backend::Sqlite, base.clone().password("pw-b"));
    assert_eq!(a.hash(), b.hash());
    let hash = a.hash().to_owned();
    for db in [&a, &a, &b] {
        db.async_connection()
            .await
            .unwrap()
            .execute("SELECT 1", ())
            .await
            .unwrap();
    }
    // Each database reports its own pool.
    let (ma, mb) = (metrics(&a), metrics(&b));
    assert_eq!((ma.acquisitions, mb.acquisitions), (2, 1));
    assert_eq!((a.pool_status().size, b.pool_status().size), (1, 1));
    // Lookups by hash report the pools of that hash as one: summed.
    let m = PoolManager::get_pool_metrics(&hash).expect("metrics by hash");
    assert_eq!((m.acquisitions, m.connections_created, m.size), (3, 2, 2));
    assert_eq!(m.query_duration.count, 3);
    let all: Vec<_> = PoolManager::all_pool_metrics()
        .into_iter()
        .filter(|m| m.hash == hash)
        .collect();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].acquisitions, 3);
    let statuses: Vec<_> = PoolManager::pool_statuses()
        .into_iter()
        .filter(|s| s.hash == hash)
        .collect();
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert_eq!((statuses[0].size, statuses[0].max_size), (2, 4));
    // One series per hash in the exposition (label sets must be unique), summed.
    let text = PoolManager::prometheus_text();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("dal_pool_acquisitions_total{") && l.contains(&format!("hash=\"{hash}\""))
        })
        .collect();
    assert_eq!(series.len(), 1, "{series:?}");
    assert!(series[0].ends_with(" 3"), "{series:?}");
    // Tuning belongs to the hash.
    let tuning = PoolTuning::default().idle_timeout(Some(Duration::from_secs(123)));
    b.set_pool_tuning(tuning);
    assert_eq!(PoolManager::pool_tuning(&hash), tuning);
    // Database::close closes its own pool only.
    a.close(Duration::from_secs(5)).await.unwrap();
    assert!(a.pool_metrics().is_none());
    assert_eq!(metrics(&b).acquisitions, 1);
    assert_eq!(
        PoolManager::get_pool_metrics(&hash).map(|m| m.acquisitions),
        Some(1)
    );
    // close_pool by hash closes every pool of the hash.
    a.async_connection().await.unwrap();
    assert!(a.pool_metrics().is_some());
    PoolManager::close_pool(Some(&hash), Duration::from_secs(5))
        .await
        .unwrap();
    assert!(a.pool_metrics().is_none() && b.pool_metrics().is_none());
    assert!(PoolManager::get_pool_metrics(&hash).is_none());
}
