//! [`Connection`]: a pooled connection, its public API and what happens when it is dropped.
//!
//! Every statement, whatever method issued it, takes one pipeline, each stage one function:
//!
//! ```text
//!  execute / query_* ──► run ─┐                    executemany ──► run_many
//!                             │                      (validates every list first, then
//!                             │                       one dispatch per list inside a
//!                             │                       transaction: the caller's or its own)
//!                             ▼                                 │
//!  1. translate     translate (sql::translate): native SQL,     │
//!                   placeholder count, StatementKind ◄──────────┘
//!                             ▼
//!  2. breaker       dispatch: resilience::admit (an open breaker rejects; statements ending
//!                   a transaction always pass), then track: in_tx / session_bound
//!                             ▼
//!  3. retry         call: retrying (outside a transaction, reads and writes, ensure_live
//!                   before each try) or once; resilience::record of the final outcome
//!                             ▼
//!  4. timeout       exec → within_deadline: the deadline, then the server-side cancel
//!                             ▼
//!  5. backend       send: RawConn::query (prepared) or RawConn::simple (control)
//!                             ▼
//!  6. observe       observe: metrics, span fields, slow-query log, statement-cache hits
//! ```
//!
//! `begin_transaction` enters at stage 3 with its own admission; `commit_transaction`,
//! `rollback_transaction` and the clean-up of an interrupted call enter at stage 4
//! (module `tx`): ending a transaction is never refused and never retried.
//!
//! Modules: `exec` (stages 1–6), `live` (finding a live connection for stage 3), `tx`
//! (transactions and what an interrupted call left behind), `builders` (the awaitable
//! statement builders and options).

mod builders;
mod exec;
mod live;
mod routing;
mod stream;
mod tx;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::backend::QueryOutput;
use crate::error::{Error, Result};
use crate::pool::{PoolInner, PooledRaw};
use crate::row::Row;
use crate::sql::Backend;
use crate::topology::{Role, WriteLog};
use crate::value::{IntoParams, Value};

pub use builders::{Execute, ExecuteMany, QueryOptions, TxScope};
pub use stream::RowStream;
pub(crate) use stream::Yielder;

/// Bound for the automatic rollback of a connection dropped inside a transaction.
const DROP_ROLLBACK_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// Closed instead of reused if dropped now: the session holds state another borrower must
    /// not inherit (a MySQL named lock while a migration runs).
    close_on_drop: bool,
    /// Set while an import or copy creates the tables of the entities it restores: an explicit
    /// restore owns its DDL, whatever the pool's schema mode.
    pub(crate) restoring: bool,
    /// Set by an abandoned `#[auto_transaction]` scope (panic or cancellation): the open
    /// transaction is over for the user and is rolled back before the next statement.
    /// Made on the first `#[auto_transaction]` scope: a checkout that never opens one
    /// allocates nothing for it.
    abandoned: OnceLock<Arc<AtomicBool>>,
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
    /// Which server it is on (see [`Connection::role`]).
    role: Role,
    /// A read connection: statements that may write are refused before they are sent.
    read_only: bool,
    /// The write log of the `Database` handle that lent it, when that handle has replicas:
    /// writes and commits are noted there so its read connections see them.
    writes: Option<Arc<WriteLog>>,
    /// A statement that may write ran in the open transaction.
    tx_wrote: bool,
    /// A replica's read connection: the primary's read pool, used when the replica's
    /// connection is lost and no other can be had (the read is served there instead).
    fallback: Option<Arc<PoolInner>>,
    /// A read connection: the entity schema cache of the primary's pool, which the primary's
    /// writes keep current (a replica's pool would learn of new fields only after its TTL).
    schema: Option<Arc<crate::pool::SchemaCache>>,
    /// The deadline of the entity operation running on it, if it has one (see
    /// [`Connection::begin_operation`]). Shared with the operation's guard, which clears it
    /// however the operation ends.
    /// Made on the first entity operation.
    op_deadline: Option<Arc<std::sync::Mutex<Option<OpDeadline>>>>,
    /// The entity whose operation is running on this connection, for the statements' spans
    /// (`db.collection.name`); made on the first entity operation.
    collection: Option<Collection>,
    /// A stream dropped mid-statement lent the physical connection to a task that stops the
    /// statement and reads off its rest (`conn` is `None` meanwhile): it is taken back before
    /// the next statement (see `stream.rs`).
    draining: Option<stream::Draining>,
}

/// An entity operation's deadline and its whole limit (for the error).
#[derive(Clone, Copy)]
pub(crate) struct OpDeadline {
    pub at: std::time::Instant,
    pub limit: Duration,
}

