//! SQLite through `sqlx-sqlite` (bundled library, no setup).
//!
//! `:memory:` is one shared-cache in-memory database per pool: every pooled connection sees the
//! same tables, and an anchor connection held by the driver keeps it alive while the pool lives.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteRow,
    SqliteSynchronous, SqliteValueRef,
};
use sqlx::{
    Arguments, AssertSqlSafe, Column, ConnectOptions, Connection, Decode, Either, Executor,
    Row as _, Sqlite, TypeInfo, ValueRef,
};

use super::{map_sqlx_error, CancelToken, Driver, QueryOutput, RawConn, RowStream};
use crate::config::DatabaseConfig;
use crate::error::{Error, Result};
use crate::row::Row;
use crate::value::{format_timestamp, Value};

static MEMORY_SEQ: AtomicU64 = AtomicU64::new(0);

pub(crate) struct SqliteDriver {
    options: SqliteConnectOptions,
    memory: bool,
    /// Keeps a shared in-memory database alive for as long as the driver (the pool) lives.
    anchor: Mutex<Option<SqliteConnection>>,
}

impl SqliteDriver {
    pub(crate) fn new(config: &DatabaseConfig) -> Result<Self> {
        let db = config.database();
        let memory = db == ":memory:" || db.is_empty();
        let options = if memory {
            let seq = MEMORY_SEQ.fetch_add(1, Ordering::Relaxed);
            SqliteConnectOptions::new()
                .filename(format!("file:dal-mem-{}-{seq}", std::process::id()))
                .in_memory(true)
                .shared_cache(true)
        } else {
            SqliteConnectOptions::new()
                .filename(db)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
        };
        let options = options
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .statement_cache_capacity(512)
            .disable_statement_logging();
        Ok(SqliteDriver {
            options,
            memory,
            anchor: Mutex::new(None),
        })
    }

    async fn open(&self) -> Result<SqliteConnection> {
        SqliteConnection::connect_with(&self.options)
            .await
            .map_err(map_sqlx_error)
    }
}

#[async_trait]
impl Driver for SqliteDriver {
    fn runtime_bound(&self) -> bool {
        false
    }

    async fn connect(&self) -> Result<Box<dyn RawConn>> {
        if self.memory && self.anchor.lock().map(|a| a.is_none()).unwrap_or(false) {
            let anchor = self.open().await?;
            if let Ok(mut slot) = self.anchor.lock() {
                if slot.is_none() {
                    *slot = Some(anchor);
                }
            }
        }
        let mut conn = self.open().await?;
        let interrupted = Arc::new(AtomicBool::new(false));
        let flag = interrupted.clone();
        conn.lock_handle()
            .await
            .map_err(map_sqlx_error)?
            .set_progress_handler(1000, move || !flag.load(Ordering::Relaxed));
        Ok(Box::new(LiteConn {
            conn,
            cancel: Arc::new(LiteCancel { interrupted }),
        }))
    }
}

struct LiteConn {
    conn: SqliteConnection,
    cancel: Arc<LiteCancel>,
}

struct LiteCancel {
    interrupted: Arc<AtomicBool>,
}

#[async_trait]
impl CancelToken for LiteCancel {
    async fn cancel(&self) -> Result<()> {
        self.interrupted.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn reset(&self) {
        self.interrupted.store(false, Ordering::Relaxed);
    }
}

#[async_trait]
impl RawConn for LiteConn {
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<QueryOutput> {
        let mut args = SqliteArguments::default();
        for v in params {
            bind(&mut args, v).map_err(|e| Error::Conversion(e.to_string()))?;
        }
        let mut out = QueryOutput::default();
        let mut columns: Option<(Arc<[String]>, Vec<bool>)> = None;
        let mut stream =
            (&mut self.conn).fetch_many(sqlx::query_with(AssertSqlSafe(sql.to_owned()), args));
        while let Some(item) = stream.try_next().await.map_err(map_sqlx_error)? {
            match item {
                Either::Left(done) => out.rows_affected += done.rows_affected(),
                Either::Right(row) => {
                    let (names, booleans) = columns.get_or_insert_with(|| {
                        let cols = row.columns();
                        (
                            cols.iter().map(|c| c.name().to_owned()).collect(),
                            cols.iter()
                                .map(|c| c.type_info().name().eq_ignore_ascii_case("BOOLEAN"))
                                .collect(),
                        )
                    });
                    out.rows.push(decode_row(&row, names.clone(), booleans)?);
                }
            }
        }
        Ok(out)
    }

