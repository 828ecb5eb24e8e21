//! Step 1, the model: the derive input parsed into a [`Container`] and its [`Field`]s — their
//! attributes (read by `attr`), what each field's type says (`ty`), and every name resolved here,
//! once, before anything reads one: each field's serde key after the struct's `rename_all`
//! (serde's `rename_by_rules`), each column (`version`, `rename`, or the field name), the table,
//! the id field.
//!
//! Nothing is refused here: a shape the derive does not support is recorded as such, and `check`
//! validates the whole model; `entity` generates from a validated one. Neither parses an
//! attribute or derives a name again.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data as SynData, DeriveInput, Fields};

use super::attr;
use super::case::snake_case;
use super::ctxt::Ctxt;
use super::ty::{self, Inferred, Kind, Unsupported};

/// The struct deriving `Entity`.
pub(crate) struct Container<'a> {
    /// Its identifier, for the impl.
    pub ident: &'a syn::Ident,
    /// Its name without `r#`, for messages.
    pub name: String,
    /// `#[entity(table = "...")]`, else the name in snake_case.
    pub table: String,
    pub attrs: attr::Container,
    pub data: Data<'a>,
    pub generics: &'a syn::Generics,
}

/// What the item is. Only `Struct` is an entity; `check` refuses the others, at their token.
pub(crate) enum Data<'a> {
    /// A struct with named fields, all of them (skipped ones too), in declaration order.
    Struct(Vec<Field<'a>>),
    Enum(&'a syn::token::Enum),
    Union(&'a syn::token::Union),
    /// A tuple struct: its parenthesized fields.
    Tuple(&'a syn::FieldsUnnamed),
    Unit,
}

/// One field of the struct.
pub(crate) struct Field<'a> {
    /// The field name without `r#`.
    pub name: String,
    pub ty: &'a syn::Type,
    pub attrs: attr::Field,
    /// What the Rust type says, or why no column can hold it.
    pub inferred: Result<Inferred, Unsupported<'a>>,
    pub column: Column,
    pub serde_name: SerdeName,
    /// The entity id: the field marked `#[entity(id)]`, else (none stored is) the field named
    /// `id`, unless it is the version field.
    pub id: bool,
}

/// A field's column name, and the token it comes from.
pub(crate) struct Column {
    /// `version` for the version field, else `#[entity(rename)]`, else the field name.
    pub name: String,
    /// The `version` key, the `rename` literal, or the field name.
    pub span: Span,
}

/// The keys serde writes and reads a field under, after the struct's `rename_all`.
pub(crate) struct SerdeName {
    /// The key serde writes: the last `#[serde(rename)]` for serializing, else the field name
    /// after the serializing rule.
    pub ser: String,
    /// Where `ser` comes from: its `rename` literal, else the field name.
    pub span: Span,
    /// The keys serde reads back: the `rename`s for deserializing, else the field name after
    /// the deserializing rule.
    pub de: Vec<String>,
}

impl<'a> Container<'a> {
    /// Parses the derive input, recording attribute errors in `cx`.
    pub(crate) fn from_ast(cx: &mut Ctxt, input: &'a DeriveInput) -> Container<'a> {
        let name = input.ident.unraw().to_string();
        let attrs = attr::Container::from_ast(cx, &name, &input.attrs);
        let data = match &input.data {
            SynData::Struct(s) => match &s.fields {
                Fields::Named(f) => Data::Struct(
                    f.named
                        .iter()
                        .enumerate()
                        .filter_map(|(i, field)| Field::from_ast(cx, i, field, &attrs.rename_all))
                        .collect(),
                ),
                Fields::Unnamed(f) => Data::Tuple(f),
                Fields::Unit => Data::Unit,
            },
            SynData::Enum(e) => Data::Enum(&e.enum_token),
            SynData::Union(u) => Data::Union(&u.union_token),
        };
        let mut cont = Container {
            ident: &input.ident,
            table: attrs.table.clone().unwrap_or_else(|| snake_case(&name)),
            name,
            attrs,
            data,
            generics: &input.generics,
        };
        if let Data::Struct(fields) = &mut cont.data {
            resolve_id(fields);
        }
        cont
    }
}

impl<'a> Data<'a> {
    /// The fields of a struct; none for the shapes `check` refuses.
    pub(crate) fn fields(&self) -> &[Field<'a>] {
        match self {
            Data::Struct(fields) => fields,
            _ => &[],
        }
    }
}

impl<'a> Field<'a> {
    /// Parses the field at `index` (`None` only for a field without a name, which a struct with
    /// named fields does not have), naming its column and serde keys by `rename_all`.
    fn from_ast(
        cx: &mut Ctxt,
        index: usize,
        field: &'a syn::Field,
        rename_all: &attr::RenameAll,
    ) -> Option<Field<'a>> {
        let ident = field.ident.as_ref()?;
        let name = ident.unraw().to_string();
        let attrs = attr::Field::from_ast(cx, index, &name, &field.attrs);
        let inferred = ty::infer(&field.ty, attrs.given_type().is_some());
        let column = match (&attrs.version, &attrs.rename) {
            (Some(key), _) => Column {
                name: "version".to_owned(),
                span: key.span(),
            },
            (None, Some(lit)) => Column {
                name: lit.value(),
                span: lit.span(),
            },
            (None, None) => Column {
                name: name.clone(),
                span: ident.span(),
            },
        };
        let serde_name = SerdeName::by_rules(&attrs.serde, rename_all, &name, ident.span());
        Some(Field {
            name,
            ty: &field.ty,
            attrs,
            inferred,
            column,
            serde_name,
            id: false,
        })
    }

    /// Stored in a column: neither `skip` nor skipped by serde.
    pub(crate) fn stored(&self) -> bool {
        !self.attrs.skipped()
    }

    /// The version field: `#[entity(version)]`.
    pub(crate) fn is_version(&self) -> bool {
        self.attrs.version.is_some()
    }

    /// The logical type: given by `json` or `type`, else inferred; `None` for a type the derive
    /// cannot see through (decided by the runtime).
    pub(crate) fn kind(&self) -> Option<Kind> {
        self.attrs
            .given_type()
            .or_else(|| self.inferred.as_ref().ok().and_then(|i| i.kind))
    }

    /// `Option<T>`.
    pub(crate) fn nullable(&self) -> bool {
        self.inferred.as_ref().is_ok_and(|i| i.nullable)
    }

    /// A `chrono::NaiveDateTime`, possibly in `Option` or `Box`.
    pub(crate) fn naive_timestamp(&self) -> bool {
        self.inferred.as_ref().is_ok_and(|i| i.naive_timestamp)
    }
}

impl SerdeName {
    /// serde's names for the field `name` (whose identifier is at `span`): its own `rename`s
    /// where given, else the struct's `rename_all` rule for each side.
    fn by_rules(
        serde: &attr::SerdeField,
        rename_all: &attr::RenameAll,
        name: &str,
        span: Span,
    ) -> SerdeName {
        let (ser, span) = match &serde.ser {
            Some(lit) => (lit.value(), lit.span()),
            None => (rename_all.ser.apply_to_field(name), span),
        };
        let de = if serde.de.is_empty() {
            vec![rename_all.de.apply_to_field(name)]
        } else {
            serde.de.clone()
        };
        SerdeName { ser, span, de }
    }

    /// serde reads back the key it writes.
    pub(crate) fn round_trips(&self) -> bool {
        self.de.contains(&self.ser)
    }
}

/// Marks the id among the stored fields: the one marked `#[entity(id)]` (`check` refuses
/// several), else the field named `id` unless it is the version field.
fn resolve_id(fields: &mut [Field]) {
    let marked = fields.iter().any(|f| f.stored() && f.attrs.id.is_some());
    for f in fields.iter_mut().filter(|f| f.stored()) {
        f.id = if marked {
            f.attrs.id.is_some()
        } else {
            f.name == "id" && !f.is_version()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model of `src`, after `check` found nothing wrong.
    fn with_model(src: &str, test: impl FnOnce(&Container)) {
        let input: DeriveInput = syn::parse_str(src).unwrap();
        let mut cx = Ctxt::new();
        let cont = Container::from_ast(&mut cx, &input);
        super::super::check::check(&mut cx, &cont);
        cx.check().unwrap();
        test(&cont);
    }

    #[test]
    fn names_are_resolved_in_the_model() {
        let src = r#"
            #[serde(rename_all = "camelCase")]
            struct UserProfile {
                user_id: i64,
                #[serde(rename = "mail")]
                #[entity(rename = "email_address")]
                email: String,
                #[entity(version)]
                row_version: i64,
                #[entity(skip)]
                cache_entry: String,
            }
        "#;
        with_model(src, |cont| {
            assert_eq!(cont.table, "user_profile");
            let fields = cont.data.fields();
            let columns: Vec<&str> = fields.iter().map(|f| f.column.name.as_str()).collect();
            assert_eq!(
                columns,
                ["user_id", "email_address", "version", "cache_entry"]
            );
            let keys: Vec<&str> = fields.iter().map(|f| f.serde_name.ser.as_str()).collect();
            assert_eq!(keys, ["userId", "mail", "rowVersion", "cacheEntry"]);
            assert_eq!(fields[1].serde_name.de, ["mail"]);
            assert_eq!(fields[2].serde_name.de, ["rowVersion"]);
            assert!(!fields[3].stored());
        });
    }

    #[test]
    fn the_marked_id_wins_and_the_version_field_is_never_the_id() {
        let ids = |src: &str| {
            let mut ids = Vec::new();
            with_model(src, |cont| {
                ids = cont.data.fields().iter().map(|f| f.id).collect();
            });
            ids
        };
        assert_eq!(ids("struct A { id: i64, b: i64 }"), [true, false]);
        assert_eq!(
            ids("struct A { id: i64, #[entity(id)] b: i64 }"),
            [false, true]
        );
        assert_eq!(
            ids("struct A { #[entity(version)] id: i64, b: i64 }"),
            [false, false]
        );
    }

    #[test]
    fn the_table_attribute_names_the_table_and_types_are_resolved() {
        let src = r#"
            #[entity(table = "people")]
            struct Person {
                #[entity(json)]
                pair: Option<(i32, String)>,
                born: Option<chrono::NaiveDateTime>,
                alias: Cents,
            }
        "#;
        with_model(src, |cont| {
            assert_eq!(cont.table, "people");
            let f = cont.data.fields();
            assert_eq!((f[0].kind(), f[0].nullable()), (Some(Kind::Json), true));
            assert_eq!(f[1].kind(), Some(Kind::Timestamp));
            assert!(f[1].naive_timestamp() && f[1].nullable());
            assert_eq!((f[2].kind(), f[2].nullable()), (None, false));
        });
    }
}
