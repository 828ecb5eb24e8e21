//! Entity writes on MySQL/MariaDB and SQLite: a single save of a new entity at 20 clients,
//! and a batch of 10 000 on one connection. dal against raw sqlx doing the least that stores
//! the same rows: for one entity, INSERT the row and INSERT its history row in one transaction
//! (no version lookup, nothing read back); for the batch, multi-row INSERTs of 1 000 rows
//! without history. The raw tables are made by dal, so they have exactly its shape.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dal_bench::report::{Direction, Target, Workload};
use dal_bench::Result;

use crate::bulk::{dal_conn, DalSave, Stopwatch};
use crate::contender::{Contender, Meta, Spec};
use crate::measure::{Batches, ClosedLoop};
use crate::names::{DAL, SQLX_MULTIROW, SQLX_ROW_HISTORY};
use crate::opts::Ctx;
use crate::pools;
use crate::sql::{leak, now_micros, Person, BULK_CHUNK, BULK_ROWS};

const CLIENTS: usize = 20;
const SAVES: &str = "dal_bench_saves";
const SAVES_RAW: &str = "dal_bench_saves_raw";
const BULK: &str = "dal_bench_bulk";
const BULK_RAW: &str = "dal_bench_bulk_raw";
/// Columns of a plain INSERT of the bench's entity (dal's order), without `deleted_at`.
const INS: [&str; 10] = [
    "id",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "version",
    "active",
    "age",
    "email",
    "name",
];

/// The raw statements for one backend's quoting: the row, its history row, `BULK_CHUNK` rows.
struct Raw {
    row: &'static str,
    history: &'static str,
    chunk: &'static str,
}

