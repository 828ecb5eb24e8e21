//! Step 2, validation: every rule about the model as a whole — what the item is, the serde
//! attributes an entity cannot have or that read back other keys than they write, how a field's
//! keys combine, the field types, one id, one version, and column and serde-key clashes
//! (case-insensitive, system columns) — recorded in the `Ctxt`, at the tokens at fault.
//!
//! Each rule records at its [`Site`], so the user sees errors in the input's order: the item,
//! the container, each field (its attributes, then the field as a whole), then the clashes
//! across fields.

use super::ast::{Container, Data, Field};
use super::attr::Key;
use super::case::RenameRule;
use super::ctxt::{Ctxt, Site};
use super::ty::Kind;

/// Field keys that make no sense on the version field, whose column dal maintains. (`skip` has
/// its own, more general, error.)
const NOT_WITH_VERSION: [&str; 9] = [
    "id",
    "rename",
    "index",
    "unique",
    "default",
    "check",
    "references",
    "json",
    "type",
];

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

/// Validates the model, recording every problem in `cx`.
pub(crate) fn check(cx: &mut Ctxt, cont: &Container) {
    check_shape(cx, cont);
    check_serde_container(cx, cont);
    let fields = cont.data.fields();
    for (index, field) in fields.iter().enumerate() {
        check_serde_flatten(cx, index, field);
        cx.set_site(Site::field(index));
        check_skip(cx, field);
        check_entity_keys(cx, field);
        check_serde_round_trip(cx, field);
        check_type(cx, field);
    }
    check_id_and_version(cx, cont, fields);
    cx.set_site(Site::AllFields);
    check_names(cx, cont, fields);
}

/// Only structs with named fields are entities.
fn check_shape(cx: &mut Ctxt, cont: &Container) {
    cx.set_site(Site::Item);
    let name = &cont.name;
    match &cont.data {
        Data::Struct(_) => {}
        Data::Tuple(fields) => cx.error_spanned_by(
            fields,
            format!("`#[derive(Entity)]` needs named fields: `{name}` is a tuple struct"),
        ),
        Data::Unit => cx.error_spanned_by(
            cont.ident,
            format!("`#[derive(Entity)]` needs named fields: `{name}` is a unit struct"),
        ),
        Data::Enum(token) => cx.error_spanned_by(
            token,
            format!(
                "`#[derive(Entity)]` supports only structs with named fields: `{name}` is an enum"
            ),
        ),
        Data::Union(token) => cx.error_spanned_by(
            token,
            format!(
                "`#[derive(Entity)]` supports only structs with named fields: `{name}` is a union"
            ),
        ),
    }
}

/// The struct must serialize as one map key per field, and read back the keys it writes.
fn check_serde_container(cx: &mut Ctxt, cont: &Container) {
    cx.set_site(Site::Container);
    let name = &cont.name;
    for Key { name: key, path } in &cont.attrs.serde_not_plain {
        cx.error_spanned_by(
            path,
            format!(
                "`#[serde({key})]` cannot be used on entity `{name}`: an entity needs a plain field-per-column struct, serialized as a map with one key per field"
            ),
        );
    }
    let rules = &cont.attrs.rename_all;
    if let Some(key) = &rules.key {
        // An unknown rule is reported by serde.
        if rules.ser != rules.de && !rules.unknown {
            cx.error_spanned_by(
                key,
                format!(
                    "`#[serde(rename_all)]` on `{name}` names fields differently when serializing ({}) and deserializing ({}): an entity must read back the keys it writes; use a single rule: `rename_all = \"...\"`",
                    rule_text(rules.ser),
                    rule_text(rules.de)
                ),
            );
        }
    }
}

/// `` `camelCase` ``, or `no rule`.
fn rule_text(rule: RenameRule) -> String {
    match rule {
        RenameRule::None => "no rule".to_owned(),
        rule => format!("`{}`", rule.name()),
    }
}

/// `#[serde(flatten)]` merges another value's keys into the struct's: no column holds them.
/// Reported at the attribute it is in (among the field's attribute errors).
fn check_serde_flatten(cx: &mut Ctxt, index: usize, field: &Field) {
    for (attr, path) in &field.attrs.serde.flatten {
        cx.set_site(Site::field_attr(index, *attr));
        cx.error_spanned_by(
            path,
            format!(
                "`#[serde(flatten)]` on field `{}` cannot be used in an entity: an entity needs a plain field-per-column struct; store the nested value as one JSON column (without `flatten`)",
                field.name
            ),
        );
    }
}

/// A field that is not stored takes no other `entity` key: it would be silently ignored.
fn check_skip(cx: &mut Ctxt, field: &Field) {
    let name = &field.name;
    let attrs = &field.attrs;
    let Some(Key { name: key, path }) = attrs.keys.iter().find(|k| k.name != "skip") else {
        return;
    };
    if attrs.skip {
        cx.error_spanned_by(
            path,
            format!("field `{name}` is `skip`ped: it cannot take other `entity` attributes"),
        );
    } else if attrs.serde.skip {
        cx.error_spanned_by(
            path,
            format!(
                "field `{name}` is not serialized (`#[serde(skip)]` or `skip_serializing`), so it is not stored: it cannot take `entity` attribute `{key}`"
            ),
        );
    }
}

