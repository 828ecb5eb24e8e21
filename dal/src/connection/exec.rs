//! The statement pipeline, one function per stage (see the diagram in the parent module):
//!
//! 1. translate — [`Connection::translate`]: native SQL, parameter count, statement kind;
//!    then, with `sql_comments`, the statement's tags appended as a comment (never translated);
//! 2. breaker — [`Connection::dispatch`]: admission by the pool's circuit breaker, and what
//!    the statement does to the transaction and session state;
//! 3. retry — [`Connection::call`] / [`Connection::retrying`]: transient failures retried,
//!    the final outcome recorded once with the breaker;
//! 4. timeout — [`Connection::exec`] / [`within_deadline`]: the statement's deadline, then
//!    the server-side cancel;
//! 5. backend — [`send`]: the driver runs the statement;
//! 6. observe — [`Connection::observe`]: metrics, span fields, slow-query log.
//!
//! [`Connection::run`] is the entry of one statement, [`Connection::run_many`] the entry of
//! `executemany`: both go through stages 1–6.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{lost_error, Connection, QueryOptions};
use crate::backend::{CancelToken, QueryOutput};
use crate::error::{Error, Result, TimeoutKind};
use crate::pool::{PooledRaw, QueryEvent};
use crate::resilience::{self, classify, FailureClass};
use crate::row::Row;
use crate::sql::cache::{translate_cached, Statement};
use crate::sql::{self, StatementKind};
use crate::value::Value;

/// The promise: a statement's timeout error never comes later than this past its deadline,
/// even when the cancel request cannot be delivered.
const TIMEOUT_ERROR_BOUND: Duration = Duration::from_secs(2);
/// After a statement's deadline: how long delivering the cancel request and reading the
/// statement's end may take together, before the connection is considered unusable and closed
/// instead of reused. Counted from the deadline itself (not from when the timer's task got to
/// run), and kept under [`TIMEOUT_ERROR_BOUND`] so that dropping the unfinished work,
/// recording metrics and returning fit in the rest even on a loaded machine.
const CANCEL_GRACE: Duration = TIMEOUT_ERROR_BOUND.saturating_sub(Duration::from_millis(200));

/// What stage 5 sends: a translated statement with its parameters (prepared and cached per
/// connection), or a parameterless control statement (`BEGIN`, `COMMIT`, `ROLLBACK`).
#[derive(Clone, Copy)]
pub(super) enum Op<'a> {
    Query(&'a Statement, &'a [Value]),
    Control(&'static str),
    /// `COPY … FROM STDIN` with its data (PostgreSQL).
    Copy(&'a Statement, &'a [u8]),
}

impl<'a> Op<'a> {
    /// The SQL as sent.
    fn sql(self) -> &'a str {
        match self {
            Op::Query(statement, _) | Op::Copy(statement, _) => &statement.translated.sql,
            Op::Control(sql) => sql,
        }
    }

    fn params(self) -> &'a [Value] {
        match self {
            Op::Query(_, params) => params,
            Op::Control(_) | Op::Copy(..) => &[],
        }
    }

    /// The operation name for tracing (`db.operation.name`): the statement's first keyword.
    fn operation(self) -> Option<&'static str> {
        match self {
            Op::Query(statement, _) | Op::Copy(statement, _) => statement.translated.operation,
            Op::Control(sql) => sql.split(' ').next(),
        }
    }
}

impl Connection {
    /// Entry of one statement: settles what an interrupted call left behind, then stages 1–6.
    pub(crate) async fn run(
        &mut self,
        sql: &str,
        params: &[Value],
        opts: &QueryOptions,
    ) -> Result<QueryOutput> {
        self.settle_abandoned().await?;
        let statement = self.translate(sql, opts)?;
        check_params(&statement, params.len())?;
        self.dispatch(&statement, params, opts).await
    }

