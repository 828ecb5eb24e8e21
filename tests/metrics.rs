//! Pool and query metrics on every backend: timeout-rate bands driven by real acquisition
//! timeouts, wait-time and query-duration percentiles, statement-cache hits, errors by
//! category, the Prometheus exposition (checked with a parser and a strict line grammar), the
//! slow-query log and the per-query `tracing` span, health checks, and the `metrics` facade.
//!
//! Every test takes `SERIAL`: health checks probe every pool of the process, and the band
//! tests need pools nobody else touches.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::logs::Captured;
use common::{each_backend, each_backend_with, slow_sql};
use dal::prelude::*;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn metrics(db: &Database) -> PoolMetrics {
    db.pool_metrics().expect("the pool exists")
}

/// A database on `backend` whose server refuses connections (SQLite: a path that cannot be
/// opened), with its own alias.
fn refusing(backend: Backend, alias: &str) -> Database {
    let config = match backend {
        Backend::Sqlite => DatabaseConfig::new("/nonexistent-dal-dir/sub/db.sqlite"),
        _ => common::config(backend, alias)
            .host("127.0.0.1")
            .port(common::refused_port()),
    };
    Database::new(
        backend,
        config
            .alias(format!("{alias}-{}", backend.as_str()))
            .password("hunter2-secret")
            .connection_acquisition_timeout(Duration::from_secs(2)),
    )
}

/// Holds the pool's only connection, lets `timeouts` acquisitions run out of time, then
/// makes the rest of `attempts` succeed.
async fn drive(db: &Database, timeouts: u64, attempts: u64) -> dal::Result<()> {
    let held = db.async_connection().await?;
    for _ in 0..timeouts {
        let e = db.async_connection().await.unwrap_err();
        assert_eq!(e.timeout_kind(), Some(TimeoutKind::Acquire), "{e:?}");
    }
    drop(held);
    for _ in 0..attempts - 1 - timeouts {
        drop(db.async_connection().await?);
    }
    Ok(())
}

