//! One helper runs every integration test against every backend.
//!
//! Backends come from `DAL_TEST_POSTGRES_URL` and `DAL_TEST_MYSQL_URL` (defaults: the local
//! services on 127.0.0.1 with database `dal_test`); SQLite always runs, on a fresh temp file.
//! `DAL_TEST_BACKENDS=sqlite,postgres` narrows the run for quick local work. A backend that is
//! selected but unreachable FAILS the test: nothing is skipped silently.
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use dal::{Backend, Database, DatabaseConfig, PoolManager};

pub mod logs;
pub mod proxy;

pub const PG_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/dal_test";
pub const MY_DEFAULT: &str = "mysql://root@127.0.0.1:3306/dal_test";

/// The backends this run covers.
pub fn selected() -> Vec<Backend> {
    match std::env::var("DAL_TEST_BACKENDS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|s| {
                Backend::from_name(s.trim()).expect("DAL_TEST_BACKENDS names an unknown backend")
            })
            .collect(),
        _ => vec![Backend::Sqlite, Backend::Postgres, Backend::MySql],
    }
}

/// Base configuration for `backend`, with an alias unique to `test` (so it has its own pool).
pub fn config(backend: Backend, test: &str) -> DatabaseConfig {
    let alias = format!("{test}-{}", backend.as_str());
    let c = match backend {
        Backend::Postgres => DatabaseConfig::from_url(
            &std::env::var("DAL_TEST_POSTGRES_URL").unwrap_or_else(|_| PG_DEFAULT.into()),
        )
        .expect("DAL_TEST_POSTGRES_URL"),
        Backend::MySql => DatabaseConfig::from_url(
            &std::env::var("DAL_TEST_MYSQL_URL").unwrap_or_else(|_| MY_DEFAULT.into()),
        )
        .expect("DAL_TEST_MYSQL_URL"),
        Backend::Sqlite => {
            let path =
                std::env::temp_dir().join(format!("dal-test-{alias}-{}.db", std::process::id()));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            DatabaseConfig::new(path.to_string_lossy().into_owned())
        }
    };
    c.alias(alias)
        .connection_acquisition_timeout(Duration::from_secs(10))
}

pub fn database(backend: Backend, config: DatabaseConfig) -> Database {
    Database::new(backend, config)
}

/// Runs `body` once per selected backend, each on a database with its own pool, and fails
/// naming every backend where it failed.
pub async fn each_backend<F, Fut>(test: &str, body: F)
where
    F: Fn(Database) -> Fut,
    Fut: Future<Output = dal::Result<()>>,
{
    each_backend_with(test, |c| c, body).await
}

/// Like [`each_backend`], with a hook to adjust the configuration.
pub async fn each_backend_with<C, F, Fut>(test: &str, adjust: C, body: F)
where
    C: Fn(DatabaseConfig) -> DatabaseConfig,
    F: Fn(Database) -> Fut,
    Fut: Future<Output = dal::Result<()>>,
{
    let mut failures = Vec::new();
    for backend in selected() {
        let db = database(backend, adjust(config(backend, test)));
        let result = body(db.clone()).await;
        let _ = PoolManager::close_pool(Some(db.hash()), Duration::from_secs(10)).await;
        if let Err(e) = result {
            failures.push(format!("{}: {e}", backend.as_str()));
        }
    }
    assert!(failures.is_empty(), "{test} failed on: {failures:#?}");
}

/// A table name unique to this test, dropped if it exists.
pub async fn fresh_table(conn: &mut dal::Connection, name: &str) -> dal::Result<()> {
    conn.execute(&format!("DROP TABLE IF EXISTS [{name}]"), ())
        .await?;
    Ok(())
}

/// Drops an entity's three tables (rows, history, metadata) so a test starts from nothing.
pub async fn reset_entity(conn: &mut dal::Connection, entity: &str) -> dal::Result<()> {
    for t in [
        entity.to_owned(),
        format!("{entity}_history"),
        format!("{entity}_meta"),
    ] {
        conn.execute(&format!("DROP TABLE IF EXISTS [{t}]"), ())
            .await?;
    }
    Ok(())
}

/// A statement that runs for about `secs` seconds on `backend` (SQLite: a long recursive CTE).
pub fn slow_sql(backend: Backend, secs: u32) -> String {
    match backend {
        Backend::Postgres => format!("SELECT pg_sleep({secs})"),
        Backend::MySql => format!("SELECT SLEEP({secs})"),
        Backend::Sqlite => format!(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {}) SELECT SUM(x) FROM c",
            u64::from(secs) * 20_000_000
        ),
    }
}

/// Polls `cond` until it holds or `deadline` passes; returns whether it held.
pub async fn eventually<F, Fut>(deadline: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return true;
        }
        if start.elapsed() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP listener on loopback that accepts connections and never answers: a silent server.
pub async fn silent_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    (port, task)
}

/// A loopback port with nothing listening on it: connections are refused.
pub fn refused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("addr").port()
}

/// The port of `backend`'s server as configured for `test` (default port when the URL has
/// none): what a [`proxy::Proxy`] forwards to.
pub fn server_port(backend: Backend, test: &str) -> u16 {
    config(backend, test).get_port().unwrap_or(match backend {
        Backend::Postgres => 5432,
        _ => 3306,
    })
}

/// A configuration for `backend` (alias unique to `test`) that reaches its server through a
/// proxy listening on 127.0.0.1:`port`.
pub fn through_proxy(backend: Backend, test: &str, port: u16) -> DatabaseConfig {
    let base = config(backend, test);
    let mut c = DatabaseConfig::new(base.database())
        .host("127.0.0.1")
        .port(port)
        .alias(base.get_alias().to_owned());
    if let Some(user) = base.get_user() {
        c = c.user(user);
    }
    c
}
