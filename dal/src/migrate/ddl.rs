//! Pieces of statements: constraint names, literals, `_meta` rows, and SQLite's table rebuild.
//! Statements are portable SQL (`[name]` quoting), translated to the backend's SQL by the plan.

use sha2::{Digest, Sha256};

use super::catalog::LiveEntity;
use super::model::{EntitySchema, FieldSpec};
use crate::backend::Dialect;
use crate::entity::schema::index_name;
use crate::entity::FieldType;
use crate::error::{Error, Result};
use crate::sql::Backend;

/// First 8 hex digits of SHA-256 (stable across builds, unlike std's hasher).
fn h8(s: &str) -> String {
    Sha256::digest(s.as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `dal_ck_<entity.field>_` : the prefix of every check dal makes for the field.
pub(crate) fn check_prefix(entity: &str, field: &str) -> String {
    format!("dal_ck_{}_", h8(&format!("{entity}.{field}")))
}

/// The name of the check `expr` on `entity.field`: changes when the expression does.
pub(crate) fn check_name(entity: &str, field: &str, expr: &str) -> String {
    format!("{}{}", check_prefix(entity, field), h8(expr))
}

/// `dal_fk_<entity.field>_` : the prefix of every foreign key dal makes for the field.
pub(crate) fn fk_prefix(entity: &str, field: &str) -> String {
    format!("dal_fk_{}_", h8(&format!("{entity}.{field}")))
}

/// The name of the foreign key from `entity.field` to `target`.
pub(crate) fn fk_name(entity: &str, field: &str, target: &str) -> String {
    format!("{}{}", fk_prefix(entity, field), h8(target))
}

/// A string literal (quotes doubled; MySQL also reads backslashes as escapes).
pub(crate) fn quote(backend: Backend, s: &str) -> String {
    let mut s = s.replace('\'', "''");
    if backend == Backend::MySql {
        s = s.replace('\\', "\\\\");
    }
    format!("'{s}'")
}

/// A declared default as an SQL literal for a column of type `ty`.
pub(crate) fn literal(backend: Backend, ty: FieldType, v: &serde_json::Value) -> Result<String> {
    use serde_json::Value as J;
    Ok(match v {
        _ if ty == FieldType::Json => quote(backend, &v.to_string()),
        J::String(s) => quote(backend, s),
        J::Number(n) => n.to_string(),
        J::Bool(b) if backend == Backend::Postgres => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        J::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
        other => {
            return Err(Error::Entity(format!(
                "a default must be a string, number or boolean, got {other}"
            )))
        }
    })
}

/// The catalog's default expression reduced to its value: `'a''b'::text` → `a'b`, `(-5)` →
/// `-5`; MySQL also escapes with backslashes (`'a\'b'`).
fn live_value(backend: Backend, live: &str) -> String {
    let mut s = live.trim();
    while s.starts_with('(') && s.ends_with(')') && s.len() >= 2 {
        s = s[1..s.len() - 1].trim();
    }
    if let Some(rest) = s.strip_prefix('\'') {
        if let Some(end) = rest.rfind('\'') {
            let inner = &rest[..end];
            if backend != Backend::MySql {
                return inner.replace("''", "'");
            }
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => out.push('\n'),
                        Some('t') => out.push('\t'),
                        Some('r') => out.push('\r'),
                        Some('0') => out.push('\0'),
                        Some(other) => out.push(other),
                        None => {}
                    },
                    '\'' if chars.peek() == Some(&'\'') => {
                        chars.next();
                        out.push('\'');
                    }
                    c => out.push(c),
                }
            }
            return out;
        }
    }
    match s.find("::") {
        Some(i) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

/// True when the catalog's default `live` is the declared `v`.
pub(crate) fn default_matches(
    backend: Backend,
    ty: FieldType,
    v: &serde_json::Value,
    live: Option<&str>,
) -> bool {
    use serde_json::Value as J;
    let Some(live) = live else { return false };
    let got = live_value(backend, live);
    let json_text = (ty == FieldType::Json).then(|| v.to_string());
    match v {
        _ if json_text.is_some() => Some(got) == json_text,
        J::String(s) => &got == s,
        J::Number(n) => got.parse::<f64>().ok() == n.as_f64(),
        J::Bool(b) => {
            let t = matches!(got.to_ascii_lowercase().as_str(), "true" | "t" | "1");
            let f = matches!(got.to_ascii_lowercase().as_str(), "false" | "f" | "0");
            if *b {
                t
            } else {
                f
            }
        }
        _ => false,
    }
}

/// Records `field` as `ty` in `_meta` (unless recorded).
pub(crate) fn meta_insert(
    d: &dyn Dialect,
    backend: Backend,
    meta: &str,
    field: &str,
    ty: FieldType,
) -> String {
    d.insert_if_absent(meta, &["name", "type"], "name")
        .replacen(
            "?, ?",
            &format!("{}, {}", quote(backend, field), quote(backend, ty.as_str())),
            1,
        )
}

/// Changes the type recorded for `field`.
pub(crate) fn meta_update(backend: Backend, meta: &str, field: &str, ty: FieldType) -> String {
    format!(
        "UPDATE [{meta}] SET [type] = {} WHERE [name] = {}",
        quote(backend, ty.as_str()),
        quote(backend, field)
    )
}

/// Forgets `field` in `_meta`.
pub(crate) fn meta_delete(backend: Backend, meta: &str, field: &str) -> String {
    format!(
        "DELETE FROM [{meta}] WHERE [name] = {}",
        quote(backend, field)
    )
}

/// True when the field's column must be a bounded type (MySQL cannot index `LONGTEXT`).
pub(crate) fn keyed(f: &FieldSpec) -> bool {
    f.index || f.unique || f.references.is_some()
}

/// SQLite cannot alter a column's type, nullability, default or constraints: the table is
/// rebuilt (created under a temporary name with the declared definition, rows copied, the old
/// table dropped, the new one renamed, its indexes recreated), inside the plan's transaction.
/// `dropped`: columns left out; `drop_indexes`: indexes not recreated.
pub(crate) fn sqlite_rebuild(
    d: &dyn Dialect,
    decl: &EntitySchema,
    live: &LiveEntity,
    dropped: &[String],
    drop_indexes: &[String],
) -> Result<Vec<String>> {
    let t = decl.name.as_str();
    let tmp = format!("{t}__dal_rebuild");
    let declared = |name: &str| decl.fields.iter().find(|f| f.name == name);
    let mut defs = Vec::new();
    let mut copied = Vec::new();
    let mut seen = Vec::new();
    for (name, col) in &live.columns {
        if dropped.contains(name) {
            continue;
        }
        seen.push(name.clone());
        copied.push(format!("[{name}]"));
        defs.push(match declared(name) {
            Some(f) => column_def(d, Backend::Sqlite, f, Some(&col.sql_type))?,
            None => {
                let mut s = format!("[{name}] {}", col.sql_type);
                if !col.nullable {
                    s.push_str(" NOT NULL");
                }
                if let Some(def) = &col.default {
                    s.push_str(&format!(" DEFAULT {def}"));
                }
                s
            }
        });
    }
    // Columns added earlier in the same plan.
    for f in &decl.fields {
        if !seen.contains(&f.name) && f.ty.is_some() {
            copied.push(format!("[{}]", f.name));
            defs.push(column_def(d, Backend::Sqlite, f, None)?);
        }
    }
    defs.push("PRIMARY KEY ([id])".to_owned());
    for f in &decl.fields {
        if let Some(c) = &f.check {
            defs.push(format!(
                "CONSTRAINT [{}] CHECK ({c})",
                check_name(t, &f.name, c)
            ));
        }
        if let Some(r) = &f.references {
            defs.push(format!(
                "CONSTRAINT [{}] FOREIGN KEY ([{}]) REFERENCES [{r}] ([id])",
                fk_name(t, &f.name, r),
                f.name
            ));
        }
    }
    let cols = copied.join(", ");
    let mut out = vec![
        // Rows of other tables that reference this one must survive the DROP: foreign keys
        // are checked at commit instead (the pragma ends with the transaction).
        "PRAGMA defer_foreign_keys = ON".to_owned(),
        format!("CREATE TABLE [{tmp}] ({})", defs.join(", ")),
        format!("INSERT INTO [{tmp}] ({cols}) SELECT {cols} FROM [{t}]"),
        format!("DROP TABLE [{t}]"),
        format!("ALTER TABLE [{tmp}] RENAME TO [{t}]"),
    ];
    let on_dropped = |name: &str| {
        dropped
            .iter()
            .any(|c| name == index_name(t, c, false) || name == index_name(t, c, true))
    };
    for (name, sql) in &live.index_sql {
        if !drop_indexes.contains(name) && !on_dropped(name) {
            out.push(sql.clone());
        }
    }
    Ok(out)
}

/// `[name] type [NOT NULL] [DEFAULT x]` of a declared field on the entity's table (SQLite's
/// rebuild; MySQL's `MODIFY`). `live_type`: the column's current type, kept when the field
/// declares none.
pub(crate) fn column_def(
    d: &dyn Dialect,
    backend: Backend,
    f: &FieldSpec,
    live_type: Option<&str>,
) -> Result<String> {
    let ty = match (f.ty, live_type) {
        (Some(t), _) => d.column_type(t, keyed(f)).to_owned(),
        (None, Some(l)) => l.to_owned(),
        (None, None) => "TEXT".to_owned(),
    };
    let mut s = format!("[{}] {ty}", f.name);
    s.push_str(if f.nullable { " NULL" } else { " NOT NULL" });
    if let Some(v) = &f.default {
        s.push_str(&format!(
            " DEFAULT {}",
            literal(backend, f.ty.unwrap_or(FieldType::Text), v)?
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn catalog_defaults_compare_with_declared_values() {
        assert!(default_matches(
            Backend::Postgres,
            FieldType::Int,
            &json!(5),
            Some("5")
        ));
        assert!(default_matches(
            Backend::Postgres,
            FieldType::Int,
            &json!(-5),
            Some("'-5'::bigint")
        ));
        assert!(default_matches(
            Backend::Postgres,
            FieldType::Int,
            &json!(-5),
            Some("(-5)")
        ));
        assert!(default_matches(
            Backend::Postgres,
            FieldType::Decimal,
            &json!(5),
            Some("5.0000000000000000000000000000")
        ));
        assert!(default_matches(
            Backend::Postgres,
            FieldType::Text,
            &json!("a'b"),
            Some("'a''b'::text")
        ));
        assert!(default_matches(
            Backend::Postgres,
            FieldType::Text,
            &json!("x"),
            Some("'x'")
        ));
        assert!(default_matches(
            Backend::Postgres,
            FieldType::Bool,
            &json!(true),
            Some("true")
        ));
        assert!(default_matches(
            Backend::Postgres,
            FieldType::Bool,
            &json!(false),
            Some("0")
        ));
        assert!(!default_matches(
            Backend::Postgres,
            FieldType::Int,
            &json!(5),
            None
        ));
        assert!(!default_matches(
            Backend::Postgres,
            FieldType::Int,
            &json!(5),
            Some("6")
        ));
        let text = json!("O'Brien \\ \"x\"");
        assert!(default_matches(
            Backend::MySql,
            FieldType::Text,
            &text,
            Some(r#"'O\'Brien \\ "x"'"#)
        ));
        assert!(default_matches(
            Backend::Sqlite,
            FieldType::Text,
            &text,
            Some(r#"'O''Brien \ "x"'"#)
        ));
    }

    #[test]
    fn literals_are_quoted_per_backend() {
        assert_eq!(
            literal(Backend::Postgres, FieldType::Text, &json!("a'b")).unwrap(),
            "'a''b'"
        );
        assert_eq!(
            literal(Backend::MySql, FieldType::Text, &json!("a\\b")).unwrap(),
            "'a\\\\b'"
        );
        assert_eq!(
            literal(Backend::Postgres, FieldType::Bool, &json!(true)).unwrap(),
            "TRUE"
        );
        assert_eq!(
            literal(Backend::Sqlite, FieldType::Bool, &json!(true)).unwrap(),
            "1"
        );
        assert_eq!(
            literal(Backend::Sqlite, FieldType::Int, &json!(7)).unwrap(),
            "7"
        );
        assert!(literal(Backend::Sqlite, FieldType::Int, &json!([1])).is_err());
    }

    #[test]
    fn constraint_names_are_short_stable_and_follow_the_expression() {
        let a = check_name("orders", "total", "[total] >= 0");
        assert!(a.starts_with(&check_prefix("orders", "total")));
        assert_eq!(a.len(), "dal_ck_".len() + 17);
        assert_ne!(a, check_name("orders", "total", "[total] > 0"));
        assert_eq!(a, check_name("orders", "total", "[total] >= 0"));
        assert!(fk_name("orders", "customer", "customers").starts_with("dal_fk_"));
    }
}
