//! PostgreSQL through `sqlx-postgres`.
//!
//! Parameters are encoded to the types the *server* inferred when it prepared the statement
//! (like tokio-postgres does), so an `i64` compares with an `INTEGER` column, a `NULL` fits any
//! column, and text parses into `UUID`/`TIMESTAMPTZ`/`JSONB` parameters.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use futures_util::TryStreamExt;
use rust_decimal::prelude::ToPrimitive;
use sqlx::encode::IsNull;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{
    PgArgumentBuffer, PgArguments, PgConnectOptions, PgConnection, PgRow, PgTypeInfo, PgValueRef,
};
use sqlx::{
    Arguments, AssertSqlSafe, ConnectOptions, Connection, Decode, Either, Encode, Executor,
    Postgres, Row as _, SqlSafeStr, Statement, Type, ValueRef,
};
use uuid::Uuid;

use super::{
    column_names, decimal_text_to_value, map_sqlx_error, CancelToken, Driver, QueryOutput, RawConn,
};
use crate::config::DatabaseConfig;
use crate::error::{Error, Result};
use crate::row::Row;
use crate::sql::Backend;
use crate::value::{parse_timestamp, Value};

/// How long a cancel request may take (connect + `pg_cancel_backend`).
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct PgDriver {
    options: Arc<PgConnectOptions>,
}

impl PgDriver {
    pub(crate) fn new(config: &DatabaseConfig) -> Self {
        let mut o = PgConnectOptions::new_without_pgpass()
            .host(config.get_host())
            .port(config.effective_port(Backend::Postgres))
            .username(config.get_user().unwrap_or("postgres"))
            .database(config.database())
            .application_name("dal")
            .statement_cache_capacity(512);
        if let Some(pw) = config.password_secret() {
            o = o.password(pw);
        }
        PgDriver {
            options: Arc::new(o.disable_statement_logging()),
        }
    }
}

#[async_trait]
impl Driver for PgDriver {
    async fn connect(&self) -> Result<Box<dyn RawConn>> {
        let mut conn = PgConnection::connect_with(&self.options)
            .await
            .map_err(map_sqlx_error)?;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .map_err(map_sqlx_error)?;
        Ok(Box::new(PgConn {
            conn,
            cancel: Arc::new(PgCancel {
                options: self.options.clone(),
                pid,
            }),
        }))
    }
}

struct PgConn {
    conn: PgConnection,
    cancel: Arc<PgCancel>,
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
                .map_err(map_sqlx_error)?;
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

#[async_trait]
impl RawConn for PgConn {
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<QueryOutput> {
        let sql: Arc<str> = Arc::from(sql);
        // Prepared once per connection (sqlx caches by SQL text); on later calls this is a
        // cache lookup with no round trip. It tells us the parameter types the server chose.
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
        let mut out = QueryOutput::default();
        let mut columns: Option<Arc<[String]>> = None;
        let mut stream = (&mut self.conn).fetch_many(sqlx::query_with(AssertSqlSafe(sql), args));
        while let Some(item) = stream.try_next().await.map_err(map_sqlx_error)? {
            match item {
                Either::Left(done) => out.rows_affected += done.rows_affected(),
                Either::Right(row) => {
                    let cols = columns.get_or_insert_with(|| column_names(row.columns()));
                    out.rows.push(decode_row(&row, cols.clone())?);
                }
            }
        }
        Ok(out)
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

    async fn ping(&mut self) -> Result<()> {
        self.conn.ping().await.map_err(map_sqlx_error)
    }

    async fn close(self: Box<Self>) {
        let _ = self.conn.close().await;
    }
}

// ---- parameters --------------------------------------------------------------------------

/// A parameter already converted to the server's type for it.
enum PgParam<'a> {
    Null,
    Bool(bool),
    I16(i16),
    I32(i32),
    I64(i64),
    Oid(u32),
    F32(f32),
    F64(f64),
    Text(Cow<'a, str>),
    Bytes(Cow<'a, [u8]>),
    Json(String),
    Jsonb(String),
    Numeric(Vec<u8>),
    Uuid(Uuid),
    Date(NaiveDate),
    Time(NaiveTime),
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<Utc>),
}

impl PgParam<'_> {
    fn into_owned(self) -> PgParam<'static> {
        match self {
            PgParam::Text(t) => PgParam::Text(Cow::Owned(t.into_owned())),
            PgParam::Bytes(b) => PgParam::Bytes(Cow::Owned(b.into_owned())),
            PgParam::Null => PgParam::Null,
            PgParam::Bool(v) => PgParam::Bool(v),
            PgParam::I16(v) => PgParam::I16(v),
            PgParam::I32(v) => PgParam::I32(v),
            PgParam::I64(v) => PgParam::I64(v),
            PgParam::Oid(v) => PgParam::Oid(v),
            PgParam::F32(v) => PgParam::F32(v),
            PgParam::F64(v) => PgParam::F64(v),
            PgParam::Json(v) => PgParam::Json(v),
            PgParam::Jsonb(v) => PgParam::Jsonb(v),
            PgParam::Numeric(v) => PgParam::Numeric(v),
            PgParam::Uuid(v) => PgParam::Uuid(v),
            PgParam::Date(v) => PgParam::Date(v),
            PgParam::Time(v) => PgParam::Time(v),
            PgParam::Timestamp(v) => PgParam::Timestamp(v),
            PgParam::TimestampTz(v) => PgParam::TimestampTz(v),
        }
    }
}

