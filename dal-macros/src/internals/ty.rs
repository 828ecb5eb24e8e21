//! The type model: what a field's Rust type says about its column — the logical type
//! ([`Kind`], `dal::entity::FieldType`), nullability, naive timestamps — or that no column can
//! hold it ([`Unsupported`]). Pure functions of the type; `ast` records their answer for each
//! field and `check` reports the unsupported ones.

use syn::ext::IdentExt;
use syn::{GenericArgument, PathArguments, Type};

/// The logical types of `dal::entity::FieldType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Float,
    Bool,
    Text,
    Timestamp,
    Date,
    Time,
    Uuid,
    Json,
    Decimal,
    Bytes,
}

/// `#[entity(type = "...")]` spellings (`FieldType::as_str`).
const KIND_NAMES: [(&str, Kind); 11] = [
    ("int", Kind::Int),
    ("float", Kind::Float),
    ("bool", Kind::Bool),
    ("text", Kind::Text),
    ("timestamp", Kind::Timestamp),
    ("date", Kind::Date),
    ("time", Kind::Time),
    ("uuid", Kind::Uuid),
    ("json", Kind::Json),
    ("decimal", Kind::Decimal),
    ("bytes", Kind::Bytes),
];

impl Kind {
    /// The spellings `#[entity(type = "...")]` accepts, for error messages.
    pub(crate) const ATTR_NAMES: &'static str =
        "int, float, bool, text, timestamp, date, time, uuid, json, decimal, bytes";

    /// The kind spelled `s` in `#[entity(type = "...")]`.
    pub(crate) fn from_attr(s: &str) -> Option<Kind> {
        KIND_NAMES.iter().find(|(n, _)| *n == s).map(|(_, k)| *k)
    }

    /// By the last path segment, so `chrono::DateTime<Utc>` and `DateTime<Utc>` agree. `None`
    /// for a name the derive cannot see through (a type alias, a newtype, an enum or struct of
    /// the user's): the runtime decides from the serde output.
    fn of_type_name(name: &str) -> Option<Kind> {
        Some(match name {
            "i8" | "i16" | "i32" | "i64" | "isize" | "u8" | "u16" | "u32" | "u64" | "usize" => {
                Kind::Int
            }
            "f32" | "f64" => Kind::Float,
            "bool" => Kind::Bool,
            "String" | "str" | "char" => Kind::Text,
            "DateTime" | "NaiveDateTime" => Kind::Timestamp,
            "NaiveDate" => Kind::Date,
            "NaiveTime" => Kind::Time,
            "Uuid" => Kind::Uuid,
            "Decimal" => Kind::Decimal,
            "Vec" | "VecDeque" | "HashMap" | "BTreeMap" | "HashSet" | "BTreeSet" | "Value"
            | "Map" => Kind::Json,
            _ => return None,
        })
    }
}

/// What the Rust type of a field says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Inferred {
    /// `None`: a type the derive cannot see through.
    pub kind: Option<Kind>,
    /// `Option<T>`.
    pub nullable: bool,
    /// `chrono::NaiveDateTime` (through `Option` and `Box`).
    pub naive_timestamp: bool,
}

/// A field type no column can hold.
pub(crate) struct Unsupported<'a> {
    /// The innermost offending type (`(i32, i32)` in `Option<(i32, i32)>`).
    pub ty: &'a Type,
    /// What it is: "a tuple".
    pub what: &'static str,
    /// How to store it instead, with its leading `; `, or empty.
    pub hint: &'static str,
}

/// What the type `ty` says: its logical type, whether it is nullable (`Option<T>`), whether it
/// is a `NaiveDateTime`. `Box<T>` is looked through (serde does the same). `forced` (the type
/// is given by `#[entity(json)]` or `#[entity(type = "...")]`) also admits tuples and arrays,
/// which serde writes as JSON arrays.
pub(crate) fn infer(ty: &Type, forced: bool) -> Result<Inferred, Unsupported<'_>> {
    let unsupported = |what, hint| Err(Unsupported { ty, what, hint });
    let opaque = Ok(Inferred {
        kind: None,
        nullable: false,
        naive_timestamp: false,
    });
    const OWNED: &str = "; use an owned type (`String` for `&str`, `Vec<T>` for `&[T]`)";
    const COMPOSITE: &str =
        "; use a struct or a `Vec`, or add `#[entity(json)]` to store it as a JSON array";
    match ty {
        Type::Group(g) => infer(&g.elem, forced),
        Type::Paren(p) => infer(&p.elem, forced),
        Type::Path(p) => {
            let Some(last) = p.path.segments.last() else {
                return opaque;
            };
            let name = last.ident.unraw().to_string();
            if p.qself.is_none() {
                if let Some(inner) = single_type_argument(&last.arguments) {
                    match name.as_str() {
                        "Option" => {
                            return infer(inner, forced).map(|i| Inferred {
                                nullable: true,
                                ..i
                            })
                        }
                        "Box" => return infer(inner, forced),
                        "Vec" if is_u8(inner) => {
                            return Ok(Inferred {
                                kind: Some(Kind::Bytes),
                                nullable: false,
                                naive_timestamp: false,
                            })
                        }
                        _ => {}
                    }
                }
            }
            Ok(Inferred {
                kind: Kind::of_type_name(&name),
                nullable: false,
                naive_timestamp: name == "NaiveDateTime",
            })
        }
        Type::Tuple(_) | Type::Array(_) | Type::Slice(_) if forced => opaque,
        Type::Tuple(t) if t.elems.is_empty() => unsupported("the unit type `()`", ""),
        Type::Tuple(_) => unsupported("a tuple", COMPOSITE),
        Type::Array(_) => unsupported("an array", COMPOSITE),
        Type::Slice(_) => unsupported("a slice", COMPOSITE),
        Type::Reference(_) => unsupported("a reference", OWNED),
        Type::Ptr(_) => unsupported("a raw pointer", ""),
        Type::BareFn(_) => unsupported("a function pointer", ""),
        Type::ImplTrait(_) => unsupported("`impl Trait`", ""),
        Type::TraitObject(_) => unsupported("a trait object", ""),
        Type::Never(_) => unsupported("the never type `!`", ""),
        // Like a type alias: the runtime decides from the serde output.
        Type::Macro(_) => opaque,
        _ => unsupported("this type", ""),
    }
}

