//! Entity reads, closed loop at 20 clients: get by id (PostgreSQL, MySQL/MariaDB, SQLite) and a
//! filtered find with LIMIT 10 (PostgreSQL).

use std::path::Path;
use std::sync::Arc;

use dal::params;
use dal_bench::report::{Direction, Target, Workload};
use dal_bench::Result;

use crate::contender::{Contender, Meta, Spec};
use crate::measure::ClosedLoop;
use crate::names::{DAL, SEAORM, SEAORM_FIND, SQLX, SQLX_LITE, SQLX_MY};
use crate::opts::Ctx;
use crate::sql::{leak, LiteEntityRow, MyEntityRow, PgEntityRow, COLS, COLS_MY};
use crate::{pools, tables};

const CLIENTS: usize = 20;

fn closed_loop(ctx: &Ctx) -> Arc<ClosedLoop> {
    Arc::new(ClosedLoop {
        clients: CLIENTS,
        timing: ctx.o.timing(),
    })
}

fn get_meta(
    id: &str,
    backend: &'static str,
    alternatives: Vec<(&'static str, Option<Target>)>,
) -> Meta {
    Meta {
        id: id.into(),
        title: "Entity get by id",
        backend,
        clients: CLIENTS,
        unit: "q/s",
        direction: Direction::HigherIsBetter,
        alternatives,
    }
}

/// The id of entity get number `r`.
fn pick(ids: &[String], r: u64) -> String {
    ids[(r % ids.len() as u64) as usize].clone()
}

async fn dal_get(db: dal::Database, id: String) -> Result<()> {
    let mut c = db.async_connection().await?;
    c.get_entity("dal_bench_people", &id)
        .await?
        .ok_or("entity not found")?;
    Ok(())
}

async fn sqlx_get(pool: sqlx::PgPool, sql: &'static str, id: String) -> Result<()> {
    let _row: PgEntityRow = sqlx::query_as(sql).bind(&id).fetch_one(&pool).await?;
    Ok(())
}

async fn seaorm_get(db: sea_orm::DatabaseConnection, id: String) -> Result<()> {
    use sea_orm::EntityTrait;
    tables::people::Entity::find_by_id(id)
        .one(&db)
        .await?
        .ok_or("entity not found")?;
    Ok(())
}

async fn mysql_get(pool: sqlx::MySqlPool, sql: &'static str, id: String) -> Result<()> {
    let _row: MyEntityRow = sqlx::query_as(sql).bind(&id).fetch_one(&pool).await?;
    Ok(())
}

async fn sqlite_get(pool: sqlx::SqlitePool, sql: &'static str, id: String) -> Result<()> {
    let _row: LiteEntityRow = sqlx::query_as(sql).bind(&id).fetch_one(&pool).await?;
    Ok(())
}

pub async fn pg_get(ctx: &Ctx) -> Result<Workload> {
    let url = &ctx.o.pg_url;
    let m = closed_loop(ctx);
    let sql: &'static str = leak(format!(
        "SELECT {COLS} FROM \"dal_bench_people\" WHERE \"id\" = $1 AND \"deleted_at\" IS NULL"
    ));
    let alternatives = vec![
        (SQLX, Some(Target::at_least(0.9))),
        (SEAORM, Some(Target::above(1.0))),
    ];
    let (i1, i2, i3) = (ctx.people.clone(), ctx.people.clone(), ctx.people.clone());
    let spec = Spec::new(
        get_meta("entity_get", "PostgreSQL", alternatives),
        "entity_get c=20",
    )
    .with(
        Contender::new(
            DAL,
            pools::dal(url, CLIENTS),
            move |db: &dal::Database, r| {
                let id = pick(&i1, r);
                dal_get(db.clone(), id)
            },
        ),
        &m,
    )
    .with(
        Contender::new(
            SQLX,
            pools::pg(url, CLIENTS, false),
            move |p: &sqlx::PgPool, r| {
                let id = pick(&i2, r);
                sqlx_get(p.clone(), sql, id)
            },
        ),
        &m,
    )
    .with(
        Contender::new(
            SEAORM,
            pools::seaorm(url, CLIENTS),
            move |db: &sea_orm::DatabaseConnection, r| {
                let id = pick(&i3, r);
                seaorm_get(db.clone(), id)
            },
        ),
        &m,
    );
    Ok(spec.run(ctx).await?.workload)
}

