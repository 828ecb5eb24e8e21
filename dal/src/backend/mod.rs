//! Backends: the only modules that name a driver type.
//!
//! A backend is a [`Driver`] (opens physical connections for one configuration) and a
//! [`RawConn`] (one physical connection: run a statement, run a control statement, cancel from
//! outside). Everything above this module — pool, timeouts, transactions, entities — is written
//! once against these two traits. Adding a backend means adding one file here and one arm in
//! [`driver_for`].

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::DatabaseConfig;
use crate::error::{ConnectionError, DbErrorKind, Error, Result};
use crate::row::Row;
use crate::sql::Backend;
use crate::value::Value;

mod dialect;
mod dialects;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod failover;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

pub(crate) use dialect::{all_dialects, column_list, dialect, placeholders, Dialect, SystemTypes};

/// What one statement produced.
#[derive(Debug, Default)]
pub(crate) struct QueryOutput {
    pub rows: Vec<Row>,
    pub rows_affected: u64,
}

/// The rows of one statement as the driver reads them (see [`RawConn::fetch`]).
pub(crate) type RowStream<'a> = futures_util::stream::BoxStream<'a, Result<Row>>;

/// Opens physical connections for one configuration.
#[async_trait]
pub(crate) trait Driver: Send + Sync + 'static {
    /// Opens one connection. The caller bounds it with `connection_creation_timeout`.
    async fn connect(&self) -> Result<Box<dyn RawConn>>;
    /// True when connections hold sockets registered with the tokio runtime that opened them
    /// (and so must not outlive it). SQLite connections run on their own threads and are not.
    fn runtime_bound(&self) -> bool {
        true
    }
}

/// One physical connection.
#[async_trait]
pub(crate) trait RawConn: Send + 'static {
    /// Runs one statement (already in native SQL) with positional parameters, as a prepared
    /// statement cached per connection.
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<QueryOutput>;
    /// Streams the rows of one statement (like [`query`](Self::query)), one at a time with
    /// the driver's backpressure: rows are read from the server as the stream is polled.
    ///
    /// Dropped before its end, the statement may still be running and its rest still on the
    /// wire: the connection must then go through [`discard_pending`](Self::discard_pending)
    /// (after the statement is cancelled) before anything else is sent.
    async fn fetch<'a>(&'a mut self, sql: &'a str, params: &'a [Value]) -> Result<RowStream<'a>>;
    /// Reads and discards what an abandoned statement left on the connection — rows, its end,
    /// or the error a cancel request caused — until the connection is idle. Each ping reads
    /// the abandoned statement's remains before its own answer; a server error on the way is
    /// the abandoned statement's, not the ping's.
    async fn discard_pending(&mut self) -> Result<()> {
        for _ in 0..3 {
            match self.ping().await {
                Ok(()) => return Ok(()),
                Err(Error::Database { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        self.ping().await
    }
    /// Runs a parameterless control statement (`BEGIN`, `COMMIT`, `ROLLBACK`, `SET …`) without
    /// preparing it.
    async fn simple(&mut self, sql: &str) -> Result<()>;
    /// Runs `COPY … FROM STDIN` (native SQL) and streams `data`, already in the statement's
    /// format, to it; returns the rows copied. PostgreSQL only: elsewhere an error.
    async fn copy_in(&mut self, _sql: &str, _data: &[u8]) -> Result<u64> {
        Err(Error::Internal(
            "COPY FROM STDIN is only available on PostgreSQL".into(),
        ))
    }
    /// A handle that can stop the statement running on this connection from another task.
    fn cancel_token(&self) -> Arc<dyn CancelToken>;
    /// The server's product as OpenTelemetry names it (`db.system.name`): `postgresql`,
    /// `mysql`, `mariadb` or `sqlite`.
    fn system_name(&self) -> &'static str;
    /// Round trip to check the connection is alive.
    async fn ping(&mut self) -> Result<()>;
    /// Closes the connection politely.
    async fn close(self: Box<Self>);
}

/// Stops the statement currently running on one connection.
#[async_trait]
pub(crate) trait CancelToken: Send + Sync {
    /// Asks the server to stop the running statement. Returns once the request was delivered.
    async fn cancel(&self) -> Result<()>;
    /// Clears any cancellation state before the connection runs its next statement.
    fn reset(&self) {}
}

/// The driver for `backend` and `config`.
pub(crate) fn driver_for(backend: Backend, config: &DatabaseConfig) -> Result<Arc<dyn Driver>> {
    Ok(match backend {
        #[cfg(feature = "postgres")]
        Backend::Postgres => Arc::new(postgres::PgDriver::new(config)),
        #[cfg(feature = "mysql")]
        Backend::MySql => Arc::new(mysql::MySqlDriver::new(config)?),
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => Arc::new(sqlite::SqliteDriver::new(config)?),
        #[allow(unreachable_patterns)]
        other => {
            return Err(Error::Config(format!(
                "dal was built without the `{}` feature: enable it in Cargo.toml to use {}",
                other.as_str(),
                dialect(other).name()
            )))
        }
    })
}

impl Backend {
    /// Parses a backend name: `postgres`, `postgresql`, `mysql`, `mariadb`, `sqlite`
    /// (ASCII case-insensitive). Anything else is a clear configuration error.
    pub fn from_name(name: &str) -> Result<Backend> {
        match name.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" | "pg" => Ok(Backend::Postgres),
            "mysql" | "mariadb" => Ok(Backend::MySql),
            "sqlite" | "sqlite3" => Ok(Backend::Sqlite),
            _ => Err(Error::Config(format!(
                "unknown database backend {name:?}: expected postgres, postgresql, mysql, mariadb or sqlite"
            ))),
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = Error;
    /// [`Backend::from_name`].
    fn from_str(name: &str) -> Result<Backend> {
        Backend::from_name(name)
    }
}

/// Maps a driver error to ours, keeping the server's code and message and nothing else
/// (driver errors never carry the password, but we do not forward their `Debug` either), with
/// the code classified by the backend's [`Dialect`].
///
/// A server error that says the session is over (PostgreSQL `57P01` after
/// `pg_terminate_backend`, `57P02`, `57P03`, class `08`; MySQL/MariaDB `1053`, `1927`, …: see
/// [`Dialect::session_ended`]) is an [`Error::Connection`], like a reset socket: the connection
/// is gone and a statement in flight has an unknown outcome. Its text keeps the server's code
/// and message; an I/O error is kept as its source.
pub(crate) fn map_sqlx_error(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Database(db) => {
            let (backend, code) = database_error_origin(db.as_ref());
            database_error(
                dialect(backend),
                code,
                db.message().to_owned(),
                db.constraint(),
            )
        }
        sqlx::Error::Io(io) => Error::Connection(ConnectionError::with_source(io.to_string(), io)),
        sqlx::Error::Tls(t) => Error::Connection(format!("TLS: {t}").into()),
        sqlx::Error::Protocol(p) => Error::Connection(format!("protocol: {p}").into()),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            Error::Connection(e.to_string().into())
        }
        sqlx::Error::Configuration(c) => Error::Config(c.to_string()),
        sqlx::Error::ColumnDecode { index, source } => {
            Error::Conversion(format!("column {index}: {source}"))
        }
        sqlx::Error::Decode(d) | sqlx::Error::Encode(d) => Error::Conversion(d.to_string()),
        other => Error::Internal(other.to_string()),
    }
}

/// Which backend a driver's database error comes from, and its code. MySQL: the error number
/// (1062, 1213, …) says more than its SQLSTATE.
fn database_error_origin(db: &dyn sqlx::error::DatabaseError) -> (Backend, Option<String>) {
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return (Backend::MySql, Some(my.number().to_string()));
    }
    #[cfg(feature = "postgres")]
    if db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        return (Backend::Postgres, db.code().map(|c| c.into_owned()));
    }
    (Backend::Sqlite, db.code().map(|c| c.into_owned()))
}

