//! [`Connection`]: a pooled connection. Every statement, whatever method issued it, flows
//! through [`Connection::run`]: translate → timeout (with server-side cancel) → backend.

use std::future::{Future, IntoFuture};
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::QueryOutput;
use crate::error::{Error, Result, TimeoutKind};
use crate::pool::{PoolInner, PooledRaw, QueryEvent};
use crate::resilience::{self, classify, FailureClass, StatementKind};
use crate::row::Row;
use crate::sql::{translate, Backend};
use crate::value::{IntoParams, Value};

/// The promise: a statement's timeout error never comes later than this past its deadline,
/// even when the cancel request cannot be delivered.
const TIMEOUT_ERROR_BOUND: Duration = Duration::from_secs(2);
/// After a statement's deadline: how long delivering the cancel request and reading the
/// statement's end may take together, before the connection is considered unusable and closed
/// instead of reused. Counted from the deadline itself (not from when the timer's task got to
/// run), and kept under [`TIMEOUT_ERROR_BOUND`] so that dropping the unfinished work,
/// recording metrics and returning fit in the rest even on a loaded machine.
const CANCEL_GRACE: Duration = TIMEOUT_ERROR_BOUND.saturating_sub(Duration::from_millis(200));
/// Bound for the automatic rollback of a connection dropped inside a transaction.
const DROP_ROLLBACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound for the ping that checks a connection suspected stale (also bounded by
/// `connection_creation_timeout`).
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(5);

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A connection borrowed from the pool. Dropping it gives it back; if a transaction is still
/// open it is rolled back first, and nobody else can borrow the connection until that is done.
/// If the connection was dropped in the middle of a statement (its task was cancelled), it is
/// closed rather than reused.
pub struct Connection {
    pool: Arc<PoolInner>,
    conn: Option<PooledRaw>,
    in_tx: bool,
    /// A statement is in flight: set before awaiting the backend, cleared after. Still set at
    /// drop time means the protocol state is unknown.
    busy: bool,
    /// The connection failed in a way that makes it unfit for reuse.
    broken: bool,
    /// Set by an abandoned `#[auto_transaction]` scope (panic or cancellation): the open
    /// transaction is over for the user and is rolled back before the next statement.
    abandoned: Arc<AtomicBool>,
    /// The entity layer changed the schema inside the current transaction (PostgreSQL and
    /// SQLite): nothing learnt about the schema may be cached until it commits.
    schema_changed_in_tx: bool,
    /// The pool's connection-loss count when a statement (or a ping) last succeeded on this
    /// checkout: while it is current, a write need not be preceded by a ping even when the
    /// pool suspects stale connections.
    verified: Option<u64>,
    /// The user changed session state (`SET`, `USE`, temporary tables, …): the connection is
    /// never silently replaced by a fresh one, which would not have that state.
    session_bound: bool,
}

/// Options for one statement, used by the blocking twin's `_with` methods.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// Overrides `query_execution_timeout` for this statement.
    pub timeout: Option<Duration>,
    /// Key/value tags for tracing and logs.
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

#[derive(Clone, Copy)]
enum Op<'a> {
    Query(&'a str, &'a [Value]),
    Control(&'static str),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("alias", &self.pool.alias)
            .field("backend", &self.pool.backend)
            .field("in_transaction", &self.in_tx)
            .finish()
    }
}

impl Connection {
    pub(crate) fn new(pool: Arc<PoolInner>, conn: PooledRaw) -> Self {
        Connection {
            pool,
            conn: Some(conn),
            in_tx: false,
            busy: false,
            broken: false,
            abandoned: Arc::new(AtomicBool::new(false)),
            schema_changed_in_tx: false,
            verified: None,
            session_bound: false,
        }
    }

    /// The backend of this connection.
    pub fn backend(&self) -> Backend {
        self.pool.backend
    }

    /// The pool's alias.
    pub fn alias(&self) -> &str {
        &self.pool.alias
    }

