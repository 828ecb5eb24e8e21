//! `cargo run --release -p dal-bench --bin replicas [-- --rounds N --seconds S]`
//!
//! Read replicas and failover through dal, on private replicated clusters started by the test
//! harness (`tests/support/cluster.rs`): a PostgreSQL primary with a streaming standby and a
//! MariaDB primary with a GTID replica, on loopback ports 5433–5440 / 3307–3310 (the shared
//! servers on 5432 and 3306 are never touched). It must run as root: the harness drives the
//! PostgreSQL programs as the `postgres` user.
//!
//! Workloads, on each backend, point SELECT by primary key on a table of 10 000 rows (created
//! on the primary and replicated before anything is measured), 20 client tasks, every pool at
//! most 20 connections:
//!
//! - a. primary alone: a `Database` without replica, one `async_connection()` per query;
//! - b. primary + 1 replica: the same SELECT through `read_connection()` (no writes through
//!   the handle, so the replica serves them; the share it served is reported and checked);
//! - c0. primary alone, write then read: a `Database` without replica; each iteration UPDATEs
//!   a row through `async_connection()`, then SELECTs it back through another
//!   `async_connection()` (c without the replica: c's baseline);
//! - c. primary + 1 replica, read-your-writes: each iteration UPDATEs a row through
//!   `async_connection()`, then SELECTs it back through `read_connection()` (a read older than
//!   the write counts as stale, in c0 too; the shares served by the replica and the primary
//!   are reported);
//! - d. failover: a host-list `Database` (`target_session_attrs=read-write`) with 8 writer
//!   tasks inserting in a loop; the primary is stopped and the replica promoted. Measured:
//!   (i) stop → promotion done, (ii) promotion done → first successful write of every writer,
//!   and the writers' outage (the longest time between two acknowledged inserts of a writer),
//!   (iii) writes acknowledged vs present on the new primary. A fresh cluster per round.
//!
//! a, b, c0 and c run in alternating rounds (the order rotates each round) on one cluster per
//! backend; each round builds its `Database` (its own alias, so its own pools), warms up,
//! measures, and closes it. Figures are medians over the rounds; b/a and c/c0 are ratios of
//! medians (each workload with the replica against the same statements without it). Writes
//! `bench-results/replicas.{json,md}` and prints the tables (the report's types, tables and
//! checks are in `dal_bench::replicas`, tested without a database).
//!
//! Checks (the files are written first; then the run fails if one did not hold): b served at
//! least 99 % of its reads from the replica, c0 and c read no stale value, every writer wrote
//! again after the promotion, and every acknowledged write is on the new primary.

// The harness is test code: it panics with the servers' state when something goes wrong (the
// tests opt out of these lints at their crate root). Its panics come back here as errors of
// the `spawn_blocking` tasks that run it.
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "../../../tests/support/cluster.rs"]
mod cluster;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use dal::{params, Backend, Database, DatabaseConfig, Role};
use dal_bench::machine::cpu_time;
use dal_bench::replicas::{
    failed_checks, secs, write, FailoverResult, FailoverRound, ReadResult, ReadRound, ReadWorkload,
    ReplicasReport, Settings,
};
use dal_bench::report::fmt_num;
use dal_bench::stats::{median, Rng};
use dal_bench::{results_dir, BoxError, Result};

use cluster::{MyCluster, PgCluster, Replicated};

const HELP: &str = "cargo run --release -p dal-bench --bin replicas -- [options]
  --rounds N        rounds per workload, and failover rounds per backend (default 3)
  --seconds S       measured seconds per workload and round (default 5)
  --warmup S        warm-up seconds before each measurement (default 1)
  --backends LIST   postgres,mariadb (default both)
  --no-failover     skip the failover rounds
Runs as root (the harness runs the PostgreSQL programs as the postgres user); starts private
clusters on loopback ports 5433-5440 and 3307-3310. Writes bench-results/replicas.{json,md}.";

