//! The statements a piece of code sends, as the server receives them, recorded by a minimal
//! `tracing` subscriber in force only while one future runs:
//!
//! * dal opens a DEBUG span (target `dal::query`) around every statement, with its native SQL
//!   in the `db.query.text` field (over 4 096 characters, truncated: `head… (N bytes)`);
//! * sqlx logs every statement it ran as an event (target `sqlx::query`): short ones whole in
//!   `summary`, longer ones in `db.statement`.
//!
//! The bench uses it at setup to compare dal's entity save with the raw "same statements"
//! mirror of it. Afterwards every callsite's interest is recomputed without the capture, so
//! the measured code pays nothing for it.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::instrument::WithSubscriber;
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Event, Metadata, Subscriber};
use tracing_core::LevelFilter;

/// Whose statements to record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// dal's statement spans.
    Dal,
    /// sqlx's statement events (raw sqlx code; dal runs on sqlx too, so not around dal).
    Sqlx,
}

struct Capture {
    source: Source,
    statements: Arc<Mutex<Vec<String>>>,
    next: AtomicU64,
}

/// The fields a statement's text is in.
#[derive(Default)]
struct Fields {
    sql: Option<String>,
    summary: Option<String>,
    statement: Option<String>,
}

impl Fields {
    fn set(&mut self, field: &Field, value: String) {
        match field.name() {
            "db.query.text" => self.sql = Some(value),
            "summary" => self.summary = Some(value),
            "db.statement" => self.statement = Some(value),
            _ => {}
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field, format!("{value:?}"));
    }
}

impl Capture {
    fn push(&self, sql: Option<String>) {
        if let (Some(sql), Ok(mut all)) = (sql, self.statements.lock()) {
            all.push(sql);
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        match self.source {
            Source::Dal => {
                metadata.is_span()
                    && metadata.target() == "dal::query"
                    && metadata.name() == "dal.query"
            }
            // sqlx asks `enabled!` (a hint callsite) before it builds its event.
            Source::Sqlx => !metadata.is_span() && metadata.target() == "sqlx::query",
        }
    }
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG)
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        if self.source == Source::Dal {
            let mut f = Fields::default();
            span.record(&mut f);
            self.push(f.sql);
        }
        Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed))
    }
    fn event(&self, event: &Event<'_>) {
        if self.source == Source::Sqlx {
            let mut f = Fields::default();
            event.record(&mut f);
            // `db.statement` is empty when the summary is the whole statement.
            let whole = f.statement.map(|s| s.trim().to_owned());
            self.push(whole.filter(|s| !s.is_empty()).or(f.summary));
        }
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

async fn run<F: Future>(source: Source, fut: F) -> (F::Output, Vec<String>) {
    let statements = Arc::new(Mutex::new(Vec::new()));
    let dispatch = Dispatch::new(Capture {
        source,
        statements: statements.clone(),
        next: AtomicU64::new(1),
    });
    let out = fut.with_subscriber(dispatch).await;
    // The dispatch is gone: recompute every callsite's interest without it.
    tracing_core::callsite::rebuild_interest_cache();
    let all = std::mem::take(&mut *statements.lock().unwrap_or_else(|e| e.into_inner()));
    (out, all)
}

/// Runs `fut` (dal code) and returns its output with the SQL of every statement dal ran
/// meanwhile, in order.
pub async fn dal<F: Future>(fut: F) -> (F::Output, Vec<String>) {
    run(Source::Dal, fut).await
}

/// Runs `fut` (raw sqlx code, no dal) and returns its output with the SQL of every statement
/// sqlx ran meanwhile, in order.
pub async fn sqlx<F: Future>(fut: F) -> (F::Output, Vec<String>) {
    run(Source::Sqlx, fut).await
}

/// dal's statement without the schema fingerprint comment it ends with (`/* dal:… */`),
/// which only keys dal's own statement cache.
pub fn without_fingerprint(sql: &str) -> &str {
    match sql.rfind(" /* dal:") {
        Some(i) if sql.ends_with(" */") => &sql[..i],
        _ => sql,
    }
}

/// A statement dal's span truncated (`first 4 096 characters… (N bytes)`): its head and its
/// whole length.
pub fn truncated(sql: &str) -> Option<(&str, usize)> {
    let (head, tail) = sql.rsplit_once("… (")?;
    let len = tail.strip_suffix(" bytes)")?.parse().ok()?;
    (head.chars().count() == 4096).then_some((head, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_comment_is_dropped() {
        assert_eq!(
            without_fingerprint("SELECT 1 FROM \"t\" /* dal:1f2e */"),
            "SELECT 1 FROM \"t\""
        );
        assert_eq!(without_fingerprint("BEGIN"), "BEGIN");
        assert_eq!(without_fingerprint("SELECT '/* x */'"), "SELECT '/* x */'");
    }

    #[test]
    fn truncated_statements_are_recognised() {
        let long = format!("SELECT {}", "x".repeat(5000));
        let head: String = long.chars().take(4096).collect();
        let cut = format!("{head}… ({} bytes)", long.len());
        assert_eq!(truncated(&cut), Some((head.as_str(), long.len())));
        assert_eq!(truncated("BEGIN"), None);
        assert_eq!(truncated("SELECT '… (3 bytes)'"), None);
    }

    #[tokio::test]
    async fn dal_spans_are_recorded_and_nothing_else() {
        let ((), sql) = dal(async {
            drop(tracing::debug_span!(target: "dal::query", "dal.query", db.query.text = %"SELECT 1"));
            drop(tracing::debug_span!(target: "elsewhere", "dal.query", db.query.text = %"SELECT 2"));
            tracing::debug!(target: "dal::query", { db.query.text = %"SELECT 3" }, "an event");
            tracing::debug!(target: "sqlx::query", summary = "SELECT 4");
        })
        .await;
        assert_eq!(sql, ["SELECT 1"]);
    }

    #[tokio::test]
    async fn sqlx_events_are_recorded_and_nothing_else() {
        let ((), sql) = sqlx(async {
            if tracing::enabled!(target: "sqlx::query", tracing::Level::DEBUG) {
                tracing::debug!(target: "sqlx::query", summary = "BEGIN", db.statement = "");
            }
            let long = "SELECT a, b, c FROM t";
            tracing::debug!(
                target: "sqlx::query",
                summary = "SELECT a, b, c …",
                db.statement = format!("\n\n{long}\n")
            );
            drop(tracing::debug_span!(target: "dal::query", "dal.query", db.query.text = %"SELECT 1"));
        })
        .await;
        assert_eq!(sql, ["BEGIN", "SELECT a, b, c FROM t"]);
    }
}
