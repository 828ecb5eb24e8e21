//! Pool metrics and scaling signals of a live pool. Run with `cargo run --example metrics`
//! (in-memory SQLite), or point it at a server:
//! `DAL_EXAMPLE_URL=postgres://postgres@127.0.0.1:5432/dal_test cargo run --example metrics`.
//!
//! It runs a few queries (tagged, one slow enough for the slow-query log, one cut by a query
//! timeout), provokes acquisition timeouts by holding the pool's connections, then prints
//! `pool_status()`, the metrics, the scaling advice, a leak report, the health check and the
//! Prometheus exposition that a `/metrics` endpoint would serve.
//!
//! Its table, `metrics_example`, is dropped and created again at the start. Counts are the
//! same on every run; durations are not, so they are printed only in the section marked
//! "timings" and in the `*_seconds` samples of the exposition.

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
        .slow_query_threshold(Duration::from_millis(150));
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
    let mut timings = Vec::new();
    match conn
        .execute(slow_sql(backend), ())
        .timeout(Duration::from_millis(200))
        .tag("operation", "report")
        .await
    {
        Err(e) if e.is_timeout() => {
            if let Some(kind) = e.timeout_kind() {
                println!("query timeout: {kind} timed out (limit 200ms)");
            }
            timings.push(format!("query timeout: {e}"));
        }
        Err(e) => return Err(e),
        Ok(_) => println!("the slow statement was not stopped"),
    }
    drop(conn);

    // Hold both connections: further callers time out after 50 ms. Then release, and keep
    // working: 3 timeouts in 61 attempts is a 4.9 % timeout rate, the "scale vertically" band.
    let a = db.async_connection().await?;
    let b = db.async_connection().await?;
    for _ in 0..3 {
        match db.async_connection().await {
            Err(e) if e.is_timeout() => {
                if let Some(kind) = e.timeout_kind() {
                    println!("acquisition: {kind} timed out (limit 50ms)");
                }
                timings.push(format!("acquisition: {e}"));
            }
            Err(e) => return Err(e),
            Ok(_) => println!("acquisition: unexpectedly got a connection"),
        }
    }
    let leaks = db.check_for_leaked_connections(Duration::ZERO);
    println!("leak report (held > 0 s): {} connection(s)", leaks.len());
    for leak in &leaks {
        println!("  pool {} acquired at {}", leak.alias, leak.location);
        timings.push(format!("leak: {leak}"));
    }
    drop((a, b));
    for _ in 0..55 {
        db.async_connection()
            .await?
            .execute("SELECT COUNT(*) FROM [metrics_example]", ())
            .await?;
    }

    println!("\n== pool_status()\n{:#?}", db.pool_status());
    let m = PoolManager::get_pool_metrics(db.hash())
        .ok_or_else(|| Error::Internal("the pool has no metrics".into()))?;
    let timeouts: Vec<String> = [
        TimeoutKind::Acquire,
        TimeoutKind::PoolCreation,
        TimeoutKind::ConnectionCreation,
        TimeoutKind::Query,
    ]
    .iter()
    .map(|k| format!("{k:?}: {}", m.timeouts.get(k).copied().unwrap_or(0)))
    .collect();
    let mut errors: Vec<String> = m.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    errors.sort();
    println!(
        "\n== metrics\nacquisitions {} · queries {} · timeouts {{{}}} · errors {{{}}}\n\
         statement cache {} hits / {} misses · slow queries {}",
        m.acquisitions,
        m.queries,
        timeouts.join(", "),
        errors.join(", "),
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
    println!("\n== timings (durations: these differ from run to run)");
    for t in &timings {
        println!("{t}");
    }
    println!(
        "wait p50/p95/p99 {:?}/{:?}/{:?} · query p50/p95/p99 {:?}/{:?}/{:?}",
        m.wait_time.p50,
        m.wait_time.p95,
        m.wait_time.p99,
        m.query_duration.p50,
        m.query_duration.p95,
        m.query_duration.p99,
    );
    println!(
        "\n== Prometheus exposition (GET /metrics; the *_seconds samples are durations and differ from run to run)\n{}",
        PoolManager::prometheus_text()
    );

    db.close(Duration::from_secs(5)).await
}
