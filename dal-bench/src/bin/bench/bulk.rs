//! Bulk save of 10 000 new rows on one PostgreSQL connection: dal's `save_entities` against a
//! plain multi-row INSERT, raw sqlx running dal's statements, and SeaORM's insert_many. Each
//! operation times only its database work (inputs are built before its clock starts).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dal_bench::machine::cpu_time;
use dal_bench::report::{Direction, Target, Workload};
use dal_bench::Result;

use crate::contender::{Contender, Meta, Op, Resource, Spec};
use crate::measure::Batches;
use crate::mirror;
use crate::names::{DAL, SEAORM_MANY, SQLX_COPY, SQLX_MULTIROW, SQLX_SAME_BULK};
use crate::opts::Ctx;
use crate::pools::{self, close_dal, dal_db};
use crate::sql::{
    bind_rows, insert_rows_sql, leak, now_micros, Person, BULK_CHUNK, BULK_ROWS, INSERT_COLS,
};
use crate::tables::bulk_raw;

/// Wall-clock and process CPU time of a section.
pub struct Stopwatch {
    wall: Instant,
    cpu: Duration,
}

impl Stopwatch {
    pub fn start() -> Self {
        Stopwatch {
            wall: Instant::now(),
            cpu: cpu_time(),
        }
    }
    pub fn stop(&self) -> (Duration, Duration) {
        (self.wall.elapsed(), cpu_time().saturating_sub(self.cpu))
    }
}

/// dal: `save_entities` of the batch (input JSON built before the clock starts).
pub async fn bulk_dal(c: &mut dal::Connection, people: &[Person]) -> Result<(Duration, Duration)> {
    let input: Vec<serde_json::Value> = people.iter().map(Person::json).collect();
    let sw = Stopwatch::start();
    let saved = c.save_entities("dal_bench_bulk", input).await?;
    let e = sw.stop();
    if saved.len() != people.len() {
        return Err("bulk save returned the wrong count".into());
    }
    Ok(e)
}

/// The rows of `people` in COPY's text format, for [`INSERT_COLS`] (the bench's values need
/// no escaping).
pub fn copy_text(people: &[Person], now: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
    use std::fmt::Write as _;
    let now = now.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string();
    let mut s = String::with_capacity(people.len() * 120);
    for p in people {
        let active = if p.active { 't' } else { 'f' };
        let _ = writeln!(
            s,
            "{}\t{now}\t\\N\t{now}\t\\N\t{active}\t{}\t{}\t{}",
            p.id, p.age, p.email, p.name
        );
    }
    s.into_bytes()
}

/// Raw sqlx: `COPY … FROM STDIN` of the rows (text built inside the clock), one transaction.
async fn bulk_sqlx_copy(pool: sqlx::PgPool, people: Vec<Person>) -> Result<(Duration, Duration)> {
    static SQL: OnceLock<&'static str> = OnceLock::new();
    let sql = *SQL.get_or_init(|| {
        leak(format!(
            "COPY \"dal_bench_bulk_raw\" ({INSERT_COLS}) FROM STDIN"
        ))
    });
    let sw = Stopwatch::start();
    let data = copy_text(&people, now_micros());
    let mut tx = pool.begin().await?;
    let mut copy = tx.copy_in_raw(sql).await?;
    copy.send(data.as_slice()).await?;
    let n = copy.finish().await?;
    tx.commit().await?;
    let e = sw.stop();
    if n != people.len() as u64 {
        return Err("COPY took the wrong count".into());
    }
    Ok(e)
}

/// dal's state for a bulk round: its pool of one and the connection every batch uses.
pub struct DalConn {
    db: dal::Database,
    conn: tokio::sync::Mutex<dal::Connection>,
}

pub fn dal_conn(url: &str) -> Resource<DalConn> {
    let url = url.to_owned();
    Resource {
        setup: Box::new(move || {
            let url = url.clone();
            Box::pin(async move {
                let db = dal_db(&url, 1).await?;
                let conn = tokio::sync::Mutex::new(db.async_connection().await?);
                Ok(DalConn { db, conn })
            })
        }),
        teardown: |s| {
            Box::pin(async move {
                drop(s.conn);
                close_dal(s.db).await
            })
        },
    }
}

/// dal's bulk operation: [`bulk_dal`] on the round's connection.
pub struct DalSave;

impl Op<DalConn, Vec<Person>> for DalSave {
    type Out = (Duration, Duration);
    async fn call<'a>(&'a self, s: &'a DalConn, people: Vec<Person>) -> Result<Self::Out> {
        let mut c = s.conn.lock().await;
        bulk_dal(&mut c, &people).await
    }
}

