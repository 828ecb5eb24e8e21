//! An entity's tables as they are, for backups and copies ([`crate::backup`]): the entities a
//! database holds, their recorded fields, their rows and history read page by page in key
//! order, and written back unchanged — ids, system fields, versions and history rows as they
//! were — into tables created by the same schema code a save uses.
//!
//! Values travel as JSON in one canonical form per logical type, the same whichever backend
//! they come from or go to: integers and floats as numbers, decimals as normalized decimal
//! strings, floats as their shortest exact text, timestamps as RFC 3339 UTC with six fraction digits, dates and times as text,
//! bytes as lowercase hex, JSON as itself, booleans as booleans.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, NaiveTime};
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Map, Value as Json};

use super::super::schema::{
    history_table, meta_table, table, validate_entity_name, FieldSpec, HISTORY_FIELDS,
    SYSTEM_FIELDS,
};
use super::super::typed::FieldType;
use super::{column_list, system_type, CHUNK_PARAMS, CHUNK_ROWS};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::value::{decimal_from_f64, format_timestamp, parse_decimal, parse_timestamp, Value};

/// One of an entity's data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// The current rows (`name`), keyed by `id`.
    Rows,
    /// Every version (`name_history`), keyed by `(id, version)`.
    History,
}

/// An entity's fields as its `_meta` table records them: field → recorded type name (a
/// logical type's name, or a custom value type's).
pub(crate) type Layout = BTreeMap<String, String>;

/// The columns of `part`, in order, with the logical type each value is encoded by (a field
/// of a custom value type holds text).
pub(crate) fn part_columns(layout: &Layout, part: Part) -> Vec<(String, FieldType)> {
    let mut cols: Vec<(String, FieldType)> = SYSTEM_FIELDS
        .iter()
        .map(|c| ((*c).to_owned(), system_type(c)))
        .collect();
    cols.extend(
        layout
            .iter()
            .map(|(f, t)| (f.clone(), FieldType::parse(t).unwrap_or(FieldType::Text))),
    );
    if part == Part::History {
        cols.extend(
            HISTORY_FIELDS
                .iter()
                .map(|c| ((*c).to_owned(), system_type(c))),
        );
    }
    cols
}

/// The key of the last row of a page: the next page starts after it.
pub(crate) type PageKey = (String, i64);

impl Connection {
    /// Every entity in the database: the tables that have both an `_meta` and a `_history`
    /// sibling, in name order.
    pub(crate) async fn entity_names(&mut self) -> Result<Vec<String>> {
        let sql = self.dialect().tables_sql();
        let rows = self.query_rows(sql, vec![]).await?;
        let names: BTreeSet<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_>>()?;
        Ok(names
            .iter()
            .filter(|n| {
                validate_entity_name(n).is_ok()
                    && names.contains(&meta_table(n))
                    && names.contains(&history_table(n))
            })
            .cloned()
            .collect())
    }

    /// True when any of `entity`'s three tables exists.
    pub(crate) async fn entity_tables_exist(&mut self, entity: &str) -> Result<bool> {
        for t in [table(entity), meta_table(entity), history_table(entity)] {
            if self.table_exists(&t).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The fields `entity`'s `_meta` table records, read from the table (not the cache).
    pub(crate) async fn entity_layout(&mut self, entity: &str) -> Result<Layout> {
        validate_entity_name(entity)?;
        // Through the schema path first: it completes tables older than the version column.
        self.entity_schema(entity, false).await?;
        let rows = self
            .query_rows(
                &format!(
                    "SELECT [name], [type] FROM [{}] ORDER BY [name]",
                    meta_table(entity)
                ),
                vec![],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?)))
            .collect()
    }

