//! Regression tests for data that was silently lost or corrupted in ordinary use, on every
//! backend: timestamps across the whole calendar, field names that differ only in case, typed
//! saves that must never commit and then fail, exact decimals, enums and bytes in their own
//! column types, serde renames, defaults for rows stored before a field existed, reserved
//! entity names, the lost-update trap (row locks and optimistic versions), and batches that
//! must not deadlock.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use common::{each_backend, each_backend_with, reset_entity};
use dal::prelude::*;
use serde::{Deserialize, Serialize};

fn ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Timestamps from year 1000 to 9999 (on both sides of 1970 and 2038, which a MySQL
/// `TIMESTAMP` parameter cannot hold).
const TIMESTAMPS: [&str; 8] = [
    "1000-01-01T00:00:00Z",
    "1900-06-15T08:30:00Z",
    "1965-03-01T00:00:00Z",
    "1969-12-31T23:59:59.999999Z",
    "2038-01-19T03:14:08Z",
    "2050-07-04T12:00:00.5Z",
    "2262-04-12T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
];

#[tokio::test]
async fn entity_timestamps_round_trip_from_year_1000_to_9999() {
    each_backend("c_ts_entity", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "c_people").await?;
        for t in TIMESTAMPS {
            let saved = conn
                .save_entity("c_people", json!({"born": t, "label": format!("#{t}")}))
                .await?;
            let id = saved["id"].as_str().unwrap().to_owned();
            // The same instant, in the canonical text (UTC, `Z`, 0, 3 or 6 fraction digits).
            let text = |v: &JsonValue| ts(v.as_str().unwrap());
            assert_eq!(text(&saved["born"]), ts(t), "as saved");
            let got = conn.get_entity("c_people", &id).await?.unwrap();
            assert_eq!(got["born"], saved["born"], "as read back");
            assert_eq!(got["label"], json!(format!("#{t}")));
            // The system columns are timestamps too, and never NULL.
            assert!(got["created_at"].is_string() && got["updated_at"].is_string());
        }
        let hits = conn
            .count_entities("c_people")
            .filter("[born] < ?", params![ts("1970-01-01T00:00:00Z")])
            .await?;
        assert_eq!(hits, 4, "timestamps compare chronologically");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn timestamp_parameters_round_trip_and_out_of_range_is_an_error_not_null() {
    each_backend("c_ts_param", |db| async move {
        let mut conn = db.async_connection().await?;
        conn.execute("DROP TABLE IF EXISTS [c_ts]", ()).await?;
        let col = match db.backend() {
            Backend::Postgres => "TIMESTAMPTZ",
            Backend::MySql => "DATETIME(6)",
            Backend::Sqlite => "TEXT",
        };
        conn.execute(&format!("CREATE TABLE [c_ts] ([n] INTEGER, [t] {col})"), ())
            .await?;
        for (n, t) in TIMESTAMPS.iter().enumerate() {
            conn.execute(
                "INSERT INTO [c_ts] ([n], [t]) VALUES (?, ?)",
                params![n as i64, ts(t)],
            )
            .await?;
            let rows = conn
                .execute("SELECT [t] FROM [c_ts] WHERE [n] = ?", params![n as i64])
                .await?;
            let back: DateTime<Utc> = rows[0].try_get(0)?;
            assert_eq!(back, ts(t), "{t}");
        }
        // Outside what the backend stores: an error, and nothing written.
        let too_far = match db.backend() {
            Backend::MySql => Some(ts("0999-12-31T23:59:59Z")),
            Backend::Sqlite => Some(Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap()),
            Backend::Postgres => None,
        };
        if let Some(t) = too_far {
            let e = conn
                .execute(
                    "INSERT INTO [c_ts] ([n], [t]) VALUES (?, ?)",
                    params![99, t],
                )
                .await
                .unwrap_err();
            assert!(e.to_string().contains("outside the range"), "{e}");
            let n: i64 = conn
                .execute("SELECT COUNT(*) FROM [c_ts] WHERE [n] = 99", ())
                .await?[0]
                .try_get(0)?;
            assert_eq!(n, 0);
        }
        conn.execute("DROP TABLE [c_ts]", ()).await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn field_names_are_case_insensitive_and_system_names_are_refused_in_any_case() {
    each_backend("c_case", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "c_case").await?;
        let saved = conn
            .save_entity("c_case", json!({"name": "a", "n": 1}))
            .await?;
        let id = saved["id"].as_str().unwrap().to_owned();
        for bad in [
            json!({"id": id, "NAME": "b"}),
            json!({"id": id, "N": 2}),
            json!({"id": id, "ID": "other"}),
            json!({"id": id, "DELETED_AT": "2024-01-01T00:00:00Z"}),
            json!({"id": id, "Created_By": "mallory"}),
            json!({"id": id, "Updated_By": "mallory"}),
            json!({"id": id, "VERSION": 7}),
            json!({"id": id, "History_Comment": "x"}),
            json!({"id": id, "fresh": 1, "FRESH": 2}),
        ] {
            let e = conn.save_entity("c_case", bad.clone()).await.unwrap_err();
            assert!(matches!(e, Error::Entity(_)), "{bad}: {e}");
        }
        // A batch whose rows spell a new field two ways is refused too.
        let e = conn
            .save_entities("c_case", vec![json!({"other": 1}), json!({"Other": 2})])
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Entity(_)), "{e}");
        // Nothing was written, and the entity still saves normally.
        assert_eq!(conn.get_entity_history("c_case", &id).await?.len(), 1);
        let got = conn.get_entity("c_case", &id).await?.unwrap();
        assert_eq!(got["name"], json!("a"));
        assert!(got["deleted_at"].is_null());
        assert!(got["created_by"].is_null());
        conn.save_entity("c_case", json!({"id": id, "name": "c"}))
            .await?;
        assert_eq!(
            conn.get_entity("c_case", &id).await?.unwrap()["name"],
            json!("c")
        );
        assert_eq!(conn.count_entities("c_case").await?, 1);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn entity_names_that_are_side_tables_are_refused() {
    each_backend("c_names", |db| async move {
        let mut conn = db.async_connection().await?;
        for name in ["x_history", "x_meta", "Orders_HISTORY", "a_Meta"] {
            let e = conn.save_entity(name, json!({"a": 1})).await.unwrap_err();
            assert!(matches!(e, Error::Entity(_)), "{name}: {e}");
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn expect_version_refuses_a_stale_save_and_writes_nothing() {
    each_backend("c_expect", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "c_docs").await?;
        let first = conn
            .save_entity("c_docs", json!({"body": "v1"}))
            .expect_version(0)
            .await?;
        assert_eq!(first["version"], json!(1));
        let id = first["id"].as_str().unwrap().to_owned();
        let second = conn
            .save_entity("c_docs", json!({"id": id, "body": "v2"}))
            .expect_version(1)
            .await?;
        assert_eq!(second["version"], json!(2));
        // A writer that read version 1 is now stale.
        let e = conn
            .save_entity("c_docs", json!({"id": id, "body": "stale"}))
            .expect_version(1)
            .await
            .unwrap_err();
        match e {
            Error::Conflict {
                entity,
                id: conflict_id,
                expected,
                actual,
            } => {
                assert_eq!(
                    (entity.as_str(), conflict_id.as_str(), expected, actual),
                    ("c_docs", id.as_str(), 1, 2)
                );
            }
            other => panic!("expected a conflict, got {other}"),
        }
        // Creating an id that exists with expect_version(0) conflicts too.
        let e = conn
            .save_entity("c_docs", json!({"id": id, "body": "dup"}))
            .expect_version(0)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Conflict { actual: 2, .. }), "{e}");
        let got = conn.get_entity("c_docs", &id).await?.unwrap();
        assert_eq!(
            (got["body"].clone(), got["version"].clone()),
            (json!("v2"), json!(2))
        );
        assert_eq!(conn.get_entity_history("c_docs", &id).await?.len(), 2);
        // Deletes and restores are versions too.
        conn.delete_entity("c_docs", &id).await?;
        conn.restore_entity("c_docs", &id).await?;
        let got = conn.get_entity("c_docs", &id).await?.unwrap();
        assert_eq!(got["version"], json!(4));
        let history = conn.get_entity_history("c_docs", &id).await?;
        let versions: Vec<i64> = history
            .iter()
            .map(|h| h["version"].as_i64().unwrap())
            .collect();
        assert_eq!(versions, vec![1, 2, 3, 4]);
        // A permanently deleted id that is saved again continues its history.
        conn.delete_entity("c_docs", &id).permanent().await?;
        let again = conn
            .save_entity("c_docs", json!({"id": id, "body": "reborn"}))
            .await?;
        assert_eq!(again["version"], json!(6));
        assert_eq!(conn.get_entity_history("c_docs", &id).await?.len(), 6);
        // The same in a batch (whose versions are looked up for the whole batch at once).
        conn.delete_entity("c_docs", &id).permanent().await?;
        let batch = conn
            .save_entities(
                "c_docs",
                vec![json!({"id": id, "body": "again"}), json!({"body": "fresh"})],
            )
            .await?;
        assert_eq!(
            (batch[0]["version"].clone(), batch[1]["version"].clone()),
            (json!(8), json!(1))
        );
        assert_eq!(conn.get_entity_history("c_docs", &id).await?.len(), 8);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_locking_read_needs_a_transaction() {
    each_backend("c_lock_tx", |db| async move {
        let mut conn = db.async_connection().await?;
        let e = conn
            .get_entity("c_anything", "x")
            .for_update()
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Transaction(_)), "{e}");
        Ok(())
    })
    .await;
}

/// Concurrent batches over the same ids in different orders: every batch commits (rows are
/// locked in id order), and every id's versions stay gapless.
#[tokio::test]
async fn shuffled_concurrent_batches_over_the_same_ids_never_deadlock() {
    each_backend_with(
        "c_batches",
        |c| c.pool_size(1, 12),
        |db| async move {
            let mut conn = db.async_connection().await?;
            reset_entity(&mut conn, "c_batch").await?;
            let ids: Vec<String> = (0..10).map(|i| format!("item-{i:02}")).collect();
            conn.save_entities(
                "c_batch",
                ids.iter().map(|id| json!({"id": id, "n": 0})).collect(),
            )
            .await?;
            drop(conn);
            const TASKS: usize = 10;
            const BATCHES: usize = 20;
            let mut tasks = Vec::new();
            for t in 0..TASKS {
                let db = db.clone();
                let ids = ids.clone();
                tasks.push(tokio::spawn(async move {
                    let mut ok = 0;
                    for b in 0..BATCHES {
                        // A different order per task and batch.
                        let mut order = ids.clone();
                        let k = (t * 7 + b * 3) % order.len();
                        order.rotate_left(k);
                        if (t + b) % 2 == 1 {
                            order.reverse();
                        }
                        let batch = order
                            .iter()
                            .map(|id| json!({"id": id, "n": t * 1000 + b}))
                            .collect();
                        let mut conn = db.async_connection().await?;
                        conn.save_entities("c_batch", batch).await?;
                        ok += 1;
                    }
                    Ok::<usize, Error>(ok)
                }));
            }
            let mut committed = 0;
            for t in tasks {
                committed += t.await.expect("task panicked")?;
            }
            assert_eq!(committed, TASKS * BATCHES);
            let mut conn = db.async_connection().await?;
            for id in &ids {
                let got = conn.get_entity("c_batch", id).await?.unwrap();
                assert_eq!(got["version"], json!(1 + TASKS * BATCHES), "{id}");
                let history = conn.get_entity_history("c_batch", id).await?;
                let versions: Vec<i64> = history
                    .iter()
                    .map(|h| h["version"].as_i64().unwrap())
                    .collect();
                let want: Vec<i64> = (1..=(1 + TASKS * BATCHES) as i64).collect();
                assert_eq!(versions, want, "{id}");
            }
            Ok(())
        },
    )
    .await;
}

/// Entity tables made by earlier releases had no `version` column: it is added and filled
/// from the history on first use.
#[tokio::test]
async fn tables_made_before_entity_versions_are_upgraded_from_their_history() {
    each_backend("c_old", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "c_old").await?;
        let (ts, id) = match db.backend() {
            Backend::Postgres => ("TIMESTAMPTZ", "TEXT"),
            Backend::MySql => ("DATETIME(6)", "VARCHAR(255)"),
            Backend::Sqlite => ("TEXT", "TEXT"),
        };
        let sys = format!("[id] {id} NOT NULL, [created_at] {ts} NOT NULL, [created_by] VARCHAR(255), [updated_at] {ts} NOT NULL, [updated_by] VARCHAR(255), [deleted_at] {ts}, [n] BIGINT");
        conn.execute(&format!("CREATE TABLE [c_old] ({sys}, PRIMARY KEY ([id]))"), ()).await?;
        conn.execute(&format!("CREATE TABLE [c_old_history] ({sys}, [version] BIGINT NOT NULL, [history_timestamp] {ts} NOT NULL, [history_user_id] VARCHAR(255), [history_comment] TEXT, PRIMARY KEY ([id], [version]))"), ()).await?;
        conn.execute("CREATE TABLE [c_old_meta] ([name] VARCHAR(255) NOT NULL, [type] VARCHAR(32) NOT NULL, PRIMARY KEY ([name]))", ()).await?;
        conn.execute("INSERT INTO [c_old_meta] VALUES ('n', 'int')", ()).await?;
        let now = Utc::now();
        conn.execute("INSERT INTO [c_old] VALUES ('a', ?, NULL, ?, NULL, NULL, 5)", params![now, now]).await?;
        for v in 1..=3 {
            conn.execute("INSERT INTO [c_old_history] VALUES ('a', ?, NULL, ?, NULL, NULL, 5, ?, ?, NULL, NULL)", params![now, now, v, now]).await?;
        }
        let got = conn.get_entity("c_old", "a").await?.unwrap();
        assert_eq!(got["version"], json!(3));
        let saved = conn.save_entity("c_old", json!({"id": "a", "n": 6})).await?;
        assert_eq!(saved["version"], json!(4));
        assert_eq!(conn.get_entity_history("c_old", "a").await?.len(), 4);
        Ok(())
    })
    .await;
}

// ---- typed entities ------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "c_measures")]
struct Measure {
    id: Option<String>,
    value: f64,
    maybe: Option<f64>,
    series: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "c_naive")]
struct Naive {
    id: Option<String>,
    at: NaiveDateTime,
    maybe: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "c_numbered")]
#[serde(deny_unknown_fields)]
struct Numbered {
    id: Option<i64>,
    label: String,
}

async fn stored_rows(conn: &mut Connection, table: &str) -> dal::Result<i64> {
    let exists = conn.count_entities(table).include_deleted().await?;
    Ok(exists)
}

#[tokio::test]
async fn typed_saves_refuse_what_cannot_be_read_back_before_writing_anything() {
    each_backend("c_typed_nan", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "c_measures").await?;
        reset_entity(&mut conn, "c_numbered").await?;
        let fine = Measure {
            id: None,
            value: -0.5,
            maybe: None,
            series: vec![1.0],
        };
        // serde_json writes non-finite floats as null: `Some(NaN)` would come back `None`.
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for m in [
                Measure {
                    value: bad,
                    ..fine.clone()
                },
                Measure {
                    maybe: Some(bad),
                    ..fine.clone()
                },
                Measure {
                    series: vec![0.5, bad],
                    ..fine.clone()
                },
            ] {
                let e = conn.save(&m).await.unwrap_err();
                assert!(matches!(e, Error::Entity(_)), "{m:?}: {e}");
            }
        }
        assert_eq!(stored_rows(&mut conn, "c_measures").await?, 0);
        let ok = conn.save(&fine).await?;
        assert_eq!(
            ok,
            Measure {
                id: ok.id.clone(),
                ..fine
            }
        );
        // Integer ids: generated ones would be UUIDs, so an unset integer id is refused …
        let e = conn
            .save(&Numbered {
                id: None,
                label: "x".into(),
            })
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Entity(_)), "{e}");
        assert_eq!(stored_rows(&mut conn, "c_numbered").await?, 0);
        // … and a set one round-trips as an integer.
        let n = conn
            .save(&Numbered {
                id: Some(42),
                label: "x".into(),
            })
            .await?;
        assert_eq!(n.id, Some(42));
        let back: Numbered = conn.get("42").await?.unwrap();
        assert_eq!(back, n);
        let all = conn.find::<Numbered>().await?;
        assert_eq!(all, vec![n]);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn naive_date_times_round_trip() {
    each_backend("c_naive", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "c_naive").await?;
        let at =
            NaiveDateTime::parse_from_str("1950-05-06 07:08:09.123456", "%Y-%m-%d %H:%M:%S%.f")
                .unwrap();
        let saved = conn
            .save(&Naive {
                id: None,
                at,
                maybe: None,
            })
            .await?;
        assert_eq!(saved.at, at);
        let id = saved.id.clone().unwrap();
        let again = conn
            .save(&Naive {
                maybe: Some(at),
                ..saved.clone()
            })
            .await?;
        assert_eq!(again.maybe, Some(at));
        let back: Naive = conn.get(&id).await?.unwrap();
        assert_eq!(back, again);
        Ok(())
    })
    .await;
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Status {
    Active,
    Discontinued,
}

