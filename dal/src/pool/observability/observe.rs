//! The per-query hook called once by `Connection::exec` for every statement: query-duration
//! histogram, errors and timeouts by kind, statement-cache hits, tag metrics, the `tracing`
//! span's closing fields, and the slow-query log.

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::backend::QueryOutput;
use crate::connection::QueryOptions;
use crate::error::Result;
use crate::pool::{PoolInner, PooledRaw};
use crate::value::Value;

/// What `exec` observed about one statement.
pub(crate) struct QueryEvent<'a> {
    /// Native SQL as sent to the server.
    pub sql: &'a str,
    /// Its parameters (never logged unless `log_parameter_values(true)`).
    pub params: &'a [Value],
    /// Sent as a prepared statement (and so cached by the driver); control statements are not.
    pub prepared: bool,
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

impl PoolInner {
    /// The `tracing` span of one statement (DEBUG, target `dal::query`): backend, alias, tags
    /// and SQL at the start; `duration_ms`, `rows` and `error` recorded when it ends. Costs a
    /// relaxed load when DEBUG is off for that target.
    pub(crate) fn query_span(&self, sql: &str, opts: &QueryOptions) -> tracing::Span {
        tracing::debug_span!(
            target: "dal::query",
            "dal.query",
            backend = self.backend.as_str(),
            alias = %self.alias,
            tags = %TagList(&opts.tags),
            sql = %truncated(sql, MAX_SQL_CHARS),
            duration_ms = tracing::field::Empty,
            rows = tracing::field::Empty,
            error = tracing::field::Empty,
        )
    }

    /// Records one finished statement.
    pub(crate) fn observe_query(&self, ev: QueryEvent<'_>) {
        let s = &self.stats;
        s.queries.fetch_add(1, Ordering::Relaxed);
        s.query_time.record(ev.elapsed);
        if ev.prepared {
            if let Some(conn) = ev.conn {
                if conn.seen.check(ev.sql, ev.result.is_ok()) {
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
                    ev.span.record("rows", rows);
                }
                Err(e) => {
                    ev.span.record("error", tracing::field::display(e));
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
}
