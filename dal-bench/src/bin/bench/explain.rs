//! `--explain-bulk`: where the time of a bulk save goes. dal's plan for a large batch on
//! PostgreSQL (COPY into a staging table, then one merge statement into the entity table and
//! its history), run by raw sqlx on one connection, against a plain multi-row INSERT, raw COPY
//! without history, and each statement kind of dal's previous plan (each kind in its own
//! transaction, commit included); then dal's own save of the same size with its client CPU and
//! the time its statements took. Medians over `rounds`.
//! The bench's tables are dropped afterwards (by the caller).

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use dal_bench::stats::median;
use dal_bench::Result;

use crate::bulk::bulk_dal;
use crate::mirror;
use crate::pools::{close_dal, dal_db, sqlx_pg};
use crate::sql::{
    bind_rows, dal_plan_statements, insert_rows_sql, leak, now_micros, Person, PgEntityRow,
    Versions, BULK_CHUNK, BULK_ROWS, COLS, DAL_HISTORY_CHUNK, DAL_LOCK_CHUNK, DAL_UPSERT_CHUNK,
    DAL_VERSION_CHUNK, INSERT_COLS,
};

const TABLE: &str = "dal_bench_bulk_raw";

const PHASES: [&str; 9] = [
    "plain INSERT, 1 000 rows/stmt (the multi-row baseline)",
    "previous dal plan: row locks SELECT id, version .. ORDER BY id FOR UPDATE, 2 000 ids/stmt (new rows: none found)",
    "previous dal plan: version lookup SELECT id, MAX(version) FROM history .. GROUP BY id, 2 000 ids/stmt (new rows: none found)",
    "previous dal plan: upsert ON CONFLICT .. RETURNING, version given (the lookup's + 1), 1 000 rows/stmt, rows decoded",
    "previous dal plan: history INSERT .. SELECT (copies each row, its version included), 2 000 ids/stmt",
    "version lookup, then upsert (version given) + history as one CTE, 1 000 rows/stmt, rows decoded",
    "plain COPY FROM STDIN into the table (no history, nothing returned)",
    "dal: BEGIN + CREATE staging table + COPY FROM STDIN of the 10 000 rows into it",
    "dal: merge staging -> table (upsert, version from history) + history, one CTE, rows returned and decoded; DROP staging + COMMIT",
];
/// The phases that make up dal's previous plan.
const PREVIOUS_PHASES: std::ops::RangeInclusive<usize> = 1..=4;
/// The phases that make up dal's plan.
const DAL_PHASES: std::ops::RangeInclusive<usize> = 7..=8;

/// Batches of 10 000 new people, numbered on from 50 000 000.
struct People(u64);

impl People {
    fn batch(&mut self) -> Vec<Person> {
        self.0 += BULK_ROWS as u64;
        (0..BULK_ROWS as u64)
            .map(|i| Person::new(self.0 + i))
            .collect()
    }

    /// A batch in the order dal writes it (by id), for the raw phases.
    fn sorted_batch(&mut self) -> Vec<Person> {
        let mut b = self.batch();
        mirror::in_id_order(&mut b);
        b
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

pub async fn explain_bulk(url: &str, rounds: usize) -> Result<()> {
    let mut people = People(50_000_000);
    let times = time_phases(url, rounds, &mut people).await?;
    let dal = dal_figures(url, rounds, &mut people).await?;
    print_table(rounds, &times, &dal);
    Ok(())
}

/// Milliseconds of each phase (in [`PHASES`] order), one per round.
async fn time_phases(url: &str, rounds: usize, people: &mut People) -> Result<Vec<Vec<f64>>> {
    let pool = sqlx_pg(url, 1, false).await?;
    let insert = leak(insert_rows_sql(TABLE, BULK_CHUNK));
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); PHASES.len()];
    for r in 0..rounds.max(1) {
        let rows = people.sorted_batch();
        let now = now_micros();
        times[0].push(plain_insert(&pool, insert, &rows, now).await?);
        // dal's row locks (of rows that do not exist yet, as in a save of new entities), its
        // lookup of their versions (none found), its upserts with the versions that gives,
        // then its history appends of the same rows.
        let rows = people.sorted_batch();
        let mut found = HashMap::new();
        for (i, p) in [Phase::Lock, Phase::Lookup, Phase::Upsert, Phase::History]
            .into_iter()
            .enumerate()
        {
            times[1 + i].push(phase(&pool, p, &rows, now, &mut found).await?);
        }
        // The same work as one statement per chunk (after the version lookup).
        let rows = people.sorted_batch();
        times[5].push(phase(&pool, Phase::Cte, &rows, now, &mut HashMap::new()).await?);
        let rows = people.batch();
        times[6].push(plain_copy(&pool, &rows, now).await?);
        let rows = people.batch();
        let (copy, merge) = staged(&pool, &rows, now).await?;
        times[7].push(copy);
        times[8].push(merge);
        eprintln!("  explain-bulk round {}/{}", r + 1, rounds);
    }
    pool.close().await;
    Ok(times)
}