/// Rows in the table the reads select from.
const ROWS: i64 = 10_000;
/// Client tasks of the read workloads, and every pool's size.
const CLIENTS: usize = 20;
/// Writer tasks of the failover.
const WRITERS: usize = 8;
/// How long the writers run before the primary is stopped.
const WRITES_BEFORE_STOP: Duration = Duration::from_millis(1500);
/// How long every writer has, after the promotion, to write again.
const RESUME_LIMIT: Duration = Duration::from_secs(30);

const CREATE: &str = "CREATE TABLE [rbench_kv] ([id] BIGINT PRIMARY KEY, [v] BIGINT NOT NULL)";
const SELECT: &str = "SELECT [v] FROM [rbench_kv] WHERE [id] = ?";
const UPDATE: &str = "UPDATE [rbench_kv] SET [v] = ? WHERE [id] = ?";
const CREATE_ACKED: &str =
    "CREATE TABLE [rbench_acked] ([id] BIGINT PRIMARY KEY, [task] INTEGER NOT NULL)";
const INSERT_ACKED: &str = "INSERT INTO [rbench_acked] ([id], [task]) VALUES (?, ?)";

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone)]
struct Opts {
    rounds: usize,
    measure: Duration,
    warmup: Duration,
    backends: Vec<Kind>,
    failover: bool,
}

fn parse_opts() -> Result<Option<Opts>> {
    let mut o = Opts {
        rounds: 3,
        measure: Duration::from_secs(5),
        warmup: Duration::from_secs(1),
        backends: vec![Kind::Postgres, Kind::MariaDb],
        failover: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| {
            args.next()
                .ok_or_else(|| BoxError::from(format!("{name} needs a value")))
        };
        match a.as_str() {
            "--rounds" => o.rounds = val("--rounds")?.parse()?,
            "--seconds" => o.measure = Duration::try_from_secs_f64(val("--seconds")?.parse()?)?,
            "--warmup" => o.warmup = Duration::try_from_secs_f64(val("--warmup")?.parse()?)?,
            "--backends" => {
                o.backends = val("--backends")?
                    .split(',')
                    .map(|b| match b.trim() {
                        "postgres" | "pg" | "postgresql" => Ok(Kind::Postgres),
                        "mariadb" | "mysql" => Ok(Kind::MariaDb),
                        other => Err(BoxError::from(format!("unknown backend {other:?}"))),
                    })
                    .collect::<Result<_>>()?
            }
            "--no-failover" => o.failover = false,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown option {other:?} (see --help)").into()),
        }
    }
    if o.rounds == 0 || o.measure.is_zero() || o.backends.is_empty() {
        return Err("--rounds, --seconds and --backends must not be zero or empty".into());
    }
    Ok(Some(o))
}

// ---------------------------------------------------------------------------------------------
// Clusters

/// Which cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Postgres,
    MariaDb,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Postgres => "PostgreSQL",
            Kind::MariaDb => "MariaDB",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Kind::Postgres => "pg",
            Kind::MariaDb => "my",
        }
    }

    /// Starts a fresh cluster of this kind (blocking work, off the runtime's threads).
    async fn start(self) -> Result<Arc<dyn Replicated>> {
        let t = Instant::now();
        let c: Arc<dyn Replicated> = match self {
            Kind::Postgres => Arc::new(tokio::task::spawn_blocking(PgCluster::start).await?),
            Kind::MariaDb => Arc::new(tokio::task::spawn_blocking(MyCluster::start).await?),
        };
        eprintln!(
            "  {} cluster up in {:.1} s (primary :{}, replica :{})",
            self.name(),
            t.elapsed().as_secs_f64(),
            c.primary_port(),
            c.replica_port()
        );
        Ok(c)
    }
}

/// Runs a blocking cluster operation off the runtime's threads; returns how long it took. A
/// panic of the harness (it panics with the servers' state) comes back as the error.
async fn ctl(c: &Arc<dyn Replicated>, op: fn(&dyn Replicated)) -> Result<Duration> {
    let c = c.clone();
    let t = Instant::now();
    tokio::task::spawn_blocking(move || op(c.as_ref())).await?;
    Ok(t.elapsed())
}

