//! Attribute parsing and validation: the `#[entity(...)]` / `#[serde(...)]` readers (serde
//! attributes only for what decides the stored keys: `rename_all`, `rename`, `skip`, and the
//! shapes an entity cannot have).
//!
//! Nothing here emits code; `entity.rs` turns the parsed attributes into the `Entity` impl.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Expr, ExprLit, ExprUnary, Lit, LitStr, Token, UnOp};

use crate::case::RenameRule;
use crate::entity::Kind;
use crate::internals::Ctxt;

/// The keys `#[entity(...)]` accepts on a field, for error messages.
const FIELD_KEYS: &str = "id, index, unique, default, rename, skip, json, type, version";

/// Field keys that make no sense on the version field, whose column dal maintains. (`skip` has
/// its own, more general, error.)
const NOT_WITH_VERSION: [&str; 7] = ["id", "rename", "index", "unique", "default", "json", "type"];

/// Struct-level serde attributes under which the struct is no longer serialized as one map key
/// per field.
const SERDE_NOT_PLAIN: [&str; 8] = [
    "tag",
    "untagged",
    "content",
    "transparent",
    "remote",
    "into",
    "from",
    "try_from",
];

/// `#[entity(...)]` and the relevant `#[serde(...)]` on the struct.
#[derive(Default)]
pub(crate) struct ContainerAttrs {
    /// `table = "..."`.
    pub table: Option<String>,
    /// `#[serde(rename_all = "...")]` when serializing (`rename_all(serialize = "...")`).
    pub rename_all_ser: RenameRule,
    /// `#[serde(rename_all = "...")]` when deserializing (`rename_all(deserialize = "...")`).
    pub rename_all_de: RenameRule,
}

/// `#[entity(...)]` and the relevant `#[serde(...)]` on one field.
#[derive(Default)]
pub(crate) struct FieldAttrs {
    /// `id`, with the span of the key (for the "more than one id" error).
    pub id: Option<Span>,
    /// `version`, with the span of the key (for the "more than one version" error).
    pub version: Option<Span>,
    pub index: bool,
    pub unique: bool,
    /// `default = <literal>`, as JSON text.
    pub default: Option<String>,
    /// `rename = "column"`, with the span of the literal.
    pub rename: Option<(String, Span)>,
    /// `skip`, `#[serde(skip)]` or `#[serde(skip_serializing)]`: the field is not stored.
    pub skip: bool,
    /// The logical type given by `json` or `type = "..."` (else inferred from the Rust type).
    pub ty: Option<Kind>,
    /// The key serde writes the field under: the field name, after the struct's
    /// `#[serde(rename_all)]`, or the field's `#[serde(rename)]`.
    pub serde_name: String,
}