pub fn mysql_get_spec(ctx: &Ctx, url: &str, ids: Arc<Vec<String>>) -> Spec {
    let m = closed_loop(ctx);
    let sql: &'static str = leak(format!(
        "SELECT {COLS_MY} FROM `dal_bench_people` WHERE `id` = ? AND `deleted_at` IS NULL"
    ));
    let alternatives = vec![(SQLX_MY, Some(Target::at_least(0.9)))];
    let i1 = ids.clone();
    Spec::new(
        get_meta("mysql_entity_get", "MySQL/MariaDB", alternatives),
        "mysql entity_get c=20",
    )
    .with(
        Contender::new(
            DAL,
            pools::dal(url, CLIENTS),
            move |db: &dal::Database, r| {
                let id = pick(&i1, r);
                dal_get(db.clone(), id)
            },
        ),
        &m,
    )
    .with(
        Contender::new(
            SQLX_MY,
            pools::mysql(url, CLIENTS),
            move |p: &sqlx::MySqlPool, r| {
                let id = pick(&ids, r);
                mysql_get(p.clone(), sql, id)
            },
        ),
        &m,
    )
}

pub fn sqlite_get_spec(ctx: &Ctx, path: &Path, ids: Arc<Vec<String>>) -> Spec {
    let m = closed_loop(ctx);
    let sql: &'static str = leak(format!(
        "SELECT {COLS} FROM \"dal_bench_people\" WHERE \"id\" = ? AND \"deleted_at\" IS NULL"
    ));
    let alternatives = vec![(SQLX_LITE, Some(Target::at_least(0.9)))];
    let url = format!("sqlite://{}", path.display());
    let i1 = ids.clone();
    Spec::new(
        get_meta("sqlite_entity_get", "SQLite (file, WAL)", alternatives),
        "sqlite entity_get c=20",
    )
    .with(
        Contender::new(
            DAL,
            pools::dal(&url, CLIENTS),
            move |db: &dal::Database, r| {
                let id = pick(&i1, r);
                dal_get(db.clone(), id)
            },
        ),
        &m,
    )
    .with(
        Contender::new(
            SQLX_LITE,
            pools::sqlite(path, CLIENTS),
            move |p: &sqlx::SqlitePool, r| {
                let id = pick(&ids, r);
                sqlite_get(p.clone(), sql, id)
            },
        ),
        &m,
    )
}

/// The minimum age of find number `r`.
fn age(r: u64) -> i64 {
    18 + (r % 50) as i64
}

async fn dal_find(db: dal::Database, r: u64) -> Result<()> {
    let mut c = db.async_connection().await?;
    let found = c
        .find_entities("dal_bench_people")
        .filter("[age] >= ?", params![age(r)])
        .limit(10)
        .await?;
    if found.is_empty() {
        return Err("nothing found".into());
    }
    Ok(())
}

async fn sqlx_find(pool: sqlx::PgPool, sql: &'static str, r: u64) -> Result<()> {
    let rows: Vec<PgEntityRow> = sqlx::query_as(sql).bind(age(r)).fetch_all(&pool).await?;
    if rows.is_empty() {
        return Err("nothing found".into());
    }
    Ok(())
}

async fn seaorm_find(db: sea_orm::DatabaseConnection, r: u64) -> Result<()> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
    use tables::people;
    let rows = people::Entity::find()
        .filter(people::Column::DeletedAt.is_null())
        .filter(people::Column::Age.gte(age(r)))
        .limit(10)
        .all(&db)
        .await?;
    if rows.is_empty() {
        return Err("nothing found".into());
    }
    Ok(())
}

pub async fn find(ctx: &Ctx) -> Result<Workload> {
    let url = &ctx.o.pg_url;
    let m = closed_loop(ctx);
    let sql: &'static str = leak(format!(
        "SELECT {COLS} FROM \"dal_bench_people\" WHERE \"deleted_at\" IS NULL AND (\"age\" >= $1) LIMIT 10"
    ));
    let meta = Meta {
        id: "find_limit10".into(),
        title: "Filtered find, LIMIT 10",
        backend: "PostgreSQL",
        clients: CLIENTS,
        unit: "q/s",
        direction: Direction::HigherIsBetter,
        alternatives: vec![(SQLX, None), (SEAORM_FIND, None)],
    };
    let spec = Spec::new(meta, "find_limit10 c=20")
        .with(
            Contender::new(DAL, pools::dal(url, CLIENTS), |db: &dal::Database, r| {
                dal_find(db.clone(), r)
            }),
            &m,
        )
        .with(
            Contender::new(
                SQLX,
                pools::pg(url, CLIENTS, false),
                move |p: &sqlx::PgPool, r| sqlx_find(p.clone(), sql, r),
            ),
            &m,
        )
        .with(
            Contender::new(
                SEAORM_FIND,
                pools::seaorm(url, CLIENTS),
                |db: &sea_orm::DatabaseConnection, r| seaorm_find(db.clone(), r),
            ),
            &m,
        );
    Ok(spec.run(ctx).await?.workload)
}
