//! `#[auto_transaction]` on every backend: commit on `Ok`, rollback on `Err`, panic and
//! cancellation, nested calls that commit once at the outermost level, custom error types, and
//! the blocking twin on `SyncConnection`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

mod common;

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use common::{each_backend, fresh_table, slow_sql};
use dal::prelude::*;
use futures_util::FutureExt;

async fn count(conn: &mut Connection, table: &str) -> dal::Result<i64> {
    conn.execute(&format!("SELECT COUNT(*) FROM [{table}]"), ())
        .await?[0]
        .try_get(0)
}

async fn create(conn: &mut Connection, table: &str) -> dal::Result<()> {
    fresh_table(conn, table).await?;
    conn.execute(&format!("CREATE TABLE [{table}] ([a] INTEGER)"), ())
        .await?;
    Ok(())
}

async fn insert(conn: &mut Connection, table: &str, a: i64) -> dal::Result<()> {
    conn.execute(
        &format!("INSERT INTO [{table}] ([a]) VALUES (?)"),
        params![a],
    )
    .await?;
    Ok(())
}

fn deliberate(what: &str) -> Error {
    Error::Internal(format!("deliberate failure: {what}"))
}

#[auto_transaction]
async fn insert_two(conn: &mut Connection, table: &str, fail: bool) -> dal::Result<()> {
    insert(conn, table, 1).await?;
    insert(conn, table, 2).await?;
    if fail {
        return Err(deliberate("after two inserts"));
    }
    Ok(())
}

