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

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use dal::params;
use dal_bench::chart::{ratio_chart, Bar};
use dal_bench::machine::cpu_time;
use dal_bench::report::{
    combine, markdown_report, markdown_table, Alternative, Direction, Report, Series, Settings,
    Target, Workload,
};
use dal_bench::stats::{ideal_fifo_quantile, mean, median, percentile, Rng};
use dal_bench::{results_dir, BoxError, Result};
use serde_json::json;
use sqlx::Connection as _;

const PG_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/dal_test";
const MY_DEFAULT: &str = "mysql://root@127.0.0.1:3306/dal_test";
const PGBENCH_DB: &str = "dal_bench_pgbench";

/// Rows of the point-SELECT table (like `pgbench -i -s 1`'s accounts).
const KV_ROWS: i64 = 100_000;
/// Entities read by entity get / find.
const PEOPLE: usize = 1_000;
/// Rows per bulk save.
const BULK_ROWS: usize = 10_000;
/// Rows per statement for the raw multi-row INSERT and SeaORM's insert_many (PostgreSQL allows
/// 65 535 parameters; 1 000 rows × 9 columns fits).
const BULK_CHUNK: usize = 1_000;
/// dal's own chunking (dal/src/entity/ops.rs `CHUNK_ROWS` = 1 000, `CHUNK_PARAMS` = 30 000):
/// upserts of min(1 000, 30 000 / 9 columns) = 1 000 rows, history appends of 2 000 ids.
const DAL_UPSERT_CHUNK: usize = 1_000;
const DAL_HISTORY_CHUNK: usize = 2_000;
/// Statements dal's save runs on PostgreSQL for `n` new entities of the bench's shape:
/// BEGIN, the upserts (RETURNING the stored rows), the history appends, COMMIT.
fn dal_plan_statements(n: usize) -> u64 {
    (2 + n.div_ceil(DAL_UPSERT_CHUNK) + n.div_ceil(DAL_HISTORY_CHUNK)) as u64
}

// Contender names.
const DAL: &str = "dal";
const SQLX_DEFAULT: &str = "sqlx PgPool (default options)";
const SQLX: &str = "sqlx PgPool (test_before_acquire=false)";
const DEADPOOL: &str = "tokio-postgres + deadpool (prepare_cached)";
const SEAORM: &str = "SeaORM find_by_id";
const SEAORM_FIND: &str = "SeaORM find().filter().limit(10)";
const PGBENCH: &str = "pgbench -S -M prepared";
const SQLX_SAME: &str = "raw sqlx, same statements";
const SQLX_CTE: &str = "not dal's plan: raw sqlx, one CTE statement (upsert+history+RETURNING)";
const SQLX_MULTIROW: &str = "raw sqlx multi-row INSERT (1 000 rows/stmt)";
const SQLX_SAME_BULK: &str = "raw sqlx, dal's statements (upsert RETURNING + history)";
const SEAORM_MANY: &str = "SeaORM insert_many (1 000 rows/stmt)";
const IDEAL: &str = "ideal FIFO queueing time";
const ONE_MICRO: &str = "target: 1 µs";
const SQLX_MY: &str = "sqlx MySqlPool (test_before_acquire=false)";
const SQLX_LITE: &str = "sqlx SqlitePool (test_before_acquire=false)";

const HELP: &str = "cargo run --release -p dal-bench --bin bench -- [options]
  --quick               short rounds (about a minute in all)
  --rounds N            rounds per workload (default 5)
  --seconds S           measured seconds per contender and round (default 1, quick 0.2)
  --warmup S            warm-up seconds before each measurement (default 0.25, quick 0.06)
  --only ID[,ID..]      workloads whose id contains one of these (point_select_c20, point_select_c1,
                        insert, entity_save, entity_get, find_limit10, bulk_save, checkout,
                        acquire_wait, mysql_point_select, mysql_entity_get, sqlite_point_select,
                        sqlite_entity_get)
  --contender NAME[,..] contenders whose name contains one of these; =NAME for an exact name
                        (e.g. --contender =dal to profile dal alone)
  --no-mysql, --no-sqlite, --no-pgbench
  --combine A.json B.json ..  medians of several runs -> bench-results/combined.{json,md,png}
  --explain-bulk        time each statement kind of dal's bulk save, done by raw sqlx (server cost)
Environment: DAL_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/dal_test),
             DAL_BENCH_MYSQL_URL (default mysql://root@127.0.0.1:3306/dal_test)";

type BoxFut<T> = Pin<Box<dyn Future<Output = Result<T>> + Send>>;

/// One contender's figure in one round, and the client CPU per operation when measured.
#[derive(Debug, Clone, Copy)]
struct Sample {
    value: f64,
    cpu_us: Option<f64>,
}

impl Sample {
    fn plain(value: f64) -> Self {
        Sample {
            value,
            cpu_us: None,
        }
    }
}

/// Per contender: (figures, CPU µs/op), one per round.
type Samples = Vec<(Vec<f64>, Vec<f64>)>;

// ---- options ----------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Opts {
    quick: bool,
    rounds: usize,
    warmup: Duration,
    measure: Duration,
    only: Vec<String>,
    contenders: Vec<String>,
    mysql: bool,
    sqlite: bool,
    pgbench: bool,
    combine: Vec<PathBuf>,
    explain_bulk: bool,
    pg_url: String,
    my_url: String,
}

fn parse_opts() -> Result<Opts> {
    let mut o = Opts {
        quick: false,
        rounds: 5,
        warmup: Duration::from_millis(250),
        measure: Duration::from_millis(1000),
        only: vec![],
        contenders: vec![],
        mysql: true,
        sqlite: true,
        pgbench: true,
        combine: vec![],
        explain_bulk: false,
        pg_url: std::env::var("DAL_BENCH_POSTGRES_URL").unwrap_or_else(|_| PG_DEFAULT.into()),
        my_url: std::env::var("DAL_BENCH_MYSQL_URL").unwrap_or_else(|_| MY_DEFAULT.into()),
    };
    let (mut rounds, mut seconds, mut warmup) = (None, None, None);
    let mut args = std::env::args().skip(1);
    let list = |s: String| {
        s.split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect::<Vec<_>>()
    };
    while let Some(a) = args.next() {
        let mut val = |name: &str| {
            args.next()
                .ok_or_else(|| BoxError::from(format!("{name} needs a value")))
        };
        match a.as_str() {
            "--quick" => o.quick = true,
            "--rounds" => rounds = Some(val("--rounds")?.parse::<usize>()?),
            "--seconds" => seconds = Some(val("--seconds")?.parse::<f64>()?),
            "--warmup" => warmup = Some(val("--warmup")?.parse::<f64>()?),
            "--only" => o.only = list(val("--only")?),
            "--contender" => o.contenders = list(val("--contender")?),
            "--no-mysql" => o.mysql = false,
            "--no-sqlite" => o.sqlite = false,
            "--no-pgbench" => o.pgbench = false,
            "--explain-bulk" => o.explain_bulk = true,
            "--combine" => {
                o.combine.extend(args.by_ref().map(PathBuf::from));
            }
            "-h" | "--help" => {
                println!("{HELP}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other:?} (see --help)").into()),
        }
    }
    if o.quick {
        o.measure = Duration::from_millis(200);
        o.warmup = Duration::from_millis(60);
    }
    if let Some(r) = rounds {
        o.rounds = r.max(1);
    }
    if let Some(s) = seconds {
        o.measure = Duration::from_secs_f64(s);
    }
    if let Some(w) = warmup {
        o.warmup = Duration::from_secs_f64(w);
    }
    Ok(o)
}

struct Ctx {
    o: Opts,
    people: Arc<Vec<String>>,
}

impl Ctx {
    fn wants(&self, id: &str) -> bool {
        self.o.only.is_empty() || self.o.only.iter().any(|o| id.contains(o.as_str()))
    }
    fn wants_contender(&self, name: &str) -> bool {
        self.o.contenders.is_empty()
            || self.o.contenders.iter().any(|c| match c.strip_prefix('=') {
                Some(exact) => name == exact,
                None => name.contains(c.as_str()),
            })
    }
}

// ---- harness ----------------------------------------------------------------------------

/// Runs `op` in `clients` tasks, each calling it back to back, and returns completed ops per
/// second over the measured window (after the warm-up), with this process's CPU time per op.
async fn closed_loop<F, Fut>(clients: usize, o: &Opts, op: F) -> Result<Sample>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let op = Arc::new(op);
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let (op, count, stop) = (op.clone(), count.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(i as u64 + 1);
            while !stop.load(Ordering::Relaxed) {
                op(rng.next_u64()).await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), BoxError>(())
        }));
    }
    tokio::time::sleep(o.warmup).await;
    let (c0, t0, cpu0) = (count.load(Ordering::Relaxed), Instant::now(), cpu_time());
    tokio::time::sleep(o.measure).await;
    let (c1, elapsed, cpu1) = (count.load(Ordering::Relaxed), t0.elapsed(), cpu_time());
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    let ops = (c1 - c0).max(1) as f64;
    Ok(Sample {
        value: (c1 - c0) as f64 / elapsed.as_secs_f64(),
        cpu_us: Some((cpu1 - cpu0).as_secs_f64() * 1e6 / ops),
    })
}

/// Runs each contender once per round, rotating the order every round; returns the samples per
/// contender (in the order given).
async fn alternate(
    ctx: &Ctx,
    label: &str,
    contenders: &[&str],
    unit: &str,
    mut run: impl FnMut(&str) -> BoxFut<Sample>,
) -> Result<Samples> {
    let n = contenders.len();
    let mut samples: Samples = vec![(Vec::new(), Vec::new()); n];
    if n == 0 {
        return Ok(samples);
    }
    for r in 0..ctx.o.rounds {
        let mut line = format!("  {label} round {}/{}:", r + 1, ctx.o.rounds);
        for j in 0..n {
            let i = (j + r) % n;
            let v = run(contenders[i])
                .await
                .map_err(|e| format!("{label}, {}: {e}", contenders[i]))?;
            line.push_str(&format!(
                " {} {} {unit};",
                contenders[i],
                dal_bench::report::fmt_num(v.value)
            ));
            samples[i].0.push(v.value);
            if let Some(c) = v.cpu_us {
                samples[i].1.push(c);
            }
        }
        eprintln!("{line}");
    }
    Ok(samples)
}

