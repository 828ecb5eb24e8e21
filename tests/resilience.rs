//! Resilience: queries stopped on the server at their timeout, reads that survive cut
//! connections, fast failure and a circuit breaker while the server is unreachable, recovery
//! when it returns — with a fault-injecting proxy on loopback, never by restarting the shared
//! database services. Unit tests of the backoff, the classification and the breaker's state
//! machine run on tokio's paused clock.
//!
//! The proxy tests need a server behind TCP and run on PostgreSQL and MySQL; SQLite has no
//! network to fault and is covered by the tests that run on every backend.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::proxy::{Mode, Proxy};
use common::{each_backend, each_backend_with, eventually, fresh_table, slow_sql, through_proxy};
use dal::prelude::*;
use dal::resilience::{classify, CircuitBreaker, FailureClass, Transition};
use dal::{BreakerConfig, BreakerState, DbErrorKind, RetryPolicy};

// ---- helpers -----------------------------------------------------------------------------

/// The server backends selected for this run (the proxy tests need TCP).
fn server_backends() -> Vec<Backend> {
    common::selected()
        .into_iter()
        .filter(|b| *b != Backend::Sqlite)
        .collect()
}

/// Runs `body` once per selected server backend with a fresh proxy in front of its server,
/// and fails naming every backend where it failed.
async fn each_server_backend<F, Fut>(test: &str, body: F)
where
    F: Fn(Backend, Proxy) -> Fut,
    Fut: Future<Output = dal::Result<()>>,
{
    let mut failures = Vec::new();
    for backend in server_backends() {
        let proxy = Proxy::start(common::server_port(backend, test)).await;
        if let Err(e) = body(backend, proxy).await {
            failures.push(format!("{}: {e}", backend.as_str()));
        }
    }
    assert!(failures.is_empty(), "{test} failed on: {failures:#?}");
}

/// One unit of client work: borrow a connection and read.
async fn one_read(db: &Database) -> dal::Result<i64> {
    let mut conn = db.async_connection().await?;
    conn.execute("SELECT 1 + 1", ()).await?[0].try_get(0)
}

async fn close(db: &Database) {
    let _ = PoolManager::close_pool(Some(db.hash()), Duration::from_secs(10)).await;
}

fn unique_marker(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("dal-{test}-{}-{nanos}", std::process::id())
}

async fn count_rows(conn: &mut Connection, table: &str) -> dal::Result<i64> {
    conn.execute(&format!("SELECT COUNT(*) FROM [{table}]"), ())
        .await?[0]
        .try_get(0)
}

/// Runs `body` once per selected server backend on a database reaching the shared server
/// directly (no proxy), with `adjust` applied to its configuration, and an observer database
/// (its own pool) to look at and kill our connections. Fails naming every backend where it
/// failed.
async fn each_server_db<C, F, Fut>(test: &str, adjust: C, body: F)
where
    C: Fn(DatabaseConfig) -> DatabaseConfig,
    F: Fn(Database, Database) -> Fut,
    Fut: Future<Output = dal::Result<()>>,
{
    let mut failures = Vec::new();
    for backend in server_backends() {
        let config = common::config(backend, test);
        let observer = Database::new(
            backend,
            config
                .clone()
                .alias(format!("{}-observer", config.get_alias())),
        );
        let db = Database::new(backend, adjust(config));
        let result = body(db.clone(), observer.clone()).await;
        close(&db).await;
        close(&observer).await;
        if let Err(e) = result {
            failures.push(format!("{}: {e}", backend.as_str()));
        }
    }
    assert!(failures.is_empty(), "{test} failed on: {failures:#?}");
}

/// The server-side id of the physical connection behind `conn` (PostgreSQL backend pid,
/// MySQL/MariaDB connection id): what `pg_terminate_backend` / `KILL` take.
async fn server_id(conn: &mut Connection) -> dal::Result<i64> {
    let sql = match conn.backend() {
        Backend::Postgres => "SELECT pg_backend_pid()",
        Backend::MySql => "SELECT CONNECTION_ID()",
        Backend::Sqlite => return Err(Error::Internal("SQLite has no server".into())),
    };
    conn.execute(sql, ()).await?[0].try_get(0)
}

/// Kills one of OUR connections on the shared server (selected by the id read from it, never
/// anyone else's) and waits until the server no longer lists it.
async fn kill_connection(observer: &Database, id: i64) -> dal::Result<()> {
    let mut conn = observer.async_connection().await?;
    match observer.backend() {
        Backend::Postgres => {
            conn.execute("SELECT pg_terminate_backend(?)", params![id])
                .await?;
        }
        Backend::MySql => {
            // KILL takes no placeholders; `id` is a number the server gave us.
            conn.execute(&format!("KILL {id}"), ()).await?;
        }
        Backend::Sqlite => return Err(Error::Internal("SQLite has no server".into())),
    }
    let listed = match observer.backend() {
        Backend::Postgres => "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = ?",
        _ => "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?",
    };
    drop(conn);
    let gone = eventually(Duration::from_secs(10), || async {
        let Ok(mut conn) = observer.async_connection().await else {
            return false;
        };
        match conn.execute(listed, params![id]).await {
            Ok(rows) => matches!(rows[0].try_get::<i64, _>(0), Ok(0)),
            Err(_) => false,
        }
    })
    .await;
    if !gone {
        return Err(Error::Internal(format!(
            "connection {id} still listed after the kill"
        )));
    }
    Ok(())
}

// ---- timeouts stop the work on the server --------------------------------------------------

/// How many statements containing `marker` are still running on the server, seen from
/// another pool.
async fn running_with_marker(observer: &Database, marker: &str) -> dal::Result<i64> {
    let mut conn = observer.async_connection().await?;
    let sql = match observer.backend() {
        Backend::Postgres => {
            "SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE ? AND pid <> pg_backend_pid()"
        }
        Backend::MySql => {
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND ID <> CONNECTION_ID()"
        }
        Backend::Sqlite => return Ok(0),
    };
    conn.execute(sql, params![format!("%{marker}%")]).await?[0].try_get(0)
}