    /// Runs one statement in portable SQL (see [`crate::sql`]) and returns its rows.
    ///
    /// ```no_run
    /// # async fn f(conn: &mut dal::Connection) -> dal::Result<()> {
    /// use std::time::Duration;
    /// use dal::params;
    /// let rows = conn.execute("SELECT [name] FROM [users] WHERE [id] = ?", params![7])
    ///     .timeout(Duration::from_secs(5))
    ///     .tag("operation", "get_user")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn execute<P: IntoParams>(&mut self, sql: &str, params: P) -> Execute<'_> {
        Execute {
            conn: self,
            sql: sql.to_owned(),
            params: params.into_params(),
            opts: QueryOptions::default(),
        }
    }

    /// Runs one statement once per parameter list, inside one transaction (the caller's, or
    /// one of its own), and returns all rows produced. Nothing is written if any run fails.
    pub fn executemany(&mut self, sql: &str, param_list: Vec<Vec<Value>>) -> ExecuteMany<'_> {
        ExecuteMany {
            conn: self,
            sql: sql.to_owned(),
            params: param_list,
            opts: QueryOptions::default(),
        }
    }

    /// Runs a statement and returns its rows and the number of rows it affected.
    pub async fn execute_with_count(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        opts: &QueryOptions,
    ) -> Result<(Vec<Row>, u64)> {
        let out = self.run(sql, &params, opts).await?;
        Ok((out.rows, out.rows_affected))
    }

    /// True while a transaction begun on this connection is open.
    pub fn in_transaction(&self) -> bool {
        self.in_tx && !self.abandoned.load(Ordering::Acquire)
    }

    /// Used by `#[auto_transaction]`: a guard that, if dropped without being disarmed (panic,
    /// cancellation), marks the transaction it began for rollback.
    #[doc(hidden)]
    pub fn __tx_scope(&self) -> crate::TxScope {
        crate::TxScope::new(self.abandoned.clone())
    }

    /// Before anything is sent: deals with what an earlier, interrupted call left behind.
    ///
    /// * A statement future dropped mid-flight (`busy` still set: a timeout or `select!` around
    ///   a call that owns `&mut` this connection) left the protocol in an unknown state: the
    ///   statement is cancelled on the server and the physical connection closed (the server
    ///   rolls back what it had open), then a fresh one is taken from the pool. If a
    ///   transaction of the caller was open, it is gone: that is an error, except for a
    ///   rollback, which has then happened.
    /// * A transaction abandoned by a panicking or cancelled `#[auto_transaction]` is rolled back.
    async fn settle_abandoned(&mut self) -> Result<()> {
        self.settle(false).await
    }

    async fn settle(&mut self, rolling_back: bool) -> Result<()> {
        if self.busy {
            self.busy = false;
            if let Some(old) = self.conn.take() {
                let token = old.raw.cancel_token();
                self.pool.release_broken(old);
                tokio::spawn(async move {
                    let _ = token.cancel().await;
                });
            }
            let abandoned = self.abandoned.swap(false, Ordering::AcqRel);
            let lost_tx = self.in_tx && !abandoned;
            self.in_tx = false;
            self.schema_changed_in_tx = false;
            self.broken = true;
            if self.session_bound {
                return Err(Error::Connection(
                    "an earlier statement was cancelled mid-flight, so the connection was closed, and with it the session state set on it; get a new connection".into(),
                ));
            }
            self.replace().await?;
            if lost_tx && !rolling_back {
                return Err(Error::Transaction(
                    "an earlier statement of this transaction was cancelled mid-flight: the connection was closed and the transaction rolled back".into(),
                ));
            }
            return Ok(());
        }
        if self.abandoned.swap(false, Ordering::AcqRel) && self.in_tx {
            self.in_tx = false;
            self.schema_changed_in_tx = false;
            if let Err(e) = self
                .exec(Op::Control("ROLLBACK"), &QueryOptions::default())
                .await
            {
                self.broken = true;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Begins a transaction. Nested `begin_transaction` is an error: use
    /// `#[auto_transaction]` or check [`in_transaction`](Self::in_transaction) to join one.
    pub async fn begin_transaction(&mut self) -> Result<()> {
        self.settle_abandoned().await?;
        if self.in_tx {
            return Err(Error::Transaction(
                "a transaction is already open on this connection".into(),
            ));
        }
        let begin = crate::backend::dialect(self.backend()).begin();
        // BEGIN changes nothing: when it fails on a lost connection it is sent again on a
        // fresh one, so a transaction never starts on a connection that died while idle.
        resilience::admit(&self.pool)?;
        self.call(Op::Control(begin), &QueryOptions::default(), true, true)
            .await?;
        self.in_tx = true;
        self.schema_changed_in_tx = false;
        Ok(())
    }

    /// Commits the open transaction. If the commit fails, the transaction is rolled back and
    /// the error returned; either way no transaction is open afterwards.
    pub async fn commit_transaction(&mut self) -> Result<()> {
        self.settle_abandoned().await?;
        if !self.in_tx {
            return Err(Error::Transaction(
                "commit without an open transaction".into(),
            ));
        }
        let result = self.control("COMMIT").await;
        if result.is_err() && !self.broken {
            let _ = self.control("ROLLBACK").await;
        }
        self.in_tx = false;
        self.schema_changed_in_tx = false;
        result
    }

    /// Rolls back the open transaction; without one, does nothing.
    pub async fn rollback_transaction(&mut self) -> Result<()> {
        self.settle(true).await?;
        if !self.in_tx {
            return Ok(());
        }
        let result = self.control("ROLLBACK").await;
        self.in_tx = false;
        self.schema_changed_in_tx = false;
        if result.is_err() {
            // We cannot be sure the server rolled back: never lend this connection again.
            self.broken = true;
        }
        result
    }

    /// The entity schema cache of this connection's pool.
    pub(crate) fn schema_cache(&self) -> &Arc<crate::pool::SchemaCache> {
        &self.pool.schema_cache
    }

    /// The pool's retry policy (statements and the entity layer's own transactions).
    pub(crate) fn retry_policy(&self) -> crate::RetryPolicy {
        *self.pool.config.get_retry_policy()
    }

    /// Runs portable SQL with default options and returns its rows (crate-internal shorthand).
    pub(crate) async fn query_rows(&mut self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>> {
        Ok(self.run(sql, &params, &QueryOptions::default()).await?.rows)
    }

    /// Runs portable SQL and returns its rows and affected-row count.
    pub(crate) async fn query_full(
        &mut self,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<QueryOutput> {
        self.run(sql, &params, &QueryOptions::default()).await
    }

    pub(crate) fn schema_changed_in_tx(&self) -> bool {
        self.schema_changed_in_tx
    }

    pub(crate) fn mark_schema_changed_in_tx(&mut self) {
        self.schema_changed_in_tx = true;
    }

    /// MySQL ended the caller's transaction implicitly (DDL): open a new one so that what
    /// follows is still atomic and the caller's commit/rollback still applies to it.
    pub(crate) async fn reopen_transaction_after_ddl(&mut self) -> Result<()> {
        if self.in_tx {
            self.control("START TRANSACTION").await?;
        }
        Ok(())
    }

    /// Round trip to the server.
    pub async fn ping(&mut self) -> Result<()> {
        let conn = self.raw()?;
        conn.raw.ping().await
    }

    async fn control(&mut self, sql: &'static str) -> Result<()> {
        self.exec(Op::Control(sql), &QueryOptions::default())
            .await
            .map(|_| ())
    }

    fn raw(&mut self) -> Result<&mut PooledRaw> {
        if self.broken {
            return Err(lost_error());
        }
        self.conn
            .as_mut()
            .ok_or_else(|| Error::Internal("connection already released".into()))
    }

    /// The one path every statement takes.
    pub(crate) async fn run(
        &mut self,
        sql: &str,
        params: &[Value],
        opts: &QueryOptions,
    ) -> Result<QueryOutput> {
        self.settle_abandoned().await?;
        let translated = translate(sql, self.backend())?;
        if translated.placeholders != params.len() {
            return Err(Error::ParameterCount {
                expected: translated.placeholders,
                given: params.len(),
            });
        }
        let kind = resilience::statement_kind(&translated.sql);
        if !matches!(kind, StatementKind::Transaction { ends: true }) {
            // An open breaker rejects at once. Statements that end a transaction always go
            // through, so that a caller can still roll back.
            resilience::admit(&self.pool)?;
        }
        let was_in_tx = self.in_tx;
        track_transaction_keywords(&translated.sql, &mut self.in_tx);
        if kind == StatementKind::Session {
            self.session_bound = true;
        }
        // Never retried: anything inside a transaction, transaction control, session changes.
        let retry =
            !was_in_tx && !self.in_tx && matches!(kind, StatementKind::Read | StatementKind::Write);
        let read = kind == StatementKind::Read;
        self.call(Op::Query(&translated.sql, params), opts, retry, read)
            .await
    }

    /// One call: `op` with retries when `retry` allows them (see [`Self::exec_retrying`]),
    /// its final outcome recorded once with the pool's circuit breaker.
    async fn call(
        &mut self,
        op: Op<'_>,
        opts: &QueryOptions,
        retry: bool,
        read: bool,
    ) -> Result<QueryOutput> {
        let result = if retry {
            self.exec_retrying(op, opts, read).await
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
    async fn exec_retrying(
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
            tokio::time::sleep(delay).await;
        }
    }

    /// Before a statement is sent: while the pool suspects stale connections (one was lost
    /// recently), pings a connection not yet proven alive on this checkout before a write goes
    /// out on it; replaces a connection known to be lost. An error from here means the
    /// statement never left the client.
    async fn ensure_live(&mut self, read: bool) -> Result<()> {
        if !self.broken && !read && self.pool.resilience.should_validate(self.verified) {
            let limit = self.validation_timeout();
            // `busy` while the ping is in flight: dropped now, the connection is closed.
            self.busy = true;
            let alive = match self.conn.as_mut() {
                Some(c) => ping_within(c, limit).await,
                None => false,
            };
            self.busy = false;
            if alive {
                self.verified = Some(self.pool.resilience.losses());
            } else {
                self.broken = true;
                self.pool.resilience.note_loss();
            }
        }
        if self.broken {
            if self.session_bound {
                return Err(Error::Connection(
                    "the connection was lost, and with it the session state set on it (SET, USE, temporary tables, …); get a new connection".into(),
                ));
            }
            self.replace().await?;
        }
        Ok(())
    }

    /// Closes the lost physical connection and takes another from the pool, all within
    /// `connection_acquisition_timeout`. While the pool suspects stale connections, each
    /// candidate is pinged first and dead ones are closed, so after at most `max` rounds the
    /// pool opens a new one.
    async fn replace(&mut self) -> Result<()> {
        if let Some(old) = self.conn.take() {
            self.pool.release_broken(old);
        }
        let limit = self.pool.config.get_connection_acquisition_timeout();
        let start = Instant::now();
        match tokio::time::timeout(limit, self.replace_within()).await {
            Ok(r) => r,
            Err(_) => Err(Error::timeout(TimeoutKind::Acquire, limit, start.elapsed())),
        }
    }

    async fn replace_within(&mut self) -> Result<()> {
        let limit = self.validation_timeout();
        let (_, max) = self.pool.bounds();
        for _ in 0..=max {
            // `broken` stays set until the candidate proved alive: dropped meanwhile, it is
            // closed rather than put back.
            self.conn = Some(self.pool.acquire(Location::caller()).await?);
            self.verified = None;
            if !self.pool.resilience.suspects_stale() {
                self.broken = false;
                return Ok(());
            }
            let alive = match self.conn.as_mut() {
                Some(c) => ping_within(c, limit).await,
                None => false,
            };
            if alive {
                self.broken = false;
                self.verified = Some(self.pool.resilience.losses());
                return Ok(());
            }
            if let Some(dead) = self.conn.take() {
                self.pool.release_broken(dead);
            }
        }
        Err(Error::Connection(
            format!(
                "no live connection could be found in the pool of {}",
                self.pool.alias
            )
            .into(),
        ))
    }

    fn validation_timeout(&self) -> Duration {
        self.pool
            .config
            .get_connection_creation_timeout()
            .min(VALIDATION_TIMEOUT)
    }

    async fn exec(&mut self, op: Op<'_>, opts: &QueryOptions) -> Result<QueryOutput> {
        let limit = opts
            .timeout
            .unwrap_or_else(|| self.pool.config.get_query_execution_timeout());
        let pool = self.pool.clone();
        let conn = self.raw()?;
        let token = conn.raw.cancel_token();
        let start = Instant::now();
        // Observability (pool/observe.rs): a DEBUG span around the statement.
        let (sql_text, sql_params, prepared) = match op {
            Op::Query(sql, params) => (sql, params, true),
            Op::Control(sql) => (sql, &[][..], false),
        };
        let span = pool.query_span(sql_text, opts);
        self.busy = true;
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => return Err(Error::Internal("connection already released".into())),
        };
        let (result, clean) = {
            let fut = tracing::Instrument::instrument(
                async {
                    match op {
                        Op::Query(sql, params) => conn.raw.query(sql, params).await,
                        Op::Control(sql) => {
                            conn.raw.simple(sql).await.map(|_| QueryOutput::default())
                        }
                    }
                },
                span.clone(),
            );
            tokio::pin!(fut);
            let deadline = tokio::time::Instant::now().checked_add(limit);
            match tokio::time::timeout(limit, &mut fut).await {
                Ok(r) => {
                    let clean = !matches!(r, Err(Error::Connection(_)));
                    (r, clean)
                }
                Err(_) => {
                    // Deadline: ask the server to stop the statement, then let the driver read
                    // the server's answer so the connection is left in a known state.
                    // Both within CANCEL_GRACE of the deadline, so an unreachable server cannot
                    // delay the timeout error past TIMEOUT_ERROR_BOUND.
                    let grace_end = deadline
                        .and_then(|d| d.checked_add(CANCEL_GRACE))
                        .unwrap_or_else(|| tokio::time::Instant::now() + CANCEL_GRACE);
                    let settled = tokio::time::timeout_at(grace_end, async {
                        tokio::join!(token.cancel(), &mut fut)
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
        };
        self.busy = false;
        if !clean {
            self.broken = true;
        }
        // Metrics, span fields, slow-query log, statement-cache hits: one hook.
        pool.observe_query(QueryEvent {
            sql: sql_text,
            params: sql_params,
            prepared,
            elapsed: start.elapsed(),
            result: &result,
            opts,
            span: &span,
            conn: self.conn.as_mut(),
        });
        result
    }
}

fn lost_error() -> Error {
    Error::Connection("this connection was lost or left in an unknown state; get a new one".into())
}

/// One round trip within `limit`: true when the connection answered.
async fn ping_within(conn: &mut PooledRaw, limit: Duration) -> bool {
    matches!(
        tokio::time::timeout(limit, conn.raw.ping()).await,
        Ok(Ok(()))
    )
}

/// Keeps `in_tx` right when users write `BEGIN`/`COMMIT`/`ROLLBACK` as plain statements.
fn track_transaction_keywords(sql: &str, in_tx: &mut bool) {
    let head = sql.trim_start();
    let word: String = head
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    match word.as_str() {
        "BEGIN" => *in_tx = true,
        "START" if head.to_ascii_uppercase().starts_with("START TRANSACTION") => *in_tx = true,
        "COMMIT" | "END" => *in_tx = false,
        "ROLLBACK" if !head.to_ascii_uppercase().contains(" TO ") => *in_tx = false,
        _ => {}
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let pool = self.pool.clone();
        if self.busy {
            // Dropped mid-statement (the task was cancelled): stop the statement on the server,
            // then close the connection; the server rolls back whatever it had open.
            let token = conn.raw.cancel_token();
            pool.release_broken(conn);
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = token.cancel().await;
                });
            }
            return;
        }
        if self.broken {
            pool.release_broken(conn);
            return;
        }
        if !self.in_tx {
            pool.release(conn);
            return;
        }
        // Open transaction: roll back before anyone else can borrow the connection. The
        // permit stays taken until the rollback task gives the connection back.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    let mut conn = conn;
                    let ok = matches!(
                        tokio::time::timeout(DROP_ROLLBACK_TIMEOUT, conn.raw.simple("ROLLBACK"))
                            .await,
                        Ok(Ok(()))
                    );
                    if ok {
                        pool.release(conn);
                    } else {
                        pool.release_broken(conn);
                    }
                });
            }
            // No runtime to roll back on: close it; the server rolls back on disconnect.
            Err(_) => pool.release_broken(conn),
        }
    }
}

/// A statement being built: set `.timeout()` / `.tag()`, then `.await` it.
#[must_use = "a statement does nothing until awaited"]
pub struct Execute<'c> {
    conn: &'c mut Connection,
    sql: String,
    params: Vec<Value>,
    opts: QueryOptions,
}