type Cents = i64;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Sku(i64);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "c_products")]
struct Product {
    id: Option<String>,
    name: String,
    price: Decimal,
    status: Status,
    cents: Cents,
    sku: Sku,
    thumbnail: Vec<u8>,
    discount: Option<Decimal>,
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[tokio::test]
async fn decimals_enums_aliases_newtypes_and_bytes_get_their_own_column_types() {
    each_backend("c_types", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "c_products").await?;
        let products = vec![
            Product {
                id: None,
                name: "pen".into(),
                price: dec("19.99"),
                status: Status::Active,
                cents: 1999,
                sku: Sku(7),
                thumbnail: vec![0, 1, 2, 255, 0],
                discount: None,
            },
            Product {
                id: None,
                name: "ink".into(),
                price: dec("0.01"),
                status: Status::Discontinued,
                cents: 1,
                sku: Sku(8),
                thumbnail: vec![],
                discount: Some(dec("-1.50")),
            },
            Product {
                id: None,
                name: "desk".into(),
                price: dec("123456789.123456"),
                status: Status::Active,
                cents: 12_345_678_912,
                sku: Sku(9),
                thumbnail: b"\x89PNG".to_vec(),
                discount: Some(dec("0.333333")),
            },
        ];
        let saved = conn.save_all(&products).await?;
        for (s, p) in saved.iter().zip(&products) {
            assert_eq!(s.price, p.price);
            assert_eq!(s.thumbnail, p.thumbnail);
            assert_eq!(s.discount, p.discount);
            let back: Product = conn.get(s.id.as_deref().unwrap()).await?.unwrap();
            assert_eq!(&back, s);
        }
        // Numbers compare as numbers, enums as their text, on every backend.
        let over_ten = conn
            .find::<Product>()
            .filter("[price] > ?", params![10])
            .order_by("[name]")
            .await?;
        let names: Vec<&str> = over_ten.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["desk", "pen"]);
        let discontinued = conn
            .count_with::<Product>(FindOptions::default().filter("[status] = 'Discontinued'", ()))
            .await?;
        assert_eq!(discontinued, 1);
        let pricey = conn
            .count_with::<Product>(
                FindOptions::default().filter("[cents] > ? AND [sku] >= ?", params![100, 7]),
            )
            .await?;
        assert_eq!(pricey, 2);
        // The stored values are native: a decimal, bytes.
        let rows = conn
            .execute(
                "SELECT [price], [thumbnail] FROM [c_products] WHERE [name] = ?",
                params!["pen"],
            )
            .await?;
        assert_eq!(rows[0].try_get::<Decimal, _>(0)?, dec("19.99"));
        assert_eq!(rows[0][1], Value::Bytes(vec![0, 1, 2, 255, 0]));
        // Sums are exact where the backend has an exact decimal type.
        let rows = conn
            .execute("SELECT SUM([price]) FROM [c_products]", ())
            .await?;
        let sum: Decimal = rows[0].try_get(0)?;
        if db.backend() == Backend::Sqlite {
            assert!(
                (sum - dec("123456809.123456")).abs() < dec("0.00001"),
                "{sum}"
            );
        } else {
            assert_eq!(sum, dec("123456809.123456"));
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn sqlite_refuses_decimals_it_cannot_store_exactly() {
    let db = Database::from_url("sqlite::memory:").unwrap();
    let mut conn = db.async_connection().await.unwrap();
    conn.execute("CREATE TABLE [d] ([v] NUMERIC)", ())
        .await
        .unwrap();
    let e = conn
        .execute(
            "INSERT INTO [d] ([v]) VALUES (?)",
            params![dec("12345678901234567.89")],
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("15 significant digits"), "{e}");
    let rows = conn.execute("SELECT COUNT(*) FROM [d]", ()).await.unwrap();
    assert_eq!(rows[0].try_get::<i64, _>(0).unwrap(), 0);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "c_camel")]
#[serde(rename_all = "camelCase")]
struct CamelCased {
    id: Option<String>,
    first_name: String,
    last_login_count: i64,
    #[serde(rename = "x_ray")]
    xray_level: Option<i32>,
}

#[tokio::test]
async fn serde_rename_all_keeps_every_field() {
    each_backend("c_camel", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "c_camel").await?;
        let v = CamelCased {
            id: None,
            first_name: "Ada".into(),
            last_login_count: 3,
            xray_level: Some(9),
        };
        let saved = conn.save(&v).await?;
        assert_eq!(saved.first_name, "Ada");
        assert_eq!(saved.last_login_count, 3);
        assert_eq!(saved.xray_level, Some(9));
        // Columns are the Rust field names.
        let id = saved.id.clone().unwrap();
        let raw = conn.get_entity("c_camel", &id).await?.unwrap();
        assert_eq!(raw["first_name"], json!("Ada"));
        assert_eq!(raw["last_login_count"], json!(3));
        assert_eq!(raw["xray_level"], json!(9));
        assert_eq!(conn.get::<CamelCased>(&id).await?.unwrap(), saved);
        Ok(())
    })
    .await;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "c_evolve")]
