//! Quickstart: portable SQL (`[name]` identifiers, `?` parameters), a committed and a
//! rolled-back transaction, a query timeout that stops the statement on the server, and the
//! same database used from blocking code.
//!
//! `cargo run --example quickstart` runs on embedded SQLite, in memory: no setup at all. Set
//! `DAL_EXAMPLE_URL` to run the same code on a server, e.g.
//! `DAL_EXAMPLE_URL=postgres://postgres@127.0.0.1:5432/dal_test` or
//! `DAL_EXAMPLE_URL=mysql://root@127.0.0.1:3306/dal_test`.
//!
//! It uses one table, `quickstart_accounts`, dropped and created again at the start: every run
//! prints the same thing.

use std::time::{Duration, Instant};

use dal::prelude::*;

fn main() -> dal::Result<()> {
    let url = std::env::var("DAL_EXAMPLE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    let db = Database::from_url(&url)?;
    println!("backend: {:?}", db.backend());

    // Async code, in a runtime...
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Error::Internal(e.to_string()))?;
    runtime.block_on(async_part(&db))?;
    drop(runtime);

    // ...and the blocking twin from plain code with no runtime (the library drives its own).
    let mut conn = db.sync_connection()?;
    conn.begin_transaction()?;
    conn.execute(
        "INSERT INTO [quickstart_accounts] ([id], [owner], [cents]) VALUES (?, ?, ?)",
        params![3, "Bob", 0],
    )?;
    conn.commit_transaction()?;
    let rows = conn.execute(
        "SELECT COUNT(*) AS [n], SUM([cents]) AS [total] FROM [quickstart_accounts]",
        (),
    )?;
    println!(
        "blocking: {} accounts holding {} cents in total",
        rows[0].try_get::<i64, _>("n")?,
        rows[0].try_get::<i64, _>("total")?
    );
    Ok(())
}

/// A statement that runs for ten seconds (PostgreSQL, MySQL) or far longer (SQLite) on
/// `backend`, so that a short timeout cuts it. A recursive CTE is used on SQLite only: MariaDB
/// stops recursion after 1 000 rows (`max_recursive_iterations`), MySQL 8 after 1 000 levels
/// (`cte_max_recursion_depth`).
fn slow_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "SELECT pg_sleep(10)",
        Backend::MySql => "SELECT SLEEP(10)",
        Backend::Sqlite => {
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) \
             SELECT SUM(x) FROM c"
        }
    }
}

async fn async_part(db: &Database) -> dal::Result<()> {
    let mut conn = db.async_connection().await?;

    // Start from a clean table, so that the example can run again and again.
    conn.execute("DROP TABLE IF EXISTS [quickstart_accounts]", ())
        .await?;
    conn.execute(
        "CREATE TABLE [quickstart_accounts] ([id] INTEGER PRIMARY KEY, [owner] VARCHAR(50) NOT NULL, [cents] BIGINT NOT NULL)",
        (),
    )
    .await?;
    conn.executemany(
        "INSERT INTO [quickstart_accounts] ([id], [owner], [cents]) VALUES (?, ?, ?)",
        vec![params![1, "Phil", 10_000], params![2, "Karen", 2_500]],
    )
    .await?;

    // A transfer that commits.
    conn.begin_transaction().await?;
    conn.execute(
        "UPDATE [quickstart_accounts] SET [cents] = [cents] - ? WHERE [id] = ?",
        params![1_000, 1],
    )
    .await?;
    conn.execute(
        "UPDATE [quickstart_accounts] SET [cents] = [cents] + ? WHERE [id] = ?",
        params![1_000, 2],
    )
    .await?;
    conn.commit_transaction().await?;

    // A transfer that fails half-way and is rolled back: nothing of it remains.
    conn.begin_transaction().await?;
    conn.execute(
        "UPDATE [quickstart_accounts] SET [cents] = [cents] - ? WHERE [id] = ?",
        params![500, 1],
    )
    .await?;
    let failed = conn
        .execute(
            "UPDATE [no_such_table] SET [cents] = [cents] + ? WHERE [id] = ?",
            params![500, 2],
        )
        .await;
    match failed {
        Err(e) => println!("second transfer failed as expected: {e}"),
        Ok(_) => println!("second transfer unexpectedly succeeded"),
    }
    conn.rollback_transaction().await?;

    let rows = conn
        .execute(
            "SELECT [owner], [cents] FROM [quickstart_accounts] ORDER BY [id]",
            (),
        )
        .tag("operation", "list_accounts")
        .await?;
    for row in &rows {
        let owner: String = row.try_get("owner")?;
        let cents: i64 = row.try_get("cents")?;
        println!("{owner:>6}: {:>7.2}", cents as f64 / 100.0);
    }

    // Every statement has a deadline; past it the statement is stopped on the server
    // (pg_cancel_backend, KILL QUERY, or an SQLite interrupt), and the connection stays usable.
    let limit = Duration::from_millis(200);
    let started = Instant::now();
    match conn
        .execute(slow_sql(conn.backend()), ())
        .timeout(limit)
        .await
    {
        Err(err) if err.is_timeout() => println!(
            "a slow statement with a {limit:?} timeout: is_timeout() = {}, kind = {:?}, stopped long before its 10 s: {}",
            err.is_timeout(),
            err.timeout_kind(),
            started.elapsed() < Duration::from_secs(5)
        ),
        Err(err) => return Err(err),
        Ok(_) => println!("the slow statement was not stopped"),
    }
    let two: i64 = conn.execute("SELECT 1 + 1", ()).await?[0].try_get(0)?;
    println!("and the connection still works: SELECT 1 + 1 = {two}");
    drop(conn);

    let status = db.pool_status();
    println!(
        "pool: {} open ({} idle, {} in use), {}..={} connections",
        status.size, status.idle, status.in_use, status.min_size, status.max_size
    );
    Ok(())
}
