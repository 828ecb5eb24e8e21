//! The serde [`Deserializer`]s behind row mapping: [`RowDeserializer`] over a [`Row`] (a struct
//! by column name, a tuple or sequence by position, a map of every column, or — for a row of
//! one column — that column's value) and [`ValueDeserializer`] over one [`Value`].
//!
//! Every scalar goes through dal's [`FromValue`] conversions, so a field reads exactly what
//! [`Row::try_get`](crate::Row::try_get) would give for its type. Nested structs, maps and
//! sequences are read from JSON columns (or JSON text, as SQLite and MySQL hand it back).
//!
//! One thing serde cannot say is *which* type asks for a string: `chrono`'s `DateTime` and
//! `NaiveDateTime` both call `deserialize_str` but accept different text (with and without an
//! offset). The visitor's `expecting` text tells them apart ([`known`]); for the chrono types
//! and `rust_decimal::Decimal` the value is converted with [`FromValue`] first and handed over
//! in the form that type parses.

use std::borrow::Cow;
use std::fmt::{self, Display, Write as _};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::de::value::{SeqDeserializer, StrDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde_json::Value as Json;

use crate::row::Row;
use crate::value::{FromValue, Value};

/// Why a row could not be decoded. Internal: callers get a [`crate::Error`].
#[derive(Debug)]
pub(crate) enum DeError {
    /// The target has a field that no column of the row provides (and it is not an
    /// `Option` or `#[serde(default)]`).
    Missing(&'static str),
    /// Anything else, with the column it happened in once known.
    Message { column: Option<String>, msg: String },
}

impl DeError {
    fn msg(msg: impl Into<String>) -> Self {
        DeError::Message {
            column: None,
            msg: msg.into(),
        }
    }

    /// From a dal conversion error: its message without the `type conversion:` prefix.
    fn conversion(e: crate::Error) -> Self {
        match e {
            crate::Error::Conversion(m) => DeError::msg(m),
            other => DeError::msg(other.to_string()),
        }
    }

    fn json(e: serde_json::Error) -> Self {
        DeError::msg(e.to_string())
    }

    /// Attaches the column the error happened in (the innermost one wins).
    pub(crate) fn in_column(self, column: &str) -> Self {
        match self {
            DeError::Missing(field) => DeError::Message {
                column: Some(column.to_owned()),
                msg: format!("missing field `{field}`"),
            },
            DeError::Message { column: None, msg } => DeError::Message {
                column: Some(column.to_owned()),
                msg,
            },
            located => located,
        }
    }
}

impl Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeError::Missing(field) => write!(f, "missing field `{field}`"),
            DeError::Message {
                column: Some(c),
                msg,
            } => write!(f, "column {c:?}: {msg}"),
            DeError::Message { column: None, msg } => f.write_str(msg),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: Display>(msg: T) -> Self {
        DeError::msg(msg.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::Missing(field)
    }
}

type Res<T> = std::result::Result<T, DeError>;

fn conv<T: FromValue>(v: &Value) -> Res<T> {
    T::from_value(v).map_err(DeError::conversion)
}

// ---------------------------------------------------------------------------------------------
// Types recognised by what their visitor expects
// ---------------------------------------------------------------------------------------------

/// Types whose serde form is a string that dal converts to first (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    /// `chrono::DateTime<Tz>`: RFC 3339 with an offset.
    DateTime,
    /// `chrono::NaiveDateTime`: no offset.
    NaiveDateTime,
    /// `chrono::NaiveDate`.
    NaiveDate,
    /// `chrono::NaiveTime`.
    NaiveTime,
    /// `rust_decimal::Decimal`.
    Decimal,
    /// `serde_json::Value`: JSON text is parsed.
    Json,
}

/// What each known type's visitor says it expects (chrono 0.4, rust_decimal 1).
const EXPECTING: [(&str, Known); 6] = [
    (
        "an RFC 3339 formatted date and time string",
        Known::DateTime,
    ),
    ("a formatted date and time string", Known::NaiveDateTime),
    ("a formatted date string", Known::NaiveDate),
    ("a formatted time string", Known::NaiveTime),
    (
        "a Decimal type representing a fixed-point number",
        Known::Decimal,
    ),
    ("any valid JSON value", Known::Json),
];

/// The start of a visitor's `expecting` text, without allocating: long enough for every
/// entry of [`EXPECTING`]; longer texts are marked as such and match nothing.
struct Expecting {
    buf: [u8; 64],
    len: usize,
    overflow: bool,
}

impl fmt::Write for Expecting {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        match self.buf.get_mut(self.len..end) {
            Some(dst) if !self.overflow => {
                dst.copy_from_slice(s.as_bytes());
                self.len = end;
            }
            _ => self.overflow = true,
        }
        Ok(())
    }
}