fn raw_sql(q: char) -> &'static Raw {
    let build = |q: char| {
        let cols = |extra: &[&str]| {
            INS.iter()
                .chain(extra)
                .map(|c| format!("{q}{c}{q}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let one = |n: usize| format!("({})", vec!["?"; n].join(", "));
        let hist = ["history_timestamp", "history_user_id", "history_comment"];
        Raw {
            row: leak(format!(
                "INSERT INTO {q}{SAVES_RAW}{q} ({}) VALUES {}",
                cols(&[]),
                one(INS.len())
            )),
            history: leak(format!(
                "INSERT INTO {q}{SAVES_RAW}_history{q} ({}) VALUES {}",
                cols(&hist),
                one(INS.len() + 3)
            )),
            chunk: leak(rows_sql(q, BULK_CHUNK)),
        }
    };
    static MY: OnceLock<Raw> = OnceLock::new();
    static LITE: OnceLock<Raw> = OnceLock::new();
    match q {
        '`' => MY.get_or_init(|| build('`')),
        _ => LITE.get_or_init(|| build('"')),
    }
}

/// A multi-row INSERT of `n` rows into the raw bulk table, quoting names with `q`.
fn rows_sql(q: char, n: usize) -> String {
    let cols = INS
        .iter()
        .map(|c| format!("{q}{c}{q}"))
        .collect::<Vec<_>>()
        .join(", ");
    let one = format!("({})", vec!["?"; INS.len()].join(", "));
    format!(
        "INSERT INTO {q}{BULK_RAW}{q} ({cols}) VALUES {}",
        vec![one; n].join(", ")
    )
}

/// Binds the plain INSERT values of `p` (created and updated `now`, by nobody, version 1).
macro_rules! bind_person {
    ($q:expr, $p:expr, $now:expr) => {
        $q.bind(&$p.id)
            .bind($now)
            .bind(None::<String>)
            .bind($now)
            .bind(None::<String>)
            .bind(1_i64)
            .bind($p.active)
            .bind($p.age)
            .bind(&$p.email)
            .bind(&$p.name)
    };
}

/// One backend's raw contenders, written once for both pools.
macro_rules! raw_ops {
    ($save:ident, $bulk:ident, $pool:ty, $q:expr) => {
        async fn $save(pool: $pool, r: u64) -> Result<()> {
            let sql = raw_sql($q);
            let p = Person::new(r);
            let now = now_micros().naive_utc();
            let mut tx = pool.begin().await?;
            bind_person!(sqlx::query(sql.row), p, now)
                .execute(&mut *tx)
                .await?;
            bind_person!(sqlx::query(sql.history), p, now)
                .bind(now)
                .bind(None::<String>)
                .bind(None::<String>)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }

        async fn $bulk(pool: $pool, people: Vec<Person>) -> Result<(Duration, Duration)> {
            let sql = raw_sql($q);
            let sw = Stopwatch::start();
            let now = now_micros().naive_utc();
            let mut tx = pool.begin().await?;
            for chunk in people.chunks(BULK_CHUNK) {
                let text = if chunk.len() == BULK_CHUNK {
                    sql.chunk
                } else {
                    leak(rows_sql($q, chunk.len()))
                };
                let mut q = sqlx::query(text);
                for p in chunk {
                    q = bind_person!(q, p, now);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(sw.stop())
        }
    };
}

raw_ops!(my_save, my_bulk, sqlx::MySqlPool, '`');
raw_ops!(lite_save, lite_bulk, sqlx::SqlitePool, '"');

async fn dal_save(db: dal::Database, r: u64) -> Result<()> {
    let mut c = db.async_connection().await?;
    c.save_entity(SAVES, Person::new(r).json()).await?;
    Ok(())
}

/// Creates the four entities through dal (the raw ones get dal's exact shape).
pub async fn setup(url: &str) -> Result<()> {
    let db = pools::dal_db(url, 1).await?;
    let mut c = db.async_connection().await?;
    for e in [SAVES, SAVES_RAW, BULK, BULK_RAW] {
        for t in [e.to_owned(), format!("{e}_history"), format!("{e}_meta")] {
            c.execute(&format!("DROP TABLE IF EXISTS [{t}]"), ())
                .await?;
        }
        c.save_entity(e, Person::new(0).json()).await?;
    }
    drop(c);
    pools::close_dal(db).await
}

/// Drops them again.
pub async fn cleanup(url: &str) -> Result<()> {
    let db = pools::dal_db(url, 1).await?;
    let mut c = db.async_connection().await?;
    for e in [SAVES, SAVES_RAW, BULK, BULK_RAW] {
        for t in [e.to_owned(), format!("{e}_history"), format!("{e}_meta")] {
            c.execute(&format!("DROP TABLE IF EXISTS [{t}]"), ())
                .await?;
        }
    }
    drop(c);
    pools::close_dal(db).await
}

fn save_meta(id: &str, backend: &'static str) -> Meta {
    Meta {
        id: id.into(),
        title: "Entity save with history (new entity)",
        backend,
        clients: CLIENTS,
        unit: "saves/s",
        direction: Direction::HigherIsBetter,
        alternatives: vec![(SQLX_ROW_HISTORY, Some(Target::at_least(0.8)))],
    }
}

fn bulk_meta(id: &str, backend: &'static str) -> Meta {
    Meta {
        id: id.into(),
        title: "Bulk save of 10 000 rows",
        backend,
        clients: 1,
        unit: "rows/s",
        direction: Direction::HigherIsBetter,
        alternatives: vec![(SQLX_MULTIROW, None)],
    }
}

fn batches(ctx: &Ctx) -> Arc<Batches> {
    Arc::new(Batches {
        reps: if ctx.o.quick { 1 } else { 3 },
        rows: BULK_ROWS,
        warm_rows: 2 * BULK_CHUNK,
        seq: Arc::new(AtomicU64::new(1_000_000)),
    })
}

fn closed_loop(ctx: &Ctx) -> Arc<ClosedLoop> {
    Arc::new(ClosedLoop {
        clients: CLIENTS,
        timing: ctx.o.timing(),
    })
}

pub async fn mysql_save(ctx: &Ctx, url: &str) -> Result<Workload> {
    let m = closed_loop(ctx);
    let spec = Spec::new(
        save_meta("mysql_entity_save", "MySQL/MariaDB"),
        "mysql entity_save c=20",
    )
    .with(
        Contender::new(DAL, pools::dal(url, CLIENTS), |db: &dal::Database, r| {
            dal_save(db.clone(), r)
        }),
        &m,
    )
    .with(
        Contender::new(
            SQLX_ROW_HISTORY,
            pools::mysql(url, CLIENTS),
            |p: &sqlx::MySqlPool, r| my_save(p.clone(), r),
        ),
        &m,
    );
    Ok(spec.run(ctx).await?.workload)
}

pub async fn mysql_bulk(ctx: &Ctx, url: &str) -> Result<Workload> {
    let m = batches(ctx);
    let spec = Spec::new(
        bulk_meta("mysql_bulk_save", "MySQL/MariaDB"),
        "mysql bulk_save 10 000 rows",
    )
    .with(Contender::new(DAL, dal_conn(url), DalSave), &m)
    .with(
        Contender::new(
            SQLX_MULTIROW,
            pools::mysql(url, 1),
            |p: &sqlx::MySqlPool, people| my_bulk(p.clone(), people),
        ),
        &m,
    );
    Ok(spec.run(ctx).await?.workload)
}

pub async fn sqlite_save(ctx: &Ctx, path: &Path) -> Result<Workload> {
    let url = format!("sqlite://{}", path.display());
    let m = closed_loop(ctx);
    let spec = Spec::new(
        save_meta("sqlite_entity_save", "SQLite (file, WAL)"),
        "sqlite entity_save c=20",
    )
    .with(
        Contender::new(DAL, pools::dal(&url, CLIENTS), |db: &dal::Database, r| {
            dal_save(db.clone(), r)
        }),
        &m,
    )
    .with(
        Contender::new(
            SQLX_ROW_HISTORY,
            pools::sqlite(path, CLIENTS),
            |p: &sqlx::SqlitePool, r| lite_save(p.clone(), r),
        ),
        &m,
    );
    Ok(spec.run(ctx).await?.workload)
}

pub async fn sqlite_bulk(ctx: &Ctx, path: &Path) -> Result<Workload> {
    let url = format!("sqlite://{}", path.display());
    let m = batches(ctx);
    let spec = Spec::new(
        bulk_meta("sqlite_bulk_save", "SQLite (file, WAL)"),
        "sqlite bulk_save 10 000 rows",
    )
    .with(Contender::new(DAL, dal_conn(&url), DalSave), &m)
    .with(
        Contender::new(
            SQLX_MULTIROW,
            pools::sqlite(path, 1),
            |p: &sqlx::SqlitePool, people| lite_bulk(p.clone(), people),
        ),
        &m,
    );
    Ok(spec.run(ctx).await?.workload)
}
