//! Quickstart: embedded SQLite, no setup. Run with `cargo run --example quickstart`.
//!
//! Shows portable SQL (`[name]` identifiers, `?` parameters), a committed and a rolled-back
//! transaction, a query timeout, and the same database used from blocking code.

use std::time::Duration;

use dal::prelude::*;

fn main() -> dal::Result<()> {
    // A SQLite file next to the build output; swap the URL for postgres://… or mysql://…
    // and nothing else changes.
    let path = std::env::temp_dir().join("dal-quickstart.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let db = Database::from_url(&format!("sqlite://{}", path.display()))?;

    // Async code, in a runtime...
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Error::Internal(e.to_string()))?;
    runtime.block_on(async_part(&db))?;
    drop(runtime);

    // ...and the blocking twin from plain code with no runtime.
    let mut conn = db.sync_connection()?;
    conn.begin_transaction()?;
    conn.execute(
        "INSERT INTO [accounts] ([id], [owner], [cents]) VALUES (?, ?, ?)",
        params![3, "Bob", 0],
    )?;
    conn.commit_transaction()?;
    let rows = conn.execute(
        "SELECT COUNT(*) AS [n], SUM([cents]) AS [total] FROM [accounts]",
        (),
    )?;
    println!(
        "blocking: {} accounts holding {} cents in total",
        rows[0].try_get::<i64, _>("n")?,
        rows[0].try_get::<i64, _>("total")?
    );
    Ok(())
}

async fn async_part(db: &Database) -> dal::Result<()> {
    let mut conn = db.async_connection().await?;

    conn.execute(
        "CREATE TABLE [accounts] ([id] INTEGER PRIMARY KEY, [owner] TEXT NOT NULL, [cents] BIGINT NOT NULL)",
        (),
    )
    .await?;
    conn.executemany(
        "INSERT INTO [accounts] ([id], [owner], [cents]) VALUES (?, ?, ?)",
        vec![params![1, "Phil", 10_000], params![2, "Karen", 2_500]],
    )
    .await?;

    // A transfer that commits.
    conn.begin_transaction().await?;
    conn.execute(
        "UPDATE [accounts] SET [cents] = [cents] - ? WHERE [id] = ?",
        params![1_000, 1],
    )
    .await?;
    conn.execute(
        "UPDATE [accounts] SET [cents] = [cents] + ? WHERE [id] = ?",
        params![1_000, 2],
    )
    .await?;
    conn.commit_transaction().await?;

    // A transfer that fails half-way and is rolled back: nothing of it remains.
    conn.begin_transaction().await?;
    conn.execute(
        "UPDATE [accounts] SET [cents] = [cents] - ? WHERE [id] = ?",
        params![500, 1],
    )
    .await?;
    let failed = conn
        .execute(
            "UPDATE [no_such_table] SET [cents] = [cents] + ? WHERE [id] = ?",
            params![500, 2],
        )
        .await;
    println!(
        "second transfer failed as expected: {}",
        failed.unwrap_err()
    );
    conn.rollback_transaction().await?;

    let rows = conn
        .execute("SELECT [owner], [cents] FROM [accounts] ORDER BY [id]", ())
        .tag("operation", "list_accounts")
        .await?;
    for row in &rows {
        let owner: String = row.try_get("owner")?;
        let cents: i64 = row.try_get("cents")?;
        println!("{owner:>6}: {:>7.2}", cents as f64 / 100.0);
    }

    // Every statement has a deadline; past it the statement is stopped on the server.
    let slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) SELECT SUM(x) FROM c";
    let err = conn
        .execute(slow, ())
        .timeout(Duration::from_millis(200))
        .await
        .unwrap_err();
    println!("timed out: {err} (is_timeout = {})", err.is_timeout());
    println!(
        "and the connection still works: {:?}",
        conn.execute("SELECT 1 + 1", ()).await?[0][0]
    );
    drop(conn);
    println!("pool: {:?}", db.pool_status());
    Ok(())
}
