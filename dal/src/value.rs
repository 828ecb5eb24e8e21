//! [`Value`]: one dynamically typed SQL value, the currency of parameters and rows.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::error::{Error, Result};

/// A SQL value as `dal` sends and receives it, independent of the backend.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// Boolean.
    Bool(bool),
    /// Any integer that fits in `i64`.
    Int(i64),
    /// Floating point number.
    Float(f64),
    /// Exact decimal number (`NUMERIC`/`DECIMAL` columns), backed by [`rust_decimal`].
    Decimal(Decimal),
    /// Text.
    Text(String),
    /// Binary data.
    Bytes(Vec<u8>),
    /// JSON document (objects, arrays, …).
    Json(serde_json::Value),
    /// Point in time, in UTC.
    Timestamp(DateTime<Utc>),
    /// Calendar date.
    Date(NaiveDate),
    /// Time of day.
    Time(NaiveTime),
    /// UUID.
    Uuid(Uuid),
}

impl Value {
    /// The text, if this is `Text`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is `Int` (or a `Bool`, as 0/1, or a whole `Decimal` that fits).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            Value::Decimal(d) if d.fract().is_zero() => d.to_i64(),
            _ => None,
        }
    }

    /// The number as `f64`, if this is `Float`, `Int` or `Decimal` (the nearest `f64`).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            Value::Decimal(d) => d.to_f64(),
            _ => None,
        }
    }

    /// The exact decimal, if this is `Decimal` or `Int`.
    pub fn as_decimal(&self) -> Option<Decimal> {
        match self {
            Value::Decimal(d) => Some(*d),
            Value::Int(i) => Some(Decimal::from(*i)),
            _ => None,
        }
    }

    /// The boolean, if this is `Bool` (or an `Int` 0/1, as MySQL and SQLite store booleans).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Int(0) => Some(false),
            Value::Int(1) => Some(true),
            _ => None,
        }
    }

    /// True for `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Short name of the variant, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Decimal(_) => "decimal",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Json(_) => "json",
            Value::Timestamp(_) => "timestamp",
            Value::Date(_) => "date",
            Value::Time(_) => "time",
            Value::Uuid(_) => "uuid",
        }
    }

    /// Converts this value to JSON: numbers stay numbers, decimals become decimal strings
    /// (exact, as `rust_decimal` serializes them), timestamps become RFC 3339 strings, bytes
    /// become an array of numbers.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Decimal(d) => J::String(d.to_string()),
            Value::Text(s) => J::String(s.clone()),
            Value::Bytes(b) => J::Array(b.iter().map(|x| J::from(*x)).collect()),
            Value::Json(j) => j.clone(),
            Value::Timestamp(t) => J::String(format_timestamp(t)),
            Value::Date(d) => J::String(d.format("%Y-%m-%d").to_string()),
            Value::Time(t) => J::String(t.format("%H:%M:%S%.f").to_string()),
            Value::Uuid(u) => J::String(u.to_string()),
        }
    }
}

/// RFC 3339 with microseconds and `Z`: fixed width, so text comparison is chronological.
pub(crate) fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Parses the timestamp forms the backends and users produce: RFC 3339, or
/// `YYYY-MM-DD HH:MM:SS[.f]` (taken as UTC), with `T` or space.
pub(crate) fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Some(t.with_timezone(&Utc));
    }
    None
}

macro_rules! from_via {
    ($($t:ty => $variant:ident($conv:expr)),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::$variant(($conv)(v)) }
        })*
    };
}

from_via! {
    bool => Bool(|v| v),
    i8 => Int(i64::from),
    i16 => Int(i64::from),
    i32 => Int(i64::from),
    i64 => Int(|v| v),
    u8 => Int(i64::from),
    u16 => Int(i64::from),
    u32 => Int(i64::from),
    f32 => Float(f64::from),
    f64 => Float(|v| v),
    String => Text(|v| v),
    &str => Text(str::to_owned),
    &String => Text(String::clone),
    Vec<u8> => Bytes(|v| v),
    &[u8] => Bytes(<[u8]>::to_vec),
    serde_json::Value => Json(|v| v),
    DateTime<Utc> => Timestamp(|v| v),
    NaiveDateTime => Timestamp(|v: NaiveDateTime| v.and_utc()),
    NaiveDate => Date(|v| v),
    NaiveTime => Time(|v| v),
    Uuid => Uuid(|v| v),
    Decimal => Decimal(|v| v),
}

/// Exact decimal from a float's shortest round-trip text (`19.99_f64` → `19.99`), as a
/// backend without an exact decimal type (SQLite) hands a stored decimal back.
pub(crate) fn decimal_from_f64(f: f64) -> Option<Decimal> {
    if !f.is_finite() {
        return None;
    }
    let text = format!("{f}");
    Decimal::from_str(&text)
        .ok()
        .or_else(|| Decimal::from_scientific(&format!("{f:e}")).ok())
}

