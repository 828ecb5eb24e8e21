//! The four timeouts on every backend, from the seed's own tests: acquisition, query (explicit
//! and from config), pool creation, connection creation, and a timeout inside a transaction.

mod common;

use std::time::{Duration, Instant};

use common::{each_backend, each_backend_with, fresh_table, silent_server, slow_sql};
use dal::prelude::*;

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
