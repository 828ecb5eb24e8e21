//! Row mapping on every backend: `query_as`, `Row::decode` and `into_typed` decode ad-hoc SQL
//! into serde types, and the field types of issue 16 (`u64`, `u32`, `i16`, `f32`, `Vec<u8>`,
//! `Option<_>`, enums as text, `NaiveDate`, `NaiveDateTime`, `DateTime<Utc>`, `Uuid`)
//! round-trip both through typed entities and through `query_as`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

mod common;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use common::{each_backend, fresh_table, reset_entity};
use dal::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Active,
    OnHold,
    Closed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "rowmap_types")]
struct Typed {
    id: Option<String>,
    big: u64,
    unsigned: u32,
    small: i16,
    ratio: f32,
    blob: Vec<u8>,
    maybe_int: Option<i64>,
    maybe_day: Option<NaiveDate>,
    status: Status,
    maybe_status: Option<Status>,
    day: NaiveDate,
    local: NaiveDateTime,
    at: DateTime<Utc>,
    key: Uuid,
    // JSON columns: nested values decode from them too.
    tags: Vec<String>,
    doc: JsonValue,
    address: Address,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Address {
    street: String,
    zip: Option<u32>,
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, micros: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap() + chrono::Duration::microseconds(micros)
}

/// Edge values of every type, and a plainer second sample (empty bytes, nulls).
fn samples() -> Vec<Typed> {
    vec![
        Typed {
            id: None,
            big: i64::MAX as u64,
            unsigned: u32::MAX,
            small: i16::MIN,
            ratio: 0.1,
            blob: vec![0, 1, 2, 0x7f, 0x80, 0xff, 0],
            maybe_int: Some(-5),
            maybe_day: Some(NaiveDate::from_ymd_opt(2000, 1, 1).unwrap()),
            status: Status::OnHold,
            maybe_status: Some(Status::Closed),
            day: NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
            local: at(2024, 5, 1, 12, 30, 45, 123_456).naive_utc(),
            at: at(2024, 5, 1, 23, 59, 59, 999_999),
            key: Uuid::new_v4(),
            tags: vec!["a".into(), "b \"c\"".into()],
            doc: json!({"k": [1, null, {"x": "y"}]}),
            address: Address {
                street: "Main St".into(),
                zip: Some(12345),
            },
        },
        Typed {
            id: None,
            big: 0,
            unsigned: 0,
            small: i16::MAX,
            ratio: -3.4e38,
            blob: Vec::new(),
            maybe_int: None,
            maybe_day: None,
            status: Status::Active,
            maybe_status: None,
            day: NaiveDate::from_ymd_opt(1999, 12, 31).unwrap(),
            local: at(2000, 1, 1, 0, 0, 0, 0).naive_utc(),
            at: at(2038, 1, 19, 3, 14, 8, 0),
            key: Uuid::nil(),
            tags: Vec::new(),
            doc: json!("[not json, a string]"),
            address: Address {
                street: "{".into(),
                zip: None,
            },
        },
    ]
}

/// Compares field by field, so a failure names the type that did not round-trip.
fn check(how: &str, got: &Typed, want: &Typed) {
    macro_rules! same {
        ($($field:ident: $ty:literal),* $(,)?) => {$(
            assert_eq!(got.$field, want.$field, "{how}: {} did not round-trip", $ty);
        )*};
    }
    same! {
        big: "u64", unsigned: "u32", small: "i16", ratio: "f32", blob: "Vec<u8>",
        maybe_int: "Option<i64>", maybe_day: "Option<NaiveDate>", status: "enum as text",
        maybe_status: "Option<enum>", day: "NaiveDate", local: "NaiveDateTime",
        at: "DateTime<Utc>", key: "Uuid", tags: "Vec<String> (JSON)", doc: "serde_json::Value",
        address: "a struct (JSON)",
    }
    assert_eq!(got, want, "{how}");
}

/// The declared fields of `Typed`, without its id: what a report query would select.
#[derive(Debug, PartialEq, Deserialize)]
struct Report {
    big: u64,
    unsigned: u32,
    small: i16,
    ratio: f32,
    blob: Vec<u8>,
    maybe_int: Option<i64>,
    maybe_day: Option<NaiveDate>,
    status: Status,
    maybe_status: Option<Status>,
    day: NaiveDate,
    local: NaiveDateTime,
    at: DateTime<Utc>,
    key: Uuid,
}

impl Report {
    /// `base` with the fields of this report.
    fn over(self, base: &Typed) -> Typed {
        Typed {
            big: self.big,
            unsigned: self.unsigned,
            small: self.small,
            ratio: self.ratio,
            blob: self.blob,
            maybe_int: self.maybe_int,
            maybe_day: self.maybe_day,
            status: self.status,
            maybe_status: self.maybe_status,
            day: self.day,
            local: self.local,
            at: self.at,
            key: self.key,
            ..base.clone()
        }
    }
}

#[test]
fn the_derive_maps_each_type_to_its_logical_type() {
    use dal::FieldType as F;
    let ty = |name: &str| {
        let f = Typed::fields()
            .iter()
            .find(|f| f.column == name)
            .expect(name);
        (f.ty, f.nullable, f.naive_timestamp)
    };
    assert_eq!(ty("big"), (Some(F::Int), false, false));
    assert_eq!(ty("unsigned"), (Some(F::Int), false, false));
    assert_eq!(ty("small"), (Some(F::Int), false, false));
    assert_eq!(ty("ratio"), (Some(F::Float), false, false));
    assert_eq!(ty("blob"), (Some(F::Bytes), false, false));
    assert_eq!(ty("maybe_int"), (Some(F::Int), true, false));
    assert_eq!(ty("maybe_day"), (Some(F::Date), true, false));
    // An enum is the user's own type: its first value decides (unit variants are text).
    assert_eq!(ty("status"), (None, false, false));
    assert_eq!(ty("maybe_status"), (None, true, false));
    assert_eq!(ty("day"), (Some(F::Date), false, false));
    assert_eq!(ty("local"), (Some(F::Timestamp), false, true));
    assert_eq!(ty("at"), (Some(F::Timestamp), false, false));
    assert_eq!(ty("key"), (Some(F::Uuid), false, false));
}

#[tokio::test]
async fn every_type_round_trips_in_typed_entities_and_query_as() {
    each_backend("rowmap_types", |db| async move {
        let backend = db.backend().as_str();
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "rowmap_types").await?;
        for (n, original) in samples().into_iter().enumerate() {
            // Typed entity: save, then get.
            let saved = conn.save(&original).await?;
            let id = saved.id.clone().expect("an id");
            let want = Typed {
                id: Some(id.clone()),
                ..original.clone()
            };
            check(&format!("{backend} sample {n}: save"), &saved, &want);
            let got = conn.get::<Typed>(&id).await?.expect("saved");
            check(&format!("{backend} sample {n}: get"), &got, &want);

            // query_as over the entity's table: the same struct (system columns ignored) …
            let rows: Vec<Typed> = conn
                .query_as("SELECT * FROM [rowmap_types] WHERE [id] = ?", params![&id])
                .await?;
            assert_eq!(rows.len(), 1, "{backend}");
            check(&format!("{backend} sample {n}: query_as"), &rows[0], &want);

            // … a plain report struct, found by values of these types bound as parameters …
            let reports = conn
                .query_as::<Report>(
                    "SELECT [small], [unsigned], [big], [ratio], [blob], [maybe_int], [maybe_day], \
                     [status], [maybe_status], [day], [local], [at], [key] FROM [rowmap_types] \
                     WHERE [key] = ? AND [day] = ? AND [status] = ? AND [small] = ?",
                    params![original.key, original.day, "on_hold", original.small],
                )
                .timeout(Duration::from_secs(30))
                .tag("report", "types")
                .await?;
            if original.status == Status::OnHold {
                assert_eq!(reports.len(), 1, "{backend}: filtered by typed parameters");
                let report = reports.into_iter().next().unwrap().over(&original);
                check(
                    &format!("{backend} sample {n}: query_as report"),
                    &report,
                    &original,
                );
            } else {
                assert!(reports.is_empty(), "{backend}: {reports:?}");
            }

            // … a tuple by position, and `into_typed` / `decode` on `execute`'s rows.
            let rows = conn
                .execute(
                    "SELECT [big], [unsigned], [small], [ratio], [blob], [maybe_int], [key] \
                     FROM [rowmap_types] WHERE [id] = ?",
                    params![&id],
                )
                .await?;
            type Tuple = (u64, u32, i16, f32, Vec<u8>, Option<i64>, Uuid);
            let tuple: Tuple = rows[0].decode()?;
            assert_eq!(
                tuple,
                (
                    original.big,
                    original.unsigned,
                    original.small,
                    original.ratio,
                    original.blob.clone(),
                    original.maybe_int,
                    original.key
                ),
                "{backend} sample {n}: tuple"
            );
            let typed: Vec<Tuple> = rows.into_typed()?;
            assert_eq!(typed, vec![tuple], "{backend}");
        }
        let all: Vec<Typed> = conn
            .query_as("SELECT * FROM [rowmap_types] ORDER BY [small]", ())
            .await?;
        assert_eq!(all.len(), 2, "{backend}");
        assert_eq!(all[0].small, i16::MIN, "{backend}");
        Ok(())
    })
    .await;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "rowmap_range")]
