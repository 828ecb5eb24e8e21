//! The per-query hook called once by `Connection::exec` for every statement: query-duration
//! histogram, errors and timeouts by kind, statement-cache hits, tag metrics, the `tracing`
//! span (named and filled with OpenTelemetry's database conventions) and its closing fields,
//! and the slow-query log.

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::backend::QueryOutput;
use crate::connection::{Collection, QueryOptions};
use crate::error::{Error, Result};
use crate::pool::{PoolInner, PooledRaw};
use crate::value::Value;

/// What `exec` observed about one statement.
pub(crate) struct QueryEvent<'a> {
    /// Native SQL as sent to the server.
    pub sql: &'a str,
    /// Its parameters (never logged unless `log_parameter_values(true)`).
    pub params: &'a [Value],
    /// Sent as a prepared statement (and so cached by the driver): the
    /// [`text_hash`](crate::sql::cache::text_hash) of `sql`; `None` for control statements.
    pub statement_hash: Option<u64>,
    pub elapsed: Duration,
    pub result: &'a Result<QueryOutput>,
    pub opts: &'a QueryOptions,
    /// The span opened by [`PoolInner::query_span`] around the statement.
    pub span: &'a tracing::Span,
    /// The physical connection, for its statement cache.
    pub conn: Option<&'a mut PooledRaw>,
}

/// Tags as `k=v,k2=v2`.
pub(crate) struct TagList<'a>(pub &'a [(String, String)]);

impl fmt::Display for TagList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// Parameter values for the slow-query log: redacted unless the user opted in.
struct Params<'a> {
    values: &'a [Value],
    show: bool,
}

/// Longest rendering of one parameter value in a log line.
const MAX_PARAM_CHARS: usize = 200;
/// Longest SQL text in a log line.
const MAX_SQL_CHARS: usize = 4096;

fn truncated(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()).into(),
        None => s.into(),
    }
}

impl fmt::Display for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.show {
            return match self.values.len() {
                0 => f.write_str("[]"),
                n => write!(
                    f,
                    "[{n} value(s) redacted; enable log_parameter_values to show]"
                ),
            };
        }
        f.write_str("[")?;
        for (i, v) in self.values.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(&truncated(&format!("{v:?}"), MAX_PARAM_CHARS))?;
        }
        f.write_str("]")
    }
}

/// The span's OpenTelemetry name: `{db.operation.name} {db.collection.name}`, the operation
/// alone, or `db.system.name` (the conventions' rule, with no target for plain SQL: dal does
/// not parse table names out of statements).
struct SpanName<'a> {
    operation: Option<&'a str>,
    collection: Option<&'a str>,
    system: &'a str,
}

impl fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.operation, self.collection) {
            (Some(op), Some(c)) => write!(f, "{op} {c}"),
            (Some(op), None) => f.write_str(op),
            (None, _) => f.write_str(self.system),
        }
    }
}

/// `error.type`: the server's error code (SQLSTATE on PostgreSQL, the error number on
/// MySQL/MariaDB, the result code on SQLite) when it gave one, else dal's error category
/// (`timeout`, `connection`, `input`, …; see [`Error::category`]).
fn error_type(e: &Error) -> &str {
    e.code().unwrap_or_else(|| e.category())
}

/// Whether anything may want a statement's span. Once any `tracing` dispatcher was set, the
/// span macro asks it (and formats the fields only when it is interested in this span). With
/// none ever set, the macro would format every field for the `log` crate (tracing's `log`
/// feature hands spans to it then): worth it only when a `log` logger may take DEBUG.
fn query_spans_wanted() -> bool {
    tracing::dispatcher::has_been_set() || log::max_level() >= log::LevelFilter::Debug
}