    /// Entry of `executemany`: translates once and validates every parameter list before
    /// anything is sent, then dispatches the statement once per list inside one transaction
    /// (the caller's, or one of its own that a failure rolls back).
    pub(super) async fn run_many(
        &mut self,
        sql: &str,
        param_lists: &[Vec<Value>],
        opts: &QueryOptions,
    ) -> Result<Vec<Row>> {
        // Validate everything before touching the server: no partial writes on bad input.
        let statement = self.translate(sql, opts)?;
        for params in param_lists {
            check_params(&statement, params.len())?;
        }
        self.settle_abandoned().await?;
        let own_tx = !self.in_transaction();
        if own_tx {
            self.begin_transaction().await?;
        }
        let mut rows = Vec::new();
        for params in param_lists {
            match self.dispatch(&statement, params, opts).await {
                Ok(out) => rows.extend(out.rows),
                Err(e) => {
                    if own_tx {
                        let _ = self.rollback_transaction().await;
                    }
                    return Err(e);
                }
            }
        }
        if own_tx {
            self.commit_transaction().await?;
        }
        Ok(rows)
    }

    /// Entry of `COPY … FROM STDIN` (portable SQL naming the table and columns, no
    /// parameters) with `data` in the statement's format: stages 1–6 like any statement, never
    /// retried (it writes). Returns the rows copied. PostgreSQL only.
    pub(crate) async fn copy_in(&mut self, sql: &str, data: &[u8]) -> Result<u64> {
        self.settle_abandoned().await?;
        let statement = self.translate(sql, &QueryOptions::default())?;
        check_params(&statement, 0)?;
        if self.read_only {
            return Err(Error::ReadOnly(
                "this is a read connection (Database::read_connection): COPY is refused".into(),
            ));
        }
        resilience::admit(&self.pool)?;
        let was_in_tx = self.in_tx;
        let result = self
            .call(
                Op::Copy(&statement, data),
                &QueryOptions::default(),
                false,
                false,
            )
            .await;
        self.note_write(was_in_tx && self.in_tx);
        Ok(result?.rows_affected)
    }

    /// Stage 1, translate: portable SQL to the backend's SQL, with the number of parameters
    /// the statement expects and its [`StatementKind`], in one pass. Then, when the
    /// configuration asks for it ([`sql_comments`](crate::DatabaseConfig::sql_comments)), the
    /// statement's tags are appended to the *native* SQL as a sqlcommenter comment: the
    /// translator never reads them, and what the driver prepares, caches and sends (and what
    /// the span and the statement-cache metrics see) is the tagged text.
    ///
    /// A text already translated for this backend is not lexed again (`sql::cache`).
    pub(super) fn translate(&self, sql: &str, opts: &QueryOptions) -> Result<Arc<Statement>> {
        let statement = translate_cached(sql, self.backend())?;
        if self.pool.config.get_sql_comments() {
            if let Some(tagged) = sql::commenter::append(&statement.translated.sql, &opts.tags) {
                let mut translated = statement.translated.clone();
                translated.sql = tagged;
                return Ok(Arc::new(Statement::new(translated)));
            }
        }
        Ok(statement)
    }

    /// Stage 2, breaker: an open breaker rejects the statement at once — except one that ends
    /// a transaction, so that a caller can still roll back. Then the statement's kind updates
    /// the transaction and session state and decides whether stage 3 may retry it.
    async fn dispatch(
        &mut self,
        statement: &Statement,
        params: &[Value],
        opts: &QueryOptions,
    ) -> Result<QueryOutput> {
        let kind = statement.translated.kind;
        if self.read_only && kind == StatementKind::Write {
            return Err(Error::ReadOnly(
                "this is a read connection (Database::read_connection): statements that may \
                 write are refused; use async_connection() for writes"
                    .into(),
            ));
        }
        if !kind.ends_transaction() {
            resilience::admit(&self.pool)?;
        }
        let was_in_tx = self.in_tx;
        self.track(kind);
        // Never retried: anything inside a transaction, transaction control, session changes.
        let retry =
            !was_in_tx && !self.in_tx && matches!(kind, StatementKind::Read | StatementKind::Write);
        let read = kind.is_read();
        let result = self
            .call(Op::Query(statement, params), opts, retry, read)
            .await;
        if kind == StatementKind::Write {
            // Whatever the outcome (a failed write may still have been applied).
            self.note_write(was_in_tx && self.in_tx);
        } else if kind.ends_transaction() {
            self.note_commit();
        }
        result
    }