struct ProfileV2 {
    id: Option<String>,
    name: String,
    #[entity(default = 7)]
    level: i64,
    #[entity(default = "basic")]
    plan: String,
}

#[tokio::test]
async fn a_field_added_with_a_default_reads_old_rows() {
    each_backend("c_default", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "c_evolve").await?;
        // Stored before the struct had `level` and `plan`.
        let old = conn.save_entity("c_evolve", json!({"name": "old"})).await?;
        let old_id = old["id"].as_str().unwrap().to_owned();
        let new = conn
            .save(&ProfileV2 {
                id: None,
                name: "new".into(),
                level: 3,
                plan: "pro".into(),
            })
            .await?;
        let got: ProfileV2 = conn.get(&old_id).await?.unwrap();
        assert_eq!((got.level, got.plan.as_str()), (7, "basic"));
        let all = conn.find::<ProfileV2>().order_by("[name]").await?;
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], new);
        assert_eq!((all[1].name.as_str(), all[1].level), ("old", 7));
        let history = conn.history::<ProfileV2>(&old_id).await?;
        assert_eq!(history[0].entity.level, 7);
        Ok(())
    })
    .await;
}

// ---- the lost-update trap: 50 concurrent orders on a stock of 30 ----------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "c_stock")]
struct Stock {
    id: Option<String>,
    quantity: i64,
    #[entity(version)]
    version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "c_orders")]
