//! The four timeouts on every backend, from the seed's own tests: acquisition, query (explicit
//! and from config), pool creation, connection creation, and a timeout inside a transaction.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

mod common;

use std::time::{Duration, Instant};

use common::proxy::{Mode, Proxy};
use common::{
    each_backend, each_backend_with, fresh_table, silent_server, slow_sql, through_proxy,
};
use dal::prelude::*;

/// The tests that time statements out on the server take turns: MariaDB answers a killed
/// `SLEEP()` late (hundreds of ms, sometimes past the cancel grace) while other sessions are
/// being killed at the same moment, which would make "near its deadline" depend on the
/// neighbouring tests rather than on dal.
static SERVER_CANCELS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Generous margins: these check that the timeout fired near its deadline, not speed.
fn assert_near(elapsed: Duration, deadline: Duration) {
    assert!(
        elapsed >= deadline.mul_f32(0.9),
        "fired early: {elapsed:?} for {deadline:?}"
    );
    assert!(
        elapsed <= deadline + Duration::from_millis(1500),
        "fired late: {elapsed:?} for {deadline:?}"
    );
}

#[tokio::test]
async fn query_timeout_fires_near_the_deadline_and_the_connection_still_works() {
    let _turn = SERVER_CANCELS.lock().await;
    each_backend("query_timeout", |db| async move {
        let mut conn = db.async_connection().await?;
        let deadline = Duration::from_millis(300);
        let start = Instant::now();
        let e = conn
            .execute(&slow_sql(db.backend(), 20), ())
            .timeout(deadline)
            .await
            .unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        assert_eq!(e.timeout_kind(), Some(TimeoutKind::Query));
        assert_near(start.elapsed(), deadline);
        // Same connection, next statement: clean.
        let rows = conn.execute("SELECT 1 + 1", ()).await?;
        assert_eq!(rows[0].try_get::<i64, _>(0)?, 2);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn config_query_timeout_applies_when_no_per_query_timeout_is_given() {
    let _turn = SERVER_CANCELS.lock().await;
    each_backend_with(
        "config_query_timeout",
        |c| c.query_execution_timeout(Duration::from_millis(300)),
        |db| async move {
            let mut conn = db.async_connection().await?;
            let start = Instant::now();
            let e = conn
                .execute(&slow_sql(db.backend(), 20), ())
                .await
                .unwrap_err();
            assert_eq!(e.timeout_kind(), Some(TimeoutKind::Query), "{e:?}");
            assert_near(start.elapsed(), Duration::from_millis(300));
            // An explicit per-query timeout overrides the configured one.
            let rows = conn
                .execute(&slow_sql(db.backend(), 0), ())
                .timeout(Duration::from_secs(30))
                .await?;
            assert_eq!(rows.len(), 1);
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn timeout_inside_a_transaction_leaves_it_for_the_caller_to_roll_back() {
    let _turn = SERVER_CANCELS.lock().await;
    each_backend("tx_timeout", |db| async move {
        let mut conn = db.async_connection().await?;
        fresh_table(&mut conn, "tx_timeout").await?;
        conn.execute("CREATE TABLE [tx_timeout] ([a] INTEGER)", ())
            .await?;
        conn.begin_transaction().await?;
        conn.execute("INSERT INTO [tx_timeout] ([a]) VALUES (?)", params![1])
            .await?;
        let e = conn
            .execute(&slow_sql(db.backend(), 20), ())
            .timeout(Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(e.is_timeout(), "{e:?}");
        assert!(conn.in_transaction());
        conn.rollback_transaction().await?;
        let n: i64 = conn
            .execute("SELECT COUNT(*) FROM [tx_timeout]", ())
            .await?[0]
            .try_get(0)?;
        assert_eq!(n, 0);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn acquisition_times_out_when_the_pool_is_exhausted() {
    each_backend_with(
        "acquire_timeout",
        |c| {
            c.pool_size(1, 1)
                .connection_acquisition_timeout(Duration::from_millis(300))
        },
        |db| async move {
            let held = db.async_connection().await?;
            let start = Instant::now();
            let e = db.async_connection().await.unwrap_err();
            assert_eq!(e.timeout_kind(), Some(TimeoutKind::Acquire), "{e:?}");
            assert_near(start.elapsed(), Duration::from_millis(300));
            drop(held);
            // Once released, the connection is lent again at once.
            let mut again = db.async_connection().await?;
            again.execute("SELECT 1", ()).await?;
            let m = PoolManager::get_pool_metrics(db.hash()).expect("metrics");
            assert!(m.timeouts[&TimeoutKind::Acquire] >= 1);
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn pool_creation_and_connection_creation_time_out_against_a_silent_server() {
    let (port, server) = silent_server().await;
    for kind in ["postgres", "mysql"] {
        // Pool creation: the whole setup is bounded by pool_creation_timeout.
        let config = DatabaseConfig::new("db")
            .host("127.0.0.1")
            .port(port)
            .alias(format!("silent-pool-{kind}"))
            .pool_creation_timeout(Duration::from_millis(300))
            .connection_creation_timeout(Duration::from_secs(5));
        let db = DatabaseFactory::create_database(kind, config).unwrap();
        let start = Instant::now();
        let e = db.async_connection().await.unwrap_err();
        assert_eq!(
            e.timeout_kind(),
            Some(TimeoutKind::PoolCreation),
            "{kind}: {e:?}"
        );
        assert_near(start.elapsed(), Duration::from_millis(300));

        // Connection creation: one connection attempt is bounded by connection_creation_timeout.
        let config = DatabaseConfig::new("db")
            .host("127.0.0.1")
            .port(port)
            .alias(format!("silent-conn-{kind}"))
            .connection_creation_timeout(Duration::from_millis(300));
        let db = DatabaseFactory::create_database(kind, config).unwrap();
        let start = Instant::now();
        let e = db.async_connection().await.unwrap_err();
        assert_eq!(
            e.timeout_kind(),
            Some(TimeoutKind::ConnectionCreation),
            "{kind}: {e:?}"
        );
        assert_near(start.elapsed(), Duration::from_millis(300));

        // Whatever the other timeouts, the caller never waits past the acquisition timeout.
        let config = DatabaseConfig::new("db")
            .host("127.0.0.1")
            .port(port)
            .alias(format!("silent-acq-{kind}"))
            .connection_acquisition_timeout(Duration::from_millis(300));
        let db = DatabaseFactory::create_database(kind, config).unwrap();
        let start = Instant::now();
        let e = db.async_connection().await.unwrap_err();
        assert!(e.is_timeout(), "{kind}: {e:?}");
        assert_near(start.elapsed(), Duration::from_millis(300));
    }
    server.abort();
}

/// The documented bound: a query timeout error comes at most this long after the deadline.
const TIMEOUT_ERROR_BOUND: Duration = Duration::from_secs(2);

/// Runs `slow_sql` with a 300 ms timeout on each of `conns` at once (each in its own task) and
/// returns, per connection, the error and how long after the deadline it came (measured from
/// just before the call, so a little stricter than the library's own deadline).
async fn time_out_together(
    backend: Backend,
    conns: Vec<Connection>,
) -> Vec<(Connection, Error, Duration)> {
    let deadline = Duration::from_millis(300);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let start = Instant::now();
                let r = c
                    .execute(&slow_sql(backend, 20), ())
                    .timeout(deadline)
                    .await;
                let past = start.elapsed().saturating_sub(deadline);
                (c, r, past)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        let (c, r, past) = t.await.expect("statement task");
        match r {
            Err(e) => out.push((c, e, past)),
            Ok(rows) => panic!("{backend:?}: a 20 s statement finished within 300 ms: {rows:?}"),
        }
    }
    out
}

#[tokio::test]
async fn the_timeout_error_comes_within_2_s_of_the_deadline_even_when_the_cancel_cannot_be_delivered(
) {
    let _turn = SERVER_CANCELS.lock().await;
    for backend in common::selected() {
        if backend == Backend::Sqlite {
            continue; // no network to partition
        }
        let test = "cancel_partitioned";
        let proxy = Proxy::start(common::server_port(backend, test)).await;
        let db = Database::new(
            backend,
            through_proxy(backend, test, proxy.port()).pool_size(1, 8),
        );
        let mut conns = Vec::new();
        for _ in 0..8 {
            let mut c = db.async_connection().await.expect("connection");
            c.execute("SELECT 1", ()).await.expect("alive");
            conns.push(c);
        }
        // The network to the server goes silent: the statements never get an answer and the
        // cancel requests (new connections) are never answered either.
        proxy.set_mode(Mode::Blackhole);
        let results = time_out_together(backend, conns).await;
        let worst = results.iter().map(|r| r.2).max().unwrap_or_default();
        println!("MEASURED {backend:?} cancel undeliverable, 8 at once: latest error {worst:?} after the deadline");
        for (_, e, past) in &results {
            assert_eq!(
                e.timeout_kind(),
                Some(TimeoutKind::Query),
                "{backend:?}: {e:?}"
            );
            assert!(
                *past <= TIMEOUT_ERROR_BOUND,
                "{backend:?}: the timeout error came {past:?} after the deadline"
            );
        }
        // Not confirmed by the server: those connections are not reused.
        drop(results);
        proxy.set_mode(Mode::PassThrough);
        let mut c = db
            .async_connection()
            .await
            .expect("connection after the partition");
        assert_eq!(
            c.execute("SELECT 1 + 1", ()).await.expect("read")[0]
                .try_get::<i64, _>(0)
                .expect("int"),
            2
        );
        drop(c);
        let _ = PoolManager::close_pool(Some(db.hash()), Duration::from_secs(10)).await;
    }
}

#[tokio::test]
async fn eight_statements_timing_out_together_each_fail_within_2_s_of_their_deadline() {
    let _turn = SERVER_CANCELS.lock().await;
    each_backend_with(
        "timeouts_together",
        |c| c.pool_size(1, 8),
        |db| async move {
            let backend = db.backend();
            let mut worst = Duration::ZERO;
            for _ in 0..3 {
                let mut conns = Vec::new();
                for _ in 0..8 {
                    conns.push(db.async_connection().await?);
                }
                for (mut c, e, past) in time_out_together(backend, conns).await {
                    assert_eq!(e.timeout_kind(), Some(TimeoutKind::Query), "{e:?}");
                    assert!(
                        past <= TIMEOUT_ERROR_BOUND,
                        "the timeout error came {past:?} after the deadline"
                    );
                    worst = worst.max(past);
                    // Cancelled on the server and drained: the connection is clean.
                    assert_eq!(c.execute("SELECT 1 + 1", ()).await?[0].try_get::<i64, _>(0)?, 2);
                }
            }
            println!("MEASURED {backend:?} 8 timeouts at once x3: latest error {worst:?} after the deadline");
            Ok(())
        },
    )
    .await;
}
