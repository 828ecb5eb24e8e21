//! The blocking twin, from plain threads with no runtime, on every backend.

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