/// Builds a workload from the alternation's samples.
#[allow(clippy::too_many_arguments)]
fn workload(
    id: &str,
    title: &str,
    backend: &str,
    clients: usize,
    unit: &str,
    direction: Direction,
    run: &[&str],
    samples: Samples,
    alternatives: &[(&str, Option<Target>)],
) -> Workload {
    let get = |name: &str| -> Series {
        match run.iter().position(|c| *c == name) {
            Some(i) => Series::new(name, samples[i].0.clone()).with_cpu(samples[i].1.clone()),
            None => Series::missing(name, "not run"),
        }
    };
    Workload {
        id: id.into(),
        title: title.into(),
        backend: backend.into(),
        clients,
        unit: unit.into(),
        direction,
        dal: get(DAL),
        alternatives: alternatives
            .iter()
            .map(|(name, target)| Alternative {
                series: get(name),
                target: *target,
            })
            .collect(),
    }
}

fn selected<'a>(ctx: &Ctx, names: &[&'a str]) -> Vec<&'a str> {
    names
        .iter()
        .copied()
        .filter(|n| ctx.wants_contender(n))
        .collect()
}

// ---- pools ------------------------------------------------------------------------------

async fn dal_db(url: &str, size: usize) -> Result<dal::Database> {
    let config = dal::DatabaseConfig::from_url(url)?
        .pool_size(size, size)
        .alias("dal-bench");
    let backend = config.backend().ok_or("URL names no backend")?;
    let db = dal::Database::new(backend, config);
    // First use opens the pool's `min` connections.
    drop(db.async_connection().await?);
    Ok(db)
}

async fn close_dal(db: dal::Database) -> Result<()> {
    db.close(Duration::from_secs(10)).await?;
    Ok(())
}

async fn sqlx_pg(url: &str, size: usize, test_before_acquire: bool) -> Result<sqlx::PgPool> {
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(size as u32)
        .min_connections(size as u32)
        .test_before_acquire(test_before_acquire)
        .connect(url)
        .await?)
}

fn deadpool(url: &str, size: usize) -> Result<deadpool_postgres::Pool> {
    let config: tokio_postgres::Config = url.parse()?;
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    Ok(deadpool_postgres::Pool::builder(manager)
        .max_size(size)
        .build()?)
}

async fn seaorm(url: &str, size: usize) -> Result<sea_orm::DatabaseConnection> {
    let mut opt = sea_orm::ConnectOptions::new(url.to_owned());
    opt.max_connections(size as u32)
        .min_connections(size as u32)
        .sqlx_logging(false);
    Ok(sea_orm::Database::connect(opt).await?)
}

async fn sqlx_my(url: &str, size: usize) -> Result<sqlx::MySqlPool> {
    Ok(sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(size as u32)
        .min_connections(size as u32)
        .test_before_acquire(false)
        .connect(url)
        .await?)
}

fn sqlite_options(path: &Path) -> sqlx::sqlite::SqliteConnectOptions {
    // The same settings as dal's SQLite driver (dal/src/backend/sqlite.rs).
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        .statement_cache_capacity(512)
}

async fn sqlx_lite(path: &Path, size: usize) -> Result<sqlx::SqlitePool> {
    Ok(sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(size as u32)
        .min_connections(size as u32)
        .test_before_acquire(false)
        .connect_with(sqlite_options(path))
        .await?)
}

// ---- SeaORM entities --------------------------------------------------------------------

mod kv {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "dal_bench_kv")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i64,
        pub balance: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The columns of a dal entity table with the bench's four fields.
macro_rules! entity_table {
    ($module:ident, $table:literal) => {
        mod $module {
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                #[sea_orm(primary_key, auto_increment = false)]
                pub id: String,
                pub created_at: DateTimeWithTimeZone,
                pub created_by: Option<String>,
                pub updated_at: DateTimeWithTimeZone,
                pub updated_by: Option<String>,
                pub deleted_at: Option<DateTimeWithTimeZone>,
                pub active: Option<bool>,
                pub age: Option<i64>,
                pub email: Option<String>,
                pub name: Option<String>,
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}
entity_table!(people, "dal_bench_people");
entity_table!(bulk_raw, "dal_bench_bulk_raw");

// ---- SQL --------------------------------------------------------------------------------

const PS_DAL: &str = "SELECT [balance] FROM [dal_bench_kv] WHERE [id] = ?";
const PS_PG: &str = "SELECT balance FROM dal_bench_kv WHERE id = $1";
const PS_MY: &str = "SELECT balance FROM dal_bench_kv WHERE id = ?";
const INS_DAL: &str = "INSERT INTO [dal_bench_ins] ([k], [v]) VALUES (?, ?)";
const INS_PG: &str = "INSERT INTO dal_bench_ins (k, v) VALUES ($1, $2)";

/// The columns dal stores for the bench's entities, in dal's order (system fields, then user
/// fields sorted by name).
const COLS: &str = "\"id\", \"created_at\", \"created_by\", \"updated_at\", \"updated_by\", \"deleted_at\", \"active\", \"age\", \"email\", \"name\"";
const COLS_MY: &str = "`id`, `created_at`, `created_by`, `updated_at`, `updated_by`, `deleted_at`, `active`, `age`, `email`, `name`";

type PgEntityRow = (
    String,
    DateTime<Utc>,
    Option<String>,
    DateTime<Utc>,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<bool>,
    Option<i64>,
    Option<String>,
    Option<String>,
);
type MyEntityRow = (
    String,
    chrono::NaiveDateTime,
    Option<String>,
    chrono::NaiveDateTime,
    Option<String>,
    Option<chrono::NaiveDateTime>,
    Option<bool>,
    Option<i64>,
    Option<String>,
    Option<String>,
);
type LiteEntityRow = (
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<bool>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn placeholders_pg(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// dal's upsert for `rows` rows of the bench's entity (dal/src/entity/ops.rs `upsert_sql`),
/// as translated for PostgreSQL; with `returning`, it returns the stored rows as dal's does.
fn upsert_sql(table: &str, rows: usize, returning: bool) -> String {
    let cols = "\"id\", \"created_at\", \"created_by\", \"updated_at\", \"updated_by\", \"active\", \"age\", \"email\", \"name\"";
    let values = (0..rows)
        .map(|r| format!("({})", placeholders_pg(r * 9 + 1, 9)))
        .collect::<Vec<_>>()
        .join(", ");
    let set = ["active", "age", "email", "name", "updated_at", "updated_by"]
        .iter()
        .map(|c| format!("\"{c}\" = excluded.\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let ret = if returning {
        format!(" RETURNING {COLS}")
    } else {
        String::new()
    };
    format!("INSERT INTO \"{table}\" ({cols}) VALUES {values} ON CONFLICT (\"id\") DO UPDATE SET {set}{ret}")
}

/// dal's history append (ops.rs `append_history`) for `n` ids.
fn history_sql(table: &str, n: usize) -> String {
    let src = COLS
        .split(", ")
        .map(|c| format!("\"src\".{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO \"{table}_history\" ({COLS}, \"version\", \"history_timestamp\", \"history_user_id\", \"history_comment\") \
         SELECT {src}, COALESCE((SELECT MAX(\"prev\".\"version\") FROM \"{table}_history\" \"prev\" WHERE \"prev\".\"id\" = \"src\".\"id\"), 0) + 1, $1, $2, $3 \
         FROM \"{table}\" \"src\" WHERE \"src\".\"id\" IN ({})",
        placeholders_pg(4, n)
    )
}

/// Not what dal runs: its upsert and history append as ONE statement (a PostgreSQL
/// data-modifying CTE: the upsert RETURNING the stored rows feeds the history INSERT and the
/// final SELECT). Parameters: 9 per row, then history timestamp, user, comment.
fn upsert_history_cte_sql(table: &str, rows: usize) -> String {
    let upsert = upsert_sql(table, rows, false);
    let n = rows * 9;
    format!(
        "WITH \"up\" AS ({upsert} RETURNING {COLS}), \
         \"h\" AS (INSERT INTO \"{table}_history\" ({COLS}, \"version\", \"history_timestamp\", \"history_user_id\", \"history_comment\") \
         SELECT \"up\".*, COALESCE((SELECT MAX(\"prev\".\"version\") FROM \"{table}_history\" \"prev\" WHERE \"prev\".\"id\" = \"up\".\"id\"), 0) + 1, ${}, ${}, ${} FROM \"up\") \
         SELECT * FROM \"up\"",
        n + 1,
        n + 2,
        n + 3
    )
}

/// A plain multi-row INSERT of `rows` rows (what a raw sqlx user writes for a bulk load).
fn insert_rows_sql(table: &str, rows: usize) -> String {
    let cols = "\"id\", \"created_at\", \"created_by\", \"updated_at\", \"updated_by\", \"active\", \"age\", \"email\", \"name\"";
    let values = (0..rows)
        .map(|r| format!("({})", placeholders_pg(r * 9 + 1, 9)))
        .collect::<Vec<_>>()
        .join(", ");
    format!("INSERT INTO \"{table}\" ({cols}) VALUES {values}")
}

/// An entity of the bench: the same four fields everywhere.
#[derive(Clone)]
struct Person {
    id: String,
    name: String,
    email: String,
    age: i64,
    active: bool,
}

impl Person {
    fn new(n: u64) -> Self {
        Person {
            id: uuid::Uuid::new_v4().to_string(),
            name: format!("user {n}"),
            email: format!("user{n}@example.com"),
            age: 18 + (n % 63) as i64,
            active: !n.is_multiple_of(3),
        }
    }
    fn json(&self) -> serde_json::Value {
        json!({"name": self.name, "email": self.email, "age": self.age, "active": self.active})
    }
}

fn now_micros() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

// ---- setup ------------------------------------------------------------------------------

async fn pg_setup(ctx_url: &str) -> Result<(String, Vec<String>)> {
    let mut c = sqlx::PgConnection::connect(ctx_url).await?;
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&mut c)
        .await?;
    let script = format!(
        "DROP TABLE IF EXISTS dal_bench_kv; \
         CREATE TABLE dal_bench_kv (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL); \
         INSERT INTO dal_bench_kv SELECT g, g % 1000 FROM generate_series(1, {KV_ROWS}) g; \
         ANALYZE dal_bench_kv; \
         DROP TABLE IF EXISTS dal_bench_ins; \
         CREATE TABLE dal_bench_ins (id BIGSERIAL PRIMARY KEY, k BIGINT NOT NULL, v TEXT NOT NULL);"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut c)
        .await?;
    for e in ENTITIES {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {e}; DROP TABLE IF EXISTS {e}_history; DROP TABLE IF EXISTS {e}_meta;"
        )))
        .execute(&mut c)
        .await?;
    }
    c.close().await?;
    let people = entity_setup(ctx_url).await?;
    Ok((version, people))
}

/// Drops the bench's PostgreSQL tables (they are recreated by the next run's setup).
async fn pg_cleanup(url: &str) -> Result<()> {
    let mut c = sqlx::PgConnection::connect(url).await?;
    let mut script =
        String::from("DROP TABLE IF EXISTS dal_bench_kv; DROP TABLE IF EXISTS dal_bench_ins;");
    for e in ENTITIES {
        script.push_str(&format!(
            " DROP TABLE IF EXISTS {e}; DROP TABLE IF EXISTS {e}_history; DROP TABLE IF EXISTS {e}_meta;"
        ));
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut c)
        .await?;
    c.close().await?;
    Ok(())
}

/// Entities of the bench (each with `_history` and `_meta` tables made by dal).
const ENTITIES: [&str; 5] = [
    "dal_bench_people",
    "dal_bench_saves",
    "dal_bench_saves_raw",
    "dal_bench_bulk",
    "dal_bench_bulk_raw",
];

/// Creates the entity tables through dal (so raw contenders write to tables of exactly dal's
/// shape) and saves the entities read by entity get and find. Returns their ids.
async fn entity_setup(url: &str) -> Result<Vec<String>> {
    let config = dal::DatabaseConfig::from_url(url)?
        .pool_size(1, 2)
        .alias("dal-bench-setup");
    let backend = config.backend().ok_or("URL names no backend")?;
    let db = dal::Database::new(backend, config);
    let mut conn = db.async_connection().await?;
    for e in ENTITIES {
        if e != "dal_bench_people" {
            conn.save_entity(e, Person::new(0).json()).await?;
        }
    }
    let people: Vec<serde_json::Value> =
        (0..PEOPLE as u64).map(|n| Person::new(n).json()).collect();
    let saved = conn.save_entities("dal_bench_people", people).await?;
    // The raw "same statements" contenders mirror dal's plan by hand: check that dal still
    // runs that many statements for a single save and for a batch.
    let mut mismatch = Vec::new();
    for n in [1usize, 2 * DAL_HISTORY_CHUNK] {
        let before = db.pool_metrics().map_or(0, |m| m.queries);
        let batch: Vec<serde_json::Value> = (0..n as u64).map(|i| Person::new(i).json()).collect();
        conn.save_entities("dal_bench_saves", batch).await?;
        let ran = db.pool_metrics().map_or(0, |m| m.queries) - before;
        if ran != dal_plan_statements(n) {
            mismatch.push(format!(
                "saving {n} entities ran {ran} statements, the raw mirror runs {}",
                dal_plan_statements(n)
            ));
        }
    }
    if !mismatch.is_empty() {
        let msg = format!(
            "dal's entity save plan differs from the raw 'same statements' mirror in this bench ({}): update dal-bench",
            mismatch.join("; ")
        );
        eprintln!("WARNING: {msg}");
        PLAN_WARNING.get_or_init(|| msg);
    }
    drop(conn);
    db.close(Duration::from_secs(10)).await?;
    Ok(saved
        .iter()
        .filter_map(|m| m.get("id").and_then(|v| v.as_str()).map(str::to_owned))
        .collect())
}

/// Set when dal's save plan no longer matches the raw mirror (reported under the table).
static PLAN_WARNING: std::sync::OnceLock<String> = std::sync::OnceLock::new();

async fn my_setup(url: &str) -> Result<(String, Vec<String>)> {
    let mut c = sqlx::MySqlConnection::connect(url).await?;
    let version: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(&mut c)
        .await?;
    for stmt in [
        "DROP TABLE IF EXISTS dal_bench_kv".to_owned(),
        "CREATE TABLE dal_bench_kv (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB"
            .to_owned(),
        "DROP TABLE IF EXISTS dal_bench_people, dal_bench_people_history, dal_bench_people_meta"
            .to_owned(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(stmt))
            .execute(&mut c)
            .await?;
    }
    // 100 000 rows in chunks of 1 000.
    for chunk in 0..(KV_ROWS / 1000) {
        let values = (1..=1000)
            .map(|i| {
                let id = chunk * 1000 + i;
                format!("({id}, {})", id % 1000)
            })
            .collect::<Vec<_>>()
            .join(", ");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO dal_bench_kv VALUES {values}"
        )))
        .execute(&mut c)
        .await?;
    }
    c.close().await?;
    let ids = people_only_setup(url).await?;
    Ok((version, ids))
}