/// Raw sqlx: multi-row INSERTs of 1 000 rows in one transaction.
async fn bulk_sqlx_insert(pool: sqlx::PgPool, people: Vec<Person>) -> Result<(Duration, Duration)> {
    static SQL: OnceLock<&'static str> = OnceLock::new();
    let sql = *SQL.get_or_init(|| leak(insert_rows_sql("dal_bench_bulk_raw", BULK_CHUNK)));
    let sw = Stopwatch::start();
    let now = now_micros();
    let mut tx = pool.begin().await?;
    for chunk in people.chunks(BULK_CHUNK) {
        let sql = if chunk.len() == BULK_CHUNK {
            sql
        } else {
            leak(insert_rows_sql("dal_bench_bulk_raw", chunk.len()))
        };
        bind_rows(sqlx::query(sql), chunk, now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(sw.stop())
}

/// Raw sqlx doing dal's statements in one transaction: the batch put in id order, row locks
/// of 2 000 ids, lookups of the new rows' versions of 2 000 ids, upserts of 1 000 rows (the
/// versions given) RETURNING the stored rows (decoded), then history appends of 2 000 ids.
async fn bulk_sqlx_same(
    pool: sqlx::PgPool,
    mut people: Vec<Person>,
) -> Result<(Duration, Duration)> {
    let sw = Stopwatch::start();
    let now = now_micros();
    mirror::in_id_order(&mut people);
    let mut tx = pool.begin().await?;
    let back = mirror::save(&mut tx, "dal_bench_bulk_raw", &people, now).await?;
    tx.commit().await?;
    let e = sw.stop();
    if back != people.len() {
        return Err("upsert returned the wrong count".into());
    }
    Ok(e)
}

/// SeaORM: `insert_many` of 1 000 rows per statement in one transaction (models built before
/// the clock starts).
async fn bulk_seaorm(
    db: sea_orm::DatabaseConnection,
    people: Vec<Person>,
) -> Result<(Duration, Duration)> {
    use sea_orm::{
        ActiveValue::{NotSet, Set},
        EntityTrait, TransactionTrait,
    };
    let now = now_micros().fixed_offset();
    let models: Vec<Vec<bulk_raw::ActiveModel>> = people
        .chunks(BULK_CHUNK)
        .map(|chunk| {
            chunk
                .iter()
                .map(|p| bulk_raw::ActiveModel {
                    id: Set(p.id.clone()),
                    created_at: Set(now),
                    created_by: Set(None),
                    updated_at: Set(now),
                    updated_by: Set(None),
                    deleted_at: Set(None),
                    // Left to its default, as the raw multi-row INSERT does.
                    version: NotSet,
                    active: Set(Some(p.active)),
                    age: Set(Some(p.age)),
                    email: Set(Some(p.email.clone())),
                    name: Set(Some(p.name.clone())),
                })
                .collect()
        })
        .collect();
    let sw = Stopwatch::start();
    let txn = db.begin().await?;
    for chunk in models {
        bulk_raw::Entity::insert_many(chunk).exec(&txn).await?;
    }
    txn.commit().await?;
    Ok(sw.stop())
}

pub async fn bulk(ctx: &Ctx) -> Result<Workload> {
    let url = &ctx.o.pg_url;
    // Timed batches per contender and round (one batch takes a few hundred ms and varies a lot
    // with the server's state; their total is what counts), after an untimed batch of 2 000 so
    // that every contender's statements are prepared.
    let m = Arc::new(Batches {
        reps: if ctx.o.quick { 1 } else { 3 },
        rows: BULK_ROWS,
        warm_rows: 2 * BULK_CHUNK,
        seq: Arc::new(AtomicU64::new(1_000_000)),
    });
    let meta = Meta {
        id: "bulk_save".into(),
        title: "Bulk save of 10 000 rows",
        backend: "PostgreSQL",
        clients: 1,
        unit: "rows/s",
        direction: Direction::HigherIsBetter,
        alternatives: vec![
            (SQLX_MULTIROW, Some(Target::at_least(0.8))),
            (SQLX_COPY, None),
            (SQLX_SAME_BULK, None),
            (SEAORM_MANY, None),
        ],
    };
    let spec = Spec::new(meta, "bulk_save 10 000 rows")
        .with(Contender::new(DAL, dal_conn(url), DalSave), &m)
        .with(
            Contender::new(
                SQLX_MULTIROW,
                pools::pg(url, 1, false),
                |p: &sqlx::PgPool, people| bulk_sqlx_insert(p.clone(), people),
            ),
            &m,
        )
        .with(
            Contender::new(
                SQLX_COPY,
                pools::pg(url, 1, false),
                |p: &sqlx::PgPool, people| bulk_sqlx_copy(p.clone(), people),
            ),
            &m,
        )
        .with(
            Contender::new(
                SQLX_SAME_BULK,
                pools::pg(url, 1, false),
                |p: &sqlx::PgPool, people| bulk_sqlx_same(p.clone(), people),
            ),
            &m,
        )
        .with(
            Contender::new(
                SEAORM_MANY,
                pools::seaorm(url, 1),
                |db: &sea_orm::DatabaseConnection, people| bulk_seaorm(db.clone(), people),
            ),
            &m,
        );
    Ok(spec.run(ctx).await?.workload)
}