/// `json` with `type`, and the keys the version field cannot take.
fn check_entity_keys(cx: &mut Ctxt, field: &Field) {
    let name = &field.name;
    let attrs = &field.attrs;
    if attrs.json && attrs.explicit_type.is_some() {
        if let Some(key) = attrs.key("type") {
            cx.error_spanned_by(
                &key.path,
                format!(
                    "`type` cannot be combined with `json` on field `{name}` (`json` is `type = \"json\"`): keep one"
                ),
            );
        }
    }
    if attrs.version.is_some() {
        for Key { name: key, path } in attrs
            .keys
            .iter()
            .filter(|k| NOT_WITH_VERSION.contains(&k.name.as_str()))
        {
            cx.error_spanned_by(
                path,
                format!(
                    "`{key}` cannot be combined with `version` on field `{name}`: the version field receives the entity's `version` column, which dal maintains"
                ),
            );
        }
    }
}

/// A stored field's `#[serde(rename)]` must read back the key it writes (differing
/// `rename_all` rules without a `rename` are the container's error).
fn check_serde_round_trip(cx: &mut Ctxt, field: &Field) {
    let Some(key) = &field.attrs.serde.rename else {
        return;
    };
    let names = &field.serde_name;
    if field.stored() && !names.round_trips() {
        cx.error_spanned_by(
            key,
            format!(
                "field `{}` is serialized as `{}` but deserialized from `{}`: an entity must read back the keys it writes; use a single name: `#[serde(rename = \"...\")]`",
                field.name,
                names.ser,
                names.de.first().map_or("", String::as_str)
            ),
        );
    }
}

/// A stored field's type must fit a column.
fn check_type(cx: &mut Ctxt, field: &Field) {
    if let (true, Err(u)) = (field.stored(), &field.inferred) {
        cx.error_spanned_by(
            u.ty,
            format!(
                "field `{}` has an unsupported type: {} cannot be stored in an entity{}",
                field.name, u.what, u.hint
            ),
        );
    }
}

/// Stored fields whose type fits a column: the ones the cross-field rules are about.
fn storable<'f, 'a>(fields: &'f [Field<'a>]) -> impl Iterator<Item = (usize, &'f Field<'a>)> {
    fields
        .iter()
        .enumerate()
        .filter(|(_, f)| f.stored() && f.inferred.is_ok())
}

/// At most one `#[entity(id)]`, at most one `#[entity(version)]`, and the version an integer.
fn check_id_and_version(cx: &mut Ctxt, cont: &Container, fields: &[Field]) {
    let struct_name = &cont.name;
    let mut first_id: Option<&str> = None;
    let mut first_version: Option<&str> = None;
    for (index, field) in storable(fields) {
        cx.set_site(Site::field(index));
        let name = &field.name;
        if let Some(key) = &field.attrs.id {
            match first_id {
                Some(first) => cx.error_spanned_by(
                    key,
                    format!(
                        "more than one id field in `{struct_name}`: `{first}` and `{name}` are both marked `#[entity(id)]`"
                    ),
                ),
                None => first_id = Some(name),
            }
        }
        let Some(key) = &field.attrs.version else {
            continue;
        };
        match first_version {
            Some(first) => cx.error_spanned_by(
                key,
                format!(
                    "more than one version field in `{struct_name}`: `{first}` and `{name}` are both marked `#[entity(version)]`"
                ),
            ),
            None => first_version = Some(name),
        }
        if field.inferred.as_ref().ok().and_then(|i| i.kind) != Some(Kind::Int) {
            cx.error_spanned_by(
                field.ty,
                format!(
                    "the version field `{name}` must be an integer (`i64`, `u32`, ...) or an `Option` of one: it receives the entity's version number"
                ),
            );
        }
    }
}

/// Column and serde key clashes, field by field: column names are compared case-insensitively
/// on every backend, and `version` belongs to the `#[entity(version)]` field.
fn check_names(cx: &mut Ctxt, cont: &Container, fields: &[Field]) {
    let stored: Vec<&Field> = storable(fields).map(|(_, f)| f).collect();
    for (i, field) in stored.iter().enumerate() {
        let earlier = &stored[..i];
        check_column_clash(cx, &cont.name, field, earlier);
        check_system_column(cx, field);
        if let Some(other) = earlier
            .iter()
            .find(|o| o.serde_name.ser == field.serde_name.ser)
        {
            cx.error_at(
                field.serde_name.span,
                format!(
                    "fields `{}` and `{}` of `{}` are both serialized as `{}`: each stored field needs its own serde key",
                    other.name, field.name, cont.name, field.serde_name.ser
                ),
            );
        }
    }
}

