//! The blocking twin: [`SyncConnection`], a thin layer over [`Connection`] driven by a small
//! runtime owned by the library, so it works from a plain `fn main` with no runtime of its own.
//!
//! The library's runtime is created on first use and lives as long as the process (it is never
//! shut down). Its one worker thread parks on the runtime's I/O driver whenever it has no task
//! to run, so a socket registered there keeps working when it is polled from any other
//! runtime or from a blocking call: that is what makes connections opened on it usable
//! everywhere (see [`crate::pool`]). Blocking calls run their future on the calling thread
//! (`Runtime::block_on`), inside this runtime's context.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use crate::connection::{Connection, QueryOptions};
use crate::error::{Error, Result};
use crate::row::Row;
use crate::sql::Backend;
use crate::value::{IntoParams, Value};

static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// The library's runtime, started on first use.
pub(crate) fn library_runtime() -> Result<&'static tokio::runtime::Runtime> {
    RT.get_or_init(|| {
        // Multi-thread with one worker, not current-thread: the worker drives the I/O driver
        // even while no blocking call is running, which a current-thread runtime would only
        // do inside `block_on`.
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dal-runtime")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::Internal(format!("cannot start the library runtime: {e}")))
}

/// The id of the library's runtime, if it was started (no connection can live there before).
pub(crate) fn library_runtime_id() -> Option<tokio::runtime::Id> {
    RT.get()
        .and_then(|r| r.as_ref().ok())
        .map(|rt| rt.handle().id())
}

/// Runs `fut` to completion on the library's runtime. Refuses (with an error, never a panic)
/// when called from inside an async runtime, where blocking would stall other tasks.
pub(crate) fn block_on<F: Future>(fut: F) -> Result<F::Output> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::Config(
            "the blocking API (sync_connection) was called from inside an async runtime; \
             use async_connection there"
                .into(),
        ));
    }
    Ok(library_runtime()?.block_on(fut))
}

/// A pooled connection for blocking code: the twin of [`Connection`], with the same public
/// methods — SQL, transactions, the dynamic and the typed entity API, `query_as`,
/// `version_details`, `alias`, rows affected — each returning its result directly instead of
/// a future. Where the async form is a builder with options (`conn.save(&e).user_id("ann")`,
/// `conn.get_entity(..).include_deleted()`), the blocking form takes the same options as a
/// struct through a `_with` method: [`QueryOptions`], [`SaveOptions`](crate::SaveOptions),
/// [`GetOptions`](crate::GetOptions), [`FindOptions`](crate::FindOptions),
/// [`DeleteOptions`](crate::DeleteOptions), [`RestoreOptions`](crate::RestoreOptions)
/// (`find_entities` / `count_entities` take their `FindOptions` as an argument). The options
/// have exactly the async effect; in particular an options struct's `timeout` bounds the whole
/// entity operation as the async builders' `.timeout()` does.
///
/// It must not be used from inside an async runtime (that is an [`Error::Config`], never a
/// deadlock): use [`Database::async_connection`](crate::Database::async_connection) there.
///
/// ```
/// let db = dal::Database::from_url("sqlite::memory:")?;
/// let mut conn = db.sync_connection()?;
/// conn.execute("CREATE TABLE [t] ([a] INTEGER)", ())?;
/// conn.execute("INSERT INTO [t] ([a]) VALUES (?)", dal::params![42])?;
/// let rows = conn.execute("SELECT [a] FROM [t]", ())?;
/// assert_eq!(rows[0].try_get::<i64, _>(0)?, 42);
/// # Ok::<(), dal::Error>(())
/// ```
///
/// Typed entities, with options:
///
/// ```
/// use dal::prelude::*;
/// use serde::{Deserialize, Serialize};
/// use std::time::Duration;
///
/// #[derive(Entity, Serialize, Deserialize)]
/// #[entity(table = "sync_doc_users")]
/// struct User { id: Option<String>, name: String, age: i32 }
///
/// let db = Database::from_url("sqlite::memory:")?;
/// let mut s = db.sync_connection()?;
/// let user = User { id: None, name: "Ann".into(), age: 41 };
/// let saved: User = s.save(&user)?;
/// let id = saved.id.clone().unwrap();
/// let got: Option<User> = s.get::<User>(&id)?;
/// assert_eq!(got.map(|u| u.age), Some(41));
///
/// // Options the async builders take as methods come as a struct.
/// s.save_with(
///     &User { age: 42, ..saved },
///     SaveOptions::default().user_id("admin").comment("birthday").timeout(Duration::from_secs(5)),
/// )?;
/// let h = s.history::<User>(&id)?;
/// assert_eq!((h.len(), h[1].comment.as_deref()), (2, Some("birthday")));
/// let adults = s.find_with::<User>(FindOptions::default().filter("[age] >= ?", params![18]))?;
/// assert_eq!(adults.len(), 1);
/// assert!(s.delete_with::<User>(&id, DeleteOptions::default().user_id("admin"))?);
/// assert_eq!(s.count::<User>()?, 0);
/// # Ok::<(), dal::Error>(())
/// ```
pub struct SyncConnection {
    /// Taken only when dropped (to give it back on the library's runtime).
    inner: Option<Connection>,
    backend: Backend,
}

