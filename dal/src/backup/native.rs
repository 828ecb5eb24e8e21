//! Native dumps with the backend's own tools: `pg_dump` (custom format) / `pg_restore`,
//! `mariadb-dump` (or `mysqldump`) / `mariadb` (or `mysql`), and SQLite's `VACUUM INTO`.
//!
//! The password goes to the tools through their environment (`PGPASSWORD`, `MYSQL_PWD`),
//! never on the command line, and never into an error: a failing tool's message is its own
//! standard error.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::database::Database;
use crate::error::{Error, Result};
use crate::sql::Backend;

/// Dumps the whole database into the file `path` (which must not exist) with the backend's
/// own tool, and returns the path:
///
/// * PostgreSQL: `pg_dump --format=custom` (restore with [`native_restore`] or `pg_restore`);
/// * MySQL/MariaDB: `mariadb-dump` (else `mysqldump`) `--single-transaction`, plain SQL;
/// * SQLite: `VACUUM INTO`, an online, consistent copy of the database file, with no tool
///   (of a database file: the shared in-memory database of `sqlite::memory:` is not
///   supported).
///
/// A missing tool is an [`Error::Backup`] that names it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
/// use dal::prelude::*;
/// let dir = std::env::temp_dir();
/// let source = dir.join(format!("dal-doc-dump-src-{}.db", std::process::id()));
/// let path = dir.join(format!("dal-doc-dump-{}.db", std::process::id()));
/// # let _ = std::fs::remove_file(&path); let _ = std::fs::remove_file(&source);
/// let db = Database::from_url(&format!("sqlite://{}", source.display()))?;
/// db.async_connection().await?.save_entity("doc_dumped", json!({"a": 1})).await?;
/// let written = dal::backup::native_dump(&db, &path).await?;
/// let copy = Database::from_url(&format!("sqlite://{}", written.display()))?;
/// assert_eq!(copy.async_connection().await?.count_entities("doc_dumped").await?, 1);
/// # copy.close(std::time::Duration::from_secs(1)).await?; let _ = std::fs::remove_file(&path);
/// # db.close(std::time::Duration::from_secs(1)).await?; let _ = std::fs::remove_file(&source);
/// # Ok(()) }
/// ```
pub async fn native_dump(db: &Database, path: impl AsRef<Path>) -> Result<PathBuf> {
    let path = path.as_ref().to_path_buf();
    if tokio::fs::try_exists(&path).await.unwrap_or(false) {
        return Err(Error::Backup(format!(
            "{} exists already; a dump goes into a new file",
            path.display()
        )));
    }
    match db.backend() {
        Backend::Sqlite => {
            let name = db.config().database();
            if name == ":memory:" || name.contains("mode=memory") {
                return Err(Error::Backup(
                    "native_dump copies a SQLite database file; this database is in memory (use backup::export or backup::copy)".into(),
                ));
            }
            let mut conn = db.async_connection().await?;
            let target = path.to_string_lossy().into_owned();
            conn.execute("VACUUM INTO ?", crate::params![target])
                .await?;
        }
        Backend::Postgres => {
            let mut cmd = tool(db, &["pg_dump"])?;
            cmd.arg("--format=custom")
                .arg("--no-password")
                .arg("--file")
                .arg(&path)
                .arg("--dbname")
                .arg(db.config().database());
            run(cmd, "pg_dump", None).await?;
        }
        Backend::MySql => {
            let (mut cmd, name) = tool_either(db, &["mariadb-dump", "mysqldump"])?;
            cmd.arg("--single-transaction")
                .arg("--routines")
                .arg("--triggers")
                .arg(format!("--result-file={}", path.display()))
                .arg(db.config().database());
            run(cmd, name, None).await?;
        }
    }
    Ok(path)
}