    /// Creates `entity`'s tables with the fields of `layout`, through the schema code a save
    /// uses (the same column types, the same `_meta` rows).
    pub(crate) async fn create_entity_like(&mut self, entity: &str, layout: &Layout) -> Result<()> {
        validate_entity_name(entity)?;
        let specs: Vec<FieldSpec> = layout
            .iter()
            .map(|(name, recorded)| {
                super::super::schema::validate_field_name(name)?;
                let ty = FieldType::parse(recorded);
                Ok(FieldSpec {
                    name: name.clone(),
                    ty: Some(ty.unwrap_or(FieldType::Text)),
                    index: false,
                    unique: false,
                    value_type: if ty.is_none() {
                        super::super::value_types::validate_type_name(recorded)?;
                        Some(recorded.clone())
                    } else {
                        None
                    },
                })
            })
            .collect::<Result<_>>()?;
        self.forget_schema(entity);
        // An import or copy creates the tables even in `SchemaMode::Migrations`: restoring is
        // an explicit request for them.
        self.restoring = true;
        let created = self.ensure_fields(entity, &specs, &[]).await;
        self.restoring = false;
        created.map(|_| ())
    }

    /// Drops `entity`'s three tables (an import undoing what it created).
    pub(crate) async fn drop_entity_tables(&mut self, entity: &str) -> Result<()> {
        validate_entity_name(entity)?;
        for t in [meta_table(entity), history_table(entity), table(entity)] {
            self.query_rows(&format!("DROP TABLE IF EXISTS [{t}]"), vec![])
                .await?;
        }
        self.forget_schema(entity);
        Ok(())
    }

