//! Before the pipeline: the awaitable builders ([`Execute`], [`ExecuteMany`]) that collect a
//! statement's options ([`QueryOptions`]) and hand it to the pipeline when awaited, and the
//! [`TxScope`] guard of `#[auto_transaction]`.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::Connection;
use crate::error::Result;
use crate::row::Row;
use crate::value::Value;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Options for one statement, used by the blocking twin's `_with` methods.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// Overrides `query_execution_timeout` for this statement.
    pub timeout: Option<Duration>,
    /// Key/value tags for tracing, metrics and the slow-query log, and with
    /// [`sql_comments`](crate::DatabaseConfig::sql_comments) for the server too.
    pub tags: Vec<(String, String)>,
}

impl QueryOptions {
    /// Options with a timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
    /// Adds a tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }
}

/// `.timeout()` and `.tag()` on a statement builder with an `opts: QueryOptions` field.
macro_rules! statement_options {
    ($t:ident, $what:literal) => {
        impl $t<'_> {
            #[doc = concat!("Overrides `query_execution_timeout` for ", $what, ".")]
            pub fn timeout(mut self, t: Duration) -> Self {
                self.opts.timeout = Some(t);
                self
            }
            /// Adds a tag (for tracing spans, metrics and the slow-query log; with
            /// [`sql_comments`](crate::DatabaseConfig::sql_comments), sent to the server as a
            /// trailing SQL comment too).
            pub fn tag(mut self, key: impl Into<String>, value: impl ToString) -> Self {
                self.opts.tags.push((key.into(), value.to_string()));
                self
            }
        }
    };
}

/// A statement being built: set `.timeout()` / `.tag()`, then `.await` it.
#[must_use = "a statement does nothing until awaited"]
pub struct Execute<'c> {
    conn: &'c mut Connection,
    sql: String,
    params: Vec<Value>,
    opts: QueryOptions,
}

impl<'c> Execute<'c> {
    pub(super) fn new(conn: &'c mut Connection, sql: &str, params: Vec<Value>) -> Self {
        Execute {
            conn,
            sql: sql.to_owned(),
            params,
            opts: QueryOptions::default(),
        }
    }
}
statement_options!(Execute, "this statement");

impl<'c> IntoFuture for Execute<'c> {
    type Output = Result<Vec<Row>>;
    type IntoFuture = BoxFuture<'c, Result<Vec<Row>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let out = self.conn.run(&self.sql, &self.params, &self.opts).await?;
            Ok(out.rows)
        })
    }
}

/// `executemany` being built: set `.timeout()` (per statement) / `.tag()`, then `.await` it.
#[must_use = "a statement does nothing until awaited"]
pub struct ExecuteMany<'c> {
    conn: &'c mut Connection,
    sql: String,
    params: Vec<Vec<Value>>,
    opts: QueryOptions,
}

impl<'c> ExecuteMany<'c> {
    pub(super) fn new(conn: &'c mut Connection, sql: &str, params: Vec<Vec<Value>>) -> Self {
        ExecuteMany {
            conn,
            sql: sql.to_owned(),
            params,
            opts: QueryOptions::default(),
        }
    }
}
statement_options!(ExecuteMany, "each execution");

impl<'c> IntoFuture for ExecuteMany<'c> {
    type Output = Result<Vec<Row>>;
    type IntoFuture = BoxFuture<'c, Result<Vec<Row>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            self.conn
                .run_many(&self.sql, &self.params, &self.opts)
                .await
        })
    }
}

/// Guard used by `#[auto_transaction]`: dropped while armed (the annotated function panicked or
/// its future was dropped), it marks the transaction it began so that the connection rolls it
/// back before doing anything else (and when given back to the pool).
#[doc(hidden)]
pub struct TxScope {
    flag: Arc<AtomicBool>,
    armed: bool,
}

impl TxScope {
    pub(crate) fn new(flag: Arc<AtomicBool>) -> Self {
        TxScope { flag, armed: true }
    }

    /// The function finished and committed or rolled back itself.
    pub fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TxScope {
    fn drop(&mut self) {
        if self.armed {
            self.flag.store(true, Ordering::Release);
        }
    }
}
