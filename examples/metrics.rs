//! Pool metrics and scaling signals of a live pool. Run with `cargo run --example metrics`
//! (in-memory SQLite), or point it at a server:
//! `DAL_EXAMPLE_URL=postgres://postgres@127.0.0.1:5432/dal_test cargo run --example metrics`.
//!
//! It runs a few queries (tagged, one slow enough for the slow-query log, one cut by a query
//! timeout), provokes acquisition timeouts by holding the pool's connections, then prints
//! `pool_status()`, the metrics, the scaling advice, a leak report, the health check and the
//! Prometheus exposition that a `/metrics` endpoint would serve.

use std::time::Duration;

use dal::prelude::*;

/// A statement that runs for a long time on `backend` (cut short by a timeout below).
fn slow_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "SELECT pg_sleep(10)",
        Backend::MySql => "SELECT SLEEP(10)",
        Backend::Sqlite => {
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) \
             SELECT SUM(x) FROM c"
        }
    }
}

#[tokio::main]
async fn main() -> dal::Result<()> {
    // Show dal's WARN logs (slow queries, leaks) on stderr.
    let _ = tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_writer(std::io::stderr)
            .finish(),
    );
    let url = std::env::var("DAL_EXAMPLE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    let config = DatabaseConfig::from_url(&url)?
        .alias("metrics_example")
        .pool_size(1, 2)
        .connection_acquisition_timeout(Duration::from_millis(50))
        .slow_query_threshold(Duration::from_millis(100));
    let backend = config
        .backend()
        .ok_or_else(|| Error::Config("URL names no backend".into()))?;
    let db = Database::new(backend, config);

    // Some work, tagged so it shows per operation.
    let mut conn = db.async_connection().await?;
    conn.execute("DROP TABLE IF EXISTS [metrics_example]", ())
        .await?;
    conn.execute(
        "CREATE TABLE [metrics_example] ([id] INTEGER PRIMARY KEY, [name] VARCHAR(50))",
        (),
    )
    .await?;
    for i in 0..20 {
        conn.execute(
            "INSERT INTO [metrics_example] ([id], [name]) VALUES (?, ?)",
            params![i, format!("user {i}")],
        )
        .tag("operation", "insert_user")
        .await?;
    }
    for i in 0..50 {
        conn.execute(
            "SELECT [name] FROM [metrics_example] WHERE [id] = ?",
            params![i % 20],
        )
        .tag("operation", "get_user")
        .await?;
    }
    // Cut by its timeout: a query timeout, and an entry in the slow-query log.
    let e = conn
        .execute(slow_sql(backend), ())
        .timeout(Duration::from_millis(200))
        .tag("operation", "report")
        .await
        .unwrap_err();
    println!("query timeout: {e}");
    drop(conn);

    // Hold both connections: further callers time out after 50 ms. Then release, and keep
    // working: 3 timeouts in 61 attempts is a 4.9 % timeout rate, the "scale vertically" band.
    let a = db.async_connection().await?;
    let b = db.async_connection().await?;
    for _ in 0..3 {
        let e = db.async_connection().await.unwrap_err();
        println!("acquisition: {e}");
    }
    println!(
        "leak report (held > 0 s): {:#?}",
        db.check_for_leaked_connections(Duration::ZERO)
    );
    drop((a, b));
    for _ in 0..55 {
        db.async_connection()
            .await?
            .execute("SELECT COUNT(*) FROM [metrics_example]", ())
            .await?;
    }

    println!("\n== pool_status()\n{:#?}", db.pool_status());
    let m = PoolManager::get_pool_metrics(db.hash()).expect("the pool exists");
    println!(
        "\n== metrics\nacquisitions {} · timeouts {:?} · errors {:?}\n\
         wait p50/p95/p99 {:?}/{:?}/{:?} · query p50/p95/p99 {:?}/{:?}/{:?}\n\
         statement cache {} hits / {} misses · slow queries {}",
        m.acquisitions,
        m.timeouts,
        m.errors,
        m.wait_time.p50,
        m.wait_time.p95,
        m.wait_time.p99,
        m.query_duration.p50,
        m.query_duration.p95,
        m.query_duration.p99,
        m.statement_cache_hits,
        m.statement_cache_misses,
        m.slow_queries,
    );
    println!(
        "\n== scaling advice\ntimeout rate {:.2} % over the last {:?} → {:?}: {}",
        m.timeout_rate() * 100.0,
        m.window,
        m.scaling_advice(),
        m.scaling_advice()
    );
    println!(
        "\n== health\n{:?}",
        PoolManager::health_check_all_pools().await
    );
    println!(
        "\n== Prometheus exposition (GET /metrics)\n{}",
        PoolManager::prometheus_text()
    );

    db.close(Duration::from_secs(5)).await
}
