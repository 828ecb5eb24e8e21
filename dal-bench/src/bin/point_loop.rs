//! `cargo run --release -p dal-bench --bin point_loop -- setup|run CONTENDER N|drop`
//!
//! One client, one connection, one task on a current-thread runtime, doing the same point read
//! N times: the smallest loop that shows what a point read costs the *client*, for profilers
//! (`perf record -g`, `valgrind --tool=callgrind`) and for instruction counts, which are
//! repeatable even on a busy machine where wall-clock figures are not. Client instructions per
//! query = (Ir of a run with N₂ queries − Ir of a run with N₁) / (N₂ − N₁): connecting, setup
//! and teardown cancel out.
//!
//! Contenders of `run` (one connection each; PostgreSQL at `DAL_BENCH_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/dal_test?sslmode=disable`: no TLS, as tokio-postgres):
//! - `dal`: `Database` with a pool of 1, `async_connection()` + `execute` of the PK SELECT;
//! - `deadpool`: tokio-postgres through deadpool (pool of 1), `prepare_cached` + `query_one`;
//! - `pgconn`: one bare `sqlx::PgConnection`, `query_scalar(..).fetch_one(&mut conn)`;
//! - `sqlxpool`: sqlx `PgPool` of 1, `test_before_acquire(false)`;
//! - `dal_get`: `get_entity` of the loop's entities; `sqlx_get`: the same SELECT by raw sqlx on
//!   a bare `PgConnection`, decoded into a tuple.
//!
//! Prints queries/s and client CPU µs per query (getrusage of the process) on stderr. `setup`
//! creates `dal_bench_loop_kv` (1 000 rows) and the entity `dal_bench_loop_people` (100
//! entities); `drop` removes them.

use std::time::Instant;

use dal::params;
use dal_bench::machine::cpu_time;
use dal_bench::Result;
use sqlx::Connection as _;

const KV: i64 = 1000;
const ENTITY: &str = "dal_bench_loop_people";
const PS_DAL: &str = "SELECT [balance] FROM [dal_bench_loop_kv] WHERE [id] = ?";
const PS_PG: &str = "SELECT balance FROM dal_bench_loop_kv WHERE id = $1";
const GET_PG: &str = "SELECT \"id\", \"created_at\", \"created_by\", \"updated_at\", \"updated_by\", \"deleted_at\", \"version\", \"active\", \"age\", \"email\", \"name\" FROM \"dal_bench_loop_people\" WHERE \"id\" = $1 AND \"deleted_at\" IS NULL";

type EntityRow = (
    String,
    chrono::DateTime<chrono::Utc>,
    Option<String>,
    chrono::DateTime<chrono::Utc>,
    Option<String>,
    Option<chrono::DateTime<chrono::Utc>>,
    i64,
    Option<bool>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

fn url() -> String {
    std::env::var("DAL_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/dal_test?sslmode=disable".into())
}

fn key(i: u64) -> i64 {
    (i % KV as u64) as i64 + 1
}

async fn dal_db(url: &str) -> Result<dal::Database> {
    let config = dal::DatabaseConfig::from_url(url)?
        .pool_size(1, 1)
        .alias("dal-bench-loop");
    let backend = config.backend().ok_or("URL names no backend")?;
    Ok(dal::Database::new(backend, config))
}

async fn setup(url: &str) -> Result<()> {
    let mut c = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP TABLE IF EXISTS dal_bench_loop_kv; \
         CREATE TABLE dal_bench_loop_kv (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL); \
         INSERT INTO dal_bench_loop_kv SELECT g, g % 100 FROM generate_series(1, {KV}) g; \
         ANALYZE dal_bench_loop_kv; \
         DROP TABLE IF EXISTS {ENTITY}, {ENTITY}_history, {ENTITY}_meta;"
    )))
    .execute(&mut c)
    .await?;
    c.close().await?;
    let db = dal_db(url).await?;
    let mut conn = db.async_connection().await?;
    let people: Vec<serde_json::Value> = (0..100)
        .map(|n| serde_json::json!({"name": format!("user {n}"), "email": format!("u{n}@example.com"), "age": 18 + n, "active": n % 3 != 0}))
        .collect();
    conn.save_entities(ENTITY, people).await?;
    drop(conn);
    db.close(std::time::Duration::from_secs(10)).await?;
    Ok(())
}