/// Reads `#[entity(table = "...")]` and `#[serde(...)]` on the struct named `name`.
pub(crate) fn container(cx: &mut Ctxt, name: &str, attrs: &[Attribute]) -> ContainerAttrs {
    let mut out = ContainerAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("entity")) {
        let parsed = attr.parse_nested_meta(|meta| {
            let key = key_of(&meta);
            match key.as_str() {
                "table" => {
                    if let Some(v) = string_value(cx, &meta, "table", "table_name")? {
                        set_once(cx, &meta, &mut out.table, v);
                    }
                }
                _ => {
                    cx.error_spanned_by(
                        &meta.path,
                        format!(
                            "unknown `entity` attribute `{key}` on struct `{name}`; expected `table = \"...\"`"
                        ),
                    );
                    skip_value(&meta)?;
                }
            }
            Ok(())
        });
        if let Err(e) = parsed {
            cx.syn_error(e);
        }
    }

    // `rename_all` as (serialize, deserialize); `None` in a slot: not given (serde: no rule).
    let mut rules: (Option<RenameRule>, Option<RenameRule>) = (None, None);
    let mut rename_all: Option<Span> = None;
    let mut unknown_rule = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        // A syntax error is serde's to report: stop reading this attribute, silently.
        let _ = attr.parse_nested_meta(|meta| {
            let key = key_of(&meta);
            if key == "rename_all" {
                rename_all = Some(span_of(&meta.path));
                for (side, rule) in ser_and_de(&meta)? {
                    match RenameRule::parse(&rule) {
                        Some(r) if side.ser => rules.0 = Some(r),
                        Some(r) => rules.1 = Some(r),
                        None => unknown_rule = true,
                    }
                }
            } else if SERDE_NOT_PLAIN.contains(&key.as_str()) {
                cx.error_spanned_by(
                    &meta.path,
                    format!(
                        "`#[serde({key})]` cannot be used on entity `{name}`: an entity needs a plain field-per-column struct, serialized as a map with one key per field"
                    ),
                );
                skip_value(&meta)?;
            } else {
                skip_value(&meta)?;
            }
            Ok(())
        });
    }
    out.rename_all_ser = rules.0.unwrap_or_default();
    out.rename_all_de = rules.1.unwrap_or_default();
    if let Some(span) = rename_all {
        // An unknown rule is reported by serde.
        if out.rename_all_ser != out.rename_all_de && !unknown_rule {
            cx.error_at(
                span,
                format!(
                    "`#[serde(rename_all)]` on `{name}` names fields differently when serializing ({}) and deserializing ({}): an entity must read back the keys it writes; use a single rule: `rename_all = \"...\"`",
                    rule_text(out.rename_all_ser),
                    rule_text(out.rename_all_de)
                ),
            );
        }
    }
    out
}

/// `` `camelCase` ``, or `no rule`.
fn rule_text(rule: RenameRule) -> String {
    match rule {
        RenameRule::None => "no rule".to_owned(),
        rule => format!("`{}`", rule.name()),
    }
}

