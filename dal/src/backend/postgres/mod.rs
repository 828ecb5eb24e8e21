//! PostgreSQL through `sqlx-postgres`.
//!
//! Parameters are encoded to the types the *server* inferred when it prepared the statement
//! (like tokio-postgres does), so an `i64` compares with an `INTEGER` column, a `NULL` fits any
//! column, and text parses into `UUID`/`TIMESTAMPTZ`/`JSONB` parameters.
//!
//! `params` turns values into the server's parameter types, `numeric` is the binary NUMERIC
//! form, PostgreSQL's facts for the layers above are in `backend/dialects/postgres.rs`.

mod numeric;
mod params;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDateTime;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgRow, PgTypeInfo, PgValueRef};
use sqlx::{
    Arguments, AssertSqlSafe, ConnectOptions, Connection, Decode, Either, Executor, Postgres,
    Row as _, SqlSafeStr, Statement, ValueRef,
};

use super::failover::{per_server, server, HostList};
use super::{
    column_names, decimal_text_to_value, map_sqlx_error, CancelToken, Driver, QueryOutput, RawConn,
    RowStream,
};
use crate::config::{map_connect_error, DatabaseConfig, ServerRole};
use crate::error::{Error, Result};
use crate::row::Row;
use crate::sql::Backend;
use crate::value::Value;

use numeric::decode_numeric;
use params::{oid, to_pg, type_oid};

/// How long a cancel request may take (connect + `pg_cancel_backend`).
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct PgDriver {
    /// One set of options per server of the host list (usually one).
    options: Vec<Arc<PgConnectOptions>>,
    hosts: HostList,
}

impl PgDriver {
    pub(crate) fn new(config: &DatabaseConfig) -> Self {
        let mut o = PgConnectOptions::new_without_pgpass()
            .username(config.get_user().unwrap_or("postgres"))
            .database(config.database())
            .application_name(config.get_application_name())
            .statement_cache_capacity(512);
        let mut run_time: Vec<(&str, &str)> = config
            .get_pg_options()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if config.is_read_only_session() {
            // Replica and read pools: the server refuses writes too.
            run_time.push(("default_transaction_read_only", "on"));
        }
        if !run_time.is_empty() {
            o = o.options(run_time);
        }
        if let Some(pw) = config.password_secret() {
            o = o.password(pw);
        }
        // TLS: always set the mode (not PGSSLMODE from the environment); the cancel
        // connection clones these options, so it uses the same TLS settings.
        o = o.ssl_mode(config.get_ssl_mode().to_postgres());
        if let Some(ca) = config.get_ssl_root_cert() {
            o = o.ssl_root_cert(ca);
        }
        if let Some(cert) = config.get_ssl_client_cert() {
            o = o.ssl_client_cert(cert);
        }
        if let Some(key) = config.get_ssl_client_key() {
            o = o.ssl_client_key(key);
        }
        let (options, hosts) = per_server(
            config,
            Backend::Postgres,
            o.disable_statement_logging(),
            |o, host, port| o.host(host).port(port),
        );
        PgDriver { options, hosts }
    }

