//! `#[derive(Entity)]`: validates the struct, infers each field's logical type and emits
//! `impl ::dal::entity::Entity` — a table name and a static field list, nothing else.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::ext::IdentExt;
use syn::{Data, DeriveInput, Fields, GenericArgument, PathArguments, Type};

use crate::attrs;
use crate::internals::Ctxt;

/// Entry point of the derive.
pub(crate) fn expand(input: DeriveInput) -> syn::Result<TokenStream> {
    let mut cx = Ctxt::new();
    let name = input.ident.unraw().to_string();
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(f) => Some(f),
            Fields::Unnamed(f) => {
                cx.error_spanned_by(
                    f,
                    format!("`#[derive(Entity)]` needs named fields: `{name}` is a tuple struct"),
                );
                None
            }
            Fields::Unit => {
                cx.error_spanned_by(
                    &input.ident,
                    format!("`#[derive(Entity)]` needs named fields: `{name}` is a unit struct"),
                );
                None
            }
        },
        Data::Enum(e) => {
            cx.error_spanned_by(
                e.enum_token,
                format!(
                    "`#[derive(Entity)]` supports only structs with named fields: `{name}` is an enum"
                ),
            );
            None
        }
        Data::Union(u) => {
            cx.error_spanned_by(
                u.union_token,
                format!(
                    "`#[derive(Entity)]` supports only structs with named fields: `{name}` is a union"
                ),
            );
            None
        }
    };
    let container = attrs::container(&mut cx, &name, &input.attrs);
    let Some(fields) = fields else {
        cx.check()?;
        return Ok(TokenStream::new());
    };

    let mut defs: Vec<FieldSpec> = Vec::new();
    let mut explicit_id: Option<String> = None;
    let mut version_field: Option<String> = None;
    for field in &fields.named {
        let Some(ident) = &field.ident else { continue };
        let rust_name = ident.unraw().to_string();
        let attrs = attrs::field(&mut cx, ident, &field.attrs, &container);
        if attrs.skip {
            continue;
        }
        let inferred = match infer(&field.ty, attrs.ty.is_some()) {
            Ok(t) => t,
            Err(u) => {
                cx.error_spanned_by(
                    u.ty,
                    format!(
                        "field `{rust_name}` has an unsupported type: {} cannot be stored in an entity{}",
                        u.what, u.hint
                    ),
                );
                continue;
            }
        };
        if let Some(span) = attrs.id {
            match &explicit_id {
                Some(first) => cx.error_at(
                    span,
                    format!(
                        "more than one id field in `{name}`: `{first}` and `{rust_name}` are both marked `#[entity(id)]`"
                    ),
                ),
                None => explicit_id = Some(rust_name.clone()),
            }
        }
        if let Some(span) = attrs.version {
            match &version_field {
                Some(first) => cx.error_at(
                    span,
                    format!(
                        "more than one version field in `{name}`: `{first}` and `{rust_name}` are both marked `#[entity(version)]`"
                    ),
                ),
                None => version_field = Some(rust_name.clone()),
            }
            if inferred.kind != Some(Kind::Int) {
                cx.error_spanned_by(
                    &field.ty,
                    format!(
                        "the version field `{rust_name}` must be an integer (`i64`, `u32`, ...) or an `Option` of one: it receives the entity's version number"
                    ),
                );
            }
        }
        let (column, column_span) = match attrs.rename {
            _ if attrs.version.is_some() => ("version".to_owned(), ident.span()),
            Some((column, span)) => (column, span),
            None => (rust_name.clone(), ident.span()),
        };
        defs.push(FieldSpec {
            serde_name: attrs.serde_name,
            column,
            column_span,
            ident_span: ident.span(),
            explicit_id: attrs.id.is_some(),
            version: attrs.version.is_some(),
            rust_name,
            ty: attrs.ty.or(inferred.kind),
            naive_timestamp: inferred.naive_timestamp,
            nullable: inferred.nullable,
            index: attrs.index,
            unique: attrs.unique,
            default: attrs.default,
        });
    }
    check_names(&mut cx, &name, &defs);
    cx.check()?;

    // The id: the field marked `#[entity(id)]`, else the field named `id` (unless it is the
    // version field).
    let has_explicit = explicit_id.is_some();
    for d in &mut defs {
        d.explicit_id = if has_explicit {
            d.explicit_id
        } else {
            d.rust_name == "id" && !d.version
        };
    }

    let table = container.table.unwrap_or_else(|| snake_case(&name));
    let field_defs = defs.iter().map(FieldSpec::to_tokens);
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_qualifications, clippy::all)]
        const _: () = {
            #[automatically_derived]
            impl #impl_generics ::dal::entity::Entity for #ident #ty_generics #where_clause {
                fn table_name() -> &'static str {
                    #table
                }

                fn fields() -> &'static [::dal::entity::FieldDef] {
                    const FIELDS: &[::dal::entity::FieldDef] = &[#(#field_defs),*];
                    FIELDS
                }
            }
        };
    })
}

/// Columns every entity table has (`version` and the `history_*` ones in its history table). A
/// field may be named exactly like one to receive its value, never like one in another case.
const SYSTEM_COLUMNS: [&str; 10] = [
    "id",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "deleted_at",
    "version",
    "history_timestamp",
    "history_user_id",
    "history_comment",
];

