//! Taking leaked connections back (`PoolTuning::reclaim_leaks`) and sizing a pool from the
//! server's `max_connections` (`DatabaseConfig::expected_app_servers`), on every backend.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::time::{Duration, Instant};

use common::{each_backend_with, fresh_table};
use dal::prelude::*;
use dal::PoolTuning;

/// A connection held past `reclaim_leaks` is taken back: another caller gets its slot at
/// once (pool of one), the holder's next call fails with "reclaimed after …", its open
/// transaction is not committed, and the counts stay right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_held_too_long_is_reclaimed_and_its_holder_told() {
    each_backend_with(
        "pool_reclaim",
        |c| {
            c.pool_size(1, 1)
                .connection_acquisition_timeout(Duration::from_secs(5))
        },
        |db| async move {
            let mut setup = db.async_connection().await?;
            fresh_table(&mut setup, "reclaimed_rows").await?;
            setup
                .execute(
                    "CREATE TABLE [reclaimed_rows] ([id] INTEGER PRIMARY KEY)",
                    (),
                )
                .await?;
            drop(setup);
            db.set_pool_tuning(
                PoolTuning::default().reclaim_leaks(Some(Duration::from_millis(300))),
            );
            let mut leaked = db.async_connection().await?;
            leaked.begin_transaction().await?;
            leaked
                .execute("INSERT INTO [reclaimed_rows] ([id]) VALUES (1)", ())
                .await?;
            // The pool's only connection is held: the next caller gets it back once reclaimed.
            let start = Instant::now();
            let mut other = db.async_connection().await?;
            let waited = start.elapsed();
            assert!(
                waited >= Duration::from_millis(250) && waited < Duration::from_secs(4),
                "waited {waited:?}"
            );
            let e = leaked
                .execute("SELECT 1 AS [one]", ())
                .await
                .expect_err("a reclaimed connection must fail");
            assert!(matches!(e, Error::Connection(_)), "{e:?}");
            assert!(e.to_string().contains("reclaimed after"), "{e}");
            // For good: a commit does not go through either.
            assert!(leaked.commit_transaction().await.is_err());
            drop(leaked);
            let m = db.pool_metrics().unwrap();
            assert_eq!(m.connections_reclaimed, 1, "{m:?}");
            assert!(
                PoolManager::prometheus_text().contains("dal_pool_connections_reclaimed_total"),
            );
            db.set_pool_tuning(PoolTuning::default());
            // The reclaimed transaction's insert was never committed.
            let rows = other
                .execute("SELECT COUNT(*) AS [n] FROM [reclaimed_rows]", ())
                .await?;
            assert_eq!(rows[0].try_get::<i64, _>("n")?, 0);
            drop(other);
            // Counts are right afterwards: nothing in use, and the pool lends again.
            let back = common::eventually(Duration::from_secs(5), || async {
                db.pool_status().in_use == 0
            })
            .await;
            assert!(back, "{:?}", db.pool_status());
            let mut again = db.async_connection().await?;
            again.execute("SELECT 1 AS [one]", ()).await?;
            Ok(())
        },
    )
    .await;
}

/// `expected_app_servers` sizes the pool from the server's `max_connections` (a tenth, at
/// least 3, kept in reserve); an explicit pool size wins; SQLite keeps its bounds.
#[tokio::test]
async fn expected_app_servers_sizes_the_pool_from_max_connections() {
    each_backend_with(
        "pool_auto_size",
        |c| c.expected_app_servers(4),
        |db| async move {
            let mut conn = db.async_connection().await?;
            let limit: Option<i64> = match db.backend() {
                Backend::Postgres => Some(
                    conn.execute(
                        "SELECT CAST(current_setting('max_connections') AS INT8) AS [n]",
                        (),
                    )
                    .await?[0]
                        .try_get("n")?,
                ),
                Backend::MySql => Some(
                    conn.execute("SELECT CAST(@@max_connections AS SIGNED) AS [n]", ())
                        .await?[0]
                        .try_get("n")?,
                ),
                _ => None,
            };
            drop(conn);
            let expected = match limit {
                Some(n) => {
                    let n = usize::try_from(n).unwrap();
                    ((n - (n / 10).max(3)) / 4).clamp(2, 100)
                }
                None => 20,
            };
            assert_eq!(
                db.pool_status().max_size,
                expected,
                "max_connections {limit:?}"
            );
            Ok(())
        },
    )
    .await;
    each_backend_with(
        "pool_auto_size_explicit",
        |c| c.expected_app_servers(4).pool_size(1, 5),
        |db| async move {
            db.async_connection().await?;
            assert_eq!(db.pool_status().max_size, 5);
            Ok(())
        },
    )
    .await;
    // Part of the hash: a sized pool never shares with an unsized one.
    let c = DatabaseConfig::new("x");
    assert_ne!(c.hash(), c.clone().expected_app_servers(4).hash());
    assert!(DatabaseConfig::from_url("postgres://h/db?expected_app_servers=0").is_err());
    assert_eq!(
        DatabaseConfig::from_url("postgres://h/db?expected_app_servers=3")
            .unwrap()
            .get_expected_app_servers(),
        Some(3)
    );
}