impl std::fmt::Debug for SyncConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SyncConnection").field(&self.inner).finish()
    }
}

impl SyncConnection {
    pub(crate) fn new(conn: Connection) -> Self {
        SyncConnection {
            backend: conn.backend(),
            inner: Some(conn),
        }
    }

    /// The async connection inside, for code that needs to call something only the async API
    /// offers from a blocking context (used by the entity layer's blocking methods).
    pub(crate) fn with<'a, T, F, Fut>(&'a mut self, f: F) -> Result<T>
    where
        F: FnOnce(&'a mut Connection) -> Fut,
        Fut: Future<Output = Result<T>> + 'a,
    {
        let conn = self
            .inner
            .as_mut()
            .ok_or_else(|| Error::Internal("connection already released".into()))?;
        block_on(f(conn))?
    }

    /// The backend of this connection (see [`Connection::backend`]).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool's alias (see [`Connection::alias`]).
    pub fn alias(&self) -> &str {
        self.inner.as_ref().map_or("", Connection::alias)
    }

    /// The server's product and version and the driver's, asked of the server this connection
    /// is on (see [`Connection::version_details`]).
    ///
    /// ```
    /// let db = dal::Database::from_url("sqlite::memory:")?;
    /// let v = db.sync_connection()?.version_details()?;
    /// assert_eq!(v.backend, dal::Backend::Sqlite);
    /// # Ok::<(), dal::Error>(())
    /// ```
    pub fn version_details(&mut self) -> Result<crate::VersionDetails> {
        self.with(|c| c.version_details())
    }

    /// Which server it is on (see [`Connection::role`]); `Primary` once closed.
    pub fn role(&self) -> crate::Role {
        self.inner
            .as_ref()
            .map_or(crate::Role::Primary, Connection::role)
    }

    /// True for a [`sync_read_connection`](crate::Database::sync_read_connection).
    pub fn is_read_only(&self) -> bool {
        self.inner.as_ref().is_some_and(Connection::is_read_only)
    }

    /// Runs one statement and returns its rows.
    pub fn execute<P: IntoParams>(&mut self, sql: &str, params: P) -> Result<Vec<Row>> {
        self.execute_with(sql, params, QueryOptions::default())
    }

    /// Runs one statement with options (timeout, tags).
    pub fn execute_with<P: IntoParams>(
        &mut self,
        sql: &str,
        params: P,
        opts: QueryOptions,
    ) -> Result<Vec<Row>> {
        let params = params.into_params();
        self.with(|c| async move {
            c.execute_with_count(sql, params, &opts)
                .await
                .map(|(r, _)| r)
        })
    }

    /// Runs a statement and returns its rows and the number of rows it affected (see
    /// [`Connection::execute_with_count`]).
    ///
    /// ```
    /// use dal::{params, QueryOptions};
    /// let db = dal::Database::from_url("sqlite::memory:")?;
    /// let mut conn = db.sync_connection()?;
    /// conn.execute("CREATE TABLE [t] ([a] INTEGER)", ())?;
    /// conn.executemany("INSERT INTO [t] ([a]) VALUES (?)", vec![params![1], params![2], params![3]])?;
    /// let (_, n) = conn.execute_with_count("UPDATE [t] SET [a] = [a] + 1 WHERE [a] >= ?", params![2], &QueryOptions::default())?;
    /// assert_eq!(n, 2);
    /// # Ok::<(), dal::Error>(())
    /// ```
    pub fn execute_with_count<P: IntoParams>(
        &mut self,
        sql: &str,
        params: P,
        opts: &QueryOptions,
    ) -> Result<(Vec<Row>, u64)> {
        let params = params.into_params();
        self.with(|c| c.execute_with_count(sql, params, opts))
    }

    /// Runs one statement once per parameter list, atomically.
    pub fn executemany(&mut self, sql: &str, param_list: Vec<Vec<Value>>) -> Result<Vec<Row>> {
        self.executemany_with(sql, param_list, QueryOptions::default())
    }

    /// `executemany` with options.
    pub fn executemany_with(
        &mut self,
        sql: &str,
        param_list: Vec<Vec<Value>>,
        opts: QueryOptions,
    ) -> Result<Vec<Row>> {
        self.with(|c| async move {
            let mut b = c.executemany(sql, param_list);
            if let Some(t) = opts.timeout {
                b = b.timeout(t);
            }
            for (k, v) in opts.tags {
                b = b.tag(k, v);
            }
            b.await
        })
    }

    /// Begins a transaction.
    pub fn begin_transaction(&mut self) -> Result<()> {
        self.with(|c| c.begin_transaction())
    }

    /// Commits the open transaction.
    pub fn commit_transaction(&mut self) -> Result<()> {
        self.with(|c| c.commit_transaction())
    }

    /// Rolls back the open transaction.
    pub fn rollback_transaction(&mut self) -> Result<()> {
        self.with(|c| c.rollback_transaction())
    }

    /// True while a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.inner.as_ref().is_some_and(Connection::in_transaction)
    }

    /// Used by `#[auto_transaction]` on blocking functions.
    #[doc(hidden)]
    pub fn __tx_scope(&self) -> Result<crate::TxScope> {
        self.inner
            .as_ref()
            .map(Connection::__tx_scope)
            .ok_or_else(|| Error::Internal("connection already released".into()))
    }

    /// Iterates over the rows of one statement, read from the server as the iterator
    /// advances: the blocking twin of [`Connection::fetch`], with the same semantics (bounded
    /// memory; retries only before the first row; dropping the iterator early stops the
    /// statement on the server and the connection is clean for its next statement). The
    /// `Err` up front: called from inside an async runtime.
    ///
    /// ```
    /// let db = dal::Database::from_url("sqlite::memory:")?;
    /// let mut conn = db.sync_connection()?;
    /// let sql = "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 1000000) SELECT n FROM s";
    /// let first: Vec<i64> = conn
    ///     .fetch(sql, ())?
    ///     .take(3)
    ///     .map(|r| r?.try_get::<i64, _>(0))
    ///     .collect::<dal::Result<_>>()?;
    /// assert_eq!(first, [1, 2, 3]);
    /// assert_eq!(conn.execute("SELECT 7", ())?[0].try_get::<i64, _>(0)?, 7);
    /// # Ok::<(), dal::Error>(())
    /// ```
    pub fn fetch<P: IntoParams>(&mut self, sql: &str, params: P) -> Result<RowIter<'_>> {
        self.fetch_with(sql, params, QueryOptions::default())
    }

    /// [`fetch`](Self::fetch) with options (timeout, tags).
    pub fn fetch_with<P: IntoParams>(
        &mut self,
        sql: &str,
        params: P,
        opts: QueryOptions,
    ) -> Result<RowIter<'_>> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::Config(
                "the blocking API (sync_connection) was called from inside an async runtime; \
                 use async_connection there"
                    .into(),
            ));
        }
        let conn = self
            .inner
            .as_mut()
            .ok_or_else(|| Error::Internal("connection already released".into()))?;
        Ok(RowIter {
            stream: Some(conn.fetch(sql, params).with_options(opts)),
        })
    }

    /// Round trip to the server, with a bound.
    pub fn ping(&mut self) -> Result<()> {
        self.with(|c| async move {
            tokio::time::timeout(Duration::from_secs(10), c.ping())
                .await
                .map_err(|_| Error::Connection("ping timed out".into()))?
        })
    }
}