struct Ranged {
    id: Option<String>,
    big: u64,
    unsigned: u32,
    small: i16,
    ratio: f32,
}

#[derive(Debug, PartialEq, Deserialize)]
struct RangedReport {
    unsigned: u32,
    small: i16,
}

#[tokio::test]
async fn out_of_range_values_are_refused_not_wrapped() {
    each_backend("rowmap_range", |db| async move {
        let backend = db.backend().as_str();
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "rowmap_range").await?;
        let fine = Ranged {
            id: None,
            big: 1,
            unsigned: 2,
            small: 3,
            ratio: 4.5,
        };

        // A u64 above i64::MAX cannot be stored in a BIGINT: refused, nothing written.
        let e = conn
            .save(&Ranged {
                big: i64::MAX as u64 + 1,
                ..fine.clone()
            })
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Entity(_)), "{backend}: {e:?}");
        assert!(e.to_string().contains("\"big\""), "{backend}: {e}");
        let n = conn.count_entities("rowmap_range").await?;
        assert_eq!(n, 0, "{backend}: nothing was written");

        // A negative value stored by other code is not read into a u32 …
        let saved = conn.save(&fine).await?;
        let id = saved.id.clone().unwrap();
        conn.execute(
            "UPDATE [rowmap_range] SET [unsigned] = ? WHERE [id] = ?",
            params![-1, &id],
        )
        .await?;
        let e = conn.get::<Ranged>(&id).await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("\"unsigned\"") && text.contains("u32"),
            "{backend}: {text}"
        );
        let e = conn
            .query_as::<Ranged>("SELECT * FROM [rowmap_range]", ())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Conversion(_)), "{backend}: {e:?}");
        let text = e.to_string();
        assert!(
            text.contains("column \"unsigned\"") && text.contains("-1 does not fit in u32"),
            "{backend}: {text}"
        );
        // … nor is a value beyond i16 read into an i16.
        conn.execute(
            "UPDATE [rowmap_range] SET [unsigned] = ?, [small] = ? WHERE [id] = ?",
            params![1, 40_000, &id],
        )
        .await?;
        let e = conn
            .query_as::<RangedReport>("SELECT * FROM [rowmap_range]", ())
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("column \"small\": 40000 does not fit in i16"),
            "{backend}: {e}"
        );
        let e = conn.get::<Ranged>(&id).await.unwrap_err();
        assert!(e.to_string().contains("\"small\""), "{backend}: {e}");
        // A float beyond f32's range is not read as infinity.
        conn.execute(
            "UPDATE [rowmap_range] SET [small] = ?, [ratio] = ? WHERE [id] = ?",
            params![1, 1e300, &id],
        )
        .await?;
        let e = conn
            .query_as::<(f32,)>("SELECT [ratio] FROM [rowmap_range]", ())
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("does not fit in f32"),
            "{backend}: {e}"
        );
        let e = conn.get::<Ranged>(&id).await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("field \"ratio\"") && text.contains("does not fit in f32"),
            "{backend}: {text}"
        );
        Ok(())
    })
    .await;
}

