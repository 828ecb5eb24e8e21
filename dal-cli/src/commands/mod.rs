//! One function per command; each returns the [`Report`] to print.

mod backup;
mod migrate;
mod rollback;
mod status;

use std::time::Duration;

use anyhow::{bail, Context};
use dal::Database;

use crate::cli::{Cli, Command, Migrate};
use crate::output::Report;

/// How long closing a pool may wait for its connections at exit.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the command, closing every pool it opened (SQLite checkpoints its WAL on close).
pub async fn run(cli: Cli) -> anyhow::Result<Report> {
    let json = cli.json;
    match cli.command {
        Command::Copy(args) => backup::copy(args, json).await,
        command => {
            let db = open(cli.url.as_deref(), "--url")?;
            let result = match command {
                Command::Migrate(Migrate::Plan(args)) => migrate::plan(&db, args, json).await,
                Command::Migrate(Migrate::Apply(args)) => migrate::apply(&db, args, json).await,
                Command::Backup(args) => backup::backup(&db, args, json).await,
                Command::Restore(args) => backup::restore(&db, args, json).await,
                Command::Rollback(args) => rollback::rollback(&db, args, json).await,
                Command::Status(args) => status::status(&db, args, json).await,
                Command::Copy(_) => Err(anyhow::anyhow!("copy opens its own databases")),
            };
            close(&db).await;
            result
        }
    }
}

/// The database of `url`, or of `DATABASE_URL` when no URL is given. Nothing connects yet.
/// Errors never show the password (the library redacts it).
pub fn open(url: Option<&str>, option: &str) -> anyhow::Result<Database> {
    match url {
        Some(url) => Database::from_url(url).with_context(|| option.to_owned()),
        None => {
            let set = std::env::var_os("DATABASE_URL").is_some_and(|v| !v.is_empty());
            if !set {
                bail!("no database URL: pass {option} URL or set DATABASE_URL");
            }
            Ok(Database::from_env().context("DATABASE_URL")?)
        }
    }
}

/// Closes the database's pools; a failure to close is not the command's failure.
pub async fn close(db: &Database) {
    let _ = db.close(CLOSE_TIMEOUT).await;
}

/// `alias (backend://user:***@host:port/db)`: the configuration as the library shows it,
/// never with the password.
pub fn describe(db: &Database) -> String {
    db.config().to_string()
}