/// Column and serde key clashes: column names are compared case-insensitively on every
/// backend, and `version` belongs to the `#[entity(version)]` field.
fn check_names(cx: &mut Ctxt, name: &str, defs: &[FieldSpec]) {
    for (i, d) in defs.iter().enumerate() {
        let earlier = &defs[..i];
        let column = &d.column;
        let rust_name = &d.rust_name;
        // (Two version fields have their own error.)
        if let Some(other) = earlier
            .iter()
            .find(|o| o.column == *column && !(o.version && d.version))
        {
            cx.error_at(
                d.column_span,
                format!(
                    "fields `{}` and `{rust_name}` of `{name}` both map to column `{column}`",
                    other.rust_name
                ),
            );
        } else if let Some(other) = earlier
            .iter()
            .find(|o| o.column.eq_ignore_ascii_case(column) && o.column != *column)
        {
            cx.error_at(
                d.column_span,
                format!(
                    "column `{column}` (field `{rust_name}`) and column `{}` (field `{}`) of `{name}` differ only in case: column names are case-insensitive, so they would be one column",
                    other.column, other.rust_name
                ),
            );
        }
        if let Some(system) = SYSTEM_COLUMNS
            .iter()
            .find(|s| s.eq_ignore_ascii_case(column) && **s != column.as_str())
        {
            cx.error_at(
                d.column_span,
                format!(
                    "column `{column}` of field `{rust_name}` differs only in case from the system column `{system}`: column names are case-insensitive; name it exactly `{system}` to receive the stored value, or choose another name"
                ),
            );
        } else if column == "version" && !d.version {
            cx.error_at(
                d.column_span,
                format!(
                    "column `version` of field `{rust_name}` is reserved for the entity's version: mark the field `#[entity(version)]` (an integer) to receive it, or give it another name"
                ),
            );
        }
        if let Some(other) = earlier.iter().find(|o| o.serde_name == d.serde_name) {
            cx.error_at(
                d.ident_span,
                format!(
                    "fields `{}` and `{rust_name}` of `{name}` are both serialized as `{}`: each stored field needs its own serde key",
                    other.rust_name, d.serde_name
                ),
            );
        }
    }
}

/// One stored field, ready for code generation.
struct FieldSpec {
    rust_name: String,
    column: String,
    /// Where the column name comes from: the `rename` literal, else the field name.
    column_span: Span,
    ident_span: Span,
    serde_name: String,
    /// `None`: decided by the runtime from the serde output.
    ty: Option<Kind>,
    naive_timestamp: bool,
    nullable: bool,
    explicit_id: bool,
    version: bool,
    index: bool,
    unique: bool,
    default: Option<String>,
}

impl FieldSpec {
    fn to_tokens(&self) -> TokenStream {
        let FieldSpec {
            column,
            serde_name,
            nullable,
            explicit_id: id,
            version,
            naive_timestamp,
            index,
            unique,
            ..
        } = self;
        let ty = match self.ty {
            Some(kind) => {
                let variant = kind.variant();
                quote!(::core::option::Option::Some(::dal::entity::FieldType::#variant))
            }
            None => quote!(::core::option::Option::None),
        };
        let default = match &self.default {
            Some(json) => quote!(::core::option::Option::Some(#json)),
            None => quote!(::core::option::Option::None),
        };
        quote! {
            ::dal::entity::FieldDef {
                column: #column,
                serde_name: #serde_name,
                ty: #ty,
                nullable: #nullable,
                id: #id,
                version: #version,
                naive_timestamp: #naive_timestamp,
                index: #index,
                unique: #unique,
                default: #default,
            }
        }
    }
}

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

    fn variant(self) -> syn::Ident {
        let name = format!("{self:?}");
        syn::Ident::new(&name, proc_macro2::Span::call_site())
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
struct Inferred {
    /// `None`: a type the derive cannot see through.
    kind: Option<Kind>,
    /// `Option<T>`.
    nullable: bool,
    /// `chrono::NaiveDateTime` (through `Option` and `Box`).
    naive_timestamp: bool,
}

/// A field type no column can hold.
struct Unsupported<'a> {
    ty: &'a Type,
    what: &'static str,
    hint: &'static str,
}

/// What the type `ty` says: its logical type, whether it is nullable (`Option<T>`), whether it
/// is a `NaiveDateTime`. `Box<T>` is looked through (serde does the same). `forced` (the type
/// is given by `#[entity(json)]` or `#[entity(type = "...")]`) also admits tuples and arrays,
/// which serde writes as JSON arrays.
fn infer(ty: &Type, forced: bool) -> Result<Inferred, Unsupported<'_>> {
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

/// `UserProfile` → `user_profile`, `HTTPRequest` → `http_request`.
fn snake_case(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            if let Some(&prev) = i.checked_sub(1).and_then(|p| chars.get(p)) {
                let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
                if prev != '_'
                    && (prev.is_lowercase()
                        || prev.is_ascii_digit()
                        || (prev.is_uppercase() && next_lower))
                {
                    out.push('_');
                }
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_names_become_snake_case_tables() {
        assert_eq!(snake_case("User"), "user");
        assert_eq!(snake_case("UserProfile"), "user_profile");
        assert_eq!(snake_case("HTTPRequest"), "http_request");
        assert_eq!(snake_case("OrderV2Line"), "order_v2_line");
        assert_eq!(snake_case("already_snake"), "already_snake");
    }

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
