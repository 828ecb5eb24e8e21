//! The blocking twin, from plain threads with no runtime, on every backend; and the blocking
//! twin mixed with the user's own runtimes on one pool, without discarding connections.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

mod common;

use std::time::Duration;

use dal::prelude::*;

#[test]
fn sync_connection_executes_and_transacts_without_a_runtime() {
    let mut failures = Vec::new();
    for backend in common::selected() {
        let db = common::database(backend, common::config(backend, "sync_api"));
        let result = (|| -> dal::Result<()> {
            let mut conn = db.sync_connection()?;
            conn.execute("DROP TABLE IF EXISTS [sync_t]", ())?;
            conn.execute("CREATE TABLE [sync_t] ([a] INTEGER, [b] VARCHAR(20))", ())?;
            conn.begin_transaction()?;
            conn.execute(
                "INSERT INTO [sync_t] ([a], [b]) VALUES (?, ?)",
                params![1, "one"],
            )?;
            conn.commit_transaction()?;
            conn.begin_transaction()?;
            conn.executemany(
                "INSERT INTO [sync_t] ([a], [b]) VALUES (?, ?)",
                vec![params![2, "two"], params![3, "three"]],
            )?;
            conn.rollback_transaction()?;
            let rows = conn.execute("SELECT [a], [b] FROM [sync_t]", ())?;
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].try_get::<String, _>("b")?, "one");
            let e = conn
                .execute_with(
                    &common::slow_sql(backend, 20),
                    (),
                    QueryOptions::default().timeout(Duration::from_millis(300)),
                )
                .unwrap_err();
            assert!(e.is_timeout(), "{e:?}");
            assert_eq!(conn.execute("SELECT 2", ())?[0].try_get::<i64, _>(0)?, 2);
            // A dropped sync connection with an open transaction is rolled back too.
            conn.begin_transaction()?;
            conn.execute(
                "INSERT INTO [sync_t] ([a], [b]) VALUES (?, ?)",
                params![9, "nine"],
            )?;
            drop(conn);
            let mut conn = db.sync_connection()?;
            let rows = conn.execute("SELECT COUNT(*) FROM [sync_t]", ())?;
            assert_eq!(rows[0].try_get::<i64, _>(0)?, 1);
            Ok(())
        })();
        if let Err(e) = result {
            failures.push(format!("{}: {e}", backend.as_str()));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn sync_connection_inside_a_runtime_is_an_error_not_a_panic() {
    let db = Database::from_url("sqlite::memory:").unwrap();
    let e = db.sync_connection().unwrap_err();
    assert!(e.to_string().contains("async"), "{e}");
}

/// A tokio runtime of the user's own: current-thread (its I/O driver runs only inside
/// `block_on`, the hardest case for a socket used elsewhere) or multi-thread.
fn user_runtime(multi_thread: bool) -> tokio::runtime::Runtime {
    let mut b = if multi_thread {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    b.enable_all().build().expect("a user runtime")
}

fn metrics(db: &Database) -> PoolMetrics {
    db.pool_metrics().expect("the pool exists")
}

/// One checkout and round trip from blocking code.
fn use_sync(db: &Database, n: i64) -> dal::Result<()> {
    let mut conn = db.sync_connection()?;
    let rows = conn.execute(&format!("SELECT {n} AS [n]"), ())?;
    assert_eq!(rows[0].try_get::<i64, _>("n")?, n);
    Ok(())
}

/// One checkout and round trip from the user's runtime.
fn use_async(db: &Database, rt: &tokio::runtime::Runtime, n: i64) -> dal::Result<()> {
    rt.block_on(async {
        let mut conn = db.async_connection().await?;
        let rows = conn.execute(&format!("SELECT {n} AS [n]"), ()).await?;
        assert_eq!(rows[0].try_get::<i64, _>("n")?, n);
        Ok(())
    })
}

/// Runs `body` on every backend with a database of its own (closed afterwards, on a runtime
/// of its own), and fails naming every backend where it failed.
fn each_backend_blocking(
    test: &str,
    adjust: impl Fn(DatabaseConfig) -> DatabaseConfig,
    body: impl Fn(Backend, &Database) -> dal::Result<()>,
) {
    let mut failures = Vec::new();
    for backend in common::selected() {
        let db = common::database(backend, adjust(common::config(backend, test)));
        if let Err(e) = body(backend, &db) {
            failures.push(format!("{}: {e}", backend.as_str()));
        }
        let _ = user_runtime(false).block_on(db.close(Duration::from_secs(10)));
    }
    assert!(failures.is_empty(), "{test} failed on: {failures:#?}");
}

/// Alternates blocking and async use (on `rt`) of one database 20 times, starting with the
/// blocking side when `sync_first`.
fn alternate(db: &Database, rt: &tokio::runtime::Runtime, sync_first: bool) -> dal::Result<()> {
    for i in 0..20 {
        if sync_first {
            use_sync(db, i)?;
            use_async(db, rt, i)?;
        } else {
            use_async(db, rt, i)?;
            use_sync(db, i)?;
        }
    }
    Ok(())
}

#[test]
fn blocking_then_async_use_alternating_reuses_one_connection() {
    for multi_thread in [false, true] {
        let test = format!("sync_mix_sync_first_mt{multi_thread}");
        each_backend_blocking(
            &test,
            |c| c.pool_size(1, 2),
            |_backend, db| {
                let rt = user_runtime(multi_thread);
                alternate(db, &rt, true)?;
                // The blocking side opened the pool's one connection on the library's
                // runtime; the user's runtime uses that same connection every time.
                let m = metrics(db);
                assert_eq!(m.acquisitions, 40, "{m:?}");
                assert_eq!(m.connections_created, 1, "{m:?}");
                assert_eq!(m.connections_discarded, 0, "{m:?}");
                assert_eq!(m.connections_discarded_runtime_mismatch, 0, "{m:?}");
                Ok(())
            },
        );
    }
}

#[test]
fn async_then_blocking_use_alternating_replaces_the_runtime_bound_connection_once_and_counts_it() {
    for multi_thread in [false, true] {
        let test = format!("sync_mix_async_first_mt{multi_thread}");
        each_backend_blocking(
            &test,
            // No minimum: nothing but these calls opens connections (no top-up in between).
            |c| c.pool_size(0, 2),
            |backend, db| {
                let rt = user_runtime(multi_thread);
                alternate(db, &rt, false)?;
                let m = metrics(db);
                assert_eq!(m.acquisitions, 40, "{m:?}");
                assert_eq!(m.connections_discarded, 0, "{m:?}");
                if backend == Backend::Sqlite {
                    // Not bound to any runtime: one connection throughout.
                    assert_eq!(m.connections_created, 1, "{m:?}");
                    assert_eq!(m.connections_discarded_runtime_mismatch, 0, "{m:?}");
                } else {
                    // The connection the user's runtime opened first cannot be driven by the
                    // blocking side: it is replaced once, by one opened on the library's
                    // runtime, which both sides then share. The replacement is counted.
                    assert_eq!(m.connections_created, 2, "{m:?}");
                    assert_eq!(m.connections_discarded_runtime_mismatch, 1, "{m:?}");
                    let text = PoolManager::prometheus_text();
                    let line = format!(
                        "dal_pool_connections_closed_total{{alias=\"{}\",backend=\"{}\",hash=\"{}\",reason=\"runtime_mismatch\"}} 1",
                        db.config().get_alias(),
                        backend.as_str(),
                        db.hash()
                    );
                    assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
                }
                Ok(())
            },
        );
    }
}

#[test]
fn connections_survive_the_user_runtime_that_used_them_and_other_runtimes_reuse_them() {
    each_backend_blocking(
        "sync_mix_runtimes",
        |c| c.pool_size(0, 2),
        |backend, db| {
            // A first runtime opens a connection, then ends: its socket died with it.
            let first = user_runtime(false);
            use_async(db, &first, 1)?;
            drop(first);
            // A second runtime gets a working connection (the dead one is replaced).
            let second = user_runtime(true);
            use_async(db, &second, 2)?;
            drop(second);
            // Blocking code and a third runtime reuse that replacement.
            use_sync(db, 3)?;
            let third = user_runtime(false);
            use_async(db, &third, 4)?;
            use_sync(db, 5)?;
            let m = metrics(db);
            assert_eq!(m.acquisitions, 5, "{m:?}");
            assert_eq!(m.connections_discarded, 0, "{m:?}");
            let (created, mismatched) = if backend == Backend::Sqlite {
                (1, 0)
            } else {
                (2, 1)
            };
            assert_eq!(m.connections_created, created, "{m:?}");
            assert_eq!(
                m.connections_discarded_runtime_mismatch, mismatched,
                "{m:?}"
            );
            Ok(())
        },
    );
}
