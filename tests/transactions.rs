//! Transactions on every backend: commit, rollback, and connections dropped with a transaction
//! open (also from a cancelled task) are rolled back before anyone else can borrow them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

mod common;

use std::time::Duration;

use common::{each_backend, each_backend_with, eventually, fresh_table, slow_sql};
use dal::prelude::*;

async fn count(conn: &mut Connection, table: &str) -> dal::Result<i64> {
    conn.execute(&format!("SELECT COUNT(*) FROM [{table}]"), ())
        .await?[0]
        .try_get(0)
}

#[tokio::test]
async fn commit_keeps_and_rollback_discards() {
    each_backend("tx_commit_rollback", |db| async move {
        let mut conn = db.async_connection().await?;
        fresh_table(&mut conn, "tx_basic").await?;
        conn.execute("CREATE TABLE [tx_basic] ([a] INTEGER)", ())
            .await?;

        conn.begin_transaction().await?;
        assert!(conn.in_transaction());
        conn.execute("INSERT INTO [tx_basic] ([a]) VALUES (?)", params![1])
            .await?;
        conn.commit_transaction().await?;
        assert!(!conn.in_transaction());

        conn.begin_transaction().await?;
        conn.execute("INSERT INTO [tx_basic] ([a]) VALUES (?)", params![2])
            .await?;
        conn.rollback_transaction().await?;
        assert!(!conn.in_transaction());
        assert_eq!(count(&mut conn, "tx_basic").await?, 1);

        // Misuse is an error, not a panic.
        assert!(matches!(
            conn.commit_transaction().await,
            Err(Error::Transaction(_))
        ));
        conn.begin_transaction().await?;
        assert!(matches!(
            conn.begin_transaction().await,
            Err(Error::Transaction(_))
        ));
        conn.rollback_transaction().await?;
        Ok(())
    })
    .await;
}

/// A second pool on the same database, to look from outside the connection under test.
fn observer(db: &Database) -> Database {
    Database::new(
        db.backend(),
        db.config()
            .clone()
            .alias(format!("{}-observer", db.config().get_alias())),
    )
}

#[tokio::test]
async fn dropped_connection_with_open_transaction_is_rolled_back_before_reuse() {
    each_backend_with(
        "tx_drop",
        |c| c.pool_size(1, 1),
        |db| async move {
            let mut conn = db.async_connection().await?;
            fresh_table(&mut conn, "tx_dropped").await?;
            conn.execute("CREATE TABLE [tx_dropped] ([a] INTEGER)", ())
                .await?;
            conn.begin_transaction().await?;
            conn.execute("INSERT INTO [tx_dropped] ([a]) VALUES (?)", params![1])
                .await?;
            drop(conn);

            // Pool of one: the next borrower gets the same physical connection, only after rollback.
            let mut next = db.async_connection().await?;
            assert!(!next.in_transaction());
            assert_eq!(count(&mut next, "tx_dropped").await?, 0);
            // It is not inside a leftover transaction: its autocommit write is visible outside.
            next.execute("INSERT INTO [tx_dropped] ([a]) VALUES (?)", params![2])
                .await?;
            drop(next);
            let obs = observer(&db);
            let mut o = obs.async_connection().await?;
            assert_eq!(count(&mut o, "tx_dropped").await?, 1);
            drop(o);
            PoolManager::close_pool(Some(obs.hash()), Duration::from_secs(5)).await?;
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn cancelled_task_inside_a_transaction_never_commits() {
    each_backend_with(
        "tx_cancel",
        |c| c.pool_size(1, 2),
        |db| async move {
            let mut setup = db.async_connection().await?;
            fresh_table(&mut setup, "tx_cancelled").await?;
            setup
                .execute("CREATE TABLE [tx_cancelled] ([a] INTEGER)", ())
                .await?;
            drop(setup);

            let db2 = db.clone();
            let backend = db.backend();
            let (started_tx, started_rx) = tokio::sync::oneshot::channel();
            let task = tokio::spawn(async move {
                let mut conn = db2.async_connection().await?;
                conn.begin_transaction().await?;
                conn.execute("INSERT INTO [tx_cancelled] ([a]) VALUES (?)", params![1])
                    .await?;
                let _ = started_tx.send(());
                // Long statement: the task is aborted while it runs.
                conn.execute(&slow_sql(backend, 20), ())
                    .timeout(Duration::from_secs(60))
                    .await?;
                conn.commit_transaction().await
            });
            started_rx
                .await
                .map_err(|_| Error::Internal("task ended early".into()))?;
            // Abort wherever the task is now: inside the transaction, with an uncommitted write,
            // before or during the slow statement. Every such point must be safe.
            task.abort();
            let _ = task.await;

            // The aborted connection is closed, never handed on: the pool shrinks back.
            assert!(
                eventually(Duration::from_secs(10), || async {
                    db.pool_status().in_use == 0
                })
                .await,
                "aborted connection was not given back"
            );
            let mut next = db.async_connection().await?;
            assert!(!next.in_transaction());
            assert_eq!(count(&mut next, "tx_cancelled").await?, 0);
            Ok(())
        },
    )
    .await;
}
