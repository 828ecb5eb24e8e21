//! Streaming reads: [`Connection::fetch`] and the streams built on it
//! ([`Database::fetch_owned`](crate::Database::fetch_owned), `find_entities(..).stream()`,
//! `find::<T>().stream()`).
//!
//! A statement's rows are read from the server as the stream is polled (the driver's own
//! `fetch`, one row converted at a time), so memory stays bounded whatever the result's size.
//! The statement goes through the same stages as [`Connection::execute`] — translation,
//! sqlcommenter tags, the read-only check, the circuit breaker, retries, the timeout, the span
//! and the metrics — with two differences that streaming forces:
//!
//! * **Retries end at the first row.** A transient failure before the first row is retried as
//!   `execute` retries it; once a row was handed out, a failure is the stream's last item.
//! * **The timeout bounds each wait for the server**: the time until the first row and each
//!   later wait for the next row. Time the consumer spends between rows never counts.
//!
//! Dropping a stream before its end stops the statement on the server as a timeout does
//! (`pg_cancel_backend` / `KILL QUERY` from another connection, SQLite's progress-handler
//! interrupt), then reads off what it left on the wire. `Drop` cannot wait, so that work runs on
//! a task and the physical connection is parked with it ([`Draining`]): the next statement on
//! the connection (or the pool, when the connection is dropped meanwhile) takes it back only
//! once it is idle again. A connection whose drain failed, or took longer than
//! [`DRAIN_BOUND`], is closed (the server then stops at once) and never reused: the next
//! statement gets a fresh one, as after a lost connection.
//!
//! The generator: a stream is one future (the statement's whole life, written as plain
//! `async` code) that hands each item out through a [`Yielder`] and suspends until the next
//! poll. Holding the driver's row stream inside that future is what lets it borrow the
//! physical connection; dropping the future drops the row stream first and then the [`Lent`]
//! guard, which parks the connection for draining.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::stream::Stream;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::oneshot;
use tracing::Instrument;

use super::exec::check_params;
use super::{lost_error, Connection, QueryOptions};
use crate::backend::QueryOutput;
use crate::error::{Error, Result, TimeoutKind};
use crate::pool::{PooledRaw, QueryEvent};
use crate::resilience::{self, classify, FailureClass};
use crate::row::Row;
use crate::sql::cache::Statement;
use crate::sql::StatementKind;
use crate::value::Value;

/// Bound for stopping an abandoned statement and reading off what it left: the cancel request
/// (a connection of its own) and the reads together. Past it the connection is closed instead
/// (the server then stops writing at once), so that the server never runs an abandoned
/// statement for long: the rows already in the sockets' buffers (megabytes on loopback) take
/// a while to read off.
const DRAIN_BOUND: Duration = Duration::from_millis(1500);

type Running<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
type Start<'a, T> = Box<dyn FnOnce(QueryOptions, Yielder<T>) -> Running<'a> + Send + 'a>;

/// The rows of one statement, as a [`Stream`]: read from the server as it is polled, with
/// bounded memory (see [`Connection::fetch`]). Items are `Result<T>`; an `Err` is always the
/// last item.
///
/// `.timeout()` and `.tag()` set the statement's options before the first poll.
///
/// Dropped before its end, the statement is stopped on the server and the connection cleaned
/// up before its next use (see [`Connection::fetch`]).
#[must_use = "a stream does nothing until polled"]
pub struct RowStream<'c, T = Row> {
    start: Option<Start<'c, T>>,
    opts: QueryOptions,
    running: Option<Running<'c>>,
    slot: Arc<Slot<T>>,
}

impl<T> std::fmt::Debug for RowStream<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowStream")
            .field("started", &self.start.is_none())
            .field(
                "finished",
                &(self.start.is_none() && self.running.is_none()),
            )
            .finish()
    }
}