impl Execute<'_> {
    /// Overrides `query_execution_timeout` for this statement.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.opts.timeout = Some(t);
        self
    }
    /// Adds a tag (for tracing spans, metrics and the slow-query log).
    pub fn tag(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.opts.tags.push((key.into(), value.to_string()));
        self
    }
}

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

impl ExecuteMany<'_> {
    /// Timeout for each execution.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.opts.timeout = Some(t);
        self
    }
    /// Adds a tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.opts.tags.push((key.into(), value.to_string()));
        self
    }
}

impl<'c> IntoFuture for ExecuteMany<'c> {
    type Output = Result<Vec<Row>>;
    type IntoFuture = BoxFuture<'c, Result<Vec<Row>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let ExecuteMany {
                conn,
                sql,
                params,
                opts,
            } = self;
            // Validate everything before touching the server: no partial writes on bad input.
            let translated = translate(&sql, conn.backend())?;
            if let Some(p) = params.iter().find(|p| p.len() != translated.placeholders) {
                return Err(Error::ParameterCount {
                    expected: translated.placeholders,
                    given: p.len(),
                });
            }
            conn.settle_abandoned().await?;
            let own_tx = !conn.in_transaction();
            if own_tx {
                conn.begin_transaction().await?;
            }
            let mut rows = Vec::new();
            for p in &params {
                match conn.exec(Op::Query(&translated.sql, p), &opts).await {
                    Ok(out) => rows.extend(out.rows),
                    Err(e) => {
                        if own_tx {
                            let _ = conn.rollback_transaction().await;
                        }
                        return Err(e);
                    }
                }
            }
            if own_tx {
                conn.commit_transaction().await?;
            }
            Ok(rows)
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

#[cfg(test)]
mod tests {
    use super::track_transaction_keywords;

    #[test]
    fn plain_transaction_statements_update_the_flag() {
        let mut t = false;
        track_transaction_keywords("  begin", &mut t);
        assert!(t);
        track_transaction_keywords("ROLLBACK TO SAVEPOINT a", &mut t);
        assert!(t);
        track_transaction_keywords("commit", &mut t);
        assert!(!t);
        track_transaction_keywords("START TRANSACTION", &mut t);
        assert!(t);
        track_transaction_keywords("SELECT 1", &mut t);
        assert!(t);
    }
}