#[tokio::test]
async fn a_timed_out_query_is_stopped_on_the_server_not_just_abandoned() {
    each_backend("server_stop", |db| async move {
        let deadline = Duration::from_millis(300);
        let marker = unique_marker("server-stop");
        let sql = match db.backend() {
            Backend::Postgres => format!("SELECT pg_sleep(20), '{marker}'"),
            Backend::MySql => format!("SELECT SLEEP(20), '{marker}'"),
            Backend::Sqlite => slow_sql(Backend::Sqlite, 20),
        };
        let mut conn = db.async_connection().await?;
        let start = Instant::now();
        let e = conn.execute(&sql, ()).timeout(deadline).await.unwrap_err();
        let elapsed = start.elapsed();
        assert_eq!(e.timeout_kind(), Some(TimeoutKind::Query), "{e:?}");
        // Near the deadline (generous margin: this checks the interrupt, not speed).
        assert!(
            elapsed >= deadline.mul_f32(0.9) && elapsed <= deadline + Duration::from_millis(1500),
            "timed out after {elapsed:?} for a {deadline:?} deadline"
        );
        if db.backend() != Backend::Sqlite {
            let observer = Database::new(
                db.backend(),
                db.config()
                    .clone()
                    .alias(format!("{}-observer", db.config().get_alias())),
            );
            let gone = eventually(Duration::from_secs(5), || async {
                matches!(running_with_marker(&observer, &marker).await, Ok(0))
            })
            .await;
            let last = running_with_marker(&observer, &marker).await;
            close(&observer).await;
            assert!(
                gone,
                "the server still runs the timed-out statement: {last:?}"
            );
        }
        // The connection that timed out is clean and usable.
        assert_eq!(
            conn.execute("SELECT 1 + 1", ()).await?[0].try_get::<i64, _>(0)?,
            2
        );
        Ok(())
    })
    .await;
}

// ---- recovery after every connection was cut ------------------------------------------------

#[tokio::test]
async fn twenty_reads_succeed_after_every_pooled_connection_was_cut() {
    each_server_backend("cut_reads", |backend, proxy| async move {
        let db = Database::new(
            backend,
            through_proxy(backend, "cut_reads", proxy.port()).pool_size(1, 8),
        );
        let result = async {
            // Fill the pool with a few connections, all proven alive, then give them back.
            let mut held = Vec::new();
            for _ in 0..4 {
                let mut c = db.async_connection().await?;
                c.execute("SELECT 1", ()).await?;
                held.push(c);
            }
            // One stays borrowed across the cut.
            let mut kept = held.pop().expect("a connection");
            drop(held);
            assert!(db.pool_status().idle >= 3, "{:?}", db.pool_status());

            proxy.cut_all();
            assert!(
                eventually(Duration::from_secs(5), || async {
                    proxy.open_connections() == 0
                })
                .await
            );

            for i in 0..20 {
                let two = one_read(&db)
                    .await
                    .map_err(|e| dal::Error::Internal(format!("read {i} failed: {e}")))?;
                assert_eq!(two, 2);
            }
            // The connection borrowed before the cut reads too: it is replaced underneath.
            assert_eq!(
                kept.execute("SELECT 1 + 1", ()).await?[0].try_get::<i64, _>(0)?,
                2
            );
            drop(kept);

            let m = db.pool_metrics().expect("metrics");
            assert!(m.connections_discarded >= 4, "{m:?}");
            assert_eq!(db.circuit_status().state, BreakerState::Closed);
            // The pool keeps serving at its minimum size or more.
            assert!(db.pool_status().size >= 1, "{:?}", db.pool_status());
            Ok(())
        }
        .await;
        close(&db).await;
        result
    })
    .await;
}

#[tokio::test]
async fn writes_are_retried_only_when_they_never_reached_the_server() {
    each_server_backend("cut_writes", |backend, proxy| async move {
        let db = Database::new(
            backend,
            through_proxy(backend, "cut_writes", proxy.port()).pool_size(1, 8),
        );
        let result = async {
            let mut setup = db.async_connection().await?;
            fresh_table(&mut setup, "resilience_writes").await?;
            setup
                .execute("CREATE TABLE [resilience_writes] ([a] INTEGER)", ())
                .await?;
            drop(setup);
            let insert = "INSERT INTO [resilience_writes] ([a]) VALUES (?)";

            // 1. A write sent into a connection nobody knew was dead: its outcome is unknown
            //    to the client, so it is reported, not run again.
            let mut first = db.async_connection().await?;
            first.execute("SELECT 1", ()).await?;
            proxy.cut_all();
            assert!(
                eventually(Duration::from_secs(5), || async {
                    proxy.open_connections() == 0
                })
                .await
            );
            let e = first.execute(insert, params![1]).await.unwrap_err();
            assert_eq!(classify(backend, &e), FailureClass::ConnectionLost, "{e:?}");
            drop(first);
            let mut check = db.async_connection().await?;
            assert_eq!(count_rows(&mut check, "resilience_writes").await?, 0);
            drop(check);

            // 2. Once the pool knows connections die, a write is checked before it is sent:
            //    a dead connection is replaced and the write runs exactly once.
            let mut a = db.async_connection().await?;
            let mut b = db.async_connection().await?;
            a.execute("SELECT 1", ()).await?;
            b.execute("SELECT 1", ()).await?;
            proxy.cut_all();
            assert!(
                eventually(Duration::from_secs(5), || async {
                    proxy.open_connections() == 0
                })
                .await
            );
            a.execute("SELECT 1", ()).await?; // notices the loss, retried on a fresh connection
            b.execute(insert, params![2]).await?; // found dead before sending: replaced
            drop((a, b));
            let mut check = db.async_connection().await?;
            assert_eq!(count_rows(&mut check, "resilience_writes").await?, 1);

            // 3. Inside a transaction nothing is retried, not even a read.
            check.begin_transaction().await?;
            check.execute(insert, params![3]).await?;
            proxy.cut_all();
            assert!(
                eventually(Duration::from_secs(5), || async {
                    proxy.open_connections() == 0
                })
                .await
            );
            let e = check.execute("SELECT 1", ()).await.unwrap_err();
            assert_eq!(classify(backend, &e), FailureClass::ConnectionLost, "{e:?}");
            let _ = check.rollback_transaction().await;
            drop(check);
            let mut check = db.async_connection().await?;
            assert_eq!(count_rows(&mut check, "resilience_writes").await?, 1);
            check.execute("DROP TABLE [resilience_writes]", ()).await?;
            Ok(())
        }
        .await;
        close(&db).await;
        result
    })
    .await;
}

