//! `#[derive(Entity)]`: the entry point, which runs the steps in order — the model
//! (`internals::ast`, reading attributes through `internals::attr`), validation
//! (`internals::check`), then `Ctxt::check`, which stops at the first of these with every
//! error — and step 3, generation: a validated model turned into `impl ::dal::entity::Entity`,
//! a table name and a static field list, nothing else. Generation decides nothing: every name,
//! type and flag it writes was settled by the model.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::DeriveInput;

use crate::internals::ast::{Container, Field};
use crate::internals::ty::Kind;
use crate::internals::{check, Ctxt};

/// Entry point of the derive.
pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut cx = Ctxt::new();
    let cont = Container::from_ast(&mut cx, input);
    check::check(&mut cx, &cont);
    cx.check()?;
    Ok(impl_entity(&cont))
}

/// The impl, for a validated model.
fn impl_entity(cont: &Container) -> TokenStream {
    let table = &cont.table;
    let field_defs = cont
        .data
        .fields()
        .iter()
        .filter(|f| f.stored())
        .map(field_def);
    let ident = cont.ident;
    let (impl_generics, ty_generics, where_clause) = cont.generics.split_for_impl();
    quote! {
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
    }
}

/// The `FieldDef` of one stored field.
fn field_def(field: &Field) -> TokenStream {
    let column = &field.column.name;
    let serde_name = &field.serde_name.ser;
    let nullable = field.nullable();
    let id = field.id;
    let version = field.is_version();
    let naive_timestamp = field.naive_timestamp();
    let index = field.attrs.index;
    let unique = field.attrs.unique;
    let ty = match field.kind() {
        Some(kind) => {
            let variant = variant(kind);
            quote!(::core::option::Option::Some(::dal::entity::FieldType::#variant))
        }
        None => quote!(::core::option::Option::None),
    };
    let some_str = |v: &Option<String>| match v {
        Some(text) => quote!(::core::option::Option::Some(#text)),
        None => quote!(::core::option::Option::None),
    };
    let default = some_str(&field.attrs.default);
    let check = some_str(&field.attrs.check);
    let references = some_str(&field.attrs.references);
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
            check: #check,
            references: #references,
        }
    }
}

/// The `dal::entity::FieldType` variant of `kind` (same name).
fn variant(kind: Kind) -> syn::Ident {
    syn::Ident::new(&format!("{kind:?}"), Span::call_site())
}