async fn my_cleanup(url: &str) -> Result<()> {
    let mut c = sqlx::MySqlConnection::connect(url).await?;
    sqlx::query("DROP TABLE IF EXISTS dal_bench_kv, dal_bench_people, dal_bench_people_history, dal_bench_people_meta")
        .execute(&mut c)
        .await?;
    c.close().await?;
    Ok(())
}

async fn lite_setup(path: &Path) -> Result<(String, Vec<String>)> {
    let _ = std::fs::remove_file(path);
    let mut c = sqlx::SqliteConnection::connect_with(&sqlite_options(path)).await?;
    let version: String = sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(&mut c)
        .await?;
    let script = format!(
        "CREATE TABLE dal_bench_kv (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL); \
         WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {KV_ROWS}) \
         INSERT INTO dal_bench_kv SELECT x, x % 1000 FROM g;"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut c)
        .await?;
    c.close().await?;
    let ids = people_only_setup(&format!("sqlite://{}", path.display())).await?;
    Ok((version, ids))
}

async fn people_only_setup(url: &str) -> Result<Vec<String>> {
    let config = dal::DatabaseConfig::from_url(url)?
        .pool_size(1, 2)
        .alias("dal-bench-setup");
    let backend = config.backend().ok_or("URL names no backend")?;
    let db = dal::Database::new(backend, config);
    let mut conn = db.async_connection().await?;
    let people: Vec<serde_json::Value> =
        (0..PEOPLE as u64).map(|n| Person::new(n).json()).collect();
    let saved = conn.save_entities("dal_bench_people", people).await?;
    drop(conn);
    db.close(Duration::from_secs(10)).await?;
    Ok(saved
        .iter()
        .filter_map(|m| m.get("id").and_then(|v| v.as_str()).map(str::to_owned))
        .collect())
}

// ---- pgbench ----------------------------------------------------------------------------

fn pgbench_available() -> bool {
    std::process::Command::new("pgbench")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn with_database(url: &str, db: &str) -> Result<String> {
    let mut u = url::Url::parse(url)?;
    u.set_path(&format!("/{db}"));
    u.set_query(None);
    Ok(u.to_string())
}

async fn pgbench_setup(pg_url: &str) -> Result<String> {
    let mut c = sqlx::PgConnection::connect(pg_url).await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(PGBENCH_DB)
        .fetch_optional(&mut c)
        .await?;
    if exists.is_none() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {PGBENCH_DB}")))
            .execute(&mut c)
            .await?;
    }
    c.close().await?;
    let url = with_database(pg_url, PGBENCH_DB)?;
    let u = url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("pgbench")
            .args(["-i", "-q", "-s", "1", &u])
            .output()
    })
    .await??;
    if !out.status.success() {
        return Err(format!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(url)
}

/// `tps = 43210.5 (without initial connection time)` → 43210.5
fn parse_pgbench_tps(out: &str) -> Option<f64> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("tps = "))
        .find_map(|rest| rest.split_whitespace().next()?.parse().ok())
}

async fn pgbench_run(url: &str, clients: usize, seconds: u64) -> Result<f64> {
    let (u, n, t) = (url.to_owned(), clients.to_string(), seconds.to_string());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("pgbench")
            .args([
                "-S", "-M", "prepared", "-c", &n, "-j", &n, "-T", &t, "-n", &u,
            ])
            .output()
    })
    .await??;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_pgbench_tps(&text).ok_or_else(|| {
        format!(
            "pgbench printed no tps: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into()
    })
}

// ---- workloads --------------------------------------------------------------------------