impl<'c, T: Send + 'c> RowStream<'c, T> {
    /// A stream whose life is the future `start` makes (given the options set meanwhile) on
    /// the first poll; it hands items out through the [`Yielder`].
    pub(crate) fn new<F>(start: F) -> Self
    where
        F: FnOnce(QueryOptions, Yielder<T>) -> Running<'c> + Send + 'c,
    {
        RowStream {
            start: Some(Box::new(start)),
            opts: QueryOptions::default(),
            running: None,
            slot: Arc::new(Slot(Mutex::new(None))),
        }
    }

    /// Overrides `query_execution_timeout`: the longest wait for the first row, and for each
    /// later row once asked for (time spent by the consumer between rows does not count).
    /// Only before the first poll.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.opts.timeout = Some(t);
        self
    }

    /// Adds a tag (for tracing spans, metrics and the slow-query log; with
    /// [`sql_comments`](crate::DatabaseConfig::sql_comments), sent to the server as a trailing
    /// SQL comment too). Only before the first poll.
    pub fn tag(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.opts.tags.push((key.into(), value.to_string()));
        self
    }

    /// Sets all options at once (the blocking twin's `fetch_with`).
    pub(crate) fn with_options(mut self, opts: QueryOptions) -> Self {
        self.opts = opts;
        self
    }
}

impl<T: Send> Stream for RowStream<'_, T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let this = &mut *self;
        if let Some(start) = this.start.take() {
            let opts = std::mem::take(&mut this.opts);
            this.running = Some(start(opts, Yielder(this.slot.clone())));
        }
        let Some(running) = this.running.as_mut() else {
            return Poll::Ready(None);
        };
        let finished = running.as_mut().poll(cx).is_ready();
        if finished {
            // Its clean-up (giving the connection back) runs now, not when the stream drops.
            this.running = None;
        }
        match this.slot.take() {
            Some(item) => Poll::Ready(Some(item)),
            None if finished => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

/// Where the generator leaves the next item.
struct Slot<T>(Mutex<Option<Result<T>>>);

impl<T> Slot<T> {
    fn take(&self) -> Option<Result<T>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The generator's side of a [`RowStream`]: `put` hands an item out and suspends until the
/// consumer asks for the next one.
pub(crate) struct Yielder<T>(Arc<Slot<T>>);

impl<T> Yielder<T> {
    pub(crate) async fn put(&self, item: Result<T>) {
        *self.0 .0.lock().unwrap_or_else(|p| p.into_inner()) = Some(item);
        Suspend(false).await;
    }
}

/// Pending once without asking to be woken: the stream returns the item just put, and the
/// consumer's next poll resumes the generator.
struct Suspend(bool);

impl Future for Suspend {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

/// A physical connection parked after a stream was dropped mid-statement.
pub(super) enum Draining {
    /// A task cancels the statement and reads off its rest; it sends the connection back when
    /// it is clean (`None`: it could not be made clean and was closed) — or, when this side is
    /// gone, gives it back to the pool itself.
    Task(oneshot::Receiver<Option<PooledRaw>>),
    /// Dropped outside any runtime: the connection stays here and is drained before its next
    /// use.
    Here,
}

/// The breaker hears of a stream once (its first row, its end, or its final error); a stream
/// dropped before that gives up its admission.
struct Verdict<'a> {
    conn_pool: &'a Arc<crate::pool::PoolInner>,
    pending: bool,
}

impl Verdict<'_> {
    fn record<T>(&mut self, result: &Result<T>, usable: bool) {
        if std::mem::take(&mut self.pending) {
            resilience::record(self.conn_pool, result, usable);
        }
    }
}

impl Drop for Verdict<'_> {
    fn drop(&mut self) {
        if self.pending {
            resilience::record_ignored(self.conn_pool);
        }
    }
}

/// How a statement's first wait ended.
enum FirstWait {
    TimedOut,
    Failed(Error),
    Empty,
    Row(Row),
}

/// How one try of a stream failed.
struct Failed {
    error: Error,
    /// Before the first row, and the statement is over (or never started): retrying may help.
    before_first_row: bool,
}

