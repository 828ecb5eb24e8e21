//! `#[derive(Entity)]`: validates the struct, infers each field's logical type and emits
//! `impl ::dal::entity::Entity` — a table name and a static field list, nothing else.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;
use syn::{Data, DeriveInput, Fields, GenericArgument, PathArguments, Type};

use crate::attrs::{self, Ctxt};

/// Entry point of the derive.
pub(crate) fn expand(input: DeriveInput) -> syn::Result<TokenStream> {
    let mut cx = Ctxt::default();
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
    for field in &fields.named {
        let Some(ident) = &field.ident else { continue };
        let rust_name = ident.unraw().to_string();
        let attrs = attrs::field(&mut cx, ident, &field.attrs);
        if attrs.skip {
            continue;
        }
        let (ty, nullable) = match infer(&field.ty, attrs.json) {
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
                Some(first) => cx.syn_error(syn::Error::new(
                    span,
                    format!(
                        "more than one id field in `{name}`: `{first}` and `{rust_name}` are both marked `#[entity(id)]`"
                    ),
                )),
                None => explicit_id = Some(rust_name.clone()),
            }
        }
        let column = attrs.rename.unwrap_or_else(|| rust_name.clone());
        if let Some(other) = defs.iter().find(|d| d.column == column) {
            cx.error_spanned_by(
                ident,
                format!(
                    "fields `{}` and `{rust_name}` of `{name}` both map to column `{column}`",
                    other.rust_name
                ),
            );
        }
        defs.push(FieldSpec {
            serde_name: attrs.serde_name.unwrap_or_else(|| rust_name.clone()),
            column,
            explicit_id: attrs.id.is_some(),
            rust_name,
            ty,
            nullable,
            index: attrs.index,
            unique: attrs.unique,
            default: attrs.default,
        });
    }
    cx.check()?;

    // The id: the field marked `#[entity(id)]`, else the field named `id`.
    let has_explicit = explicit_id.is_some();
    for d in &mut defs {
        d.explicit_id = if has_explicit {
            d.explicit_id
        } else {
            d.rust_name == "id"
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

/// One stored field, ready for code generation.
struct FieldSpec {
    rust_name: String,
    column: String,
    serde_name: String,
    ty: Kind,
    nullable: bool,
    explicit_id: bool,
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
            index,
            unique,
            ..
        } = self;
        let ty = self.ty.variant();
        let default = match &self.default {
            Some(json) => quote!(::core::option::Option::Some(#json)),
            None => quote!(::core::option::Option::None),
        };
        quote! {
            ::dal::entity::FieldDef {
                column: #column,
                serde_name: #serde_name,
                ty: ::core::option::Option::Some(::dal::entity::FieldType::#ty),
                nullable: #nullable,
                id: #id,
                version: false,
                naive_timestamp: false,
                index: #index,
                unique: #unique,
                default: #default,
            }
        }
    }
}

/// The logical types of `dal::entity::FieldType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
    Bool,
    Text,
    Timestamp,
    Date,
    Time,
    Uuid,
    Json,
}

impl Kind {
    fn variant(self) -> syn::Ident {
        let name = format!("{self:?}");
        syn::Ident::new(&name, proc_macro2::Span::call_site())
    }

    /// By the last path segment, so `chrono::DateTime<Utc>` and `DateTime<Utc>` agree. Every
    /// other named type is a serde type stored as JSON.
    fn of_type_name(name: &str) -> Kind {
        match name {
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
            _ => Kind::Json,
        }
    }
}

/// A field type no column can hold.
struct Unsupported<'a> {
    ty: &'a Type,
    what: &'static str,
    hint: &'static str,
}

/// The logical type of `ty` and whether it is nullable (`Option<T>`). `Box<T>` is looked
/// through (serde does the same). `json` (from `#[entity(json)]`) forces JSON and also admits
/// tuples and arrays, which serde writes as JSON arrays.
fn infer(ty: &Type, json: bool) -> Result<(Kind, bool), Unsupported<'_>> {
    let unsupported = |what, hint| Err(Unsupported { ty, what, hint });
    const OWNED: &str = "; use an owned type (`String` for `&str`, `Vec<T>` for `&[T]`)";
    const COMPOSITE: &str =
        "; use a struct or a `Vec`, or add `#[entity(json)]` to store it as a JSON array";
    match ty {
        Type::Group(g) => infer(&g.elem, json),
        Type::Paren(p) => infer(&p.elem, json),
        Type::Path(p) => {
            let Some(last) = p.path.segments.last() else {
                return Ok((Kind::Json, false));
            };
            let name = last.ident.unraw().to_string();
            if p.qself.is_none() {
                if let Some(inner) = single_type_argument(&last.arguments) {
                    match name.as_str() {
                        "Option" => return infer(inner, json).map(|(k, _)| (k, true)),
                        "Box" => return infer(inner, json),
                        _ => {}
                    }
                }
            }
            if json {
                return Ok((Kind::Json, false));
            }
            Ok((Kind::of_type_name(&name), false))
        }
        Type::Tuple(_) | Type::Array(_) | Type::Slice(_) if json => Ok((Kind::Json, false)),
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
        Type::Macro(_) if json => Ok((Kind::Json, false)),
        Type::Macro(_) => unsupported(
            "a type macro",
            " without `#[entity(json)]` (its type cannot be inferred)",
        ),
        _ => unsupported("this type", ""),
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

    #[test]
    fn types_are_inferred_through_option_and_box() {
        let kind = |src: &str| {
            let ty: Type = syn::parse_str(src).unwrap();
            infer(&ty, false).map_err(|u| u.what)
        };
        assert_eq!(kind("i32"), Ok((Kind::Int, false)));
        assert_eq!(kind("Option<u64>"), Ok((Kind::Int, true)));
        assert_eq!(kind("std::boxed::Box<f32>"), Ok((Kind::Float, false)));
        assert_eq!(kind("chrono::DateTime<Utc>"), Ok((Kind::Timestamp, false)));
        assert_eq!(kind("Option<NaiveDate>"), Ok((Kind::Date, true)));
        assert_eq!(kind("uuid::Uuid"), Ok((Kind::Uuid, false)));
        assert_eq!(kind("Vec<String>"), Ok((Kind::Json, false)));
        assert_eq!(kind("MyType"), Ok((Kind::Json, false)));
        assert_eq!(kind("&'static str"), Err("a reference"));
        assert_eq!(kind("Option<(i32, i32)>"), Err("a tuple"));
        assert_eq!(kind("Box<dyn Fn()>"), Err("a trait object"));
    }
}
