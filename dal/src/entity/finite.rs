//! Finds non-finite floats in a value's serde output. `serde_json` writes `NaN` and the
//! infinities as `null`, so a typed `Option<f64>` holding `Some(f64::NAN)` would be stored as
//! NULL and read back as `None`: the typed layer refuses such a value before writing anything.

use std::fmt;

use serde::ser::{self, Serialize};

/// The first non-finite float anywhere in `value`'s serde output, if any.
pub(crate) fn first_non_finite<T: Serialize + ?Sized>(value: &T) -> Option<f64> {
    match value.serialize(Finder) {
        Err(Found::NonFinite(f)) => Some(f),
        // Nothing found, or the value does not serialize: the real serialization reports that.
        Ok(()) | Err(Found::Other) => None,
    }
}

#[derive(Debug)]
enum Found {
    NonFinite(f64),
    Other,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::NonFinite(x) => write!(f, "non-finite float {x}"),
            Found::Other => f.write_str("serialization error"),
        }
    }
}

impl std::error::Error for Found {}

impl ser::Error for Found {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Found::Other
    }
}

/// A serializer that produces nothing and stops at the first non-finite float.
struct Finder;

fn check(x: f64) -> Result<(), Found> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(Found::NonFinite(x))
    }
}

macro_rules! ignore {
    ($($name:ident($t:ty)),* $(,)?) => {
        $(fn $name(self, _v: $t) -> Result<(), Found> { Ok(()) })*
    };
}

impl ser::Serializer for Finder {
    type Ok = ();
    type Error = Found;
    type SerializeSeq = Finder;
    type SerializeTuple = Finder;
    type SerializeTupleStruct = Finder;
    type SerializeTupleVariant = Finder;
    type SerializeMap = Finder;
    type SerializeStruct = Finder;
    type SerializeStructVariant = Finder;

    ignore!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_f32(self, v: f32) -> Result<(), Found> {
        check(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Found> {
        check(v)
    }
    fn serialize_none(self) -> Result<(), Found> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Found> {
        v.serialize(Finder)
    }
    fn serialize_unit(self) -> Result<(), Found> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Found> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Found> {
        v.serialize(Finder)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        v: &T,
    ) -> Result<(), Found> {
        v.serialize(Finder)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Finder, Found> {
        Ok(Finder)
    }
    fn serialize_tuple(self, _: usize) -> Result<Finder, Found> {
        Ok(Finder)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Finder, Found> {
        Ok(Finder)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Finder, Found> {
        Ok(Finder)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Finder, Found> {
        Ok(Finder)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Finder, Found> {
        Ok(Finder)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Finder, Found> {
        Ok(Finder)
    }
}

/// The compound serializers visit every element with a fresh [`Finder`].
macro_rules! compound {
    ($($tr:ident { $($m:ident($($arg:ty),*)),* }),* $(,)?) => {$(
        impl ser::$tr for Finder {
            type Ok = ();
            type Error = Found;
            $(fn $m<T: Serialize + ?Sized>(&mut self, $(_: $arg,)* v: &T) -> Result<(), Found> {
                v.serialize(Finder)
            })*
            fn end(self) -> Result<(), Found> {
                Ok(())
            }
        }
    )*};
}

compound!(
    SerializeSeq { serialize_element() },
    SerializeTuple { serialize_element() },
    SerializeTupleStruct { serialize_field() },
    SerializeTupleVariant { serialize_field() },
    SerializeStruct { serialize_field(&'static str) },
    SerializeStructVariant { serialize_field(&'static str) },
);

impl ser::SerializeMap for Finder {
    type Ok = ();
    type Error = Found;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Found> {
        k.serialize(Finder)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Found> {
        v.serialize(Finder)
    }
    fn end(self) -> Result<(), Found> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(serde::Serialize)]
    struct Row {
        a: Option<f64>,
        b: Vec<f32>,
        c: BTreeMap<String, (i32, f64)>,
    }

    #[test]
    fn finds_non_finite_floats_anywhere() {
        let ok = Row {
            a: Some(1.5),
            b: vec![0.0, -2.5],
            c: BTreeMap::from([("k".into(), (1, 2.0))]),
        };
        assert_eq!(first_non_finite(&ok), None);
        let nan_in_option = Row {
            a: Some(f64::NAN),
            ..ok
        };
        assert!(first_non_finite(&nan_in_option).is_some_and(f64::is_nan));
        let inf_in_vec = Row {
            a: None,
            b: vec![1.0, f32::INFINITY],
            c: BTreeMap::new(),
        };
        assert_eq!(first_non_finite(&inf_in_vec), Some(f64::INFINITY));
        let in_map = Row {
            a: None,
            b: vec![],
            c: BTreeMap::from([("k".into(), (1, f64::NEG_INFINITY))]),
        };
        assert_eq!(first_non_finite(&in_map), Some(f64::NEG_INFINITY));
    }
}