impl PoolInner {
    /// The `tracing` span of one statement (DEBUG, target `dal::query`, name `dal.query`),
    /// with OpenTelemetry's database semantic conventions as field names, so that
    /// `tracing-opentelemetry` exports them as they are:
    ///
    /// * at the start: `otel.name` (`SELECT`, `INSERT users`, …), `otel.kind = "client"`,
    ///   `db.system.name` (`postgresql`, `mysql`, `mariadb`, `sqlite`: told by the server),
    ///   `db.namespace`, `db.query.text` (the native SQL as sent, tags comment included,
    ///   parameters never inlined), `db.operation.name`, `db.collection.name` (entity
    ///   operations), `server.address` and `server.port` (networked backends), and dal's own
    ///   `backend`, `alias` and `tags`;
    /// * at the end: `duration_ms` and `rows`, or on failure `error.type`,
    ///   `db.response.status_code` (the server's code, when it gave one),
    ///   `otel.status_code = "ERROR"` and `otel.status_description` (the error message).
    ///
    /// Costs a relaxed load when DEBUG is off for that target; with no `tracing` dispatcher
    /// and no `log` logger at DEBUG, the span is [`Span::none`](tracing::Span::none) and its
    /// fields are never formatted.
    pub(crate) fn query_span(
        &self,
        sql: &str,
        operation: Option<&'static str>,
        system: &'static str,
        collection: Option<&Collection>,
        opts: &QueryOptions,
    ) -> tracing::Span {
        if !query_spans_wanted() {
            return tracing::Span::none();
        }
        let dialect = crate::backend::dialect(self.backend);
        let server = self.otel_server();
        let collection = collection.and_then(Collection::get);
        tracing::debug_span!(
            target: "dal::query",
            "dal.query",
            otel.name = %SpanName { operation, collection: collection.as_deref(), system },
            otel.kind = "client",
            db.system.name = system,
            db.namespace = %dialect.namespace(self.config.database(), self.config.get_pg_options()),
            db.query.text = %truncated(sql, MAX_SQL_CHARS),
            db.operation.name = operation,
            db.collection.name = collection.as_deref(),
            server.address = server.map(|(host, _)| host),
            // i64: `tracing-opentelemetry` exports unsigned integers as strings.
            server.port = server.map(|(_, port)| i64::from(port)),
            backend = self.backend.as_str(),
            alias = %self.alias,
            tags = %TagList(&opts.tags),
            duration_ms = tracing::field::Empty,
            rows = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
            db.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty,
        )
    }

    /// `server.address` and `server.port`: the host and port of the configuration (the first
    /// of a host list, each with the backend's default port when none is given), as the
    /// conventions ask (the address configured, not the server a failover picked); `None`
    /// for an embedded database.
    fn otel_server(&self) -> Option<(&str, u16)> {
        let dialect = crate::backend::dialect(self.backend);
        if dialect.is_embedded() {
            return None;
        }
        let default = dialect.default_port();
        Some(match self.config.get_hosts().first() {
            Some((host, port)) => (host.as_str(), port.unwrap_or(default)),
            None => (
                self.config.get_host(),
                self.config.get_port().unwrap_or(default),
            ),
        })
    }