async fn point_select_pg(ctx: &Ctx, clients: usize, pgbench: Option<&str>) -> Result<Workload> {
    let names = selected(ctx, &[DAL, SQLX_DEFAULT, SQLX, DEADPOOL, SEAORM]);
    let url = ctx.o.pg_url.clone();
    let o = ctx.o.clone();
    let key = |r: u64| (r % KV_ROWS as u64) as i64 + 1;
    let samples = alternate(
        ctx,
        &format!("point_select c={clients}"),
        &names,
        "q/s",
        |name| {
            let (url, o, name) = (url.clone(), o.clone(), name.to_owned());
            Box::pin(async move {
                match name.as_str() {
                    DAL => {
                        let db = dal_db(&url, clients).await?;
                        let d = db.clone();
                        let v = closed_loop(clients, &o, move |r| {
                            let db = d.clone();
                            async move {
                                let mut c = db.async_connection().await?;
                                let rows = c.execute(PS_DAL, params![key(r)]).await?;
                                let _b: i64 = rows[0].try_get(0)?;
                                Ok(())
                            }
                        })
                        .await?;
                        close_dal(db).await?;
                        Ok(v)
                    }
                    SQLX_DEFAULT | SQLX => {
                        let pool = sqlx_pg(&url, clients, name == SQLX_DEFAULT).await?;
                        let p = pool.clone();
                        let v = closed_loop(clients, &o, move |r| {
                            let pool = p.clone();
                            async move {
                                let _b: i64 = sqlx::query_scalar(PS_PG)
                                    .bind(key(r))
                                    .fetch_one(&pool)
                                    .await?;
                                Ok(())
                            }
                        })
                        .await?;
                        pool.close().await;
                        Ok(v)
                    }
                    DEADPOOL => {
                        let pool = deadpool(&url, clients)?;
                        let p = pool.clone();
                        let v = closed_loop(clients, &o, move |r| {
                            let pool = p.clone();
                            async move {
                                let c = pool.get().await?;
                                let st = c.prepare_cached(PS_PG).await?;
                                let row = c.query_one(&st, &[&key(r)]).await?;
                                let _b: i64 = row.get(0);
                                Ok(())
                            }
                        })
                        .await?;
                        pool.close();
                        Ok(v)
                    }
                    SEAORM => {
                        use sea_orm::EntityTrait;
                        let db = seaorm(&url, clients).await?;
                        let d = db.clone();
                        let v = closed_loop(clients, &o, move |r| {
                            let db = d.clone();
                            async move {
                                let m = kv::Entity::find_by_id(key(r)).one(&db).await?;
                                m.ok_or("row not found")?;
                                Ok(())
                            }
                        })
                        .await?;
                        db.close().await?;
                        Ok(v)
                    }
                    other => Err(format!("no such contender {other}").into()),
                }
            })
        },
    )
    .await?;
    let mut w = workload(
        &format!("point_select_c{clients}"),
        "Point SELECT by PK",
        "PostgreSQL",
        clients,
        "q/s",
        Direction::HigherIsBetter,
        &names,
        samples,
        &[
            (SQLX, Some(Target::at_least(1.0))),
            (SQLX_DEFAULT, Some(Target::at_least(1.2))),
            (DEADPOOL, None),
            (SEAORM, None),
        ],
    );
    let pgb = match pgbench {
        Some(url) if ctx.wants_contender(PGBENCH) => {
            let secs = if ctx.o.quick { 2 } else { 5 };
            let tps = pgbench_run(url, clients, secs).await?;
            eprintln!("  pgbench -S -M prepared -c {clients} -j {clients} -T {secs}: {tps:.0} tps");
            Series::new(PGBENCH, vec![tps]).with_note(format!("one {secs} s run, separate process"))
        }
        Some(_) => Series::missing(PGBENCH, "not run"),
        None => Series::missing(PGBENCH, "pgbench not on PATH"),
    };
    w.alternatives.push(Alternative {
        series: pgb,
        target: Some(Target::at_least(0.7)),
    });
    Ok(w)
}

async fn insert_pg(ctx: &Ctx) -> Result<Workload> {
    let clients = 20;
    let names = selected(ctx, &[DAL, SQLX, DEADPOOL]);
    let url = ctx.o.pg_url.clone();
    let o = ctx.o.clone();
    let samples = alternate(ctx, "insert c=20", &names, "q/s", |name| {
        let (url, o, name) = (url.clone(), o.clone(), name.to_owned());
        Box::pin(async move {
            match name.as_str() {
                DAL => {
                    let db = dal_db(&url, clients).await?;
                    let d = db.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let db = d.clone();
                        async move {
                            let mut c = db.async_connection().await?;
                            c.execute(INS_DAL, params![r as i64 >> 1, "value"]).await?;
                            Ok(())
                        }
                    })
                    .await?;
                    close_dal(db).await?;
                    Ok(v)
                }
                SQLX => {
                    let pool = sqlx_pg(&url, clients, false).await?;
                    let p = pool.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let pool = p.clone();
                        async move {
                            sqlx::query(INS_PG)
                                .bind(r as i64 >> 1)
                                .bind("value")
                                .execute(&pool)
                                .await?;
                            Ok(())
                        }
                    })
                    .await?;
                    pool.close().await;
                    Ok(v)
                }
                DEADPOOL => {
                    let pool = deadpool(&url, clients)?;
                    let p = pool.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let pool = p.clone();
                        async move {
                            let c = pool.get().await?;
                            let st = c.prepare_cached(INS_PG).await?;
                            c.execute(&st, &[&(r as i64 >> 1), &"value"]).await?;
                            Ok(())
                        }
                    })
                    .await?;
                    pool.close();
                    Ok(v)
                }
                other => Err(format!("no such contender {other}").into()),
            }
        })
    })
    .await?;
    Ok(workload(
        "insert",
        "Single-row INSERT",
        "PostgreSQL",
        clients,
        "q/s",
        Direction::HigherIsBetter,
        &names,
        samples,
        &[(SQLX, None), (DEADPOOL, None)],
    ))
}

async fn entity_save_pg(ctx: &Ctx) -> Result<Workload> {
    let clients = 20;
    let names = selected(ctx, &[DAL, SQLX_SAME, SQLX_CTE]);
    let url = ctx.o.pg_url.clone();
    let o = ctx.o.clone();
    let upsert: &'static str = leak(upsert_sql("dal_bench_saves_raw", 1, true));
    let history: &'static str = leak(history_sql("dal_bench_saves_raw", 1));
    let cte: &'static str = leak(upsert_history_cte_sql("dal_bench_saves_raw", 1));
    let samples = alternate(ctx, "entity_save c=20", &names, "saves/s", |name| {
        let (url, o, name) = (url.clone(), o.clone(), name.to_owned());
        Box::pin(async move {
            match name.as_str() {
                DAL => {
                    let db = dal_db(&url, clients).await?;
                    let d = db.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let db = d.clone();
                        async move {
                            let p = Person::new(r);
                            let mut c = db.async_connection().await?;
                            let saved = c.save_entity("dal_bench_saves", p.json()).await?;
                            debug_assert!(saved.contains_key("id"));
                            Ok(())
                        }
                    })
                    .await?;
                    close_dal(db).await?;
                    Ok(v)
                }
                SQLX_SAME => {
                    let pool = sqlx_pg(&url, clients, false).await?;
                    let p = pool.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let pool = p.clone();
                        async move {
                            let p = Person::new(r);
                            let now = now_micros();
                            let mut tx = pool.begin().await?;
                            let _row: PgEntityRow = sqlx::query_as(upsert)
                                .bind(&p.id)
                                .bind(now)
                                .bind(None::<String>)
                                .bind(now)
                                .bind(None::<String>)
                                .bind(p.active)
                                .bind(p.age)
                                .bind(&p.email)
                                .bind(&p.name)
                                .fetch_one(&mut *tx)
                                .await?;
                            sqlx::query(history)
                                .bind(now)
                                .bind(None::<String>)
                                .bind(None::<String>)
                                .bind(&p.id)
                                .execute(&mut *tx)
                                .await?;
                            tx.commit().await?;
                            Ok(())
                        }
                    })
                    .await?;
                    pool.close().await;
                    Ok(v)
                }
                SQLX_CTE => {
                    let pool = sqlx_pg(&url, clients, false).await?;
                    let p = pool.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let pool = p.clone();
                        async move {
                            let p = Person::new(r);
                            let now = now_micros();
                            let _row: PgEntityRow = sqlx::query_as(cte)
                                .bind(&p.id)
                                .bind(now)
                                .bind(None::<String>)
                                .bind(now)
                                .bind(None::<String>)
                                .bind(p.active)
                                .bind(p.age)
                                .bind(&p.email)
                                .bind(&p.name)
                                .bind(now)
                                .bind(None::<String>)
                                .bind(None::<String>)
                                .fetch_one(&pool)
                                .await?;
                            Ok(())
                        }
                    })
                    .await?;
                    pool.close().await;
                    Ok(v)
                }
                other => Err(format!("no such contender {other}").into()),
            }
        })
    })
    .await?;
    Ok(workload(
        "entity_save",
        "Entity save with history (new entity)",
        "PostgreSQL",
        clients,
        "saves/s",
        Direction::HigherIsBetter,
        &names,
        samples,
        &[(SQLX_SAME, Some(Target::at_least(0.8))), (SQLX_CTE, None)],
    ))
}

async fn entity_get_pg(ctx: &Ctx) -> Result<Workload> {
    let clients = 20;
    let names = selected(ctx, &[DAL, SQLX, SEAORM]);
    let url = ctx.o.pg_url.clone();
    let o = ctx.o.clone();
    let ids = ctx.people.clone();
    let get_sql: &'static str = leak(format!(
        "SELECT {COLS} FROM \"dal_bench_people\" WHERE \"id\" = $1 AND \"deleted_at\" IS NULL"
    ));
    let samples = alternate(ctx, "entity_get c=20", &names, "q/s", |name| {
        let (url, o, name, ids) = (url.clone(), o.clone(), name.to_owned(), ids.clone());
        Box::pin(async move {
            let pick = move |r: u64| ids[(r % ids.len() as u64) as usize].clone();
            match name.as_str() {
                DAL => {
                    let db = dal_db(&url, clients).await?;
                    let d = db.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let db = d.clone();
                        let id = pick(r);
                        async move {
                            let mut c = db.async_connection().await?;
                            c.get_entity("dal_bench_people", &id)
                                .await?
                                .ok_or("entity not found")?;
                            Ok(())
                        }
                    })
                    .await?;
                    close_dal(db).await?;
                    Ok(v)
                }
                SQLX => {
                    let pool = sqlx_pg(&url, clients, false).await?;
                    let p = pool.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let pool = p.clone();
                        let id = pick(r);
                        async move {
                            let _row: PgEntityRow =
                                sqlx::query_as(get_sql).bind(&id).fetch_one(&pool).await?;
                            Ok(())
                        }
                    })
                    .await?;
                    pool.close().await;
                    Ok(v)
                }
                SEAORM => {
                    use sea_orm::EntityTrait;
                    let db = seaorm(&url, clients).await?;
                    let d = db.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let db = d.clone();
                        let id = pick(r);
                        async move {
                            people::Entity::find_by_id(id)
                                .one(&db)
                                .await?
                                .ok_or("entity not found")?;
                            Ok(())
                        }
                    })
                    .await?;
                    db.close().await?;
                    Ok(v)
                }
                other => Err(format!("no such contender {other}").into()),
            }
        })
    })
    .await?;
    Ok(workload(
        "entity_get",
        "Entity get by id",
        "PostgreSQL",
        clients,
        "q/s",
        Direction::HigherIsBetter,
        &names,
        samples,
        &[
            (SQLX, Some(Target::at_least(0.9))),
            (SEAORM, Some(Target::above(1.0))),
        ],
    ))
}

