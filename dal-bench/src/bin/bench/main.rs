//! `cargo run --release -p dal-bench --bin bench [-- --quick]`
//!
//! dal side by side with raw sqlx, SeaORM, tokio-postgres through deadpool and pgbench: every
//! workload runs dal and its alternatives in this one process, alternating rounds (the order
//! rotates each round), with the same pool size and concurrency. Each round builds the
//! contender's pool, warms it up, measures, and closes it, so at most one benchmark pool is open
//! at a time (PostgreSQL here allows 100 connections). Figures are medians over the rounds.
//!
//! Writes `bench-results/latest.{json,md,png}` at the workspace root and prints the table.
//!
//! Options: `--quick`, `--rounds N`, `--seconds S` (measured per contender and round),
//! `--warmup S`, `--only ID[,ID…]` (workload ids, substring match), `--contender NAME[,…]`
//! (substring match, e.g. `dal` to profile dal alone), `--no-mysql`, `--no-sqlite`,
//! `--no-pgbench`, `--combine A.json B.json …` (medians of several runs, written as
//! `bench-results/combined.*`). Environment: `DAL_BENCH_POSTGRES_URL`, `DAL_BENCH_MYSQL_URL`.
//!
//! Layout: [`contender`] (the contender abstraction and the alternating rounds), [`measure`]
//! (closed loop, checkout, acquire storm, bulk batches), [`pools`] (each pool's setup and
//! teardown), one module per workload family ([`point_select`], [`writes`], [`reads`],
//! [`bulk`], [`acquire`]), and the table of workloads below ([`PG_WORKLOADS`]). The raw
//! contenders that replay dal's entity save use [`mirror`]; [`setup`] checks with [`capture`]
//! that they send what dal sends.

mod acquire;
mod bulk;
mod capture;
mod contender;
mod explain;
mod measure;
mod mirror;
mod names;
mod opts;
mod other_writes;
mod output;
mod pgbench;
mod point_select;
mod pools;
mod reads;
mod setup;
mod sql;
mod tables;
mod writes;

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use dal_bench::report::{markdown_table, Machine, Report, Settings, Workload};
use dal_bench::Result;

use crate::names::PGBENCH;
use crate::opts::{Ctx, Opts, HELP};
use crate::output::{redact, write_outputs};
use crate::pgbench::Pgbench;

/// A PostgreSQL workload.
#[derive(Debug, Clone, Copy)]
enum Pg {
    PointSelect(usize),
    Insert,
    EntitySave,
    EntityGet,
    Find,
    Bulk,
    Checkout,
    AcquireWait,
}

/// The PostgreSQL workloads in the order they run: the id `--only` matches, the label of the
/// progress line after it, and the workload. MySQL and SQLite follow, after their setup.
const PG_WORKLOADS: [(&str, &str, Pg); 9] = [
    ("point_select_c20", "point_select_pg", Pg::PointSelect(20)),
    ("point_select_c1", "point_select_pg", Pg::PointSelect(1)),
    ("insert", "insert_pg", Pg::Insert),
    ("entity_save", "entity_save_pg", Pg::EntitySave),
    ("entity_get", "entity_get_pg", Pg::EntityGet),
    ("find_limit10", "find_pg", Pg::Find),
    ("bulk_save", "bulk_pg", Pg::Bulk),
    ("checkout", "checkout_pg", Pg::Checkout),
    ("acquire_wait", "acquire_wait_pg", Pg::AcquireWait),
];