    /// Records one finished statement.
    pub(crate) fn observe_query(&self, ev: QueryEvent<'_>) {
        let s = &self.stats;
        s.queries.fetch_add(1, Ordering::Relaxed);
        s.query_time.record(ev.elapsed);
        if let Some(hash) = ev.statement_hash {
            if let Some(conn) = ev.conn {
                if conn.seen.check_hash(hash, ev.result.is_ok()) {
                    s.stmt_hits.fetch_add(1, Ordering::Relaxed);
                } else {
                    s.stmt_misses.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if let Err(e) = ev.result {
            s.record_error(e);
        }
        if !ev.opts.tags.is_empty() {
            s.record_tags(&ev.opts.tags, ev.elapsed, ev.result.is_err());
        }
        #[cfg(feature = "metrics")]
        self.facade.query(ev.elapsed, ev.result, &ev.opts.tags);

        let ms = ev.elapsed.as_secs_f64() * 1e3;
        if !ev.span.is_disabled() {
            ev.span.record("duration_ms", ms);
            match ev.result {
                Ok(out) => {
                    let rows = if out.rows.is_empty() {
                        out.rows_affected
                    } else {
                        out.rows.len() as u64
                    };
                    ev.span
                        .record("rows", i64::try_from(rows).unwrap_or(i64::MAX));
                }
                Err(e) => {
                    ev.span.record("error.type", error_type(e));
                    if let Some(code) = e.code() {
                        ev.span.record("db.response.status_code", code);
                    }
                    ev.span.record("otel.status_code", "ERROR");
                    ev.span
                        .record("otel.status_description", tracing::field::display(e));
                }
            }
        }

        let threshold = self.config.get_slow_query_threshold();
        if ev.elapsed >= threshold {
            s.slow_queries.fetch_add(1, Ordering::Relaxed);
            let outcome = match ev.result {
                Ok(_) => "ok",
                Err(e) => e.category(),
            };
            let rows = ev.result.as_ref().map_or(0, |o| o.rows.len());
            tracing::warn!(
                target: "dal::slow_query",
                alias = %self.alias,
                backend = self.backend.as_str(),
                elapsed_ms = ms as u64,
                threshold_ms = threshold.as_millis() as u64,
                tags = %TagList(&ev.opts.tags),
                outcome,
                rows,
                params = %Params { values: ev.params, show: self.config.get_log_parameter_values() },
                sql = %truncated(ev.sql, MAX_SQL_CHARS),
                "slow query: {:.0} ms (threshold {} ms)",
                ms,
                threshold.as_millis()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_redacted_unless_shown() {
        let v = [Value::from("secret-value"), Value::from(42)];
        let hidden = Params {
            values: &v,
            show: false,
        }
        .to_string();
        assert!(!hidden.contains("secret-value") && hidden.contains("2 value(s) redacted"));
        let shown = Params {
            values: &v,
            show: true,
        }
        .to_string();
        assert!(
            shown.contains("secret-value") && shown.contains("42"),
            "{shown}"
        );
        assert_eq!(
            TagList(&[("a".into(), "1".into()), ("b".into(), "2".into())]).to_string(),
            "a=1,b=2"
        );
        assert_eq!(truncated("abcdef", 3), "abc… (6 bytes)");
    }

    #[test]
    fn opentelemetry_names_namespace_and_error_type() {
        use crate::sql::Backend;
        let name = |operation, collection| {
            SpanName {
                operation,
                collection,
                system: "postgresql",
            }
            .to_string()
        };
        assert_eq!(name(Some("SELECT"), Some("users")), "SELECT users");
        assert_eq!(name(Some("SELECT"), None), "SELECT");
        assert_eq!(name(None, Some("users")), "postgresql");

        let session = |v: &str| vec![("search_path".to_owned(), v.to_owned())];
        let pg = crate::backend::dialect(Backend::Postgres);
        assert_eq!(pg.namespace("shop", &[]), "shop");
        assert_eq!(pg.namespace("shop", &session("app, public")), "shop|app");
        assert_eq!(pg.namespace("shop", &session("\"App\",public")), "shop|App");
        assert_eq!(pg.namespace("shop", &session("\"$user\", public")), "shop");
        let my = crate::backend::dialect(Backend::MySql);
        assert_eq!(my.namespace("shop", &session("app")), "shop");
        let lite = crate::backend::dialect(Backend::Sqlite);
        assert_eq!(lite.namespace("/tmp/app.db", &[]), "/tmp/app.db");

        let db = Error::Database {
            code: Some("42P01".into()),
            message: "relation does not exist".into(),
            constraint: None,
            kind: crate::error::DbErrorKind::Other,
        };
        assert_eq!(error_type(&db), "42P01");
        let timeout = Error::timeout(
            crate::error::TimeoutKind::Query,
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        assert_eq!(error_type(&timeout), "timeout");
        assert_eq!(error_type(&Error::Connection("gone".into())), "connection");
    }
}
