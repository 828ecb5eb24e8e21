//! The pools contenders open and close, as [`Resource`]s: one setup and one teardown per kind
//! of pool, shared by every workload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dal_bench::Result;

use crate::contender::Resource;

pub async fn dal_db(url: &str, size: usize) -> Result<dal::Database> {
    let config = dal::DatabaseConfig::from_url(url)?
        .pool_size(size, size)
        .alias("dal-bench");
    let backend = config.backend().ok_or("URL names no backend")?;
    let db = dal::Database::new(backend, config);
    // First use opens the pool's `min` connections.
    drop(db.async_connection().await?);
    Ok(db)
}

pub async fn close_dal(db: dal::Database) -> Result<()> {
    db.close(Duration::from_secs(10)).await?;
    Ok(())
}

pub async fn sqlx_pg(url: &str, size: usize, test_before_acquire: bool) -> Result<sqlx::PgPool> {
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(size as u32)
        .min_connections(size as u32)
        .test_before_acquire(test_before_acquire)
        .connect(url)
        .await?)
}

fn deadpool_pool(url: &str, size: usize) -> Result<deadpool_postgres::Pool> {
    let config: tokio_postgres::Config = url.parse()?;
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    Ok(deadpool_postgres::Pool::builder(manager)
        .max_size(size)
        .build()?)
}

async fn seaorm_db(url: &str, size: usize) -> Result<sea_orm::DatabaseConnection> {
    let mut opt = sea_orm::ConnectOptions::new(url.to_owned());
    opt.max_connections(size as u32)
        .min_connections(size as u32)
        .sqlx_logging(false);
    Ok(sea_orm::Database::connect(opt).await?)
}

async fn sqlx_my(url: &str, size: usize) -> Result<sqlx::MySqlPool> {
    Ok(sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(size as u32)
        .min_connections(size as u32)
        .test_before_acquire(false)
        .connect(url)
        .await?)
}

pub fn sqlite_options(path: &Path) -> sqlx::sqlite::SqliteConnectOptions {
    // The same settings as dal's SQLite driver (dal/src/backend/sqlite.rs).
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        .statement_cache_capacity(512)
}

async fn sqlx_lite(path: &Path, size: usize) -> Result<sqlx::SqlitePool> {
    Ok(sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(size as u32)
        .min_connections(size as u32)
        .test_before_acquire(false)
        .connect_with(sqlite_options(path))
        .await?)
}

/// A dal pool of `size` connections (all opened at setup) for any backend's URL.
pub fn dal(url: &str, size: usize) -> Resource<dal::Database> {
    let url = url.to_owned();
    Resource {
        setup: Box::new(move || {
            let url = url.clone();
            Box::pin(async move { dal_db(&url, size).await })
        }),
        teardown: |db| Box::pin(close_dal(db)),
    }
}

/// A sqlx PostgreSQL pool of `size` connections.
pub fn pg(url: &str, size: usize, test_before_acquire: bool) -> Resource<sqlx::PgPool> {
    let url = url.to_owned();
    Resource {
        setup: Box::new(move || {
            let url = url.clone();
            Box::pin(async move { sqlx_pg(&url, size, test_before_acquire).await })
        }),
        teardown: |pool| {
            Box::pin(async move {
                pool.close().await;
                Ok(())
            })
        },
    }
}

/// One bare sqlx `PgConnection` (no pool), behind an uncontended async mutex so that the
/// operation can borrow it mutably: the floor of what dal's PostgreSQL driver (sqlx) costs.
pub fn pg_conn(url: &str) -> Resource<Arc<tokio::sync::Mutex<sqlx::PgConnection>>> {
    let url = url.to_owned();
    Resource {
        setup: Box::new(move || {
            let url = url.clone();
            Box::pin(async move {
                use sqlx::Connection as _;
                Ok(Arc::new(tokio::sync::Mutex::new(
                    sqlx::PgConnection::connect(&url).await?,
                )))
            })
        }),
        teardown: |conn| {
            Box::pin(async move {
                use sqlx::Connection as _;
                let conn = Arc::try_unwrap(conn).map_err(|_| "the connection is still shared")?;
                conn.into_inner().close().await?;
                Ok(())
            })
        },
    }
}

/// A deadpool of tokio-postgres connections (opened on first use), at most `size`.
pub fn deadpool(url: &str, size: usize) -> Resource<deadpool_postgres::Pool> {
    let url = url.to_owned();
    Resource {
        setup: Box::new(move || {
            let pool = deadpool_pool(&url, size);
            Box::pin(async move { pool })
        }),
        teardown: |pool| {
            Box::pin(async move {
                pool.close();
                Ok(())
            })
        },
    }
}

/// A SeaORM connection pool of `size` connections.
pub fn seaorm(url: &str, size: usize) -> Resource<sea_orm::DatabaseConnection> {
    let url = url.to_owned();
    Resource {
        setup: Box::new(move || {
            let url = url.clone();
            Box::pin(async move { seaorm_db(&url, size).await })
        }),
        teardown: |db| {
            Box::pin(async move {
                db.close().await?;
                Ok(())
            })
        },
    }
}

/// A sqlx MySQL pool of `size` connections, test_before_acquire(false).
pub fn mysql(url: &str, size: usize) -> Resource<sqlx::MySqlPool> {
    let url = url.to_owned();
    Resource {
        setup: Box::new(move || {
            let url = url.clone();
            Box::pin(async move { sqlx_my(&url, size).await })
        }),
        teardown: |pool| {
            Box::pin(async move {
                pool.close().await;
                Ok(())
            })
        },
    }
}

/// A sqlx SQLite pool of `size` connections on the file `path` (dal's settings).
pub fn sqlite(path: &Path, size: usize) -> Resource<sqlx::SqlitePool> {
    let path: PathBuf = path.to_owned();
    Resource {
        setup: Box::new(move || {
            let path = path.clone();
            Box::pin(async move { sqlx_lite(&path, size).await })
        }),
        teardown: |pool| {
            Box::pin(async move {
                pool.close().await;
                Ok(())
            })
        },
    }
}
