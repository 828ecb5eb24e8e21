//! Parameters: each value is encoded to the type the server inferred for its placeholder when
//! it prepared the statement.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use sqlx::encode::IsNull;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo};
use sqlx::{Encode, Postgres, Type};
use uuid::Uuid;

use super::numeric::encode_numeric;
use crate::value::{parse_timestamp, Value};

/// A parameter already converted to the server's type for it.
pub(super) enum PgParam<'a> {
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

pub(super) mod oid {
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

pub(super) fn type_oid(t: &PgTypeInfo) -> u32 {
    t.oid().map_or(0, |o| o.0)
}

/// A conversion: `Ok(None)` when the value cannot be sent as that type at all.
type Conv<'a> = std::result::Result<Option<PgParam<'a>>, String>;

pub(super) fn to_pg<'a>(v: &'a Value, t: &PgTypeInfo) -> std::result::Result<PgParam<'a>, String> {
    let target = type_oid(t);
    let converted = match v {
        Value::Null => Ok(Some(PgParam::Null)),
        Value::Bool(b) => Ok(bool_to_pg(*b, target)),
        Value::Int(i) => int_to_pg(*i, target),
        Value::Float(f) => float_to_pg(*f, target),
        Value::Decimal(d) => decimal_to_pg(d, target),
        Value::Text(s) => Ok(text_to_pg(s, target)),
        Value::Bytes(b) => Ok(bytes_to_pg(b, target)),
        Value::Json(j) => json_to_pg(j, target),
        Value::Timestamp(ts) => Ok(timestamp_to_pg(ts, target)),
        Value::Date(d) => Ok(date_to_pg(*d, target)),
        Value::Time(tm) => Ok(match target {
            oid::TIME => Some(PgParam::Time(*tm)),
            _ => texty(target, || tm.format("%H:%M:%S%.f").to_string()),
        }),
        Value::Uuid(u) => Ok(match target {
            oid::UUID => Some(PgParam::Uuid(*u)),
            _ => texty(target, || u.to_string()),
        }),
    }?;
    converted.ok_or_else(|| {
        format!(
            "cannot send a {} value where the server expects {}; convert it or add a cast such as CAST(? AS TEXT)",
            v.type_name(),
            sqlx::TypeInfo::name(t)
        )
    })
}

/// The value as text, where the target takes text.
fn texty<'a>(target: u32, text: impl FnOnce() -> String) -> Option<PgParam<'a>> {
    is_texty(target).then(|| PgParam::Text(Cow::Owned(text())))
}

fn bool_to_pg<'a>(b: bool, target: u32) -> Option<PgParam<'a>> {
    use oid::*;
    match target {
        BOOL => Some(PgParam::Bool(b)),
        JSON => Some(PgParam::Json(b.to_string())),
        JSONB => Some(PgParam::Jsonb(b.to_string())),
        INT2 => Some(PgParam::I16(i16::from(b))),
        INT4 => Some(PgParam::I32(i32::from(b))),
        INT8 => Some(PgParam::I64(i64::from(b))),
        _ => texty(target, || b.to_string()),
    }
}

fn int_to_pg<'a>(i: i64, target: u32) -> Conv<'a> {
    use oid::*;
    let range = |ty: &str| format!("{i} out of range for {ty}");
    Ok(Some(match target {
        INT2 => PgParam::I16(i16::try_from(i).map_err(|_| range("SMALLINT"))?),
        INT4 => PgParam::I32(i32::try_from(i).map_err(|_| range("INTEGER"))?),
        INT8 => PgParam::I64(i),
        OID => PgParam::Oid(u32::try_from(i).map_err(|_| range("OID"))?),
        FLOAT4 => PgParam::F32(i as f32),
        FLOAT8 => PgParam::F64(i as f64),
        NUMERIC => PgParam::Numeric(encode_numeric(&i.to_string())?),
        BOOL if i == 0 || i == 1 => PgParam::Bool(i == 1),
        JSON => PgParam::Json(i.to_string()),
        JSONB => PgParam::Jsonb(i.to_string()),
        _ => return Ok(texty(target, || i.to_string())),
    }))
}