#[tokio::test]
async fn err_result_rolls_back_every_write() {
    each_backend("at_err", |db| async move {
        let mut conn = db.async_connection().await?;
        create(&mut conn, "at_err").await?;
        let e = insert_two(&mut conn, "at_err", true).await.unwrap_err();
        assert!(e.to_string().contains("deliberate"), "{e}");
        assert!(!conn.in_transaction());
        assert_eq!(count(&mut conn, "at_err").await?, 0);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn ok_result_commits() {
    each_backend("at_ok", |db| async move {
        let mut conn = db.async_connection().await?;
        create(&mut conn, "at_ok").await?;
        insert_two(&mut conn, "at_ok", false).await?;
        assert!(!conn.in_transaction());
        // Committed: visible from another connection.
        let mut other = db.async_connection().await?;
        assert_eq!(count(&mut other, "at_ok").await?, 2);
        Ok(())
    })
    .await;
}

/// An annotated method with a `&self` receiver, used as the inner call below.
struct Repo {
    table: &'static str,
}

impl Repo {
    #[auto_transaction]
    async fn add(&self, conn: &mut Connection, a: i64) -> dal::Result<()> {
        insert(conn, self.table, a).await
    }
}

/// Two `&mut Connection` parameters: `#[conn]` says which one carries the transaction.
#[auto_transaction]
async fn add_twice_through_repo(
    #[conn] conn: &mut Connection,
    observer: &mut Connection,
    repo: &Repo,
    fail: bool,
) -> dal::Result<()> {
    repo.add(conn, 1).await?;
    assert!(
        conn.in_transaction(),
        "the inner call joined, it did not commit"
    );
    assert!(!observer.in_transaction());
    assert_eq!(
        count(observer, repo.table).await?,
        0,
        "the inner write is not visible outside before the outer commit"
    );
    repo.add(conn, 2).await?;
    if fail {
        return Err(deliberate("after the inner calls succeeded"));
    }
    Ok(())
}

#[tokio::test]
async fn nested_calls_commit_once_at_the_outermost_level() {
    each_backend("at_nested", |db| async move {
        let mut conn = db.async_connection().await?;
        let mut observer = db.async_connection().await?;
        create(&mut conn, "at_nested").await?;
        let repo = Repo { table: "at_nested" };

        // The outer function fails after both inner calls returned Ok: nothing persists.
        add_twice_through_repo(&mut conn, &mut observer, &repo, true)
            .await
            .unwrap_err();
        assert!(!conn.in_transaction());
        assert_eq!(count(&mut observer, "at_nested").await?, 0);

        // The outer function succeeds: both inner writes are committed together.
        add_twice_through_repo(&mut conn, &mut observer, &repo, false).await?;
        assert!(!conn.in_transaction());
        assert_eq!(count(&mut observer, "at_nested").await?, 2);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn annotated_call_joins_a_transaction_the_caller_opened() {
    each_backend("at_join", |db| async move {
        let mut conn = db.async_connection().await?;
        create(&mut conn, "at_join").await?;
        conn.begin_transaction().await?;
        insert_two(&mut conn, "at_join", false).await?;
        assert!(
            conn.in_transaction(),
            "the caller's transaction is still open"
        );
        conn.rollback_transaction().await?;
        assert_eq!(count(&mut conn, "at_join").await?, 0);
        Ok(())
    })
    .await;
}

#[auto_transaction]
async fn insert_then_panic(conn: &mut Connection, table: &str) -> dal::Result<()> {
    insert(conn, table, 1).await?;
    panic!("deliberate panic inside #[auto_transaction]");
}

#[tokio::test]
async fn panic_inside_rolls_back() {
    each_backend("at_panic", |db| async move {
        let mut conn = db.async_connection().await?;
        create(&mut conn, "at_panic").await?;
        let caught = AssertUnwindSafe(insert_then_panic(&mut conn, "at_panic"))
            .catch_unwind()
            .await;
        assert!(caught.is_err(), "the panic reached the caller");
        assert!(!conn.in_transaction());
        assert_eq!(count(&mut conn, "at_panic").await?, 0);
        let mut other = db.async_connection().await?;
        assert_eq!(count(&mut other, "at_panic").await?, 0);
        // The connection is fine afterwards: a new annotated call commits.
        insert_two(&mut conn, "at_panic", false).await?;
        assert_eq!(count(&mut other, "at_panic").await?, 2);
        Ok(())
    })
    .await;
}

#[auto_transaction]
async fn insert_then_wait_forever(conn: &mut Connection, table: &str) -> dal::Result<()> {
    insert(conn, table, 1).await?;
    std::future::pending::<()>().await;
    Ok(())
}

#[auto_transaction]
async fn insert_then_run_slow(conn: &mut Connection, table: &str, slow: &str) -> dal::Result<()> {
    insert(conn, table, 1).await?;
    conn.execute(slow, ())
        .timeout(Duration::from_secs(60))
        .await?;
    Ok(())
}

#[tokio::test]
async fn cancelled_call_rolls_back_and_leaves_the_connection_usable() {
    each_backend("at_cancel", |db| async move {
        let mut conn = db.async_connection().await?;
        create(&mut conn, "at_cancel").await?;

        // Dropped between statements: the connection is kept and rolls the write back.
        let r = tokio::time::timeout(
            Duration::from_millis(300),
            insert_then_wait_forever(&mut conn, "at_cancel"),
        )
        .await;
        assert!(r.is_err(), "the call was cancelled");
        assert!(!conn.in_transaction());
        assert_eq!(count(&mut conn, "at_cancel").await?, 0);
        let mut other = db.async_connection().await?;
        assert_eq!(count(&mut other, "at_cancel").await?, 0);
        insert_two(&mut conn, "at_cancel", false).await?;
        assert_eq!(count(&mut other, "at_cancel").await?, 2);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn call_cancelled_during_a_slow_statement_never_commits() {
    each_backend("at_cancel_slow", |db| async move {
        let mut conn = db.async_connection().await?;
        create(&mut conn, "at_cancel_slow").await?;
        drop(conn);

        // The future owns its connection, as a cancelled task does: both are dropped while
        // the slow statement runs.
        let slow = slow_sql(db.backend(), 20);
        let call = async {
            let mut conn = db.async_connection().await?;
            insert_then_run_slow(&mut conn, "at_cancel_slow", &slow).await
        };
        let r = tokio::time::timeout(Duration::from_millis(500), call).await;
        assert!(r.is_err(), "the call was cancelled");

        let mut conn = db.async_connection().await?;
        assert!(!conn.in_transaction());
        assert_eq!(count(&mut conn, "at_cancel_slow").await?, 0);
        insert_two(&mut conn, "at_cancel_slow", false).await?;
        assert_eq!(count(&mut conn, "at_cancel_slow").await?, 2);
        Ok(())
    })
    .await;
}

/// An application error that wraps `dal::Error`.
#[derive(Debug)]
enum AppError {
    Db(dal::Error),
    Insufficient { balance: i64 },
}

impl From<dal::Error> for AppError {
    fn from(e: dal::Error) -> Self {
        AppError::Db(e)
    }
}

/// Debits `cents` from the single account row and fails if that overdraws it.
#[auto_transaction]
async fn withdraw(conn: &mut Connection, cents: i64) -> Result<i64, AppError> {
    conn.execute("UPDATE [at_custom] SET [a] = [a] - ?", params![cents])
        .await?;
    let balance = count_balance(conn).await?;
    if balance < 0 {
        return Err(AppError::Insufficient { balance });
    }
    Ok(balance)
}

async fn count_balance(conn: &mut Connection) -> dal::Result<i64> {
    conn.execute("SELECT [a] FROM [at_custom]", ()).await?[0].try_get(0)
}

#[tokio::test]
async fn custom_error_type_with_from_dal_error() {
    each_backend("at_custom", |db| async move {
        let mut conn = db.async_connection().await?;
        create(&mut conn, "at_custom").await?;
        insert(&mut conn, "at_custom", 100).await?;

        assert_eq!(withdraw(&mut conn, 30).await.unwrap(), 70);
        match withdraw(&mut conn, 500).await {
            Err(AppError::Insufficient { balance }) => assert_eq!(balance, -430),
            other => panic!("expected Insufficient, got {other:?}"),
        }
        assert_eq!(
            count_balance(&mut conn).await?,
            70,
            "the overdraft was rolled back"
        );

        // A database error inside arrives through `From<dal::Error>`, and rolls back too.
        fresh_table(&mut conn, "at_custom").await?;
        match withdraw(&mut conn, 1).await {
            Err(AppError::Db(e)) => assert!(!e.is_timeout(), "{e}"),
            other => panic!("expected a database error, got {other:?}"),
        }
        assert!(!conn.in_transaction());
        Ok(())
    })
    .await;
}

// ---- the blocking twin ----------------------------------------------------------------------

#[auto_transaction]
fn sync_insert_two(conn: &mut SyncConnection, table: &str, fail: bool) -> dal::Result<()> {
    for a in [1, 2] {
        conn.execute(
            &format!("INSERT INTO [{table}] ([a]) VALUES (?)"),
            params![a],
        )?;
    }
    if fail {
        return Err(deliberate("blocking, after two inserts"));
    }
    Ok(())
}

#[auto_transaction]
fn sync_outer(conn: &mut SyncConnection, table: &str) -> dal::Result<()> {
    sync_insert_two(conn, table, false)?;
    assert!(
        conn.in_transaction(),
        "the inner call joined, it did not commit"
    );
    Err(deliberate("blocking outer call"))
}

#[auto_transaction]
fn sync_insert_then_panic(conn: &mut SyncConnection, table: &str) -> dal::Result<()> {
    sync_insert_two(conn, table, false)?;
    panic!("deliberate panic inside a blocking #[auto_transaction]");
}

fn sync_count(conn: &mut SyncConnection, table: &str) -> dal::Result<i64> {
    conn.execute(&format!("SELECT COUNT(*) FROM [{table}]"), ())?[0].try_get(0)
}

#[test]
fn blocking_functions_on_sync_connection_commit_roll_back_and_nest() {
    let mut failures = Vec::new();
    for backend in common::selected() {
        let db = common::database(backend, common::config(backend, "at_sync"));
        let result = (|| -> dal::Result<()> {
            let mut conn = db.sync_connection()?;
            conn.execute("DROP TABLE IF EXISTS [at_sync]", ())?;
            conn.execute("CREATE TABLE [at_sync] ([a] INTEGER)", ())?;

            sync_insert_two(&mut conn, "at_sync", true).unwrap_err();
            assert!(!conn.in_transaction());
            assert_eq!(sync_count(&mut conn, "at_sync")?, 0, "Err rolls back");

            sync_outer(&mut conn, "at_sync").unwrap_err();
            assert_eq!(
                sync_count(&mut conn, "at_sync")?,
                0,
                "nested: one outer rollback"
            );

            let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
                sync_insert_then_panic(&mut conn, "at_sync")
            }));
            assert!(caught.is_err(), "the panic reached the caller");
            assert!(!conn.in_transaction());
            assert_eq!(sync_count(&mut conn, "at_sync")?, 0, "panic rolls back");

            sync_insert_two(&mut conn, "at_sync", false)?;
            assert!(!conn.in_transaction());
            let mut other = db.sync_connection()?;
            assert_eq!(sync_count(&mut other, "at_sync")?, 2, "Ok commits");
            Ok(())
        })();
        if let Err(e) = result {
            failures.push(format!("{}: {e}", backend.as_str()));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