    /// The number of rows of one of `entity`'s tables (`suffix`: "", "_meta", "_history").
    pub(crate) async fn count_table(&mut self, entity: &str, suffix: &str) -> Result<u64> {
        validate_entity_name(entity)?;
        let n = self
            .query_count(&format!("SELECT COUNT(*) FROM [{entity}{suffix}]"), vec![])
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Up to `limit` rows of `part` after `after`, in key order, each encoded (see the
    /// module docs).
    pub(crate) async fn read_page(
        &mut self,
        entity: &str,
        cols: &[(String, FieldType)],
        part: Part,
        after: Option<&PageKey>,
        limit: usize,
    ) -> Result<Vec<Map<String, Json>>> {
        let names: Vec<&str> = cols.iter().map(|(c, _)| c.as_str()).collect();
        let (from, order) = match part {
            Part::Rows => (table(entity), "[id]"),
            Part::History => (history_table(entity), "[id], [version]"),
        };
        let mut params = Vec::new();
        let seek = match (after, part) {
            (None, _) => String::new(),
            (Some((id, _)), Part::Rows) => {
                params.push(Value::from(id.as_str()));
                " WHERE [id] > ?".to_owned()
            }
            (Some((id, v)), Part::History) if self.dialect().row_value_seek() => {
                params.extend([Value::from(id.as_str()), Value::Int(*v)]);
                " WHERE ([id], [version]) > (?, ?)".to_owned()
            }
            (Some((id, v)), Part::History) => {
                params.extend([
                    Value::from(id.as_str()),
                    Value::from(id.as_str()),
                    Value::Int(*v),
                ]);
                " WHERE [id] >= ? AND ([id] > ? OR [version] > ?)".to_owned()
            }
        };
        let sql = format!(
            "SELECT {} FROM [{from}]{seek} ORDER BY {order}{}",
            column_list(&names),
            self.dialect()
                .limit_offset(Some(u64::try_from(limit).unwrap_or(u64::MAX)), None)
        );
        let rows = self.query_rows(&sql, params).await?;
        rows.into_iter()
            .map(|r| {
                let mut m = Map::new();
                for ((name, ty), v) in cols.iter().zip(r.into_values()) {
                    m.insert(name.clone(), encode(name, *ty, v)?);
                }
                Ok(m)
            })
            .collect()
    }

    /// Inserts encoded rows into `part` as they are (multi-row statements). Every key of a
    /// row must be one of `cols`; a column a row lacks is stored as NULL.
    pub(crate) async fn insert_page(
        &mut self,
        entity: &str,
        cols: &[(String, FieldType)],
        part: Part,
        rows: &[Map<String, Json>],
    ) -> Result<u64> {
        let into = match part {
            Part::Rows => table(entity),
            Part::History => history_table(entity),
        };
        let names: Vec<&str> = cols.iter().map(|(c, _)| c.as_str()).collect();
        let per_chunk = (CHUNK_PARAMS / cols.len().max(1)).clamp(1, CHUNK_ROWS);
        let one = format!("({})", crate::backend::placeholders(cols.len()));
        let mut inserted = 0;
        for chunk in rows.chunks(per_chunk) {
            let mut params = Vec::with_capacity(chunk.len() * cols.len());
            for row in chunk {
                if let Some(extra) = row.keys().find(|k| !cols.iter().any(|(c, _)| c == *k)) {
                    return Err(Error::Backup(format!(
                        "{into}: a row holds {extra:?}, which is not a column of the entity (its fields: {})",
                        names.join(", ")
                    )));
                }
                for (name, ty) in cols {
                    params.push(decode(name, *ty, row.get(name).unwrap_or(&Json::Null))?);
                }
            }
            let sql = format!(
                "INSERT INTO [{into}] ({}) VALUES {}",
                column_list(&names),
                vec![one.as_str(); chunk.len()].join(", ")
            );
            inserted += self.query_full(&sql, params).await?.rows_affected;
        }
        Ok(inserted)
    }
}

fn bad_value(column: &str, ty: FieldType, what: &str) -> Error {
    Error::Backup(format!("column {column:?} ({}): {what}", ty.as_str()))
}

/// A stored value in its canonical JSON form (see the module docs).
pub(crate) fn encode(column: &str, ty: FieldType, v: Value) -> Result<Json> {
    let bad = |what: String| Err(bad_value(column, ty, &what));
    Ok(match (ty, v) {
        (_, Value::Null) => Json::Null,
        (FieldType::Int, Value::Int(i)) => Json::from(i),
        (FieldType::Int, Value::Bool(b)) => Json::from(i64::from(b)),
        (FieldType::Int, Value::Float(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => {
            Json::from(f as i64)
        }
        (FieldType::Int, Value::Decimal(d)) if d.fract().is_zero() => match d.to_i64() {
            Some(i) => Json::from(i),
            None => return bad(format!("{d} is not a 64-bit integer")),
        },
        // As text: Rust prints the shortest string that parses back to the same f64, and
        // `str::parse` is exact (a JSON number would go through serde_json's faster,
        // best-effort float parser).
        (FieldType::Float, v) => match v.as_f64() {
            Some(f) if f.is_finite() => Json::String(format!("{f:?}")),
            _ => return bad(format!("{v:?} is not a finite number")),
        },
        (FieldType::Bool, v) => match v.as_bool() {
            Some(b) => Json::Bool(b),
            None => return bad(format!("{v:?} is not a boolean")),
        },
        (FieldType::Timestamp, Value::Timestamp(t)) => Json::String(format_timestamp(&t)),
        (FieldType::Timestamp, Value::Text(s)) => match parse_timestamp(&s) {
            Some(t) => Json::String(format_timestamp(&t)),
            None => return bad(format!("{s:?} is not a timestamp")),
        },
        (FieldType::Date, Value::Date(d)) => Json::String(d.format("%Y-%m-%d").to_string()),
        (FieldType::Time, Value::Time(t)) => Json::String(t.format("%H:%M:%S%.f").to_string()),
        (FieldType::Time, Value::Text(s)) => match NaiveTime::parse_from_str(&s, "%H:%M:%S%.f") {
            Ok(t) => Json::String(t.format("%H:%M:%S%.f").to_string()),
            Err(_) => return bad(format!("{s:?} is not a time of day")),
        },
        (FieldType::Json, Value::Json(j)) => j,
        (FieldType::Json, Value::Text(s)) => serde_json::from_str(&s)
            .map_err(|e| bad_value(column, ty, &format!("stored JSON is not valid: {e}")))?,
        (FieldType::Json, Value::Bytes(b)) => serde_json::from_slice(&b)
            .map_err(|e| bad_value(column, ty, &format!("stored JSON is not valid: {e}")))?,
        (FieldType::Decimal, v) => {
            let d = match &v {
                Value::Decimal(d) => Some(*d),
                Value::Int(i) => Some(rust_decimal::Decimal::from(*i)),
                Value::Float(f) => decimal_from_f64(*f),
                Value::Text(s) => parse_decimal(s),
                _ => None,
            };
            match d {
                Some(d) => Json::String(d.normalize().to_string()),
                None => return bad(format!("{v:?} is not a decimal")),
            }
        }
        (FieldType::Bytes, Value::Bytes(b)) => Json::String(hex(&b)),
        (_, Value::Text(s)) => Json::String(s),
        (_, Value::Uuid(u)) => Json::String(u.to_string()),
        (_, Value::Date(d)) => Json::String(d.format("%Y-%m-%d").to_string()),
        (_, other) => return bad(format!("unexpected stored value {other:?}")),
    })
}

/// A canonical JSON value back to what a save of that logical type binds.
pub(crate) fn decode(column: &str, ty: FieldType, v: &Json) -> Result<Value> {
    let bad = || Err(bad_value(column, ty, &format!("{v} is not a valid value")));
    Ok(match (ty, v) {
        (_, Json::Null) => Value::Null,
        (FieldType::Int, Json::Number(n)) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => return bad(),
        },
        (FieldType::Float, Json::String(s)) => match s.parse::<f64>() {
            Ok(f) if f.is_finite() => Value::Float(f),
            _ => return bad(),
        },
        (FieldType::Bool, Json::Bool(b)) => Value::Bool(*b),
        (FieldType::Timestamp, Json::String(s)) => match parse_timestamp(s) {
            Some(t) => Value::Timestamp(t),
            None => return bad(),
        },
        (FieldType::Date, Json::String(s)) => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(d) => Value::Date(d),
            Err(_) => return bad(),
        },
        (FieldType::Time, Json::String(s)) => match NaiveTime::parse_from_str(s, "%H:%M:%S%.f") {
            Ok(t) => Value::Time(t),
            Err(_) => return bad(),
        },
        (FieldType::Uuid, Json::String(s)) => match uuid::Uuid::parse_str(s) {
            Ok(u) => Value::Uuid(u),
            Err(_) => return bad(),
        },
        (FieldType::Json, j) => Value::Json(j.clone()),
        (FieldType::Decimal, Json::String(s)) => match parse_decimal(s) {
            Some(d) => Value::Decimal(d),
            None => return bad(),
        },
        (FieldType::Bytes, Json::String(s)) => match unhex(s) {
            Some(b) => Value::Bytes(b),
            None => return bad(),
        },
        (FieldType::Text, Json::String(s)) => Value::Text(s.clone()),
        _ => return bad(),
    })
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_round_trip_through_their_canonical_form() {
        let t = parse_timestamp("1000-01-01T00:00:00.000001Z").unwrap();
        let cases = [
            (FieldType::Int, Value::Int(i64::MIN), json!(i64::MIN)),
            (FieldType::Float, Value::Float(0.1), json!("0.1")),
            (FieldType::Float, Value::Int(3), json!("3.0")),
            (FieldType::Bool, Value::Int(1), json!(true)),
            (
                FieldType::Timestamp,
                Value::Timestamp(t),
                json!("1000-01-01T00:00:00.000001Z"),
            ),
            (
                FieldType::Decimal,
                Value::Text("12.3400".into()),
                json!("12.34"),
            ),
            (
                FieldType::Bytes,
                Value::Bytes(vec![0, 255, 16]),
                json!("00ff10"),
            ),
            (
                FieldType::Json,
                Value::Text("{\"a\":[1]}".into()),
                json!({"a": [1]}),
            ),
            (FieldType::Text, Value::Null, json!(null)),
        ];
        for (ty, stored, canonical) in cases {
            let j = encode("c", ty, stored).unwrap();
            assert_eq!(j, canonical);
            let back = decode("c", ty, &j).unwrap();
            assert_eq!(encode("c", ty, back).unwrap(), canonical);
        }
        assert!(decode("c", FieldType::Bytes, &json!("0g")).is_err());
        assert!(decode("c", FieldType::Int, &json!("1")).is_err());
    }
}