async fn drop_tables(url: &str) -> Result<()> {
    let mut c = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP TABLE IF EXISTS dal_bench_loop_kv, {ENTITY}, {ENTITY}_history, {ENTITY}_meta"
    )))
    .execute(&mut c)
    .await?;
    c.close().await?;
    Ok(())
}

async fn ids(url: &str) -> Result<Vec<String>> {
    let mut c = sqlx::PgConnection::connect(url).await?;
    let ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM {ENTITY} ORDER BY id"
    )))
    .fetch_all(&mut c)
    .await?;
    c.close().await?;
    if ids.is_empty() {
        return Err("no entities: run `point_loop setup` first".into());
    }
    Ok(ids)
}

/// Runs `n` queries of `contender`; returns after printing the rate and CPU per query.
async fn run(url: &str, contender: &str, n: u64) -> Result<()> {
    let ids = ids(url).await?;
    let pick = |i: u64| ids[(i % ids.len() as u64) as usize].as_str();
    let (t0, cpu0);
    match contender {
        "dal" | "dal_get" => {
            let db = dal_db(url).await?;
            drop(db.async_connection().await?);
            (t0, cpu0) = (Instant::now(), cpu_time());
            for i in 0..n {
                let mut c = db.async_connection().await?;
                if contender == "dal" {
                    let rows = c.execute(PS_DAL, params![key(i)]).await?;
                    let _b: i64 = rows[0].try_get(0)?;
                } else {
                    c.get_entity(ENTITY, pick(i))
                        .await?
                        .ok_or("entity not found")?;
                }
            }
            report(contender, n, t0, cpu0);
            db.close(std::time::Duration::from_secs(10)).await?;
        }
        "deadpool" => {
            let config: tokio_postgres::Config = url.parse()?;
            let manager = deadpool_postgres::Manager::from_config(
                config,
                tokio_postgres::NoTls,
                deadpool_postgres::ManagerConfig {
                    recycling_method: deadpool_postgres::RecyclingMethod::Fast,
                },
            );
            let pool = deadpool_postgres::Pool::builder(manager)
                .max_size(1)
                .build()?;
            drop(pool.get().await?);
            (t0, cpu0) = (Instant::now(), cpu_time());
            for i in 0..n {
                let c = pool.get().await?;
                let st = c.prepare_cached(PS_PG).await?;
                let row = c.query_one(&st, &[&key(i)]).await?;
                let _b: i64 = row.get(0);
            }
            report(contender, n, t0, cpu0);
            pool.close();
        }
        "pgconn" | "sqlx_get" => {
            let mut c = sqlx::PgConnection::connect(url).await?;
            (t0, cpu0) = (Instant::now(), cpu_time());
            for i in 0..n {
                if contender == "pgconn" {
                    let _b: i64 = sqlx::query_scalar(PS_PG)
                        .bind(key(i))
                        .fetch_one(&mut c)
                        .await?;
                } else {
                    let _r: EntityRow = sqlx::query_as(GET_PG)
                        .bind(pick(i))
                        .fetch_one(&mut c)
                        .await?;
                }
            }
            report(contender, n, t0, cpu0);
            c.close().await?;
        }
        "sqlxpool" => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .test_before_acquire(false)
                .connect(url)
                .await?;
            (t0, cpu0) = (Instant::now(), cpu_time());
            for i in 0..n {
                let _b: i64 = sqlx::query_scalar(PS_PG)
                    .bind(key(i))
                    .fetch_one(&pool)
                    .await?;
            }
            report(contender, n, t0, cpu0);
            pool.close().await;
        }
        other => return Err(format!("unknown contender {other:?}").into()),
    }
    Ok(())
}

fn report(contender: &str, n: u64, t0: Instant, cpu0: std::time::Duration) {
    let (wall, cpu) = (t0.elapsed(), cpu_time() - cpu0);
    eprintln!(
        "{contender}: {n} queries in {:.3} s: {:.0} q/s, client CPU {:.1} µs/query",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64().max(1e-9),
        cpu.as_secs_f64() * 1e6 / n.max(1) as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("point_loop: {e}");
            std::process::exit(1);
        }
    };
    let url = url();
    let result = rt.block_on(async {
        match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["setup"] => setup(&url).await,
            ["drop"] => drop_tables(&url).await,
            ["run", contender, n] => run(&url, contender, n.parse()?).await,
            _ => Err("usage: point_loop setup | run dal|deadpool|pgconn|sqlxpool|dal_get|sqlx_get N | drop".into()),
        }
    });
    if let Err(e) = result {
        eprintln!("point_loop: {e}");
        std::process::exit(1);
    }
}
