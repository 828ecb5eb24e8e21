//! Statement tags on the server (`sql_comments`) and OpenTelemetry's database conventions on
//! the statement spans, on every backend.
//!
//! Where the server shows the statement it runs: PostgreSQL `pg_stat_activity.query`,
//! MySQL/MariaDB `information_schema.PROCESSLIST.INFO`, each read by the tagged statement
//! itself. SQLite has no such view (nor `sqlite_stmt` in the bundled build): there the text is
//! read from dal's statement span, which records the very string handed to the driver, and
//! the statement cache confirms the driver prepared a new text.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{each_backend_with, eventually, fresh_table, reset_entity, slow_sql};
use dal::prelude::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

// ---------------------------------------------------------------------------------------------
// A `tracing` layer that keeps the fields of every closed `dal.query` span.
//
// It is the process's global subscriber, installed by every test before its first statement:
// a thread-local one (`set_default`) races with callsites first seen on other test threads
// (tracing may cache "never" for a callsite registered while no subscriber wanted it). Tests
// run in parallel, so each looks only at the spans of its own pools (by `alias`).

type Fields = HashMap<String, String>;

#[derive(Default)]
struct Collector {
    /// Spans by creation order.
    seq: AtomicUsize,
    open: Mutex<HashMap<u64, (usize, Fields)>>,
    closed: Mutex<Vec<(usize, Fields)>>,
}

struct Collect<'a>(&'a mut Fields);

impl Visit for Collect<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

#[derive(Clone)]
struct Layered(Arc<Collector>);

impl<S> Layer<S> for Layered
where
    S: tracing::Subscriber + for<'l> tracing_subscriber::registry::LookupSpan<'l>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let meta = attrs.metadata();
        if meta.target() != "dal::query" || meta.name() != "dal.query" {
            return;
        }
        let mut fields = Fields::new();
        attrs.record(&mut Collect(&mut fields));
        let seq = self.0.seq.fetch_add(1, Ordering::SeqCst);
        self.0
            .open
            .lock()
            .unwrap()
            .insert(id.into_u64(), (seq, fields));
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some((_, fields)) = self.0.open.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Collect(fields));
        }
    }
    fn on_close(&self, id: Id, _: Context<'_, S>) {
        if let Some(span) = self.0.open.lock().unwrap().remove(&id.into_u64()) {
            self.0.closed.lock().unwrap().push(span);
        }
    }
}

/// The process's span collector, installed on first use.
fn collector() -> &'static Arc<Collector> {
    static COLLECTOR: OnceLock<Arc<Collector>> = OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let c = Arc::new(Collector::default());
        let subscriber = tracing_subscriber::registry()
            .with(Layered(c.clone()).with_filter(tracing_subscriber::filter::LevelFilter::DEBUG));
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
        c
    })
}

/// The spans of one pool (its `alias`) opened since the last [`Spans::clear`].
#[derive(Clone)]
struct Spans {
    alias: String,
    from: Arc<AtomicUsize>,
}

impl Spans {
    fn of(db: &Database) -> Spans {
        let spans = Spans {
            alias: db.config().get_alias().to_owned(),
            from: Arc::new(AtomicUsize::new(0)),
        };
        spans.clear();
        spans
    }

