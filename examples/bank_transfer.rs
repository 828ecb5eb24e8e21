//! A small bank on typed entities and `#[auto_transaction]`: a transfer locks both accounts
//! (`get_for_update`, always in id order), checks the balance and saves both, all in one
//! transaction that commits on `Ok` and rolls back on `Err`, panic or cancellation. Nested
//! annotated calls join the outer transaction. Then 20 transfers run at once, twice, and the
//! total stays what it was: no lost update, no overdraft, no deadlock.
//!
//! `cargo run --example bank_transfer` runs on embedded SQLite (in memory); set
//! `DAL_EXAMPLE_URL` to a `postgres://…` or `mysql://…` URL to run it on a server. It uses the
//! entity `example_bank_accounts`, whose tables are dropped at the start, so every run prints
//! the same thing.

use std::time::Duration;

use dal::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Entity)]
#[entity(table = "example_bank_accounts")]
struct Account {
    id: String,
    owner: String,
    cents: i64,
}

/// The bank's own error type: `#[auto_transaction]` accepts any error that a `dal::Error`
/// converts into, so `?` works on database calls and business rules alike.
#[derive(Debug)]
enum BankError {
    NoSuchAccount(String),
    Insufficient {
        account: String,
        balance: i64,
        wanted: i64,
    },
    Db(dal::Error),
}

impl std::fmt::Display for BankError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BankError::NoSuchAccount(id) => write!(f, "no account {id}"),
            BankError::Insufficient {
                account,
                balance,
                wanted,
            } => write!(
                f,
                "{account} holds {} and cannot pay {}",
                money(*balance),
                money(*wanted)
            ),
            BankError::Db(e) => write!(f, "database: {e}"),
        }
    }
}

impl From<dal::Error> for BankError {
    fn from(e: dal::Error) -> Self {
        BankError::Db(e)
    }
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Reads an account and locks its row until the transaction ends.
async fn lock(conn: &mut Connection, id: &str) -> Result<Account, BankError> {
    conn.get_for_update::<Account>(id)
        .await?
        .ok_or_else(|| BankError::NoSuchAccount(id.to_owned()))
}

/// Moves `cents` from `from` to `to`. Both rows are locked before the balance is checked, so a
/// concurrent transfer waits instead of overwriting this one (reading with a plain `get` here
/// would let two transfers both see the old balance: a lost update). The locks are always taken
/// in id order, so two transfers in opposite directions queue instead of deadlocking.
#[auto_transaction]
async fn transfer(
    conn: &mut Connection,
    from: &str,
    to: &str,
    cents: i64,
) -> Result<(), BankError> {
    if from == to {
        return Ok(());
    }
    let (first, second) = if from < to { (from, to) } else { (to, from) };
    let first = lock(conn, first).await?;
    let second = lock(conn, second).await?;
    let (mut source, mut target) = if from < to {
        (first, second)
    } else {
        (second, first)
    };
    if source.cents < cents {
        return Err(BankError::Insufficient {
            account: source.owner,
            balance: source.cents,
            wanted: cents,
        });
    }
    source.cents -= cents;
    target.cents += cents;
    conn.save(&source).await?;
    conn.save(&target).await?;
    Ok(())
}

/// Several transfers as one: each inner `transfer` joins this transaction (and commits
/// nothing itself), so one refused transfer undoes the ones before it.
#[auto_transaction]
async fn transfer_all(conn: &mut Connection, batch: &[(&str, &str, i64)]) -> Result<(), BankError> {
    for (from, to, cents) in batch {
        transfer(conn, from, to, *cents).await?;
    }
    Ok(())
}

async fn show(conn: &mut Connection) -> Result<(), BankError> {
    let accounts = conn.find::<Account>().order_by("[id]").await?;
    let total: i64 = accounts.iter().map(|a| a.cents).sum();
    let line: Vec<String> = accounts
        .iter()
        .map(|a| format!("{} {}", a.owner, money(a.cents)))
        .collect();
    println!("  balances: {} (total {})", line.join(", "), money(total));
    Ok(())
}

/// Runs the transfers concurrently, each on its own pooled connection, and counts the outcomes.
async fn run_concurrently(
    db: &Database,
    transfers: Vec<(&'static str, &'static str, i64)>,
) -> Result<(), BankError> {
    let tasks: Vec<_> = transfers
        .into_iter()
        .map(|(from, to, cents)| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut conn = db.async_connection().await?;
                transfer(&mut conn, from, to, cents).await
            })
        })
        .collect();
    let (mut done, mut refused) = (0, 0);
    for task in tasks {
        match task.await {
            Ok(Ok(())) => done += 1,
            Ok(Err(BankError::Insufficient { .. })) => refused += 1,
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(BankError::Db(Error::Internal(e.to_string()))),
        }
    }
    println!("  {done} done, {refused} refused for lack of funds");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BankError> {
    let url = std::env::var("DAL_EXAMPLE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    let db = Database::from_url(&url)?;
    let mut conn = db.async_connection().await?;

    // Start from nothing, so that every run is the same.
    for table in [
        "example_bank_accounts",
        "example_bank_accounts_meta",
        "example_bank_accounts_history",
    ] {
        conn.execute(&format!("DROP TABLE IF EXISTS [{table}]"), ())
            .await?;
    }
    let open = |id: &str, owner: &str, cents| Account {
        id: id.into(),
        owner: owner.into(),
        cents,
    };
    conn.save_all(&[
        open("alice", "Alice", 10_000),
        open("bob", "Bob", 500),
        open("carol", "Carol", 0),
    ])
    .await?;
    show(&mut conn).await?;

    println!("transfer 30.00 Alice -> Bob");
    transfer(&mut conn, "alice", "bob", 3_000).await?;
    show(&mut conn).await?;

    println!("in one transaction: 20.00 Alice -> Carol, then 50.00 Bob -> Alice (Bob has 35.00)");
    match transfer_all(
        &mut conn,
        &[("alice", "carol", 2_000), ("bob", "alice", 5_000)],
    )
    .await
    {
        Err(e @ BankError::Insufficient { .. }) => {
            println!("  refused: {e}; the 20.00 to Carol was rolled back with it")
        }
        Err(other) => return Err(other),
        Ok(()) => println!("  unexpected success"),
    }
    assert!(!conn.in_transaction());
    show(&mut conn).await?;
    drop(conn);

    println!("20 concurrent transfers of 1.00: 10 Alice -> Bob and 10 Bob -> Alice");
    let crossing = (0..20)
        .map(|i| {
            if i % 2 == 0 {
                ("alice", "bob", 100)
            } else {
                ("bob", "alice", 100)
            }
        })
        .collect();
    run_concurrently(&db, crossing).await?;
    show(&mut db.async_connection().await?).await?;

    println!("20 concurrent transfers of 5.00 Bob -> Carol (Bob has 35.00: only 7 can be paid)");
    run_concurrently(&db, vec![("bob", "carol", 500); 20]).await?;
    let mut conn = db.async_connection().await?;
    show(&mut conn).await?;

    // Every change is a new version of the account, with its history.
    for id in ["alice", "bob", "carol"] {
        let versions = conn.history::<Account>(id).await?;
        println!("  {id}: {} versions", versions.len());
    }

    drop(conn);
    PoolManager::close_pool(Some(db.hash()), Duration::from_secs(5)).await?;
    Ok(())
}