/// `u8` (or a path ending in it, like `std::primitive::u8`).
fn is_u8(ty: &Type) -> bool {
    match ty {
        Type::Group(g) => is_u8(&g.elem),
        Type::Paren(p) => is_u8(&p.elem),
        Type::Path(p) => {
            p.qself.is_none()
                && p.path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "u8" && matches!(s.arguments, PathArguments::None))
        }
        _ => false,
    }
}

/// `T` in `Name<T>`.
fn single_type_argument(args: &PathArguments) -> Option<&Type> {
    let PathArguments::AngleBracketed(a) = args else {
        return None;
    };
    let mut types = a.args.iter().filter_map(|g| match g {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    });
    let first = types.next()?;
    types.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(src: &str) -> Result<(Option<Kind>, bool), &'static str> {
        let ty: Type = syn::parse_str(src).unwrap();
        infer(&ty, false)
            .map(|i| (i.kind, i.nullable))
            .map_err(|u| u.what)
    }

    #[test]
    fn types_are_inferred_through_option_and_box() {
        assert_eq!(kind("i32"), Ok((Some(Kind::Int), false)));
        assert_eq!(kind("Option<u64>"), Ok((Some(Kind::Int), true)));
        assert_eq!(kind("std::boxed::Box<f32>"), Ok((Some(Kind::Float), false)));
        assert_eq!(kind("Box<str>"), Ok((Some(Kind::Text), false)));
        assert_eq!(
            kind("chrono::DateTime<Utc>"),
            Ok((Some(Kind::Timestamp), false))
        );
        assert_eq!(kind("Option<NaiveDate>"), Ok((Some(Kind::Date), true)));
        assert_eq!(kind("uuid::Uuid"), Ok((Some(Kind::Uuid), false)));
        assert_eq!(
            kind("rust_decimal::Decimal"),
            Ok((Some(Kind::Decimal), false))
        );
        assert_eq!(kind("&'static str"), Err("a reference"));
        assert_eq!(kind("Option<(i32, i32)>"), Err("a tuple"));
        assert_eq!(kind("Box<dyn Fn()>"), Err("a trait object"));
    }

    #[test]
    fn byte_vectors_are_bytes_and_other_collections_json() {
        assert_eq!(kind("Vec<u8>"), Ok((Some(Kind::Bytes), false)));
        assert_eq!(
            kind("Option<std::vec::Vec<u8>>"),
            Ok((Some(Kind::Bytes), true))
        );
        assert_eq!(
            kind("Vec<std::primitive::u8>"),
            Ok((Some(Kind::Bytes), false))
        );
        for json in [
            "Vec<String>",
            "Vec<i8>",
            "Vec<Option<u8>>",
            "VecDeque<u8>",
            "HashMap<String, i64>",
            "std::collections::BTreeMap<String, String>",
            "HashSet<u8>",
            "BTreeSet<String>",
            "serde_json::Value",
            "serde_json::Map<String, Value>",
        ] {
            assert_eq!(kind(json), Ok((Some(Kind::Json), false)), "{json}");
        }
    }

    #[test]
    fn types_the_derive_cannot_see_through_are_left_to_the_runtime() {
        for opaque in [
            "Cents",
            "Status",
            "crate::Money",
            "T",
            "<T as Tr>::Out",
            "m!()",
        ] {
            assert_eq!(kind(opaque), Ok((None, false)), "{opaque}");
        }
        assert_eq!(kind("Option<Cents>"), Ok((None, true)));
    }

    #[test]
    fn naive_timestamps_are_flagged_through_option_and_box() {
        let naive = |src: &str| {
            infer(&syn::parse_str(src).unwrap(), false)
                .map(|i| i.naive_timestamp)
                .map_err(|u| u.what)
        };
        assert_eq!(naive("NaiveDateTime"), Ok(true));
        assert_eq!(naive("Option<Box<chrono::NaiveDateTime>>"), Ok(true));
        assert_eq!(naive("DateTime<Utc>"), Ok(false));
        assert_eq!(naive("NaiveDate"), Ok(false));
    }

    #[test]
    fn a_given_type_admits_tuples_and_arrays() {
        let forced = |src: &str| {
            infer(&syn::parse_str(src).unwrap(), true)
                .map(|i| i.nullable)
                .map_err(|u| u.what)
        };
        assert_eq!(forced("(i32, String)"), Ok(false));
        assert_eq!(forced("Option<[u8; 4]>"), Ok(true));
        assert!(forced("&'static str").is_err());
    }

    #[test]
    fn type_attribute_spellings_are_field_type_names() {
        let names: Vec<&str> = KIND_NAMES.iter().map(|(n, _)| *n).collect();
        assert_eq!(names.join(", "), Kind::ATTR_NAMES);
        for (n, k) in KIND_NAMES {
            assert_eq!(Kind::from_attr(n), Some(k));
            assert_eq!(format!("{k:?}").to_lowercase(), n);
        }
        assert_eq!(Kind::from_attr("integer"), None);
    }
}
