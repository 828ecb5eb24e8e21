//! Step 1a, attribute parsing: reads `#[entity(...)]`, and the `#[serde(...)]` keys that decide
//! the stored keys (`rename_all`, `rename`, `skip`, `skip_serializing`) or that an entity cannot
//! have (`flatten`, `tag`, `untagged`, ...), into plain values that keep the tokens they came
//! from.
//!
//! Errors here are about one key at a time — unknown, duplicated, missing or malformed value,
//! unknown type name — each at the key or value at fault. Whether keys may be combined, and
//! whether serde's are allowed at all, is `check`'s business; names are resolved in `ast`.
//! Syntax errors inside `#[serde(...)]` are serde's to report, and skipped silently.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Expr, ExprLit, ExprUnary, Lit, LitStr, Token, UnOp};

use super::case::RenameRule;
use super::ctxt::{Ctxt, Site};
use super::ty::Kind;

/// The keys `#[entity(...)]` accepts on a field, for error messages.
const FIELD_KEYS: &str =
    "id, index, unique, default, check, references, rename, skip, json, type, version";

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

/// A key as written in an attribute: its name, and its path to point errors at.
#[derive(Clone)]
pub(crate) struct Key {
    pub name: String,
    pub path: syn::Path,
}

/// The struct's `#[serde(rename_all ...)]`.
#[derive(Default)]
pub(crate) struct RenameAll {
    /// The rule when serializing (`rename_all = "..."`, `rename_all(serialize = "...")`).
    pub ser: RenameRule,
    /// The rule when deserializing (`rename_all = "..."`, `rename_all(deserialize = "...")`).
    pub de: RenameRule,
    /// The last `rename_all` key, when given.
    pub key: Option<syn::Path>,
    /// A rule serde does not know was given (serde reports it).
    pub unknown: bool,
}

/// `#[entity(...)]` and the relevant `#[serde(...)]` on the struct.
#[derive(Default)]
pub(crate) struct Container {
    /// `table = "..."`.
    pub table: Option<String>,
    pub rename_all: RenameAll,
    /// `tag`, `untagged`, ... (see `SERDE_NOT_PLAIN`), in order.
    pub serde_not_plain: Vec<Key>,
}

/// `#[entity(...)]` and the relevant `#[serde(...)]` on one field.
#[derive(Default)]
pub(crate) struct Field {
    /// Every known `entity` key given, in order, duplicates included, even when its value was
    /// refused (unknown keys are reported here and not kept).
    pub keys: Vec<Key>,
    /// `id`, by its key.
    pub id: Option<syn::Path>,
    /// `version`, by its key.
    pub version: Option<syn::Path>,
    pub index: bool,
    pub unique: bool,
    /// `default = <literal>`, as JSON text.
    pub default: Option<String>,
    /// `check = "expr"`: a CHECK constraint in portable SQL.
    pub check: Option<String>,
    /// `references = "entity"`: a foreign key to that entity's id.
    pub references: Option<String>,
    /// `rename = "column"`.
    pub rename: Option<LitStr>,
    /// `skip` (serde's skips are in `serde`).
    pub skip: bool,
    pub json: bool,
    /// `type = "..."`, when the name is known.
    pub explicit_type: Option<Kind>,
    pub serde: SerdeField,
}

/// What `#[serde(...)]` on a field says about storage.
#[derive(Default)]
pub(crate) struct SerdeField {
    /// The last `rename` key, when given.
    pub rename: Option<syn::Path>,
    /// The last `rename = "x"` or `rename(serialize = "x")`.
    pub ser: Option<LitStr>,
    /// Every `rename = "x"` and `rename(deserialize = "x")` (serde accepts them all).
    pub de: Vec<String>,
    /// `skip` or `skip_serializing`.
    pub skip: bool,
    /// `flatten` keys, with the index of the field attribute each is in.
    pub flatten: Vec<(usize, syn::Path)>,
}

