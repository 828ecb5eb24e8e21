//! Tables of each backend: created before the workloads (entity tables through dal, so raw
//! contenders write to tables of exactly dal's shape) and dropped after.

use std::path::Path;
use std::time::Duration;

use dal_bench::Result;
use sqlx::Connection as _;

use crate::pools::sqlite_options;
use crate::sql::{dal_plan_statements, Person, DAL_HISTORY_CHUNK, KV_ROWS, PEOPLE};

/// Entities of the bench (each with `_history` and `_meta` tables made by dal).
const ENTITIES: [&str; 5] = [
    "dal_bench_people",
    "dal_bench_saves",
    "dal_bench_saves_raw",
    "dal_bench_bulk",
    "dal_bench_bulk_raw",
];

/// What a backend's setup reports.
pub struct Prepared {
    /// The server's version string.
    pub version: String,
    /// Ids of the entities read by entity get.
    pub people: Vec<String>,
    /// Set when dal's save plan no longer matches the raw mirror (reported under the table).
    pub plan_warning: Option<String>,
}

fn drop_entities(e: &str) -> String {
    format!(
        "DROP TABLE IF EXISTS {e}; DROP TABLE IF EXISTS {e}_history; DROP TABLE IF EXISTS {e}_meta;"
    )
}

pub async fn pg_setup(url: &str) -> Result<Prepared> {
    let mut c = sqlx::PgConnection::connect(url).await?;
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&mut c)
        .await?;
    let script = format!(
        "DROP TABLE IF EXISTS dal_bench_kv; \
         CREATE TABLE dal_bench_kv (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL); \
         INSERT INTO dal_bench_kv SELECT g, g % 1000 FROM generate_series(1, {KV_ROWS}) g; \
         ANALYZE dal_bench_kv; \
         DROP TABLE IF EXISTS dal_bench_ins; \
         CREATE TABLE dal_bench_ins (id BIGSERIAL PRIMARY KEY, k BIGINT NOT NULL, v TEXT NOT NULL);"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut c)
        .await?;
    for e in ENTITIES {
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop_entities(e)))
            .execute(&mut c)
            .await?;
    }
    c.close().await?;
    let (people, plan_warning) = entity_setup(url).await?;
    Ok(Prepared {
        version,
        people,
        plan_warning,
    })
}

/// Drops the bench's PostgreSQL tables (they are recreated by the next run's setup).
pub async fn pg_cleanup(url: &str) -> Result<()> {
    let mut c = sqlx::PgConnection::connect(url).await?;
    let mut script =
        String::from("DROP TABLE IF EXISTS dal_bench_kv; DROP TABLE IF EXISTS dal_bench_ins;");
    for e in ENTITIES {
        script.push(' ');
        script.push_str(&drop_entities(e));
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut c)
        .await?;
    c.close().await?;
    Ok(())
}

/// A small dal pool for setup.
fn setup_db(url: &str) -> Result<dal::Database> {
    let config = dal::DatabaseConfig::from_url(url)?
        .pool_size(1, 2)
        .alias("dal-bench-setup");
    let backend = config.backend().ok_or("URL names no backend")?;
    Ok(dal::Database::new(backend, config))
}

/// Saves the entities read by entity get and find; returns their ids.
async fn save_people(conn: &mut dal::Connection) -> Result<Vec<String>> {
    let people: Vec<serde_json::Value> =
        (0..PEOPLE as u64).map(|n| Person::new(n).json()).collect();
    let saved = conn.save_entities("dal_bench_people", people).await?;
    Ok(saved
        .iter()
        .filter_map(|m| m.get("id").and_then(|v| v.as_str()).map(str::to_owned))
        .collect())
}

