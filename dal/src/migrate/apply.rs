//! Running a plan under the migration lock, recording it in `dal_migrations`, writing the
//! audit file.
//!
//! * PostgreSQL: one transaction holding `pg_advisory_xact_lock(MIGRATION_LOCK_KEY)`;
//! * SQLite: one `BEGIN IMMEDIATE` transaction (the database's write lock);
//! * MySQL/MariaDB: `GET_LOCK('dal_migrate', 60)` on the session, released on every path;
//!   DDL commits each statement, so a failure leaves the statements before it applied, and
//!   the next apply plans from the catalog and goes on from there.
//!
//! The plan is computed again once the lock is held: a migrator that waited for another finds
//! nothing left to do, and records nothing.

use std::path::Path;

use chrono::Utc;

use super::model::EntitySchema;
use super::plan::MigrationPlan;
use super::AppliedMigration;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::sql::Backend;
use crate::value::Value;

/// The advisory lock key of migrations on PostgreSQL (`'dal_migrate'` as bytes, truncated).
const MIGRATION_LOCK_KEY: i64 = 0x6461_6c5f_6d69_6772;
/// The named lock on MySQL/MariaDB, and how long to wait for it (seconds).
const MYSQL_LOCK: &str = "dal_migrate";
const MYSQL_LOCK_WAIT_SECS: i64 = 60;
/// The table of applied plans.
const MIGRATIONS_TABLE: &str = "dal_migrations";

pub(crate) async fn apply(
    conn: &mut Connection,
    schemas: &[EntitySchema],
    drop_undeclared: bool,
    allow_destructive: bool,
    user: Option<&str>,
) -> Result<MigrationPlan> {
    let applied_by = applied_by(conn, user).await;
    let result = match conn.backend() {
        Backend::MySql => {
            // Cancelled while the lock is held: the session is closed, which releases it.
            conn.set_close_on_drop(true);
            let got = conn
                .query_count(
                    "SELECT GET_LOCK(?, ?)",
                    vec![Value::from(MYSQL_LOCK), Value::Int(MYSQL_LOCK_WAIT_SECS)],
                )
                .await?;
            if got != 1 {
                conn.set_close_on_drop(false);
                return Err(Error::Entity(format!(
                    "another migration held the lock {MYSQL_LOCK:?} for {MYSQL_LOCK_WAIT_SECS} s; nothing was applied"
                )));
            }
            let result = locked(
                conn,
                schemas,
                drop_undeclared,
                allow_destructive,
                &applied_by,
            )
            .await;
            let released = conn
                .query_rows("SELECT RELEASE_LOCK(?)", vec![Value::from(MYSQL_LOCK)])
                .await;
            if released.is_ok() {
                conn.set_close_on_drop(false);
            }
            let plan = result?;
            released?;
            Ok(plan)
        }
        backend => {
            // SQLite rebuilds a table to change its constraints (new table, copy, DROP, rename):
            // with foreign keys on, the DROP would delete the rows of the old table under
            // the rows pointing at them (and run their ON DELETE actions). Off for the
            // migration (a no-op inside a transaction, so before BEGIN), checked before COMMIT,
            // on again after; the connection is closed rather than pooled until it is.
            let sqlite = backend == Backend::Sqlite;
            if sqlite {
                conn.set_close_on_drop(true);
                conn.query_rows("PRAGMA foreign_keys = OFF", vec![]).await?;
            }
            conn.begin_transaction().await?;
            let result = async {
                if backend == Backend::Postgres {
                    conn.query_rows(
                        "SELECT pg_advisory_xact_lock(?)",
                        vec![Value::Int(MIGRATION_LOCK_KEY)],
                    )
                    .await?;
                }
                let plan = locked(
                    conn,
                    schemas,
                    drop_undeclared,
                    allow_destructive,
                    &applied_by,
                )
                .await?;
                if sqlite {
                    let dangling = conn.query_rows("PRAGMA foreign_key_check", vec![]).await?;
                    if !dangling.is_empty() {
                        return Err(Error::Entity(format!(
                            "the migration would leave {} rows whose foreign key points to no row; nothing was applied",
                            dangling.len()
                        )));
                    }
                }
                Ok(plan)
            }
            .await;
            let result = match result {
                Ok(plan) => conn.commit_transaction().await.map(|()| plan),
                Err(e) => {
                    // The error that stopped the migration is the one to report.
                    let _ = conn.rollback_transaction().await;
                    Err(e)
                }
            };
            if sqlite
                && conn
                    .query_rows("PRAGMA foreign_keys = ON", vec![])
                    .await
                    .is_ok()
            {
                conn.set_close_on_drop(false);
            }
            result
        }
    };
    match &result {
        Ok(plan) => forget_cached(conn, plan),
        // On MySQL the statements before the failing one are applied: whatever the backend,
        // no cached schema of a declared entity is trusted any more.
        Err(_) => {
            for s in schemas {
                conn.schema_cache().forget(&s.name);
            }
        }
    }
    result
}