    /// Connects to server `i` and reads its session id and role in one round trip.
    async fn open(&self, i: usize) -> Result<(Box<dyn RawConn>, ServerRole)> {
        let options = server(&self.options, i)?;
        let mut conn = PgConnection::connect_with(options)
            .await
            .map_err(map_connect_error)?;
        let (pid, in_recovery, read_only): (i32, bool, bool) = sqlx::query_as(
            "SELECT pg_backend_pid(), pg_is_in_recovery(), \
             current_setting('transaction_read_only') = 'on'",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(map_sqlx_error)?;
        let conn = Box::new(PgConn {
            conn,
            cancel: Arc::new(PgCancel {
                options: options.clone(),
                pid,
            }),
            last: None,
        });
        Ok((
            conn,
            ServerRole {
                read_only,
                in_recovery,
            },
        ))
    }
}

#[async_trait]
impl Driver for PgDriver {
    async fn connect(&self) -> Result<Box<dyn RawConn>> {
        self.hosts.connect(|i| self.open(i)).await
    }
}

struct PgConn {
    conn: PgConnection,
    cancel: Arc<PgCancel>,
    /// The text of the last statement and the column names of its rows: the same statement
    /// run again (the common case: a point read in a loop) reuses both instead of allocating
    /// them per statement.
    last: Option<LastStatement>,
}

struct LastStatement {
    sql: Arc<str>,
    columns: Option<Arc<[String]>>,
}

impl PgConn {
    /// `sql` as the shared text sqlx keys its statement cache on (the last statement's when it
    /// is the same text), and the column names that statement's rows had.
    fn shared_text(&mut self, sql: &str) -> (Arc<str>, Option<Arc<[String]>>) {
        match &self.last {
            Some(last) if &*last.sql == sql => (last.sql.clone(), last.columns.clone()),
            _ => {
                let text: Arc<str> = Arc::from(sql);
                self.last = Some(LastStatement {
                    sql: text.clone(),
                    columns: None,
                });
                (text, None)
            }
        }
    }
}

/// The names of `row`'s columns: `known` when they are the same (no allocation).
fn row_columns(row: &PgRow, known: &mut Option<Arc<[String]>>) -> Arc<[String]> {
    let cols = row.columns();
    if let Some(k) = known {
        if k.len() == cols.len() && k.iter().zip(cols).all(|(a, b)| a == sqlx::Column::name(b)) {
            return k.clone();
        }
    }
    let names = column_names(cols);
    *known = Some(names.clone());
    names
}

struct PgCancel {
    options: Arc<PgConnectOptions>,
    pid: i32,
}

#[async_trait]
impl CancelToken for PgCancel {
    async fn cancel(&self) -> Result<()> {
        let work = async {
            let mut c = PgConnection::connect_with(&self.options)
                .await
                .map_err(map_connect_error)?;
            sqlx::query("SELECT pg_cancel_backend($1)")
                .bind(self.pid)
                .execute(&mut c)
                .await
                .map_err(map_sqlx_error)?;
            let _ = c.close().await;
            Ok(())
        };
        tokio::time::timeout(CANCEL_TIMEOUT, work)
            .await
            .map_err(|_| Error::Connection("cancel request timed out".into()))?
    }
}

impl PgConn {
    /// `params` encoded to the types the server inferred when it prepared `sql` (prepared
    /// once per connection; later calls are a cache lookup).
    async fn arguments(&mut self, sql: &Arc<str>, params: &[Value]) -> Result<PgArguments> {
        let stmt = (&mut self.conn)
            .prepare(AssertSqlSafe(sql.clone()).into_sql_str())
            .await
            .map_err(map_sqlx_error)?;
        let types: &[PgTypeInfo] = match stmt.parameters() {
            Some(Either::Left(t)) => t,
            _ => &[],
        };
        if types.len() != params.len() {
            return Err(Error::ParameterCount {
                expected: types.len(),
                given: params.len(),
            });
        }
        let mut args = PgArguments::default();
        for (i, (v, t)) in params.iter().zip(types).enumerate() {
            let p =
                to_pg(v, t).map_err(|m| Error::Conversion(format!("parameter ${}: {m}", i + 1)))?;
            args.add(p).map_err(|e| Error::Conversion(e.to_string()))?;
        }
        Ok(args)
    }
}

#[async_trait]
impl RawConn for PgConn {
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<QueryOutput> {
        let (sql, mut known) = self.shared_text(sql);
        let args = self.arguments(&sql, params).await?;
        let mut out = QueryOutput::default();
        let mut columns: Option<Arc<[String]>> = None;
        let mut stream =
            (&mut self.conn).fetch_many(sqlx::query_with(AssertSqlSafe(sql.clone()), args));
        while let Some(item) = stream.try_next().await.map_err(map_sqlx_error)? {
            match item {
                Either::Left(done) => out.rows_affected += done.rows_affected(),
                Either::Right(row) => {
                    let cols = columns.get_or_insert_with(|| row_columns(&row, &mut known));
                    out.rows.push(decode_row(&row, cols.clone())?);
                }
            }
        }
        drop(stream);
        if let (Some(last), Some(cols)) = (self.last.as_mut(), columns) {
            if Arc::ptr_eq(&last.sql, &sql) {
                last.columns = Some(cols);
            }
        }
        Ok(out)
    }

