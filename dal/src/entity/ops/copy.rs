//! The rows of a bulk save in PostgreSQL's `COPY` text format: one line per row, columns
//! separated by tabs, `\N` for NULL, and backslash, tab, newline and carriage return escaped
//! in every value (text, JSON, the `\x…` of bytes), so that any text survives unchanged.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::Datelike;

use crate::value::Value;

/// The batch's rows (each its id, then `fields`), or `None` when a value has no text form
/// this encoder vouches for (a date outside years 1–9999): the caller then saves the batch
/// with statements, which check and report such values as they always do.
pub(super) fn encode_rows(
    ids: &[String],
    rows: &[BTreeMap<String, Value>],
    fields: &[&String],
) -> Option<Vec<u8>> {
    let mut out = String::with_capacity(rows.len() * (40 + 16 * fields.len()));
    for (id, row) in ids.iter().zip(rows) {
        escape_into(&mut out, id);
        for f in fields {
            out.push('\t');
            encode_value(&mut out, row.get(*f).unwrap_or(&Value::Null))?;
        }
        out.push('\n');
    }
    Some(out.into_bytes())
}

fn encode_value(out: &mut String, v: &Value) -> Option<()> {
    match v {
        Value::Null => out.push_str("\\N"),
        Value::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) if f.is_nan() => out.push_str("NaN"),
        Value::Float(f) if f.is_infinite() => {
            out.push_str(if *f > 0.0 { "Infinity" } else { "-Infinity" })
        }
        // The shortest text that reads back as the same double.
        Value::Float(f) => {
            let _ = write!(out, "{f:?}");
        }
        Value::Decimal(d) => {
            let _ = write!(out, "{d}");
        }
        Value::Text(s) => escape_into(out, s),
        Value::Json(j) => escape_into(out, &j.to_string()),
        // bytea's hex form, its backslash escaped for COPY.
        Value::Bytes(b) => {
            out.push_str("\\\\x");
            for byte in b {
                let _ = write!(out, "{byte:02x}");
            }
        }
        Value::Timestamp(ts) => {
            if !(1..=9999).contains(&ts.year()) {
                return None;
            }
            let _ = write!(out, "{}", ts.format("%Y-%m-%d %H:%M:%S%.6f+00"));
        }
        Value::Date(d) => {
            if !(1..=9999).contains(&d.year()) {
                return None;
            }
            let _ = write!(out, "{}", d.format("%Y-%m-%d"));
        }
        Value::Time(t) => {
            let _ = write!(out, "{}", t.format("%H:%M:%S%.6f"));
        }
        Value::Uuid(u) => {
            let _ = write!(out, "{}", u.hyphenated());
        }
    }
    Some(())
}

/// `s` with COPY's text-format escapes.
fn escape_into(out: &mut String, s: &str) {
    if !s.contains(['\\', '\t', '\n', '\r']) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone, Utc};

    #[test]
    fn every_value_has_its_copy_text() {
        let f = [
            "a".to_owned(),
            "b".to_owned(),
            "c".to_owned(),
            "d".to_owned(),
        ];
        let fields: Vec<&String> = f.iter().collect();
        let row = BTreeMap::from([
            ("a".to_owned(), Value::Text("x\ty\nz\\N\r'\"é".into())),
            ("b".to_owned(), Value::Null),
            ("c".to_owned(), Value::Bytes(vec![0, 0xff, b'\\'])),
            (
                "d".to_owned(),
                Value::Timestamp(Utc.with_ymd_and_hms(1000, 1, 2, 3, 4, 5).unwrap()),
            ),
        ]);
        let data = encode_rows(&["i\td".to_owned()], &[row], &fields).unwrap();
        assert_eq!(
            String::from_utf8(data).unwrap(),
            "i\\td\tx\\ty\\nz\\\\N\\r'\"é\t\\N\t\\\\x00ff5c\t1000-01-02 03:04:05.000000+00\n"
        );
        let mut s = String::new();
        encode_value(&mut s, &Value::Float(0.1)).unwrap();
        encode_value(&mut s, &Value::Json(serde_json::json!({"k": "a\nb"}))).unwrap();
        assert_eq!(s, "0.1{\"k\":\"a\\\\nb\"}");
        let old = NaiveDate::from_ymd_opt(0, 1, 1).unwrap();
        assert!(encode_value(&mut s, &Value::Date(old)).is_none());
    }
}
