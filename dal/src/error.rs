//! One error type for the whole library, classified so callers can react without string matching.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Result alias used throughout `dal`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which timeout ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutKind {
    /// Waiting for a connection from the pool (`connection_acquisition_timeout`).
    Acquire,
    /// Creating a pool on first use (`pool_creation_timeout`).
    PoolCreation,
    /// Opening one physical connection (`connection_creation_timeout`).
    ConnectionCreation,
    /// Running one statement (`query_execution_timeout` or `.timeout()`).
    Query,
    /// A whole entity operation, all its statements and retries included (the `.timeout()`
    /// of an entity builder): the running statement was stopped on the server and the
    /// operation's own transaction rolled back.
    Operation,
}

impl TimeoutKind {
    /// Stable lower-case name, used in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutKind::Acquire => "acquire",
            TimeoutKind::PoolCreation => "pool_creation",
            TimeoutKind::ConnectionCreation => "connection_creation",
            TimeoutKind::Query => "query",
            TimeoutKind::Operation => "operation",
        }
    }
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutKind::Acquire => "connection acquisition",
            TimeoutKind::PoolCreation => "pool creation",
            TimeoutKind::ConnectionCreation => "connection creation",
            TimeoutKind::Query => "query execution",
            TimeoutKind::Operation => "entity operation",
        })
    }
}

/// What a server error means, whatever the backend: each backend classifies its own error
/// codes once (its `Dialect`), and retries, the circuit breaker and the entity layer read this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DbErrorKind {
    /// A unique constraint or unique index other than the primary key.
    UniqueViolation,
    /// The primary key (a row with this key exists).
    PrimaryKeyViolation,
    /// A foreign key.
    ForeignKeyViolation,
    /// A `NOT NULL` column.
    NotNullViolation,
    /// A `CHECK` constraint.
    CheckViolation,
    /// The server broke a deadlock by rolling this transaction back.
    Deadlock,
    /// A serializable transaction could not be serialized and was rolled back.
    SerializationFailure,
    /// A lock could not be had in time.
    LockTimeout,
    /// SQLite: the database is busy or locked by another connection.
    Busy,
    /// The statement was cancelled (a timeout's server-side cancel, `KILL QUERY`, interrupt).
    QueryCanceled,
    /// The table, column or index to create exists already.
    AlreadyExists,
    /// The session or server is read-only (a replica, a read connection, a demoted primary):
    /// nothing was written.
    ReadOnly,
    /// Anything else.
    Other,
}

impl DbErrorKind {
    /// True for the conflicts a server resolves by undoing the work: running it again may
    /// succeed (deadlock, serialization failure, lock timeout, busy).
    pub fn is_conflict(self) -> bool {
        matches!(
            self,
            DbErrorKind::Deadlock
                | DbErrorKind::SerializationFailure
                | DbErrorKind::LockTimeout
                | DbErrorKind::Busy
        )
    }
}