impl Type<Postgres> for PgParam<'_> {
    fn type_info() -> PgTypeInfo {
        // "Unspecified": the statement was already prepared with server-inferred types.
        PgTypeInfo::with_oid(Oid(0))
    }
}

impl Encode<'_, Postgres> for PgParam<'_> {
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> std::result::Result<IsNull, sqlx::error::BoxDynError> {
        match self {
            PgParam::Null => Ok(IsNull::Yes),
            PgParam::Bool(v) => <bool as Encode<Postgres>>::encode_by_ref(v, buf),
            PgParam::I16(v) => <i16 as Encode<Postgres>>::encode_by_ref(v, buf),
            PgParam::I32(v) => <i32 as Encode<Postgres>>::encode_by_ref(v, buf),
            PgParam::I64(v) => <i64 as Encode<Postgres>>::encode_by_ref(v, buf),
            PgParam::Oid(v) => {
                buf.extend_from_slice(&v.to_be_bytes());
                Ok(IsNull::No)
            }
            PgParam::F32(v) => <f32 as Encode<Postgres>>::encode_by_ref(v, buf),
            PgParam::F64(v) => <f64 as Encode<Postgres>>::encode_by_ref(v, buf),
            PgParam::Text(v) => {
                buf.extend_from_slice(v.as_bytes());
                Ok(IsNull::No)
            }
            PgParam::Json(v) => {
                buf.extend_from_slice(v.as_bytes());
                Ok(IsNull::No)
            }
            PgParam::Jsonb(v) => {
                buf.push(1);
                buf.extend_from_slice(v.as_bytes());
                Ok(IsNull::No)
            }
            PgParam::Bytes(v) => {
                buf.extend_from_slice(v);
                Ok(IsNull::No)
            }
            PgParam::Numeric(v) => {
                buf.extend_from_slice(v);
                Ok(IsNull::No)
            }
            PgParam::Uuid(v) => {
                buf.extend_from_slice(v.as_bytes());
                Ok(IsNull::No)
            }
            PgParam::Date(v) => <NaiveDate as Encode<Postgres>>::encode_by_ref(v, buf),
            PgParam::Time(v) => <NaiveTime as Encode<Postgres>>::encode_by_ref(v, buf),
            PgParam::Timestamp(v) => <NaiveDateTime as Encode<Postgres>>::encode_by_ref(v, buf),
            PgParam::TimestampTz(v) => <DateTime<Utc> as Encode<Postgres>>::encode_by_ref(v, buf),
        }
    }
}

mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const BOOL_ARRAY: u32 = 1000;
    pub const INT2_ARRAY: u32 = 1005;
    pub const INT4_ARRAY: u32 = 1007;
    pub const TEXT_ARRAY: u32 = 1009;
    pub const VARCHAR_ARRAY: u32 = 1015;
    pub const INT8_ARRAY: u32 = 1016;
    pub const FLOAT8_ARRAY: u32 = 1022;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

fn type_oid(t: &PgTypeInfo) -> u32 {
    t.oid().map_or(0, |o| o.0)
}