/// Which known type `visitor` builds, if any.
fn known<'de, V: Visitor<'de>>(visitor: &V) -> Option<Known> {
    struct Expects<'a, V>(&'a V);
    impl<'de, V: Visitor<'de>> Display for Expects<'_, V> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.expecting(f)
        }
    }
    let mut e = Expecting {
        buf: [0; 64],
        len: 0,
        overflow: false,
    };
    if write!(e, "{}", Expects(visitor)).is_err() || e.overflow {
        return None;
    }
    let text = e.buf.get(..e.len)?;
    EXPECTING
        .iter()
        .find(|(t, _)| t.as_bytes() == text)
        .map(|(_, k)| *k)
}

/// `v` converted for the known type `k`, as text that type parses.
fn known_text(k: Known, v: &Value) -> Res<String> {
    Ok(match k {
        Known::DateTime => conv::<DateTime<Utc>>(v)?.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        Known::NaiveDateTime => conv::<NaiveDateTime>(v)?
            .format("%Y-%m-%dT%H:%M:%S%.f")
            .to_string(),
        Known::NaiveDate => conv::<NaiveDate>(v)?.format("%Y-%m-%d").to_string(),
        Known::NaiveTime => conv::<NaiveTime>(v)?.format("%H:%M:%S%.f").to_string(),
        Known::Decimal => conv::<Decimal>(v)?.to_string(),
        Known::Json => conv::<String>(v)?,
    })
}

/// `s` parsed, when it is a JSON object or array (as SQLite keeps JSON columns).
fn json_document(s: &str) -> Option<Json> {
    let t = s.trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        serde_json::from_str(t).ok()
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// One value
// ---------------------------------------------------------------------------------------------

/// Deserializes one [`Value`]: scalars through [`FromValue`], `Option` from `Null`, unit enum
/// variants from text, structs, maps and sequences from JSON (a `Bytes` value is a sequence
/// of bytes).
pub(crate) struct ValueDeserializer<'de> {
    v: &'de Value,
}

impl<'de> ValueDeserializer<'de> {
    pub(crate) fn new(v: &'de Value) -> Self {
        ValueDeserializer { v }
    }

    /// The value as a JSON document: a JSON column as is, JSON text parsed.
    fn json(&self) -> Res<Cow<'de, Json>> {
        match self.v {
            Value::Json(j) => Ok(Cow::Borrowed(j)),
            other => conv::<Json>(other).map(Cow::Owned),
        }
    }

    fn bytes<V: Visitor<'de>>(b: &'de [u8], visitor: V) -> Res<V::Value> {
        let mut seq = SeqDeserializer::<_, DeError>::new(b.iter().copied());
        let out = visitor.visit_seq(&mut seq)?;
        seq.end()?;
        Ok(out)
    }

    fn unexpected(&self) -> de::Unexpected<'de> {
        use de::Unexpected as U;
        match self.v {
            Value::Null => U::Unit,
            Value::Bool(b) => U::Bool(*b),
            Value::Int(i) => U::Signed(*i),
            Value::Float(f) => U::Float(*f),
            Value::Text(s) => U::Str(s),
            Value::Bytes(b) => U::Bytes(b),
            other => U::Other(other.type_name()),
        }
    }
}