// ---- a connection killed on the server is a connection error ---------------------------------

#[tokio::test]
async fn a_connection_killed_on_the_server_is_a_connection_error_and_writes_are_not_resent() {
    each_server_db(
        "killed_conn",
        |c| c.pool_size(1, 4),
        |db, observer| async move {
            let backend = db.backend();
            let mut setup = db.async_connection().await?;
            fresh_table(&mut setup, "resilience_killed").await?;
            setup
                .execute("CREATE TABLE [resilience_killed] ([a] INTEGER)", ())
                .await?;
            drop(setup);
            let insert = "INSERT INTO [resilience_killed] ([a]) VALUES (?)";

            // 1. Killed between statements: the next write reports a lost connection (its
            //    outcome is unknown to the client) and is not sent again.
            let mut conn = db.async_connection().await?;
            let id = server_id(&mut conn).await?;
            kill_connection(&observer, id).await?;
            let e = conn.execute(insert, params![1]).await.unwrap_err();
            assert!(matches!(e, Error::Connection(_)), "{backend:?}: {e:?}");
            assert_eq!(classify(backend, &e), FailureClass::ConnectionLost, "{e:?}");
            if backend == Backend::Postgres {
                // The server's code and message are kept in the text.
                assert!(e.to_string().contains("57P01"), "{e}");
            }
            // A read on the same handle runs on a fresh connection.
            assert_eq!(
                conn.execute("SELECT 1 + 1", ()).await?[0].try_get::<i64, _>(0)?,
                2
            );
            assert_ne!(server_id(&mut conn).await?, id);
            drop(conn);
            let mut check = db.async_connection().await?;
            assert_eq!(count_rows(&mut check, "resilience_killed").await?, 0);
            drop(check);

            // 2. Killed while a write runs: the same, and nothing was written.
            let marker = unique_marker("killed-write");
            let slow_write = match backend {
                Backend::Postgres => format!(
                    "INSERT INTO [resilience_killed] ([a]) SELECT 2 FROM pg_sleep(5) WHERE '{marker}' <> ''"
                ),
                _ => format!(
                    "INSERT INTO [resilience_killed] ([a]) SELECT 2 FROM (SELECT SLEEP(5) AS s) AS x WHERE '{marker}' <> ''"
                ),
            };
            let mut conn = db.async_connection().await?;
            let id = server_id(&mut conn).await?;
            let (write, killed) = tokio::join!(conn.execute(&slow_write, ()), async {
                let running = eventually(Duration::from_secs(5), || async {
                    matches!(running_with_marker(&observer, &marker).await, Ok(1))
                })
                .await;
                assert!(running, "the slow write never showed up on the server");
                kill_connection(&observer, id).await
            });
            killed?;
            let e = write.unwrap_err();
            assert!(matches!(e, Error::Connection(_)), "{backend:?}: {e:?}");
            assert_eq!(classify(backend, &e), FailureClass::ConnectionLost, "{e:?}");
            // Not sent again on another connection.
            assert_eq!(running_with_marker(&observer, &marker).await?, 0);
            drop(conn);
            let mut check = db.async_connection().await?;
            assert_eq!(count_rows(&mut check, "resilience_killed").await?, 0);

            // 3. Killed while a read runs: the read is run again on a fresh connection.
            let marker = unique_marker("killed-read");
            let slow_read = match backend {
                Backend::Postgres => format!("SELECT 7 FROM pg_sleep(1) WHERE '{marker}' <> ''"),
                _ => format!("SELECT 7 FROM (SELECT SLEEP(1) AS s) AS x WHERE '{marker}' <> ''"),
            };
            let mut conn = db.async_connection().await?;
            let id = server_id(&mut conn).await?;
            let (read, killed) = tokio::join!(conn.execute(&slow_read, ()), async {
                let running = eventually(Duration::from_secs(5), || async {
                    matches!(running_with_marker(&observer, &marker).await, Ok(1))
                })
                .await;
                assert!(running, "the slow read never showed up on the server");
                kill_connection(&observer, id).await
            });
            killed?;
            assert_eq!(read?[0].try_get::<i64, _>(0)?, 7);
            assert_ne!(server_id(&mut conn).await?, id);
            drop(conn);
            check.execute("DROP TABLE [resilience_killed]", ()).await?;
            Ok(())
        },
    )
    .await;
}

// ---- the breaker under local faults and outages: measured ------------------------------------

/// What the load tasks saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    /// Rejected by the breaker (`Error::CircuitOpen`).
    rejected: AtomicU64,
    /// Any other error.
    failed: AtomicU64,
    /// When the fault ended (set by the test), and the first operation that succeeded after.
    restored: OnceLock<Instant>,
    first_ok_after_restore: OnceLock<Instant>,
    stop: AtomicBool,
}

