//! Statement tags as a trailing [sqlcommenter](https://google.github.io/sqlcommenter/spec/)
//! comment (`/*app='api',route='orders'*/`), appended to a statement *after* translation to
//! native SQL (see [`DatabaseConfig::sql_comments`](crate::DatabaseConfig::sql_comments)).
//!
//! Serialisation, per the specification: each key and value is percent-encoded, then its meta
//! character `'` is escaped with a backslash, the value is put in single quotes, the pairs
//! are sorted by key and joined with commas. The percent-encoding here is the strict one of
//! RFC 3986: every byte outside `A-Z a-z 0-9 - . _ ~` becomes `%XX`. So the comment holds
//! nothing but those characters, `%`, `=`, `,` and the quotes around values: no `*/` or `/*`
//! (which would end the comment, or open a nested one on PostgreSQL), no `'`, `"`, `\`,
//! backtick, `?`, `$`, `!`, `+`, newline or `--`, whatever the tag holds. (The escape step has
//! nothing left to escape; a reader that un-escapes then decodes gets the tag back.)

use std::fmt::Write as _;

/// True for the bytes RFC 3986 calls unreserved: kept as they are.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodes `s` (UTF-8 bytes), keeping only unreserved bytes.
fn encode(out: &mut String, s: &str) {
    for &b in s.as_bytes() {
        if unreserved(b) {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// The comment for `tags` (`/*k='v',…*/`), or `None` when there are none. Keys are sorted
/// (byte order of the encoded key); a key given more than once keeps its last value.
pub(crate) fn comment(tags: &[(String, String)]) -> Option<String> {
    if tags.is_empty() {
        return None;
    }
    let mut pairs: Vec<(String, &str)> = Vec::with_capacity(tags.len());
    for (k, v) in tags {
        let mut key = String::with_capacity(k.len());
        encode(&mut key, k);
        pairs.push((key, v));
    }
    // Stable: among equal keys the last given comes last, and is the one kept.
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::from("/*");
    let mut first = true;
    for (i, (key, value)) in pairs.iter().enumerate() {
        if pairs.get(i + 1).is_some_and(|next| next.0 == *key) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(key);
        out.push_str("='");
        encode(&mut out, value);
        out.push('\'');
    }
    out.push_str("*/");
    Some(out)
}

/// `sql` (native SQL, as the translator produced it: it does not end inside a literal, a
/// quoted identifier or a block comment) with `tags` appended as a sqlcommenter comment;
/// `None` when there are no tags (the statement is sent unchanged).
///
/// Placement: after the statement, separated by a space; before a final `;` (as the
/// sqlcommenter libraries do), so the statement stays one statement. When the last line may
/// end in a line comment (`--`, or MySQL's `#`), the comment goes on a new line instead, so
/// that it is not swallowed by that line comment (a `;` there may belong to the line comment
/// and is left alone).
pub(crate) fn append(sql: &str, tags: &[(String, String)]) -> Option<String> {
    let comment = comment(tags)?;
    let body = sql.trim_end();
    let last_line = body.rsplit(['\n', '\r']).next().unwrap_or(body);
    let mut out = String::with_capacity(body.len() + comment.len() + 2);
    if last_line.contains("--") || last_line.contains('#') {
        out.push_str(body);
        out.push('\n');
        out.push_str(&comment);
    } else if let Some(head) = body.strip_suffix(';') {
        out.push_str(head.trim_end());
        out.push(' ');
        out.push_str(&comment);
        out.push(';');
    } else {
        out.push_str(body);
        out.push(' ');
        out.push_str(&comment);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{translate, Backend, StatementKind};

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn sqlcommenter_format_sorted_and_encoded() {
        assert_eq!(comment(&[]), None);
        assert_eq!(
            comment(&tags(&[("route", "orders"), ("app", "api")])).as_deref(),
            Some("/*app='api',route='orders'*/")
        );
        // The specification's own examples.
        assert_eq!(
            comment(&tags(&[("route", "/param first")])).as_deref(),
            Some("/*route='%2Fparam%20first'*/")
        );
        assert_eq!(
            comment(&tags(&[("route parameter", "x")])).as_deref(),
            Some("/*route%20parameter='x'*/")
        );
        assert_eq!(
            comment(&tags(&[(
                "tracestate",
                "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
            )]))
            .as_deref(),
            Some("/*tracestate='congo%3Dt61rcWkgMzE%2Crojo%3D00f067aa0ba902b7'*/")
        );
        // Unicode is encoded as its UTF-8 bytes; unreserved bytes stay.
        assert_eq!(
            comment(&tags(&[("k", "ü-._~✓")])).as_deref(),
            Some("/*k='%C3%BC-._~%E2%9C%93'*/")
        );
        // A key given twice keeps its last value; empty keys and values are kept.
        assert_eq!(
            comment(&tags(&[("a", "1"), ("b", ""), ("a", "2"), ("", "e")])).as_deref(),
            Some("/*='e',a='2',b=''*/")
        );
    }

    #[test]
    fn no_tag_can_leave_the_comment() {
        let hostile = [
            "*/ DROP TABLE t; --",
            "'; DROP TABLE t; --",
            "\\'*/",
            "/* nested",
            "a\nb\r\nc",
            "-- x",
            "# x",
            "?",
            "$1",
            "`\"",
            "%s",
            "/*!50000 DROP TABLE t */",
            "\u{0}",
            "日本語 */",
        ];
        for h in hostile {
            let c = comment(&[(h.to_owned(), h.to_owned())]).unwrap();
            let inner = &c[2..c.len() - 2];
            assert!(
                inner.bytes().all(|b| unreserved(b) || b"%=,'".contains(&b)),
                "{h:?} gave {c}"
            );
            assert!(!inner.contains("*/") && !inner.contains("/*"), "{c}");
            // Exactly the two quotes around the value.
            assert_eq!(inner.matches('\'').count(), 2, "{c}");
        }
    }

    #[test]
    fn appended_comment_leaves_the_statement_as_it_was() {
        let t = tags(&[("route", "*/ DROP TABLE t; --"), ("app", "o'k")]);
        let c = "/*app='o%27k',route='%2A%2F%20DROP%20TABLE%20t%3B%20--'*/";
        assert_eq!(append("SELECT 1", &t).unwrap(), format!("SELECT 1 {c}"));
        assert_eq!(
            append("SELECT 1;  \n", &t).unwrap(),
            format!("SELECT 1 {c};")
        );
        assert_eq!(
            append("SELECT 1 -- note", &t).unwrap(),
            format!("SELECT 1 -- note\n{c}")
        );
        assert_eq!(
            append("SELECT 1 -- note;", &t).unwrap(),
            format!("SELECT 1 -- note;\n{c}")
        );
        assert_eq!(
            append("SELECT 1 # note", &t).unwrap(),
            format!("SELECT 1 # note\n{c}")
        );
        assert_eq!(append("SELECT 1", &[]), None);

        // The tagged statement translates to itself on every backend: same placeholders,
        // same kind, nothing of the comment read as SQL.
        for backend in Backend::ALL {
            for sql in [
                "SELECT a FROM t WHERE b = ?",
                "SELECT a FROM t WHERE b = ?;",
                "SELECT a FROM t WHERE b = ? -- c",
                "SELECT a FROM t WHERE b = ? /* c */",
            ] {
                let native = translate(sql, backend).unwrap();
                let tagged = append(&native.sql, &t).unwrap();
                let again = translate(&tagged, backend).unwrap();
                assert_eq!(
                    again.placeholders, native.placeholders,
                    "{backend}: {tagged}"
                );
                assert_eq!(again.kind, StatementKind::Read, "{backend}: {tagged}");
                assert!(tagged.ends_with(c) || tagged.ends_with(&format!("{c};")));
            }
        }
    }
}