/// Methods that read the value as a JSON document.
macro_rules! via_json {
    ($($method:ident($($arg:ident: $t:ty),*)),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $t,)* visitor: V) -> Res<V::Value> {
            match self.json()? {
                Cow::Borrowed(j) => j.$method($($arg,)* visitor),
                Cow::Owned(j) => j.$method($($arg,)* visitor),
            }
            .map_err(DeError::json)
        }
    )*};
}

/// Integer and float methods: through the type's [`FromValue`].
macro_rules! via_from_value {
    ($($method:ident => $visit:ident($t:ty)),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
            visitor.$visit(conv::<$t>(self.v)?)
        }
    )*};
}

impl<'de> Deserializer<'de> for ValueDeserializer<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match (known(&visitor), self.v) {
            // JSON text (SQLite keeps JSON columns as text) is parsed, as `try_get` does;
            // text that is not JSON stays a string.
            (Some(Known::Json), Value::Text(s)) => {
                if let Ok(j) = serde_json::from_str::<Json>(s) {
                    return j.deserialize_any(visitor).map_err(DeError::json);
                }
            }
            (Some(Known::Json), _) | (None, _) => {}
            (Some(k), v) => return visitor.visit_string(known_text(k, v)?),
        }
        match self.v {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Text(s) => visitor.visit_borrowed_str(s),
            Value::Bytes(b) => Self::bytes(b, visitor),
            Value::Json(j) => j.deserialize_any(visitor).map_err(DeError::json),
            Value::Decimal(_)
            | Value::Timestamp(_)
            | Value::Date(_)
            | Value::Time(_)
            | Value::Uuid(_) => visitor.visit_string(conv::<String>(self.v)?),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_bool(conv::<bool>(self.v)?)
    }

    via_from_value! {
        deserialize_i8 => visit_i8(i8),
        deserialize_i16 => visit_i16(i16),
        deserialize_i32 => visit_i32(i32),
        deserialize_i64 => visit_i64(i64),
        deserialize_u8 => visit_u8(u8),
        deserialize_u16 => visit_u16(u16),
        deserialize_u32 => visit_u32(u32),
        deserialize_u64 => visit_u64(u64),
        deserialize_f32 => visit_f32(f32),
        deserialize_f64 => visit_f64(f64),
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_i128(i128::from(conv::<i64>(self.v)?))
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_u128(u128::from(conv::<u64>(self.v)?))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        let s = conv::<String>(self.v)?;
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(DeError::msg(format!(
                "cannot convert text of {} characters to char",
                s.chars().count()
            ))),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        if let Some(k) = known(&visitor) {
            return visitor.visit_string(known_text(k, self.v)?);
        }
        match self.v {
            Value::Text(s) | Value::Json(Json::String(s)) => visitor.visit_borrowed_str(s),
            // Text in a binary column, or bytes for a type that takes them (`Uuid`).
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => visitor.visit_borrowed_str(s),
                Err(_) => visitor.visit_borrowed_bytes(b),
            },
            other => visitor.visit_string(conv::<String>(other)?),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match self.v {
            Value::Bytes(b) => visitor.visit_borrowed_bytes(b),
            Value::Text(s) => visitor.visit_borrowed_bytes(s.as_bytes()),
            other => visitor.visit_byte_buf(conv::<Vec<u8>>(other)?),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match self.v {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match self.v {
            Value::Null => visitor.visit_unit(),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Res<V::Value> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Res<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match self.v {
            Value::Bytes(b) => Self::bytes(b, visitor),
            _ => match self.json()? {
                Cow::Borrowed(j) => j.deserialize_seq(visitor),
                Cow::Owned(j) => j.deserialize_seq(visitor),
            }
            .map_err(DeError::json),
        }
    }

    via_json! {
        deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_map(),
        deserialize_struct(name: &'static str, fields: &'static [&'static str]),
    }

    /// Unit variants from text (`"Active"`); other variants from JSON (`{"Moved": {..}}`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Res<V::Value> {
        match self.v {
            Value::Text(s) | Value::Json(Json::String(s)) if json_document(s).is_none() => {
                visitor.visit_enum(StrDeserializer::<DeError>::new(s))
            }
            Value::Text(_) | Value::Json(_) | Value::Bytes(_) => match self.json()? {
                Cow::Borrowed(j) => j.deserialize_enum(name, variants, visitor),
                Cow::Owned(j) => j.deserialize_enum(name, variants, visitor),
            }
            .map_err(DeError::json),
            _ => Err(DeError::msg(format!(
                "cannot convert {} value to the enum {name} (its variants are stored as text)",
                match self.v.type_name() {
                    t @ "int" => format!("an {t}"),
                    t => format!("a {t}"),
                }
            ))),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_unit()
    }
}

// ---------------------------------------------------------------------------------------------
// One row
// ---------------------------------------------------------------------------------------------

/// Deserializes a [`Row`]: a struct by column name (exact, then ASCII case-insensitive;
/// columns the struct does not name are ignored), a tuple or sequence by position, a map of
/// every column, `Option<T>` (`None` for a row whose only column is null), and — for a row of
/// exactly one column — anything a single value gives (`i64` for `SELECT COUNT(*)`).
pub(crate) struct RowDeserializer<'de> {
    row: &'de Row,
}

impl<'de> RowDeserializer<'de> {
    pub(crate) fn new(row: &'de Row) -> Self {
        RowDeserializer { row }
    }

    /// The only column, for a target that is one value.
    fn single(&self, what: &str) -> Res<(&'de str, ValueDeserializer<'de>)> {
        match (self.row.columns(), self.row.values()) {
            ([name], [v]) => Ok((name, ValueDeserializer::new(v))),
            (cols, _) => Err(DeError::msg(format!(
                "a row of {} columns cannot be decoded into {what}, which takes one column; \
                 decode into a struct (columns by name) or a tuple (columns by position)",
                cols.len()
            ))),
        }
    }

    fn positions<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        let mut seq = Positions {
            row: self.row,
            next: 0,
        };
        visitor.visit_seq(&mut seq)
    }

    fn tuple_of<V: Visitor<'de>>(self, len: usize, visitor: V) -> Res<V::Value> {
        if len != self.row.len() {
            return Err(DeError::msg(format!(
                "the row has {} column(s) but the tuple has {len} element(s)",
                self.row.len()
            )));
        }
        self.positions(visitor)
    }
}

/// Methods that take the row's one column.
macro_rules! one_column {
    ($($method:ident($($arg:ident: $t:ty),*) => $what:literal),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $t,)* visitor: V) -> Res<V::Value> {
            let (name, v) = self.single($what)?;
            v.$method($($arg,)* visitor).map_err(|e| e.in_column(name))
        }
    )*};
}