    /// Stage 3, retry: `op` with retries when `retry` allows them (see [`Self::retrying`]),
    /// its final outcome recorded once with the pool's circuit breaker.
    pub(super) async fn call(
        &mut self,
        op: Op<'_>,
        opts: &QueryOptions,
        retry: bool,
        read: bool,
    ) -> Result<QueryOutput> {
        let result = if retry {
            self.retrying(op, opts, read).await
        } else if self.broken {
            // Known lost before anything is sent (and not replaceable here): no news for the
            // breaker.
            resilience::record_ignored(&self.pool);
            return Err(lost_error());
        } else {
            let r = self.exec(op, opts).await;
            if let Err(e) = &r {
                if classify(self.backend(), e) == FailureClass::ConnectionLost {
                    self.broken = true;
                }
            }
            r
        };
        if result.is_ok() {
            self.verified = Some(self.pool.resilience.losses());
        }
        let result = self.after_role_error(result);
        // A query timeout that left the connection usable was confirmed by the server.
        resilience::record(&self.pool, &result, !self.broken);
        result
    }

    /// Runs `op` outside any transaction, retrying transient failures with the pool's
    /// [`RetryPolicy`](crate::RetryPolicy):
    ///
    /// - a conflict the server rolled back (deadlock, serialization failure, lock wait timeout,
    ///   SQLite BUSY/LOCKED) is retried, read or write, on the same connection;
    /// - a lost connection is retried on a fresh connection for reads (`read`), and for any
    ///   statement that never left the client (the connection was found dead before sending,
    ///   or getting a replacement failed) — but never a write that was sent: its outcome is
    ///   unknown;
    /// - nothing is retried on a connection bound to session state (`session_bound`).
    async fn retrying(
        &mut self,
        op: Op<'_>,
        opts: &QueryOptions,
        read: bool,
    ) -> Result<QueryOutput> {
        let mut backoff = self.pool.config.get_retry_policy().backoff();
        loop {
            let (error, sent) = match self.ensure_live(read).await {
                Err(e) => (e, false),
                Ok(()) => match self.exec(op, opts).await {
                    Ok(out) => return Ok(out),
                    Err(e) => (e, true),
                },
            };
            let class = classify(self.backend(), &error);
            if class == FailureClass::ConnectionLost && sent {
                self.broken = true;
                self.pool.resilience.note_loss();
            }
            let again = match class {
                FailureClass::Conflict => true,
                FailureClass::ConnectionLost => !self.session_bound && (read || !sent),
                _ => false,
            };
            if !again {
                return Err(error);
            }
            let Some(delay) = backoff.next_delay() else {
                return Err(error);
            };
            tracing::debug!(
                target: "dal::retry",
                alias = %self.pool.alias,
                backend = self.pool.backend.as_str(),
                retry = backoff.retries(),
                delay_ms = delay.as_millis() as u64,
                error = %error,
                "retrying after a transient failure"
            );
            // No time left for another try within the entity operation's deadline.
            self.check_op_sleep(delay)?;
            tokio::time::sleep(delay).await;
        }
    }

