//! `--explain-bulk`: where the time of a bulk save goes. Each statement kind of dal's plan, run
//! by raw sqlx on one connection (each kind in its own transaction, commit included), against a
//! plain multi-row INSERT and against the same work as one CTE statement; then dal's own save of
//! the same size with its client CPU and the time its statements took. Medians over `rounds`.

use std::time::Instant;

use chrono::{DateTime, Utc};
use dal_bench::stats::median;
use dal_bench::Result;

use crate::bulk::bulk_dal;
use crate::pools::{close_dal, dal_db, sqlx_pg};
use crate::sql::{
    bind_rows, bind_rows_as, dal_plan_statements, history_sql, insert_rows_sql, leak, now_micros,
    upsert_history_cte_sql, upsert_sql, Person, PgEntityRow, BULK_CHUNK, BULK_ROWS,
    DAL_HISTORY_CHUNK, DAL_UPSERT_CHUNK,
};

const TABLE: &str = "dal_bench_bulk_raw";

const PHASES: [&str; 4] = [
    "plain INSERT, 1 000 rows/stmt (the multi-row baseline)",
    "dal: upsert ON CONFLICT .. RETURNING, 1 000 rows/stmt, rows decoded",
    "dal: history INSERT .. SELECT (MAX(version) per id), 2 000 ids/stmt",
    "not dal: upsert + history as one CTE, 1 000 rows/stmt, rows decoded",
];

/// Batches of 10 000 new people, numbered on from 50 000 000.
struct People(u64);

impl People {
    fn batch(&mut self) -> Vec<Person> {
        self.0 += BULK_ROWS as u64;
        (0..BULK_ROWS as u64)
            .map(|i| Person::new(self.0 + i))
            .collect()
    }
}

/// The statements of the phases, built once.
struct Statements {
    insert: &'static str,
    upsert: &'static str,
    history: &'static str,
    cte: &'static str,
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
    let st = Statements {
        insert: leak(insert_rows_sql(TABLE, DAL_UPSERT_CHUNK)),
        upsert: leak(upsert_sql(TABLE, DAL_UPSERT_CHUNK, true)),
        history: leak(history_sql(TABLE, DAL_HISTORY_CHUNK)),
        cte: leak(upsert_history_cte_sql(TABLE, DAL_UPSERT_CHUNK)),
    };
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); PHASES.len()];
    for r in 0..rounds.max(1) {
        let rows = people.batch();
        let now = now_micros();
        times[0].push(plain_insert(&pool, &st, &rows, now).await?);
        // dal's upsert, then dal's history append of the same rows.
        let rows = people.batch();
        times[1].push(upsert(&pool, &st, &rows, now).await?);
        times[2].push(history(&pool, &st, &rows, now).await?);
        // The same work as one statement per chunk.
        let rows = people.batch();
        times[3].push(cte(&pool, &st, &rows, now).await?);
        eprintln!("  explain-bulk round {}/{}", r + 1, rounds);
    }
    pool.close().await;
    Ok(times)
}

async fn plain_insert(
    pool: &sqlx::PgPool,
    st: &Statements,
    people: &[Person],
    now: DateTime<Utc>,
) -> Result<f64> {
    let t = Instant::now();
    let mut tx = pool.begin().await?;
    for c in people.chunks(DAL_UPSERT_CHUNK) {
        bind_rows(sqlx::query(st.insert), c, now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(ms(t))
}

async fn upsert(
    pool: &sqlx::PgPool,
    st: &Statements,
    people: &[Person],
    now: DateTime<Utc>,
) -> Result<f64> {
    let t = Instant::now();
    let mut tx = pool.begin().await?;
    for c in people.chunks(DAL_UPSERT_CHUNK) {
        bind_rows_as(sqlx::query_as::<_, PgEntityRow>(st.upsert), c, now)
            .fetch_all(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(ms(t))
}

async fn history(
    pool: &sqlx::PgPool,
    st: &Statements,
    people: &[Person],
    now: DateTime<Utc>,
) -> Result<f64> {
    let t = Instant::now();
    let mut tx = pool.begin().await?;
    for c in people.chunks(DAL_HISTORY_CHUNK) {
        let mut q = sqlx::query(st.history)
            .bind(now)
            .bind(None::<String>)
            .bind(None::<String>);
        for p in c {
            q = q.bind(&p.id);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(ms(t))
}

async fn cte(
    pool: &sqlx::PgPool,
    st: &Statements,
    people: &[Person],
    now: DateTime<Utc>,
) -> Result<f64> {
    let t = Instant::now();
    let mut tx = pool.begin().await?;
    let mut back = 0;
    for c in people.chunks(DAL_UPSERT_CHUNK) {
        back += bind_rows_as(sqlx::query_as::<_, PgEntityRow>(st.cte), c, now)
            .bind(now)
            .bind(None::<String>)
            .bind(None::<String>)
            .fetch_all(&mut *tx)
            .await?
            .len();
    }
    tx.commit().await?;
    if back != BULK_ROWS {
        return Err("CTE returned the wrong count".into());
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
        "| raw sqlx: dal's plan (upsert RETURNING + history) | {:.1} |",
        m(&times[1]) + m(&times[2])
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
        "\ndal ran {:.0} statements for 10 000 rows; the raw mirror assumes {} (BEGIN, upserts of {}, history appends of {}, COMMIT).",
        m(&dal.stmts),
        dal_plan_statements(BULK_ROWS),
        DAL_UPSERT_CHUNK,
        DAL_HISTORY_CHUNK
    );
}