impl Container {
    /// Reads `#[entity(table = "...")]` and `#[serde(...)]` on the struct named `name`.
    pub(crate) fn from_ast(cx: &mut Ctxt, name: &str, attrs: &[Attribute]) -> Container {
        cx.set_site(Site::Container);
        let mut out = Container::default();
        for attr in attrs.iter().filter(|a| a.path().is_ident("entity")) {
            let parsed =
                attr.parse_nested_meta(|meta| entity_container_key(cx, &meta, name, &mut out));
            if let Err(e) = parsed {
                cx.syn_error(e);
            }
        }
        // `rename_all` as (serialize, deserialize); `None` in a slot: not given (serde: no rule).
        let mut rules: (Option<RenameRule>, Option<RenameRule>) = (None, None);
        for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
            // A syntax error is serde's to report: stop reading this attribute, silently.
            let _ = attr.parse_nested_meta(|meta| serde_container_key(&meta, &mut out, &mut rules));
        }
        out.rename_all.ser = rules.0.unwrap_or_default();
        out.rename_all.de = rules.1.unwrap_or_default();
        out
    }
}

/// One key of `#[entity(...)]` on the struct named `name`.
fn entity_container_key(
    cx: &mut Ctxt,
    meta: &ParseNestedMeta,
    name: &str,
    out: &mut Container,
) -> syn::Result<()> {
    let key = key_of(meta);
    match key.as_str() {
        "table" => {
            if let Some(v) = string_lit(cx, meta, "table", "table_name")? {
                set_once(cx, meta, &mut out.table, v.value());
            }
        }
        _ => {
            cx.error_spanned_by(
                &meta.path,
                format!("unknown `entity` attribute `{key}` on struct `{name}`; expected `table = \"...\"`"),
            );
            skip_value(meta)?;
        }
    }
    Ok(())
}

/// One key of `#[serde(...)]` on the struct: `rename_all` is read into `rules`, the keys of
/// `SERDE_NOT_PLAIN` are recorded, the rest skipped.
fn serde_container_key(
    meta: &ParseNestedMeta,
    out: &mut Container,
    rules: &mut (Option<RenameRule>, Option<RenameRule>),
) -> syn::Result<()> {
    let key = key_of(meta);
    if key == "rename_all" {
        out.rename_all.key = Some(meta.path.clone());
        for (side, rule) in ser_and_de(meta)? {
            match RenameRule::parse(&rule.value()) {
                Some(r) if side.ser => rules.0 = Some(r),
                Some(r) => rules.1 = Some(r),
                None => out.rename_all.unknown = true,
            }
        }
    } else {
        if SERDE_NOT_PLAIN.contains(&key.as_str()) {
            out.serde_not_plain.push(Key {
                name: key,
                path: meta.path.clone(),
            });
        }
        skip_value(meta)?;
    }
    Ok(())
}

impl Field {
    /// Reads the `#[entity(...)]` and `#[serde(...)]` attributes of the field at `index`, named
    /// `name` (without `r#`).
    pub(crate) fn from_ast(cx: &mut Ctxt, index: usize, name: &str, attrs: &[Attribute]) -> Field {
        let mut out = Field::default();
        for (i, attr) in attrs.iter().enumerate() {
            cx.set_site(Site::field_attr(index, i));
            if attr.path().is_ident("serde") {
                serde_field(i, attr, &mut out.serde);
            } else if attr.path().is_ident("entity") {
                let parsed =
                    attr.parse_nested_meta(|meta| entity_field_key(cx, &meta, name, &mut out));
                if let Err(e) = parsed {
                    cx.syn_error(e);
                }
            }
        }
        out
    }

    /// Not stored: `skip`, `#[serde(skip)]` or `#[serde(skip_serializing)]`.
    pub(crate) fn skipped(&self) -> bool {
        self.skip || self.serde.skip
    }

    /// The logical type given by `json` or `type = "..."` (else it is inferred from the type).
    pub(crate) fn given_type(&self) -> Option<Kind> {
        if self.json {
            Some(Kind::Json)
        } else {
            self.explicit_type
        }
    }

    /// The first `entity` key named `name`.
    pub(crate) fn key(&self, name: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.name == name)
    }
}

