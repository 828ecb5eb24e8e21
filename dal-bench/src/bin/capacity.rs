//! `cargo run --release -p dal-bench --bin capacity -- --users 200,1000,5000 --pool 20 --query-ms 100`
//!
//! Simulates N concurrent users of one application server: every user, back to back, borrows a
//! connection from ONE dal pool (acquisition timeout 10 s by default), runs a query that takes
//! `--query-ms` on the server (`SELECT 1 FROM pg_sleep(..)`, or `SLEEP(..)` on MySQL), and gives
//! the connection back; a user whose acquisition times out tries again at once. Each user count
//! runs for `--seconds` (default 20) on a fresh pool. Reports throughput against the theoretical
//! limit (pool ÷ query time), acquisition wait percentiles, the timeout rate and dal's
//! `scaling_advice()` verdict from the pool's metrics, and peak memory (VmHWM); writes
//! `bench-results/capacity.{json,md,png}`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dal::{params, Backend, DatabaseConfig, PoolManager};
use dal_bench::chart::{capacity_chart, CapacityPoint};
use dal_bench::machine::{peak_rss, reset_peak_rss};
use dal_bench::report::fmt_num;
use dal_bench::stats::{closed_loop_wait, percentile};
use dal_bench::{results_dir, BoxError, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

const HELP: &str = "cargo run --release -p dal-bench --bin capacity -- [options]
  --users N[,N..]        concurrent users per run (default 200,1000,5000)
  --pool N               pool size: max (and min) connections (default 20)
  --query-ms MS          server-side duration of each query (default 100)
  --seconds S            duration of each run (default 20)
  --acquire-timeout-s S  connection acquisition timeout (default 10)
  --url URL              PostgreSQL or MySQL URL (default $DAL_BENCH_POSTGRES_URL or
                         postgres://postgres@127.0.0.1:5432/dal_test)";

#[derive(Debug, Clone)]
struct Opts {
    users: Vec<usize>,
    pool: usize,
    query: Duration,
    seconds: f64,
    acquire_timeout: Duration,
    url: String,
}

fn parse_opts() -> Result<Opts> {
    let mut o = Opts {
        users: vec![200, 1000, 5000],
        pool: 20,
        query: Duration::from_millis(100),
        seconds: 20.0,
        acquire_timeout: Duration::from_secs(10),
        url: std::env::var("DAL_BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/dal_test".into()),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| {
            args.next()
                .ok_or_else(|| BoxError::from(format!("{name} needs a value")))
        };
        match a.as_str() {
            "--users" => {
                o.users = val("--users")?
                    .split(',')
                    .map(|s| s.trim().parse::<usize>())
                    .collect::<std::result::Result<_, _>>()?
            }
            "--pool" => o.pool = val("--pool")?.parse()?,
            "--query-ms" => {
                o.query = Duration::from_secs_f64(val("--query-ms")?.parse::<f64>()? / 1e3)
            }
            "--seconds" => o.seconds = val("--seconds")?.parse()?,
            "--acquire-timeout-s" => {
                o.acquire_timeout = Duration::from_secs_f64(val("--acquire-timeout-s")?.parse()?)
            }
            "--url" => o.url = val("--url")?,
            "-h" | "--help" => {
                println!("{HELP}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other:?} (see --help)").into()),
        }
    }
    if o.pool == 0 || o.users.is_empty() || o.users.contains(&0) || o.seconds <= 0.0 {
        return Err("--pool, --users and --seconds must be positive".into());
    }
    if o.pool > 60 {
        return Err(
            "--pool above 60: this machine's PostgreSQL allows 100 connections in all".into(),
        );
    }
    Ok(o)
}

/// One user count's outcome.
#[derive(Debug, Clone, Serialize)]
struct Outcome {
    users: usize,
    pool: usize,
    query_ms: f64,
    seconds: f64,
    acquire_timeout_s: f64,
    completed: u64,
    timeouts: u64,
    errors: u64,
    throughput_qps: f64,
    limit_qps: f64,
    /// What the closed-loop queueing model predicts for the wait (ms).
    model_wait_ms: f64,
    wait_p50_ms: Option<f64>,
    wait_p95_ms: Option<f64>,
    wait_p99_ms: Option<f64>,
    /// Timeouts ÷ attempts, counted by this tool.
    measured_timeout_rate: f64,
    /// dal's `PoolMetrics::timeout_rate()` (last 60 s).
    dal_timeout_rate: f64,
    /// dal's `PoolMetrics::scaling_advice()`.
    scaling_advice: String,
    scaling_action: String,
    /// dal's own wait percentiles (ms), for comparison.
    dal_wait_p99_ms: f64,
    peak_rss_mib: Option<f64>,
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("capacity: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let o = parse_opts()?;
    let mut outcomes = Vec::new();
    for &users in &o.users {
        outcomes.push(simulate(&o, users).await?);
    }
    let md = markdown(&o, &outcomes);
    println!("{md}");
    let dir = results_dir();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("capacity.json"),
        serde_json::to_string_pretty(&outcomes)?,
    )?;
    std::fs::write(dir.join("capacity.md"), &md)?;
    let points: Vec<CapacityPoint> = outcomes
        .iter()
        .map(|r| CapacityPoint {
            users: r.users,
            throughput: r.throughput_qps,
            limit: r.limit_qps,
            timeout_rate: r.dal_timeout_rate,
        })
        .collect();
    let title = format!(
        "dal capacity: pool of {}, {} ms queries, {} s acquisition timeout",
        o.pool,
        o.query.as_millis(),
        o.acquire_timeout.as_secs_f64()
    );
    if let Err(e) = capacity_chart(&dir.join("capacity.png"), &title, &points) {
        eprintln!("chart not written: {e}");
    }
    eprintln!("written: {}/capacity.{{json,md,png}}", dir.display());
    Ok(())
}

async fn simulate(o: &Opts, users: usize) -> Result<Outcome> {
    // A fresh pool per run (the alias is part of the configuration hash), so that the timeout
    // window of one run does not leak into the next.
    let config = DatabaseConfig::from_url(&o.url)?
        .pool_size(o.pool, o.pool)
        .connection_acquisition_timeout(o.acquire_timeout)
        .query_execution_timeout(o.query * 20 + Duration::from_secs(5))
        .alias(format!("capacity-{users}-{}", std::process::id()));
    let backend = config.backend().ok_or("URL names no backend")?;
    let sql = match backend {
        Backend::Postgres => "SELECT 1 AS [one] FROM pg_sleep(?)",
        Backend::MySql => "SELECT SLEEP(?) AS [one]",
        Backend::Sqlite => {
            return Err(
                "the capacity tool needs a server-side sleep: use a PostgreSQL or MySQL URL".into(),
            )
        }
    };
    let db = dal::Database::new(backend, config);
    drop(db.async_connection().await?); // opens the pool's connections before the clock starts
    let reset = reset_peak_rss();

    let completed = Arc::new(AtomicU64::new(0));
    let timeouts = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let secs = o.query.as_secs_f64();
    let mut tasks = Vec::with_capacity(users);
    for _ in 0..users {
        let (db, completed, timeouts, errors, mut stop) = (
            db.clone(),
            completed.clone(),
            timeouts.clone(),
            errors.clone(),
            stop_rx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut waits: Vec<f64> = Vec::new();
            loop {
                if *stop.borrow() {
                    break;
                }
                let t = Instant::now();
                let acquired = tokio::select! {
                    r = db.async_connection() => r,
                    _ = stop.changed() => break, // the run is over: stop waiting
                };
                match acquired {
                    Ok(mut conn) => {
                        waits.push(t.elapsed().as_secs_f64() * 1e3);
                        match conn.execute(sql, params![secs]).await {
                            Ok(_) => {
                                completed.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Err(e) if e.is_timeout() => {
                        timeouts.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            waits
        }));
    }

    let bar = ProgressBar::new((o.seconds * 10.0).round() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {elapsed:>3} {msg}")
            .map_err(|e| BoxError::from(e.to_string()))?
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{users} users"));
    let start = Instant::now();
    let run_for = Duration::from_secs_f64(o.seconds);
    while start.elapsed() < run_for {
        tokio::time::sleep(Duration::from_millis(100).min(run_for.saturating_sub(start.elapsed())))
            .await;
        bar.set_position((start.elapsed().as_secs_f64() * 10.0) as u64);
        bar.set_message(format!(
            "{} queries, {} timeouts",
            completed.load(Ordering::Relaxed),
            timeouts.load(Ordering::Relaxed)
        ));
    }
    let elapsed = start.elapsed();
    let done_at_end = completed.load(Ordering::Relaxed);
    let timeouts_at_end = timeouts.load(Ordering::Relaxed);
    // dal's verdict, read while the run's window is complete.
    let metrics = PoolManager::get_pool_metrics(db.hash()).ok_or("the pool has no metrics")?;
    let _ = stop_tx.send(true);
    let mut waits = Vec::new();
    for t in tasks {
        waits.extend(t.await?);
    }
    bar.finish_with_message(format!("{done_at_end} queries, {timeouts_at_end} timeouts"));
    let peak = if reset { peak_rss() } else { None };
    db.close(Duration::from_secs(10)).await?;

    let attempts = done_at_end + timeouts_at_end;
    Ok(Outcome {
        users,
        pool: o.pool,
        query_ms: o.query.as_secs_f64() * 1e3,
        seconds: elapsed.as_secs_f64(),
        acquire_timeout_s: o.acquire_timeout.as_secs_f64(),
        completed: done_at_end,
        timeouts: timeouts_at_end,
        errors: errors.load(Ordering::Relaxed),
        throughput_qps: done_at_end as f64 / elapsed.as_secs_f64(),
        limit_qps: o.pool as f64 / o.query.as_secs_f64(),
        model_wait_ms: closed_loop_wait(users, o.pool, o.query.as_secs_f64()) * 1e3,
        wait_p50_ms: percentile(&waits, 0.50),
        wait_p95_ms: percentile(&waits, 0.95),
        wait_p99_ms: percentile(&waits, 0.99),
        measured_timeout_rate: if attempts == 0 {
            0.0
        } else {
            timeouts_at_end as f64 / attempts as f64
        },
        dal_timeout_rate: metrics.timeout_rate(),
        scaling_advice: format!("{:?}", metrics.scaling_advice()),
        scaling_action: metrics.scaling_advice().action().to_owned(),
        dal_wait_p99_ms: metrics.wait_time.p99.as_secs_f64() * 1e3,
        peak_rss_mib: peak.map(|b| b as f64 / (1 << 20) as f64),
    })
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 1000.0 => format!("{:.2} s", v / 1e3),
        Some(v) => format!("{v:.1} ms"),
        None => "n/a".into(),
    }
}

fn markdown(o: &Opts, rows: &[Outcome]) -> String {
    let mut s = format!(
        "One dal pool of {} connections, {} ms queries, {} s acquisition timeout, {} s per run; theoretical limit {} q/s.\n\n",
        o.pool,
        o.query.as_millis(),
        o.acquire_timeout.as_secs_f64(),
        o.seconds,
        fmt_num(o.pool as f64 / o.query.as_secs_f64())
    );
    s.push_str(
        "Model wait: steady-state closed-loop queueing, (users ÷ pool − 1) × query time.\n\n",
    );
    s.push_str("| Users | Throughput (q/s) | % of limit | Wait p50 | Wait p95 | Wait p99 | Model wait | Timeouts | Timeout rate | scaling_advice() | Peak RSS |\n");
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {:.0} % | {} | {} | {} | {} | {} | {:.1} % | {} ({}) | {} |\n",
            r.users,
            fmt_num(r.throughput_qps),
            100.0 * r.throughput_qps / r.limit_qps,
            ms(r.wait_p50_ms),
            ms(r.wait_p95_ms),
            ms(r.wait_p99_ms),
            if r.model_wait_ms > r.acquire_timeout_s * 1e3 {
                format!("{} > timeout", ms(Some(r.model_wait_ms)))
            } else {
                ms(Some(r.model_wait_ms))
            },
            r.timeouts,
            100.0 * r.dal_timeout_rate,
            r.scaling_advice,
            r.scaling_action,
            r.peak_rss_mib
                .map_or("n/a".into(), |m| format!("{m:.0} MiB")),
        ));
    }
    s
}
