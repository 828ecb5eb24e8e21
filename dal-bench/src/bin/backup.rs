//! `cargo run --release -p dal-bench --bin backup [-- --entities N --batch B]`
//!
//! Issue 14's acceptance for backups and copies, too slow for the test suite: N entities
//! (default 100 000) of mixed field types (decimal, bytes, timestamps of years 1000 to 9999,
//! NULLs, unicode, JSON, a mixed-case field), 3 versions each, every tenth soft-deleted, saved
//! into a fresh SQLite file. Then, each phase timed and its peak RSS measured (VmHWM of
//! `/proc/self/status`, reset before each phase through `/proc/self/clear_refs`):
//!
//! 1. `dal::backup::copy` SQLite → a fresh PostgreSQL database (`CREATE DATABASE` on the
//!    shared server, dropped at the end);
//! 2. `dal::backup::export` of that PostgreSQL database into a directory;
//! 3. `dal::backup::import` of the directory into a fresh MariaDB database;
//! 4. verification: exports of the SQLite source and of the MariaDB target; their files must
//!    equal the PostgreSQL export byte for byte (every row and history row of every table,
//!    in the canonical encoding), and a sample of entities must read back the same through
//!    the entity layer (`get_entity` with history) on all three.
//!
//! Writes `bench-results/backup.{json,md}`; exits non-zero when a count, version or value
//! differs, or a phase's peak RSS reaches 200 MB.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use dal::backup::{BackupOptions, Manifest};
use dal::{Backend, Database, DatabaseConfig, Decimal, Entity};
use serde::{Deserialize, Serialize};
use serde_json::json;

const RSS_LIMIT_MB: f64 = 200.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "bench_items")]
struct Item {
    id: Option<String>,
    name: String,
    price: Decimal,
    blob: Vec<u8>,
    at: DateTime<Utc>,
    day: NaiveDate,
    note: Option<String>,
    big: i64,
    ratio: f64,
    flag: bool,
    doc: serde_json::Value,
    #[entity(rename = "MixedCase")]
    mixed: Option<i64>,
}

fn item(i: usize, round: i64) -> Item {
    let at = match i % 3 {
        0 => Utc.with_ymd_and_hms(1000, 1, 1, 0, 0, 0).single(),
        1 => Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).single(),
        _ => Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).single(),
    }
    .unwrap_or_default()
        + chrono::Duration::microseconds(i as i64 + round);
    let prices = ["0.000001", "-12345.678901", "99999999999.9999", "19.99"];
    Item {
        id: None,
        name: format!("Zoë 😀 «{i}» round {round}"),
        price: prices[i % prices.len()].parse().unwrap_or_default(),
        blob: vec![(i % 256) as u8, 0, 255, round as u8],
        at,
        day: NaiveDate::from_ymd_opt(1000 + (i % 9000) as i32, 2, 28).unwrap_or_default(),
        note: if i.is_multiple_of(3) {
            None
        } else {
            Some(format!("note {round}"))
        },
        big: if i.is_multiple_of(2) {
            i64::MAX - round
        } else {
            i64::MIN + i as i64
        },
        ratio: 0.1 * (i as f64 + round as f64),
        flag: i.is_multiple_of(2),
        doc: json!({"i": i, "round": round, "list": [1, "two", null]}),
        mixed: if i.is_multiple_of(5) {
            None
        } else {
            Some(i as i64)
        },
    }
}

#[derive(Debug, Serialize)]
struct Phase {
    name: String,
    seconds: f64,
    peak_rss_mb: f64,
    rows: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    entities: usize,
    versions_per_entity: u32,
    batch_size: usize,
    rows: u64,
    history_rows: u64,
    phases: Vec<Phase>,
    identical: bool,
    problems: Vec<String>,
    rss_limit_mb: f64,
    total_seconds: f64,
    machine: dal_bench::report::Machine,
}

/// VmHWM in MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn server_url(backend: Backend, name: &str) -> String {
    let base = match backend {
        Backend::Postgres => std::env::var("DAL_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/dal_test".into()),
        _ => std::env::var("DAL_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/dal_test".into()),
    };
    match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => base,
    }
}

async fn admin_sql(backend: Backend, sql: &str) -> dal::Result<()> {
    let admin = Database::new(
        backend,
        DatabaseConfig::from_url(&server_url(
            backend,
            if backend == Backend::Postgres {
                "postgres"
            } else {
                "mysql"
            },
        ))?
        .alias(format!("bench-backup-admin-{}", backend.as_str())),
    );
    admin.async_connection().await?.execute(sql, ()).await?;
    admin.close(Duration::from_secs(5)).await
}

async fn fresh(backend: Backend, name: &str) -> dal::Result<Database> {
    let force = if backend == Backend::Postgres {
        " WITH (FORCE)"
    } else {
        ""
    };
    admin_sql(backend, &format!("DROP DATABASE IF EXISTS {name}{force}")).await?;
    admin_sql(backend, &format!("CREATE DATABASE {name}")).await?;
    Ok(Database::new(
        backend,
        DatabaseConfig::from_url(&server_url(backend, name))?.alias(format!("bench-{name}")),
    ))
}

