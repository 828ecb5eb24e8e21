//! Raw SQL on every backend: portable identifiers and placeholders, parameters, values, errors.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

mod common;

use std::time::Duration;

use common::{each_backend, each_backend_with, fresh_table};
use dal::prelude::*;
use dal::BreakerConfig;

#[tokio::test]
async fn raw_sql_with_brackets_and_placeholders_round_trips() {
    each_backend("raw_sql", |db| async move {
        let mut conn = db.async_connection().await?;
        fresh_table(&mut conn, "raw_users").await?;
        conn.execute(
            "CREATE TABLE [raw_users] ([id] INTEGER PRIMARY KEY, [name] VARCHAR(100), [age] INTEGER, [score] DOUBLE PRECISION)",
            (),
        )
        .await?;
        conn.execute(
            "INSERT INTO [raw_users] ([id], [name], [age], [score]) VALUES (?, ?, ?, ?)",
            params![1, "Phil", 30, 1.5],
        )
        .await?;
        conn.executemany(
            "INSERT INTO [raw_users] ([id], [name], [age], [score]) VALUES (?, ?, ?, ?)",
            vec![params![2, "Karen", 25, 2.25], params![3, "O'Brien", None::<i64>, 0.1]],
        )
        .await?;
        let rows = conn
            .execute("SELECT [id], [name], [age], [score] FROM [raw_users] WHERE [age] > ? ORDER BY [id]", params![20])
            .tag("operation", "list")
            .await?;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].columns(), &["id", "name", "age", "score"]);
        assert_eq!(rows[0].try_get::<String, _>("name")?, "Phil");
        assert_eq!(rows[1].try_get::<i64, _>("age")?, 25);
        assert_eq!(rows[1].try_get::<f64, _>(3)?, 2.25);
        let rows = conn.execute("SELECT [name], [age] FROM [raw_users] WHERE [id] = ?", params![3]).await?;
        assert_eq!(rows[0][0], Value::Text("O'Brien".into()));
        assert!(rows[0][1].is_null());
        assert_eq!(rows[0].try_get::<Option<i64>, _>("age")?, None);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn literal_question_mark_and_text_inside_literals_are_untouched() {
    each_backend("literals", |db| async move {
        let mut conn = db.async_connection().await?;
        let rows = conn
            .execute("SELECT 'a ? [b] -- c' AS [s], ? AS [p]", params!["x"])
            .await?;
        assert_eq!(rows[0].try_get::<String, _>("s")?, "a ? [b] -- c");
        assert_eq!(rows[0].try_get::<String, _>("p")?, "x");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn values_of_every_kind_round_trip() {
    each_backend("values", |db| async move {
        let mut conn = db.async_connection().await?;
        fresh_table(&mut conn, "raw_values").await?;
        let (text, big, float, boolean) = match db.backend() {
            Backend::MySql => ("LONGTEXT", "BIGINT", "DOUBLE", "BOOLEAN"),
            _ => ("TEXT", "BIGINT", "DOUBLE PRECISION", "BOOLEAN"),
        };
        conn.execute(
            &format!(
                "CREATE TABLE [raw_values] ([t] {text}, [i] {big}, [f] {float}, [b] {boolean})"
            ),
            (),
        )
        .await?;
        let long = "é😀'\"\\".repeat(20_000);
        conn.execute(
            "INSERT INTO [raw_values] ([t], [i], [f], [b]) VALUES (?, ?, ?, ?)",
            params![long.as_str(), i64::MAX, 0.1, true],
        )
        .await?;
        let rows = conn
            .execute("SELECT [t], [i], [f], [b] FROM [raw_values]", ())
            .await?;
        assert_eq!(rows[0].try_get::<String, _>("t")?, long);
        assert_eq!(rows[0].try_get::<i64, _>("i")?, i64::MAX);
        assert_eq!(rows[0].try_get::<f64, _>("f")?, 0.1);
        assert!(rows[0].try_get::<bool, _>("b")?);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn bad_input_is_a_clear_error_and_nothing_is_sent() {
    each_backend("bad_input", |db| async move {
        let mut conn = db.async_connection().await?;
        let e = conn.execute("SELECT ? + ?", params![1]).await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::ParameterCount {
                    expected: 2,
                    given: 1
                }
            ),
            "{e}"
        );
        let e = conn.execute("SELECT 'unterminated", ()).await.unwrap_err();
        assert!(matches!(e, Error::Sql { .. }), "{e}");
        let e = conn.execute("SELEC 1", ()).await.unwrap_err();
        assert!(matches!(e, Error::Database { .. }), "{e}");
        assert!(
            e.code().is_some() || db.backend() == Backend::Sqlite,
            "server code kept: {e:?}"
        );
        // executemany validates every parameter list before writing anything.
        fresh_table(&mut conn, "raw_atomic").await?;
        conn.execute("CREATE TABLE [raw_atomic] ([a] INTEGER)", ())
            .await?;
        let e = conn
            .executemany(
                "INSERT INTO [raw_atomic] ([a]) VALUES (?)",
                vec![params![1], params![1, 2]],
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::ParameterCount { .. }), "{e}");
        let n: i64 = conn
            .execute("SELECT COUNT(*) FROM [raw_atomic]", ())
            .await?[0]
            .try_get(0)?;
        assert_eq!(n, 0);
        // The connection is still fine after errors.
        let rows = conn.execute("SELECT 1", ()).await?;
        assert_eq!(rows[0].try_get::<i64, _>(0)?, 1);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn executemany_is_atomic_when_a_row_fails_on_the_server() {
    each_backend("many_atomic", |db| async move {
        let mut conn = db.async_connection().await?;
        fresh_table(&mut conn, "raw_many").await?;
        conn.execute("CREATE TABLE [raw_many] ([a] INTEGER PRIMARY KEY)", ())
            .await?;
        let e = conn
            .executemany(
                "INSERT INTO [raw_many] ([a]) VALUES (?)",
                vec![params![1], params![2], params![1]],
            )
            .await
            .unwrap_err();
        assert!(e.is_unique_violation(), "{e:?}");
        let n: i64 = conn.execute("SELECT COUNT(*) FROM [raw_many]", ()).await?[0].try_get(0)?;
        assert_eq!(n, 0);
        assert!(!conn.in_transaction());
        Ok(())
    })
    .await;
}

/// `executemany` takes the statement path: each run is admitted and recorded by the pool's
/// circuit breaker like a statement from `execute` (and so is the BEGIN of its own transaction;
/// COMMIT never is).
#[tokio::test]
async fn executemany_runs_are_calls_for_the_circuit_breaker() {
    each_backend_with(
        "many_breaker",
        // A window long enough that no call leaves it while the test runs.
        |c| c.circuit_breaker(BreakerConfig::default().failure_window(Duration::from_secs(3600))),
        |db| async move {
            let mut conn = db.async_connection().await?;
            fresh_table(&mut conn, "raw_many_breaker").await?;
            conn.execute("CREATE TABLE [raw_many_breaker] ([a] INTEGER)", ())
                .await?;
            let sql = "INSERT INTO [raw_many_breaker] ([a]) VALUES (?)";
            // In the caller's transaction: one call per parameter list.
            conn.begin_transaction().await?;
            let before = db.circuit_status().recent_calls;
            conn.executemany(sql, vec![params![1], params![2], params![3]])
                .await?;
            assert_eq!(db.circuit_status().recent_calls - before, 3);
            assert!(conn.in_transaction());
            conn.commit_transaction().await?;
            // In its own transaction: BEGIN, then one call per parameter list.
            let before = db.circuit_status().recent_calls;
            conn.executemany(sql, vec![params![4], params![5]]).await?;
            let status = db.circuit_status();
            assert_eq!(status.recent_calls - before, 3, "{status:?}");
            assert_eq!(status.recent_failures, 0, "{status:?}");
            assert!(!conn.in_transaction());
            let n: i64 = conn
                .execute("SELECT COUNT(*) FROM [raw_many_breaker]", ())
                .await?[0]
                .try_get(0)?;
            assert_eq!(n, 5);
            Ok(())
        },
    )
    .await;
}

#[test]
fn unknown_backend_and_malformed_urls_are_errors_not_panics() {
    let e = DatabaseFactory::create_database("oracle", DatabaseConfig::new("x")).unwrap_err();
    assert!(e.to_string().contains("oracle"));
    assert!(Database::from_url("postgres://u:p@host:99999/db").is_err());
    assert!(Database::from_url("").is_err());
    assert!(DatabaseFactory::create_database("MariaDB", DatabaseConfig::new("x")).is_ok());
}

#[tokio::test]
async fn password_never_appears_in_debug_display_or_errors() {
    let port = common::refused_port();
    let config = DatabaseConfig::new("db")
        .host("127.0.0.1")
        .port(port)
        .user("u")
        .password("hunter2-secret")
        .connection_acquisition_timeout(std::time::Duration::from_secs(2));
    for kind in ["postgres", "mysql"] {
        let db = DatabaseFactory::create_database(kind, config.clone().alias(kind)).unwrap();
        assert!(!format!("{db:?}").contains("hunter2"));
        assert!(!format!("{}", db.config()).contains("hunter2"));
        let e = db.async_connection().await.unwrap_err();
        assert!(!format!("{e} {e:?}").contains("hunter2"), "{e:?}");
    }
}

/// Each backend classifies its own error codes once: the kinds below come from real server
/// errors, and a lost connection keeps its I/O error as the source.
#[tokio::test]
async fn server_errors_carry_their_kind_and_constraint() {
    each_backend("error_kinds", |db| async move {
        let mut conn = db.async_connection().await?;
        fresh_table(&mut conn, "kinds_child").await?;
        fresh_table(&mut conn, "kinds").await?;
        conn.execute(
            "CREATE TABLE [kinds] ([id] INTEGER NOT NULL, [code] VARCHAR(20) NOT NULL, [n] INTEGER CHECK ([n] >= 0), PRIMARY KEY ([id]), UNIQUE ([code]))",
            (),
        )
        .await?;
        conn.execute(
            "CREATE TABLE [kinds_child] ([id] INTEGER PRIMARY KEY, [parent] INTEGER REFERENCES [kinds] ([id]))",
            (),
        )
        .await?;
        conn.execute("INSERT INTO [kinds] ([id], [code], [n]) VALUES (1, 'a', 1)", ())
            .await?;
        let kind = |r: dal::Result<Vec<Row>>| r.map(|_| ()).unwrap_err().kind();
        let pk = conn.execute("INSERT INTO [kinds] ([id], [code], [n]) VALUES (1, 'b', 1)", ()).await;
        assert_eq!(kind(pk), DbErrorKind::PrimaryKeyViolation);
        let dup = conn
            .execute("INSERT INTO [kinds] ([id], [code], [n]) VALUES (2, 'a', 1)", ())
            .await
            .unwrap_err();
        assert_eq!(dup.kind(), DbErrorKind::UniqueViolation, "{dup:?}");
        assert!(dup.is_unique_violation());
        let null = conn.execute("INSERT INTO [kinds] ([id], [code], [n]) VALUES (3, NULL, 1)", ()).await;
        assert_eq!(kind(null), DbErrorKind::NotNullViolation);
        let check = conn.execute("INSERT INTO [kinds] ([id], [code], [n]) VALUES (4, 'd', -1)", ()).await;
        assert_eq!(kind(check), DbErrorKind::CheckViolation);
        let fk = conn.execute("INSERT INTO [kinds_child] ([id], [parent]) VALUES (1, 99)", ()).await;
        assert_eq!(kind(fk), DbErrorKind::ForeignKeyViolation);
        let exists = conn.execute("CREATE TABLE [kinds] ([x] INTEGER)", ()).await;
        assert_eq!(kind(exists), DbErrorKind::AlreadyExists);
        let syntax = conn.execute("SELEC 1", ()).await;
        assert_eq!(kind(syntax), DbErrorKind::Other);
        fresh_table(&mut conn, "kinds_child").await?;
        fresh_table(&mut conn, "kinds").await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_refused_connection_keeps_its_io_error_as_the_source() {
    let port = common::refused_port();
    for kind in ["postgres", "mysql"] {
        let config = DatabaseConfig::new("db")
            .host("127.0.0.1")
            .port(port)
            .alias(format!("io-source-{kind}"))
            .connection_creation_timeout(std::time::Duration::from_secs(5));
        let db = DatabaseFactory::create_database(kind, config).unwrap();
        let e = db.async_connection().await.unwrap_err();
        let mut source = std::error::Error::source(&e);
        let mut io = false;
        while let Some(s) = source {
            io |= s.downcast_ref::<std::io::Error>().is_some();
            source = s.source();
        }
        assert!(io, "{kind}: no I/O error in the source chain of {e:?}");
        db.close(std::time::Duration::from_secs(5)).await.unwrap();
    }
}
