//! Pool checkout on PostgreSQL: uncontended checkout + return (one task, pool of 20), and the
//! acquire wait of 1 000 tasks released at once on a pool of 50, each running a 5 ms query.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dal_bench::report::{Alternative, Direction, Series, Target, Workload};
use dal_bench::Result;

use crate::contender::{Contender, Meta, Op, Spec};
use crate::measure::{Checkout, Storm};
use crate::names::{DAL, DEADPOOL, IDEAL, ONE_MICRO, SQLX};
use crate::opts::Ctx;
use crate::pools;

/// Pool size of the checkout workload (one task: nothing waits).
const CHECKOUT_POOL: usize = 20;
const WAIT_TASKS: usize = 1_000;
const WAIT_CONNS: usize = 50;
const HOLD_DAL: &str = "SELECT 1 AS [one] FROM pg_sleep(0.005)";
const HOLD_PG: &str = "SELECT 1 AS one FROM pg_sleep(0.005)";

/// Check a connection out of the pool and give it back. Implemented on the pools directly so
/// that the operation borrows the pool, as a hand-written checkout loop does.
struct CheckoutReturn;

impl Op<dal::Database, ()> for CheckoutReturn {
    type Out = ();
    async fn call<'a>(&'a self, db: &'a dal::Database, _: ()) -> Result<()> {
        let c = db.async_connection().await?;
        drop(c);
        Ok(())
    }
}

impl Op<sqlx::PgPool, ()> for CheckoutReturn {
    type Out = ();
    async fn call<'a>(&'a self, pool: &'a sqlx::PgPool, _: ()) -> Result<()> {
        let c = pool.acquire().await?;
        drop(c);
        Ok(())
    }
}

impl Op<deadpool_postgres::Pool, ()> for CheckoutReturn {
    type Out = ();
    async fn call<'a>(&'a self, pool: &'a deadpool_postgres::Pool, _: ()) -> Result<()> {
        let c = pool.get().await?;
        drop(c);
        Ok(())
    }
}

pub async fn checkout(ctx: &Ctx) -> Result<Workload> {
    let url = &ctx.o.pg_url;
    let m = Arc::new(Checkout {
        timing: ctx.o.timing(),
    });
    let meta = Meta {
        id: "checkout".into(),
        title: "Uncontended pool checkout + return (1 task, pool of 20)",
        backend: "PostgreSQL",
        clients: 1,
        unit: "ns",
        direction: Direction::LowerIsBetter,
        alternatives: vec![(SQLX, None), (DEADPOOL, None)],
    };
    let spec = Spec::new(meta, "checkout")
        .with(
            Contender::new(DAL, pools::dal(url, CHECKOUT_POOL), CheckoutReturn),
            &m,
        )
        .with(
            Contender::new(SQLX, pools::pg(url, CHECKOUT_POOL, false), CheckoutReturn),
            &m,
        )
        .with(
            Contender::new(
                DEADPOOL,
                pools::deadpool(url, CHECKOUT_POOL),
                CheckoutReturn,
            ),
            &m,
        );
    let mut w = spec.run(ctx).await?.workload;
    w.alternatives.insert(
        0,
        Alternative {
            series: Series::new(ONE_MICRO, vec![1000.0]).with_note("the issue's absolute target"),
            target: Some(Target::at_most(1.0)),
        },
    );
    Ok(w)
}

async fn dal_hold(db: dal::Database) -> Result<(Duration, Duration)> {
    let t = Instant::now();
    let mut c = db.async_connection().await?;
    let wait = t.elapsed();
    let t = Instant::now();
    c.execute(HOLD_DAL, ()).await?;
    let hold = t.elapsed();
    drop(c);
    Ok((wait, hold))
}

async fn sqlx_hold(pool: sqlx::PgPool) -> Result<(Duration, Duration)> {
    let t = Instant::now();
    let mut c = pool.acquire().await?;
    let wait = t.elapsed();
    let t = Instant::now();
    sqlx::query(HOLD_PG).execute(&mut *c).await?;
    let hold = t.elapsed();
    drop(c);
    Ok((wait, hold))
}

async fn deadpool_hold(pool: deadpool_postgres::Pool) -> Result<(Duration, Duration)> {
    let t = Instant::now();
    let c = pool.get().await?;
    let wait = t.elapsed();
    let t = Instant::now();
    c.query(HOLD_PG, &[]).await?;
    let hold = t.elapsed();
    drop(c);
    Ok((wait, hold))
}

pub async fn acquire_wait(ctx: &Ctx) -> Result<Workload> {
    let url = &ctx.o.pg_url;
    let m = Arc::new(Storm {
        tasks: WAIT_TASKS,
        conns: WAIT_CONNS,
    });
    let meta = Meta {
        id: "acquire_wait".into(),
        title: "Acquire wait p99, 1 000 tasks on 50 connections (5 ms queries)",
        backend: "PostgreSQL",
        clients: WAIT_TASKS,
        unit: "ms",
        direction: Direction::LowerIsBetter,
        alternatives: vec![(SQLX, None), (DEADPOOL, None)],
    };
    let mut spec = Spec::new(meta, "acquire_wait 1000 tasks/50 conns")
        .with(
            Contender::new(
                DAL,
                pools::dal(url, WAIT_CONNS),
                |db: &dal::Database, ()| dal_hold(db.clone()),
            ),
            &m,
        )
        .with(
            Contender::new(
                SQLX,
                pools::pg(url, WAIT_CONNS, false),
                |p: &sqlx::PgPool, ()| sqlx_hold(p.clone()),
            ),
            &m,
        )
        .with(
            Contender::new(
                DEADPOOL,
                pools::deadpool(url, WAIT_CONNS),
                |p: &deadpool_postgres::Pool, ()| deadpool_hold(p.clone()),
            ),
            &m,
        );
    spec.log_unit = "ms p99";
    let out = spec.run(ctx).await?;
    // The ideal FIFO p99 for the hold time dal's rounds measured.
    let ideal = out.extras(DAL);
    let series = if ideal.is_empty() {
        Series::missing(IDEAL, "dal not run")
    } else {
        Series::new(IDEAL, ideal).with_note("floor(989/50) × dal's mean hold time")
    };
    let mut w = out.workload;
    w.alternatives.insert(
        0,
        Alternative {
            series,
            target: Some(Target::at_most(2.0)),
        },
    );
    Ok(w)
}