    /// Stage 4, timeout: one try of `op` (stage 5) within the statement's deadline, stopped on
    /// the server when the deadline passes, then observed (stage 6). A connection left in an
    /// unknown state is marked broken.
    pub(super) async fn exec(&mut self, op: Op<'_>, opts: &QueryOptions) -> Result<QueryOutput> {
        let mut limit = opts
            .timeout
            .unwrap_or_else(|| self.pool.config.get_query_execution_timeout());
        // Inside an entity operation with a deadline, a statement gets at most what is left
        // (ending a transaction is never cut short: it must run; beginning one may wait on
        // locks, so it is bounded).
        let mut op_bound = None;
        let bounded = match op {
            Op::Query(..) | Op::Copy(..) => true,
            Op::Control(sql) => sql.starts_with("BEGIN") || sql.starts_with("START"),
        };
        if let (true, Some(d)) = (bounded, self.op_deadline()) {
            let left = d.at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::timeout(TimeoutKind::Operation, d.limit, d.limit));
            }
            if left < limit {
                limit = left;
                op_bound = Some(d);
            }
        }
        let raw = self.raw()?;
        let token = raw.raw.cancel_token();
        let system = raw.raw.system_name();
        let start = Instant::now();
        // Observability (pool/observe.rs): a DEBUG span around the statement.
        let span = self.pool.query_span(
            op.sql(),
            op.operation(),
            system,
            self.collection.as_ref(),
            opts,
        );
        self.busy = true;
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => return Err(Error::Internal("connection already released".into())),
        };
        let sent = tracing::Instrument::instrument(send(conn, op), span.clone());
        let (result, clean) = within_deadline(sent, token.as_ref(), limit, start).await;
        self.busy = false;
        if !clean {
            self.broken = true;
        }
        self.observe(op, opts, &span, start, &result);
        match (result, op_bound) {
            (Err(Error::Timeout { .. }), Some(d)) => Err(Error::timeout(
                TimeoutKind::Operation,
                d.limit,
                d.limit.saturating_sub(limit) + start.elapsed(),
            )),
            (r, _) => r,
        }
    }

    /// Stage 6, observe: metrics, span fields, slow-query log, statement-cache hits — one hook.
    fn observe(
        &mut self,
        op: Op<'_>,
        opts: &QueryOptions,
        span: &tracing::Span,
        start: Instant,
        result: &Result<QueryOutput>,
    ) {
        self.pool.observe_query(QueryEvent {
            sql: op.sql(),
            params: op.params(),
            statement_hash: match op {
                Op::Query(statement, _) => Some(statement.hash),
                // Sent as a simple query, never prepared: not a statement-cache entry.
                Op::Control(_) | Op::Copy(..) => None,
            },
            elapsed: start.elapsed(),
            result,
            opts,
            span,
            conn: self.conn.as_mut(),
        });
    }
}

/// The statement expects as many parameters as were given.
pub(super) fn check_params(statement: &Statement, given: usize) -> Result<()> {
    if statement.translated.placeholders != given {
        return Err(Error::ParameterCount {
            expected: statement.translated.placeholders,
            given,
        });
    }
    Ok(())
}

/// Stage 4's deadline: awaits `sent` for at most `limit`. Past the deadline, asks the server
/// to stop the statement, then lets the driver read the server's answer so the connection is
/// left in a known state — both within [`CANCEL_GRACE`] of the deadline, so an unreachable
/// server cannot delay the timeout error past [`TIMEOUT_ERROR_BOUND`].
///
/// Returns the outcome and whether the connection is still clean (fit for reuse).
async fn within_deadline<F>(
    sent: F,
    token: &dyn CancelToken,
    limit: Duration,
    start: Instant,
) -> (Result<QueryOutput>, bool)
where
    F: Future<Output = Result<QueryOutput>>,
{
    tokio::pin!(sent);
    let deadline = tokio::time::Instant::now().checked_add(limit);
    match tokio::time::timeout(limit, &mut sent).await {
        Ok(r) => {
            let clean = !matches!(r, Err(Error::Connection(_)));
            (r, clean)
        }
        Err(_) => {
            let grace_end = deadline
                .and_then(|d| d.checked_add(CANCEL_GRACE))
                .unwrap_or_else(|| tokio::time::Instant::now() + CANCEL_GRACE);
            let settled = tokio::time::timeout_at(grace_end, async {
                tokio::join!(token.cancel(), &mut sent)
            })
            .await;
            token.reset();
            let clean = matches!(
                settled,
                Ok((Ok(()), Ok(_))) | Ok((Ok(()), Err(Error::Database { .. })))
            );
            (
                Err(Error::timeout(TimeoutKind::Query, limit, start.elapsed())),
                clean,
            )
        }
    }
}

/// Stage 5, backend: the driver runs `op` on the physical connection.
async fn send(conn: &mut PooledRaw, op: Op<'_>) -> Result<QueryOutput> {
    match op {
        Op::Query(statement, params) => conn.raw.query(&statement.translated.sql, params).await,
        Op::Control(sql) => conn.raw.simple(sql).await.map(|_| QueryOutput::default()),
        Op::Copy(statement, data) => {
            conn.raw
                .copy_in(&statement.translated.sql, data)
                .await
                .map(|rows_affected| QueryOutput {
                    rows: Vec::new(),
                    rows_affected,
                })
        }
    }
}