async fn find_pg(ctx: &Ctx) -> Result<Workload> {
    let clients = 20;
    let names = selected(ctx, &[DAL, SQLX, SEAORM_FIND]);
    let url = ctx.o.pg_url.clone();
    let o = ctx.o.clone();
    let find_sql: &'static str = leak(format!(
        "SELECT {COLS} FROM \"dal_bench_people\" WHERE \"deleted_at\" IS NULL AND (\"age\" >= $1) LIMIT 10"
    ));
    let age = |r: u64| 18 + (r % 50) as i64;
    let samples = alternate(ctx, "find_limit10 c=20", &names, "q/s", |name| {
        let (url, o, name) = (url.clone(), o.clone(), name.to_owned());
        Box::pin(async move {
            match name.as_str() {
                DAL => {
                    let db = dal_db(&url, clients).await?;
                    let d = db.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let db = d.clone();
                        async move {
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
                    })
                    .await?;
                    close_dal(db).await?;
                    Ok(v)
                }
                SQLX => {
                    let pool = sqlx_pg(&url, clients, false).await?;
                    let p = pool.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let pool = p.clone();
                        async move {
                            let rows: Vec<PgEntityRow> = sqlx::query_as(find_sql)
                                .bind(age(r))
                                .fetch_all(&pool)
                                .await?;
                            if rows.is_empty() {
                                return Err("nothing found".into());
                            }
                            Ok(())
                        }
                    })
                    .await?;
                    pool.close().await;
                    Ok(v)
                }
                SEAORM_FIND => {
                    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
                    let db = seaorm(&url, clients).await?;
                    let d = db.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let db = d.clone();
                        async move {
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
                    })
                    .await?;
                    db.close().await?;
                    Ok(v)
                }
                other => Err(format!("no such contender {other}").into()),
            }
        })
    })
    .await?;
    Ok(workload(
        "find_limit10",
        "Filtered find, LIMIT 10",
        "PostgreSQL",
        clients,
        "q/s",
        Direction::HigherIsBetter,
        &names,
        samples,
        &[(SQLX, None), (SEAORM_FIND, None)],
    ))
}

async fn bulk_pg(ctx: &Ctx) -> Result<Workload> {
    let names = selected(ctx, &[DAL, SQLX_MULTIROW, SQLX_SAME_BULK, SEAORM_MANY]);
    let url = ctx.o.pg_url.clone();
    let seq = Arc::new(AtomicU64::new(1_000_000));
    // Timed batches per contender and round (one batch takes a few hundred ms and varies a lot
    // with the server's state; their total is what counts).
    let reps = if ctx.o.quick { 1 } else { 3 };
    let samples = alternate(ctx, "bulk_save 10 000 rows", &names, "rows/s", |name| {
        let (url, name, seq) = (url.clone(), name.to_owned(), seq.clone());
        Box::pin(async move {
            let batch = |n: usize| {
                let base = seq.fetch_add(n as u64, Ordering::Relaxed);
                (0..n as u64)
                    .map(|i| Person::new(base + i))
                    .collect::<Vec<Person>>()
            };
            // An untimed batch of 2 000 first, so that every contender's statements are prepared.
            let warm = batch(2 * BULK_CHUNK);
            let sets: Vec<Vec<Person>> = (0..reps).map(|_| batch(BULK_ROWS)).collect();
            let task = tokio::spawn(async move {
                let (wall, cpu) = match name.as_str() {
                    DAL => {
                        let db = dal_db(&url, 1).await?;
                        let mut c = db.async_connection().await?;
                        bulk_dal(&mut c, &warm).await?;
                        let mut e = (Duration::ZERO, Duration::ZERO);
                        for people in &sets {
                            let (w, c2) = bulk_dal(&mut c, people).await?;
                            e = (e.0 + w, e.1 + c2);
                        }
                        drop(c);
                        close_dal(db).await?;
                        e
                    }
                    SQLX_MULTIROW => {
                        let pool = sqlx_pg(&url, 1, false).await?;
                        bulk_sqlx_insert(&pool, &warm).await?;
                        let mut e = (Duration::ZERO, Duration::ZERO);
                        for people in &sets {
                            let (w, c) = bulk_sqlx_insert(&pool, people).await?;
                            e = (e.0 + w, e.1 + c);
                        }
                        pool.close().await;
                        e
                    }
                    SQLX_SAME_BULK => {
                        let pool = sqlx_pg(&url, 1, false).await?;
                        bulk_sqlx_same(&pool, &warm).await?;
                        let mut e = (Duration::ZERO, Duration::ZERO);
                        for people in &sets {
                            let (w, c) = bulk_sqlx_same(&pool, people).await?;
                            e = (e.0 + w, e.1 + c);
                        }
                        pool.close().await;
                        e
                    }
                    SEAORM_MANY => {
                        let db = seaorm(&url, 1).await?;
                        bulk_seaorm(&db, &warm).await?;
                        let mut e = (Duration::ZERO, Duration::ZERO);
                        for people in &sets {
                            let (w, c) = bulk_seaorm(&db, people).await?;
                            e = (e.0 + w, e.1 + c);
                        }
                        db.close().await?;
                        e
                    }
                    other => return Err(format!("no such contender {other}").into()),
                };
                let rows = (BULK_ROWS * reps) as f64;
                Ok::<Sample, BoxError>(Sample {
                    value: rows / wall.as_secs_f64(),
                    cpu_us: Some(cpu.as_secs_f64() * 1e6 / rows),
                })
            });
            task.await?
        })
    })
    .await?;
    Ok(workload(
        "bulk_save",
        "Bulk save of 10 000 rows",
        "PostgreSQL",
        1,
        "rows/s",
        Direction::HigherIsBetter,
        &names,
        samples,
        &[
            (SQLX_MULTIROW, Some(Target::at_least(0.8))),
            (SQLX_SAME_BULK, None),
            (SEAORM_MANY, None),
        ],
    ))
}

/// dal: `save_entities` of the batch (input JSON built before the clock starts).
async fn bulk_dal(c: &mut dal::Connection, people: &[Person]) -> Result<(Duration, Duration)> {
    let input: Vec<serde_json::Value> = people.iter().map(Person::json).collect();
    let sw = Stopwatch::start();
    let saved = c.save_entities("dal_bench_bulk", input).await?;
    let e = sw.stop();
    if saved.len() != people.len() {
        return Err("bulk save returned the wrong count".into());
    }
    Ok(e)
}