/// A server error as `dialect` classifies it.
pub(crate) fn database_error(
    dialect: &dyn Dialect,
    code: Option<String>,
    message: String,
    constraint: Option<&str>,
) -> Error {
    match code {
        Some(code) if dialect.session_ended(&code) => {
            Error::Connection(format!("server error [{code}]: {message}").into())
        }
        code => {
            let (kind, constraint) = match &code {
                Some(c) => dialect.error_kind(c, &message, constraint),
                None => (DbErrorKind::Other, constraint.map(str::to_owned)),
            };
            Error::Database {
                code,
                message,
                constraint,
                kind,
            }
        }
    }
}

/// Decimal text (as servers send NUMERIC/DECIMAL) to the most faithful `Value`: a `Decimal`
/// when it fits one (28 significant digits), else a `Float` (`NaN`, huge values), else the
/// text itself.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn decimal_text_to_value(s: &str) -> Value {
    let t = s.trim();
    if let Some(d) = crate::value::parse_decimal(t) {
        return Value::Decimal(d);
    }
    match t.parse::<f64>() {
        Ok(f) => Value::Float(f),
        Err(_) => Value::Text(t.to_owned()),
    }
}

/// Timestamps a backend's `DATETIME`-like storage holds: years `min..=max`. Outside, binding
/// is refused (never stored as NULL or clamped).
#[cfg(any(feature = "mysql", feature = "sqlite"))]
pub(crate) fn check_year(
    t: &chrono::DateTime<chrono::Utc>,
    min: i32,
    max: i32,
    backend: &str,
) -> std::result::Result<(), String> {
    use chrono::Datelike;
    if (min..=max).contains(&t.year()) {
        Ok(())
    } else {
        Err(format!(
            "timestamp {} is outside the range {backend} stores (years {min} to {max})",
            t.to_rfc3339()
        ))
    }
}

/// Builds the shared column-name list of a result.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn column_names<C: sqlx::Column>(cols: &[C]) -> Arc<[String]> {
    cols.iter().map(|c| c.name().to_owned()).collect()
}