/// Ends an entity operation when dropped (also if the operation is cancelled): its deadline
/// and its attribution of statements to the entity end, and the operation is logged if it was
/// slow.
pub(crate) struct OperationGuard {
    cell: Arc<std::sync::Mutex<Option<OpDeadline>>>,
    previous: Option<OpDeadline>,
    /// The connection's collection attribution, and the one to put back.
    collection: Collection,
    outer_collection: Option<Arc<str>>,
    started: std::time::Instant,
    slow: Duration,
    alias: String,
    what: &'static str,
    entity: String,
}

impl Drop for OperationGuard {
    fn drop(&mut self) {
        *self.cell.lock().unwrap_or_else(|p| p.into_inner()) = self.previous;
        self.collection.replace(self.outer_collection.take());
        let took = self.started.elapsed();
        if took >= self.slow {
            tracing::warn!(
                target: "dal::slow_query",
                alias = %self.alias,
                operation = self.what,
                entity = %self.entity,
                duration_ms = took.as_millis() as u64,
                threshold_ms = self.slow.as_millis() as u64,
                "slow entity operation"
            );
        }
    }
}

/// The entity (collection) the current entity operation of a connection works on, if any.
/// Set for the length of the operation by its [`OperationGuard`].
#[derive(Clone, Default)]
pub(crate) struct Collection(Arc<Mutex<Option<Arc<str>>>>);