#[derive(Debug, PartialEq, Deserialize)]
struct Line {
    name: String,
    qty: u32,
    note: Option<String>,
    #[serde(default)]
    discount: i64,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Totals {
    total_qty: i64,
    line_count: u16,
}

#[derive(Debug, PartialEq, Deserialize)]
struct Qty(u32);

#[tokio::test]
async fn columns_map_to_fields_by_name_and_errors_name_the_column() {
    each_backend("rowmap_rules", |db| async move {
        let backend = db.backend().as_str();
        let mut conn = db.async_connection().await?;
        fresh_table(&mut conn, "rowmap_lines").await?;
        conn.execute(
            "CREATE TABLE [rowmap_lines] ([name] VARCHAR(40), [qty] BIGINT, [note] VARCHAR(40), \
             [state] VARCHAR(20), [extra] BIGINT)",
            (),
        )
        .await?;
        conn.executemany(
            "INSERT INTO [rowmap_lines] ([name], [qty], [note], [state], [extra]) VALUES (?, ?, ?, ?, ?)",
            vec![
                params!["bolt", 3, "zinc", "active", 1],
                params!["nut", 5, None::<String>, "on_hold", 2],
            ],
        )
        .await?;

        // Columns in any order, extra columns ignored, a NULL and an absent column for
        // Option/default fields.
        let lines: Vec<Line> = conn
            .query_as(
                "SELECT [extra], [qty], [name], [note] FROM [rowmap_lines] ORDER BY [name]",
                (),
            )
            .await?;
        assert_eq!(
            lines,
            vec![
                Line { name: "bolt".into(), qty: 3, note: Some("zinc".into()), discount: 0 },
                Line { name: "nut".into(), qty: 5, note: None, discount: 0 },
            ],
            "{backend}"
        );

        // Names match case-insensitively after the exact match (PostgreSQL lower-cases
        // unquoted aliases: totalQty arrives as totalqty).
        let totals: Vec<Totals> = conn
            .query_as(
                "SELECT SUM(qty) AS totalQty, COUNT(*) AS lineCount FROM [rowmap_lines]",
                (),
            )
            .await?;
        assert_eq!(totals, vec![Totals { total_qty: 8, line_count: 2 }], "{backend}");

        // One-column rows decode into plain values, newtypes and options.
        let n: Vec<i64> = conn.query_as("SELECT COUNT(*) FROM [rowmap_lines]", ()).await?;
        assert_eq!(n, [2], "{backend}");
        let qty: Vec<Qty> = conn
            .query_as("SELECT [qty] FROM [rowmap_lines] ORDER BY [qty]", ())
            .await?;
        assert_eq!(qty, [Qty(3), Qty(5)], "{backend}");
        let max: Vec<Option<i64>> = conn
            .query_as("SELECT MAX([qty]) FROM [rowmap_lines] WHERE [qty] > ?", params![100])
            .await?;
        assert_eq!(max, [None], "{backend}");
        let states: Vec<Status> = conn
            .query_as("SELECT [state] FROM [rowmap_lines] ORDER BY [name]", ())
            .await?;
        assert_eq!(states, [Status::Active, Status::OnHold], "{backend}");

        // A map of every column, and a row borrowed as &str.
        let rows = conn
            .execute("SELECT [name], [qty], [note] FROM [rowmap_lines] ORDER BY [name]", ())
            .await?;
        let map: HashMap<String, JsonValue> = rows[0].decode()?;
        assert_eq!(map["name"], json!("bolt"), "{backend}");
        assert_eq!(map["qty"], json!(3), "{backend}");
        let map: HashMap<String, JsonValue> = rows[1].decode()?;
        assert_eq!(map["note"], JsonValue::Null, "{backend}");
        let (name, _, _): (&str, i64, Option<&str>) = rows[0].decode()?;
        assert_eq!(name, "bolt", "{backend}");

        // A missing column for a non-Option field: ColumnNotFound naming field and columns.
        let e = conn
            .query_as::<Line>("SELECT [name], [note] FROM [rowmap_lines]", ())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::ColumnNotFound(_)), "{backend}: {e:?}");
        let text = e.to_string();
        assert!(
            text.contains("\"qty\"") && text.contains("Line") && text.contains("\"note\""),
            "{backend}: {text}"
        );

        // A value of the wrong type: Conversion naming the column, the type and the row.
        let e = conn
            .query_as::<Line>(
                "SELECT [state] AS [qty], [name] FROM [rowmap_lines] ORDER BY [name]",
                (),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Conversion(_)), "{backend}: {e:?}");
        let text = e.to_string();
        assert!(
            text.contains("row 0")
                && text.contains("column \"qty\"")
                && text.contains("text value to u32"),
            "{backend}: {text}"
        );
        let e = conn
            .query_as::<Status>("SELECT [name] FROM [rowmap_lines]", ())
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("column \"name\"")
                && text.contains("unknown variant `bolt`")
                && text.contains("on_hold"),
            "{backend}: {text}"
        );

        // Tuples take the columns by position and must match their number.
        let e = conn
            .query_as::<(String, i64)>("SELECT [name] FROM [rowmap_lines]", ())
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("1 column(s) but the tuple has 2"),
            "{backend}: {e}"
        );
        // A plain value needs a one-column row.
        let e = conn
            .query_as::<i64>("SELECT [qty], [extra] FROM [rowmap_lines]", ())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("2 columns"), "{backend}: {e}");

        // The statement's own errors come through unchanged.
        let e = conn
            .query_as::<Line>("SELECT [name] FROM [rowmap_lines] WHERE [qty] = ?", ())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::ParameterCount { .. }), "{backend}: {e:?}");
        Ok(())
    })
    .await;
}