/// Stops the cluster's servers and removes its directory (the harness's Drop, which blocks).
async fn dispose(c: Arc<dyn Replicated>) -> Result<()> {
    tokio::task::spawn_blocking(move || drop(c)).await?;
    Ok(())
}

/// A unique pool alias: pools are shared by configuration, and a later cluster may reuse a
/// port, so no two `Database`s of this run share one.
fn alias(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "rbench-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn database(config: DatabaseConfig) -> Result<Database> {
    let backend = config.backend().ok_or("URL names no backend")?;
    Ok(Database::new(backend, config))
}

// ---------------------------------------------------------------------------------------------
// Read workloads (a, b, c0, c)

/// The `Database` of one round of `w`: its own alias, pools of `CLIENTS`, the replica for b
/// and c.
fn read_database(w: ReadWorkload, c: &dyn Replicated) -> Result<Database> {
    let mut config = DatabaseConfig::from_url(&c.primary_url())?
        .alias(alias(w.id()))
        .pool_size(CLIENTS, CLIENTS);
    if w.with_replica() {
        config = config.replica("127.0.0.1", c.replica_port());
    }
    database(config)
}

/// What the clients of one round counted (monotonic).
#[derive(Default)]
struct Counters {
    /// Statements sent by the clients (c0 and c: the UPDATE and the SELECT; dal's own position
    /// and replay checks are not counted).
    queries: AtomicU64,
    iterations: AtomicU64,
    /// SELECTs served by a replica / by the primary (`Connection::role`).
    on_replica: AtomicU64,
    on_primary: AtomicU64,
    /// c0 and c: SELECTs that did not see the value the same client had just written.
    stale: AtomicU64,
    /// Time spent obtaining the SELECTs' connections, ns.
    acquire_ns: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Snapshot {
    queries: u64,
    iterations: u64,
    on_replica: u64,
    on_primary: u64,
    stale: u64,
    acquire_ns: u64,
}

impl Counters {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            queries: self.queries.load(Ordering::Relaxed),
            iterations: self.iterations.load(Ordering::Relaxed),
            on_replica: self.on_replica.load(Ordering::Relaxed),
            on_primary: self.on_primary.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            acquire_ns: self.acquire_ns.load(Ordering::Relaxed),
        }
    }

    fn served(&self, role: Role, acquired_in: Duration) {
        match role {
            Role::Replica => self.on_replica.fetch_add(1, Ordering::Relaxed),
            Role::Primary => self.on_primary.fetch_add(1, Ordering::Relaxed),
        };
        let ns = u64::try_from(acquired_in.as_nanos()).unwrap_or(u64::MAX);
        self.acquire_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

impl std::ops::Sub for Snapshot {
    type Output = Snapshot;
    fn sub(self, o: Snapshot) -> Snapshot {
        Snapshot {
            queries: self.queries - o.queries,
            iterations: self.iterations - o.iterations,
            on_replica: self.on_replica - o.on_replica,
            on_primary: self.on_primary - o.on_primary,
            stale: self.stale - o.stale,
            acquire_ns: self.acquire_ns - o.acquire_ns,
        }
    }
}

/// The value of row `id`, read through `conn`.
async fn select(conn: &mut dal::Connection, id: i64) -> Result<i64> {
    let rows = conn.execute(SELECT, params![id]).await?;
    let row = rows
        .first()
        .ok_or_else(|| BoxError::from(format!("row {id} not found")))?;
    Ok(row.try_get::<i64, _>(0)?)
}

/// Values written by c0 and c, unique over the run (so an old value is never mistaken for the new).
static NEXT_VALUE: AtomicI64 = AtomicI64::new(1);

/// One iteration of `w` by client `client` with random bits `r`.
async fn iteration(
    w: ReadWorkload,
    db: &Database,
    client: usize,
    r: u64,
    n: &Counters,
) -> Result<()> {
    match w {
        ReadWorkload::PrimaryAlone | ReadWorkload::Replica => {
            let id = 1 + (r % ROWS as u64) as i64;
            let t = Instant::now();
            let mut conn = if w == ReadWorkload::PrimaryAlone {
                db.async_connection().await?
            } else {
                db.read_connection().await?
            };
            let acquired_in = t.elapsed();
            select(&mut conn, id).await?;
            n.served(conn.role(), acquired_in);
            n.queries.fetch_add(1, Ordering::Relaxed);
        }
        ReadWorkload::WriteThenReadPrimaryAlone | ReadWorkload::ReadYourWrites => {
            // Each client writes only its own rows (id ≡ client + 1 mod CLIENTS): no lock
            // waits between clients, and the value read back must be the one it just wrote.
            let slot = r % (ROWS as u64 / CLIENTS as u64);
            let id = 1 + (slot * CLIENTS as u64) as i64 + client as i64;
            let value = NEXT_VALUE.fetch_add(1, Ordering::Relaxed);
            {
                let mut w = db.async_connection().await?;
                w.execute(UPDATE, params![value, id]).await?;
            } // given back before the read: the read may need a primary connection to ask its position
            let t = Instant::now();
            // c0 the same without the replica: a second async_connection for the SELECT.
            let mut conn = if w == ReadWorkload::ReadYourWrites {
                db.read_connection().await?
            } else {
                db.async_connection().await?
            };
            let acquired_in = t.elapsed();
            if select(&mut conn, id).await? != value {
                n.stale.fetch_add(1, Ordering::Relaxed);
            }
            n.served(conn.role(), acquired_in);
            n.queries.fetch_add(2, Ordering::Relaxed);
        }
    }
    n.iterations.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// `CLIENTS` tasks run `w` back to back; the counts of the window after the warm-up.
async fn measure_read(
    o: &Opts,
    c: &Arc<dyn Replicated>,
    w: ReadWorkload,
    round: usize,
) -> Result<ReadRound> {
    let db = read_database(w, c.as_ref())?;
    // First use opens the pools' connections before the clock starts.
    drop(db.async_connection().await?);
    if w.with_replica() {
        drop(db.read_connection().await?);
    }
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(CLIENTS);
    for client in 0..CLIENTS {
        let (db, n, stop) = (db.clone(), counters.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new((round * CLIENTS + client) as u64 + 1);
            while !stop.load(Ordering::Relaxed) {
                iteration(w, &db, client, rng.next_u64(), &n).await?;
            }
            Ok::<(), BoxError>(())
        }));
    }
    tokio::time::sleep(o.warmup).await;
    let (s0, t0, cpu0) = (counters.snapshot(), Instant::now(), cpu_time());
    tokio::time::sleep(o.measure).await;
    let (s1, elapsed, cpu1) = (counters.snapshot(), t0.elapsed(), cpu_time());
    stop.store(true, Ordering::Relaxed);
    let mut failed = None;
    for t in tasks {
        if let Err(e) = t.await? {
            failed.get_or_insert(e);
        }
    }
    db.close(Duration::from_secs(10)).await?;
    if let Some(e) = failed {
        return Err(format!("{}: {e}", w.id()).into());
    }
    let d = s1 - s0;
    let secs = elapsed.as_secs_f64();
    let reads = (d.on_replica + d.on_primary).max(1) as f64;
    Ok(ReadRound {
        round: round + 1,
        qps: d.queries as f64 / secs,
        iterations_per_s: d.iterations as f64 / secs,
        replica_share: d.on_replica as f64 / reads,
        reads_on_replica: d.on_replica,
        reads_on_primary: d.on_primary,
        stale_reads: d.stale,
        read_acquire_us: d.acquire_ns as f64 / 1e3 / reads,
        client_cpu_us_per_query: (cpu1 - cpu0).as_secs_f64() * 1e6 / d.queries.max(1) as f64,
    })
}

