//! JSON ⇄ [`Value`] ⇄ column, driven by each field's logical [`FieldType`].

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, Timelike, Utc};
use serde_json::Value as Json;

use super::typed::FieldType;
use crate::error::{Error, Result};
use crate::value::{decimal_from_f64, parse_decimal, parse_timestamp, Value};

/// Largest integer an `f64` holds exactly.
pub(crate) const F64_EXACT_INT: i64 = 1 << 53;

/// The logical type a first value suggests, or `None` for `null` (no column until a value comes).
pub(crate) fn infer(v: &Json) -> Option<FieldType> {
    Some(match v {
        Json::Null => return None,
        Json::Bool(_) => FieldType::Bool,
        Json::Number(n) if n.is_i64() => FieldType::Int,
        // Beyond i64: keep it exact as a JSON number.
        Json::Number(n) if n.is_u64() => FieldType::Json,
        Json::Number(_) => FieldType::Float,
        Json::String(s) if looks_like_timestamp(s) => FieldType::Timestamp,
        Json::String(_) => FieldType::Text,
        Json::Array(_) | Json::Object(_) => FieldType::Json,
    })
}

/// The logical type of a typed field the derive could not see through (an alias, a newtype,
/// an enum), from its first value: like [`infer`], except that strings are always text — a
/// value of the user's own type is never reinterpreted as a timestamp.
pub(crate) fn infer_declared(v: &Json) -> Option<FieldType> {
    match v {
        Json::String(_) => Some(FieldType::Text),
        other => infer(other),
    }
}

/// RFC 3339 date-time with a `T` and an offset, e.g. `2024-05-01T12:00:00Z`.
fn looks_like_timestamp(s: &str) -> bool {
    s.len() >= 20 && s.as_bytes().get(10) == Some(&b'T') && DateTime::parse_from_rfc3339(s).is_ok()
}

/// Timestamps are kept with microsecond precision, in UTC.
fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = t.nanosecond() / 1_000 * 1_000;
    t.with_nanosecond(nanos).unwrap_or(t)
}

/// The canonical text of a stored timestamp: RFC 3339, UTC, `Z`, as many fraction digits as
/// needed (0, 3 or 6).
pub(crate) fn timestamp_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// What to do when a value does not fit its field's type.
pub(crate) enum Fit {
    /// Store this.
    Value(Value),
    /// The field must first be widened from integers to floats (lossless).
    Widen,
}

/// True when `v` fits an `Int` field only after widening it to `Float` (cheap check, no
/// conversion).
pub(crate) fn needs_widening(ty: FieldType, v: &Json) -> bool {
    ty == FieldType::Int && matches!(v, Json::Number(n) if n.is_f64())
}

/// Converts a JSON value for a field of type `ty`.
pub(crate) fn to_column(field: &str, ty: FieldType, v: &Json) -> Result<Fit> {
    let reject = || {
        Err(Error::Entity(format!(
            "field {field:?} holds {} values; {} cannot be stored there without losing it \
             (use a new field name, or convert the value)",
            ty.as_str(),
            describe(v)
        )))
    };
    Ok(Fit::Value(match (ty, v) {
        (_, Json::Null) => Value::Null,
        (FieldType::Json, v) => Value::Json(v.clone()),
        (FieldType::Int, Json::Number(n)) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None if n.is_f64() => return Ok(Fit::Widen),
            // A `u64` beyond `i64::MAX`: refused, never wrapped to a negative number.
            None => {
                return Err(Error::Entity(format!(
                    "field {field:?} holds 64-bit signed integers: {n} is above their maximum \
                     ({}) and cannot be stored",
                    i64::MAX
                )))
            }
        },
        (FieldType::Float, Json::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) if i.abs() <= F64_EXACT_INT => Value::Float(i as f64),
            (None, Some(f)) if !n.is_u64() => Value::Float(f),
            _ => return reject(),
        },
        (FieldType::Bool, Json::Bool(b)) => Value::Bool(*b),
        (FieldType::Text, Json::String(s)) => Value::Text(s.clone()),
        (FieldType::Timestamp, Json::String(s)) => match parse_timestamp(s) {
            Some(t) => Value::Timestamp(truncate_micros(t)),
            None => return reject(),
        },
        (FieldType::Date, Json::String(s)) => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(d) => Value::Date(d),
            Err(_) => return reject(),
        },
        (FieldType::Time, Json::String(s)) => match NaiveTime::parse_from_str(s, "%H:%M:%S%.f") {
            Ok(t) => Value::Time(t),
            Err(_) => return reject(),
        },
        (FieldType::Uuid, Json::String(s)) => match uuid::Uuid::parse_str(s) {
            Ok(u) => Value::Uuid(u),
            Err(_) => return reject(),
        },
        (FieldType::Decimal, Json::String(s)) => match parse_decimal(s) {
            Some(d) => Value::Decimal(d),
            None => return reject(),
        },
        (FieldType::Decimal, Json::Number(n)) => match parse_decimal(&n.to_string()) {
            Some(d) => Value::Decimal(d),
            None => return reject(),
        },
        (FieldType::Bytes, Json::Array(items)) => {
            let bytes: Option<Vec<u8>> = items
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            match bytes {
                Some(b) => Value::Bytes(b),
                None => return reject(),
            }
        }
        _ => return reject(),
    }))
}