/// Parses decimal text (`-12.3400`, `1e3`), normalising away trailing fraction zeros beyond
/// what `Decimal` holds (MySQL pads to the column's scale).
pub(crate) fn parse_decimal(s: &str) -> Option<Decimal> {
    let t = s.trim();
    if let Ok(d) = Decimal::from_str(t) {
        return Some(d);
    }
    if let Some((int, frac)) = t.split_once('.') {
        let frac = frac.trim_end_matches('0');
        let text = if frac.is_empty() {
            int.to_owned()
        } else {
            format!("{int}.{frac}")
        };
        if let Ok(d) = Decimal::from_str(&text) {
            return Some(d);
        }
    }
    Decimal::from_scientific(t).ok()
}

impl From<&Value> for Value {
    fn from(v: &Value) -> Self {
        v.clone()
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Builds a parameter list (`Vec<Value>`) from anything `Into<Value>`.
///
/// ```
/// use dal::{params, Value};
/// let p = params![1, "x", None::<i32>];
/// assert_eq!(p, vec![Value::Int(1), Value::Text("x".into()), Value::Null]);
/// ```
#[macro_export]
macro_rules! params {
    () => { ::std::vec::Vec::<$crate::Value>::new() };
    ($($x:expr),+ $(,)?) => { ::std::vec![$($crate::Value::from($x)),+] };
}

/// Anything that can be the parameter list of a statement: `()`, `params![..]`, a `Vec<Value>`,
/// a slice or array of values.
pub trait IntoParams {
    /// The parameters, in placeholder order.
    fn into_params(self) -> Vec<Value>;
}

impl IntoParams for () {
    fn into_params(self) -> Vec<Value> {
        Vec::new()
    }
}

impl IntoParams for Vec<Value> {
    fn into_params(self) -> Vec<Value> {
        self
    }
}

impl IntoParams for &[Value] {
    fn into_params(self) -> Vec<Value> {
        self.to_vec()
    }
}

impl<const N: usize> IntoParams for [Value; N] {
    fn into_params(self) -> Vec<Value> {
        self.into()
    }
}

/// Conversion out of a [`Value`], used by [`Row::try_get`](crate::Row::try_get).
///
/// Conversions are lenient where backends differ in representation: a boolean column read from
/// MySQL or SQLite arrives as 0/1 and converts to `bool`; a timestamp stored as text in SQLite
/// converts to `DateTime<Utc>`.
pub trait FromValue: Sized {
    /// Converts, or says why not.
    fn from_value(v: &Value) -> Result<Self>;
}

fn mismatch<T>(v: &Value, want: &str) -> Result<T> {
    let name = v.type_name();
    let article = if name.starts_with('i') { "an" } else { "a" };
    Err(Error::Conversion(format!(
        "cannot convert {article} {name} value to {want}"
    )))
}

impl FromValue for Value {
    fn from_value(v: &Value) -> Result<Self> {
        Ok(v.clone())
    }
}

/// The integer in `v`, for a conversion to the integer type `want` (named in errors).
fn int_of(v: &Value, want: &str) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(*f as i64),
        Value::Decimal(d) if d.fract().is_zero() => d.to_i64().map_or_else(
            || Err(Error::Conversion(format!("{d} does not fit in {want}"))),
            Ok,
        ),
        Value::Text(s) => s.trim().parse().or_else(|_| mismatch(v, want)),
        _ => mismatch(v, want),
    }
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Result<Self> {
        int_of(v, "i64")
    }
}

/// Integers narrower than `i64`: out-of-range values are refused, never wrapped.
macro_rules! from_value_int {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value) -> Result<Self> {
                let i = int_of(v, stringify!($t))?;
                <$t>::try_from(i).map_err(|_| Error::Conversion(format!(
                    "{i} does not fit in {}", stringify!($t))))
            }
        }
    )*};
}
from_value_int!(i8, i16, i32, u8, u16, u32, usize);

impl FromValue for u64 {
    /// Up to `u64::MAX` from a whole decimal or text; a negative value is refused.
    fn from_value(v: &Value) -> Result<Self> {
        let beyond_i64 = match v {
            Value::Decimal(d) if d.fract().is_zero() && d.is_sign_positive() => d.to_u64(),
            Value::Text(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        if let Some(u) = beyond_i64 {
            return Ok(u);
        }
        let i = int_of(v, "u64")?;
        u64::try_from(i).map_err(|_| Error::Conversion(format!("{i} does not fit in u64")))
    }
}

/// The number in `v`, for a conversion to the float type `want` (named in errors).
fn f64_of(v: &Value, want: &str) -> Result<f64> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Decimal(d) => d.to_f64().map_or_else(|| mismatch(v, want), Ok),
        Value::Text(s) => s.trim().parse().or_else(|_| mismatch(v, want)),
        _ => mismatch(v, want),
    }
}

impl FromValue for f64 {
    fn from_value(v: &Value) -> Result<Self> {
        f64_of(v, "f64")
    }
}

impl FromValue for f32 {
    /// The nearest `f32`; a finite value beyond `f32`'s range is refused (not made infinite).
    fn from_value(v: &Value) -> Result<Self> {
        let f = f64_of(v, "f32")?;
        let narrow = f as f32;
        if f.is_finite() && !narrow.is_finite() {
            return Err(Error::Conversion(format!("{f} does not fit in f32")));
        }
        Ok(narrow)
    }
}

