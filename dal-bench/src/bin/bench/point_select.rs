//! Point SELECT by primary key (`dal_bench_kv`, 100 000 rows), closed loop: PostgreSQL at 20
//! and 1 clients (plus a pgbench run), MySQL/MariaDB and SQLite at 20.

use std::path::Path;
use std::sync::Arc;

use dal::params;
use dal_bench::report::{Alternative, Direction, Series, Target, Workload};
use dal_bench::Result;

use crate::contender::{Contender, Meta, Spec};
use crate::measure::ClosedLoop;
use crate::names::{
    DAL, DEADPOOL, PGBENCH, SEAORM, SQLX, SQLX_CONN, SQLX_DEFAULT, SQLX_LITE, SQLX_MY,
};
use crate::opts::Ctx;
use crate::sql::{key, PS_DAL, PS_MY, PS_PG};
use crate::{pgbench, pools, tables};

async fn dal_select(db: dal::Database, r: u64) -> Result<()> {
    let mut c = db.async_connection().await?;
    let rows = c.execute(PS_DAL, params![key(r)]).await?;
    let _b: i64 = rows[0].try_get(0)?;
    Ok(())
}

async fn sqlx_select(pool: sqlx::PgPool, r: u64) -> Result<()> {
    let _b: i64 = sqlx::query_scalar(PS_PG)
        .bind(key(r))
        .fetch_one(&pool)
        .await?;
    Ok(())
}

async fn conn_select(conn: Arc<tokio::sync::Mutex<sqlx::PgConnection>>, r: u64) -> Result<()> {
    let mut c = conn.lock().await;
    let _b: i64 = sqlx::query_scalar(PS_PG)
        .bind(key(r))
        .fetch_one(&mut *c)
        .await?;
    Ok(())
}

async fn deadpool_select(pool: deadpool_postgres::Pool, r: u64) -> Result<()> {
    let c = pool.get().await?;
    let st = c.prepare_cached(PS_PG).await?;
    let row = c.query_one(&st, &[&key(r)]).await?;
    let _b: i64 = row.get(0);
    Ok(())
}

async fn seaorm_select(db: sea_orm::DatabaseConnection, r: u64) -> Result<()> {
    use sea_orm::EntityTrait;
    let m = tables::kv::Entity::find_by_id(key(r)).one(&db).await?;
    m.ok_or("row not found")?;
    Ok(())
}

async fn mysql_select(pool: sqlx::MySqlPool, r: u64) -> Result<()> {
    let _b: i64 = sqlx::query_scalar(PS_MY)
        .bind(key(r))
        .fetch_one(&pool)
        .await?;
    Ok(())
}

async fn sqlite_select(pool: sqlx::SqlitePool, r: u64) -> Result<()> {
    let _b: i64 = sqlx::query_scalar(PS_MY)
        .bind(key(r))
        .fetch_one(&pool)
        .await?;
    Ok(())
}