async fn plain_insert(
    pool: &sqlx::PgPool,
    sql: &'static str,
    people: &[Person],
    now: DateTime<Utc>,
) -> Result<f64> {
    let t = Instant::now();
    let mut tx = pool.begin().await?;
    for c in people.chunks(BULK_CHUNK) {
        bind_rows(sqlx::query(sql), c, now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(ms(t))
}

/// Raw COPY of `people` into the table, in one transaction (ms).
async fn plain_copy(pool: &sqlx::PgPool, people: &[Person], now: DateTime<Utc>) -> Result<f64> {
    let t = Instant::now();
    let data = crate::bulk::copy_text(people, now);
    let mut tx = pool.begin().await?;
    let mut copy = tx
        .copy_in_raw(&format!("COPY \"{TABLE}\" ({INSERT_COLS}) FROM STDIN"))
        .await?;
    copy.send(data.as_slice()).await?;
    copy.finish().await?;
    tx.commit().await?;
    Ok(ms(t))
}

/// dal's statements for a large batch, by raw sqlx in one transaction: ms until the rows are
/// in the staging table (BEGIN, CREATE, COPY), and ms of the merge (rows decoded), the DROP
/// and the COMMIT.
async fn staged(pool: &sqlx::PgPool, people: &[Person], now: DateTime<Utc>) -> Result<(f64, f64)> {
    let t = Instant::now();
    let data = crate::bulk::copy_text(people, now);
    let mut tx = pool.begin().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE pg_temp.\"dal_save_stage\" AS SELECT {INSERT_COLS} FROM \"{TABLE}\" WITH NO DATA"
    )))
    .execute(&mut *tx)
    .await?;
    let mut copy = tx
        .copy_in_raw(&format!(
            "COPY pg_temp.\"dal_save_stage\" ({INSERT_COLS}) FROM STDIN"
        ))
        .await?;
    copy.send(data.as_slice()).await?;
    copy.finish().await?;
    let copied = ms(t);
    let t = Instant::now();
    let back = sqlx::query_as::<_, PgEntityRow>(sqlx::AssertSqlSafe(merge_sql(TABLE)))
        .bind(now)
        .bind(None::<String>)
        .bind(now)
        .bind(None::<String>)
        .bind(now)
        .bind(None::<String>)
        .bind(None::<String>)
        .fetch_all(&mut *tx)
        .await?;
    sqlx::query("DROP TABLE pg_temp.\"dal_save_stage\"")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    if back.len() != people.len() {
        return Err("the merge returned the wrong count".into());
    }
    Ok((copied, ms(t)))
}

