//! Tables of each backend: created before the workloads (entity tables through dal, so raw
//! contenders write to tables of exactly dal's shape) and dropped after.

use std::future::IntoFuture;
use std::path::Path;
use std::time::Duration;

use dal_bench::Result;
use sqlx::Connection as _;

use crate::pools::sqlite_options;
use crate::sql::{now_micros, Person, KV_ROWS, PEOPLE};
use crate::{capture, mirror};

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
/// sends exactly the statements the raw "same statements" contenders send (a warning if not).
async fn entity_setup(url: &str) -> Result<(Vec<String>, Option<String>)> {
    let db = setup_db(url)?;
    let mut conn = db.async_connection().await?;
    for e in ENTITIES {
        if e != "dal_bench_people" {
            conn.save_entity(e, Person::new(0).json()).await?;
        }
    }
    let people = save_people(&mut conn).await?;
    let mut raw = sqlx::PgConnection::connect(url).await?;
    let mut mismatch = Vec::new();
    // Below the COPY threshold (500 rows), where dal's batch plan is the mirror's.
    for n in [1, 2, 499] {
        if let Some(m) = check_plan(&mut conn, &mut raw, n).await? {
            mismatch.push(m);
        }
    }
    raw.close().await?;
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

/// The table both saves of the check write to.
const CHECKED: &str = "dal_bench_saves";

/// Saves `n` new entities through dal (one by `save_entity`, more by `save_entities`) and `n`
/// more by the raw mirror ([`mirror::save`] in a transaction, as the contenders run it), records
/// the statements each sends (one round trip each), and compares them: how many, and each
/// text but for dal's fingerprint comment. A schema reload of dal's (its cache expires after 2 s) adds statements
/// to a save: a mismatch is tried twice more before it is reported. Returns what differs.
async fn check_plan(
    conn: &mut dal::Connection,
    raw: &mut sqlx::PgConnection,
    n: usize,
) -> Result<Option<String>> {
    let mut last = None;
    for _ in 0..3 {
        let batch: Vec<serde_json::Value> = (0..n as u64).map(|i| Person::new(i).json()).collect();
        let (saved, dal_sent) = if n == 1 {
            let one = batch.into_iter().next().unwrap_or_default();
            let (r, sent) = capture::dal(conn.save_entity(CHECKED, one).into_future()).await;
            (r.map(|_| 1), sent)
        } else {
            let (r, sent) = capture::dal(conn.save_entities(CHECKED, batch).into_future()).await;
            (r.map(|v| v.len()), sent)
        };
        let mut people: Vec<Person> = (0..n as u64).map(Person::new).collect();
        mirror::in_id_order(&mut people);
        let (back, mut raw_sent) = capture::sqlx(async {
            if n == 1 {
                return mirror::save_cte(raw, CHECKED, &people, now_micros()).await;
            }
            let mut tx = raw.begin().await?;
            let back = mirror::save(&mut tx, CHECKED, &people, now_micros()).await?;
            tx.commit().await?;
            Ok::<_, dal_bench::BoxError>(back)
        })
        .await;
        if saved? != n || back? != n {
            return Err(format!("a save of {n} entities saved another number").into());
        }
        // sqlx's `begin` sends BEGIN as a simple query (one round trip, as dal's) that it does
        // not log (sqlx-postgres `PgTransactionManager::begin`).
        if n > 1 {
            raw_sent.insert(0, "BEGIN".to_owned());
        }
        last = plan_difference(n, &dal_sent, &raw_sent);
        if last.is_none() {
            break;
        }
    }
    Ok(last)
}

/// What differs between the statements dal sent for a save of `n` and those the raw mirror
/// `sent`. dal's statements end in a fingerprint comment; those over 4 096 characters come
/// truncated (compared on their head and length).
fn plan_difference(n: usize, dal: &[String], raw: &[String]) -> Option<String> {
    if dal.len() != raw.len() {
        return Some(format!(
            "saving {n} entities ran {} statements, the raw mirror runs {}",
            dal.len(),
            raw.len()
        ));
    }
    for (i, (d, r)) in dal.iter().zip(raw).enumerate() {
        let same = match capture::truncated(d) {
            Some((head, len)) => {
                r.starts_with(head)
                    && len
                        .checked_sub(r.len())
                        .is_some_and(|extra| extra == 0 || FINGERPRINT.contains(&extra))
            }
            None => capture::without_fingerprint(d) == r,
        };
        if !same {
            let cut = |s: &str| s.chars().take(600).collect::<String>();
            return Some(format!(
                "saving {n} entities, statement {} of {}: dal sent `{}`, the raw mirror sends `{}`",
                i + 1,
                dal.len(),
                cut(capture::without_fingerprint(d)),
                cut(r)
            ));
        }
    }
    None
}

/// How much longer dal's fingerprint comment ` /* dal:HEX */` makes a statement (HEX: a
/// 64-bit hash, 1 to 16 digits).
const FINGERPRINT: std::ops::RangeInclusive<usize> = 12..=27;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::dal_plan;

    /// `plan` as dal's spans hold it: a fingerprint comment on the upserts and history appends,
    /// statements over 4 096 characters truncated.
    fn as_dal_sends(plan: &[String]) -> Vec<String> {
        plan.iter()
            .map(|s| {
                let s = if s.starts_with("INSERT") {
                    format!("{s} /* dal:9a3f0c1d2e4b5a67 */")
                } else {
                    s.clone()
                };
                match s.char_indices().nth(4096) {
                    Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
                    None => s,
                }
            })
            .collect()
    }

    #[test]
    fn the_same_plan_matches() {
        for n in [1, 2, 499, 4000] {
            let plan = dal_plan("t", n);
            assert_eq!(plan_difference(n, &as_dal_sends(&plan), &plan), None, "{n}");
        }
    }

    #[test]
    fn differences_are_named() {
        let plan = dal_plan("t", 2);
        let dal = as_dal_sends(&plan);
        assert!(plan_difference(2, &dal[..3], &plan)
            .unwrap()
            .contains("ran 3 statements, the raw mirror runs 6"));
        let mut other = plan.clone();
        other[4] = other[4].replace(" ORDER BY \"src\".\"id\"", "");
        assert!(plan_difference(2, &dal, &other)
            .unwrap()
            .contains("statement 5 of 6"));
        // Truncated statements: the head and the length count.
        let big = dal_plan("t", 4000);
        let dal = as_dal_sends(&big);
        // BEGIN, 2 locks, 2 version lookups, 4 upserts, 2 history appends, COMMIT.
        assert_eq!(big.len(), 12);
        let mut other = big.clone();
        other[5] = other[5].replacen("INSERT INTO", "INSERT  INTO", 1);
        assert!(plan_difference(4000, &dal, &other)
            .unwrap()
            .contains("statement 6 of 12"));
        let mut other = big.clone();
        other[2] = dal_plan("t", 3000)[2].clone(); // a lock of 1 000 ids, not 2 000
        assert!(plan_difference(4000, &dal, &other)
            .unwrap()
            .contains("statement 3 of 12"));
        let mut other = big.clone();
        other[4] = dal_plan("t", 3000)[4].clone(); // a lookup of 1 000 ids, not 2 000
        assert!(other[4].starts_with("SELECT \"id\", MAX(\"version\")"));
        assert!(plan_difference(4000, &dal, &other)
            .unwrap()
            .contains("statement 5 of 12"));
        // The upserts of a batch give the versions: the single entity's subquery is another
        // statement.
        let two = dal_plan("t", 2);
        let mut other = two.clone();
        other[3] = crate::sql::upsert_sql("t", 2, crate::sql::NewVersion::FromHistory, true);
        assert!(plan_difference(2, &as_dal_sends(&two), &other)
            .unwrap()
            .contains("statement 4 of 6"));
    }
}