fn to_pg<'a>(v: &'a Value, t: &PgTypeInfo) -> std::result::Result<PgParam<'a>, String> {
    use oid::*;
    let target = type_oid(t);
    let cannot = || {
        Err(format!(
            "cannot send a {} value where the server expects {}; convert it or add a cast such as CAST(? AS TEXT)",
            v.type_name(),
            sqlx::TypeInfo::name(t)
        ))
    };
    let int = |i: i64| -> std::result::Result<PgParam<'a>, String> {
        Ok(match target {
            INT2 => PgParam::I16(
                i16::try_from(i).map_err(|_| format!("{i} out of range for SMALLINT"))?,
            ),
            INT4 => {
                PgParam::I32(i32::try_from(i).map_err(|_| format!("{i} out of range for INTEGER"))?)
            }
            INT8 => PgParam::I64(i),
            OID => PgParam::Oid(u32::try_from(i).map_err(|_| format!("{i} out of range for OID"))?),
            FLOAT4 => PgParam::F32(i as f32),
            FLOAT8 => PgParam::F64(i as f64),
            NUMERIC => PgParam::Numeric(encode_numeric(&i.to_string())?),
            BOOL if i == 0 || i == 1 => PgParam::Bool(i == 1),
            JSON => PgParam::Json(i.to_string()),
            JSONB => PgParam::Jsonb(i.to_string()),
            _ if is_texty(target) => PgParam::Text(Cow::Owned(i.to_string())),
            _ => return cannot(),
        })
    };
    match v {
        Value::Null => Ok(PgParam::Null),
        Value::Bool(b) => match target {
            BOOL => Ok(PgParam::Bool(*b)),
            JSON => Ok(PgParam::Json(b.to_string())),
            JSONB => Ok(PgParam::Jsonb(b.to_string())),
            INT2 | INT4 | INT8 => int(i64::from(*b)),
            _ if is_texty(target) => Ok(PgParam::Text(Cow::Owned(b.to_string()))),
            _ => cannot(),
        },
        Value::Int(i) => int(*i),
        Value::Float(f) => match target {
            FLOAT4 => Ok(PgParam::F32(*f as f32)),
            FLOAT8 => Ok(PgParam::F64(*f)),
            NUMERIC if f.is_finite() => Ok(PgParam::Numeric(encode_numeric(&format_float(*f))?)),
            INT2 | INT4 | INT8 if f.fract() == 0.0 && f.abs() < 9.0e15 => int(*f as i64),
            JSON | JSONB => {
                let n = serde_json::Number::from_f64(*f)
                    .ok_or_else(|| format!("{f} is not representable in JSON"))?;
                Ok(if target == JSON {
                    PgParam::Json(n.to_string())
                } else {
                    PgParam::Jsonb(n.to_string())
                })
            }
            _ if is_texty(target) => Ok(PgParam::Text(Cow::Owned(format_float(*f)))),
            _ => cannot(),
        },
        Value::Decimal(d) => match target {
            NUMERIC => Ok(PgParam::Numeric(encode_numeric(&d.to_string())?)),
            FLOAT4 => Ok(PgParam::F32(
                d.to_f32()
                    .ok_or_else(|| format!("{d} out of range for REAL"))?,
            )),
            FLOAT8 => {
                Ok(PgParam::F64(d.to_f64().ok_or_else(|| {
                    format!("{d} out of range for DOUBLE PRECISION")
                })?))
            }
            INT2 | INT4 | INT8 | OID if d.fract().is_zero() => int(d
                .to_i64()
                .ok_or_else(|| format!("{d} out of range for an integer"))?),
            JSON => Ok(PgParam::Json(d.to_string())),
            JSONB => Ok(PgParam::Jsonb(d.to_string())),
            _ if is_texty(target) => Ok(PgParam::Text(Cow::Owned(d.to_string()))),
            _ => cannot(),
        },
        Value::Text(s) => text_to_pg(s, target).map_or_else(cannot, Ok),
        Value::Bytes(b) => match target {
            BYTEA => Ok(PgParam::Bytes(Cow::Borrowed(b))),
            _ => match std::str::from_utf8(b) {
                Ok(s) if is_texty(target) => Ok(PgParam::Text(Cow::Borrowed(s))),
                _ => cannot(),
            },
        },
        Value::Json(j) => match target {
            JSON => Ok(PgParam::Json(j.to_string())),
            JSONB => Ok(PgParam::Jsonb(j.to_string())),
            _ if is_texty(target) => Ok(PgParam::Text(match j {
                serde_json::Value::String(s) => Cow::Borrowed(s.as_str()),
                other => Cow::Owned(other.to_string()),
            })),
            _ => match j {
                serde_json::Value::Null => Ok(PgParam::Null),
                serde_json::Value::Bool(b) => to_pg(&Value::Bool(*b), t).map(PgParam::into_owned),
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(i) => int(i),
                    None => to_pg(&Value::Float(n.as_f64().unwrap_or(f64::NAN)), t)
                        .map(PgParam::into_owned),
                },
                serde_json::Value::String(s) => text_to_pg(s, target).map_or_else(cannot, Ok),
                _ => cannot(),
            },
        },
        Value::Timestamp(ts) => match target {
            TIMESTAMPTZ => Ok(PgParam::TimestampTz(*ts)),
            TIMESTAMP => Ok(PgParam::Timestamp(ts.naive_utc())),
            DATE => Ok(PgParam::Date(ts.date_naive())),
            _ if is_texty(target) => Ok(PgParam::Text(Cow::Owned(crate::value::format_timestamp(
                ts,
            )))),
            _ => cannot(),
        },
        Value::Date(d) => match target {
            DATE => Ok(PgParam::Date(*d)),
            TIMESTAMP => Ok(PgParam::Timestamp(d.and_time(NaiveTime::MIN))),
            TIMESTAMPTZ => Ok(PgParam::TimestampTz(d.and_time(NaiveTime::MIN).and_utc())),
            _ if is_texty(target) => {
                Ok(PgParam::Text(Cow::Owned(d.format("%Y-%m-%d").to_string())))
            }
            _ => cannot(),
        },
        Value::Time(tm) => match target {
            TIME => Ok(PgParam::Time(*tm)),
            _ if is_texty(target) => Ok(PgParam::Text(Cow::Owned(
                tm.format("%H:%M:%S%.f").to_string(),
            ))),
            _ => cannot(),
        },
        Value::Uuid(u) => match target {
            UUID => Ok(PgParam::Uuid(*u)),
            _ if is_texty(target) => Ok(PgParam::Text(Cow::Owned(u.to_string()))),
            _ => cannot(),
        },
    }
}