/// Raw sqlx: multi-row INSERTs of 1 000 rows in one transaction.
async fn bulk_sqlx_insert(pool: &sqlx::PgPool, people: &[Person]) -> Result<(Duration, Duration)> {
    static SQL: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    let sql = *SQL.get_or_init(|| leak(insert_rows_sql("dal_bench_bulk_raw", BULK_CHUNK)));
    let sw = Stopwatch::start();
    let now = now_micros();
    let mut tx = pool.begin().await?;
    for chunk in people.chunks(BULK_CHUNK) {
        let owned;
        let sql = if chunk.len() == BULK_CHUNK {
            sql
        } else {
            owned = insert_rows_sql("dal_bench_bulk_raw", chunk.len());
            leak(owned)
        };
        let mut q = sqlx::query(sql);
        for p in chunk {
            q = q
                .bind(&p.id)
                .bind(now)
                .bind(None::<String>)
                .bind(now)
                .bind(None::<String>)
                .bind(p.active)
                .bind(p.age)
                .bind(&p.email)
                .bind(&p.name);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(sw.stop())
}

/// Raw sqlx doing dal's statements: upserts of 1 000 rows RETURNING the stored rows (decoded),
/// then history appends of 2 000 ids, in one transaction.
async fn bulk_sqlx_same(pool: &sqlx::PgPool, people: &[Person]) -> Result<(Duration, Duration)> {
    let sql_for = |n: usize| -> (&'static str, &'static str) {
        static FULL: std::sync::OnceLock<(&'static str, &'static str)> = std::sync::OnceLock::new();
        if n == DAL_UPSERT_CHUNK {
            *FULL.get_or_init(|| {
                (
                    leak(upsert_sql("dal_bench_bulk_raw", DAL_UPSERT_CHUNK, true)),
                    leak(history_sql("dal_bench_bulk_raw", DAL_HISTORY_CHUNK)),
                )
            })
        } else {
            (
                leak(upsert_sql("dal_bench_bulk_raw", n, true)),
                leak(history_sql("dal_bench_bulk_raw", n)),
            )
        }
    };
    if !people.len().is_multiple_of(DAL_HISTORY_CHUNK) {
        return Err("batch must be a multiple of 2 000 rows".into());
    }
    let (upsert, history) = sql_for(DAL_UPSERT_CHUNK);
    let sw = Stopwatch::start();
    let now = now_micros();
    let mut tx = pool.begin().await?;
    let mut back = 0;
    for chunk in people.chunks(DAL_UPSERT_CHUNK) {
        let mut q = sqlx::query_as::<_, PgEntityRow>(upsert);
        for p in chunk {
            q = q
                .bind(&p.id)
                .bind(now)
                .bind(None::<String>)
                .bind(now)
                .bind(None::<String>)
                .bind(p.active)
                .bind(p.age)
                .bind(&p.email)
                .bind(&p.name);
        }
        back += q.fetch_all(&mut *tx).await?.len();
    }
    for chunk in people.chunks(DAL_HISTORY_CHUNK) {
        let mut q = sqlx::query(history)
            .bind(now)
            .bind(None::<String>)
            .bind(None::<String>);
        for p in chunk {
            q = q.bind(&p.id);
        }
        q.execute(&mut *tx).await?;
    }
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
    db: &sea_orm::DatabaseConnection,
    people: &[Person],
) -> Result<(Duration, Duration)> {
    use sea_orm::{ActiveValue::Set, EntityTrait, TransactionTrait};
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

/// Where the time of a bulk save goes: each statement kind of dal's plan, run by raw sqlx on one
/// connection (each kind in its own transaction, commit included), against a plain multi-row
/// INSERT and against the same work as one CTE statement; then dal's own save of the same size
/// with its client CPU and the time its statements took. Medians over `rounds`.
async fn explain_bulk(url: &str, rounds: usize) -> Result<()> {
    let pool = sqlx_pg(url, 1, false).await?;
    let table = "dal_bench_bulk_raw";
    let phases = [
        "plain INSERT, 1 000 rows/stmt (the multi-row baseline)",
        "dal: upsert ON CONFLICT .. RETURNING, 1 000 rows/stmt, rows decoded",
        "dal: history INSERT .. SELECT (MAX(version) per id), 2 000 ids/stmt",
        "not dal: upsert + history as one CTE, 1 000 rows/stmt, rows decoded",
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); phases.len()];
    let mut seq = 50_000_000u64;
    let mut batch = || {
        seq += BULK_ROWS as u64;
        (0..BULK_ROWS as u64)
            .map(|i| Person::new(seq + i))
            .collect::<Vec<_>>()
    };
    let ins: &'static str = leak(insert_rows_sql(table, DAL_UPSERT_CHUNK));
    let upsert: &'static str = leak(upsert_sql(table, DAL_UPSERT_CHUNK, true));
    let history: &'static str = leak(history_sql(table, DAL_HISTORY_CHUNK));
    let cte: &'static str = leak(upsert_history_cte_sql(table, DAL_UPSERT_CHUNK));
    fn bind_rows<'q, O>(
        mut q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
        rows: &'q [Person],
        now: DateTime<Utc>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        for p in rows {
            q = q
                .bind(&p.id)
                .bind(now)
                .bind(None::<String>)
                .bind(now)
                .bind(None::<String>)
                .bind(p.active)
                .bind(p.age)
                .bind(&p.email)
                .bind(&p.name);
        }
        q
    }
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    for r in 0..rounds.max(1) {
        // Plain INSERT.
        let people = batch();
        let now = now_micros();
        let t = Instant::now();
        let mut tx = pool.begin().await?;
        for c in people.chunks(DAL_UPSERT_CHUNK) {
            let mut q = sqlx::query(ins);
            for p in c {
                q = q
                    .bind(&p.id)
                    .bind(now)
                    .bind(None::<String>)
                    .bind(now)
                    .bind(None::<String>)
                    .bind(p.active)
                    .bind(p.age)
                    .bind(&p.email)
                    .bind(&p.name);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        times[0].push(ms(t));
        // dal's upsert, then dal's history append of the same rows.
        let people = batch();
        let t = Instant::now();
        let mut tx = pool.begin().await?;
        for c in people.chunks(DAL_UPSERT_CHUNK) {
            bind_rows(sqlx::query_as::<_, PgEntityRow>(upsert), c, now)
                .fetch_all(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        times[1].push(ms(t));
        let t = Instant::now();
        let mut tx = pool.begin().await?;
        for c in people.chunks(DAL_HISTORY_CHUNK) {
            let mut q = sqlx::query(history)
                .bind(now)
                .bind(None::<String>)
                .bind(None::<String>);
            for p in c {
                q = q.bind(&p.id);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        times[2].push(ms(t));
        // The same work as one statement per chunk.
        let people = batch();
        let t = Instant::now();
        let mut tx = pool.begin().await?;
        let mut back = 0;
        for c in people.chunks(DAL_UPSERT_CHUNK) {
            back += bind_rows(sqlx::query_as::<_, PgEntityRow>(cte), c, now)
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
        times[3].push(ms(t));
        eprintln!("  explain-bulk round {}/{}", r + 1, rounds);
    }
    pool.close().await;

    // dal's own save of the same size: wall, client CPU, and the time its statements took
    // (dal's pool metrics: statement count and summed statement durations).
    let db = dal_db(url, 1).await?;
    let mut c = db.async_connection().await?;
    bulk_dal(&mut c, &batch()[..2 * BULK_CHUNK]).await?;
    let (mut walls, mut cpus, mut in_stmts, mut stmts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        let people = batch();
        let before = db.pool_metrics().ok_or("no pool metrics")?;
        let (wall, cpu) = bulk_dal(&mut c, &people).await?;
        let after = db.pool_metrics().ok_or("no pool metrics")?;
        walls.push(wall.as_secs_f64() * 1e3);
        cpus.push(cpu.as_secs_f64() * 1e3);
        in_stmts.push((after.query_duration.sum - before.query_duration.sum).as_secs_f64() * 1e3);
        stmts.push((after.queries - before.queries) as f64);
    }
    drop(c);
    close_dal(db).await?;
    let m = |v: &[f64]| median(v).unwrap_or(f64::NAN);
    println!("| 10 000 new rows, PostgreSQL, one connection | ms (median of {rounds}) |");
    println!("|---|---:|");
    for (i, name) in phases.iter().enumerate() {
        println!("| raw sqlx: {name} | {:.1} |", m(&times[i]));
    }
    println!(
        "| raw sqlx: dal's plan (upsert RETURNING + history) | {:.1} |",
        m(&times[1]) + m(&times[2])
    );
    println!("| dal `save_entities`: wall | {:.1} |", m(&walls));
    println!(
        "| dal `save_entities`: its statements (dal's query_duration sum) | {:.1} |",
        m(&in_stmts)
    );
    println!(
        "| dal `save_entities`: outside its statements (entity code) | {:.1} |",
        m(&walls) - m(&in_stmts)
    );
    println!(
        "| dal `save_entities`: client CPU (whole process) | {:.1} |",
        m(&cpus)
    );
    println!(
        "\ndal ran {:.0} statements for 10 000 rows; the raw mirror assumes {} (BEGIN, upserts of {}, history appends of {}, COMMIT).",
        m(&stmts),
        dal_plan_statements(BULK_ROWS),
        DAL_UPSERT_CHUNK,
        DAL_HISTORY_CHUNK
    );
    Ok(())
}

/// Wall-clock and process CPU time of a section.
struct Stopwatch {
    wall: Instant,
    cpu: Duration,
}

impl Stopwatch {
    fn start() -> Self {
        Stopwatch {
            wall: Instant::now(),
            cpu: cpu_time(),
        }
    }
    fn stop(&self) -> (Duration, Duration) {
        (self.wall.elapsed(), cpu_time().saturating_sub(self.cpu))
    }
}

/// Median ns per checkout+return over batches of 64, after the warm-up.
macro_rules! checkout_ns {
    ($o:expr, $body:block) => {{
        let o: &Opts = $o;
        let end = Instant::now() + o.warmup;
        while Instant::now() < end {
            for _ in 0..64 $body
        }
        let mut per = Vec::new();
        let end = Instant::now() + o.measure;
        while Instant::now() < end {
            let t = Instant::now();
            for _ in 0..64 $body
            per.push(t.elapsed().as_nanos() as f64 / 64.0);
        }
        median(&per).ok_or_else(|| BoxError::from("no samples"))
    }};
}

/// Pool size of the checkout workload (one task: nothing waits).
const CHECKOUT_POOL: usize = 20;

async fn checkout_pg(ctx: &Ctx) -> Result<Workload> {
    let names = selected(ctx, &[DAL, SQLX, DEADPOOL]);
    let url = ctx.o.pg_url.clone();
    let o = ctx.o.clone();
    let samples = alternate(ctx, "checkout", &names, "ns", |name| {
        let (url, o, name) = (url.clone(), o.clone(), name.to_owned());
        Box::pin(async move {
            tokio::spawn(async move {
                match name.as_str() {
                    DAL => {
                        let db = dal_db(&url, CHECKOUT_POOL).await?;
                        let v = checkout_ns!(&o, {
                            let c = db.async_connection().await?;
                            drop(c);
                        })?;
                        close_dal(db).await?;
                        Ok(v)
                    }
                    SQLX => {
                        let pool = sqlx_pg(&url, CHECKOUT_POOL, false).await?;
                        let v = checkout_ns!(&o, {
                            let c = pool.acquire().await?;
                            drop(c);
                        })?;
                        pool.close().await;
                        Ok(v)
                    }
                    DEADPOOL => {
                        let pool = deadpool(&url, CHECKOUT_POOL)?;
                        let v = checkout_ns!(&o, {
                            let c = pool.get().await?;
                            drop(c);
                        })?;
                        pool.close();
                        Ok(v)
                    }
                    other => Err(BoxError::from(format!("no such contender {other}"))),
                }
            })
            .await?
            .map(Sample::plain)
        })
    })
    .await?;
    let mut w = workload(
        "checkout",
        "Uncontended pool checkout + return (1 task, pool of 20)",
        "PostgreSQL",
        1,
        "ns",
        Direction::LowerIsBetter,
        &names,
        samples,
        &[(SQLX, None), (DEADPOOL, None)],
    );
    w.alternatives.insert(
        0,
        Alternative {
            series: Series::new(ONE_MICRO, vec![1000.0]).with_note("the issue's absolute target"),
            target: Some(Target::at_most(1.0)),
        },
    );
    Ok(w)
}

const WAIT_TASKS: usize = 1_000;
const WAIT_CONNS: usize = 50;
const HOLD_DAL: &str = "SELECT 1 AS [one] FROM pg_sleep(0.005)";
const HOLD_PG: &str = "SELECT 1 AS one FROM pg_sleep(0.005)";

type Acquire = Arc<dyn Fn() -> BoxFut<(Duration, Duration)> + Send + Sync>;

/// 1 000 tasks released at once on a pool of 50: each acquires (timed), runs a 5 ms query and
/// gives the connection back. Returns (p99 wait, ideal FIFO p99 for the measured hold) in ms.
async fn wait_storm(acquire: Acquire) -> Result<(f64, f64)> {
    // Open every connection first, so the storm measures queueing, not connecting.
    let warm: Vec<_> = (0..WAIT_CONNS).map(|_| tokio::spawn(acquire())).collect();
    for t in warm {
        t.await??;
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(WAIT_TASKS + 1));
    let tasks: Vec<_> = (0..WAIT_TASKS)
        .map(|_| {
            let (b, a) = (barrier.clone(), acquire.clone());
            tokio::spawn(async move {
                b.wait().await;
                a().await
            })
        })
        .collect();
    barrier.wait().await;
    let mut waits = Vec::with_capacity(WAIT_TASKS);
    let mut holds = Vec::with_capacity(WAIT_TASKS);
    for t in tasks {
        let (w, h) = t.await??;
        waits.push(w.as_secs_f64() * 1e3);
        holds.push(h.as_secs_f64() * 1e3);
    }
    let p99 = percentile(&waits, 0.99).ok_or("no waits")?;
    let hold = mean(&holds).ok_or("no holds")?;
    Ok((p99, ideal_fifo_quantile(WAIT_TASKS, WAIT_CONNS, hold, 0.99)))
}

async fn acquire_wait_pg(ctx: &Ctx) -> Result<Workload> {
    let names = selected(ctx, &[DAL, SQLX, DEADPOOL]);
    let url = ctx.o.pg_url.clone();
    let ideal = Arc::new(std::sync::Mutex::new(Vec::new()));
    let ideal_w = ideal.clone();
    let samples = alternate(
        ctx,
        "acquire_wait 1000 tasks/50 conns",
        &names,
        "ms p99",
        |name| {
            let (url, name, ideal) = (url.clone(), name.to_owned(), ideal_w.clone());
            Box::pin(async move {
                match name.as_str() {
                    DAL => {
                        let db = dal_db(&url, WAIT_CONNS).await?;
                        let d = db.clone();
                        let acquire: Acquire = Arc::new(move || {
                            let db = d.clone();
                            Box::pin(async move {
                                let t = Instant::now();
                                let mut c = db.async_connection().await?;
                                let wait = t.elapsed();
                                let t = Instant::now();
                                c.execute(HOLD_DAL, ()).await?;
                                let hold = t.elapsed();
                                drop(c);
                                Ok((wait, hold))
                            })
                        });
                        let (p99, ideal_p99) = wait_storm(acquire).await?;
                        if let Ok(mut i) = ideal.lock() {
                            i.push(ideal_p99);
                        }
                        close_dal(db).await?;
                        Ok(Sample::plain(p99))
                    }
                    SQLX => {
                        let pool = sqlx_pg(&url, WAIT_CONNS, false).await?;
                        let p = pool.clone();
                        let acquire: Acquire = Arc::new(move || {
                            let pool = p.clone();
                            Box::pin(async move {
                                let t = Instant::now();
                                let mut c = pool.acquire().await?;
                                let wait = t.elapsed();
                                let t = Instant::now();
                                sqlx::query(HOLD_PG).execute(&mut *c).await?;
                                let hold = t.elapsed();
                                drop(c);
                                Ok((wait, hold))
                            })
                        });
                        let (p99, _) = wait_storm(acquire).await?;
                        pool.close().await;
                        Ok(Sample::plain(p99))
                    }
                    DEADPOOL => {
                        let pool = deadpool(&url, WAIT_CONNS)?;
                        let p = pool.clone();
                        let acquire: Acquire = Arc::new(move || {
                            let pool = p.clone();
                            Box::pin(async move {
                                let t = Instant::now();
                                let c = pool.get().await?;
                                let wait = t.elapsed();
                                let t = Instant::now();
                                c.query(HOLD_PG, &[]).await?;
                                let hold = t.elapsed();
                                drop(c);
                                Ok((wait, hold))
                            })
                        });
                        let (p99, _) = wait_storm(acquire).await?;
                        pool.close();
                        Ok(Sample::plain(p99))
                    }
                    other => Err(format!("no such contender {other}").into()),
                }
            })
        },
    )
    .await?;
    let mut w = workload(
        "acquire_wait",
        "Acquire wait p99, 1 000 tasks on 50 connections (5 ms queries)",
        "PostgreSQL",
        WAIT_TASKS,
        "ms",
        Direction::LowerIsBetter,
        &names,
        samples,
        &[(SQLX, None), (DEADPOOL, None)],
    );
    let ideal = ideal.lock().map(|v| v.clone()).unwrap_or_default();
    let series = if ideal.is_empty() {
        Series::missing(IDEAL, "dal not run")
    } else {
        Series::new(IDEAL, ideal).with_note("floor(989/50) × dal's mean hold time")
    };
    w.alternatives.insert(
        0,
        Alternative {
            series,
            target: Some(Target::at_most(2.0)),
        },
    );
    Ok(w)
}

async fn mysql_workloads(ctx: &Ctx, url: &str, ids: Arc<Vec<String>>) -> Result<Vec<Workload>> {
    let clients = 20;
    let mut out = Vec::new();
    let names = selected(ctx, &[DAL, SQLX_MY]);
    if ctx.wants("mysql_point_select") {
        let o = ctx.o.clone();
        let u = url.to_owned();
        let key = |r: u64| (r % KV_ROWS as u64) as i64 + 1;
        let samples = alternate(ctx, "mysql point_select c=20", &names, "q/s", |name| {
            let (url, o, name) = (u.clone(), o.clone(), name.to_owned());
            Box::pin(async move {
                if name == DAL {
                    let db = dal_db(&url, clients).await?;
                    let d = db.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let db = d.clone();
                        async move {
                            let mut c = db.async_connection().await?;
                            let rows = c.execute(PS_DAL, params![key(r)]).await?;
                            let _b: i64 = rows[0].try_get(0)?;
                            Ok(())
                        }
                    })
                    .await?;
                    close_dal(db).await?;
                    Ok(v)
                } else {
                    let pool = sqlx_my(&url, clients).await?;
                    let p = pool.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let pool = p.clone();
                        async move {
                            let _b: i64 = sqlx::query_scalar(PS_MY)
                                .bind(key(r))
                                .fetch_one(&pool)
                                .await?;
                            Ok(())
                        }
                    })
                    .await?;
                    pool.close().await;
                    Ok(v)
                }
            })
        })
        .await?;
        out.push(workload(
            "mysql_point_select",
            "Point SELECT by PK",
            "MySQL/MariaDB",
            clients,
            "q/s",
            Direction::HigherIsBetter,
            &names,
            samples,
            &[(SQLX_MY, Some(Target::at_least(1.0)))],
        ));
    }
    if ctx.wants("mysql_entity_get") {
        let o = ctx.o.clone();
        let u = url.to_owned();
        let get_sql: &'static str = leak(format!(
            "SELECT {COLS_MY} FROM `dal_bench_people` WHERE `id` = ? AND `deleted_at` IS NULL"
        ));
        let samples = alternate(ctx, "mysql entity_get c=20", &names, "q/s", |name| {
            let (url, o, name, ids) = (u.clone(), o.clone(), name.to_owned(), ids.clone());
            Box::pin(async move {
                let pick = move |r: u64| ids[(r % ids.len() as u64) as usize].clone();
                if name == DAL {
                    let db = dal_db(&url, clients).await?;
                    let d = db.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let db = d.clone();
                        let id = pick(r);
                        async move {
                            let mut c = db.async_connection().await?;
                            c.get_entity("dal_bench_people", &id)
                                .await?
                                .ok_or("entity not found")?;
                            Ok(())
                        }
                    })
                    .await?;
                    close_dal(db).await?;
                    Ok(v)
                } else {
                    let pool = sqlx_my(&url, clients).await?;
                    let p = pool.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let pool = p.clone();
                        let id = pick(r);
                        async move {
                            let _row: MyEntityRow =
                                sqlx::query_as(get_sql).bind(&id).fetch_one(&pool).await?;
                            Ok(())
                        }
                    })
                    .await?;
                    pool.close().await;
                    Ok(v)
                }
            })
        })
        .await?;
        out.push(workload(
            "mysql_entity_get",
            "Entity get by id",
            "MySQL/MariaDB",
            clients,
            "q/s",
            Direction::HigherIsBetter,
            &names,
            samples,
            &[(SQLX_MY, Some(Target::at_least(0.9)))],
        ));
    }
    Ok(out)
}