/// Restores a [`native_dump`] of PostgreSQL (`pg_restore`) or MySQL/MariaDB (`mariadb`, else
/// `mysql`) into `db`. For SQLite the dump is a database file: open it (or copy it in place
/// while no connection is open) instead; this returns an error saying so.
pub async fn native_restore(db: &Database, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    if !tokio::fs::try_exists(path).await.unwrap_or(false) {
        return Err(Error::Backup(format!("no dump at {}", path.display())));
    }
    match db.backend() {
        Backend::Sqlite => Err(Error::Backup(format!(
            "a SQLite dump is a database file: open {} directly (or copy it over the database file while no connection is open)",
            path.display()
        ))),
        Backend::Postgres => {
            let mut cmd = tool(db, &["pg_restore"])?;
            cmd.arg("--no-owner")
                .arg("--no-password")
                .arg("--exit-on-error")
                .arg("--dbname")
                .arg(db.config().database())
                .arg(path);
            run(cmd, "pg_restore", None).await
        }
        Backend::MySql => {
            let (mut cmd, name) = tool_either(db, &["mariadb", "mysql"])?;
            cmd.arg(db.config().database());
            run(cmd, name, Some(path)).await
        }
    }
}

/// The first of `names` found on `PATH`, with the connection arguments and environment.
fn tool_either(
    db: &Database,
    names: &[&'static str],
) -> Result<(tokio::process::Command, &'static str)> {
    let found = names.iter().find(|n| on_path(n)).ok_or_else(|| {
        Error::Backup(format!(
            "{} not found on PATH: install the {} client tools to make native dumps",
            names.join(" or "),
            db.backend().as_str()
        ))
    })?;
    let cfg = db.config();
    let mut cmd = tokio::process::Command::new(found);
    let host = cfg.get_host();
    match db.backend() {
        Backend::Postgres => {
            if !host.is_empty() {
                cmd.arg("--host").arg(host);
            }
            if let Some(port) = cfg.get_port() {
                cmd.arg("--port").arg(port.to_string());
            }
            if let Some(user) = cfg.get_user() {
                cmd.arg("--username").arg(user);
            }
            cmd.env_remove("PGPASSWORD");
            if let Some(pw) = password(cfg) {
                cmd.env("PGPASSWORD", pw);
            }
        }
        _ => {
            if !host.is_empty() {
                cmd.arg(format!("--host={host}"));
                if host != "localhost" {
                    cmd.arg("--protocol=TCP");
                }
            }
            if let Some(port) = cfg.get_port() {
                cmd.arg(format!("--port={port}"));
            }
            if let Some(user) = cfg.get_user() {
                cmd.arg(format!("--user={user}"));
            }
            cmd.env_remove("MYSQL_PWD");
            if let Some(pw) = password(cfg) {
                cmd.env("MYSQL_PWD", pw);
            }
        }
    }
    Ok((cmd, found))
}

/// The configured password (only ever passed through the tool's environment).
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn password(cfg: &crate::config::DatabaseConfig) -> Option<&str> {
    cfg.password_secret()
}

/// Without a server backend compiled in, no tool needs a password.
#[cfg(not(any(feature = "postgres", feature = "mysql")))]
fn password(_cfg: &crate::config::DatabaseConfig) -> Option<&str> {
    None
}

fn tool(db: &Database, names: &[&'static str]) -> Result<tokio::process::Command> {
    tool_either(db, names).map(|(cmd, _)| cmd)
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
}

/// Runs a tool to its end; a failure is its standard error (never the command line or the
/// environment).
async fn run(mut cmd: tokio::process::Command, name: &str, stdin: Option<&Path>) -> Result<()> {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match stdin {
        Some(path) => {
            let f = tokio::fs::File::open(path)
                .await
                .map_err(|e| Error::Backup(format!("cannot open {}: {e}", path.display())))?;
            cmd.stdin(f.into_std().await);
        }
        None => {
            cmd.stdin(Stdio::null());
        }
    }
    let out = cmd
        .output()
        .await
        .map_err(|e| Error::Backup(format!("cannot run {name}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut msg: String = stderr.trim().chars().take(2000).collect();
    if msg.is_empty() {
        msg = "no message".into();
    }
    Err(Error::Backup(format!(
        "{name} failed ({}): {msg}",
        out.status
    )))
}