/// Reads the `#[entity(...)]` and `#[serde(...)]` attributes of the field named `ident` in a
/// struct whose attributes are `container`.
pub(crate) fn field(
    cx: &mut Ctxt,
    ident: &syn::Ident,
    attrs: &[Attribute],
    container: &ContainerAttrs,
) -> FieldAttrs {
    let field = &syn::ext::IdentExt::unraw(ident).to_string();
    let mut out = FieldAttrs::default();
    // Every known key given, with its span.
    let mut seen: Vec<(String, Span)> = Vec::new();
    let mut json = false;
    let mut explicit_type: Option<Kind> = None;
    let mut serde = SerdeField::default();
    for attr in attrs {
        if attr.path().is_ident("serde") {
            serde_field(cx, field, attr, &mut serde);
            continue;
        }
        if !attr.path().is_ident("entity") {
            continue;
        }
        let parsed = attr.parse_nested_meta(|meta| {
            let key = key_of(&meta);
            let span = span_of(&meta.path);
            if FIELD_KEYS.split(", ").any(|k| k == key) {
                if seen.iter().any(|(k, _)| *k == key) {
                    cx.error_spanned_by(
                        &meta.path,
                        format!("duplicate `entity` attribute `{key}` on field `{field}`"),
                    );
                }
                seen.push((key.clone(), span));
            }
            match key.as_str() {
                "id" => {
                    if flag(cx, &meta, "id")? {
                        out.id = Some(span);
                    }
                }
                "version" => {
                    if flag(cx, &meta, "version")? {
                        out.version = Some(span);
                    }
                }
                "index" => out.index |= flag(cx, &meta, "index")?,
                "unique" => out.unique |= flag(cx, &meta, "unique")?,
                "skip" => out.skip |= flag(cx, &meta, "skip")?,
                "json" => json |= flag(cx, &meta, "json")?,
                "type" => {
                    if let Some(lit) = string_lit(cx, &meta, "type", "decimal")? {
                        match Kind::from_attr(&lit.value()) {
                            Some(kind) => explicit_type = Some(kind),
                            None => cx.error_spanned_by(
                                &lit,
                                format!(
                                    "unknown `type` {:?} on field `{field}`; expected one of: {}",
                                    lit.value(),
                                    Kind::ATTR_NAMES
                                ),
                            ),
                        }
                    }
                }
                "rename" => {
                    if let Some(lit) = string_lit(cx, &meta, "rename", "column_name")? {
                        out.rename = Some((lit.value(), lit.span()));
                    }
                }
                "default" => {
                    if !meta.input.peek(Token![=]) {
                        cx.error_spanned_by(
                            &meta.path,
                            format!(
                                "`default` on field `{field}` needs a value: `default = <literal>`"
                            ),
                        );
                        skip_value(&meta)?;
                    } else {
                        let expr: Expr = meta.value()?.parse()?;
                        match literal_json(&expr) {
                            Ok(json) => out.default = Some(json),
                            Err(msg) => cx.error_spanned_by(
                                &expr,
                                format!("`default` on field `{field}` {msg}"),
                            ),
                        }
                    }
                }
                _ => {
                    cx.error_spanned_by(
                        &meta.path,
                        format!(
                            "unknown `entity` attribute `{key}` on field `{field}`; expected one of: {FIELD_KEYS}"
                        ),
                    );
                    skip_value(&meta)?;
                }
            }
            Ok(())
        });
        if let Err(e) = parsed {
            cx.syn_error(e);
        }
    }

    let span_of_key = |key: &str| seen.iter().find(|(k, _)| k == key).map(|(_, s)| *s);
    if out.skip && seen.iter().any(|(k, _)| k != "skip") {
        cx.error_spanned_by(
            ident,
            format!("field `{field}` is `skip`ped: it cannot take other `entity` attributes"),
        );
    } else if serde.skip {
        // Not serialized, so not stored: an `entity` attribute would be silently ignored.
        if let Some((key, span)) = seen.iter().find(|(k, _)| k != "skip") {
            cx.error_at(
                *span,
                format!(
                    "field `{field}` is not serialized (`#[serde(skip)]` or `skip_serializing`), so it is not stored: it cannot take `entity` attribute `{key}`"
                ),
            );
        }
    }
    if json && explicit_type.is_some() {
        if let Some(span) = span_of_key("type") {
            cx.error_at(
                span,
                format!(
                    "`type` cannot be combined with `json` on field `{field}` (`json` is `type = \"json\"`): keep one"
                ),
            );
        }
    }
    if out.version.is_some() {
        for (key, span) in seen
            .iter()
            .filter(|(k, _)| NOT_WITH_VERSION.contains(&k.as_str()))
        {
            cx.error_at(
                *span,
                format!(
                    "`{key}` cannot be combined with `version` on field `{field}`: the version field receives the entity's `version` column, which dal maintains"
                ),
            );
        }
    }
    out.skip |= serde.skip;
    out.ty = if json {
        Some(Kind::Json)
    } else {
        explicit_type
    };

    let default_ser = container.rename_all_ser.apply_to_field(field);
    let ser = serde.ser.unwrap_or(default_ser);
    if let Some(span) = serde.rename.filter(|_| !out.skip) {
        // `rename` given for one side at least: serde reads the key back under `de` (several
        // `deserialize` names are all accepted).
        let de_ok = if serde.de.is_empty() {
            container.rename_all_de.apply_to_field(field) == ser
        } else {
            serde.de.contains(&ser)
        };
        if !de_ok {
            let de = serde
                .de
                .first()
                .cloned()
                .unwrap_or_else(|| container.rename_all_de.apply_to_field(field));
            cx.error_at(
                span,
                format!(
                    "field `{field}` is serialized as `{ser}` but deserialized from `{de}`: an entity must read back the keys it writes; use a single name: `#[serde(rename = \"...\")]`"
                ),
            );
        }
    }
    out.serde_name = ser;
    out
}

