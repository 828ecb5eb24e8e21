//! `#[auto_transaction]`: a transfer service whose functions commit on `Ok` and roll back on
//! `Err`, panic or cancellation; nested calls join the outer transaction.
//! `cargo run --example bank_transfer` (SQLite) or with `DAL_EXAMPLE_URL=postgres://…`.

use std::time::Duration;

use dal::prelude::*;

#[derive(Debug)]
enum BankError {
    Insufficient { account: String, cents: i64 },
    Db(dal::Error),
}

impl std::fmt::Display for BankError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BankError::Insufficient { account, cents } => {
                write!(f, "{account} would be at {cents}")
            }
            BankError::Db(e) => write!(f, "database: {e}"),
        }
    }
}

impl From<dal::Error> for BankError {
    fn from(e: dal::Error) -> Self {
        BankError::Db(e)
    }
}

async fn balance(conn: &mut Connection, account: &str) -> dal::Result<i64> {
    let rows = conn
        .execute(
            "SELECT [cents] FROM [bank_accounts] WHERE [id] = ?",
            params![account],
        )
        .await?;
    rows.first().map_or(Ok(0), |r| r.try_get("cents"))
}

#[auto_transaction]
async fn withdraw(conn: &mut Connection, account: &str, cents: i64) -> Result<(), BankError> {
    conn.execute(
        "UPDATE [bank_accounts] SET [cents] = [cents] - ? WHERE [id] = ?",
        params![cents, account],
    )
    .await?;
    let left = balance(conn, account).await?;
    if left < 0 {
        return Err(BankError::Insufficient {
            account: account.into(),
            cents: left,
        });
    }
    Ok(())
}

#[auto_transaction]
async fn deposit(conn: &mut Connection, account: &str, cents: i64) -> Result<(), BankError> {
    conn.execute(
        "UPDATE [bank_accounts] SET [cents] = [cents] + ? WHERE [id] = ?",
        params![cents, account],
    )
    .await?;
    Ok(())
}

/// Both legs in one transaction: the inner annotated calls join it; it commits once, here.
#[auto_transaction]
async fn transfer(
    conn: &mut Connection,
    from: &str,
    to: &str,
    cents: i64,
) -> Result<(), BankError> {
    deposit(conn, to, cents).await?; // credited first…
    withdraw(conn, from, cents).await?; // …so a failing debit must undo the credit
    Ok(())
}

async fn show(conn: &mut Connection) -> dal::Result<()> {
    let rows = conn
        .execute(
            "SELECT [id], [cents] FROM [bank_accounts] ORDER BY [id]",
            (),
        )
        .await?;
    let line: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}={}",
                r.try_get::<String, _>("id").unwrap_or_default(),
                r.try_get::<i64, _>("cents").unwrap_or(0)
            )
        })
        .collect();
    println!("  balances: {}", line.join(", "));
    Ok(())
}

#[tokio::main]
async fn main() -> dal::Result<()> {
    let url = std::env::var("DAL_EXAMPLE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    let db = Database::from_url(&url)?;
    let mut conn = db.async_connection().await?;
    conn.execute("DROP TABLE IF EXISTS [bank_accounts]", ())
        .await?;
    conn.execute(
        "CREATE TABLE [bank_accounts] ([id] VARCHAR(20) PRIMARY KEY, [cents] BIGINT NOT NULL)",
        (),
    )
    .await?;
    conn.executemany(
        "INSERT INTO [bank_accounts] ([id], [cents]) VALUES (?, ?)",
        vec![params!["alice", 10_000], params!["bob", 500]],
    )
    .await?;
    show(&mut conn).await?;

    println!("transfer 30.00 alice -> bob");
    transfer(&mut conn, "alice", "bob", 3_000)
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    show(&mut conn).await?;

    println!("transfer 50.00 bob -> alice (bob only has 35.00): fails half-way");
    match transfer(&mut conn, "bob", "alice", 5_000).await {
        Err(BankError::Insufficient { account, cents }) => {
            println!(
                "  refused: {account} would be at {cents}; the credit to alice was rolled back"
            )
        }
        Err(other) => println!("  unexpected error: {other}"),
        Ok(()) => println!("  unexpected success"),
    }
    assert!(!conn.in_transaction());
    show(&mut conn).await?;

    drop(conn);
    PoolManager::close_pool(Some(db.hash()), Duration::from_secs(5)).await?;
    Ok(())
}