fn float_to_pg<'a>(f: f64, target: u32) -> Conv<'a> {
    use oid::*;
    match target {
        FLOAT4 => Ok(Some(PgParam::F32(f as f32))),
        FLOAT8 => Ok(Some(PgParam::F64(f))),
        NUMERIC if f.is_finite() => Ok(Some(PgParam::Numeric(encode_numeric(&format_float(f))?))),
        INT2 | INT4 | INT8 if f.fract() == 0.0 && f.abs() < 9.0e15 => int_to_pg(f as i64, target),
        JSON | JSONB => {
            let n = serde_json::Number::from_f64(f)
                .ok_or_else(|| format!("{f} is not representable in JSON"))?
                .to_string();
            Ok(Some(if target == JSON {
                PgParam::Json(n)
            } else {
                PgParam::Jsonb(n)
            }))
        }
        _ => Ok(texty(target, || format_float(f))),
    }
}

fn decimal_to_pg<'a>(d: &rust_decimal::Decimal, target: u32) -> Conv<'a> {
    use oid::*;
    let range = |ty: &str| format!("{d} out of range for {ty}");
    Ok(Some(match target {
        NUMERIC => PgParam::Numeric(encode_numeric(&d.to_string())?),
        FLOAT4 => PgParam::F32(d.to_f32().ok_or_else(|| range("REAL"))?),
        FLOAT8 => PgParam::F64(d.to_f64().ok_or_else(|| range("DOUBLE PRECISION"))?),
        INT2 | INT4 | INT8 | OID if d.fract().is_zero() => {
            return int_to_pg(d.to_i64().ok_or_else(|| range("an integer"))?, target)
        }
        JSON => PgParam::Json(d.to_string()),
        JSONB => PgParam::Jsonb(d.to_string()),
        _ => return Ok(texty(target, || d.to_string())),
    }))
}

fn bytes_to_pg(b: &[u8], target: u32) -> Option<PgParam<'_>> {
    match target {
        oid::BYTEA => Some(PgParam::Bytes(Cow::Borrowed(b))),
        _ => match std::str::from_utf8(b) {
            Ok(s) if is_texty(target) => Some(PgParam::Text(Cow::Borrowed(s))),
            _ => None,
        },
    }
}

fn json_to_pg(j: &serde_json::Value, target: u32) -> Conv<'_> {
    use oid::*;
    use serde_json::Value as J;
    match (target, j) {
        (JSON, j) => Ok(Some(PgParam::Json(j.to_string()))),
        (JSONB, j) => Ok(Some(PgParam::Jsonb(j.to_string()))),
        (_, J::String(s)) if is_texty(target) => Ok(Some(PgParam::Text(Cow::Borrowed(s)))),
        (_, other) if is_texty(target) => Ok(Some(PgParam::Text(Cow::Owned(other.to_string())))),
        // A JSON scalar bound to a non-JSON parameter: as the scalar it holds.
        (_, J::Null) => Ok(Some(PgParam::Null)),
        (_, J::Bool(b)) => Ok(bool_to_pg(*b, target)),
        (_, J::Number(n)) => match n.as_i64() {
            Some(i) => int_to_pg(i, target),
            None => float_to_pg(n.as_f64().unwrap_or(f64::NAN), target),
        },
        (_, J::String(s)) => Ok(text_to_pg(s, target)),
        _ => Ok(None),
    }
}

fn timestamp_to_pg<'a>(ts: &DateTime<Utc>, target: u32) -> Option<PgParam<'a>> {
    use oid::*;
    match target {
        TIMESTAMPTZ => Some(PgParam::TimestampTz(*ts)),
        TIMESTAMP => Some(PgParam::Timestamp(ts.naive_utc())),
        DATE => Some(PgParam::Date(ts.date_naive())),
        _ => texty(target, || crate::value::format_timestamp(ts)),
    }
}

fn date_to_pg<'a>(d: NaiveDate, target: u32) -> Option<PgParam<'a>> {
    use oid::*;
    match target {
        DATE => Some(PgParam::Date(d)),
        TIMESTAMP => Some(PgParam::Timestamp(d.and_time(NaiveTime::MIN))),
        TIMESTAMPTZ => Some(PgParam::TimestampTz(d.and_time(NaiveTime::MIN).and_utc())),
        _ => texty(target, || d.format("%Y-%m-%d").to_string()),
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