impl FromValue for bool {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Bool(b) => Ok(*b),
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            Value::Text(s) => match s.as_str() {
                "true" | "t" | "1" => Ok(true),
                "false" | "f" | "0" => Ok(false),
                _ => mismatch(v, "bool"),
            },
            _ => mismatch(v, "bool"),
        }
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            Value::Uuid(u) => Ok(u.to_string()),
            Value::Json(serde_json::Value::String(s)) => Ok(s.clone()),
            Value::Json(j) => Ok(j.to_string()),
            Value::Bytes(b) => String::from_utf8(b.clone()).or_else(|_| mismatch(v, "String")),
            Value::Null => mismatch(v, "String"),
            Value::Int(i) => Ok(i.to_string()),
            Value::Float(f) => Ok(f.to_string()),
            Value::Decimal(d) => Ok(d.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Timestamp(_) | Value::Date(_) | Value::Time(_) => match v.to_json() {
                serde_json::Value::String(s) => Ok(s),
                _ => mismatch(v, "String"),
            },
        }
    }
}

impl FromValue for Decimal {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Decimal(d) => Ok(*d),
            Value::Int(i) => Ok(Decimal::from(*i)),
            Value::Float(f) => decimal_from_f64(*f).map_or_else(|| mismatch(v, "Decimal"), Ok),
            Value::Text(s) => parse_decimal(s).map_or_else(|| mismatch(v, "Decimal"), Ok),
            _ => mismatch(v, "Decimal"),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Bytes(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.as_bytes().to_vec()),
            _ => mismatch(v, "Vec<u8>"),
        }
    }
}

impl FromValue for serde_json::Value {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Json(j) => Ok(j.clone()),
            Value::Text(s) => serde_json::from_str(s).or_else(|_| mismatch(v, "JSON")),
            Value::Bytes(b) => serde_json::from_slice(b).or_else(|_| mismatch(v, "JSON")),
            other => Ok(other.to_json()),
        }
    }
}

/// The point in time in `v`, for a conversion to the type `want` (named in errors).
fn timestamp_of(v: &Value, want: &str) -> Result<DateTime<Utc>> {
    match v {
        Value::Timestamp(t) => Ok(*t),
        Value::Text(s) => parse_timestamp(s).map_or_else(|| mismatch(v, want), Ok),
        Value::Date(d) => Ok(d.and_time(NaiveTime::MIN).and_utc()),
        _ => mismatch(v, want),
    }
}

impl FromValue for DateTime<Utc> {
    fn from_value(v: &Value) -> Result<Self> {
        timestamp_of(v, "DateTime<Utc>")
    }
}

impl FromValue for NaiveDateTime {
    /// A UTC timestamp without its offset.
    fn from_value(v: &Value) -> Result<Self> {
        timestamp_of(v, "NaiveDateTime").map(|t| t.naive_utc())
    }
}

impl FromValue for NaiveDate {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Date(d) => Ok(*d),
            Value::Timestamp(t) => Ok(t.date_naive()),
            Value::Text(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .or_else(|| parse_timestamp(s).map(|t| t.date_naive()))
                .map_or_else(|| mismatch(v, "NaiveDate"), Ok),
            _ => mismatch(v, "NaiveDate"),
        }
    }
}

impl FromValue for NaiveTime {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Time(t) => Ok(*t),
            Value::Text(s) => {
                NaiveTime::parse_from_str(s, "%H:%M:%S%.f").or_else(|_| mismatch(v, "NaiveTime"))
            }
            _ => mismatch(v, "NaiveTime"),
        }
    }
}

impl FromValue for Uuid {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Uuid(u) => Ok(*u),
            Value::Text(s) => Uuid::parse_str(s).or_else(|_| mismatch(v, "Uuid")),
            Value::Bytes(b) => Uuid::from_slice(b).or_else(|_| mismatch(v, "Uuid")),
            _ => mismatch(v, "Uuid"),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_primitives_convert_into_values() {
        assert_eq!(Value::from(None::<i32>), Value::Null);
        assert_eq!(Value::from(Some(3_i32)), Value::Int(3));
        assert_eq!(Value::from("a"), Value::Text("a".into()));
        assert_eq!(params![1, 2.5, true].len(), 3);
    }

    #[test]
    fn lenient_conversions_cover_backend_representations() {
        assert!(bool::from_value(&Value::Int(1)).unwrap());
        assert_eq!(i32::from_value(&Value::Int(7)).unwrap(), 7);
        assert!(i8::from_value(&Value::Int(1000)).is_err());
        let t = DateTime::<Utc>::from_value(&Value::Text("2024-01-02 03:04:05".into())).unwrap();
        assert_eq!(format_timestamp(&t), "2024-01-02T03:04:05.000000Z");
        assert!(String::from_value(&Value::Null).is_err());
        assert_eq!(Option::<String>::from_value(&Value::Null).unwrap(), None);
    }
}