/// What `#[serde(...)]` on a field says about storage.
#[derive(Default)]
struct SerdeField {
    /// Span of the `rename` key, when given.
    rename: Option<Span>,
    /// `rename = "x"` or `rename(serialize = "x")`.
    ser: Option<String>,
    /// `rename = "x"` or `rename(deserialize = "x")` (may be repeated).
    de: Vec<String>,
    /// `skip` or `skip_serializing`.
    skip: bool,
}

/// Reads one `#[serde(...)]` on the field named `field`. Everything but `rename`, `skip`,
/// `skip_serializing` and `flatten` is serde's business and ignored, as are syntax errors
/// (serde reports them).
fn serde_field(cx: &mut Ctxt, field: &str, attr: &Attribute, out: &mut SerdeField) {
    let _ = attr.parse_nested_meta(|meta| {
        let key = key_of(&meta);
        match key.as_str() {
            "rename" => {
                out.rename = Some(span_of(&meta.path));
                for (side, name) in ser_and_de(&meta)? {
                    if side.ser {
                        out.ser = Some(name);
                    } else {
                        out.de.push(name);
                    }
                }
            }
            "skip" | "skip_serializing" => out.skip = true,
            "flatten" => {
                cx.error_spanned_by(
                    &meta.path,
                    format!(
                        "`#[serde(flatten)]` on field `{field}` cannot be used in an entity: an entity needs a plain field-per-column struct; store the nested value as one JSON column (without `flatten`)"
                    ),
                );
                skip_value(&meta)?;
            }
            _ => skip_value(&meta)?,
        }
        Ok(())
    });
}

/// Which side of a serde `serialize`/`deserialize` pair a value is for.
#[derive(Clone, Copy)]
struct Side {
    ser: bool,
}

/// The string values of serde's `key = "v"` (both sides) or
/// `key(serialize = "a", deserialize = "b")` (either or both). Non-string values are skipped.
fn ser_and_de(meta: &ParseNestedMeta) -> syn::Result<Vec<(Side, String)>> {
    let mut out = Vec::new();
    if meta.input.peek(Token![=]) {
        let expr: Expr = meta.value()?.parse()?;
        if let Some(s) = lit_str(&expr) {
            out.push((Side { ser: true }, s.clone()));
            out.push((Side { ser: false }, s));
        }
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| {
            let side = if inner.path.is_ident("serialize") {
                Some(Side { ser: true })
            } else if inner.path.is_ident("deserialize") {
                Some(Side { ser: false })
            } else {
                None
            };
            if inner.input.peek(Token![=]) {
                let expr: Expr = inner.value()?.parse()?;
                if let (Some(side), Some(s)) = (side, lit_str(&expr)) {
                    out.push((side, s));
                }
            } else {
                skip_value(&inner)?;
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// The value of a string literal (possibly in a macro's invisible group).
fn lit_str(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s.value()),
        Expr::Group(g) => lit_str(&g.expr),
        _ => None,
    }
}

fn key_of(meta: &ParseNestedMeta) -> String {
    meta.path
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_else(|| meta.path.to_token_stream().to_string().replace(' ', ""))
}

fn span_of(path: &syn::Path) -> Span {
    path.segments
        .first()
        .map(|s| s.ident.span())
        .unwrap_or_else(Span::call_site)
}

fn set_once(cx: &mut Ctxt, meta: &ParseNestedMeta, slot: &mut Option<String>, v: String) {
    if slot.is_some() {
        cx.error_spanned_by(
            &meta.path,
            format!("duplicate `entity` attribute `{}`", key_of(meta)),
        );
    }
    *slot = Some(v);
}

/// A key without a value (`index`). A value given anyway is an error (and skipped).
fn flag(cx: &mut Ctxt, meta: &ParseNestedMeta, key: &str) -> syn::Result<bool> {
    if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
        cx.error_spanned_by(
            &meta.path,
            format!("`entity` attribute `{key}` takes no value: write `#[entity({key})]`"),
        );
        skip_value(meta)?;
        return Ok(false);
    }
    Ok(true)
}

/// `key = "string"`. A missing value or a non-string is an error (recorded, not returned, so
/// that parsing goes on and every mistake is reported).
fn string_value(
    cx: &mut Ctxt,
    meta: &ParseNestedMeta,
    key: &str,
    example: &str,
) -> syn::Result<Option<String>> {
    Ok(string_lit(cx, meta, key, example)?.map(|lit| lit.value()))
}

/// [`string_value`], keeping the literal (for its span).
fn string_lit(
    cx: &mut Ctxt,
    meta: &ParseNestedMeta,
    key: &str,
    example: &str,
) -> syn::Result<Option<LitStr>> {
    if !meta.input.peek(Token![=]) {
        cx.error_spanned_by(
            &meta.path,
            format!("`{key}` needs a value: `{key} = \"{example}\"`"),
        );
        skip_value(meta)?;
        return Ok(None);
    }
    let expr: Expr = meta.value()?.parse()?;
    match &expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) if !s.value().is_empty() => Ok(Some(s.clone())),
        _ => {
            cx.error_spanned_by(
                &expr,
                format!("`{key}` must be a non-empty string literal: `{key} = \"{example}\"`"),
            );
            Ok(None)
        }
    }
}