impl Connection {
    /// Streams the rows of one statement in portable SQL, read from the server as the stream
    /// is polled: memory stays bounded however many rows there are, and a slow consumer holds
    /// the server back (backpressure) instead of piling rows up.
    ///
    /// The statement goes through the same pipeline as [`execute`](Self::execute):
    /// translation, placeholders, sqlcommenter tags, the read-only check of read connections,
    /// the circuit breaker, the span and the metrics. Differences:
    ///
    /// * `timeout` (`.timeout()` or `query_execution_timeout`) bounds the wait for the first
    ///   row, and then each wait for the next row from the server; the time your code spends
    ///   between rows never counts.
    /// * Transient failures are retried as `execute` retries them **only until the first
    ///   row**: once a row was handed out, a failure ends the stream with an `Err` (never a
    ///   silent restart that would repeat rows).
    /// * Dropping the stream before its end stops the statement on the server, as a timeout
    ///   does, and the connection is cleaned up (the rest of the result read off) before its
    ///   next statement, which then works as usual. Inside a transaction on PostgreSQL, the
    ///   cancelled statement aborts the transaction, as any failed statement does there.
    ///
    /// ```
    /// use futures_util::{StreamExt, TryStreamExt};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
    /// let db = dal::Database::from_url("sqlite::memory:")?;
    /// let mut conn = db.async_connection().await?;
    /// let mut rows = conn.fetch(
    ///     "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?) SELECT n FROM s",
    ///     dal::params![1_000_000],
    /// );
    /// let mut sum = 0;
    /// while let Some(row) = rows.next().await {
    ///     let n: i64 = row?.try_get(0)?;
    ///     sum += n;
    ///     if n == 10 { break; }   // the rest is never computed
    /// }
    /// drop(rows);
    /// assert_eq!(sum, 55);
    /// // The connection is clean for the next statement.
    /// let five: Vec<dal::Row> = conn.fetch("SELECT 5", ()).try_collect().await?;
    /// assert_eq!(five[0].try_get::<i64, _>(0)?, 5);
    /// # Ok(()) }
    /// ```
    pub fn fetch<P: crate::value::IntoParams>(&mut self, sql: &str, params: P) -> RowStream<'_> {
        let sql = sql.to_owned();
        let params = params.into_params();
        RowStream::new(move |opts, out| {
            Box::pin(async move {
                self.stream_rows(&sql, &params, &opts, &mut Ok::<Row, Error>, &out)
                    .await;
            })
        })
    }

    /// The body of every stream: runs `sql` and puts each row, converted by `map`, out
    /// through `out`; an error is put out as the last item.
    pub(crate) async fn stream_rows<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        opts: &QueryOptions,
        map: &mut (dyn FnMut(Row) -> Result<T> + Send),
        out: &Yielder<T>,
    ) {
        if let Err(e) = self.stream_statement(sql, params, opts, map, out).await {
            out.put(Err(e)).await;
        }
    }

    /// Stages 1–3 of the pipeline for a stream (see the module docs): translate, the
    /// read-only check and the breaker, then tries until the first row.
    async fn stream_statement<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        opts: &QueryOptions,
        map: &mut (dyn FnMut(Row) -> Result<T> + Send),
        out: &Yielder<T>,
    ) -> Result<()> {
        self.settle_abandoned().await?;
        let statement = self.translate(sql, opts)?;
        check_params(&statement, params.len())?;
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
        let pool = self.pool.clone();
        let mut verdict = Verdict {
            conn_pool: &pool,
            pending: true,
        };
        let was_in_tx = self.in_tx;
        self.track(kind);
        let retry =
            !was_in_tx && !self.in_tx && matches!(kind, StatementKind::Read | StatementKind::Write);
        let read = kind.is_read();
        let mut backoff = pool.config.get_retry_policy().backoff();
        let result = loop {
            let live = if retry {
                self.ensure_live(read).await
            } else if self.broken {
                Err(lost_error())
            } else {
                Ok(())
            };
            let (error, sent) = match live {
                Err(e) => (e, false),
                Ok(()) => match self
                    .stream_once(&statement, params, opts, map, out, &mut verdict)
                    .await
                {
                    Ok(()) => break Ok(()),
                    Err(f) if f.before_first_row && retry => (f.error, true),
                    Err(f) => break Err(f.error),
                },
            };
            let class = classify(self.backend(), &error);
            let again = match class {
                FailureClass::Conflict => true,
                FailureClass::ConnectionLost => !self.session_bound && (read || !sent),
                _ => false,
            };
            let delay = if again { backoff.next_delay() } else { None };
            let Some(delay) = delay else {
                break Err(error);
            };
            if let Err(e) = self.check_op_sleep(delay) {
                break Err(e);
            }
            tokio::time::sleep(delay).await;
        };
        let result = self.after_role_error(result);
        // A timeout that left the connection usable was confirmed by the server.
        verdict.record(&result, !self.broken);
        drop(verdict);
        if kind == StatementKind::Write {
            self.note_write(was_in_tx && self.in_tx);
        } else if kind.ends_transaction() {
            self.note_commit();
        }
        result
    }

    /// One try: stages 4–6 for a stream. The physical connection is lent to a [`Lent`] guard
    /// for the statement's life.
    async fn stream_once<T>(
        &mut self,
        statement: &Statement,
        params: &[Value],
        opts: &QueryOptions,
        map: &mut (dyn FnMut(Row) -> Result<T> + Send),
        out: &Yielder<T>,
        verdict: &mut Verdict<'_>,
    ) -> std::result::Result<(), Failed> {
        let mut limit = opts
            .timeout
            .unwrap_or_else(|| self.pool.config.get_query_execution_timeout());
        // Inside an entity operation with a deadline, the first row gets at most what is left.
        let mut op_limit = None;
        if let Some(d) = self.op_deadline() {
            let left = d.at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Failed {
                    error: Error::timeout(TimeoutKind::Operation, d.limit, d.limit),
                    before_first_row: false,
                });
            }
            if left < limit {
                limit = left;
                op_limit = Some(d.limit);
            }
        }
        let Some(raw) = self.conn.take() else {
            return Err(Failed {
                error: lost_error(),
                before_first_row: false,
            });
        };
        let span = self.pool.query_span(
            &statement.translated.sql,
            statement.translated.operation,
            raw.raw.system_name(),
            self.collection.as_ref(),
            opts,
        );
        let mut lent = Lent {
            conn: self,
            raw: Some(raw),
            in_flight: false,
            observed: false,
            rows: 0,
            start: Instant::now(),
            statement,
            params,
            opts,
            span: span.clone(),
        };
        lent.run(limit, op_limit, map, out, verdict)
            .instrument(span)
            .await
    }
}