struct Order {
    id: Option<String>,
    stock_id: String,
}

const ORDERS: usize = 50;
const STOCK: i64 = 30;

/// The tests that use `c_stock` drop and recreate it: they take turns.
static STOCK_TABLES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Pessimistic: lock the stock row, check, write, all in one transaction.
#[auto_transaction]
async fn order_with_row_lock(conn: &mut Connection, stock_id: &str) -> dal::Result<bool> {
    let mut stock: Stock = conn
        .get_for_update(stock_id)
        .await?
        .ok_or_else(|| Error::Entity("no stock".into()))?;
    if stock.quantity == 0 {
        return Ok(false);
    }
    stock.quantity -= 1;
    conn.save(&stock).await?;
    conn.save(&Order {
        id: None,
        stock_id: stock_id.to_owned(),
    })
    .await?;
    Ok(true)
}

/// Optimistic: read, check, write with the version read; a conflict rolls the transaction
/// back and the order is tried again.
#[auto_transaction]
async fn order_once_optimistically(conn: &mut Connection, stock_id: &str) -> dal::Result<bool> {
    let mut stock: Stock = conn
        .get(stock_id)
        .await?
        .ok_or_else(|| Error::Entity("no stock".into()))?;
    if stock.quantity == 0 {
        return Ok(false);
    }
    stock.quantity -= 1;
    conn.save(&stock).await?; // Err(Conflict) when someone else saved it since the read
    conn.save(&Order {
        id: None,
        stock_id: stock_id.to_owned(),
    })
    .await?;
    Ok(true)
}