/// Consumes whatever follows a key (`= expr` or `(...)`), so parsing can go on after an error.
fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        let _: Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _content;
        syn::parenthesized!(_content in meta.input);
        let _: TokenStream = _content.parse()?;
    }
    Ok(())
}

/// The JSON text of a string, integer, float, boolean or char literal (integers and floats may
/// be negated).
fn literal_json(expr: &Expr) -> Result<String, &'static str> {
    const EXPECTED: &str = "must be a string, integer, float or boolean literal";
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => match lit {
            Lit::Str(s) => Ok(json_string(&s.value())),
            Lit::Char(c) => Ok(json_string(&c.value().to_string())),
            Lit::Bool(b) => Ok(b.value.to_string()),
            Lit::Int(i) => Ok(i.base10_digits().to_owned()),
            Lit::Float(f) => float_json(f.base10_digits()),
            _ => Err(EXPECTED),
        },
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr: inner,
            ..
        }) => match &**inner {
            Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }) => Ok(format!("-{}", i.base10_digits())),
            Expr::Lit(ExprLit {
                lit: Lit::Float(f), ..
            }) => float_json(f.base10_digits()).map(|s| format!("-{s}")),
            _ => Err(EXPECTED),
        },
        Expr::Group(g) => literal_json(&g.expr),
        Expr::Paren(p) => literal_json(&p.expr),
        _ => Err(EXPECTED),
    }
}

/// A float literal's digits as JSON (`1.` is Rust, not JSON).
fn float_json(digits: &str) -> Result<String, &'static str> {
    match digits.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(format!("{v:?}")),
        _ => Err("is a float literal out of range"),
    }
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_become_json_text() {
        let json = |src: &str| literal_json(&syn::parse_str(src).unwrap());
        assert_eq!(json(r#""x""#), Ok(r#""x""#.to_owned()));
        assert_eq!(json(r#""a\"b\n""#), Ok(r#""a\"b\n""#.to_owned()));
        assert_eq!(json("5"), Ok("5".to_owned()));
        assert_eq!(json("-5i64"), Ok("-5".to_owned()));
        assert_eq!(json("0x10"), Ok("16".to_owned()));
        assert_eq!(json("1.5"), Ok("1.5".to_owned()));
        assert_eq!(json("2."), Ok("2.0".to_owned()));
        assert_eq!(json("-0.25f32"), Ok("-0.25".to_owned()));
        assert_eq!(json("true"), Ok("true".to_owned()));
        assert_eq!(json("'c'"), Ok(r#""c""#.to_owned()));
        assert!(json("some_const").is_err());
        assert!(json("1 + 1").is_err());
        assert!(json("b\"bytes\"").is_err());
    }
}