async fn sqlite_workloads(ctx: &Ctx, path: &Path, ids: Arc<Vec<String>>) -> Result<Vec<Workload>> {
    let clients = 20;
    let mut out = Vec::new();
    let names = selected(ctx, &[DAL, SQLX_LITE]);
    let url = format!("sqlite://{}", path.display());
    if ctx.wants("sqlite_point_select") {
        let o = ctx.o.clone();
        let (u, pth) = (url.clone(), path.to_owned());
        let key = |r: u64| (r % KV_ROWS as u64) as i64 + 1;
        let samples = alternate(ctx, "sqlite point_select c=20", &names, "q/s", |name| {
            let (url, o, name, path) = (u.clone(), o.clone(), name.to_owned(), pth.clone());
            Box::pin(async move {
                if name == DAL {
                    let db = dal_db(&url, clients).await?;
                    let d = db.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let db = d.clone();
                        async move {
                            let mut c = db.async_connection().await?;
                            let rows = c.execute(PS_DAL, params![key(r)]).await?;
                            let _b: i64 = rows[0].try_get(0)?;
                            Ok(())
                        }
                    })
                    .await?;
                    close_dal(db).await?;
                    Ok(v)
                } else {
                    let pool = sqlx_lite(&path, clients).await?;
                    let p = pool.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let pool = p.clone();
                        async move {
                            let _b: i64 = sqlx::query_scalar(PS_MY)
                                .bind(key(r))
                                .fetch_one(&pool)
                                .await?;
                            Ok(())
                        }
                    })
                    .await?;
                    pool.close().await;
                    Ok(v)
                }
            })
        })
        .await?;
        out.push(workload(
            "sqlite_point_select",
            "Point SELECT by PK",
            "SQLite (file, WAL)",
            clients,
            "q/s",
            Direction::HigherIsBetter,
            &names,
            samples,
            &[(SQLX_LITE, Some(Target::at_least(1.0)))],
        ));
    }
    if ctx.wants("sqlite_entity_get") {
        let o = ctx.o.clone();
        let (u, pth) = (url.clone(), path.to_owned());
        let get_sql: &'static str = leak(format!(
            "SELECT {COLS} FROM \"dal_bench_people\" WHERE \"id\" = ? AND \"deleted_at\" IS NULL"
        ));
        let samples = alternate(ctx, "sqlite entity_get c=20", &names, "q/s", |name| {
            let (url, o, name, ids, path) = (
                u.clone(),
                o.clone(),
                name.to_owned(),
                ids.clone(),
                pth.clone(),
            );
            Box::pin(async move {
                let pick = move |r: u64| ids[(r % ids.len() as u64) as usize].clone();
                if name == DAL {
                    let db = dal_db(&url, clients).await?;
                    let d = db.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let db = d.clone();
                        let id = pick(r);
                        async move {
                            let mut c = db.async_connection().await?;
                            c.get_entity("dal_bench_people", &id)
                                .await?
                                .ok_or("entity not found")?;
                            Ok(())
                        }
                    })
                    .await?;
                    close_dal(db).await?;
                    Ok(v)
                } else {
                    let pool = sqlx_lite(&path, clients).await?;
                    let p = pool.clone();
                    let v = closed_loop(clients, &o, move |r| {
                        let pool = p.clone();
                        let id = pick(r);
                        async move {
                            let _row: LiteEntityRow =
                                sqlx::query_as(get_sql).bind(&id).fetch_one(&pool).await?;
                            Ok(())
                        }
                    })
                    .await?;
                    pool.close().await;
                    Ok(v)
                }
            })
        })
        .await?;
        out.push(workload(
            "sqlite_entity_get",
            "Entity get by id",
            "SQLite (file, WAL)",
            clients,
            "q/s",
            Direction::HigherIsBetter,
            &names,
            samples,
            &[(SQLX_LITE, Some(Target::at_least(0.9)))],
        ));
    }
    Ok(out)
}