#[tokio::test]
async fn timeout_rate_bands_map_to_scaling_advice_from_real_timeouts() {
    let _serial = SERIAL.lock().await;
    each_backend_with(
        "metrics_bands",
        // Long enough to open the first connection on a loaded machine: the counts are exact.
        |c| {
            c.pool_size(1, 1)
                .connection_acquisition_timeout(Duration::from_secs(1))
        },
        |db| async move {
            // (advice, acquisitions that time out, acquisition attempts)
            let cases = [
                (ScalingAdvice::Normal, 0, 50),            // 0 %
                (ScalingAdvice::ReviewSlowQueries, 1, 300), // 0.33 %
                (ScalingAdvice::ScaleVertically, 1, 40),    // 2.5 %
                (ScalingAdvice::ScaleHorizontally, 2, 10),  // 20 %
            ];
            for (advice, timeouts, attempts) in cases {
                let config = db
                    .config()
                    .clone()
                    .alias(format!("{}-{}", db.config().get_alias(), advice.as_str()));
                let band = Database::new(db.backend(), config);
                drive(&band, timeouts, attempts).await?;
                let m = metrics(&band);
                assert_eq!(
                    (m.window_timeouts, m.window_acquisitions),
                    (timeouts, attempts),
                    "{advice:?}"
                );
                let rate = timeouts as f64 / attempts as f64;
                assert!((m.timeout_rate() - rate).abs() < 1e-12, "{m:?}");
                assert_eq!(m.scaling_advice(), advice, "rate {}", m.timeout_rate());
                assert_eq!(m.timeouts[&TimeoutKind::Acquire], timeouts);
                assert_eq!(m.acquisitions, attempts - timeouts);
                let text = PoolManager::prometheus_text();
                let line = format!(
                    "dal_pool_scaling_advice{{alias=\"{}\",backend=\"{}\",hash=\"{}\",advice=\"{}\"}} 1",
                    band.config().get_alias(),
                    band.backend().as_str(),
                    band.hash(),
                    advice.as_str()
                );
                assert!(text.contains(&line), "missing {line}");
                band.close(Duration::from_secs(10)).await?;
            }
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn wait_and_query_percentiles_statement_cache_and_errors_by_category() {
    let _serial = SERIAL.lock().await;
    each_backend_with(
        "metrics_percentiles",
        |c| c.pool_size(1, 1),
        |db| async move {
            let mut conn = db.async_connection().await?;
            for _ in 0..5 {
                conn.execute("SELECT 1", ()).await?;
            }
            let deadline = Duration::from_millis(150);
            let e = conn
                .execute(&slow_sql(db.backend(), 20), ())
                .timeout(deadline)
                .await
                .unwrap_err();
            assert_eq!(e.timeout_kind(), Some(TimeoutKind::Query), "{e:?}");
            let e = conn
                .execute("SELECT * FROM [metrics_no_such_table]", ())
                .await
                .unwrap_err();
            assert_eq!(e.category(), "database");
            drop(conn);

            let m = metrics(&db);
            assert!(m.queries >= 7, "{m:?}");
            assert_eq!(m.query_duration.count, m.queries);
            let q = m.query_duration;
            assert!(q.p50 <= q.p95 && q.p95 <= q.p99 && q.p99 <= q.max, "{q:?}");
            assert!(q.max >= deadline && q.p99 >= deadline, "{q:?}");
            assert!(q.sum >= deadline);
            // "SELECT 1" prepared once, then found in the connection's cache four times.
            assert!(m.statement_cache_hits >= 4, "{m:?}");
            assert!(m.statement_cache_misses >= 1, "{m:?}");
            assert!(m.statement_cache_hit_ratio() > 0.5);
            assert_eq!(m.timeouts[&TimeoutKind::Query], 1);
            assert_eq!(m.errors.get("timeout"), Some(&1), "{:?}", m.errors);
            assert!(m.errors.get("database").copied().unwrap_or(0) >= 1);
            assert_eq!(m.wait_time.count, 1);
            // Query timeouts are not acquisition timeouts.
            assert_eq!(m.timeout_rate(), 0.0);
            assert_eq!(m.scaling_advice(), ScalingAdvice::Normal);
            Ok(())
        },
    )
    .await;
}

/// A strict reading of the text exposition format (0.0.4): every line is a HELP, a TYPE or a
/// sample of a declared family, label values are properly quoted and escaped, values parse,
/// and no series appears twice. Returns `name{labels} -> value`.
fn parse_strictly(text: &str) -> HashMap<(String, Vec<(String, String)>), f64> {
    fn name_ok(n: &str) -> bool {
        let mut c = n.chars();
        matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helped: HashSet<String> = HashSet::new();
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let ctx = format!("line {}: {line}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect(&ctx);
            assert!(name_ok(name) && !help.is_empty(), "{ctx}");
            assert!(helped.insert(name.to_owned()), "HELP twice: {ctx}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(&ctx);
            assert!(name_ok(name), "{ctx}");
            assert!(
                ["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind),
                "{ctx}"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "TYPE twice: {ctx}"
            );
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{ctx}");
        let (series, value) = line.rsplit_once(' ').expect(&ctx);
        let value: f64 = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().expect(&ctx),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect(&ctx);
                let mut labels = Vec::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert!(name_ok(&key), "label name {key:?}: {ctx}");
                    assert_eq!(chars.next(), Some('"'), "{ctx}");
                    let mut val = String::new();
                    loop {
                        match chars.next().expect(&ctx) {
                            '\\' => match chars.next().expect(&ctx) {
                                'n' => val.push('\n'),
                                c @ ('\\' | '"') => val.push(c),
                                c => panic!("bad escape \\{c}: {ctx}"),
                            },
                            '"' => break,
                            '\n' => panic!("raw newline: {ctx}"),
                            c => val.push(c),
                        }
                    }
                    labels.push((key, val));
                    match chars.next() {
                        None => break,
                        Some(',') => {}
                        Some(c) => panic!("unexpected {c:?}: {ctx}"),
                    }
                }
                (name, labels)
            }
        };
        assert!(name_ok(name), "{ctx}");
        let family = [
            name,
            name.trim_end_matches("_sum"),
            name.trim_end_matches("_count"),
        ]
        .into_iter()
        .find(|f| types.contains_key(*f))
        .unwrap_or_else(|| panic!("sample of an undeclared family: {ctx}"));
        if types[family] == "summary" && family == name {
            assert!(labels.iter().any(|(k, _)| k == "quantile"), "{ctx}");
        }
        let mut sorted = labels.clone();
        sorted.sort();
        assert!(
            out.insert((name.to_owned(), sorted), value).is_none(),
            "series twice: {ctx}"
        );
    }
    out
}

#[tokio::test]
async fn prometheus_exposition_parses_and_never_shows_a_password() {
    let _serial = SERIAL.lock().await;
    each_backend("metrics_prometheus", |db| async move {
        let mut conn = db.async_connection().await?;
        conn.execute("SELECT 1", ())
            .tag("operation", "get_user")
            .await?;
        conn.execute("SELECT 2", ()).await?;
        drop(conn);
        let dead = refusing(db.backend(), "metrics_prometheus_dead");
        assert!(dead.async_connection().await.is_err());
        assert!(dead.config().get_alias().contains("dead"));

        let m = metrics(&db);
        let text = PoolManager::prometheus_text();
        assert!(
            !text.contains("hunter2"),
            "the password leaked into the exposition"
        );

        // Strict grammar.
        let series = parse_strictly(&text);
        let ours = |name: &str, extra: &[(&str, &str)]| -> f64 {
            let mut labels: Vec<(String, String)> = [
                ("alias", db.config().get_alias()),
                ("backend", db.backend().as_str()),
                ("hash", db.hash()),
            ]
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            labels.sort();
            *series
                .get(&(name.to_owned(), labels))
                .unwrap_or_else(|| panic!("no {name} {extra:?} for our pool"))
        };
        assert_eq!(
            ours("dal_pool_acquisitions_total", &[]),
            m.acquisitions as f64
        );
        assert_eq!(ours("dal_queries_total", &[]), m.queries as f64);
        assert_eq!(ours("dal_pool_in_use", &[]), 0.0);
        assert_eq!(ours("dal_pool_timeout_rate", &[]), 0.0);
        assert_eq!(
            ours("dal_pool_scaling_advice", &[("advice", "normal")]),
            1.0
        );
        assert_eq!(
            ours(
                "dal_tagged_queries_total",
                &[("tag_key", "operation"), ("tag_value", "get_user")]
            ),
            1.0
        );
        assert_eq!(
            ours("dal_query_duration_seconds_count", &[]),
            m.queries as f64
        );
        assert!(ours("dal_query_duration_seconds", &[("quantile", "0.99")]) > 0.0);
        assert_eq!(ours("dal_pool_timeouts_total", &[("kind", "acquire")]), 0.0);

        // And a third-party parser agrees.
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("prometheus-parse");
        let mine = |name: &str| {
            scrape
                .samples
                .iter()
                .find(|s| s.metric == name && s.labels.get("hash") == Some(db.hash()))
                .unwrap_or_else(|| panic!("prometheus-parse found no {name}"))
        };
        assert_eq!(
            mine("dal_pool_acquisitions_total").value,
            prometheus_parse::Value::Counter(m.acquisitions as f64)
        );
        match &mine("dal_pool_acquire_wait_seconds").value {
            prometheus_parse::Value::Summary(q) => assert_eq!(q.len(), 3),
            v => panic!("not a summary: {v:?}"),
        }
        assert!(matches!(
            mine("dal_pool_size").value,
            prometheus_parse::Value::Gauge(_)
        ));
        assert!(scrape.docs.contains_key("dal_pool_timeout_rate"));
        dead.close(Duration::from_secs(5)).await?;
        Ok(())
    })
    .await;
}

/// A statement that takes long (the caller cuts it with a timeout) and has a text parameter.
fn slow_with_param(backend: Backend, secret: &str) -> (String, Vec<Value>) {
    match backend {
        Backend::Postgres => (
            "SELECT ? AS [label], pg_sleep(?)".into(),
            params![secret, 20.0],
        ),
        Backend::MySql => (
            "SELECT ? AS [label], SLEEP(?)".into(),
            params![secret, 20.0],
        ),
        Backend::Sqlite => (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) \
             SELECT ? AS [label], SUM(x) FROM c"
                .into(),
            params![400_000_000_i64, secret],
        ),
    }
}

#[tokio::test]
async fn slow_queries_are_logged_at_warn_with_sql_tags_and_timing_and_redacted_parameters() {
    let _serial = SERIAL.lock().await;
    let logs = Captured::default();
    let _guard = logs.install(tracing::Level::WARN);
    for show in [false, true] {
        let name = format!("metrics_slow_log_{show}");
        each_backend_with(
            &name,
            |c| {
                c.slow_query_threshold(Duration::from_millis(50))
                    .log_parameter_values(show)
            },
            |db| {
                let logs = logs.clone();
                async move {
                    let secret = "secret-param-value-42";
                    let (sql, params) = slow_with_param(db.backend(), secret);
                    let mut conn = db.async_connection().await?;
                    let e = conn
                        .execute(&sql, params)
                        .timeout(Duration::from_millis(200))
                        .tag("operation", "slow_test")
                        .await
                        .unwrap_err();
                    assert!(e.is_timeout(), "{e:?}");
                    // A fast statement stays out of the log.
                    conn.execute("SELECT 3", ()).await?;
                    let lines = logs.lines_with(db.config().get_alias());
                    let slow: Vec<_> = lines.iter().filter(|l| l.contains("slow query")).collect();
                    assert_eq!(slow.len(), 1, "{lines:#?}");
                    let line = slow[0];
                    assert!(line.contains("WARN"), "{line}");
                    assert!(line.contains("label"), "no SQL: {line}");
                    assert!(line.contains("operation=slow_test"), "no tags: {line}");
                    assert!(
                        line.contains("elapsed_ms=") && line.contains("threshold_ms=50"),
                        "{line}"
                    );
                    assert!(
                        line.contains("outcome=\"timeout\"") || line.contains("outcome=timeout"),
                        "{line}"
                    );
                    assert_eq!(line.contains(secret), show, "{line}");
                    assert_eq!(line.contains("redacted"), !show, "{line}");
                    assert_eq!(metrics(&db).slow_queries, 1);
                    Ok(())
                }
            },
        )
        .await;
    }
}

#[tokio::test]
async fn each_statement_has_a_debug_span_with_backend_alias_tags_duration_and_rows() {
    let _serial = SERIAL.lock().await;
    let logs = Captured::default();
    let _guard = logs.install(tracing::Level::DEBUG);
    each_backend("metrics_span", |db| {
        let logs = logs.clone();
        async move {
            let mut conn = db.async_connection().await?;
            conn.execute("SELECT 1 AS [a] UNION ALL SELECT 2", ())
                .tag("operation", "span_test")
                .await?;
            let closes: Vec<_> = logs
                .lines_with("operation=span_test")
                .into_iter()
                .filter(|l| {
                    l.contains("dal.query")
                        && l.contains("close")
                        && l.contains(db.config().get_alias())
                })
                .collect();
            assert_eq!(closes.len(), 1, "{closes:#?}");
            let line = &closes[0];
            for needle in [
                format!("backend=\"{}\"", db.backend().as_str()),
                format!("alias={}", db.config().get_alias()),
                "rows=2".to_owned(),
                "duration_ms=".to_owned(),
                "UNION ALL".to_owned(),
            ] {
                assert!(line.contains(&needle), "{needle} missing from {line}");
            }
            Ok(())
        }
    })
    .await;
}

#[tokio::test]
async fn health_check_all_pools_pings_each_pool_and_reports_dead_ones() {
    let _serial = SERIAL.lock().await;
    each_backend("metrics_health", |db| async move {
        db.async_connection().await?.execute("SELECT 1", ()).await?;
        let dead = refusing(db.backend(), "metrics_health_dead");
        assert!(dead.async_connection().await.is_err());
        let before = metrics(&db);

        let health = PoolManager::health_check_all_pools().await;
        assert_eq!(health.get(db.hash()), Some(&true), "{health:?}");
        assert_eq!(health.get(dead.hash()), Some(&false), "{health:?}");
        // Probes are not acquisitions, and leave the pool as it was.
        let after = metrics(&db);
        assert_eq!(after.acquisitions, before.acquisitions);
        assert_eq!(after.window_acquisitions, before.window_acquisitions);
        assert_eq!(db.pool_status().in_use, 0);
        // The result shows in the exposition.
        let text = PoolManager::prometheus_text();
        assert!(text.contains(&format!(
            "dal_pool_healthy{{alias=\"{}\",backend=\"{}\",hash=\"{}\"}} 1",
            db.config().get_alias(),
            db.backend().as_str(),
            db.hash()
        )));
        // Cached: asked again at once, the same answers without new probes.
        let again = PoolManager::health_check_all_pools().await;
        assert_eq!(again.get(db.hash()), Some(&true));
        assert_eq!(again.get(dead.hash()), Some(&false));
        dead.close(Duration::from_secs(5)).await?;
        Ok(())
    })
    .await;
}

#[cfg(feature = "metrics")]
mod facade {
    //! The `metrics` crate facade, with a small in-memory recorder.

    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};

    use metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    use super::*;

    #[derive(Default)]
    struct Cell(AtomicU64);

    impl metrics::CounterFn for Cell {
        fn increment(&self, v: u64) {
            self.0.fetch_add(v, Ordering::Relaxed);
        }
        fn absolute(&self, v: u64) {
            self.0.store(v, Ordering::Relaxed);
        }
    }
    impl metrics::GaugeFn for Cell {
        fn increment(&self, v: f64) {
            self.set(f64::from_bits(self.0.load(Ordering::Relaxed)) + v);
        }
        fn decrement(&self, v: f64) {
            self.set(f64::from_bits(self.0.load(Ordering::Relaxed)) - v);
        }
        fn set(&self, v: f64) {
            self.0.store(v.to_bits(), Ordering::Relaxed);
        }
    }
    impl metrics::HistogramFn for Cell {
        fn record(&self, _v: f64) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `name{k=v,…}` → cell (counter value, gauge bits, or histogram observation count).
    #[derive(Default)]
    struct Rec(Mutex<HashMap<String, Arc<Cell>>>);

    impl Rec {
        fn cell(&self, key: &Key) -> Arc<Cell> {
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let id = format!("{}{{{}}}", key.name(), labels.join(","));
            self.0.lock().unwrap().entry(id).or_default().clone()
        }
        fn get(&self, name: &str, alias: &str) -> Option<u64> {
            let m = self.0.lock().unwrap();
            m.iter()
                .find(|(k, _)| {
                    k.starts_with(&format!("{name}{{")) && k.contains(&format!("alias={alias},"))
                })
                .map(|(_, c)| c.0.load(Ordering::Relaxed))
        }
    }

    impl Recorder for &'static Rec {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.cell(key))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.cell(key))
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(self.cell(key))
        }
    }

    fn recorder() -> &'static Rec {
        static REC: OnceLock<&'static Rec> = OnceLock::new();
        REC.get_or_init(|| {
            let rec: &'static Rec = Box::leak(Box::default());
            metrics::set_global_recorder(rec).expect("no other recorder in this test binary");
            rec
        })
    }

    #[tokio::test]
    async fn pool_and_query_metrics_reach_the_metrics_facade() {
        let _serial = SERIAL.lock().await;
        let rec = recorder();
        each_backend_with(
            "metrics_facade",
            |c| {
                c.pool_size(1, 1)
                    .connection_acquisition_timeout(Duration::from_secs(1))
            },
            |db| async move {
                let alias = db.config().get_alias().to_owned();
                let mut conn = db.async_connection().await?;
                conn.execute("SELECT 1", ())
                    .tag("operation", "facade")
                    .await?;
                let e = db.async_connection().await.unwrap_err();
                assert!(e.is_timeout());
                drop(conn);
                assert_eq!(rec.get("dal_pool_acquisitions_total", &alias), Some(1));
                assert_eq!(rec.get("dal_pool_releases_total", &alias), Some(1));
                assert_eq!(rec.get("dal_queries_total", &alias), Some(1));
                assert_eq!(rec.get("dal_query_duration_seconds", &alias), Some(1));
                assert_eq!(rec.get("dal_pool_acquire_wait_seconds", &alias), Some(1));
                assert_eq!(rec.get("dal_pool_timeouts_total", &alias), Some(1));
                assert_eq!(rec.get("dal_pool_in_use", &alias), Some(0f64.to_bits()));
                assert_eq!(rec.get("dal_tagged_queries_total", &alias), Some(1));
                Ok(())
            },
        )
        .await;
    }
}