#[test]
fn the_blocking_twin_maps_rows_too() {
    let mut failures = Vec::new();
    for backend in common::selected() {
        let db = common::database(backend, common::config(backend, "rowmap_sync"));
        let result = (|| -> dal::Result<()> {
            let mut conn = db.sync_connection()?;
            conn.execute("DROP TABLE IF EXISTS [rowmap_sync]", ())?;
            conn.execute(
                "CREATE TABLE [rowmap_sync] ([name] VARCHAR(40), [qty] BIGINT, [note] VARCHAR(40))",
                (),
            )?;
            conn.execute(
                "INSERT INTO [rowmap_sync] ([name], [qty], [note]) VALUES (?, ?, ?)",
                params!["washer", 12, None::<String>],
            )?;
            let lines: Vec<Line> =
                conn.query_as("SELECT * FROM [rowmap_sync] WHERE [qty] > ?", params![1])?;
            assert_eq!(
                lines,
                vec![Line {
                    name: "washer".into(),
                    qty: 12,
                    note: None,
                    discount: 0
                }]
            );
            let n: Vec<u64> = conn.query_as_with(
                "SELECT COUNT(*) FROM [rowmap_sync]",
                (),
                QueryOptions::default().timeout(Duration::from_secs(30)),
            )?;
            assert_eq!(n, [1]);
            conn.execute("UPDATE [rowmap_sync] SET [qty] = ?", params![-12])?;
            let e = conn
                .query_as::<Line>("SELECT * FROM [rowmap_sync]", ())
                .unwrap_err();
            assert!(
                e.to_string()
                    .contains("column \"qty\": -12 does not fit in u32"),
                "{e}"
            );
            Ok(())
        })();
        if let Err(e) = result {
            failures.push(format!("{}: {e}", backend.as_str()));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