async fn order_optimistically(conn: &mut Connection, stock_id: &str) -> dal::Result<bool> {
    loop {
        match order_once_optimistically(conn, stock_id).await {
            Err(Error::Conflict { .. }) => continue,
            other => return other,
        }
    }
}

async fn run_orders(db: Database, optimistic: bool) -> dal::Result<()> {
    let mut conn = db.async_connection().await?;
    reset_entity(&mut conn, "c_stock").await?;
    reset_entity(&mut conn, "c_orders").await?;
    // The orders table exists before the rush: on MySQL, creating a table inside a
    // transaction commits it (and releases its locks) — see "MySQL caveat" in the README.
    let setup = conn
        .save(&Order {
            id: None,
            stock_id: "setup".into(),
        })
        .await?;
    conn.delete_with::<Order>(
        setup.id.as_deref().unwrap_or_default(),
        DeleteOptions::default(),
    )
    .await?;
    let stock = conn
        .save(&Stock {
            id: Some("widget".into()),
            quantity: STOCK,
            version: 0,
        })
        .await?;
    assert_eq!(stock.version, 1);
    drop(conn);
    let barrier = Arc::new(tokio::sync::Barrier::new(ORDERS));
    let mut tasks = Vec::new();
    for _ in 0..ORDERS {
        let db = db.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut conn = db.async_connection().await?;
            if optimistic {
                order_optimistically(&mut conn, "widget").await
            } else {
                order_with_row_lock(&mut conn, "widget").await
            }
        }));
    }
    let mut sold = 0;
    for t in tasks {
        if t.await.expect("order task panicked")? {
            sold += 1;
        }
    }
    let mut conn = db.async_connection().await?;
    let stock: Stock = conn.get("widget").await?.unwrap();
    let orders = conn.count::<Order>().await?;
    assert_eq!(sold, STOCK as usize, "orders that reported success");
    assert_eq!(stock.quantity, 0, "stock left");
    assert_eq!(orders, STOCK, "orders stored");
    assert_eq!(stock.version, 1 + STOCK, "one version per sale");
    Ok(())
}

