//! The pool's contract on every backend, modelled on HikariCP's and sqlx's own pool tests:
//! acquisition within the timeout (also against a refusing server), FIFO waiters served at
//! once on release, cancelled acquisitions that lose nothing, failed transactions that hand
//! their connection back, timed-out waiters that cause no churn, leak reports with the
//! acquiring file and line, idle reaping, max lifetime, and `close_pool`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::logs::Captured;
use common::{each_backend, each_backend_with, eventually, fresh_table};
use dal::prelude::*;
use dal::PoolTuning;

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