/// Types whose binary form is their text: text types, and types we don't know (enums, citext,
/// domains over text), for which sending text is the best guess.
fn is_texty(target: u32) -> bool {
    use oid::*;
    matches!(
        target,
        TEXT | VARCHAR | BPCHAR | NAME | UNKNOWN | XML | CHAR | 0
    ) || target >= 16384
}

fn text_to_pg(s: &str, target: u32) -> Option<PgParam<'_>> {
    use oid::*;
    Some(match target {
        BOOL => PgParam::Bool(match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "1" | "yes" | "on" => true,
            "false" | "f" | "0" | "no" | "off" => false,
            _ => return None,
        }),
        INT2 => PgParam::I16(s.trim().parse().ok()?),
        INT4 => PgParam::I32(s.trim().parse().ok()?),
        INT8 => PgParam::I64(s.trim().parse().ok()?),
        OID => PgParam::Oid(s.trim().parse().ok()?),
        FLOAT4 => PgParam::F32(s.trim().parse().ok()?),
        FLOAT8 => PgParam::F64(s.trim().parse().ok()?),
        NUMERIC => PgParam::Numeric(encode_numeric(s.trim()).ok()?),
        UUID => PgParam::Uuid(Uuid::parse_str(s.trim()).ok()?),
        JSON | JSONB => {
            // Text bound to a JSON parameter is taken as a JSON document when it is one,
            // else as a JSON string.
            let doc = match serde_json::from_str::<serde_json::Value>(s) {
                Ok(_) => s.to_owned(),
                Err(_) => serde_json::Value::String(s.to_owned()).to_string(),
            };
            if target == JSON {
                PgParam::Json(doc)
            } else {
                PgParam::Jsonb(doc)
            }
        }
        TIMESTAMPTZ => PgParam::TimestampTz(parse_timestamp(s.trim())?),
        TIMESTAMP => PgParam::Timestamp(parse_timestamp(s.trim())?.naive_utc()),
        DATE => PgParam::Date(NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?),
        TIME => PgParam::Time(NaiveTime::parse_from_str(s.trim(), "%H:%M:%S%.f").ok()?),
        BYTEA => PgParam::Bytes(Cow::Borrowed(s.as_bytes())),
        _ if is_texty(target) => PgParam::Text(Cow::Borrowed(s)),
        _ => return None,
    })
}

fn format_float(f: f64) -> String {
    // `{}` on f64 gives the shortest representation that round-trips, without exponent.
    format!("{f}")
}