/// Creates and fills the table on the primary, waits until the replica has replayed it and
/// checks, through a read connection, that the replica serves all of it. Returns the server
/// version.
async fn prepare(c: &Arc<dyn Replicated>) -> Result<String> {
    let config = DatabaseConfig::from_url(&c.primary_url())?
        .alias(alias("setup"))
        .replica("127.0.0.1", c.replica_port());
    let db = database(config)?;
    let mut w = db.async_connection().await?;
    let version_sql = match c.backend() {
        Backend::Postgres => "SELECT version() AS [v]",
        _ => "SELECT VERSION() AS [v]",
    };
    let version: String = w
        .execute(version_sql, ())
        .await?
        .first()
        .ok_or("no version")?
        .try_get(0)?;
    w.execute(CREATE, ()).await?;
    for batch in 0..ROWS / 1000 {
        let values: Vec<String> = (batch * 1000 + 1..=batch * 1000 + 1000)
            .map(|id| format!("({id}, 0)"))
            .collect();
        let sql = format!(
            "INSERT INTO [rbench_kv] ([id], [v]) VALUES {}",
            values.join(", ")
        );
        w.execute(&sql, ()).await?;
    }
    drop(w);
    ctl(c, |c| c.wait_replayed()).await?;
    let mut r = db.read_connection().await?;
    let n: i64 = r
        .execute("SELECT COUNT(*) AS [n] FROM [rbench_kv]", ())
        .await?
        .first()
        .ok_or("no count")?
        .try_get(0)?;
    if r.role() != Role::Replica || n != ROWS {
        return Err(format!(
            "after replay the read connection is on the {} and counts {n} rows (want the \
             replica and {ROWS})",
            r.role().as_str()
        )
        .into());
    }
    drop(r);
    db.close(Duration::from_secs(10)).await?;
    Ok(version)
}