async fn drop_db(backend: Backend, name: &str, db: &Database) {
    let _ = db.close(Duration::from_secs(5)).await;
    let force = if backend == Backend::Postgres {
        " WITH (FORCE)"
    } else {
        ""
    };
    let _ = admin_sql(backend, &format!("DROP DATABASE IF EXISTS {name}{force}")).await;
}

async fn seed(db: &Database, n: usize, batch: usize) -> dal::Result<()> {
    let mut conn = db.async_connection().await?;
    let mut start = 0;
    while start < n {
        let end = (start + batch).min(n);
        let mut items: Vec<Item> = (start..end).map(|i| item(i, 0)).collect();
        let saved = conn.save_all(&items).await?;
        for (it, s) in items.iter_mut().zip(saved) {
            it.id = s.id;
        }
        for round in 1..3 {
            let next: Vec<Item> = items
                .iter()
                .enumerate()
                .map(|(k, it)| Item {
                    id: it.id.clone(),
                    ..item(start + k, round)
                })
                .collect();
            conn.save_all(&next).await?;
        }
        for (k, it) in items.iter().enumerate() {
            if (start + k) % 10 == 0 {
                if let Some(id) = &it.id {
                    conn.delete::<Item>(id).await?;
                }
            }
        }
        start = end;
    }
    Ok(())
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dal-bench-backup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs `f` as a measured phase.
async fn phase<T, F>(phases: &mut Vec<Phase>, name: &str, rows: u64, f: F) -> dal::Result<T>
where
    F: std::future::Future<Output = dal::Result<T>>,
{
    reset_peak_rss();
    let start = Instant::now();
    let out = f.await?;
    let p = Phase {
        name: name.to_owned(),
        seconds: start.elapsed().as_secs_f64(),
        peak_rss_mb: peak_rss_mb(),
        rows,
    };
    eprintln!(
        "{:<40} {:>8.1} s  peak RSS {:>6.1} MB",
        p.name, p.seconds, p.peak_rss_mb
    );
    phases.push(p);
    Ok(out)
}

/// A sample of entities read through the entity layer (with history) on each database.
async fn sample(db: &Database, ids: &[String]) -> dal::Result<Vec<serde_json::Value>> {
    let mut conn = db.async_connection().await?;
    let mut out = Vec::new();
    for id in ids {
        let e = conn.get_entity("bench_items", id).include_deleted().await?;
        let h = conn.get_entity_history("bench_items", id).await?;
        out.push(json!({"entity": e, "history": h}));
    }
    Ok(out)
}

fn markdown(r: &Report) -> String {
    let machine = format!(
        "{} CPUs ({}), {}",
        r.machine.cpus, r.machine.cpu_model, r.machine.memory
    );
    let mut md = String::new();
    md.push_str("# Backups and copies (issue 14 acceptance)\n\n");
    md.push_str(&format!(
        "{} entities × {} versions (every tenth soft-deleted: {} rows, {} history rows), mixed field types; batches of {}. \
         Shared PostgreSQL 15 and MariaDB 10.11 on loopback; SQLite file in the temp dir. Peak RSS is VmHWM, reset before each phase. \
         Machine: {}.\n\n",
        r.entities, r.versions_per_entity, r.rows, r.history_rows, r.batch_size,
        machine
    ));
    md.push_str("| phase | rows | seconds | rows/s | peak RSS (MB) |\n|---|---:|---:|---:|---:|\n");
    for p in &r.phases {
        let rate = if p.seconds > 0.0 {
            p.rows as f64 / p.seconds
        } else {
            0.0
        };
        md.push_str(&format!(
            "| {} | {} | {:.1} | {:.0} | {:.1} |\n",
            p.name, p.rows, p.seconds, rate, p.peak_rss_mb
        ));
    }
    md.push_str(&format!(
        "\nIdentical (counts, versions, every value; exports byte for byte, entity-layer sample): **{}**. RSS limit {} MB: **{}**. Total wall time {:.0} s.\n",
        if r.identical { "yes" } else { "NO" },
        r.rss_limit_mb,
        if r.phases.iter().all(|p| p.peak_rss_mb < r.rss_limit_mb) { "held" } else { "EXCEEDED" },
        r.total_seconds
    ));
    for p in &r.problems {
        md.push_str(&format!("- problem: {p}\n"));
    }
    md
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn same_files(a: &Manifest, b: &Manifest, what: &str, problems: &mut Vec<String>) {
    if a.entities != b.entities {
        problems.push(format!(
            "{what}: the exports differ (counts or file checksums)"
        ));
    }
}

async fn run() -> dal::Result<Report> {
    let n = arg("--entities", 100_000);
    let batch = arg("--batch", 1000);
    let started = Instant::now();
    let opts = BackupOptions::new().batch_size(batch);
    let mut phases = Vec::new();
    let mut problems = Vec::new();

    let sqlite_path =
        std::env::temp_dir().join(format!("dal-bench-backup-{}.db", std::process::id()));
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", sqlite_path.display()));
    }
    let sqlite = Database::new(
        Backend::Sqlite,
        DatabaseConfig::new(sqlite_path.to_string_lossy().into_owned())
            .alias("bench-backup-sqlite"),
    );
    phase(
        &mut phases,
        "seed SQLite (save_all, 3 versions)",
        n as u64 * 3,
        seed(&sqlite, n, batch),
    )
    .await?;
    let pg_name = format!("dal_bench_backup_pg_{}", std::process::id());
    let my_name = format!("dal_bench_backup_my_{}", std::process::id());
    let pg = fresh(Backend::Postgres, &pg_name).await?;
    let my = fresh(Backend::MySql, &my_name).await?;

    let result = async {
        let copied = phase(
            &mut phases,
            "copy SQLite → PostgreSQL",
            0,
            dal::backup::copy_with(&sqlite, &pg, &opts),
        )
        .await?;
        let items = copied
            .entities
            .iter()
            .find(|e| e.name == "bench_items")
            .ok_or_else(|| dal::Error::Backup("bench_items was not copied".into()))?;
        let (rows, history) = (items.rows, items.history);
        if let Some(p) = phases.last_mut() {
            p.rows = rows + history;
        }
        let pg_dir = dir("pg");
        let pg_export = phase(
            &mut phases,
            "export PostgreSQL → JSON Lines",
            rows + history,
            dal::backup::export_with(&pg, &pg_dir, &opts),
        )
        .await?;
        phase(
            &mut phases,
            "import JSON Lines → MariaDB",
            rows + history,
            dal::backup::import_with(&my, &pg_dir, &opts),
        )
        .await?;
        let sqlite_dir = dir("sqlite");
        let sqlite_export = phase(
            &mut phases,
            "verify: export SQLite source",
            rows + history,
            dal::backup::export_with(&sqlite, &sqlite_dir, &opts),
        )
        .await?;
        let my_dir = dir("mariadb");
        let my_export = phase(
            &mut phases,
            "verify: export MariaDB target",
            rows + history,
            dal::backup::export_with(&my, &my_dir, &opts),
        )
        .await?;
        same_files(
            &sqlite_export,
            &pg_export,
            "SQLite source vs PostgreSQL copy",
            &mut problems,
        );
        same_files(
            &sqlite_export,
            &my_export,
            "SQLite source vs MariaDB import",
            &mut problems,
        );
        let expected = (n as u64, n as u64 * 3 + (n as u64).div_ceil(10));
        if (rows, history) != expected {
            problems.push(format!(
                "counts {:?}, expected {:?}",
                (rows, history),
                expected
            ));
        }
        // Entity-layer sample.
        let mut conn = sqlite.async_connection().await?;
        let ids: Vec<String> = conn
            .find_entities("bench_items")
            .include_deleted()
            .limit(50)
            .offset(n as u64 / 3)
            .await?
            .iter()
            .filter_map(|e| e["id"].as_str().map(str::to_owned))
            .collect();
        drop(conn);
        let a = sample(&sqlite, &ids).await?;
        if a != sample(&pg, &ids).await? {
            problems.push("entity-layer sample differs on PostgreSQL".into());
        }
        if a != sample(&my, &ids).await? {
            problems.push("entity-layer sample differs on MariaDB".into());
        }
        for d in [pg_dir, sqlite_dir, my_dir] {
            let _ = std::fs::remove_dir_all(d);
        }
        Ok::<_, dal::Error>((rows, history))
    }
    .await;
    drop_db(Backend::Postgres, &pg_name, &pg).await;
    drop_db(Backend::MySql, &my_name, &my).await;
    let _ = sqlite.close(Duration::from_secs(5)).await;
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", sqlite_path.display()));
    }
    let (rows, history) = result?;
    for p in &phases {
        if p.name.starts_with("seed") {
            continue;
        }
        if p.peak_rss_mb.is_nan() || p.peak_rss_mb >= RSS_LIMIT_MB {
            problems.push(format!("{}: peak RSS {:.1} MB", p.name, p.peak_rss_mb));
        }
    }
    Ok(Report {
        entities: n,
        versions_per_entity: 3,
        batch_size: batch,
        rows,
        history_rows: history,
        identical: problems.iter().all(|p| p.contains("RSS")),
        phases,
        problems,
        rss_limit_mb: RSS_LIMIT_MB,
        total_seconds: started.elapsed().as_secs_f64(),
        machine: dal_bench::machine::describe(),
    })
}

fn write(report: &Report, dir: &Path) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("backup.json"),
        serde_json::to_string_pretty(report).map_err(std::io::Error::other)?,
    )?;
    let md = markdown(report);
    std::fs::write(dir.join("backup.md"), &md)?;
    Ok(md)
}

#[tokio::main]
async fn main() {
    match run().await {
        Ok(report) => {
            match write(&report, &dal_bench::results_dir()) {
                Ok(md) => print!("{md}"),
                Err(e) => {
                    eprintln!("cannot write the results: {e}");
                    std::process::exit(2);
                }
            }
            if !report.problems.is_empty() {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("backup bench failed: {e}");
            std::process::exit(1);
        }
    }
}