impl Tally {
    fn ok(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }
    fn total(&self) -> u64 {
        self.ok() + self.rejected.load(Ordering::SeqCst) + self.failed.load(Ordering::SeqCst)
    }
    fn summary(&self) -> String {
        format!(
            "{} operations: {} ok, {} rejected by the breaker, {} failed otherwise",
            self.total(),
            self.ok(),
            self.rejected.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst)
        )
    }
}

/// Starts `tasks` tasks that each borrow a connection and run one statement, over and over,
/// until `tally.stop`: reads and writes (into `table`) alternately. After an error a task
/// pauses 5 ms (a client would not spin on errors either).
fn start_load(
    db: &Database,
    tasks: usize,
    table: &'static str,
    tally: &Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..tasks)
        .map(|t| {
            let (db, tally) = (db.clone(), tally.clone());
            tokio::spawn(async move {
                let insert = format!("INSERT INTO [{table}] ([a]) VALUES (?)");
                let mut i: i64 = 0;
                while !tally.stop.load(Ordering::SeqCst) {
                    i += 1;
                    let result = async {
                        let mut conn = db.async_connection().await?;
                        if i % 2 == 0 {
                            conn.execute(&insert, params![t as i64]).await
                        } else {
                            conn.execute("SELECT 1 + 1", ()).await
                        }
                    }
                    .await;
                    match result {
                        Ok(_) => {
                            tally.ok.fetch_add(1, Ordering::SeqCst);
                            if let Some(restored) = tally.restored.get() {
                                let now = Instant::now();
                                if now >= *restored {
                                    tally.first_ok_after_restore.get_or_init(|| now);
                                }
                            }
                        }
                        Err(e) => {
                            if matches!(e, Error::CircuitOpen { .. }) {
                                tally.rejected.fetch_add(1, Ordering::SeqCst);
                            } else {
                                tally.failed.fetch_add(1, Ordering::SeqCst);
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
            })
        })
        .collect()
}

async fn stop_load(tally: &Tally, tasks: Vec<tokio::task::JoinHandle<()>>) {
    tally.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        let _ = t.await;
    }
}

/// Waits (polling, bounded by `deadline`) until the load completed `n` more successful
/// operations than `from`.
async fn wait_for_ok(tally: &Tally, from: u64, n: u64, deadline: Duration) -> bool {
    eventually(deadline, || async { tally.ok() >= from + n }).await
}

async fn create_load_table(db: &Database, table: &str) -> dal::Result<()> {
    let mut conn = db.async_connection().await?;
    fresh_table(&mut conn, table).await?;
    conn.execute(&format!("CREATE TABLE [{table}] ([a] INTEGER)"), ())
        .await?;
    Ok(())
}

async fn drop_load_table(db: &Database, table: &str) -> dal::Result<()> {
    let mut conn = db.async_connection().await?;
    conn.execute(&format!("DROP TABLE IF EXISTS [{table}]"), ())
        .await?;
    Ok(())
}

/// Target 1: killing 7 of the 8 pooled connections of a healthy server while 8 tasks run
/// operations (half of them writes) with the DEFAULT breaker is a local fault, not an
/// outage: fewer than 1 % of the operations may be rejected.
#[tokio::test]
async fn killing_7_of_8_pooled_connections_rejects_under_1_percent_with_the_default_breaker() {
    const TABLE: &str = "resilience_kill_load";
    each_server_db(
        "kill_7_of_8",
        |c| c.pool_size(8, 8),
        |db, observer| async move {
            let backend = db.backend();
            create_load_table(&db, TABLE).await?;
            // The 8 pooled connections, by their server-side ids.
            let mut held = Vec::new();
            let mut ids = Vec::new();
            for _ in 0..8 {
                let mut c = db.async_connection().await?;
                ids.push(server_id(&mut c).await?);
                held.push(c);
            }
            drop(held);

            let tally = Arc::new(Tally::default());
            let tasks = start_load(&db, 8, TABLE, &tally);
            let warmed = wait_for_ok(&tally, 0, 300, Duration::from_secs(30)).await;
            let before = tally.ok();
            // All seven at once, as an administrator's sweep or a failover would.
            let kills: Vec<_> = ids[..7]
                .iter()
                .map(|id| {
                    let (observer, id) = (observer.clone(), *id);
                    tokio::spawn(async move { kill_connection(&observer, id).await })
                })
                .collect();
            for k in kills {
                k.await
                    .map_err(|e| Error::Internal(format!("kill task: {e}")))??;
            }
            let after_kill = tally.ok();
            let ran = wait_for_ok(&tally, after_kill, 3000, Duration::from_secs(60)).await;
            stop_load(&tally, tasks).await;
            let status = db.circuit_status();
            let m = db.pool_metrics().expect("metrics");
            println!(
                "MEASURED {backend:?} kill 7 of 8: {} (ok before kills {before}); breaker {status:?}; connections discarded {}",
                tally.summary(),
                m.connections_discarded
            );
            drop_load_table(&db, TABLE).await?;
            assert!(warmed && ran, "the load did not run: {}", tally.summary());
            // The kills happened and were noticed: the dead connections were thrown away.
            assert!(m.connections_discarded >= 7, "{m:?}");
            let rejected = tally.rejected.load(Ordering::SeqCst);
            assert!(
                rejected * 100 < tally.total(),
                "{backend:?}: {} ; breaker {status:?}",
                tally.summary()
            );
            Ok(())
        },
    )
    .await;
}

/// Target 2: a server restart — the proxy drops every connection and then refuses new ones
/// (port closed) or leaves them unanswered (blackhole) for 3 s — with the DEFAULT breaker and
/// timeouts. Service is back within 2 s of the server accepting connections again, measured
/// as the first operation of any load task that succeeds after the proxy forwards again.
#[tokio::test]
async fn after_a_3_s_restart_service_is_back_within_2_s_of_the_server_accepting_again() {
    const TABLE: &str = "resilience_restart_load";
    for mode in [Mode::Refuse, Mode::Blackhole] {
        let test = match mode {
            Mode::Refuse => "restart_refuse",
            _ => "restart_silent",
        };
        each_server_backend(test, |backend, proxy| async move {
            let db = Database::new(
                backend,
                through_proxy(backend, test, proxy.port()).pool_size(1, 8),
            );
            let result = async {
                create_load_table(&db, TABLE).await?;
                let tally = Arc::new(Tally::default());
                let tasks = start_load(&db, 8, TABLE, &tally);
                // A client that just started: little history, so the breaker does open.
                let warmed = wait_for_ok(&tally, 0, 50, Duration::from_secs(30)).await;

                proxy.cut_all();
                proxy.set_mode(mode);
                // The restart itself: the server is away for 3 s.
                tokio::time::sleep(Duration::from_secs(3)).await;
                let during = db.circuit_status();
                proxy.set_mode(Mode::PassThrough);
                let restored = Instant::now();
                let _ = tally.restored.set(restored);
                let back = eventually(Duration::from_secs(30), || async {
                    tally.first_ok_after_restore.get().is_some()
                })
                .await;
                let lag = tally
                    .first_ok_after_restore
                    .get()
                    .map(|t| t.saturating_duration_since(restored));
                // And it stays back.
                let after = tally.ok();
                let steady = wait_for_ok(&tally, after, 200, Duration::from_secs(30)).await;
                stop_load(&tally, tasks).await;
                let status = db.circuit_status();
                println!(
                    "MEASURED {backend:?} restart ({mode:?} 3 s): first success {lag:?} after the server accepted again; breaker at the end of the outage {during:?}; at the end {status:?}; {}",
                    tally.summary()
                );
                drop_load_table(&db, TABLE).await?;
                assert!(warmed && steady, "{mode:?}: the load did not run: {}", tally.summary());
                assert!(back, "{mode:?}: service did not come back: {status:?}");
                let lag = lag.unwrap_or(Duration::MAX);
                assert!(
                    lag <= Duration::from_secs(2),
                    "{mode:?}: service came back {lag:?} after the server ({during:?})"
                );
                if mode == Mode::Refuse {
                    // Failing fast, the load opened the breaker: the recovery above went
                    // through its half-open trial.
                    assert!(during.times_opened >= 1, "{during:?}");
                }
                assert_eq!(status.state, BreakerState::Closed, "{status:?}");
                Ok(())
            }
            .await;
            close(&db).await;
            result
        })
        .await;
    }
}

/// Target 3: a real outage (the proxy never comes back) still fails fast. With the DEFAULT
/// breaker (and 1 s connection timeouts, so that each call into the blackhole fails within
/// 1 s), the breaker opens; from then on calls are rejected with `Error::CircuitOpen` without
/// waiting, only one trial at a time reaches the network, and it keeps failing.
#[tokio::test]
async fn a_real_outage_opens_the_default_breaker_and_calls_then_fail_at_once() {
    const TABLE: &str = "resilience_outage_load";
    for mode in [Mode::Refuse, Mode::Blackhole] {
        let test = match mode {
            Mode::Refuse => "outage_refuse",
            _ => "outage_silent",
        };
        each_server_backend(test, |backend, proxy| async move {
            let second = Duration::from_secs(1);
            let db = Database::new(
                backend,
                through_proxy(backend, test, proxy.port())
                    .pool_size(1, 8)
                    .connection_acquisition_timeout(second)
                    .connection_creation_timeout(second)
                    .query_execution_timeout(Duration::from_secs(2)),
            );
            let result = async {
                create_load_table(&db, TABLE).await?;
                let tally = Arc::new(Tally::default());
                let tasks = start_load(&db, 8, TABLE, &tally);
                let warmed = wait_for_ok(&tally, 0, 50, Duration::from_secs(30)).await;

                proxy.cut_all();
                proxy.set_mode(mode);
                let down = Instant::now();
                let opened = eventually(Duration::from_secs(60), || async {
                    db.circuit_status().times_opened >= 1
                })
                .await;
                let time_to_open = down.elapsed();
                let (ok0, rejected0, failed0) = (
                    tally.ok(),
                    tally.rejected.load(Ordering::SeqCst),
                    tally.failed.load(Ordering::SeqCst),
                );
                // Calls from here on, while the load keeps running: how fast they fail.
                let mut rejected_at_once = 0;
                let mut slowest_rejection = Duration::ZERO;
                let mut other = Vec::new();
                let watch = Instant::now();
                while watch.elapsed() < Duration::from_secs(3) {
                    let start = Instant::now();
                    match one_read(&db).await {
                        Err(Error::CircuitOpen { pool, retry_in }) => {
                            assert_eq!(pool, db.config().get_alias());
                            assert!(retry_in <= Duration::from_secs(30), "{retry_in:?}");
                            rejected_at_once += 1;
                            slowest_rejection = slowest_rejection.max(start.elapsed());
                        }
                        // Our own call may be the trial let through while half-open.
                        r => other.push(r.map_err(|e| e.to_string())),
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let load_rejected = tally.rejected.load(Ordering::SeqCst) - rejected0;
                let load_failed = tally.failed.load(Ordering::SeqCst) - failed0;
                let load_ok = tally.ok() - ok0;
                stop_load(&tally, tasks).await;
                let status = db.circuit_status();
                println!(
                    "MEASURED {backend:?} outage ({mode:?}): breaker open {time_to_open:?} after the outage began; over the next 3 s our calls: {rejected_at_once} rejected at once (slowest {slowest_rejection:?}), {} other ({other:?}); load: {load_rejected} rejected, {load_failed} failed, {load_ok} ok; {status:?}",
                    other.len()
                );
                assert!(warmed, "the load did not run: {}", tally.summary());
                assert!(opened, "{mode:?}: the breaker never opened: {status:?}");
                // Fail fast: rejections happen without touching the network (well under the
                // 1 s acquisition timeout), and most calls are rejected rather than sent.
                assert!(
                    slowest_rejection < Duration::from_millis(250),
                    "{slowest_rejection:?}"
                );
                assert!(other.iter().all(|r| r.is_err()), "{other:?}");
                assert!(rejected_at_once >= 10 * other.len().max(1), "{rejected_at_once} vs {other:?}");
                assert!(load_rejected >= 10 * load_failed.max(1), "{load_rejected} vs {load_failed}");
                assert_eq!(load_ok, 0);
                // It kept probing: trials were let through and failed.
                assert!(status.times_half_opened >= 1, "{status:?}");
                assert_ne!(status.state, BreakerState::Closed, "{status:?}");
                Ok(())
            }
            .await;
            proxy.set_mode(Mode::PassThrough);
            let _ = drop_load_table(&db, TABLE).await;
            close(&db).await;
            result
        })
        .await;
    }
}

// ---- unreachable server: fail fast, open the circuit, recover --------------------------------

#[tokio::test]
async fn an_unreachable_server_fails_fast_opens_the_circuit_and_service_resumes_by_itself() {
    for mode in [Mode::Refuse, Mode::Blackhole] {
        let test = match mode {
            Mode::Refuse => "unreachable_refuse",
            _ => "unreachable_silent",
        };
        each_server_backend(test, |backend, proxy| async move {
            let acquisition = Duration::from_secs(1);
            let open_for = Duration::from_millis(500);
            let config = through_proxy(backend, test, proxy.port())
                .pool_size(1, 4)
                .connection_acquisition_timeout(acquisition)
                .connection_creation_timeout(acquisition)
                .query_execution_timeout(Duration::from_secs(2))
                .circuit_breaker(
                    // One caller, calls of up to 1 s each: a small sample must do.
                    BreakerConfig::default()
                        .minimum_calls(3)
                        .failure_threshold(3)
                        .open_duration(open_for)
                        .max_open_duration(open_for)
                        .success_threshold(2),
                );
            let db = Database::new(backend, config);
            let result = async {
                assert_eq!(one_read(&db).await?, 2);

                proxy.cut_all();
                proxy.set_mode(mode);
                let mut circuit_open = None;
                for _ in 0..30 {
                    let start = Instant::now();
                    let r = one_read(&db).await;
                    let elapsed = start.elapsed();
                    // Fail fast: never past the acquisition timeout plus a margin.
                    assert!(
                        elapsed <= acquisition + Duration::from_millis(1500),
                        "{mode:?}: a call took {elapsed:?} ({r:?})"
                    );
                    match r {
                        Ok(v) => {
                            panic!("{mode:?}: read succeeded ({v}) with the server unreachable")
                        }
                        Err(e @ Error::CircuitOpen { .. }) => {
                            circuit_open = Some(e);
                            break;
                        }
                        Err(e) => assert!(
                            e.is_timeout() || classify(backend, &e) == FailureClass::ConnectionLost,
                            "{mode:?}: {e:?}"
                        ),
                    }
                }
                match circuit_open {
                    Some(Error::CircuitOpen { pool, retry_in }) => {
                        assert_eq!(pool, db.config().get_alias());
                        assert!(retry_in <= open_for, "{retry_in:?}");
                    }
                    other => panic!("{mode:?}: the circuit never opened: {other:?}"),
                }
                let status = db.circuit_status();
                assert!(status.times_opened >= 1, "{status:?}");
                let m = db.pool_metrics().expect("metrics");
                assert!(
                    m.breaker_transitions.get("open").copied().unwrap_or(0) >= 1,
                    "{m:?}"
                );

                // The server is back: service resumes without anyone resetting anything.
                proxy.set_mode(Mode::PassThrough);
                let resumed = eventually(Duration::from_secs(20), || async {
                    one_read(&db).await.is_ok()
                })
                .await;
                assert!(
                    resumed,
                    "{mode:?}: service did not resume: {:?}",
                    db.circuit_status()
                );
                for _ in 0..5 {
                    assert_eq!(one_read(&db).await?, 2);
                }
                assert_eq!(db.circuit_status().state, BreakerState::Closed);
                assert!(
                    eventually(Duration::from_secs(5), || async {
                        db.pool_status().size >= 1
                    })
                    .await,
                    "{:?}",
                    db.pool_status()
                );
                Ok(())
            }
            .await;
            close(&db).await;
            result
        })
        .await;
    }
}

#[tokio::test]
async fn added_latency_slows_statements_down_without_breaking_them() {
    each_server_backend("latency", |backend, proxy| async move {
        let db = Database::new(backend, through_proxy(backend, "latency", proxy.port()));
        let result = async {
            proxy.set_mode(Mode::Latency(Duration::from_millis(20)));
            let mut conn = db.async_connection().await?;
            fresh_table(&mut conn, "resilience_latency").await?;
            conn.execute("CREATE TABLE [resilience_latency] ([a] INTEGER)", ())
                .await?;
            conn.begin_transaction().await?;
            conn.execute(
                "INSERT INTO [resilience_latency] ([a]) VALUES (?)",
                params![1],
            )
            .await?;
            conn.commit_transaction().await?;
            assert_eq!(count_rows(&mut conn, "resilience_latency").await?, 1);
            proxy.set_mode(Mode::PassThrough);
            conn.execute("DROP TABLE [resilience_latency]", ()).await?;
            Ok(())
        }
        .await;
        close(&db).await;
        result
    })
    .await;
}

// ---- the breaker ignores errors in statements ------------------------------------------------

#[tokio::test]
async fn a_syntax_error_repeated_100_times_never_opens_the_breaker() {
    each_backend_with(
        "syntax_breaker",
        |c| c.circuit_breaker(BreakerConfig::default().failure_threshold(3)),
        |db| async move {
            let mut conn = db.async_connection().await?;
            for i in 0..100 {
                let e = conn.execute("SELEC 1", ()).await.unwrap_err();
                assert!(matches!(e, Error::Database { .. }), "attempt {i}: {e:?}");
            }
            let status = db.circuit_status();
            assert_eq!(status.state, BreakerState::Closed, "{status:?}");
            assert_eq!(status.recent_failures, 0, "{status:?}");
            assert_eq!(status.times_opened, 0, "{status:?}");
            drop(conn);
            assert_eq!(one_read(&db).await?, 2);
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn timeouts_the_server_confirmed_cancelling_never_open_the_default_breaker() {
    each_backend("slow_not_down", |db| async move {
        let mut conn = db.async_connection().await?;
        // 25 in a row: counted as failures they would be 100 % of more than the 20 calls the
        // default breaker needs. The server answered every cancel: it is slow, not down.
        for i in 0..25 {
            let e = conn
                .execute(&slow_sql(db.backend(), 20), ())
                .timeout(Duration::from_millis(100))
                .await
                .unwrap_err();
            assert_eq!(e.timeout_kind(), Some(TimeoutKind::Query), "{i}: {e:?}");
        }
        for _ in 0..25 {
            assert_eq!(
                conn.execute("SELECT 1 + 1", ()).await?[0].try_get::<i64, _>(0)?,
                2
            );
        }
        let status = db.circuit_status();
        assert_eq!(status.times_opened, 0, "{status:?}");
        assert_eq!(
            (status.recent_calls, status.recent_failures),
            (50, 0),
            "{status:?}"
        );
        Ok(())
    })
    .await;
}

// ---- unit tests: backoff, classification, breaker -------------------------------------------

#[tokio::test(start_paused = true)]
async fn backoff_delays_stay_under_the_exponential_ceiling_and_the_retry_count() {
    let policy = RetryPolicy::default();
    let ceilings = [100, 200, 400].map(Duration::from_millis);
    let (mut lowest, mut highest) = (Duration::MAX, Duration::ZERO);
    for _ in 0..1000 {
        let mut backoff = policy.backoff();
        let mut delays = Vec::new();
        while let Some(d) = backoff.next_delay() {
            delays.push(d);
        }
        assert_eq!(delays.len(), 3, "{delays:?}");
        for (d, ceiling) in delays.iter().zip(ceilings) {
            assert!(*d <= ceiling, "{d:?} above {ceiling:?}");
        }
        lowest = lowest.min(delays[0]);
        highest = highest.max(delays[0]);
    }
    // Full jitter: the first delay spreads over [0, 100 ms].
    assert!(lowest < Duration::from_millis(25), "{lowest:?}");
    assert!(highest > Duration::from_millis(75), "{highest:?}");
    assert_eq!(policy.delay_ceiling(30), Duration::from_secs(10));
    assert_eq!(RetryPolicy::none().backoff().next_delay(), None);
}

#[tokio::test(start_paused = true)]
async fn backoff_starts_no_retry_past_the_time_budget() {
    let budget = Duration::from_secs(2);
    let policy = RetryPolicy::default()
        .max_retries(100)
        .base_delay(Duration::from_millis(300))
        .max_delay(Duration::from_secs(1))
        .budget(budget);
    for _ in 0..50 {
        let start = tokio::time::Instant::now();
        let mut backoff = policy.backoff();
        loop {
            // Each attempt takes 250 ms of (paused, auto-advanced) time.
            tokio::time::sleep(Duration::from_millis(250)).await;
            let Some(d) = backoff.next_delay() else { break };
            tokio::time::sleep(d).await;
            assert!(
                start.elapsed() <= budget,
                "a retry started at {:?}",
                start.elapsed()
            );
        }
        assert!(backoff.retries() < 100);
    }
}

#[test]
fn failures_are_classified_per_backend() {
    use Backend::*;
    use FailureClass::*;
    let db = |code: &str| Error::Database {
        code: Some(code.to_owned()),
        message: String::new(),
        constraint: None,
        kind: DbErrorKind::Other,
    };
    let table: &[(Backend, Error, FailureClass)] = &[
        (Postgres, Error::Connection("reset".into()), ConnectionLost),
        (Postgres, db("40001"), Conflict),
        (Postgres, db("40P01"), Conflict),
        (Postgres, db("57P01"), ConnectionLost),
        (Postgres, db("08006"), ConnectionLost),
        (Postgres, db("08001"), ConnectionLost),
        (Postgres, db("57P02"), ConnectionLost),
        (Postgres, db("57P03"), ConnectionLost),
        (Postgres, db("08P01"), ConnectionLost),
        (Postgres, db("0800"), Permanent),  // not a SQLSTATE
        (Postgres, db("42601"), Permanent), // syntax error
        (Postgres, db("23505"), Permanent), // unique violation
        (Postgres, db("57014"), Permanent), // cancelled by the user
        (Postgres, db("1213"), Permanent),  // a MySQL number means nothing here
        (
            MySql,
            Error::Connection("broken pipe".into()),
            ConnectionLost,
        ),
        (MySql, db("1213"), Conflict),
        (MySql, db("1205"), Conflict),
        (MySql, db("2006"), ConnectionLost),
        (MySql, db("2013"), ConnectionLost),
        (MySql, db("1927"), ConnectionLost), // MariaDB: connection killed
        (MySql, db("1053"), ConnectionLost), // server shutdown in progress
        (MySql, db("1317"), Permanent),      // query interrupted (KILL QUERY): not a loss
        (MySql, db("1064"), Permanent),      // syntax error
        (MySql, db("1062"), Permanent),      // duplicate key
        (MySql, db("40001"), Permanent),
        (Sqlite, db("5"), Conflict),
        (Sqlite, db("6"), Conflict),
        (Sqlite, db("517"), Conflict),   // BUSY_SNAPSHOT
        (Sqlite, db("261"), Conflict),   // BUSY_RECOVERY
        (Sqlite, db("262"), Conflict),   // LOCKED_SHAREDCACHE
        (Sqlite, db("1"), Permanent),    // SQL error
        (Sqlite, db("2067"), Permanent), // unique constraint
        (Sqlite, db("9"), Permanent),    // interrupted
    ];
    for (backend, error, expected) in table {
        assert_eq!(
            classify(*backend, error),
            *expected,
            "{backend:?} {error:?}"
        );
    }
    for backend in [Postgres, MySql, Sqlite] {
        let timeout = Error::Timeout {
            kind: TimeoutKind::Query,
            limit: Duration::from_secs(1),
            elapsed: Duration::from_secs(1),
        };
        assert_eq!(classify(backend, &timeout), Permanent);
        assert_eq!(
            classify(
                backend,
                &Error::Sql {
                    message: String::new(),
                    position: 0
                }
            ),
            Permanent
        );
        assert_eq!(
            classify(
                backend,
                &Error::Database {
                    code: None,
                    message: String::new(),
                    constraint: None,
                    kind: DbErrorKind::Other,
                }
            ),
            Permanent
        );
    }
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_half_opens_and_closes_as_configured() {
    use BreakerState::*;
    let advance = |secs: u64| tokio::time::advance(Duration::from_secs(secs));
    let b = CircuitBreaker::new(
        BreakerConfig::default()
            .failure_rate(0.5)
            .minimum_calls(4)
            .failure_threshold(3)
            .failure_window(Duration::from_secs(10))
            .open_duration(Duration::from_secs(5))
            .max_open_duration(Duration::from_secs(5))
            .success_threshold(2),
    );
    // Calls older than the window do not count.
    assert_eq!(b.on_failure(), None);
    assert_eq!(b.on_failure(), None);
    assert_eq!(b.on_failure(), None);
    advance(11).await;
    assert_eq!(b.on_failure(), None);
    assert_eq!(b.status().recent_failures, 1);
    // Successes count as calls: 3 failures of 6 calls (50 %) open it, not 2 of 5.
    for _ in 0..3 {
        assert_eq!(b.on_success(), None);
    }
    assert_eq!(b.on_failure(), None);
    assert_eq!(
        (b.status().recent_calls, b.status().recent_failures),
        (5, 2)
    );
    assert_eq!(
        b.on_failure(),
        Some(Transition {
            from: Closed,
            to: Open
        })
    );
    assert_eq!(b.state(), Open);
    let retry_in = b.try_acquire().unwrap_err();
    assert!(retry_in <= Duration::from_secs(5) && retry_in > Duration::ZERO);
    // Results of calls let in before it opened change nothing.
    assert_eq!(b.on_failure(), None);
    assert_eq!(b.on_success(), None);
    advance(4).await;
    assert!(b.try_acquire().is_err());
    advance(1).await;
    // The first call after the open period half-opens it; a failure opens it again.
    assert_eq!(
        b.try_acquire(),
        Ok(Some(Transition {
            from: Open,
            to: HalfOpen
        }))
    );
    assert_eq!(b.try_acquire(), Ok(None));
    assert_eq!(
        b.on_failure(),
        Some(Transition {
            from: HalfOpen,
            to: Open
        })
    );
    assert!(b.try_acquire().is_err());
    advance(5).await;
    assert_eq!(
        b.try_acquire(),
        Ok(Some(Transition {
            from: Open,
            to: HalfOpen
        }))
    );
    assert_eq!(b.on_success(), None);
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
        (
            s.state,
            s.times_opened,
            s.times_half_opened,
            s.times_closed,
            s.recent_failures
        ),
        (Closed, 2, 2, 1, 0)
    );
    // Closed again with a clean slate: it takes a full sample of new failures to open.
    assert_eq!(b.on_failure(), None);
    assert_eq!(b.on_failure(), None);
    assert_eq!(b.state(), Closed);

    let disabled = CircuitBreaker::new(BreakerConfig::disabled().minimum_calls(1));
    for _ in 0..10 {
        assert_eq!(disabled.on_failure(), None);
    }
    assert_eq!(disabled.try_acquire(), Ok(None));
}

#[test]
fn retry_and_breaker_settings_do_not_change_the_pool_key() {
    let base = DatabaseConfig::new("db");
    let tuned = base
        .clone()
        .retry_policy(RetryPolicy::none())
        .circuit_breaker(BreakerConfig::disabled());
    assert_eq!(base.hash(), tuned.hash());
    assert_eq!(tuned.get_retry_policy().get_max_retries(), 0);
    assert!(!tuned.get_circuit_breaker().is_enabled());
    let d = DatabaseConfig::new("db");
    let (p, b) = (d.get_retry_policy(), d.get_circuit_breaker());
    assert_eq!(
        (
            p.get_max_retries(),
            p.get_base_delay(),
            p.get_max_delay(),
            p.get_budget()
        ),
        (
            3,
            Duration::from_millis(100),
            Duration::from_secs(10),
            Duration::from_secs(30)
        )
    );
    assert_eq!(
        (
            b.get_failure_rate(),
            b.get_minimum_calls(),
            b.get_failure_threshold(),
            b.get_failure_window()
        ),
        (0.5, 20, 5, Duration::from_secs(10))
    );
    assert_eq!(
        (
            b.get_open_duration(),
            b.get_max_open_duration(),
            b.get_success_threshold(),
            b.get_half_open_calls()
        ),
        (Duration::from_secs(1), Duration::from_secs(30), 1, 1)
    );
}