/// a, b, c0 and c on a fresh cluster of `kind`: the server version and the results.
async fn read_workloads(o: &Opts, kind: Kind) -> Result<(String, Vec<ReadResult>)> {
    eprintln!("{}: read workloads", kind.name());
    let c = kind.start().await?;
    let outcome = run_reads(o, kind, &c).await;
    dispose(c).await?;
    outcome
}

/// a, b, c0 and c in alternating rounds (the order rotates each round).
async fn run_reads(
    o: &Opts,
    kind: Kind,
    c: &Arc<dyn Replicated>,
) -> Result<(String, Vec<ReadResult>)> {
    let version = prepare(c).await?;
    let all = ReadWorkload::ALL;
    let mut rounds: Vec<Vec<ReadRound>> = vec![Vec::new(); all.len()];
    for round in 0..o.rounds {
        for k in 0..all.len() {
            let i = (k + round) % all.len();
            let m = measure_read(o, c, all[i], round).await?;
            eprintln!(
                "  round {}: {:<34} {:>9} q/s  replica {:>5.1} %  read acquire {:>7.1} µs  stale {}",
                round + 1,
                all[i].id(),
                fmt_num(m.qps),
                100.0 * m.replica_share,
                m.read_acquire_us,
                m.stale_reads
            );
            rounds[i].push(m);
            // The replica finishes replaying c0's and c's updates before the next workload
            // starts.
            ctl(c, |c| c.wait_replayed()).await?;
        }
    }
    // b ÷ a, c ÷ c0: each against the same statements without the replica.
    let median_qps = |w: ReadWorkload| {
        let i = all.iter().position(|&x| x == w)?;
        median(&rounds[i].iter().map(|r| r.qps).collect::<Vec<_>>())
    };
    let baselines: Vec<Option<f64>> = all
        .iter()
        .map(|w| w.baseline().and_then(median_qps))
        .collect();
    let results = all
        .iter()
        .zip(rounds)
        .zip(baselines)
        .map(|((&w, rounds), baseline)| ReadResult::new(w, kind.name(), CLIENTS, rounds, baseline))
        .collect();
    Ok((version, results))
}

// ---------------------------------------------------------------------------------------------
// Failover (d)

/// What a writer saw: the ids acknowledged; when it first wrote after the promotion; its
/// longest time between two acknowledged writes, and when that ended.
struct Writer {
    acked: Vec<i64>,
    first_after_promotion: Option<Duration>,
    longest_gap: Duration,
    gap_end: Option<Instant>,
}