/// The blocking twin of [`RowStream`](crate::RowStream): an iterator over a statement's rows,
/// read from the server as it advances (see [`SyncConnection::fetch`]).
pub struct RowIter<'c> {
    /// Taken only when dropped (to drop it inside the library's runtime).
    stream: Option<crate::RowStream<'c>>,
}

impl std::fmt::Debug for RowIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RowIter").field(&self.stream).finish()
    }
}

impl Iterator for RowIter<'_> {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Result<Row>> {
        let stream = self.stream.as_mut()?;
        match block_on(futures_util::StreamExt::next(stream)) {
            Ok(item) => item,
            Err(e) => {
                // Refused (called from inside a runtime): nothing more comes.
                self.stream = None;
                Some(Err(e))
            }
        }
    }
}

impl Drop for RowIter<'_> {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            // Dropped mid-statement, the stream hands its connection to a task that stops the
            // statement: that task runs on the library's runtime.
            match library_runtime() {
                Ok(rt) => {
                    let _guard = rt.enter();
                    drop(stream);
                }
                Err(_) => drop(stream),
            }
        }
    }
}

impl Drop for SyncConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.inner.take() {
            // Give the connection back (and roll back an open transaction) on the library's
            // runtime, since the caller has none.
            match library_runtime() {
                Ok(rt) => {
                    let _guard = rt.enter();
                    drop(conn);
                }
                Err(_) => drop(conn),
            }
        }
    }
}