/// dal's merge of the staging table (dal/src/entity/ops/sql.rs `merge_stage_sql`) for the
/// bench's entity.
fn merge_sql(table: &str) -> String {
    let from_up = COLS
        .split(", ")
        .map(|c| format!("\"up\".{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let set = ["active", "age", "email", "name", "updated_at", "updated_by"]
        .iter()
        .map(|c| format!("\"{c}\" = excluded.\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH \"up\" AS (INSERT INTO \"{table}\" (\"id\", \"created_at\", \"created_by\", \"updated_at\", \"updated_by\", \"version\", \"active\", \"age\", \"email\", \"name\") \
         SELECT \"s\".\"id\", $1, $2, $3, $4, COALESCE((SELECT MAX(\"h\".\"version\") FROM \"{table}_history\" \"h\" WHERE \"h\".\"id\" = \"s\".\"id\"), 0) + 1, \
         \"s\".\"active\", \"s\".\"age\", \"s\".\"email\", \"s\".\"name\" FROM pg_temp.\"dal_save_stage\" \"s\" ORDER BY \"s\".\"id\" COLLATE \"C\" \
         ON CONFLICT (\"id\") DO UPDATE SET {set}, \"version\" = \"{table}\".\"version\" + 1 RETURNING {COLS}), \
         \"hist\" AS (INSERT INTO \"{table}_history\" ({COLS}, \"history_timestamp\", \"history_user_id\", \"history_comment\") SELECT {from_up}, $5, $6, $7 FROM \"up\") \
         SELECT {COLS} FROM \"up\""
    )
}

/// A statement kind of dal's previous plan, or the CTE.
#[derive(Clone, Copy)]
enum Phase {
    Lock,
    Lookup,
    Upsert,
    History,
    Cte,
}

/// One phase over `people` in its own transaction, commit included (ms). The lookup stores
/// the versions it found in `found`; the upsert gives the versions that makes.
async fn phase(
    pool: &sqlx::PgPool,
    which: Phase,
    people: &[Person],
    now: DateTime<Utc>,
    found: &mut HashMap<String, i64>,
) -> Result<f64> {
    let t = Instant::now();
    let mut tx = pool.begin().await?;
    let (n, want) = match which {
        Phase::Lock => (mirror::lock_rows(&mut tx, TABLE, people).await?, 0),
        Phase::Lookup => {
            *found = mirror::next_versions(&mut tx, TABLE, people).await?;
            (found.len(), 0)
        }
        Phase::Upsert => (
            mirror::upsert_rows(&mut tx, TABLE, people, Versions::Given(found), now).await?,
            people.len(),
        ),
        Phase::History => (
            mirror::append_history(&mut tx, TABLE, people, now).await? as usize,
            people.len(),
        ),
        Phase::Cte => (
            mirror::save_cte(&mut tx, TABLE, people, now).await?,
            people.len(),
        ),
    };
    tx.commit().await?;
    if n != want {
        return Err(format!("a phase touched {n} rows, not {want}").into());
    }
    Ok(ms(t))
}

/// dal's own saves of 10 000 rows, per round (ms, and statement counts).
#[derive(Default)]
struct DalFigures {
    walls: Vec<f64>,
    cpus: Vec<f64>,
    in_stmts: Vec<f64>,
    stmts: Vec<f64>,
}

/// dal's own save of the same size: wall, client CPU, and the time its statements took
/// (dal's pool metrics: statement count and summed statement durations).
async fn dal_figures(url: &str, rounds: usize, people: &mut People) -> Result<DalFigures> {
    let db = dal_db(url, 1).await?;
    let mut c = db.async_connection().await?;
    bulk_dal(&mut c, &people.batch()[..2 * BULK_CHUNK]).await?;
    let mut f = DalFigures::default();
    for _ in 0..rounds.max(1) {
        let rows = people.batch();
        let before = db.pool_metrics().ok_or("no pool metrics")?;
        let (wall, cpu) = bulk_dal(&mut c, &rows).await?;
        let after = db.pool_metrics().ok_or("no pool metrics")?;
        f.walls.push(wall.as_secs_f64() * 1e3);
        f.cpus.push(cpu.as_secs_f64() * 1e3);
        f.in_stmts
            .push((after.query_duration.sum - before.query_duration.sum).as_secs_f64() * 1e3);
        f.stmts.push((after.queries - before.queries) as f64);
    }
    drop(c);
    close_dal(db).await?;
    Ok(f)
}

fn print_table(rounds: usize, times: &[Vec<f64>], dal: &DalFigures) {
    let m = |v: &[f64]| median(v).unwrap_or(f64::NAN);
    println!("| 10 000 new rows, PostgreSQL, one connection | ms (median of {rounds}) |");
    println!("|---|---:|");
    for (i, name) in PHASES.iter().enumerate() {
        println!("| raw sqlx: {name} | {:.1} |", m(&times[i]));
    }
    println!(
        "| raw sqlx: dal's previous plan (row locks + version lookup + upsert RETURNING + history) | {:.1} |",
        PREVIOUS_PHASES.map(|i| m(&times[i])).sum::<f64>()
    );
    println!(
        "| raw sqlx: dal's plan (staging table + COPY + merge CTE) | {:.1} |",
        DAL_PHASES.map(|i| m(&times[i])).sum::<f64>()
    );
    println!("| dal `save_entities`: wall | {:.1} |", m(&dal.walls));
    println!(
        "| dal `save_entities`: its statements (dal's query_duration sum) | {:.1} |",
        m(&dal.in_stmts)
    );
    println!(
        "| dal `save_entities`: outside its statements (entity code) | {:.1} |",
        m(&dal.walls) - m(&dal.in_stmts)
    );
    println!(
        "| dal `save_entities`: client CPU (whole process) | {:.1} |",
        m(&dal.cpus)
    );
    println!(
        "\ndal ran {:.0} statements for 10 000 rows (BEGIN, CREATE staging, COPY, merge, DROP staging, COMMIT); its previous plan ran {} (BEGIN, row locks of {}, version lookups of {}, upserts of {}, history appends of {}, COMMIT).",
        m(&dal.stmts),
        dal_plan_statements(BULK_ROWS),
        DAL_LOCK_CHUNK,
        DAL_VERSION_CHUNK,
        DAL_UPSERT_CHUNK,
        DAL_HISTORY_CHUNK
    );
}
