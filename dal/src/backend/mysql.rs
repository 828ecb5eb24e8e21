//! MySQL and MariaDB through `sqlx-mysql`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use futures_util::{StreamExt, TryStreamExt};
use sqlx::mysql::{MySqlArguments, MySqlConnectOptions, MySqlConnection, MySqlRow, MySqlValueRef};
use sqlx::{
    Arguments, AssertSqlSafe, Column as _, ConnectOptions, Connection, Decode, Either, Executor,
    MySql, Row as _, TypeInfo, ValueRef,
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

const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct MySqlDriver {
    /// One set of options per server of the host list (usually one).
    options: Vec<Arc<MySqlConnectOptions>>,
    hosts: HostList,
    /// Sessions are opened read-only (replica and read pools).
    read_only: bool,
}

impl MySqlDriver {
    pub(crate) fn new(config: &DatabaseConfig) -> Result<Self> {
        // sqlx puts the character set into `SET NAMES` as is: only plain names pass.
        crate::config::check_charset(config.get_charset())?;
        let mut o = MySqlConnectOptions::new()
            .username(config.get_user().unwrap_or("root"))
            .database(config.database())
            .charset(config.get_charset())
            // Timestamps travel as UTC; the session time zone must agree (a `timezone` URL
            // option other than UTC is refused when the URL is parsed).
            .timezone(Some("+00:00".to_owned()))
            .pipes_as_concat(false)
            .statement_cache_capacity(512);
        if let Some(pw) = config.password_secret() {
            o = o.password(pw);
        }
        // TLS; the cancel connection (`KILL QUERY`) clones these options.
        o = o.ssl_mode(config.get_ssl_mode().to_mysql());
        if let Some(ca) = config.get_ssl_root_cert() {
            o = o.ssl_ca(ca);
        }
        if let Some(cert) = config.get_ssl_client_cert() {
            o = o.ssl_client_cert(cert);
        }
        if let Some(key) = config.get_ssl_client_key() {
            o = o.ssl_client_key(key);
        }
        let (options, hosts) = per_server(
            config,
            Backend::MySql,
            o.disable_statement_logging(),
            |o, host, port| o.host(host).port(port),
        );
        Ok(MySqlDriver {
            options,
            hosts,
            read_only: config.is_read_only_session(),
        })
    }

    /// Connects to server `i` and reads its connection id, role and product (MySQL or
    /// MariaDB) in one round trip; a read-only session is set read-only before it is used.
    async fn open(&self, i: usize) -> Result<(Box<dyn RawConn>, ServerRole)> {
        let options = server(&self.options, i)?;
        let mut conn = MySqlConnection::connect_with(options)
            .await
            .map_err(map_connect_error)?;
        let (id, read_only, mariadb): (u64, bool, bool) =
            sqlx::query_as("SELECT CONNECTION_ID(), @@read_only = 1, VERSION() LIKE '%MariaDB%'")
                .fetch_one(&mut conn)
                .await
                .map_err(map_sqlx_error)?;
        if self.read_only {
            conn.execute("SET SESSION TRANSACTION READ ONLY")
                .await
                .map_err(map_sqlx_error)?;
        }
        let conn = Box::new(MyConn {
            conn,
            mariadb,
            cancel: Arc::new(MyCancel {
                options: options.clone(),
                id,
            }),
        });
        // A MySQL replica is told apart by `read_only` alone.
        Ok((
            conn,
            ServerRole {
                read_only,
                in_recovery: read_only,
            },
        ))
    }
}

#[async_trait]
impl Driver for MySqlDriver {
    async fn connect(&self) -> Result<Box<dyn RawConn>> {
        self.hosts.connect(|i| self.open(i)).await
    }
}

struct MyConn {
    conn: MySqlConnection,
    /// The server is MariaDB (its version string says so), not MySQL.
    mariadb: bool,
    cancel: Arc<MyCancel>,
}

struct MyCancel {
    options: Arc<MySqlConnectOptions>,
    id: u64,
}

#[async_trait]
impl CancelToken for MyCancel {
    async fn cancel(&self) -> Result<()> {
        let work = async {
            let mut c = MySqlConnection::connect_with(&self.options)
                .await
                .map_err(map_connect_error)?;
            // KILL takes no placeholders; the id is a number we read from the server.
            c.execute(AssertSqlSafe(format!("KILL QUERY {}", self.id)))
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

#[async_trait]
impl RawConn for MyConn {
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<QueryOutput> {
        let mut args = MySqlArguments::default();
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
                    let (names, binary) = columns.get_or_insert_with(|| {
                        let cols = row.columns();
                        (
                            column_names(cols),
                            cols.iter().map(|c| is_true_binary(c.type_info())).collect(),
                        )
                    });
                    out.rows.push(decode_row(&row, names.clone(), binary)?);
                }
            }
        }
        Ok(out)
    }

    async fn fetch<'a>(&'a mut self, sql: &'a str, params: &'a [Value]) -> Result<RowStream<'a>> {
        let mut args = MySqlArguments::default();
        for v in params {
            bind(&mut args, v).map_err(|e| Error::Conversion(e.to_string()))?;
        }
        let mut columns: Option<(Arc<[String]>, Vec<bool>)> = None;
        let rows = (&mut self.conn)
            .fetch(sqlx::query_with(AssertSqlSafe(sql.to_owned()), args))
            .map(move |row| {
                let row = row.map_err(map_sqlx_error)?;
                let (names, binary) = columns.get_or_insert_with(|| {
                    let cols = row.columns();
                    (
                        column_names(cols),
                        cols.iter().map(|c| is_true_binary(c.type_info())).collect(),
                    )
                });
                decode_row(&row, names.clone(), binary)
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
        if self.mariadb {
            "mariadb"
        } else {
            "mysql"
        }
    }

    async fn ping(&mut self) -> Result<()> {
        self.conn.ping().await.map_err(map_sqlx_error)
    }

    async fn close(self: Box<Self>) {
        let _ = self.conn.close().await;
    }
}

fn bind(args: &mut MySqlArguments, v: &Value) -> std::result::Result<(), sqlx::error::BoxDynError> {
    match v {
        Value::Null => args.add(None::<String>),
        Value::Bool(b) => args.add(*b),
        Value::Int(i) => args.add(*i),
        Value::Float(f) if !f.is_finite() => Err(format!(
            "MySQL cannot store the float {f} (NaN and infinities are not numbers it holds)"
        )
        .into()),
        Value::Float(f) => args.add(*f),
        Value::Decimal(d) => args.add(*d),
        Value::Text(s) => args.add(s.clone()),
        Value::Bytes(b) => args.add(b.clone()),
        Value::Json(j) => args.add(j.to_string()),
        // As DATETIME (naive UTC; the session time zone is UTC): a TIMESTAMP parameter would
        // be stored as NULL outside 1970-2038. DATETIME holds years 1000-9999.
        Value::Timestamp(t) => {
            super::check_year(t, 1000, 9999, "MySQL")?;
            args.add(t.naive_utc())
        }
        Value::Date(d) => args.add(*d),
        Value::Time(t) => args.add(*t),
        // UUIDs are stored as text (CHAR(36)) so that every backend reads the same thing.
        Value::Uuid(u) => args.add(u.to_string()),
    }
}

/// MySQL flags text columns with a `_bin` collation as BINARY too; only the `binary` character
/// set (collation 63) holds bytes. sqlx keeps the collation private but prints it.
fn is_true_binary(info: &sqlx::mysql::MySqlTypeInfo) -> bool {
    format!("{info:?}").contains("Collation(63)")
}

fn decode_row(row: &MySqlRow, columns: Arc<[String]>, binary: &[bool]) -> Result<Row> {
    let mut values = Vec::with_capacity(columns.len());
    for i in 0..columns.len() {
        let raw = row.try_get_raw(i).map_err(map_sqlx_error)?;
        values.push(
            decode_value(raw, binary.get(i).copied().unwrap_or(true))
                .map_err(|e| Error::Conversion(format!("column {:?}: {e}", columns[i])))?,
        );
    }
    Ok(Row::new(columns, values))
}

fn dec<'r, T: Decode<'r, MySql>>(
    v: MySqlValueRef<'r>,
) -> std::result::Result<T, sqlx::error::BoxDynError> {
    T::decode(v)
}

fn decode_value(
    v: MySqlValueRef<'_>,
    binary: bool,
) -> std::result::Result<Value, sqlx::error::BoxDynError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let info = v.type_info();
    Ok(match info.name() {
        "BOOLEAN" => Value::Bool(dec::<i8>(v)? != 0),
        "TINYINT" => Value::Int(i64::from(dec::<i8>(v)?)),
        "SMALLINT" => Value::Int(i64::from(dec::<i16>(v)?)),
        "INT" | "MEDIUMINT" => Value::Int(i64::from(dec::<i32>(v)?)),
        "BIGINT" => Value::Int(dec(v)?),
        "TINYINT UNSIGNED" => Value::Int(i64::from(dec::<u8>(v)?)),
        "SMALLINT UNSIGNED" => Value::Int(i64::from(dec::<u16>(v)?)),
        "INT UNSIGNED" | "MEDIUMINT UNSIGNED" => Value::Int(i64::from(dec::<u32>(v)?)),
        "BIGINT UNSIGNED" => {
            let u: u64 = dec(v)?;
            i64::try_from(u).map_or(Value::Float(u as f64), Value::Int)
        }
        "YEAR" => Value::Int(i64::from(dec::<u16>(v)?)),
        "FLOAT" => Value::Float(f64::from(dec::<f32>(v)?)),
        "DOUBLE" => Value::Float(dec(v)?),
        "DECIMAL" => decimal_text_to_value(std::str::from_utf8(raw_bytes(&v)?)?),
        "JSON" => Value::Json(serde_json::from_slice(raw_bytes(&v)?)?),
        "DATETIME" => Value::Timestamp(dec::<NaiveDateTime>(v)?.and_utc()),
        "TIMESTAMP" => Value::Timestamp(dec::<DateTime<Utc>>(v)?),
        "DATE" => Value::Date(dec::<NaiveDate>(v)?),
        "TIME" => Value::Time(dec::<NaiveTime>(v)?),
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" if binary => {
            Value::Bytes(dec(v)?)
        }
        "BIT" | "GEOMETRY" => Value::Bytes(dec(v)?),
        _ => {
            let b = raw_bytes(&v)?;
            match std::str::from_utf8(b) {
                Ok(s) => Value::Text(s.to_owned()),
                Err(_) => Value::Bytes(b.to_vec()),
            }
        }
    })
}

fn raw_bytes<'r>(v: &MySqlValueRef<'r>) -> std::result::Result<&'r [u8], sqlx::error::BoxDynError> {
    <&[u8] as Decode<MySql>>::decode(v.clone())
}