/// Creates every entity table through dal and saves the people; checks that dal's save still
/// runs as many statements as the raw "same statements" contenders mirror (a warning if not).
async fn entity_setup(url: &str) -> Result<(Vec<String>, Option<String>)> {
    let db = setup_db(url)?;
    let mut conn = db.async_connection().await?;
    for e in ENTITIES {
        if e != "dal_bench_people" {
            conn.save_entity(e, Person::new(0).json()).await?;
        }
    }
    let people = save_people(&mut conn).await?;
    let mut mismatch = Vec::new();
    for n in [1usize, 2 * DAL_HISTORY_CHUNK] {
        let before = db.pool_metrics().map_or(0, |m| m.queries);
        let batch: Vec<serde_json::Value> = (0..n as u64).map(|i| Person::new(i).json()).collect();
        conn.save_entities("dal_bench_saves", batch).await?;
        let ran = db.pool_metrics().map_or(0, |m| m.queries) - before;
        if ran != dal_plan_statements(n) {
            mismatch.push(format!(
                "saving {n} entities ran {ran} statements, the raw mirror runs {}",
                dal_plan_statements(n)
            ));
        }
    }
    let warning = (!mismatch.is_empty()).then(|| {
        let msg = format!(
            "dal's entity save plan differs from the raw 'same statements' mirror in this bench ({}): update dal-bench",
            mismatch.join("; ")
        );
        eprintln!("WARNING: {msg}");
        msg
    });
    drop(conn);
    db.close(Duration::from_secs(10)).await?;
    Ok((people, warning))
}

/// Only the people (MySQL, SQLite: entity get).
async fn people_only_setup(url: &str) -> Result<Vec<String>> {
    let db = setup_db(url)?;
    let mut conn = db.async_connection().await?;
    let people = save_people(&mut conn).await?;
    drop(conn);
    db.close(Duration::from_secs(10)).await?;
    Ok(people)
}

pub async fn my_setup(url: &str) -> Result<Prepared> {
    let mut c = sqlx::MySqlConnection::connect(url).await?;
    let version: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(&mut c)
        .await?;
    for stmt in [
        "DROP TABLE IF EXISTS dal_bench_kv",
        "CREATE TABLE dal_bench_kv (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB",
        "DROP TABLE IF EXISTS dal_bench_people, dal_bench_people_history, dal_bench_people_meta",
    ] {
        sqlx::query(stmt).execute(&mut c).await?;
    }
    // 100 000 rows in chunks of 1 000.
    for chunk in 0..(KV_ROWS / 1000) {
        let values = (1..=1000)
            .map(|i| {
                let id = chunk * 1000 + i;
                format!("({id}, {})", id % 1000)
            })
            .collect::<Vec<_>>()
            .join(", ");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO dal_bench_kv VALUES {values}"
        )))
        .execute(&mut c)
        .await?;
    }
    c.close().await?;
    let people = people_only_setup(url).await?;
    Ok(Prepared {
        version,
        people,
        plan_warning: None,
    })
}

pub async fn my_cleanup(url: &str) -> Result<()> {
    let mut c = sqlx::MySqlConnection::connect(url).await?;
    sqlx::query("DROP TABLE IF EXISTS dal_bench_kv, dal_bench_people, dal_bench_people_history, dal_bench_people_meta")
        .execute(&mut c)
        .await?;
    c.close().await?;
    Ok(())
}

pub async fn lite_setup(path: &Path) -> Result<Prepared> {
    let _ = std::fs::remove_file(path);
    let mut c = sqlx::SqliteConnection::connect_with(&sqlite_options(path)).await?;
    let version: String = sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(&mut c)
        .await?;
    let script = format!(
        "CREATE TABLE dal_bench_kv (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL); \
         WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {KV_ROWS}) \
         INSERT INTO dal_bench_kv SELECT x, x % 1000 FROM g;"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut c)
        .await?;
    c.close().await?;
    let people = people_only_setup(&format!("sqlite://{}", path.display())).await?;
    Ok(Prepared {
        version,
        people,
        plan_warning: None,
    })
}

/// Removes the SQLite file and its WAL files.
pub fn lite_cleanup(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