    async fn fetch<'a>(&'a mut self, sql: &'a str, params: &'a [Value]) -> Result<RowStream<'a>> {
        let mut args = SqliteArguments::default();
        for v in params {
            bind(&mut args, v).map_err(|e| Error::Conversion(e.to_string()))?;
        }
        let mut columns: Option<(Arc<[String]>, Vec<bool>)> = None;
        let rows = (&mut self.conn)
            .fetch(sqlx::query_with(AssertSqlSafe(sql.to_owned()), args))
            .map(move |row| {
                let row = row.map_err(map_sqlx_error)?;
                let (names, booleans) = columns.get_or_insert_with(|| {
                    let cols = row.columns();
                    (
                        cols.iter().map(|c| c.name().to_owned()).collect(),
                        cols.iter()
                            .map(|c| c.type_info().name().eq_ignore_ascii_case("BOOLEAN"))
                            .collect(),
                    )
                });
                decode_row(&row, names.clone(), booleans)
            });
        Ok(Box::pin(rows))
    }

    async fn simple(&mut self, sql: &str) -> Result<()> {
        self.conn
            .execute(AssertSqlSafe(sql.to_owned()))
            .await
            .map(|_| ())
            .map_err(map_sqlx_error)
    }

    fn cancel_token(&self) -> Arc<dyn CancelToken> {
        self.cancel.clone()
    }

    fn system_name(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&mut self) -> Result<()> {
        self.conn.ping().await.map_err(map_sqlx_error)
    }

    async fn close(self: Box<Self>) {
        let _ = self.conn.close().await;
    }
}

fn bind(
    args: &mut SqliteArguments,
    v: &Value,
) -> std::result::Result<(), sqlx::error::BoxDynError> {
    match v {
        Value::Null => args.add(None::<String>),
        Value::Bool(b) => args.add(*b),
        Value::Int(i) => args.add(*i),
        // SQLite stores a NaN double as NULL: refuse it rather than lose it.
        Value::Float(f) if f.is_nan() => {
            Err("SQLite cannot store NaN (it would become NULL)".into())
        }
        Value::Float(f) => args.add(*f),
        Value::Decimal(d) => args.add(sqlite_decimal(d)?),
        Value::Text(s) => args.add(s.clone()),
        Value::Bytes(b) => args.add(b.clone()),
        Value::Json(j) => args.add(j.to_string()),
        // Fixed-width RFC 3339 in UTC, so that text comparison is chronological.
        Value::Timestamp(t) => {
            super::check_year(t, 0, 9999, "SQLite")?;
            args.add(format_timestamp(t))
        }
        Value::Date(d) => args.add(d.format("%Y-%m-%d").to_string()),
        Value::Time(t) => args.add(t.format("%H:%M:%S%.f").to_string()),
        Value::Uuid(u) => args.add(u.to_string()),
    }
}

/// SQLite has no exact decimal type: a decimal is sent as its text, which a `NUMERIC` column
/// turns into a number keeping 15 significant digits. A decimal with more digits would come
/// back changed, so it is refused.
fn sqlite_decimal(d: &rust_decimal::Decimal) -> std::result::Result<String, String> {
    let digits = d.normalize().mantissa().unsigned_abs().to_string().len();
    if digits > 15 {
        return Err(format!(
            "SQLite cannot store the decimal {d} exactly: it keeps at most 15 significant digits"
        ));
    }
    Ok(d.to_string())
}

fn decode_row(row: &SqliteRow, columns: Arc<[String]>, booleans: &[bool]) -> Result<Row> {
    let mut values = Vec::with_capacity(columns.len());
    for i in 0..columns.len() {
        let raw = row.try_get_raw(i).map_err(map_sqlx_error)?;
        let boolean = booleans.get(i).copied().unwrap_or(false);
        values.push(
            decode_value(raw, boolean)
                .map_err(|e| Error::Conversion(format!("column {:?}: {e}", columns[i])))?,
        );
    }
    Ok(Row::new(columns, values))
}

fn decode_value(
    v: SqliteValueRef<'_>,
    boolean: bool,
) -> std::result::Result<Value, sqlx::error::BoxDynError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let storage = v.type_info().name().to_owned();
    Ok(match storage.as_str() {
        "INTEGER" => {
            let i = <i64 as Decode<Sqlite>>::decode(v)?;
            if boolean && (i == 0 || i == 1) {
                Value::Bool(i == 1)
            } else {
                Value::Int(i)
            }
        }
        "REAL" => Value::Float(<f64 as Decode<Sqlite>>::decode(v)?),
        "BLOB" => Value::Bytes(<Vec<u8> as Decode<Sqlite>>::decode(v)?),
        _ => Value::Text(<String as Decode<Sqlite>>::decode(v)?),
    })
}
