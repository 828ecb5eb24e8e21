//! `dal status`: backend, server version, pool figures, entities with row counts, applied
//! migrations and, with `--schema`, the pending plan.

use anyhow::Context;
use dal::migrate::{AppliedMigration, MigrationPlan};
use dal::{Database, ScalingAdvice};
use serde::Serialize;

use super::{describe, migrate};
use crate::cli::StatusArgs;
use crate::output::Report;

#[derive(Serialize)]
struct Status<'a> {
    database: String,
    backend: &'static str,
    server: Server,
    pool: Pool,
    entities: Vec<EntityCount>,
    migrations: &'a [AppliedMigration],
    /// The pending plan (`null` without `--schema`).
    pending: Option<&'a MigrationPlan>,
}

#[derive(Serialize)]
struct Server {
    product: &'static str,
    version: String,
    driver: String,
}

#[derive(Serialize)]
struct Pool {
    min_size: usize,
    max_size: usize,
    size: usize,
    in_use: usize,
    idle: usize,
    waiting: usize,
    acquisitions: u64,
    connections_created: u64,
    queries: u64,
    timeouts: u64,
    errors: u64,
    wait_p99_ms: f64,
    /// `normal`, `review_slow_queries`, `scale_vertically`, `scale_horizontally`.
    #[serde(serialize_with = "advice_name")]
    scaling_advice: Option<ScalingAdvice>,
}

#[derive(Serialize)]
struct EntityCount {
    name: String,
    /// Rows not soft-deleted.
    rows: i64,
    /// Soft-deleted rows.
    deleted: i64,
}

pub async fn status(db: &Database, args: StatusArgs, json: bool) -> anyhow::Result<Report> {
    let version = db
        .version_details()
        .await
        .with_context(|| format!("cannot reach {}", describe(db)))?;

    let names = dal::backup::entities(db)
        .await
        .context("cannot list the entities")?;
    let mut entities = Vec::with_capacity(names.len());
    {
        let mut conn = db.async_connection().await?;
        for name in names {
            match count(&mut conn, &name).await {
                Ok((rows, all)) => entities.push(EntityCount {
                    name,
                    rows,
                    deleted: all - rows,
                }),
                // Dropped since it was listed (another process at work): not an entity now.
                Err(_) if !still_there(db, &name).await => {}
                Err(e) => return Err(e).with_context(|| format!("cannot count {name}")),
            }
        }
    }

    let history = dal::migrate::Migrator::new(db)
        .history()
        .await
        .context("cannot read the applied migrations")?;

    let pending = match &args.schema {
        Some(path) => {
            let plan = migrate::migrator(db, path)
                .plan()
                .await
                .context("cannot plan the migration")?;
            Some(plan)
        }
        None => None,
    };

    let pool_status = db.pool_status();
    let metrics = db.pool_metrics();
    let pool = Pool {
        min_size: pool_status.min_size,
        max_size: pool_status.max_size,
        size: pool_status.size,
        in_use: pool_status.in_use,
        idle: pool_status.idle,
        waiting: pool_status.waiting,
        acquisitions: metrics.as_ref().map_or(0, |m| m.acquisitions),
        connections_created: metrics.as_ref().map_or(0, |m| m.connections_created),
        queries: metrics.as_ref().map_or(0, |m| m.queries),
        timeouts: metrics.as_ref().map_or(0, |m| m.timeouts.values().sum()),
        errors: metrics.as_ref().map_or(0, |m| m.errors.values().sum()),
        wait_p99_ms: metrics
            .as_ref()
            .map_or(0.0, |m| (m.wait_time.p99.as_secs_f64() * 1e6).round() / 1e3),
        scaling_advice: metrics.as_ref().map(|m| m.scaling_advice()),
    };

    let status = Status {
        database: describe(db),
        backend: db.backend().as_str(),
        server: Server {
            product: version.product,
            version: version.server_version.clone(),
            driver: format!("{} {}", version.driver, version.driver_version),
        },
        pool,
        entities,
        migrations: &history,
        pending: pending.as_ref(),
    };

    Report::new(json, &status, |t| {
        t.field("database", &status.database);
        t.field("backend", status.backend);
        t.field("server", &version);
        let p = &status.pool;
        t.field(
            "pool",
            format!(
                "{} open ({} in use, {} idle, {} waiting), min {} max {}; {} acquisitions, {} queries, {} timeouts, {} errors, wait p99 {:.1} ms, advice: {}",
                p.size, p.in_use, p.idle, p.waiting, p.min_size, p.max_size, p.acquisitions,
                p.queries, p.timeouts, p.errors, p.wait_p99_ms,
                p.scaling_advice.map_or("unknown", ScalingAdvice::action)
            ),
        );
        if status.entities.is_empty() {
            t.field("entities", "none");
        } else {
            t.field("entities", status.entities.len());
            let width = status
                .entities
                .iter()
                .map(|e| e.name.len())
                .max()
                .unwrap_or(0);
            for e in &status.entities {
                t.line(format!(
                    "  {:<width$}  {} rows, {} deleted",
                    e.name, e.rows, e.deleted
                ));
            }
        }
        t.field("migrations", format!("{} applied", history.len()));
        for m in &history {
            t.line(format!(
                "  #{} {} by {} ({} statements, checksum {})",
                m.id,
                m.applied_at,
                m.applied_by,
                m.statements
                    .lines()
                    .filter(|l| l.trim_end().ends_with(';'))
                    .count(),
                m.checksum.get(..8).unwrap_or(&m.checksum)
            ));
        }
        if let Some(plan) = &pending {
            if plan.is_empty() {
                t.field("pending", "nothing: the database matches the schema");
            } else {
                t.field("pending", format!("{} statements", plan.statements().len()));
                t.text(&plan.to_string());
            }
        }
    })
}

/// Rows not deleted, and all rows.
async fn count(conn: &mut dal::Connection, name: &str) -> dal::Result<(i64, i64)> {
    let rows = conn.count_entities(name).await?;
    let all = conn.count_entities(name).include_deleted().await?;
    Ok((rows, all))
}

async fn still_there(db: &Database, name: &str) -> bool {
    dal::backup::entities(db)
        .await
        .map_or(true, |names| names.iter().any(|n| n == name))
}

fn advice_name<S: serde::Serializer>(a: &Option<ScalingAdvice>, s: S) -> Result<S::Ok, S::Error> {
    match a {
        Some(a) => s.serialize_str(a.as_str()),
        None => s.serialize_none(),
    }
}