    async fn fetch<'a>(&'a mut self, sql: &'a str, params: &'a [Value]) -> Result<RowStream<'a>> {
        let sql: Arc<str> = Arc::from(sql);
        let args = self.arguments(&sql, params).await?;
        let mut columns: Option<Arc<[String]>> = None;
        let rows = (&mut self.conn)
            .fetch(sqlx::query_with(AssertSqlSafe(sql), args))
            .map(move |row| {
                let row = row.map_err(map_sqlx_error)?;
                let cols = columns.get_or_insert_with(|| column_names(row.columns()));
                decode_row(&row, cols.clone())
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

    async fn copy_in(&mut self, sql: &str, data: &[u8]) -> Result<u64> {
        let mut copy = self.conn.copy_in_raw(sql).await.map_err(map_sqlx_error)?;
        if let Err(e) = copy.send(data).await {
            // Ends the COPY on the server (it answers the abort with an error of its own).
            let _ = copy.abort("dal: sending COPY data failed").await;
            return Err(map_sqlx_error(e));
        }
        copy.finish().await.map_err(map_sqlx_error)
    }

    fn cancel_token(&self) -> Arc<dyn CancelToken> {
        self.cancel.clone()
    }

    fn system_name(&self) -> &'static str {
        "postgresql"
    }

    async fn ping(&mut self) -> Result<()> {
        self.conn.ping().await.map_err(map_sqlx_error)
    }

    async fn close(self: Box<Self>) {
        let _ = self.conn.close().await;
    }
}

// ---- results -----------------------------------------------------------------------------

fn decode_row(row: &PgRow, columns: Arc<[String]>) -> Result<Row> {
    let mut values = Vec::with_capacity(columns.len());
    for i in 0..columns.len() {
        let raw = row.try_get_raw(i).map_err(map_sqlx_error)?;
        values.push(
            decode_value(raw)
                .map_err(|e| Error::Conversion(format!("column {:?}: {e}", columns[i])))?,
        );
    }
    Ok(Row::new(columns, values))
}

fn dec<'r, T: Decode<'r, Postgres>>(
    v: PgValueRef<'r>,
) -> std::result::Result<T, sqlx::error::BoxDynError> {
    T::decode(v)
}

fn decode_value(v: PgValueRef<'_>) -> std::result::Result<Value, sqlx::error::BoxDynError> {
    use oid::*;
    if v.is_null() {
        return Ok(Value::Null);
    }
    let t = type_oid(&v.type_info());
    if v.format() == sqlx::postgres::PgValueFormat::Text {
        // Only simple-protocol results are text; decode what we know from the text form.
        let s = v.as_str()?;
        return Ok(match t {
            BOOL => Value::Bool(s == "t"),
            INT2 | INT4 | INT8 | OID => s
                .parse()
                .map(Value::Int)
                .unwrap_or_else(|_| Value::Text(s.into())),
            FLOAT4 | FLOAT8 => s
                .parse()
                .map(Value::Float)
                .unwrap_or_else(|_| Value::Text(s.into())),
            NUMERIC => decimal_text_to_value(s),
            JSON | JSONB => Value::Json(serde_json::from_str(s)?),
            _ => Value::Text(s.to_owned()),
        });
    }
    Ok(match t {
        BOOL => Value::Bool(dec(v)?),
        INT2 => Value::Int(i64::from(dec::<i16>(v)?)),
        INT4 => Value::Int(i64::from(dec::<i32>(v)?)),
        INT8 => Value::Int(dec(v)?),
        OID => Value::Int(i64::from(dec::<Oid>(v)?.0)),
        FLOAT4 => Value::Float(f64::from(dec::<f32>(v)?)),
        FLOAT8 => Value::Float(dec(v)?),
        NUMERIC => {
            let s = decode_numeric(v.as_bytes()?).ok_or("malformed NUMERIC")?;
            decimal_text_to_value(&s)
        }
        BYTEA => Value::Bytes(dec(v)?),
        JSON | JSONB => Value::Json(dec::<sqlx::types::Json<serde_json::Value>>(v)?.0),
        UUID => Value::Uuid(dec(v)?),
        DATE => Value::Date(dec(v)?),
        TIME => Value::Time(dec(v)?),
        TIMESTAMP => Value::Timestamp(dec::<NaiveDateTime>(v)?.and_utc()),
        TIMESTAMPTZ => Value::Timestamp(dec(v)?),
        BOOL_ARRAY => Value::Json(serde_json::json!(dec::<Vec<Option<bool>>>(v)?)),
        INT2_ARRAY => Value::Json(serde_json::json!(dec::<Vec<Option<i16>>>(v)?)),
        INT4_ARRAY => Value::Json(serde_json::json!(dec::<Vec<Option<i32>>>(v)?)),
        INT8_ARRAY => Value::Json(serde_json::json!(dec::<Vec<Option<i64>>>(v)?)),
        FLOAT8_ARRAY => Value::Json(serde_json::json!(dec::<Vec<Option<f64>>>(v)?)),
        TEXT_ARRAY | VARCHAR_ARRAY => {
            Value::Json(serde_json::json!(dec::<Vec<Option<String>>>(v)?))
        }
        _ => {
            let bytes = v.as_bytes()?;
            match std::str::from_utf8(bytes) {
                Ok(s) => Value::Text(s.to_owned()),
                Err(_) => Value::Bytes(bytes.to_vec()),
            }
        }
    })
}