fn meta(
    id: String,
    backend: &'static str,
    clients: usize,
    alternatives: Vec<(&'static str, Option<Target>)>,
) -> Meta {
    Meta {
        id,
        title: "Point SELECT by PK",
        backend,
        clients,
        unit: "q/s",
        direction: Direction::HigherIsBetter,
        alternatives,
    }
}

/// PostgreSQL with `clients` tasks and pools of that size, then one pgbench run.
pub async fn pg(ctx: &Ctx, clients: usize, pgbench: pgbench::Pgbench<'_>) -> Result<Workload> {
    let url = &ctx.o.pg_url;
    let m = Arc::new(ClosedLoop {
        clients,
        timing: ctx.o.timing(),
    });
    let mut alternatives = vec![
        (SQLX, Some(Target::at_least(1.0))),
        (SQLX_DEFAULT, Some(Target::at_least(1.2))),
        (DEADPOOL, Some(Target::at_least(1.0))),
        (SEAORM, None),
    ];
    if clients == 1 {
        // One bare connection is only a fair comparison with one client.
        alternatives.push((SQLX_CONN, None));
    }
    let meta = meta(
        format!("point_select_c{clients}"),
        "PostgreSQL",
        clients,
        alternatives,
    );
    let spec = Spec::new(meta, format!("point_select c={clients}"))
        .with(
            Contender::new(DAL, pools::dal(url, clients), |db: &dal::Database, r| {
                dal_select(db.clone(), r)
            }),
            &m,
        )
        .with(
            Contender::new(
                SQLX_DEFAULT,
                pools::pg(url, clients, true),
                |p: &sqlx::PgPool, r| sqlx_select(p.clone(), r),
            ),
            &m,
        )
        .with(
            Contender::new(
                SQLX,
                pools::pg(url, clients, false),
                |p: &sqlx::PgPool, r| sqlx_select(p.clone(), r),
            ),
            &m,
        )
        .with(
            Contender::new(
                DEADPOOL,
                pools::deadpool(url, clients),
                |p: &deadpool_postgres::Pool, r| deadpool_select(p.clone(), r),
            ),
            &m,
        )
        .with(
            Contender::new(
                SEAORM,
                pools::seaorm(url, clients),
                |db: &sea_orm::DatabaseConnection, r| seaorm_select(db.clone(), r),
            ),
            &m,
        );
    let spec = if clients == 1 {
        spec.with(
            Contender::new(
                SQLX_CONN,
                pools::pg_conn(url),
                |c: &Arc<tokio::sync::Mutex<sqlx::PgConnection>>, r| conn_select(c.clone(), r),
            ),
            &m,
        )
    } else {
        spec
    };
    let mut w = spec.run(ctx).await?.workload;
    w.alternatives.push(Alternative {
        series: pgbench_series(ctx, clients, pgbench).await?,
        target: Some(Target::at_least(0.7)),
    });
    Ok(w)
}

/// One pgbench run of 5 s (2 s with `--quick`), when pgbench is set up and selected.
async fn pgbench_series(
    ctx: &Ctx,
    clients: usize,
    pgbench: pgbench::Pgbench<'_>,
) -> Result<Series> {
    Ok(match pgbench {
        Ok(url) if ctx.wants_contender(PGBENCH) => {
            let secs = if ctx.o.quick { 2 } else { 5 };
            let tps = pgbench::run(url, clients, secs).await?;
            eprintln!("  pgbench -S -M prepared -c {clients} -j {clients} -T {secs}: {tps:.0} tps");
            Series::new(PGBENCH, vec![tps]).with_note(format!("one {secs} s run, separate process"))
        }
        Ok(_) => Series::missing(PGBENCH, "not run"),
        Err(why) => Series::missing(PGBENCH, why),
    })
}

/// MySQL/MariaDB at 20 clients.
pub fn mysql(ctx: &Ctx, url: &str) -> Spec {
    let clients = 20;
    let m = Arc::new(ClosedLoop {
        clients,
        timing: ctx.o.timing(),
    });
    let meta = meta(
        "mysql_point_select".into(),
        "MySQL/MariaDB",
        clients,
        vec![(SQLX_MY, Some(Target::at_least(1.0)))],
    );
    Spec::new(meta, "mysql point_select c=20")
        .with(
            Contender::new(DAL, pools::dal(url, clients), |db: &dal::Database, r| {
                dal_select(db.clone(), r)
            }),
            &m,
        )
        .with(
            Contender::new(
                SQLX_MY,
                pools::mysql(url, clients),
                |p: &sqlx::MySqlPool, r| mysql_select(p.clone(), r),
            ),
            &m,
        )
}

/// SQLite (a file in WAL mode) at 20 clients.
pub fn sqlite(ctx: &Ctx, path: &Path) -> Spec {
    let clients = 20;
    let m = Arc::new(ClosedLoop {
        clients,
        timing: ctx.o.timing(),
    });
    let meta = meta(
        "sqlite_point_select".into(),
        "SQLite (file, WAL)",
        clients,
        vec![(SQLX_LITE, Some(Target::at_least(1.0)))],
    );
    let url = format!("sqlite://{}", path.display());
    Spec::new(meta, "sqlite point_select c=20")
        .with(
            Contender::new(DAL, pools::dal(&url, clients), |db: &dal::Database, r| {
                dal_select(db.clone(), r)
            }),
            &m,
        )
        .with(
            Contender::new(
                SQLX_LITE,
                pools::sqlite(path, clients),
                |p: &sqlx::SqlitePool, r| sqlite_select(p.clone(), r),
            ),
            &m,
        )
}