/// Encodes decimal text (`-12.3400`, `5`, `1e3` not accepted) as PostgreSQL binary NUMERIC.
fn encode_numeric(s: &str) -> std::result::Result<Vec<u8>, String> {
    let bad = || format!("{s:?} is not a decimal number");
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let dscale = u16::try_from(frac_part.len()).map_err(|_| bad())?;
    // Pad the integer part on the left and the fraction on the right to groups of 4 digits.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let mut digits_str = String::with_capacity(int_part.len() + frac_part.len() + 8);
    digits_str.extend(std::iter::repeat_n('0', int_pad));
    digits_str.push_str(int_part);
    let int_groups = digits_str.len() / 4;
    digits_str.push_str(frac_part);
    digits_str.extend(std::iter::repeat_n('0', frac_pad));
    let mut groups: Vec<i16> = digits_str
        .as_bytes()
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0')))
        .collect();
    let mut weight = int_groups as i32 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let mut out = Vec::with_capacity(8 + groups.len() * 2);
    let ndigits = i16::try_from(groups.len()).map_err(|_| bad())?;
    let weight = if groups.is_empty() {
        0
    } else {
        i16::try_from(weight).map_err(|_| bad())?
    };
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(
        &(if neg && !groups.is_empty() {
            0x4000u16
        } else {
            0
        })
        .to_be_bytes(),
    );
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(out)
}

/// Decodes PostgreSQL binary NUMERIC to decimal text.
fn decode_numeric(b: &[u8]) -> Option<String> {
    let rd = |i: usize| -> Option<i16> { Some(i16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?])) };
    let ndigits = rd(0)? as usize;
    let weight = rd(2)? as i32;
    let sign = rd(4)? as u16;
    let dscale = rd(6)? as usize;
    if sign == 0xC000 {
        return Some("NaN".into());
    }
    let digits: Vec<i16> = (0..ndigits).map(|i| rd(8 + i * 2)).collect::<Option<_>>()?;
    let mut int_part = String::new();
    for w in 0..=weight.max(-1) {
        let d = digits.get(w as usize).copied().unwrap_or(0);
        if int_part.is_empty() {
            if d != 0 {
                int_part = d.to_string();
            }
        } else {
            int_part.push_str(&format!("{d:04}"));
        }
    }
    if int_part.is_empty() {
        int_part.push('0');
    }
    let mut frac = String::new();
    let mut idx = weight + 1;
    while frac.len() < dscale {
        let d = if idx < 0 {
            0
        } else {
            digits.get(idx as usize).copied().unwrap_or(0)
        };
        frac.push_str(&format!("{d:04}"));
        idx += 1;
    }
    frac.truncate(dscale);
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    s.push_str(&int_part);
    if !frac.is_empty() {
        s.push('.');
        s.push_str(&frac);
    }
    Some(s)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_round_trips_through_the_binary_form() {
        for s in [
            "0",
            "1",
            "-1",
            "12.3400",
            "0.0001",
            "123456789.987654321",
            "-0.5",
            "10000",
            "99999999",
        ] {
            let enc = encode_numeric(s).unwrap();
            assert_eq!(
                decode_numeric(&enc).unwrap(),
                s.trim_start_matches('+'),
                "{s}"
            );
        }
        assert!(encode_numeric("1e5").is_err());
        assert!(encode_numeric("").is_err());
    }
}

// ---- dialect -----------------------------------------------------------------------------

/// PostgreSQL's facts.
pub(crate) struct PgDialect;

/// SQLSTATE codes dal reads (PostgreSQL Appendix A).
mod sqlstate {
    pub const UNIQUE_VIOLATION: &str = "23505";
    pub const FOREIGN_KEY_VIOLATION: &str = "23503";
    pub const NOT_NULL_VIOLATION: &str = "23502";
    pub const CHECK_VIOLATION: &str = "23514";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const DEADLOCK_DETECTED: &str = "40P01";
    pub const LOCK_NOT_AVAILABLE: &str = "55P03";
    pub const QUERY_CANCELED: &str = "57014";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    pub const CRASH_SHUTDOWN: &str = "57P02";
    pub const CANNOT_CONNECT_NOW: &str = "57P03";
    /// Class 08: connection exception.
    pub const CONNECTION_EXCEPTION_CLASS: &str = "08";
    pub const DUPLICATE_TABLE: &str = "42P07";
    pub const DUPLICATE_COLUMN: &str = "42701";
    pub const DUPLICATE_OBJECT: &str = "42710";
    pub const DUPLICATE_SCHEMA: &str = "42P06";
}