/// One key of `#[entity(...)]` on the field named `field`.
fn entity_field_key(
    cx: &mut Ctxt,
    meta: &ParseNestedMeta,
    field: &str,
    out: &mut Field,
) -> syn::Result<()> {
    let key = key_of(meta);
    if FIELD_KEYS.split(", ").any(|k| k == key) {
        if out.key(&key).is_some() {
            cx.error_spanned_by(
                &meta.path,
                format!("duplicate `entity` attribute `{key}` on field `{field}`"),
            );
        }
        out.keys.push(Key {
            name: key.clone(),
            path: meta.path.clone(),
        });
    }
    match key.as_str() {
        "id" => {
            if flag(cx, meta, "id")? {
                out.id = Some(meta.path.clone());
            }
        }
        "version" => {
            if flag(cx, meta, "version")? {
                out.version = Some(meta.path.clone());
            }
        }
        "index" => out.index |= flag(cx, meta, "index")?,
        "unique" => out.unique |= flag(cx, meta, "unique")?,
        "skip" => out.skip |= flag(cx, meta, "skip")?,
        "json" => out.json |= flag(cx, meta, "json")?,
        "type" => {
            if let Some(lit) = string_lit(cx, meta, "type", "decimal")? {
                match Kind::from_attr(&lit.value()) {
                    Some(kind) => out.explicit_type = Some(kind),
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
            if let Some(lit) = string_lit(cx, meta, "rename", "column_name")? {
                out.rename = Some(lit);
            }
        }
        "default" => default_value(cx, meta, field, out)?,
        "check" => {
            if let Some(lit) = string_lit(cx, meta, "check", "[score] >= 0")? {
                out.check = Some(lit.value());
            }
        }
        "references" => {
            if let Some(lit) = string_lit(cx, meta, "references", "users")? {
                out.references = Some(lit.value());
            }
        }
        _ => {
            cx.error_spanned_by(
                &meta.path,
                format!("unknown `entity` attribute `{key}` on field `{field}`; expected one of: {FIELD_KEYS}"),
            );
            skip_value(meta)?;
        }
    }
    Ok(())
}

/// `default = <literal>` on the field named `field`.
fn default_value(
    cx: &mut Ctxt,
    meta: &ParseNestedMeta,
    field: &str,
    out: &mut Field,
) -> syn::Result<()> {
    if !meta.input.peek(Token![=]) {
        cx.error_spanned_by(
            &meta.path,
            format!("`default` on field `{field}` needs a value: `default = <literal>`"),
        );
        return skip_value(meta);
    }
    let expr: Expr = meta.value()?.parse()?;
    match literal_json(&expr) {
        Ok(json) => out.default = Some(json),
        Err(msg) => cx.error_spanned_by(&expr, format!("`default` on field `{field}` {msg}")),
    }
    Ok(())
}

/// Reads one `#[serde(...)]`, the field's attribute at `index`. Everything but `rename`, `skip`,
/// `skip_serializing` and `flatten` is serde's business and ignored, as are syntax errors
/// (serde reports them).
fn serde_field(index: usize, attr: &Attribute, out: &mut SerdeField) {
    let _ = attr.parse_nested_meta(|meta| {
        match key_of(&meta).as_str() {
            "rename" => {
                out.rename = Some(meta.path.clone());
                for (side, name) in ser_and_de(&meta)? {
                    if side.ser {
                        out.ser = Some(name);
                    } else {
                        out.de.push(name.value());
                    }
                }
            }
            "skip" | "skip_serializing" => out.skip = true,
            "flatten" => {
                out.flatten.push((index, meta.path.clone()));
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

/// The string literals of serde's `key = "v"` (both sides) or
/// `key(serialize = "a", deserialize = "b")` (either or both). Non-string values are skipped.
fn ser_and_de(meta: &ParseNestedMeta) -> syn::Result<Vec<(Side, LitStr)>> {
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

/// A string literal (possibly in a macro's invisible group).
fn lit_str(expr: &Expr) -> Option<LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s.clone()),
        Expr::Group(g) => lit_str(&g.expr),
        _ => None,
    }
}

/// The key's name: `index`, or `a::b` for a path.
fn key_of(meta: &ParseNestedMeta) -> String {
    meta.path
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_else(|| meta.path.to_token_stream().to_string().replace(' ', ""))
}

/// Stores `v` in `slot`; a second value for the same key is an error (the last one wins).
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