/// Why a connection failed or was lost: a message, and the underlying error as its
/// [`source`](std::error::Error::source) when there is one.
#[derive(Debug, Clone)]
pub struct ConnectionError {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ConnectionError {
    /// A connection error with an underlying cause.
    pub(crate) fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ConnectionError {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<String> for ConnectionError {
    fn from(message: String) -> Self {
        ConnectionError {
            message,
            source: None,
        }
    }
}

impl From<&str> for ConnectionError {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

/// Every error `dal` returns.
///
/// Messages never contain a password: configuration errors print the URL with its password
/// replaced, and driver errors are reduced to the server's code and message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value or URL is invalid (unknown backend, malformed URL, bad option).
    #[error("invalid configuration: {0}")]
    Config(String),

    /// Portable SQL could not be translated (unterminated literal, mixed placeholders, …).
    #[error("invalid SQL: {message} (at byte {position})")]
    Sql {
        /// What is wrong.
        message: String,
        /// Byte offset in the statement where the problem starts.
        position: usize,
    },

    /// The statement has a different number of placeholders than parameters were given.
    #[error("parameter count mismatch: the statement has {expected} placeholder(s) but {given} parameter(s) were given")]
    ParameterCount {
        /// Placeholders in the statement.
        expected: usize,
        /// Parameters given.
        given: usize,
    },

    /// A value could not be converted to or from the type the database or the caller expects.
    #[error("type conversion: {0}")]
    Conversion(String),

    /// A timeout ran out.
    #[error("{kind} timed out after {elapsed:?} (limit {limit:?})")]
    Timeout {
        /// Which timeout.
        kind: TimeoutKind,
        /// The configured limit.
        limit: Duration,
        /// How long the operation actually waited.
        elapsed: Duration,
    },

    /// The server answered with an error. `code` is the SQLSTATE (PostgreSQL), the error number
    /// (MySQL) or the extended result code (SQLite).
    #[error("database error{}: {message}", code.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default())]
    Database {
        /// Server error code, when the server gave one.
        code: Option<String>,
        /// Server message.
        message: String,
        /// Which constraint (or, on MySQL, which unique key) was violated, when the server said.
        constraint: Option<String>,
        /// What the code means, classified once by the backend that reported it.
        kind: DbErrorKind,
    },

    /// The connection to the server failed or was lost. The underlying I/O or protocol error,
    /// when there is one, is the [`source`](std::error::Error::source) of the
    /// [`ConnectionError`].
    #[error("connection error: {0}")]
    Connection(#[source] ConnectionError),

    /// A write was refused because the connection is read-only: a
    /// [`read_connection`](crate::Database::read_connection) (dal refuses statements that may
    /// write before sending them, and its sessions are opened read-only so the server refuses
    /// the rest), or a server that became read-only (a demoted primary). Nothing was written.
    #[error("read-only: {0}")]
    ReadOnly(String),

    /// The pool is closed or closing and hands out no more connections.
    #[error("pool closed: {0}")]
    PoolClosed(String),

    /// The circuit breaker of this pool is open: calls are rejected at once until it half-opens.
    #[error("circuit breaker open for pool {pool}: rejecting calls for another {retry_in:?}")]
    CircuitOpen {
        /// Alias of the pool.
        pool: String,
        /// How long until the breaker lets a trial call through.
        retry_in: Duration,
    },

    /// Transaction misuse (commit without begin, nested begin, …).
    #[error("transaction: {0}")]
    Transaction(String),

    /// An entity or field name, or an entity value, is not acceptable.
    #[error("entity: {0}")]
    Entity(String),

    /// Optimistic locking: the save expected the entity at `expected` (0: not stored yet) but
    /// it is at `actual` (0: it does not exist). Nothing was written: read it again, reapply
    /// the change and save again.
    #[error(
        "conflict: {entity} {id:?} is at version {actual}, the save expected version {expected}"
    )]
    Conflict {
        /// Entity name.
        entity: String,
        /// Entity id.
        id: String,
        /// The version the save expected.
        expected: i64,
        /// The version stored.
        actual: i64,
    },

    /// A backup, restore, copy or native dump failed: a file is missing or altered (checksum),
    /// the target already holds an entity, counts differ after a restore, a dump tool is
    /// missing or failed. The message names the entity, file or tool.
    #[error("backup: {0}")]
    Backup(String),

    /// A row has no such column.
    #[error("no column {0} in row")]
    ColumnNotFound(String),

    /// Something that should not happen inside the library (a bug): please report it.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// True for every timeout (acquisition, pool creation, connection creation, query).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// Which timeout, if this is one.
    pub fn timeout_kind(&self) -> Option<TimeoutKind> {
        match self {
            Error::Timeout { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// The server's error code (SQLSTATE, MySQL error number, SQLite extended code), if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Database { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// What a server error means ([`DbErrorKind::Other`] for errors that are not the server's).
    pub fn kind(&self) -> DbErrorKind {
        match self {
            Error::Database { kind, .. } => *kind,
            _ => DbErrorKind::Other,
        }
    }

    /// True when the server reported a unique or primary key violation.
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self.kind(),
            DbErrorKind::UniqueViolation | DbErrorKind::PrimaryKeyViolation
        )
    }

    /// True when the failure concerns the infrastructure (connection, timeout) rather than
    /// the statement itself. Only these count for circuit breakers.
    pub fn is_infrastructure(&self) -> bool {
        matches!(self, Error::Connection(_) | Error::Timeout { .. })
    }

    /// A short category name for metrics (`timeout`, `connection`, `database`, `input`, …).
    pub fn category(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Sql { .. } | Error::ParameterCount { .. } | Error::Conversion(_) => "input",
            Error::Timeout { .. } => "timeout",
            Error::Database { .. } => "database",
            Error::Connection(_) => "connection",
            Error::PoolClosed(_) => "pool_closed",
            Error::CircuitOpen { .. } => "circuit_open",
            Error::Transaction(_) => "transaction",
            Error::Entity(_) => "entity",
            Error::Backup(_) => "backup",
            Error::Conflict { .. } => "conflict",
            Error::ReadOnly(_) => "read_only",
            Error::ColumnNotFound(_) => "input",
            Error::Internal(_) => "internal",
        }
    }

    pub(crate) fn timeout(kind: TimeoutKind, limit: Duration, elapsed: Duration) -> Self {
        Error::Timeout {
            kind,
            limit,
            elapsed,
        }
    }

    pub(crate) fn sql(message: impl Into<String>, position: usize) -> Self {
        Error::Sql {
            message: message.into(),
            position,
        }
    }
}