#[tokio::test]
async fn concurrent_orders_never_oversell_with_a_row_lock() {
    let _turn = STOCK_TABLES.lock().await;
    each_backend_with(
        "c_oversell_lock",
        |c| {
            c.pool_size(1, 25)
                .connection_acquisition_timeout(Duration::from_secs(30))
        },
        |db| run_orders(db, false),
    )
    .await;
}

#[tokio::test]
async fn concurrent_orders_never_oversell_with_optimistic_versions() {
    let _turn = STOCK_TABLES.lock().await;
    each_backend_with(
        "c_oversell_version",
        |c| {
            c.pool_size(1, 25)
                .connection_acquisition_timeout(Duration::from_secs(30))
        },
        |db| run_orders(db, true),
    )
    .await;
}

#[tokio::test]
async fn a_typed_save_of_a_stale_version_conflicts_and_writes_nothing() {
    let _turn = STOCK_TABLES.lock().await;
    each_backend("c_stale", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "c_stock").await?;
        let a = conn
            .save(&Stock {
                id: None,
                quantity: 5,
                version: 0,
            })
            .await?;
        let b = conn
            .save(&Stock {
                quantity: 4,
                ..a.clone()
            })
            .await?;
        assert_eq!(b.version, 2);
        let e = conn
            .save(&Stock {
                quantity: 1,
                ..a.clone()
            })
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Conflict {
                    expected: 1,
                    actual: 2,
                    ..
                }
            ),
            "{e}"
        );
        let now: Stock = conn.get(a.id.as_deref().unwrap()).await?.unwrap();
        assert_eq!(now, b);
        assert_eq!(
            conn.history::<Stock>(a.id.as_deref().unwrap()).await?.len(),
            2
        );
        Ok(())
    })
    .await;
}