// ---- output -----------------------------------------------------------------------------

fn chart_bars(report: &Report) -> Vec<Bar> {
    let mut bars = Vec::new();
    for w in &report.workloads {
        for row in w.rows() {
            let label = format!(
                "{}: vs {}",
                w.id,
                short_name(&row.alternative.series.contender)
            );
            bars.push(Bar {
                label,
                factor: row.speed_factor().unwrap_or(f64::NAN),
                target: row
                    .alternative
                    .target
                    .and_then(|t| dal_bench::report::speed_factor(t.ratio, w.direction)),
                met: row.met,
            });
        }
    }
    bars
}

/// Contender names short enough for the chart.
fn short_name(name: &str) -> String {
    name.replace("(test_before_acquire=false)", "(no test)")
        .replace("(default options)", "(default)")
        .replace(" (prepare_cached)", "")
        .replace(" (1 000 rows/stmt)", "")
        .replace(" (upsert RETURNING + history)", "")
        .replace(
            "not dal's plan: raw sqlx, one CTE statement (upsert+history+RETURNING)",
            "raw sqlx, one CTE (not dal's plan)",
        )
        .replace("tokio-postgres + deadpool", "tokio-postgres+deadpool")
}

fn write_outputs(report: &Report, name: &str) -> Result<PathBuf> {
    let dir = results_dir();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(report)?,
    )?;
    std::fs::write(dir.join(format!("{name}.md")), markdown_report(report))?;
    let title = format!(
        "dal vs alternatives: {} CPUs, {}",
        report.machine.cpus,
        report
            .machine
            .postgres
            .as_deref()
            .and_then(|v| v.split(" on ").next())
            .unwrap_or("PostgreSQL")
    );
    if let Err(e) = ratio_chart(
        &dir.join(format!("{name}.png")),
        &title,
        &chart_bars(report),
    ) {
        eprintln!("chart not written: {e}");
    }
    Ok(dir)
}

// ---- main -------------------------------------------------------------------------------

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let o = parse_opts()?;
    if !o.combine.is_empty() {
        let reports = o
            .combine
            .iter()
            .map(|p| -> Result<Report> { Ok(serde_json::from_str(&std::fs::read_to_string(p)?)?) })
            .collect::<Result<Vec<_>>>()?;
        let combined = combine(&reports).ok_or("nothing to combine")?;
        let dir = write_outputs(&combined, "combined")?;
        println!("{}", markdown_report(&combined));
        eprintln!("written: {}/combined.{{json,md,png}}", dir.display());
        return Ok(());
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
    let (pg_version, people) = pg_setup(&o.pg_url).await?;
    machine.postgres = Some(pg_version);
    let mut notes = vec![
        "Every workload runs dal and its alternatives in one process, alternating rounds (order rotated each round), same pool size (= clients) and concurrency; each round builds, warms and closes its pool.".to_owned(),
        "dal / alt.: ratio of medians. For q/s, saves/s and rows/s higher is better; for ns and ms lower is better.".to_owned(),
        "Raw sqlx baselines use test_before_acquire(false) (the stricter baseline) except the row that says default options.".to_owned(),
    ];
    let ctx = Ctx {
        o: o.clone(),
        people: Arc::new(people),
    };
    if o.explain_bulk {
        return explain_bulk(&o.pg_url, o.rounds).await;
    }

    let pgbench = if !o.pgbench || !ctx.wants("point_select") {
        None
    } else if pgbench_available() {
        match pgbench_setup(&o.pg_url).await {
            Ok(u) => Some(u),
            Err(e) => {
                notes.push(format!("pgbench could not be set up: {e}"));
                None
            }
        }
    } else {
        notes.push("pgbench is not on PATH: its rows are n/a.".into());
        None
    };

    let mut workloads = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |what: &str| {
        eprintln!("  [{what}: {:.1} s]", clock.elapsed().as_secs_f64());
        clock = Instant::now();
    };
    if ctx.wants("point_select_c20") {
        workloads.push(point_select_pg(&ctx, 20, pgbench.as_deref()).await?);
        lap("point_select_pg");
    }
    if ctx.wants("point_select_c1") {
        workloads.push(point_select_pg(&ctx, 1, pgbench.as_deref()).await?);
        lap("point_select_pg");
    }
    if ctx.wants("insert") {
        workloads.push(insert_pg(&ctx).await?);
        lap("insert_pg");
    }
    if ctx.wants("entity_save") {
        workloads.push(entity_save_pg(&ctx).await?);
        lap("entity_save_pg");
    }
    if ctx.wants("entity_get") && !ctx.wants_only_other_backends() {
        workloads.push(entity_get_pg(&ctx).await?);
        lap("entity_get_pg");
    }
    if ctx.wants("find_limit10") {
        workloads.push(find_pg(&ctx).await?);
        lap("find_pg");
    }
    if ctx.wants("bulk_save") {
        workloads.push(bulk_pg(&ctx).await?);
        lap("bulk_pg");
    }
    if ctx.wants("checkout") {
        workloads.push(checkout_pg(&ctx).await?);
        lap("checkout_pg");
    }
    if ctx.wants("acquire_wait") {
        workloads.push(acquire_wait_pg(&ctx).await?);
        lap("acquire_wait_pg");
    }
    if o.mysql && (ctx.wants("mysql_point_select") || ctx.wants("mysql_entity_get")) {
        eprintln!("setting up MySQL tables ({})", redact(&o.my_url));
        match my_setup(&o.my_url).await {
            Ok((version, ids)) => {
                machine.mysql = Some(version);
                workloads.extend(mysql_workloads(&ctx, &o.my_url, Arc::new(ids)).await?);
                if let Err(e) = my_cleanup(&o.my_url).await {
                    eprintln!("could not drop the MySQL bench tables: {e}");
                }
            }
            Err(e) => notes.push(format!("MySQL rows skipped: {e}")),
        }
    }
    if o.sqlite && (ctx.wants("sqlite_point_select") || ctx.wants("sqlite_entity_get")) {
        let path = std::env::temp_dir().join(format!("dal-bench-{}.db", std::process::id()));
        eprintln!("setting up SQLite file {}", path.display());
        let (version, ids) = lite_setup(&path).await?;
        machine.sqlite = Some(version);
        workloads.extend(sqlite_workloads(&ctx, &path, Arc::new(ids)).await?);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    if let Some(w) = PLAN_WARNING.get() {
        notes.push(format!("WARNING: {w}."));
    }
    if let Err(e) = pg_cleanup(&o.pg_url).await {
        eprintln!("could not drop the bench tables: {e}");
    }

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

impl Ctx {
    /// `--only mysql_entity_get` should not also run PostgreSQL's entity_get.
    fn wants_only_other_backends(&self) -> bool {
        !self.o.only.is_empty()
            && self
                .o
                .only
                .iter()
                .all(|o| o.starts_with("mysql") || o.starts_with("sqlite"))
    }
}

fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbench_output_is_parsed() {
        let out = "pgbench (15.20)\ntransaction type: <builtin: select only>\nlatency average = 0.460 ms\n\
                   initial connection time = 12.345 ms\ntps = 43210.987654 (without initial connection time)\n";
        assert_eq!(parse_pgbench_tps(out), Some(43210.987654));
        assert_eq!(parse_pgbench_tps("nothing"), None);
    }

    #[test]
    fn database_swapped_in_url() {
        assert_eq!(
            with_database(
                "postgres://postgres@127.0.0.1:5432/dal_test?sslmode=disable",
                "x"
            )
            .unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
    }

    #[test]
    fn dal_statements_are_mirrored() {
        assert!(upsert_sql("t", 1, true).ends_with("RETURNING \"id\", \"created_at\", \"created_by\", \"updated_at\", \"updated_by\", \"deleted_at\", \"active\", \"age\", \"email\", \"name\""));
        assert_eq!(dal_plan_statements(1), 4);
        assert_eq!(dal_plan_statements(10_000), 17);
        let u = upsert_sql("t", 2, false);
        assert!(u.starts_with("INSERT INTO \"t\" (\"id\", \"created_at\""));
        assert!(u.contains("($10, $11, $12, $13, $14, $15, $16, $17, $18)"));
        assert!(u.ends_with("\"updated_by\" = excluded.\"updated_by\""));
        let h = history_sql("t", 3);
        assert!(h.contains("INSERT INTO \"t_history\""));
        assert!(h.ends_with("IN ($4, $5, $6)"));
        assert_eq!(insert_rows_sql("t", 1000).matches('(').count(), 1001);
    }
}