/// The physical connection while a stream runs on it, and what the statement's observation
/// needs. Dropped with the statement still running (the stream was dropped), it parks the
/// connection for draining; otherwise it puts it back.
struct Lent<'a> {
    conn: &'a mut Connection,
    raw: Option<PooledRaw>,
    /// The statement was sent and has not ended: its rest may still be on the wire.
    in_flight: bool,
    observed: bool,
    rows: u64,
    start: Instant,
    statement: &'a Statement,
    params: &'a [Value],
    opts: &'a QueryOptions,
    span: tracing::Span,
}

impl Lent<'_> {
    async fn run<T>(
        &mut self,
        limit: Duration,
        op_limit: Option<Duration>,
        map: &mut (dyn FnMut(Row) -> Result<T> + Send),
        out: &Yielder<T>,
        verdict: &mut Verdict<'_>,
    ) -> std::result::Result<(), Failed> {
        let timeout = |elapsed: Duration| match op_limit {
            Some(whole) => Error::timeout(TimeoutKind::Operation, whole, elapsed),
            None => Error::timeout(TimeoutKind::Query, limit, elapsed),
        };
        let (statement, params) = (self.statement, self.params);
        let Some(raw) = self.raw.as_mut() else {
            return Err(Failed {
                error: lost_error(),
                before_first_row: false,
            });
        };
        self.in_flight = true;
        // The driver's row stream borrows the connection: it lives in `rows`, and is dropped
        // (explicitly) before anything else touches the connection.
        let mut rows = None;
        let start = match tokio::time::timeout(limit, async {
            let mut rows = raw.raw.fetch(&statement.translated.sql, params).await?;
            match rows.next().await {
                Some(Ok(row)) => Ok(Some((rows, row))),
                Some(Err(e)) => Err(e),
                None => Ok(None),
            }
        })
        .await
        {
            Err(_) => FirstWait::TimedOut,
            Ok(Err(e)) => FirstWait::Failed(e),
            Ok(Ok(None)) => FirstWait::Empty,
            Ok(Ok(Some((stream, row)))) => {
                rows = Some(stream);
                FirstWait::Row(row)
            }
        };
        let first = match start {
            FirstWait::Row(row) => row,
            start => {
                drop(rows);
                return match start {
                    FirstWait::TimedOut => {
                        self.abandon().await;
                        Err(Failed {
                            error: self.observed_error(timeout(self.start.elapsed())),
                            before_first_row: false,
                        })
                    }
                    // The driver could not convert a row: the statement is still sending
                    // the rest, so it is stopped like a dropped stream's (and not retried).
                    FirstWait::Failed(e @ Error::Conversion(_)) => {
                        self.abandon().await;
                        Err(Failed {
                            error: self.observed_error(e),
                            before_first_row: false,
                        })
                    }
                    FirstWait::Failed(e) => {
                        self.in_flight = false;
                        self.statement_failed(&e);
                        Err(Failed {
                            error: self.observed_error(e),
                            before_first_row: true,
                        })
                    }
                    FirstWait::Empty | FirstWait::Row(_) => {
                        self.in_flight = false;
                        verdict.record(&Ok(()), true);
                        self.conn.verified = Some(self.conn.pool.resilience.losses());
                        Ok(())
                    }
                };
            }
        };
        // Consumed by value, so that nothing of `rows` is left to drop later.
        let Ok(mut rows) = rows.ok_or(()) else {
            return Err(Failed {
                error: Error::Internal("a first row without its stream".into()),
                before_first_row: false,
            });
        };
        verdict.record(&Ok(()), true);
        self.conn.verified = Some(self.conn.pool.resilience.losses());
        let mut next = Some(first);
        loop {
            let row = match next.take() {
                Some(row) => row,
                // A row already read (most are: the driver reads the socket in large chunks)
                // costs no timer; only a real wait for the server is bounded.
                None => match match rows.next().now_or_never() {
                    Some(next) => Ok(next),
                    None => tokio::time::timeout(limit, rows.next()).await,
                } {
                    Ok(Some(Ok(row))) => row,
                    Ok(Some(Err(e))) => {
                        drop(rows);
                        if matches!(e, Error::Conversion(_)) {
                            // As before the first row: the rest is still on its way.
                            self.abandon().await;
                        } else {
                            self.in_flight = false;
                            self.statement_failed(&e);
                        }
                        return Err(Failed {
                            error: self.observed_error(e),
                            before_first_row: false,
                        });
                    }
                    Ok(None) => {
                        self.in_flight = false;
                        return Ok(());
                    }
                    Err(_) => {
                        drop(rows);
                        let waited = limit;
                        self.abandon().await;
                        return Err(Failed {
                            error: self.observed_error(Error::timeout(
                                TimeoutKind::Query,
                                limit,
                                waited,
                            )),
                            before_first_row: false,
                        });
                    }
                },
            };
            self.rows += 1;
            match map(row) {
                Ok(item) => out.put(Ok(item)).await,
                Err(e) => {
                    drop(rows);
                    self.abandon().await;
                    return Err(Failed {
                        error: self.observed_error(e),
                        before_first_row: false,
                    });
                }
            }
        }
    }

    /// The statement failed on the server or the connection: a lost connection is not
    /// reused.
    fn statement_failed(&mut self, e: &Error) {
        if classify(self.conn.backend(), e) == FailureClass::ConnectionLost {
            self.conn.broken = true;
            self.conn.pool.resilience.note_loss();
        }
    }

    /// The statement is given up while running (timeout, a row that could not be converted):
    /// stops it and reads off its rest now. False when the connection could not be made clean
    /// (it is then closed instead of reused).
    async fn abandon(&mut self) -> bool {
        let clean = match self.raw.as_mut() {
            Some(raw) => drain_abandoned(raw).await,
            None => false,
        };
        self.in_flight = false;
        if !clean {
            // Closed at once (the server stops when its socket goes); the connection is lost.
            self.conn.broken = true;
            if let Some(raw) = self.raw.take() {
                self.conn.pool.release_broken(raw);
            }
        }
        clean
    }

    /// Stage 6 for a stream that ended with `error`; returns it.
    fn observed_error(&mut self, error: Error) -> Error {
        let result = Err(error);
        self.observe(&result);
        match result {
            Err(e) => e,
            Ok(_) => Error::Internal("stream observation lost its error".into()),
        }
    }

    /// Stage 6, once per statement: its duration is the stream's whole life.
    fn observe(&mut self, result: &Result<QueryOutput>) {
        if std::mem::replace(&mut self.observed, true) {
            return;
        }
        self.conn.pool.observe_query(QueryEvent {
            sql: &self.statement.translated.sql,
            params: self.params,
            statement_hash: Some(self.statement.hash),
            elapsed: self.start.elapsed(),
            result,
            opts: self.opts,
            span: &self.span,
            conn: self.raw.as_mut(),
        });
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let rows = self.rows;
        self.observe(&Ok(QueryOutput {
            rows: Vec::new(),
            rows_affected: rows,
        }));
        let Some(raw) = self.raw.take() else { return };
        if self.in_flight {
            self.conn.park_draining(raw);
        } else {
            self.conn.conn = Some(raw);
        }
    }
}

