//! Writes, closed loop at 20 clients on PostgreSQL: single-row INSERT, and saving a new entity
//! with its history (dal against raw sqlx replaying dal's statements, and one CTE statement).

use std::sync::Arc;

use dal::params;
use dal_bench::report::{Direction, Target, Workload};
use dal_bench::Result;

use crate::contender::{Contender, Meta, Spec};
use crate::measure::ClosedLoop;
use crate::names::{DAL, DEADPOOL, SQLX, SQLX_CTE, SQLX_SAME};
use crate::opts::Ctx;
use crate::sql::{now_micros, Person, INS_DAL, INS_PG};
use crate::{mirror, pools};

const CLIENTS: usize = 20;

async fn dal_insert(db: dal::Database, r: u64) -> Result<()> {
    let mut c = db.async_connection().await?;
    c.execute(INS_DAL, params![r as i64 >> 1, "value"]).await?;
    Ok(())
}

async fn sqlx_insert(pool: sqlx::PgPool, r: u64) -> Result<()> {
    sqlx::query(INS_PG)
        .bind(r as i64 >> 1)
        .bind("value")
        .execute(&pool)
        .await?;
    Ok(())
}

async fn deadpool_insert(pool: deadpool_postgres::Pool, r: u64) -> Result<()> {
    let c = pool.get().await?;
    let st = c.prepare_cached(INS_PG).await?;
    c.execute(&st, &[&(r as i64 >> 1), &"value"]).await?;
    Ok(())
}

pub async fn insert(ctx: &Ctx) -> Result<Workload> {
    let url = &ctx.o.pg_url;
    let m = Arc::new(ClosedLoop {
        clients: CLIENTS,
        timing: ctx.o.timing(),
    });
    let meta = Meta {
        id: "insert".into(),
        title: "Single-row INSERT",
        backend: "PostgreSQL",
        clients: CLIENTS,
        unit: "q/s",
        direction: Direction::HigherIsBetter,
        alternatives: vec![(SQLX, None), (DEADPOOL, None)],
    };
    let spec = Spec::new(meta, "insert c=20")
        .with(
            Contender::new(DAL, pools::dal(url, CLIENTS), |db: &dal::Database, r| {
                dal_insert(db.clone(), r)
            }),
            &m,
        )
        .with(
            Contender::new(
                SQLX,
                pools::pg(url, CLIENTS, false),
                |p: &sqlx::PgPool, r| sqlx_insert(p.clone(), r),
            ),
            &m,
        )
        .with(
            Contender::new(
                DEADPOOL,
                pools::deadpool(url, CLIENTS),
                |p: &deadpool_postgres::Pool, r| deadpool_insert(p.clone(), r),
            ),
            &m,
        );
    Ok(spec.run(ctx).await?.workload)
}

async fn dal_save(db: dal::Database, r: u64) -> Result<()> {
    let p = Person::new(r);
    let mut c = db.async_connection().await?;
    let saved = c.save_entity("dal_bench_saves", p.json()).await?;
    debug_assert!(saved.contains_key("id"));
    Ok(())
}

/// The table the raw contenders save into (made by dal, so of exactly its shape).
const RAW_TABLE: &str = "dal_bench_saves_raw";

/// dal's previous plan by hand: BEGIN, the upsert (version from the history by a subquery) RETURNING
/// the stored row, the history append copying it, COMMIT. A single entity takes no row lock
/// and no version lookup first (dal does both for a batch of more than one).
async fn sqlx_same_save(pool: sqlx::PgPool, r: u64) -> Result<()> {
    let p = Person::new(r);
    let now = now_micros();
    let mut tx = pool.begin().await?;
    let back = mirror::save(&mut tx, RAW_TABLE, std::slice::from_ref(&p), now).await?;
    tx.commit().await?;
    debug_assert_eq!(back, 1);
    Ok(())
}

/// dal's plan by hand: the upsert (version by its subquery) and history append as one CTE
/// statement, no transaction around it.
async fn sqlx_cte_save(pool: sqlx::PgPool, r: u64) -> Result<()> {
    let p = Person::new(r);
    let now = now_micros();
    let mut c = pool.acquire().await?;
    let back = mirror::save_cte(&mut c, RAW_TABLE, std::slice::from_ref(&p), now).await?;
    debug_assert_eq!(back, 1);
    Ok(())
}

pub async fn entity_save(ctx: &Ctx) -> Result<Workload> {
    let url = &ctx.o.pg_url;
    let m = Arc::new(ClosedLoop {
        clients: CLIENTS,
        timing: ctx.o.timing(),
    });
    let meta = Meta {
        id: "entity_save".into(),
        title: "Entity save with history (new entity)",
        backend: "PostgreSQL",
        clients: CLIENTS,
        unit: "saves/s",
        direction: Direction::HigherIsBetter,
        alternatives: vec![
            (SQLX_CTE, Some(Target::at_least(1.0))),
            (SQLX_SAME, Some(Target::at_least(1.5))),
        ],
    };
    let spec = Spec::new(meta, "entity_save c=20")
        .with(
            Contender::new(DAL, pools::dal(url, CLIENTS), |db: &dal::Database, r| {
                dal_save(db.clone(), r)
            }),
            &m,
        )
        .with(
            Contender::new(
                SQLX_SAME,
                pools::pg(url, CLIENTS, false),
                |p: &sqlx::PgPool, r| sqlx_same_save(p.clone(), r),
            ),
            &m,
        )
        .with(
            Contender::new(
                SQLX_CTE,
                pools::pg(url, CLIENTS, false),
                |p: &sqlx::PgPool, r| sqlx_cte_save(p.clone(), r),
            ),
            &m,
        );
    Ok(spec.run(ctx).await?.workload)
}