impl super::Dialect for PgDialect {
    fn default_port(&self) -> u16 {
        5432
    }
    fn column_type(&self, ty: crate::entity::FieldType, _indexed: bool) -> &'static str {
        use crate::entity::FieldType as F;
        match ty {
            F::Int => "BIGINT",
            F::Float => "DOUBLE PRECISION",
            F::Bool => "BOOLEAN",
            F::Text => "TEXT",
            F::Timestamp => "TIMESTAMPTZ",
            F::Date => "DATE",
            F::Time => "TIME",
            F::Uuid => "UUID",
            F::Json => "JSONB",
            F::Decimal => "NUMERIC",
            F::Bytes => "BYTEA",
        }
    }
    fn system_types(&self) -> super::SystemTypes {
        super::SystemTypes {
            id: "TEXT",
            timestamp: "TIMESTAMPTZ",
            short_text: "TEXT",
            long_text: "TEXT",
        }
    }
    fn table_exists_sql(&self) -> &'static str {
        "SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = ?"
    }
    fn column_exists_sql(&self) -> &'static str {
        "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?"
    }
    fn add_column(&self, table: &str, column: &str, ty: &str) -> String {
        format!("ALTER TABLE [{table}] ADD COLUMN IF NOT EXISTS [{column}] {ty}")
    }
    fn insert_if_absent(&self, table: &str, columns: &[&str], key: &str) -> String {
        format!(
            "INSERT INTO [{table}] ({}) VALUES ({}) ON CONFLICT ([{key}]) DO NOTHING",
            super::dialect::column_list(columns),
            super::dialect::placeholders(columns.len())
        )
    }
    fn widen_to_float(&self, table: &str, column: &str) -> Option<String> {
        Some(format!(
            "ALTER TABLE [{table}] ALTER COLUMN [{column}] TYPE DOUBLE PRECISION"
        ))
    }
    fn upsert_tail(&self, table: &str, updates: &[&str], returning: &str) -> String {
        super::dialect::on_conflict_upsert(table, updates, returning)
    }
    fn lock_batch_up_front(&self, rows: usize) -> bool {
        rows > 1
    }
    fn limit_offset(&self, limit: Option<u64>, offset: Option<u64>) -> String {
        match (limit, offset) {
            (Some(l), Some(o)) => format!(" LIMIT {l} OFFSET {o}"),
            (Some(l), None) => format!(" LIMIT {l}"),
            (None, Some(o)) => format!(" OFFSET {o}"),
            (None, None) => String::new(),
        }
    }
    fn no_limit(&self) -> &'static str {
        "ALL"
    }
    fn error_kind(
        &self,
        code: &str,
        _message: &str,
        constraint: Option<&str>,
    ) -> (crate::error::DbErrorKind, Option<String>) {
        use crate::error::DbErrorKind as K;
        use sqlstate::*;
        let kind = match code {
            // Primary keys are named `<table>_pkey` (PostgreSQL's default for an unnamed
            // PRIMARY KEY, which is how dal creates them).
            UNIQUE_VIOLATION if constraint.is_some_and(|c| c.ends_with("_pkey")) => {
                K::PrimaryKeyViolation
            }
            // Two sessions creating the same table or type at once collide in the system
            // catalogs' unique indexes (`pg_type_typname_nsp_index`, …): it exists.
            UNIQUE_VIOLATION if constraint.is_some_and(|c| c.starts_with("pg_")) => {
                K::AlreadyExists
            }
            UNIQUE_VIOLATION => K::UniqueViolation,
            FOREIGN_KEY_VIOLATION => K::ForeignKeyViolation,
            NOT_NULL_VIOLATION => K::NotNullViolation,
            CHECK_VIOLATION => K::CheckViolation,
            SERIALIZATION_FAILURE => K::SerializationFailure,
            DEADLOCK_DETECTED => K::Deadlock,
            LOCK_NOT_AVAILABLE => K::LockTimeout,
            QUERY_CANCELED => K::QueryCanceled,
            DUPLICATE_TABLE | DUPLICATE_COLUMN | DUPLICATE_OBJECT | DUPLICATE_SCHEMA => {
                K::AlreadyExists
            }
            _ => K::Other,
        };
        (kind, constraint.map(str::to_owned))
    }
    fn session_ended(&self, code: &str) -> bool {
        use sqlstate::*;
        matches!(code, ADMIN_SHUTDOWN | CRASH_SHUTDOWN | CANNOT_CONNECT_NOW)
            || (code.len() == 5 && code.starts_with(CONNECTION_EXCEPTION_CLASS))
    }
}