impl Connection {
    /// A stream was dropped mid-statement: the physical connection goes to a task that stops
    /// the statement and reads off its rest (see [`Draining`]).
    fn park_draining(&mut self, raw: PooledRaw) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.conn = Some(raw);
            self.draining = Some(Draining::Here);
            return;
        };
        let (tx, rx) = oneshot::channel();
        let pool = self.pool.clone();
        let in_tx = self.in_tx;
        handle.spawn(async move {
            let mut raw = raw;
            let back = if drain_abandoned(&mut raw).await {
                Some(raw)
            } else {
                // Closed at once: the server stops the statement when its socket goes.
                pool.release_broken(raw);
                None
            };
            if let Err(Some(raw)) = tx.send(back) {
                // The connection was dropped meanwhile: give the physical one back here.
                if in_tx {
                    pool.release_broken(raw);
                } else {
                    pool.release(raw);
                }
            }
        });
        self.draining = Some(Draining::Task(rx));
    }

    /// Before anything else is sent: takes back a physical connection parked by a dropped
    /// stream, once it is idle. One that could not be made clean (or not in time) is not
    /// reused: the connection is then lost, and replaced as a lost one is.
    pub(super) async fn finish_draining(&mut self) {
        match self.draining.take() {
            None => {}
            Some(Draining::Here) => {
                let clean = match self.conn.as_mut() {
                    Some(raw) => drain_abandoned(raw).await,
                    None => false,
                };
                if !clean {
                    self.broken = true;
                }
            }
            Some(Draining::Task(rx)) => {
                match tokio::time::timeout(DRAIN_BOUND + Duration::from_secs(1), rx).await {
                    Ok(Ok(Some(raw))) => self.conn = Some(raw),
                    // Closed by the task, or given back to the pool by it.
                    _ => self.broken = true,
                }
            }
        }
    }

    /// `Drop` with a parked connection: takes it back if its drain is done (it is then
    /// released as usual), else leaves it to the drain task. False when there is nothing
    /// left to release here.
    pub(super) fn drop_draining(&mut self) -> bool {
        match self.draining.take() {
            None => true,
            Some(Draining::Here) => {
                // No runtime to drain it on: closed (the server ends the statement).
                self.broken = true;
                true
            }
            Some(Draining::Task(mut rx)) => {
                rx.close();
                match rx.try_recv() {
                    Ok(Some(raw)) => {
                        self.conn = Some(raw);
                        true
                    }
                    // Closed by the task, or left to it.
                    _ => false,
                }
            }
        }
    }
}

/// Stops an abandoned statement on the server and reads off what it left, so that the
/// connection is idle and clean. The cancel request goes first and is awaited: the server,
/// blocked writing rows nobody reads, acts on it as soon as it can write again, so reading
/// off the rows already on the wire then ends at the statement's error, not at the end of its
/// result. (Run side by side, the reads would starve the cancel: the driver reads a socket
/// with data in it without ever yielding.) Then one more round trip: a cancel request that
/// arrived after the statement had ended was ignored by the idle session by then. True when
/// the connection is clean, within [`DRAIN_BOUND`]; false means it must be closed.
pub(super) async fn drain_abandoned(raw: &mut PooledRaw) -> bool {
    let token = raw.raw.cancel_token();
    let work = async {
        let cancelled = token.cancel().await;
        let discarded = raw.raw.discard_pending().await;
        cancelled.is_ok() && discarded.is_ok() && raw.raw.discard_pending().await.is_ok()
    };
    let clean = tokio::time::timeout(DRAIN_BOUND, work)
        .await
        .unwrap_or(false);
    token.reset();
    clean
}