/// Inserts in a loop until `stop`, retrying after 20 ms (with a new id) when an insert fails.
async fn writer(
    db: Database,
    task: usize,
    stop: Arc<AtomicBool>,
    promoted_at: Arc<Mutex<Option<Instant>>>,
    resumed: Arc<AtomicUsize>,
    acked_n: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) -> Writer {
    let mut w = Writer {
        acked: Vec::new(),
        first_after_promotion: None,
        longest_gap: Duration::ZERO,
        gap_end: None,
    };
    let mut last_ack = Instant::now();
    let base = (task as i64 + 1) * 10_000_000;
    let mut n = 0_i64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let id = base + n;
        let inserted = async {
            let mut conn = db.async_connection().await?;
            conn.execute(INSERT_ACKED, params![id, task as i64]).await
        }
        .await;
        if inserted.is_ok() {
            let now = Instant::now();
            w.acked.push(id);
            acked_n.fetch_add(1, Ordering::Relaxed);
            if now - last_ack > w.longest_gap {
                w.longest_gap = now - last_ack;
                w.gap_end = Some(now);
            }
            last_ack = now;
            let promoted = *promoted_at.lock().unwrap_or_else(|e| e.into_inner());
            if let (Some(p), None) = (promoted, w.first_after_promotion) {
                w.first_after_promotion = Some(p.elapsed());
                resumed.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            failed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    w
}

/// `a - b` in seconds, negative when `a` is earlier.
fn signed_secs(a: Instant, b: Instant) -> f64 {
    if a >= b {
        (a - b).as_secs_f64()
    } else {
        -(b - a).as_secs_f64()
    }
}

/// One failover round on a fresh cluster of `kind`.
async fn failover_round(kind: Kind, round: usize) -> Result<FailoverRound> {
    let c = kind.start().await?;
    let outcome = run_failover(kind, &c, round).await;
    dispose(c).await?;
    outcome
}

async fn run_failover(kind: Kind, c: &Arc<dyn Replicated>, round: usize) -> Result<FailoverRound> {
    let url = c.url_with_hosts(&format!(
        "target_session_attrs=read-write&alias={}",
        alias(&format!("failover-{}", kind.tag()))
    ));
    let db = Database::from_url(&url)?;
    db.async_connection()
        .await?
        .execute(CREATE_ACKED, ())
        .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let promoted_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let resumed = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|task| {
            tokio::spawn(writer(
                db.clone(),
                task,
                stop.clone(),
                promoted_at.clone(),
                resumed.clone(),
                acked.clone(),
                failed.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(WRITES_BEFORE_STOP).await;
    let before_stop = acked.load(Ordering::Relaxed);
    let switched = async {
        let stop = ctl(c, |c| c.stop_primary()).await?;
        let promote = ctl(c, |c| c.promote()).await?;
        Ok::<_, BoxError>((stop, promote))
    }
    .await;
    let promoted = Instant::now();
    *promoted_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(promoted);
    if switched.is_ok() {
        while resumed.load(Ordering::Relaxed) < WRITERS && promoted.elapsed() < RESUME_LIMIT {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut writers = Vec::with_capacity(WRITERS);
    for t in tasks {
        writers.push(t.await?);
    }
    db.close(Duration::from_secs(5)).await?;
    let (stop_d, promote_d) = switched?;

    let acknowledged: Vec<i64> = writers
        .iter()
        .flat_map(|w| w.acked.iter().copied())
        .collect();
    let resumes: Vec<f64> = writers
        .iter()
        .filter_map(|w| w.first_after_promotion.map(|d| d.as_secs_f64()))
        .collect();
    let stored = ids_on_new_primary(c).await?;
    let r = FailoverRound {
        round: round + 1,
        stop_to_promoted_s: (stop_d + promote_d).as_secs_f64(),
        stop_s: stop_d.as_secs_f64(),
        promote_s: promote_d.as_secs_f64(),
        all_writers_resumed_s: (resumes.len() == WRITERS)
            .then(|| resumes.iter().copied().fold(0.0, f64::max)),
        median_writer_resumed_s: median(&resumes),
        writers_resumed: resumes.len(),
        writers: WRITERS,
        longest_write_gap_s: writers
            .iter()
            .map(|w| w.longest_gap.as_secs_f64())
            .fold(0.0, f64::max),
        last_gap_end_vs_promoted_s: writers
            .iter()
            .filter_map(|w| w.gap_end)
            .max()
            .map_or(f64::NAN, |end| signed_secs(end, promoted)),
        acknowledged: acknowledged.len(),
        acknowledged_present: acknowledged.iter().filter(|id| stored.contains(id)).count(),
        rows_on_new_primary: stored.len(),
        failed_attempts: failed.load(Ordering::Relaxed),
        acknowledged_before_stop: before_stop,
    };
    eprintln!(
        "  round {}: stop→promoted {} (stop {} + promote {}); every writer wrote again {} after; \
         longest write gap {} (ended {} after the promotion); acknowledged {} / present {} / \
         rows {}; {} failed inserts",
        r.round,
        secs(Some(r.stop_to_promoted_s)),
        secs(Some(r.stop_s)),
        secs(Some(r.promote_s)),
        secs(r.all_writers_resumed_s),
        secs(Some(r.longest_write_gap_s)),
        secs(Some(r.last_gap_end_vs_promoted_s)),
        r.acknowledged,
        r.acknowledged_present,
        r.rows_on_new_primary,
        r.failed_attempts
    );
    Ok(r)
}

/// The ids on the new primary (the former replica), read over a pool of its own.
async fn ids_on_new_primary(c: &Arc<dyn Replicated>) -> Result<HashSet<i64>> {
    let config = DatabaseConfig::from_url(&c.replica_url())?.alias(alias("check"));
    let db = database(config)?;
    let mut conn = db.async_connection().await?;
    let rows = conn.execute("SELECT [id] FROM [rbench_acked]", ()).await?;
    let ids = rows
        .iter()
        .map(|r| r.try_get::<i64, _>(0))
        .collect::<dal::Result<HashSet<i64>>>()?;
    drop(conn);
    db.close(Duration::from_secs(5)).await?;
    Ok(ids)
}

// ---------------------------------------------------------------------------------------------
// Report

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn notes(o: &Opts) -> Vec<String> {
    let mut n = vec![
        "Everything runs on this one machine: the client (this process), the primary and the replica share its CPUs, so a replica adds no CPU to serve reads with and no read speed-up is to be expected here; the ratios show what routing through dal costs on a shared machine, not what a replica on a machine of its own would bring.".to_owned(),
        "a and c0 use a Database without replica (async_connection for every statement); b and c a Database with .replica(..) (read_connection for every SELECT, async_connection for c's UPDATE; read-your-writes mode Session, the default). Each workload with the replica is divided by the same statements without it: b by a (point SELECTs only), c by c0 (UPDATE, then SELECT of the row just written), so b ÷ a and c ÷ c0 are what routing through dal's replica support costs. Each round builds its Database with an alias of its own (so pools of its own: the primary's read-write pool, the replica's pool, the primary's read pool), opens them, warms up, measures, and closes them.".to_owned(),
        "c0 and c count both client statements (UPDATE and SELECT) in q/s; their pairs/s rows are half of that. In both, each iteration updates a row through async_connection, gives that connection back, then takes a connection for the SELECT (c0: async_connection again, on the primary; c: read_connection, the replica if it has applied the update, else the primary's read pool). dal's own read-your-writes work in c (asking the primary for its write position, the replay check on the replica: on PostgreSQL pg_last_wal_replay_lsn() compared with it, on MariaDB MASTER_GTID_WAIT(pos, 0.01), which waits up to 10 ms for the replica to apply the write) is not counted as queries; it shows in the read connection's acquisition time. Each client updates only its own rows, so a read that does not return the value just written counts as stale.".to_owned(),
        "Served by replica / primary: Connection::role() of the SELECTs in the measured window. Read conn. acquire: mean time of the call that lent the SELECT's connection (a and c0: async_connection, b and c: read_connection).".to_owned(),
        "Client CPU µs/q: this process's CPU time (all threads) per client statement.".to_owned(),
        "The clusters are the test harness's (tests/support/cluster.rs): PostgreSQL 15 with fsync=off and a streaming standby (hot_standby_feedback); MariaDB with innodb_flush_log_at_trx_commit=0, sync_binlog=0, ROW binary logs and a GTID replica. Their figures are not comparable with bench-results/latest.md (the shared servers).".to_owned(),
    ];
    if o.failover {
        n.push(format!("Failover: Database::from_url with both servers in the host list and target_session_attrs=read-write (dal's default retry policy); {WRITERS} tasks insert one row per statement (async_connection each), retrying after 20 ms with a new id when an insert fails. After {} s the primary is stopped cleanly (PostgreSQL: pg_ctl stop -m fast; MariaDB: SHUTDOWN WAIT FOR ALL SLAVES) and the replica promoted (PostgreSQL: pg_ctl promote -w, then the harness polls pg_is_in_recovery(); MariaDB: apply the relay log, STOP SLAVE, RESET SLAVE ALL, SET GLOBAL read_only = 0). (i) is the servers' time, through the harness's command-line tools: dal takes no part in it. (ii) runs from the moment the harness returned from the promotion to each writer's first acknowledged insert after it; since the server accepts writes a little before the harness has seen it, a writer retrying every 20 ms is often writing again already, and (ii) is then the time to its next insert. The writers' outage row is therefore the one to read for the application's view: the longest time between two acknowledged inserts of a writer, and when it ended relative to the end of the promotion. (iii) compares the ids acknowledged to the writers with the ids on the new primary; rows on the new primary beyond the acknowledged are inserts that committed while their answer was lost to the shutdown (the writer saw an error).", WRITES_BEFORE_STOP.as_secs_f64()));
    }
    n
}

// ---------------------------------------------------------------------------------------------

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("replicas: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let Some(o) = parse_opts()? else {
        println!("{HELP}");
        return Ok(());
    };
    let started = Utc::now();
    let loadavg_start = loadavg();
    let mut machine = dal_bench::machine::describe();
    eprintln!(
        "replicas: {} rounds, {:.2} s measured + {:.2} s warm-up per workload and round; \
         load average {loadavg_start}",
        o.rounds,
        o.measure.as_secs_f64(),
        o.warmup.as_secs_f64()
    );
    let mut reads = Vec::new();
    for &kind in &o.backends {
        let (version, results) = read_workloads(&o, kind).await?;
        match kind {
            Kind::Postgres => machine.postgres = Some(version),
            Kind::MariaDb => machine.mysql = Some(version),
        }
        reads.extend(results);
    }
    let mut failover = Vec::new();
    if o.failover {
        // Backends alternate round by round; each round on a fresh cluster.
        let mut rounds: Vec<Vec<FailoverRound>> = vec![Vec::new(); o.backends.len()];
        for round in 0..o.rounds {
            for (i, &kind) in o.backends.iter().enumerate() {
                eprintln!("{}: failover round {}", kind.name(), round + 1);
                rounds[i].push(failover_round(kind, round).await?);
            }
        }
        failover = o
            .backends
            .iter()
            .zip(rounds)
            .map(|(&kind, rounds)| FailoverResult::new(kind.name(), WRITERS, rounds))
            .collect();
    }
    let failed = failed_checks(&reads, &failover);
    let report = ReplicasReport {
        started: started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        machine,
        loadavg_start,
        loadavg_end: loadavg(),
        settings: Settings {
            rounds: o.rounds,
            seconds_per_round: o.measure.as_secs_f64(),
            warmup_seconds: o.warmup.as_secs_f64(),
            clients: CLIENTS,
            pool_max: CLIENTS,
            rows: ROWS,
            failover_writers: WRITERS,
        },
        reads,
        failover,
        notes: notes(&o),
        failed_checks: failed.clone(),
    };
    let dir = results_dir();
    let md = write(&report, &dir)?;
    println!("{md}");
    eprintln!(
        "written: {}/replicas.{{json,md}} in {:.0} s",
        dir.display(),
        (Utc::now() - started).num_milliseconds() as f64 / 1e3
    );
    if !failed.is_empty() {
        return Err(format!("{} check(s) failed:\n{}", failed.len(), failed.join("\n")).into());
    }
    Ok(())
}