    /// Forgets the spans opened so far.
    fn clear(&self) {
        self.from
            .store(collector().seq.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    fn mine(&self, seq: usize, fields: &Fields) -> bool {
        seq >= self.from.load(Ordering::SeqCst) && fields.get("alias") == Some(&self.alias)
    }

    /// Every span of this pool opened since the last clear, once all are closed (a driver may
    /// hold a span's handle a little after the statement returned: SQLite's worker thread).
    async fn all(&self) -> Vec<Fields> {
        let settled = eventually(Duration::from_secs(5), || async {
            let open = collector().open.lock().unwrap();
            !open.values().any(|(seq, f)| self.mine(*seq, f))
        })
        .await;
        assert!(settled, "spans of {} still open after 5 s", self.alias);
        let closed = collector().closed.lock().unwrap();
        let mut mine: Vec<(usize, Fields)> = closed
            .iter()
            .filter(|(seq, f)| self.mine(*seq, f))
            .cloned()
            .collect();
        mine.sort_by_key(|(seq, _)| *seq);
        mine.into_iter().map(|(_, f)| f).collect()
    }

    /// Those whose `db.query.text` contains `needle`.
    async fn with_text(&self, needle: &str) -> Vec<Fields> {
        self.all()
            .await
            .into_iter()
            .filter(|f| f.get("db.query.text").is_some_and(|t| t.contains(needle)))
            .collect()
    }
}

/// The one span whose text contains `needle`.
async fn one_span(spans: &Spans, needle: &str) -> Fields {
    let found = spans.with_text(needle).await;
    assert_eq!(found.len(), 1, "spans with {needle:?}: {found:#?}");
    found.into_iter().next().unwrap()
}

fn field<'a>(span: &'a Fields, name: &str) -> Option<&'a str> {
    span.get(name).map(String::as_str)
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// The text of the statement the server is running right now, read by that statement itself
/// (`tag` marks it), or on SQLite the text dal handed to the driver (its span).
async fn statement_as_server_sees_it(
    conn: &mut Connection,
    spans: &Spans,
    tags: &[(&str, &str)],
) -> dal::Result<String> {
    let sql = match conn.backend() {
        Backend::Postgres => "SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()",
        Backend::MySql => {
            "SELECT INFO FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()"
        }
        Backend::Sqlite => "SELECT 'sqlite statement text' AS [query]",
    };
    let mut stmt = conn.execute(sql, ());
    for (k, v) in tags {
        stmt = stmt.tag(*k, *v);
    }
    let rows = stmt.await?;
    Ok(match conn.backend() {
        Backend::Sqlite => field(
            &one_span(spans, "sqlite statement text").await,
            "db.query.text",
        )
        .unwrap()
        .to_owned(),
        _ => {
            assert_eq!(rows.len(), 1, "{rows:?}");
            rows[0].try_get::<String, _>(0)?
        }
    })
}

/// Values meant to break out of the comment or change the statement.
const HOSTILE: &[&str] = &[
    "*/ DROP TABLE sqlc_hostile; --",
    "'; DROP TABLE sqlc_hostile; --",
    "\\'*/ DELETE FROM sqlc_hostile /*",
    "/*! DROP TABLE sqlc_hostile */",
    "x\n; DROP TABLE sqlc_hostile;\n-- ",
    "# \r\n DELETE FROM sqlc_hostile",
    "\"`]]) OR 1=1 --",
    "? $1 %s ?? :a @b",
    "日本語 ✓ */",
    "\\\\ \\ \\0",
    "\u{0} nul",
];

// ---------------------------------------------------------------------------------------------
// Tags on the server

#[tokio::test]
async fn tags_reach_the_server_as_a_trailing_sqlcommenter_comment() {
    collector();
    each_backend_with(
        "sqlc_reach",
        |c| c.sql_comments(true),
        |db| {
            let spans = Spans::of(&db);
            async move {
                let mut conn = db.async_connection().await?;
                spans.clear();
                // The server sees the statement with its tags, sorted by key, after the SQL.
                let text = statement_as_server_sees_it(
                    &mut conn,
                    &spans,
                    &[("route", "/orders/:id"), ("app", "api")],
                )
                .await?;
                let comment = "/*app='api',route='%2Forders%2F%3Aid'*/";
                assert!(text.ends_with(&format!(" {comment}")), "{text}");
                assert!(text.starts_with("SELECT "), "{text}");
                assert_eq!(text.matches("/*").count(), 1, "{text}");

                // Untagged statements are sent as written.
                spans.clear();
                let text = statement_as_server_sees_it(&mut conn, &spans, &[]).await?;
                assert!(!text.contains("/*"), "{text}");

                // A statement ending in `;` keeps it last; one ending in a line comment gets
                // the tags on a line of their own. Both run as they would untagged.
                // (A `--` or `#` anywhere on the last line counts as a possible line comment:
                // then a final `;` stays where it is and the comment follows on a new line.)
                for (sql, tag, expect_end) in [
                    ("SELECT 41 + 1 AS [n];", "semi", "/*t='semi'*/;"),
                    (
                        "SELECT 41 + 1 AS [n] -- the answer",
                        "line",
                        "-- the answer\n/*t='line'*/",
                    ),
                    (
                        "SELECT 41 + 1 AS [n], '--' AS [s];",
                        "both",
                        "'--' AS \"s\";\n/*t='both'*/",
                    ),
                ] {
                    let expect_end = if db.backend() == Backend::MySql {
                        expect_end.replace("\"s\"", "`s`")
                    } else {
                        expect_end.to_owned()
                    };
                    spans.clear();
                    let rows = conn.execute(sql, ()).tag("t", tag).await?;
                    assert_eq!(rows[0].try_get::<i64, _>("n")?, 42, "{sql}");
                    let span = one_span(&spans, "41 + 1").await;
                    let sent = field(&span, "db.query.text").unwrap();
                    assert!(sent.ends_with(&expect_end), "{sql}: sent {sent:?}");
                }
                drop(conn);

                // The blocking twin's tags (QueryOptions) take the same path.
                let db2 = db.clone();
                let rows = std::thread::spawn(move || -> dal::Result<Vec<Row>> {
                    let mut s = db2.sync_connection()?;
                    s.execute_with(
                        "SELECT ? AS [v]",
                        params!["sync"],
                        QueryOptions::default().tag("via", "sync twin"),
                    )
                })
                .join()
                .unwrap()?;
                assert_eq!(rows[0].try_get::<String, _>("v")?, "sync");
                // (its span is on another thread: the statement cache below shows the text.)
                Ok(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn hostile_tags_cannot_change_the_statement_or_the_table() {
    collector();
    each_backend_with(
        "sqlc_hostile",
        |c| c.sql_comments(true),
        |db| {
            let spans = Spans::of(&db);
            async move {
                let mut conn = db.async_connection().await?;
                fresh_table(&mut conn, "sqlc_hostile").await?;
                conn.execute(
                    "CREATE TABLE [sqlc_hostile] ([id] INTEGER PRIMARY KEY, [name] VARCHAR(40))",
                    (),
                )
                .await?;
                conn.executemany(
                    "INSERT INTO [sqlc_hostile] ([id], [name]) VALUES (?, ?)",
                    vec![params![1, "a"], params![2, "b"], params![3, "c"]],
                )
                .tag("phase", "*/ seed")
                .await?;

                let count_sql = "SELECT COUNT(*) AS [n], MAX([name]) AS [m] FROM [sqlc_hostile] WHERE [id] <= ?";
                let plain = conn.execute(count_sql, params![2]).await?;
                assert_eq!(plain[0].try_get::<i64, _>("n")?, 2);
                for h in HOSTILE {
                    // As a value, as a key, and both at once, with ordinary tags around them.
                    for (k, v) in [("route", *h), (*h, "v"), (*h, *h)] {
                        spans.clear();
                        let rows = conn
                            .execute(count_sql, params![2])
                            .tag("app", "api")
                            .tag(k, v)
                            .tag("zz", "last")
                            .await?;
                        assert_eq!(rows, plain, "tag {k:?}={v:?} changed the result");
                        // What was sent is the statement, then one comment holding nothing
                        // but encoded text.
                        let span = one_span(&spans, "COUNT(*)").await;
                        let sent = field(&span, "db.query.text").unwrap();
                        let at = sent.find("/*").unwrap();
                        let comment = &sent[at..];
                        assert!(comment.ends_with("*/"), "{sent}");
                        let inner = &comment[2..comment.len() - 2];
                        assert!(
                            inner.bytes().all(|b| b.is_ascii_alphanumeric()
                                || b"-._~%=,'".contains(&b)),
                            "tag {k:?}={v:?}: {comment}"
                        );
                        assert_eq!(inner.matches('\'').count(), 6, "{comment}");
                    }
                    // A write with a hostile tag writes exactly what it says.
                    let (_, changed) = conn
                        .execute_with_count(
                            "UPDATE [sqlc_hostile] SET [name] = ? WHERE [id] = ?",
                            params!["z", 3],
                            &QueryOptions::default().tag("route", *h),
                        )
                        .await?;
                    assert_eq!(changed, 1, "{h:?}");
                }
                // On the server too (PostgreSQL, MySQL): the comment arrived encoded.
                if db.backend() != Backend::Sqlite {
                    spans.clear();
                    let text = statement_as_server_sees_it(
                        &mut conn,
                        &spans,
                        &[("route", "*/ DROP TABLE sqlc_hostile; --")],
                    )
                    .await?;
                    assert!(
                        text.ends_with("/*route='%2A%2F%20DROP%20TABLE%20sqlc_hostile%3B%20--'*/"),
                        "{text}"
                    );
                }
                // The table is intact: every row, as written.
                let rows = conn
                    .execute("SELECT [id], [name] FROM [sqlc_hostile] ORDER BY [id]", ())
                    .await?;
                let got: Vec<(i64, String)> = rows
                    .iter()
                    .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
                    .collect();
                assert_eq!(
                    got,
                    vec![(1, "a".into()), (2, "b".into()), (3, "z".into())]
                );
                fresh_table(&mut conn, "sqlc_hostile").await?;
                Ok(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn each_distinct_tag_value_is_a_distinct_prepared_statement() {
    collector();
    each_backend_with(
        "sqlc_cache",
        |c| c.sql_comments(true).pool_size(1, 1),
        |db| async move {
            let cache = |db: &Database| {
                let m = db.pool_metrics().unwrap();
                (m.statement_cache_hits, m.statement_cache_misses)
            };
            let mut conn = db.async_connection().await?;
            let sql = "SELECT ? + 1 AS [n]";
            let run = async |conn: &mut Connection, route: &str| -> dal::Result<i64> {
                let rows = conn.execute(sql, params![1]).tag("route", route).await?;
                rows[0].try_get::<i64, _>("n")
            };
            assert_eq!(run(&mut conn, "a").await?, 2);
            let (h0, m0) = cache(&db);
            // Same tags: the same text, a hit.
            run(&mut conn, "a").await?;
            assert_eq!(cache(&db), (h0 + 1, m0));
            // Another value: another text, prepared anew (a miss), then cached.
            run(&mut conn, "b").await?;
            assert_eq!(cache(&db), (h0 + 1, m0 + 1));
            run(&mut conn, "b").await?;
            run(&mut conn, "a").await?;
            assert_eq!(cache(&db), (h0 + 3, m0 + 1));
            // Untagged: a text of its own.
            conn.execute(sql, params![1]).await?;
            assert_eq!(cache(&db), (h0 + 3, m0 + 2));
            drop(conn);

            // Without sql_comments, tags do not touch the text: one statement, all hits.
            let plain = Database::new(
                db.backend(),
                db.config()
                    .clone()
                    .sql_comments(false)
                    .alias(format!("{}-plain", db.config().get_alias())),
            );
            let mut conn = plain.async_connection().await?;
            run(&mut conn, "a").await?;
            let (h0, m0) = cache(&plain);
            run(&mut conn, "b").await?;
            run(&mut conn, "c").await?;
            assert_eq!(cache(&plain), (h0 + 2, m0));
            drop(conn);
            PoolManager::close_pool(Some(plain.hash()), Duration::from_secs(10)).await?;
            Ok(())
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// OpenTelemetry conventions on the statement span

#[tokio::test]
async fn statement_spans_carry_opentelemetry_database_fields() {
    collector();
    each_backend_with(
        "sqlc_otel",
        |c| c,
        |db| {
            let spans = Spans::of(&db);
            async move {
                let mut conn = db.async_connection().await?;
                let backend = db.backend();
                let system = match backend {
                    Backend::Postgres => "postgresql",
                    Backend::Sqlite => "sqlite",
                    Backend::MySql => {
                        let v: String =
                            conn.execute("SELECT VERSION()", ()).await?[0].try_get(0)?;
                        if v.contains("MariaDB") {
                            "mariadb"
                        } else {
                            "mysql"
                        }
                    }
                };
                let server = match backend {
                    Backend::Sqlite => None,
                    Backend::Postgres => Some(db.config().get_port().unwrap_or(5432)),
                    Backend::MySql => Some(db.config().get_port().unwrap_or(3306)),
                }
                .map(|port| (db.config().get_host().to_owned(), port.to_string()));

                // A successful statement, with a parameter that must never show.
                spans.clear();
                let secret = "secret-parameter-value-7";
                conn.execute(
                    "SELECT [x].[v] AS [otel_probe] FROM (SELECT ? AS [v]) [x]",
                    params![secret],
                )
                .tag("route", "otel")
                .await?;
                let s = one_span(&spans, "otel_probe").await;
                assert_eq!(field(&s, "db.system.name"), Some(system), "{s:#?}");
                assert_eq!(
                    field(&s, "db.namespace"),
                    Some(db.config().database()),
                    "{s:#?}"
                );
                assert_eq!(field(&s, "db.operation.name"), Some("SELECT"), "{s:#?}");
                assert_eq!(field(&s, "otel.kind"), Some("client"), "{s:#?}");
                assert_eq!(field(&s, "otel.name"), Some("SELECT"), "{s:#?}");
                assert_eq!(field(&s, "db.collection.name"), None, "{s:#?}");
                assert_eq!(
                    field(&s, "server.address").zip(field(&s, "server.port")),
                    server.as_ref().map(|(h, p)| (h.as_str(), p.as_str())),
                    "{s:#?}"
                );
                // The native SQL, placeholders and all, never the value.
                let native = dal::sql::to_native(
                    "SELECT [x].[v] AS [otel_probe] FROM (SELECT ? AS [v]) [x]",
                    backend,
                )?;
                assert_eq!(field(&s, "db.query.text"), Some(native.as_str()), "{s:#?}");
                assert!(s.values().all(|v| !v.contains(secret)), "{s:#?}");
                // dal's own documented fields stay; nothing failed.
                assert_eq!(field(&s, "backend"), Some(backend.as_str()));
                assert_eq!(field(&s, "alias"), Some(db.config().get_alias()));
                assert_eq!(field(&s, "tags"), Some("route=otel"));
                assert_eq!(field(&s, "rows"), Some("1"));
                assert!(field(&s, "duration_ms").is_some());
                assert_eq!(field(&s, "error.type"), None);
                assert_eq!(field(&s, "otel.status_code"), None);

                // A statement the server refuses: error.type is its code.
                spans.clear();
                let err = conn
                    .execute("SELECT * FROM [otel_no_such_table]", ())
                    .await
                    .unwrap_err();
                let code = err.code().unwrap().to_owned();
                let expected_code = match backend {
                    Backend::Postgres => "42P01",
                    Backend::MySql => "1146",
                    Backend::Sqlite => "1",
                };
                assert_eq!(code, expected_code);
                let s = one_span(&spans, "otel_no_such_table").await;
                assert_eq!(field(&s, "error.type"), Some(expected_code), "{s:#?}");
                assert_eq!(field(&s, "db.response.status_code"), Some(expected_code));
                assert_eq!(field(&s, "otel.status_code"), Some("ERROR"));
                assert!(
                    field(&s, "otel.status_description")
                        .unwrap()
                        .contains("otel_no_such_table"),
                    "{s:#?}"
                );
                assert_eq!(field(&s, "rows"), None);

                // A statement cut by its timeout: error.type `timeout`.
                spans.clear();
                let slow = slow_sql(backend, 5);
                let err = conn
                    .execute(&slow, ())
                    .timeout(Duration::from_millis(200))
                    .await
                    .unwrap_err();
                assert!(err.is_timeout(), "{err}");
                let s = one_span(&spans, &slow).await;
                assert_eq!(field(&s, "error.type"), Some("timeout"), "{s:#?}");
                assert_eq!(field(&s, "db.response.status_code"), None, "{s:#?}");
                drop(conn);
                let mut conn = db.async_connection().await?;

                // Entity operations: every statement of the operation names its collection
                // (transaction control included); the span name is `{operation} {collection}`.
                reset_entity(&mut conn, "otel_users").await?;
                spans.clear();
                let saved = conn
                    .save_entity("otel_users", json!({"name": "Ann"}))
                    .await?;
                let id = saved["id"].as_str().unwrap().to_owned();
                let all = spans.all().await;
                assert!(all.len() >= 3, "{all:#?}");
                for s in &all {
                    assert_eq!(field(s, "db.collection.name"), Some("otel_users"), "{s:#?}");
                }
                assert!(
                    all.iter()
                        .any(|s| field(s, "otel.name") == Some("INSERT otel_users")),
                    "{all:#?}"
                );
                spans.clear();
                conn.get_entity("otel_users", &id).await?.unwrap();
                let table = dal::sql::quote_ident("otel_users", backend)?;
                let s = one_span(&spans, &format!("FROM {table} WHERE")).await;
                assert_eq!(field(&s, "otel.name"), Some("SELECT otel_users"), "{s:#?}");
                // After the operation, plain statements name no collection again.
                spans.clear();
                conn.execute("SELECT 1 AS [after_entity]", ()).await?;
                let s = one_span(&spans, "after_entity").await;
                assert_eq!(field(&s, "db.collection.name"), None, "{s:#?}");
                // A cancelled entity operation does not leave its collection behind: its
                // statement is interrupted (a filter that sleeps), the same connection then
                // runs a plain statement (on a fresh physical connection).
                let slow_filter = match backend {
                    Backend::Postgres => "pg_sleep(5) IS NOT NULL".to_owned(),
                    Backend::MySql => "SLEEP(5) = 0".to_owned(),
                    Backend::Sqlite => format!("({}) > 0", slow_sql(backend, 5)),
                };
                spans.clear();
                let cancelled = tokio::time::timeout(
                    Duration::from_millis(300),
                    conn.find_entities("otel_users")
                        .filter(slow_filter.as_str(), ()),
                )
                .await;
                assert!(cancelled.is_err(), "{cancelled:?}");
                conn.execute("SELECT 2 AS [after_cancel]", ()).await?;
                let s = one_span(&spans, "after_cancel").await;
                assert_eq!(field(&s, "db.collection.name"), None, "{s:#?}");
                reset_entity(&mut conn, "otel_users").await?;
                Ok(())
            }
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// MySQL's native `%s` placeholders

#[tokio::test]
async fn percent_s_is_a_placeholder_on_mysql_only() {
    collector();
    each_backend_with(
        "sqlc_percent_s",
        |c| c,
        |db| async move {
            let mut conn = db.async_connection().await?;
            let sql = "SELECT %s + %s AS [n], '%s' AS [lit]";
            let got = conn.execute(sql, params![40, 2]).await;
            if db.backend() == Backend::MySql {
                let rows = got?;
                assert_eq!(rows[0].try_get::<i64, _>("n")?, 42);
                assert_eq!(rows[0].try_get::<String, _>("lit")?, "%s");
                // Mixing with `?` is refused before anything is sent.
                let e = conn
                    .execute("SELECT %s + ? AS [n]", params![1, 2])
                    .await
                    .unwrap_err();
                assert!(matches!(e, Error::Sql { .. }), "{e}");
            } else {
                // Elsewhere `%s` is the `%` operator and a column `s`: no parameters expected.
                let e = got.unwrap_err();
                assert!(
                    matches!(
                        e,
                        Error::ParameterCount {
                            expected: 0,
                            given: 2
                        }
                    ),
                    "{e}"
                );
            }
            Ok(())
        },
    )
    .await;
}