impl<'de> Deserializer<'de> for RowDeserializer<'de> {
    type Error = DeError;

    /// Self-describing targets (`serde_json::Value`, `HashMap<String, _>`): the row is a map;
    /// but a `Decimal` (which asks for any value) takes the only column.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        if known(&visitor) == Some(Known::Decimal) {
            let (name, v) = self.single("a decimal")?;
            return v.deserialize_any(visitor).map_err(|e| e.in_column(name));
        }
        self.deserialize_map(visitor)
    }

    one_column! {
        deserialize_bool() => "bool",
        deserialize_i8() => "i8",
        deserialize_i16() => "i16",
        deserialize_i32() => "i32",
        deserialize_i64() => "i64",
        deserialize_i128() => "i128",
        deserialize_u8() => "u8",
        deserialize_u16() => "u16",
        deserialize_u32() => "u32",
        deserialize_u64() => "u64",
        deserialize_u128() => "u128",
        deserialize_f32() => "f32",
        deserialize_f64() => "f64",
        deserialize_char() => "char",
        deserialize_str() => "a string",
        deserialize_string() => "a string",
        deserialize_bytes() => "bytes",
        deserialize_byte_buf() => "bytes",
        deserialize_identifier() => "an identifier",
        deserialize_enum(name: &'static str, variants: &'static [&'static str]) => "an enum",
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match self.row.values() {
            [Value::Null] => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Res<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Res<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        self.positions(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Res<V::Value> {
        self.tuple_of(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Res<V::Value> {
        self.tuple_of(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_map(Columns {
            row: self.row,
            next: 0,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Res<V::Value> {
        visitor.visit_map(Fields {
            row: self.row,
            fields,
            next: 0,
            pending: None,
            taken: Vec::new(),
        })
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_unit()
    }
}

/// A struct's fields, each from the column of its name; fields with no column are not
/// offered, so serde applies `Option` (`None`), `#[serde(default)]` or reports them missing.
struct Fields<'de> {
    row: &'de Row,
    fields: &'static [&'static str],
    next: usize,
    /// The column of the field just offered.
    pending: Option<usize>,
    /// Columns already offered (a field and its alias may name the same column).
    taken: Vec<usize>,
}

impl<'de> MapAccess<'de> for Fields<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Res<Option<K::Value>> {
        while let Some(&field) = self.fields.get(self.next) {
            self.next += 1;
            let Some(i) = self.row.position(field) else {
                continue;
            };
            if self.taken.contains(&i) {
                continue;
            }
            self.taken.push(i);
            self.pending = Some(i);
            let key: StrDeserializer<'static, DeError> = field.into_deserializer();
            return seed.deserialize(key).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Res<S::Value> {
        let i = self
            .pending
            .take()
            .ok_or_else(|| DeError::msg("a value was asked for before its field"))?;
        column_value(self.row, i, seed)
    }
}

/// `seed` from column `i`, errors naming the column.
fn column_value<'de, S: DeserializeSeed<'de>>(row: &'de Row, i: usize, seed: S) -> Res<S::Value> {
    let (Some(name), Some(v)) = (row.columns().get(i), row.values().get(i)) else {
        return Err(DeError::msg(format!("no column #{i}")));
    };
    seed.deserialize(ValueDeserializer::new(v))
        .map_err(|e| e.in_column(name))
}

/// Every column, by name, in order.
struct Columns<'de> {
    row: &'de Row,
    next: usize,
}

impl<'de> MapAccess<'de> for Columns<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Res<Option<K::Value>> {
        match self.row.columns().get(self.next) {
            Some(name) => {
                let key: StrDeserializer<'de, DeError> = name.as_str().into_deserializer();
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Res<S::Value> {
        let i = self.next;
        self.next += 1;
        column_value(self.row, i, seed)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.row.len().saturating_sub(self.next))
    }
}

/// Every column, by position.
struct Positions<'de> {
    row: &'de Row,
    next: usize,
}

impl<'de> SeqAccess<'de> for Positions<'de> {
    type Error = DeError;

    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Res<Option<S::Value>> {
        if self.next >= self.row.len() {
            return Ok(None);
        }
        let i = self.next;
        self.next += 1;
        column_value(self.row, i, seed).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.row.len().saturating_sub(self.next))
    }
}

// ---------------------------------------------------------------------------------------------
// A JSON object, field by field (typed entities)
// ---------------------------------------------------------------------------------------------

/// `T` from a JSON object, as `serde_json::from_value` would build it, except that an error
/// in a field's value names the field. Used to read typed entities.
pub(crate) fn from_json_fields<T: de::DeserializeOwned>(
    fields: serde_json::Map<String, Json>,
) -> std::result::Result<T, JsonFieldError> {
    T::deserialize(JsonFields {
        iter: fields.into_iter(),
        pending: None,
    })
    .map_err(|e| match e {
        DeError::Missing(field) => JsonFieldError {
            field: None,
            msg: format!("missing field `{field}`"),
        },
        DeError::Message { column, msg } => JsonFieldError { field: column, msg },
    })
}

/// Why [`from_json_fields`] failed, and in which field's value when that is known.
#[derive(Debug)]
pub(crate) struct JsonFieldError {
    pub(crate) field: Option<String>,
    pub(crate) msg: String,
}

struct JsonFields {
    iter: serde_json::map::IntoIter,
    pending: Option<(String, Json)>,
}

impl<'de> Deserializer<'de> for JsonFields {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        visitor.visit_map(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'de> MapAccess<'de> for JsonFields {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Res<Option<K::Value>> {
        let Some((key, value)) = self.iter.next() else {
            return Ok(None);
        };
        let out = seed.deserialize(StrDeserializer::<DeError>::new(&key))?;
        self.pending = Some((key, value));
        Ok(Some(out))
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Res<S::Value> {
        let (key, value) = self
            .pending
            .take()
            .ok_or_else(|| DeError::msg("a value was asked for before its field"))?;
        seed.deserialize(FieldValue(value))
            .map_err(|e| e.in_column(&key))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// One field's JSON value: as `serde_json` reads it, except that an `f32` refuses a finite
/// number beyond its range (serde_json would make it infinite).
struct FieldValue(Json);

/// Methods handed to the JSON value as they are.
macro_rules! to_json_value {
    ($($method:ident($($arg:ident: $t:ty),*)),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $t,)* visitor: V) -> Res<V::Value> {
            self.0.$method($($arg,)* visitor).map_err(DeError::json)
        }
    )*};
}

impl<'de> Deserializer<'de> for FieldValue {
    type Error = DeError;

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        if let Some(f) = self.0.as_f64() {
            if f.is_finite() && !(f as f32).is_finite() {
                return Err(DeError::msg(format!("{f} does not fit in f32")));
            }
        }
        self.0.deserialize_f32(visitor).map_err(DeError::json)
    }

    to_json_value! {
        deserialize_any(), deserialize_bool(), deserialize_i8(), deserialize_i16(),
        deserialize_i32(), deserialize_i64(), deserialize_i128(), deserialize_u8(),
        deserialize_u16(), deserialize_u32(), deserialize_u64(), deserialize_u128(),
        deserialize_f64(), deserialize_char(), deserialize_str(), deserialize_string(),
        deserialize_bytes(), deserialize_byte_buf(), deserialize_option(), deserialize_unit(),
        deserialize_unit_struct(name: &'static str),
        deserialize_newtype_struct(name: &'static str),
        deserialize_seq(), deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize), deserialize_map(),
        deserialize_struct(name: &'static str, fields: &'static [&'static str]),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
        deserialize_identifier(), deserialize_ignored_any(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<T: de::DeserializeOwned>(v: Value) -> Res<T> {
        T::deserialize(ValueDeserializer::new(&v))
    }

    fn row(cells: &[(&str, Value)]) -> Row {
        Row::new(
            cells.iter().map(|(c, _)| (*c).to_owned()).collect(),
            cells.iter().map(|(_, v)| v.clone()).collect(),
        )
    }

    fn decode<T: de::DeserializeOwned>(r: &Row) -> Res<T> {
        T::deserialize(RowDeserializer::new(r))
    }

    #[test]
    fn serde_attributes_work_on_rows() {
        use serde::Deserialize;
        use std::collections::HashMap;

        #[derive(Debug, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Strict {
            #[serde(alias = "full_name")]
            name: String,
            #[serde(default)]
            n: i64,
        }
        let r = row(&[("full_name", Value::from("a")), ("extra", Value::Int(1))]);
        assert_eq!(
            decode::<Strict>(&r).unwrap(),
            Strict {
                name: "a".into(),
                n: 0
            }
        );

        #[derive(Debug, PartialEq, Deserialize)]
        struct Flat {
            id: i64,
            #[serde(flatten)]
            rest: HashMap<String, Json>,
        }
        let r = row(&[("id", Value::Int(1)), ("n", Value::Int(2))]);
        let flat = decode::<Flat>(&r).unwrap();
        assert_eq!((flat.id, &flat.rest["n"]), (1, &serde_json::json!(2)));

        #[derive(Debug, PartialEq, Deserialize)]
        #[serde(tag = "kind")]
        enum Shape {
            Circle { r: f64 },
        }
        let r = row(&[("kind", Value::from("Circle")), ("r", Value::Int(2))]);
        assert_eq!(decode::<Shape>(&r).unwrap(), Shape::Circle { r: 2.0 });

        #[derive(Debug, PartialEq, Deserialize)]
        #[serde(untagged)]
        enum IdOrName {
            Id(i64),
            Name(String),
        }
        let r = row(&[("a", Value::Int(5)), ("b", Value::from("five"))]);
        assert_eq!(
            decode::<(IdOrName, IdOrName)>(&r).unwrap(),
            (IdOrName::Id(5), IdOrName::Name("five".into()))
        );
    }

    #[test]
    fn chrono_and_decimal_visitors_are_recognised() {
        use serde::Deserialize;
        struct Probe;
        impl<'de> Deserializer<'de> for Probe {
            type Error = DeError;
            fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
                Err(DeError::msg(format!("{:?}", known(&visitor))))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
                struct enum identifier ignored_any
            }
        }
        let probe = |r: std::result::Result<(), DeError>| r.err().map(|e| e.to_string());
        assert_eq!(
            probe(DateTime::<Utc>::deserialize(Probe).map(drop)).as_deref(),
            Some("Some(DateTime)")
        );
        assert_eq!(
            probe(NaiveDateTime::deserialize(Probe).map(drop)).as_deref(),
            Some("Some(NaiveDateTime)")
        );
        assert_eq!(
            probe(NaiveDate::deserialize(Probe).map(drop)).as_deref(),
            Some("Some(NaiveDate)")
        );
        assert_eq!(
            probe(NaiveTime::deserialize(Probe).map(drop)).as_deref(),
            Some("Some(NaiveTime)")
        );
        assert_eq!(
            probe(<Decimal as Deserialize>::deserialize(Probe).map(drop)).as_deref(),
            Some("Some(Decimal)")
        );
        assert_eq!(
            probe(String::deserialize(Probe).map(drop)).as_deref(),
            Some("None")
        );
    }

    #[test]
    fn timestamps_in_any_form_reach_both_chrono_types() {
        let text = Value::Text("2024-05-01T12:30:45.5Z".into());
        let naive: NaiveDateTime = value(text.clone()).unwrap();
        assert_eq!(naive.to_string(), "2024-05-01 12:30:45.500");
        let utc: DateTime<Utc> = value(Value::Text("2024-05-01 12:30:45".into())).unwrap();
        assert_eq!(utc.to_rfc3339(), "2024-05-01T12:30:45+00:00");
        let back: NaiveDateTime = value(Value::Timestamp(utc)).unwrap();
        assert_eq!(back, utc.naive_utc());
        let day: NaiveDate = value(text).unwrap();
        assert_eq!(day.to_string(), "2024-05-01");
    }

    #[test]
    fn json_values_read_json_text_and_keep_other_text() {
        let doc: Json = value(Value::Text(r#"{"a": [1, null]}"#.into())).unwrap();
        assert_eq!(doc, serde_json::json!({"a": [1, null]}));
        let plain: Json = value(Value::Text("{not json".into())).unwrap();
        assert_eq!(plain, Json::String("{not json".into()));
        let n: Json = value(Value::Text("123".into())).unwrap();
        assert_eq!(n, serde_json::json!(123));
        let quoted: Json = value(Value::Text(r#""[a]""#.into())).unwrap();
        assert_eq!(quoted, Json::String("[a]".into()));
        let d: Json = value(Value::Date(NaiveDate::from_ymd_opt(2024, 1, 2).unwrap())).unwrap();
        assert_eq!(d, Json::String("2024-01-02".into()));
    }

    #[test]
    fn scalars_refuse_out_of_range_values() {
        let e = value::<u32>(Value::Int(-1)).unwrap_err().to_string();
        assert_eq!(e, "-1 does not fit in u32");
        let e = value::<i16>(Value::Text("x".into()))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "cannot convert a text value to i16");
        assert_eq!(
            value::<u64>(Value::Decimal(Decimal::from(u64::MAX))).unwrap(),
            u64::MAX
        );
        assert!(value::<f32>(Value::Float(1e300)).is_err());
        assert!(value::<char>(Value::Text("ab".into())).is_err());
        assert_eq!(value::<char>(Value::Text("é".into())).unwrap(), 'é');
    }
}