impl Pg {
    async fn run(self, ctx: &Ctx, pgbench: Pgbench<'_>) -> Result<Workload> {
        match self {
            Pg::PointSelect(clients) => point_select::pg(ctx, clients, pgbench).await,
            Pg::Insert => writes::insert(ctx).await,
            Pg::EntitySave => writes::entity_save(ctx).await,
            Pg::EntityGet => reads::pg_get(ctx).await,
            Pg::Find => reads::find(ctx).await,
            Pg::Bulk => bulk::bulk(ctx).await,
            Pg::Checkout => acquire::checkout(ctx).await,
            Pg::AcquireWait => acquire::acquire_wait(ctx).await,
        }
    }
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let Some(o) = opts::from_env()? else {
        println!("{HELP}");
        return Ok(());
    };
    if !o.combine.is_empty() {
        return output::combine_runs(&o.combine);
    }
    let started = Utc::now();
    let mut machine = dal_bench::machine::describe();
    eprintln!(
        "dal-bench: {} rounds, {:.2} s measured + {:.2} s warm-up per contender and round{}",
        o.rounds,
        o.measure.as_secs_f64(),
        o.warmup.as_secs_f64(),
        if o.quick { " (--quick)" } else { "" }
    );
    eprintln!("setting up PostgreSQL tables ({})", redact(&o.pg_url));
    let pg = setup::pg_setup(&o.pg_url).await?;
    machine.postgres = Some(pg.version);
    let mut notes = vec![
        "Every workload runs dal and its alternatives in one process, alternating rounds (order rotated each round), same pool size (= clients) and concurrency; each round builds, warms and closes its pool.".to_owned(),
        "dal / alt.: ratio of medians. For q/s, saves/s and rows/s higher is better; for ns and ms lower is better.".to_owned(),
        "Raw sqlx baselines use test_before_acquire(false) (the stricter baseline) except the row that says default options.".to_owned(),
        format!(
            "PostgreSQL transport: {} (tokio-postgres always runs without TLS).",
            if o.pg_url.contains("sslmode=disable") {
                "no TLS for every contender (sslmode=disable)"
            } else {
                "as DAL_BENCH_POSTGRES_URL says for dal, sqlx, SeaORM and pgbench"
            }
        ),
    ];
    let ctx = Ctx {
        o: o.clone(),
        people: Arc::new(pg.people),
    };
    if o.explain_bulk {
        let explained = explain::explain_bulk(&o.pg_url, o.rounds).await;
        drop_pg_tables(&o.pg_url).await;
        return explained;
    }
    let pgbench = pgbench_url(&ctx, &mut notes).await;
    let mut workloads = pg_workloads(&ctx, pgbench.as_deref().map_err(|why| *why)).await?;
    workloads.extend(mysql_workloads(&ctx, &mut machine, &mut notes).await?);
    workloads.extend(sqlite_workloads(&ctx, &mut machine).await?);
    if let Some(w) = pg.plan_warning {
        notes.push(format!("WARNING: {w}."));
    }
    drop_pg_tables(&o.pg_url).await;
    report(&o, started, machine, workloads, notes)
}

/// Drops the bench's PostgreSQL tables (a message if that fails).
async fn drop_pg_tables(url: &str) {
    if let Err(e) = setup::pg_cleanup(url).await {
        eprintln!("could not drop the bench tables: {e}");
    }
}

/// pgbench's database, when pgbench is wanted, on PATH and could be set up (a note if not); or
/// why its rows are n/a.
async fn pgbench_url(
    ctx: &Ctx,
    notes: &mut Vec<String>,
) -> std::result::Result<String, &'static str> {
    if !ctx.o.pgbench {
        return Err("not run: --no-pgbench");
    }
    if !wants_pg_point_select(ctx) || !ctx.wants_contender(PGBENCH) {
        return Err("not run");
    }
    if !pgbench::available() {
        notes.push("pgbench is not on PATH: its rows are n/a.".into());
        return Err("pgbench not on PATH");
    }
    pgbench::setup(&ctx.o.pg_url).await.map_err(|e| {
        notes.push(format!("pgbench could not be set up: {e}"));
        "pgbench could not be set up (see the notes)"
    })
}

/// Whether `--only` selects one of the PostgreSQL point-select workloads (the ones with a
/// pgbench row).
fn wants_pg_point_select(ctx: &Ctx) -> bool {
    PG_WORKLOADS
        .iter()
        .any(|(id, _, job)| matches!(job, Pg::PointSelect(_)) && ctx.wants(id))
}

/// The [`PG_WORKLOADS`] that `--only` selects, in order.
async fn pg_workloads(ctx: &Ctx, pgbench: Pgbench<'_>) -> Result<Vec<Workload>> {
    let mut workloads = Vec::new();
    let mut clock = Instant::now();
    for (id, lap, job) in PG_WORKLOADS {
        if !ctx.wants(id) || matches!(job, Pg::EntityGet) && ctx.wants_only_other_backends() {
            continue;
        }
        workloads.push(job.run(ctx, pgbench).await?);
        eprintln!("  [{lap}: {:.1} s]", clock.elapsed().as_secs_f64());
        clock = Instant::now();
    }
    Ok(workloads)
}