impl Collection {
    /// The current entity name.
    pub(crate) fn get(&self) -> Option<Arc<str>> {
        match self.0.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, name: Option<Arc<str>>) -> Option<Arc<str>> {
        match self.0.lock() {
            Ok(mut g) => std::mem::replace(&mut *g, name),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), name),
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("alias", &self.pool.alias)
            .field("backend", &self.pool.backend)
            .field("in_transaction", &self.in_tx)
            .field("role", &self.role)
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
            close_on_drop: false,
            restoring: false,
            abandoned: OnceLock::new(),
            schema_changed_in_tx: false,
            verified: None,
            session_bound: false,
            role: Role::Primary,
            read_only: false,
            writes: None,
            tx_wrote: false,
            fallback: None,
            schema: None,
            op_deadline: None,
            collection: None,
            draining: None,
        }
    }

    /// Starts an entity operation (`what` on `entity`), whose statements' spans name the
    /// entity, bounded by `timeout` as a whole: every
    /// statement it runs gets at most what is left (then is stopped on the server as a
    /// statement timeout is), retries do not sleep past it, and running out is
    /// [`TimeoutKind::Operation`](crate::TimeoutKind::Operation). A nested operation keeps the
    /// outer deadline if it is sooner. The guard ends it (and logs it when slower than
    /// `slow_query_threshold`).
    pub(crate) fn begin_operation(
        &mut self,
        what: &'static str,
        entity: &str,
        timeout: Option<Duration>,
    ) -> OperationGuard {
        let now = std::time::Instant::now();
        let shared = self.op_deadline.get_or_insert_with(Arc::default).clone();
        let mut cell = shared.lock().unwrap_or_else(|p| p.into_inner());
        let previous = *cell;
        if let Some(limit) = timeout {
            let at = now
                .checked_add(limit)
                .unwrap_or(now + Duration::from_secs(86_400 * 365));
            if previous.is_none_or(|p| at < p.at) {
                *cell = Some(OpDeadline { at, limit });
            }
        }
        drop(cell);
        // Its statements' spans name the entity (`db.collection.name`).
        let collection = self
            .collection
            .get_or_insert_with(Collection::default)
            .clone();
        let outer_collection = collection.replace(Some(Arc::from(entity)));
        OperationGuard {
            cell: shared,
            previous,
            collection,
            outer_collection,
            started: now,
            slow: self.pool.config.get_slow_query_threshold(),
            alias: self.pool.alias.clone(),
            what,
            entity: entity.to_owned(),
        }
    }

    /// The running entity operation's deadline, if any.
    pub(crate) fn op_deadline(&self) -> Option<OpDeadline> {
        self.op_deadline
            .as_ref()
            .and_then(|c| *c.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Err when sleeping `delay` (a retry's backoff) would pass the running entity
    /// operation's deadline.
    pub(crate) fn check_op_sleep(&self, delay: Duration) -> Result<()> {
        match self.op_deadline() {
            Some(d) if std::time::Instant::now() + delay >= d.at => Err(Error::timeout(
                crate::error::TimeoutKind::Operation,
                d.limit,
                d.limit,
            )),
            _ => Ok(()),
        }
    }

    /// A connection of the primary that notes its writes in `writes`.
    pub(crate) fn noting_writes(mut self, writes: Option<Arc<WriteLog>>) -> Self {
        self.writes = writes;
        self
    }

    /// A read connection on `role`'s server, falling back to `fallback` when lost, using the
    /// primary's entity schema cache `schema`.
    pub(crate) fn for_reads(
        mut self,
        role: Role,
        fallback: Option<Arc<PoolInner>>,
        schema: Option<Arc<crate::pool::SchemaCache>>,
    ) -> Self {
        self.role = role;
        self.read_only = true;
        self.fallback = fallback;
        self.schema = schema;
        self
    }

    /// Which server this connection is on: [`Role::Primary`] for
    /// [`Database::async_connection`](crate::Database::async_connection), and for a
    /// [`read_connection`](crate::Database::read_connection) that no replica could serve;
    /// [`Role::Replica`] for a read connection on a replica.
    pub fn role(&self) -> Role {
        self.role
    }

    /// True for a [`read_connection`](crate::Database::read_connection): statements that may
    /// write fail with [`Error::ReadOnly`] (and the server refuses the rest).
    pub fn is_read_only(&self) -> bool {
        self.read_only
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
        Execute::new(self, sql, params.into_params())
    }

    /// Runs one statement once per parameter list, inside one transaction (the caller's, or
    /// one of its own), and returns all rows produced. Nothing is written if any run fails.
    pub fn executemany(&mut self, sql: &str, param_list: Vec<Vec<Value>>) -> ExecuteMany<'_> {
        ExecuteMany::new(self, sql, param_list)
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

    /// Whether an `#[auto_transaction]` scope was abandoned since the last call (and clears it).
    fn take_abandoned(&self) -> bool {
        self.abandoned
            .get()
            .is_some_and(|a| a.swap(false, Ordering::AcqRel))
    }

    /// True while a transaction begun on this connection is open.
    pub fn in_transaction(&self) -> bool {
        self.in_tx
            && !self
                .abandoned
                .get()
                .is_some_and(|a| a.load(Ordering::Acquire))
    }

    /// Used by `#[auto_transaction]`: a guard that, if dropped without being disarmed (panic,
    /// cancellation), marks the transaction it began for rollback.
    #[doc(hidden)]
    pub fn __tx_scope(&self) -> crate::TxScope {
        crate::TxScope::new(self.abandoned.get_or_init(Arc::default).clone())
    }

    /// Round trip to the server.
    pub async fn ping(&mut self) -> Result<()> {
        if self.draining.is_some() {
            self.finish_draining().await;
        }
        self.check_reclaimed()?;
        let conn = self.raw()?;
        conn.raw.ping().await
    }

    /// The server product of the physical connection (`postgresql`, `mysql`, `mariadb`,
    /// `sqlite`), or `None` once it is given back.
    pub(crate) fn system_name(&self) -> Option<&'static str> {
        self.conn.as_ref().map(|c| c.raw.system_name())
    }

    /// The entity schema cache of this connection's pool.
    pub(crate) fn schema_cache(&self) -> &Arc<crate::pool::SchemaCache> {
        self.schema.as_ref().unwrap_or(&self.pool.schema_cache)
    }

    /// Who may change entity tables ([`DatabaseConfig::schema_mode`](crate::DatabaseConfig::schema_mode)).
    pub(crate) fn schema_mode(&self) -> crate::migrate::SchemaMode {
        if self.restoring {
            return crate::migrate::SchemaMode::Auto;
        }
        self.pool.config.get_schema_mode()
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

    /// While set, dropping the connection closes it instead of giving it back to the pool
    /// (the server then drops the session's state, e.g. its named locks).
    pub(crate) fn set_close_on_drop(&mut self, on: bool) {
        self.close_on_drop = on;
    }

    pub(crate) fn schema_changed_in_tx(&self) -> bool {
        self.schema_changed_in_tx
    }

    pub(crate) fn mark_schema_changed_in_tx(&mut self) {
        self.schema_changed_in_tx = true;
    }

    /// Fails, for good, once the pool reclaimed this connection (held past
    /// [`PoolTuning::reclaim_leaks`](crate::PoolTuning::reclaim_leaks)).
    fn check_reclaimed(&mut self) -> Result<()> {
        match self.conn.as_ref().and_then(PooledRaw::reclaimed_after) {
            None => Ok(()),
            Some(held) => {
                self.broken = true;
                self.in_tx = false;
                Err(Error::Connection(
                    format!(
                        "reclaimed after {held:.1?} held (PoolTuning::reclaim_leaks): the pool \
                         took this connection back, anything not committed is rolled back; \
                         get a new one"
                    )
                    .into(),
                ))
            }
        }
    }

    /// The physical connection, unless it is known lost or already given back.
    fn raw(&mut self) -> Result<&mut PooledRaw> {
        if self.broken {
            return Err(lost_error());
        }
        self.conn
            .as_mut()
            .ok_or_else(|| Error::Internal("connection already released".into()))
    }
}

fn lost_error() -> Error {
    Error::Connection("this connection was lost or left in an unknown state; get a new one".into())
}

impl Drop for Connection {
    fn drop(&mut self) {
        // A stream dropped mid-statement: its drain task gives the connection back, unless
        // it is done already.
        if self.draining.is_some() && !self.drop_draining() {
            return;
        }
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
        if self.broken || self.close_on_drop {
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