/// The field's column against the earlier fields' (two version fields have their own error).
fn check_column_clash(cx: &mut Ctxt, struct_name: &str, field: &Field, earlier: &[&Field]) {
    let column = &field.column.name;
    let name = &field.name;
    if let Some(other) = earlier
        .iter()
        .find(|o| o.column.name == *column && !(o.is_version() && field.is_version()))
    {
        cx.error_at(
            field.column.span,
            format!(
                "fields `{}` and `{name}` of `{struct_name}` both map to column `{column}`",
                other.name
            ),
        );
    } else if let Some(other) = earlier
        .iter()
        .find(|o| o.column.name.eq_ignore_ascii_case(column) && o.column.name != *column)
    {
        cx.error_at(
            field.column.span,
            format!(
                "column `{column}` (field `{name}`) and column `{}` (field `{}`) of `{struct_name}` differ only in case: column names are case-insensitive, so they would be one column",
                other.column.name, other.name
            ),
        );
    }
}

/// A column may be a system column exactly, never in another case; `version` is the version
/// field's.
fn check_system_column(cx: &mut Ctxt, field: &Field) {
    let column = &field.column.name;
    let name = &field.name;
    if let Some(system) = SYSTEM_COLUMNS
        .iter()
        .find(|s| s.eq_ignore_ascii_case(column) && **s != column.as_str())
    {
        cx.error_at(
            field.column.span,
            format!(
                "column `{column}` of field `{name}` differs only in case from the system column `{system}`: column names are case-insensitive; name it exactly `{system}` to receive the stored value, or choose another name"
            ),
        );
    } else if column == "version" && !field.is_version() {
        cx.error_at(
            field.column.span,
            format!(
                "column `version` of field `{name}` is reserved for the entity's version: mark the field `#[entity(version)]` (an integer) to receive it, or give it another name"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use syn::DeriveInput;

    use super::super::ast::Container;
    use super::*;

    /// The messages of the errors the model of `src` and its validation report, in order.
    fn errors(src: &str) -> Vec<String> {
        let input: DeriveInput = syn::parse_str(src).unwrap();
        let mut cx = Ctxt::new();
        let cont = Container::from_ast(&mut cx, &input);
        check(&mut cx, &cont);
        match cx.check() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn errors_found_by_different_steps_keep_the_inputs_order() {
        // `flatten` is refused by `check`, unknown keys by the parser: a field's errors still
        // come in the order of its attributes, then the field's own, and the cross-field clash
        // after every field's. (On the struct, `entity` keys come before serde's, as before.)
        let found = errors(
            r#"
            #[serde(tag = "t")]
            #[entity(schema = "s")]
            struct S {
                #[serde(flatten)]
                #[entity(bogus)]
                a: Extra,
                #[entity(rename = "a")]
                b: i64,
                #[entity(other)]
                #[serde(flatten)]
                c: Extra,
                d: &'static str,
            }
            "#,
        );
        let starts: Vec<&str> = found
            .iter()
            .map(|m| m.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(
            starts,
            [
                "unknown `entity` attribute `schema` on struct `S`; expected `table = \"...\"`",
                "`#[serde(tag)]` cannot be used on entity `S`",
                "`#[serde(flatten)]` on field `a` cannot be used in an entity",
                "unknown `entity` attribute `bogus` on field `a`; expected one of",
                "unknown `entity` attribute `other` on field `c`; expected one of",
                "`#[serde(flatten)]` on field `c` cannot be used in an entity",
                "field `d` has an unsupported type",
                "fields `a` and `b` of `S` both map to column `a`",
            ]
        );
    }

    #[test]
    fn fields_that_are_not_stored_escape_the_cross_field_rules() {
        let none = errors(
            r#"
            struct S {
                id: i64,
                #[serde(skip)]
                ID: &'static str,
                #[entity(skip)]
                version: String,
            }
            "#,
        );
        assert_eq!(none, Vec::<String>::new());
    }

    #[test]
    fn a_skipped_field_takes_no_other_key() {
        assert_eq!(
            errors("struct S { #[entity(skip, index)] a: i64 }"),
            ["field `a` is `skip`ped: it cannot take other `entity` attributes"]
        );
    }

    #[test]
    fn check_and_references_take_a_string() {
        let ok = errors(
            r#"struct S { id: i64, #[entity(check = "[a] > 0", references = "users")] a: i64 }"#,
        );
        assert_eq!(ok, Vec::<String>::new());
        assert_eq!(
            errors("struct S { #[entity(check)] a: i64 }"),
            ["`check` needs a value: `check = \"[score] >= 0\"`"]
        );
        assert_eq!(
            errors("struct S { #[entity(references = 5)] a: i64 }"),
            ["`references` must be a non-empty string literal: `references = \"users\"`"]
        );
        assert_eq!(
            errors("struct S { #[entity(version, check = \"x\")] v: i64 }"),
            ["`check` cannot be combined with `version` on field `v`: the version field receives the entity's `version` column, which dal maintains"]
        );
    }
}