/// With the lock held: plans, refuses destructive changes unless allowed, runs, records.
async fn locked(
    conn: &mut Connection,
    schemas: &[EntitySchema],
    drop_undeclared: bool,
    allow_destructive: bool,
    applied_by: &str,
) -> Result<MigrationPlan> {
    ensure_migrations_table(conn).await?;
    let plan = super::diff::plan(conn, schemas, drop_undeclared).await?;
    if plan.is_empty() {
        return Ok(plan);
    }
    let destructive = plan.destructive();
    if !destructive.is_empty() && !allow_destructive {
        let list: Vec<String> = destructive.iter().map(|c| c.to_string()).collect();
        return Err(Error::Entity(format!(
            "the migration has destructive changes and allow_destructive is off; nothing was applied: {}",
            list.join("; ")
        )));
    }
    for (portable, native) in plan.portable().iter().zip(plan.statements()) {
        conn.query_rows(portable, vec![]).await.map_err(|e| {
            tracing::error!(target: "dal::migrate", statement = %native, error = %e, "migration statement failed");
            e
        })?;
    }
    let next = conn
        .query_count(
            &format!("SELECT COALESCE(MAX([id]), 0) + 1 FROM [{MIGRATIONS_TABLE}]"),
            vec![],
        )
        .await?;
    conn.query_rows(
        &format!(
            "INSERT INTO [{MIGRATIONS_TABLE}] ([id], [checksum], [statements], [applied_by], [applied_at], [backend]) VALUES (?, ?, ?, ?, ?, ?)"
        ),
        vec![
            Value::Int(next),
            Value::from(plan.checksum()),
            Value::from(script(&plan)),
            Value::from(applied_by),
            Value::from(Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
            Value::from(plan.backend().as_str()),
        ],
    )
    .await?;
    tracing::info!(
        target: "dal::migrate",
        checksum = plan.checksum(),
        statements = plan.statements().len(),
        "migration applied"
    );
    Ok(plan)
}

/// The statements as a script, each ending in `;`.
fn script(plan: &MigrationPlan) -> String {
    plan.statements()
        .iter()
        .map(|s| format!("{s};\n"))
        .collect()
}

/// Applied schema changes make every cached entity schema of this pool stale.
fn forget_cached(conn: &Connection, plan: &MigrationPlan) {
    for c in plan.changes() {
        conn.schema_cache().forget(c.entity());
    }
}

async fn ensure_migrations_table(conn: &mut Connection) -> Result<()> {
    let d = conn.dialect();
    let long = d.system_types().long_text;
    let opts = d.table_options();
    conn.query_rows(
        &format!(
            "CREATE TABLE IF NOT EXISTS [{MIGRATIONS_TABLE}] ([id] BIGINT NOT NULL, [checksum] VARCHAR(64) NOT NULL, [statements] {long} NOT NULL, [applied_by] VARCHAR(255) NOT NULL, [applied_at] VARCHAR(40) NOT NULL, [backend] VARCHAR(16) NOT NULL, PRIMARY KEY ([id])){opts}"
        ),
        vec![],
    )
    .await?;
    Ok(())
}

/// `user@host`: the database user (as the server sees it where it can say) and this
/// machine's host name.
async fn applied_by(conn: &mut Connection, configured: Option<&str>) -> String {
    let sql = match conn.backend() {
        Backend::Postgres => Some("SELECT CAST(current_user AS TEXT)"),
        Backend::MySql => Some("SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)"),
        Backend::Sqlite => None,
    };
    let mut user = configured.map(str::to_owned);
    if let Some(sql) = sql {
        if let Ok(rows) = conn.query_rows(sql, vec![]).await {
            if let Some(Ok(Some(u))) = rows.first().map(|r| r.try_get::<Option<String>, _>(0)) {
                user = Some(u);
            }
        }
    }
    let user = user
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{user}@{}", host_name().await)
}

async fn host_name() -> String {
    let read = tokio::task::spawn_blocking(|| {
        ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
    })
    .await
    .ok()
    .flatten();
    read.map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// Writes `dir/<UTC timestamp>_<checksum8>.sql` with the applied statements.
pub(crate) async fn write_audit(dir: &Path, plan: &MigrationPlan) -> Result<()> {
    let name = format!(
        "{}_{}.sql",
        Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
        &plan.checksum()[..8]
    );
    let path = dir.join(name);
    let text = format!(
        "-- dal migration {} ({})\n{}",
        plan.checksum(),
        plan.backend().as_str(),
        script(plan)
    );
    let dir = dir.to_owned();
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(&path, text)
    })
    .await
    .map_err(|e| Error::Internal(format!("writing {shown}: {e}")))?
    .map_err(|e| {
        Error::Config(format!(
            "the migration was applied, but its audit file {shown} could not be written: {e}"
        ))
    })
}

/// Rows of `dal_migrations`, oldest first.
pub(crate) async fn history(conn: &mut Connection) -> Result<Vec<AppliedMigration>> {
    if !conn.table_exists(MIGRATIONS_TABLE).await? {
        return Ok(Vec::new());
    }
    let rows = conn
        .query_rows(
            &format!(
                "SELECT [id], [checksum], [statements], [applied_by], [applied_at], [backend] FROM [{MIGRATIONS_TABLE}] ORDER BY [id]"
            ),
            vec![],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(AppliedMigration {
                id: r.try_get(0)?,
                checksum: r.try_get(1)?,
                statements: r.try_get(2)?,
                applied_by: r.try_get(3)?,
                applied_at: r.try_get(4)?,
                backend: r.try_get(5)?,
            })
        })
        .collect()
}