/// MySQL/MariaDB's workloads (skipped, with a note, when its setup fails).
async fn mysql_workloads(
    ctx: &Ctx,
    machine: &mut Machine,
    notes: &mut Vec<String>,
) -> Result<Vec<Workload>> {
    let (o, mut out) = (&ctx.o, Vec::new());
    let writes = ctx.wants("mysql_entity_save") || ctx.wants("mysql_bulk_save");
    if !o.mysql || !(ctx.wants("mysql_point_select") || ctx.wants("mysql_entity_get") || writes) {
        return Ok(out);
    }
    eprintln!("setting up MySQL tables ({})", redact(&o.my_url));
    let prepared = match setup::my_setup(&o.my_url).await {
        Ok(p) => p,
        Err(e) => {
            notes.push(format!("MySQL rows skipped: {e}"));
            return Ok(out);
        }
    };
    machine.mysql = Some(prepared.version);
    if ctx.wants("mysql_point_select") {
        let spec = point_select::mysql(ctx, &o.my_url);
        out.push(spec.run(ctx).await?.workload);
    }
    if ctx.wants("mysql_entity_get") {
        let spec = reads::mysql_get_spec(ctx, &o.my_url, Arc::new(prepared.people));
        out.push(spec.run(ctx).await?.workload);
    }
    if writes {
        other_writes::setup(&o.my_url).await?;
        if ctx.wants("mysql_entity_save") {
            out.push(other_writes::mysql_save(ctx, &o.my_url).await?);
        }
        if ctx.wants("mysql_bulk_save") {
            out.push(other_writes::mysql_bulk(ctx, &o.my_url).await?);
        }
        if let Err(e) = other_writes::cleanup(&o.my_url).await {
            eprintln!("could not drop the MySQL bench entities: {e}");
        }
    }
    if let Err(e) = setup::my_cleanup(&o.my_url).await {
        eprintln!("could not drop the MySQL bench tables: {e}");
    }
    Ok(out)
}

/// SQLite's workloads, on a temporary file removed afterwards.
async fn sqlite_workloads(ctx: &Ctx, machine: &mut Machine) -> Result<Vec<Workload>> {
    let mut out = Vec::new();
    let writes = ctx.wants("sqlite_entity_save") || ctx.wants("sqlite_bulk_save");
    if !ctx.o.sqlite
        || !(ctx.wants("sqlite_point_select") || ctx.wants("sqlite_entity_get") || writes)
    {
        return Ok(out);
    }
    let path = std::env::temp_dir().join(format!("dal-bench-{}.db", std::process::id()));
    eprintln!("setting up SQLite file {}", path.display());
    let prepared = setup::lite_setup(&path).await?;
    machine.sqlite = Some(prepared.version);
    if ctx.wants("sqlite_point_select") {
        out.push(point_select::sqlite(ctx, &path).run(ctx).await?.workload);
    }
    if ctx.wants("sqlite_entity_get") {
        let spec = reads::sqlite_get_spec(ctx, &path, Arc::new(prepared.people));
        out.push(spec.run(ctx).await?.workload);
    }
    if writes {
        let url = format!("sqlite://{}", path.display());
        other_writes::setup(&url).await?;
        if ctx.wants("sqlite_entity_save") {
            out.push(other_writes::sqlite_save(ctx, &path).await?);
        }
        if ctx.wants("sqlite_bulk_save") {
            out.push(other_writes::sqlite_bulk(ctx, &path).await?);
        }
    }
    setup::lite_cleanup(&path);
    Ok(out)
}

/// Writes `latest.*` and prints the table.
fn report(
    o: &Opts,
    started: chrono::DateTime<Utc>,
    machine: Machine,
    workloads: Vec<Workload>,
    notes: Vec<String>,
) -> Result<()> {
    let report = Report {
        started: started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        machine,
        settings: Settings {
            rounds: o.rounds,
            seconds_per_round: o.measure.as_secs_f64(),
            warmup_seconds: o.warmup.as_secs_f64(),
            quick: o.quick,
            runs: 1,
        },
        workloads,
        notes,
    };
    let dir = write_outputs(&report, "latest")?;
    println!("{}", markdown_table(&report.workloads));
    eprintln!(
        "written: {}/latest.{{json,md,png}} in {:.0} s",
        dir.display(),
        (Utc::now() - started).num_milliseconds() as f64 / 1e3
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(args: &[&str]) -> Ctx {
        let args = args.iter().map(|s| s.to_string());
        Ctx {
            o: opts::parse(args, opts::PG_DEFAULT.into(), opts::MY_DEFAULT.into())
                .unwrap()
                .unwrap(),
            people: Arc::new(vec![]),
        }
    }

    #[test]
    fn pgbench_is_set_up_for_any_postgres_point_select() {
        for only in [
            "point_select_c20",
            "point_select_c1",
            "point_select",
            "c20,insert",
        ] {
            assert!(wants_pg_point_select(&ctx(&["--only", only])), "{only}");
        }
        assert!(wants_pg_point_select(&ctx(&[])));
        for only in [
            "mysql_point_select",
            "sqlite_point_select",
            "insert",
            "entity_save",
        ] {
            assert!(!wants_pg_point_select(&ctx(&["--only", only])), "{only}");
        }
    }
}
