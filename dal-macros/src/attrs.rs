//! Attribute parsing and validation: an error context that collects every problem (so the user
//! sees all of them in one build), and the `#[entity(...)]` / `#[serde(...)]` readers.
//!
//! Nothing here emits code; `entity.rs` turns the parsed attributes into the `Entity` impl.

use std::fmt::Display;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, ExprLit, ExprUnary, Lit, Meta, MetaNameValue, Token, UnOp};

/// Collects errors, each at the user's span, and reports them all at once.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: Vec<syn::Error>,
}

impl Ctxt {
    /// Records an error spanned at `obj`.
    pub(crate) fn error_spanned_by<T: ToTokens, M: Display>(&mut self, obj: T, msg: M) {
        self.errors
            .push(syn::Error::new_spanned(obj.into_token_stream(), msg));
    }

    /// Records an error produced by syn.
    pub(crate) fn syn_error(&mut self, err: syn::Error) {
        self.errors.push(err);
    }

    /// `Ok` when nothing was recorded, else every error combined into one.
    pub(crate) fn check(self) -> syn::Result<()> {
        let mut errors = self.errors.into_iter();
        let Some(mut first) = errors.next() else {
            return Ok(());
        };
        for e in errors {
            first.combine(e);
        }
        Err(first)
    }
}

/// The keys `#[entity(...)]` accepts on a field, for error messages.
const FIELD_KEYS: &str = "id, index, unique, default, rename, skip, json";

/// `#[entity(...)]` on the struct.
#[derive(Default)]
pub(crate) struct ContainerAttrs {
    /// `table = "..."`.
    pub table: Option<String>,
}

/// `#[entity(...)]` and `#[serde(rename = ...)]` on one field.
#[derive(Default)]
pub(crate) struct FieldAttrs {
    /// `id`, with the span of the key (for the "more than one id" error).
    pub id: Option<Span>,
    pub index: bool,
    pub unique: bool,
    /// `default = <literal>`, as JSON text.
    pub default: Option<String>,
    /// `rename = "column"`.
    pub rename: Option<String>,
    pub skip: bool,
    /// `json`: force the JSON logical type.
    pub json: bool,
    /// `#[serde(rename = "...")]` (or `rename(serialize = "...")`).
    pub serde_name: Option<String>,
}

/// Reads `#[entity(table = "...")]` on the struct named `name`.
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
    out
}

/// Reads the `#[entity(...)]` and `#[serde(...)]` attributes of the field named `field`.
pub(crate) fn field(cx: &mut Ctxt, ident: &syn::Ident, attrs: &[Attribute]) -> FieldAttrs {
    let field = &syn::ext::IdentExt::unraw(ident).to_string();
    let mut out = FieldAttrs::default();
    let mut seen: Vec<String> = Vec::new();
    for attr in attrs {
        if attr.path().is_ident("serde") {
            if let Some(name) = serde_rename(attr) {
                out.serde_name = Some(name);
            }
            continue;
        }
        if !attr.path().is_ident("entity") {
            continue;
        }
        let parsed = attr.parse_nested_meta(|meta| {
            let key = key_of(&meta);
            if FIELD_KEYS.split(", ").any(|k| k == key) {
                if seen.contains(&key) {
                    cx.error_spanned_by(
                        &meta.path,
                        format!("duplicate `entity` attribute `{key}` on field `{field}`"),
                    );
                }
                seen.push(key.clone());
            }
            match key.as_str() {
                "id" => {
                    if flag(cx, &meta, "id")? {
                        out.id = Some(span_of(&meta.path));
                    }
                }
                "index" => out.index |= flag(cx, &meta, "index")?,
                "unique" => out.unique |= flag(cx, &meta, "unique")?,
                "skip" => out.skip |= flag(cx, &meta, "skip")?,
                "json" => out.json |= flag(cx, &meta, "json")?,
                "rename" => {
                    if let Some(v) = string_value(cx, &meta, "rename", "column_name")? {
                        out.rename = Some(v);
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
    if out.skip && seen.iter().any(|k| k != "skip") {
        cx.error_spanned_by(
            ident,
            format!("field `{field}` is `skip`ped: it cannot take other `entity` attributes"),
        );
    }
    out
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
        }) if !s.value().is_empty() => Ok(Some(s.value())),
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

/// The serialized name from `#[serde(rename = "x")]` or `#[serde(rename(serialize = "x"))]`.
/// Anything else in the attribute is serde's business and ignored here (serde reports its own
/// syntax errors).
fn serde_rename(attr: &Attribute) -> Option<String> {
    let metas = attr
        .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
        .ok()?;
    let mut found = None;
    for meta in metas {
        match meta {
            Meta::NameValue(MetaNameValue {
                path,
                value:
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(s), ..
                    }),
                ..
            }) if path.is_ident("rename") => found = Some(s.value()),
            Meta::List(list) if list.path.is_ident("rename") => {
                let inner = list
                    .parse_args_with(Punctuated::<MetaNameValue, Token![,]>::parse_terminated)
                    .ok()?;
                for nv in inner {
                    if let Expr::Lit(ExprLit {
                        lit: Lit::Str(s), ..
                    }) = &nv.value
                    {
                        if nv.path.is_ident("serialize") {
                            found = Some(s.value());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    found
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