fn describe(v: &Json) -> String {
    let kind = match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_i64() => "an integer",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    };
    let mut text = v.to_string();
    if text.len() > 40 {
        let cut = (0..=40)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    format!("{kind} ({text})")
}

/// Converts a stored value back to JSON for a field of type `ty`.
pub(crate) fn from_column(ty: FieldType, v: Value) -> Result<Json> {
    Ok(match (ty, v) {
        (_, Value::Null) => Json::Null,
        (FieldType::Int, Value::Int(i)) => Json::from(i),
        (FieldType::Int, Value::Float(f)) if f.fract() == 0.0 => Json::from(f as i64),
        (FieldType::Float, Value::Float(f)) => float_json(f),
        (FieldType::Float, Value::Int(i)) => float_json(i as f64),
        (FieldType::Bool, Value::Bool(b)) => Json::Bool(b),
        (FieldType::Bool, Value::Int(i)) => Json::Bool(i != 0),
        (FieldType::Timestamp, Value::Timestamp(t)) => Json::String(timestamp_text(&t)),
        (FieldType::Timestamp, Value::Text(s)) => match parse_timestamp(&s) {
            Some(t) => Json::String(timestamp_text(&t)),
            None => Json::String(s),
        },
        (FieldType::Json, Value::Json(j)) => j,
        (FieldType::Json, Value::Text(s)) => serde_json::from_str(&s)
            .map_err(|e| Error::Conversion(format!("stored JSON is not valid: {e}")))?,
        (FieldType::Json, Value::Bytes(b)) => serde_json::from_slice(&b)
            .map_err(|e| Error::Conversion(format!("stored JSON is not valid: {e}")))?,
        (FieldType::Decimal, v) => match decimal_of(&v) {
            Some(d) => Json::String(d.normalize().to_string()),
            None => v.to_json(),
        },
        (FieldType::Bytes, Value::Bytes(b)) => Json::Array(b.into_iter().map(Json::from).collect()),
        (FieldType::Date, Value::Date(d)) => Json::String(d.format("%Y-%m-%d").to_string()),
        (FieldType::Time, Value::Time(t)) => Json::String(t.format("%H:%M:%S%.f").to_string()),
        (_, Value::Text(s)) => Json::String(s),
        (_, Value::Uuid(u)) => Json::String(u.to_string()),
        (_, other) => other.to_json(),
    })
}

/// A stored decimal, whichever way the backend handed it back (SQLite: as a number).
fn decimal_of(v: &Value) -> Option<rust_decimal::Decimal> {
    match v {
        Value::Decimal(d) => Some(*d),
        Value::Int(i) => Some(rust_decimal::Decimal::from(*i)),
        Value::Float(f) => decimal_from_f64(*f),
        Value::Text(s) => parse_decimal(s),
        _ => None,
    }
}

fn float_json(f: f64) -> Json {
    serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inference_from_first_values() {
        assert_eq!(infer(&json!(5)), Some(FieldType::Int));
        assert_eq!(infer(&json!(5.5)), Some(FieldType::Float));
        assert_eq!(infer(&json!(u64::MAX)), Some(FieldType::Json));
        assert_eq!(
            infer(&json!("2024-05-01T12:00:00Z")),
            Some(FieldType::Timestamp)
        );
        assert_eq!(infer(&json!("2024-05-01")), Some(FieldType::Text));
        assert_eq!(infer(&json!({"a": 1})), Some(FieldType::Json));
        assert_eq!(infer(&json!(null)), None);
    }

    #[test]
    fn mismatches_widen_or_reject() {
        assert!(matches!(
            to_column("p", FieldType::Int, &json!(1.5)),
            Ok(Fit::Widen)
        ));
        assert!(matches!(
            to_column("p", FieldType::Float, &json!(2)),
            Ok(Fit::Value(Value::Float(_)))
        ));
        let e = to_column("name", FieldType::Text, &json!(3)).err().unwrap();
        assert!(e.to_string().contains("\"name\""), "{e}");
        assert!(to_column("b", FieldType::Bool, &json!("yes")).is_err());
    }

    #[test]
    fn timestamps_are_canonical_utc_micros() {
        let Fit::Value(Value::Timestamp(t)) = to_column(
            "t",
            FieldType::Timestamp,
            &json!("2024-05-01T14:00:00.123456789+02:00"),
        )
        .unwrap() else {
            panic!("not a timestamp")
        };
        assert_eq!(timestamp_text(&t), "2024-05-01T12:00:00.123456Z");
    }
}
