//! The fast write paths of the entity layer, on every backend: a single save (one statement
//! on PostgreSQL) and large batches (COPY into a staging table on PostgreSQL, multi-row
//! statements elsewhere) keep every semantic of the statement-by-statement path.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use common::{each_backend, reset_entity};
use dal::prelude::*;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "ew_items")]
struct Item {
    id: Option<String>,
    text: String,
    note: Option<String>,
    amount: Decimal,
    data: Vec<u8>,
    at: DateTime<Utc>,
    n: Option<i64>,
    ratio: f64,
}

const NASTY: [&str; 12] = [
    "tab\there",
    "new\nline",
    "back\\slash",
    "\\N",
    "\\.",
    "quote'\"`",
    "unicode é 漢字 🎉",
    "cr\r\nlf",
    "",
    " padded ",
    "\\\\x00",
    "percent %s ? $1 [x]",
];

fn item(i: usize, id: Option<String>) -> Item {
    let at = match i % 3 {
        0 => Utc.with_ymd_and_hms(1000, 1, 1, 0, 0, 0).unwrap(),
        1 => {
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap()
                + chrono::Duration::microseconds(999_999)
        }
        _ => {
            Utc.with_ymd_and_hms(2024, 2, 29, 12, 30, 0).unwrap()
                + chrono::Duration::microseconds(i as i64)
        }
    };
    Item {
        id,
        text: format!("{}{}", NASTY[i % NASTY.len()], i),
        note: (!i.is_multiple_of(4)).then(|| NASTY[(i * 7) % NASTY.len()].to_owned()),
        amount: if i == 5 {
            "-12345678901.2345".parse().unwrap()
        } else {
            Decimal::new(i as i64 * 10_007 - 3_000_000, 4)
        },
        data: match i % 5 {
            0 => Vec::new(),
            _ => vec![0, b'\\', b'\t', b'\n', 0xff, i as u8],
        },
        at,
        n: (!i.is_multiple_of(6)).then_some(-(i as i64) * 1_000_000_007),
        ratio: i as f64 * 0.1,
    }
}

/// An id that needs escaping in every text format.
fn nasty_id(i: usize) -> String {
    format!("k{i}\t\\N\n'\"é")
}

#[tokio::test]
async fn large_batches_of_nasty_values_mixed_new_and_existing_read_back_exactly() {
    each_backend("ew_bulk", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "ew_items").await?;
        // 300 that exist already (a batch below the COPY threshold), one of them then deleted
        // for good (its history goes on).
        let before: Vec<Item> = (0..300).map(|i| item(i + 1000, Some(nasty_id(i)))).collect();
        let first = conn.save_all(&before).await?;
        assert_eq!(first.len(), 300);
        let created: JsonValue = conn.get_entity("ew_items", nasty_id(7)).await?.unwrap()["created_at"].clone();
        assert!(conn.delete_entity("ew_items", nasty_id(9)).permanent().await?);

        // 600: those 300 again (new values), and 300 new ids (half given, half assigned).
        let batch: Vec<Item> = (0..600)
            .map(|i| match i {
                0..300 => item(i, Some(nasty_id(i))),
                300..450 => item(i, Some(nasty_id(i))),
                _ => item(i, None),
            })
            .collect();
        let saved = conn.save_all(&batch).await?;
        assert_eq!(saved.len(), 600);
        for (s, want) in saved.iter().zip(&batch) {
            if let Some(id) = &want.id {
                assert_eq!(s.id.as_ref(), Some(id));
            }
            assert_eq!(&Item { id: s.id.clone(), ..want.clone() }, s);
            let back: Item = conn.get(s.id.as_deref().unwrap()).await?.unwrap();
            assert_eq!(&back, s, "read back {:?}", s.id);
        }
        // History: one row per save, versions gapless per id; the entity deleted for good
        // continues its versions (1 saved, 2 deleted, 3 saved again).
        let rows = conn
            .execute(
                "SELECT [id], COUNT(*), MAX([version]), MIN([version]) FROM [ew_items_history] GROUP BY [id]",
                (),
            )
            .await?;
        let versions: BTreeMap<String, (i64, i64, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r.try_get::<String, _>(0).unwrap(),
                    (r.try_get(1).unwrap(), r.try_get(2).unwrap(), r.try_get(3).unwrap()),
                )
            })
            .collect();
        assert_eq!(versions.len(), 600);
        for s in &saved {
            let id = s.id.clone().unwrap();
            let want = match id.strip_prefix('k').and_then(|r| r.split('\t').next()) {
                Some("9") => (3, 3, 1),
                Some(n) if n.parse::<usize>().unwrap() < 300 => (2, 2, 1),
                _ => (1, 1, 1),
            };
            assert_eq!(versions[&id], want, "{id:?}");
        }
        // An update keeps who created it and when; the history records the stored row.
        let e = conn.get_entity("ew_items", nasty_id(7)).await?.unwrap();
        assert_eq!(e["created_at"], created);
        assert_eq!(e["version"], json!(2));
        let h = conn.get_entity_history("ew_items", nasty_id(7)).await?;
        assert_eq!(h.len(), 2);
        assert_eq!(h[1]["text"], json!(batch[7].text));
        assert_eq!(h[1]["version"], json!(2));

        // A batch naming an id twice is refused, and writes nothing.
        let mut dup: Vec<Item> = (0..599).map(|i| item(i, None)).collect();
        dup.push(item(3, Some(nasty_id(3))));
        dup.push(item(4, Some(nasty_id(3))));
        let err = conn.save_all(&dup).await.unwrap_err();
        assert!(err.to_string().contains("more than once"), "{err}");
        assert_eq!(conn.count::<Item>().await?, 600);

        // Large batches inside the caller's transaction, rolled back: nothing stays, and the
        // connection saves again afterwards.
        conn.begin_transaction().await?;
        conn.save_all(&(0..550).map(|i| item(i, None)).collect::<Vec<_>>()).await?;
        conn.save_all(&(0..520).map(|i| item(i, None)).collect::<Vec<_>>()).await?;
        conn.rollback_transaction().await?;
        assert_eq!(conn.count::<Item>().await?, 600);
        conn.save_all(&(0..510).map(|i| item(i, None)).collect::<Vec<_>>()).await?;
        assert_eq!(conn.count::<Item>().await?, 1110);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn dynamic_large_batches_with_nulls_and_partial_rows_keep_the_other_fields() {
    each_backend("ew_dyn", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "ew_dyn").await?;
        let rows: Vec<JsonValue> = (0..520)
            .map(|i| json!({"id": format!("d{i}"), "a": i, "b": NASTY[i % NASTY.len()], "c": null}))
            .collect();
        conn.save_entities("ew_dyn", rows).await?;
        // Only `a` this time: `b` stays as it was.
        let rows: Vec<JsonValue> = (0..520)
            .map(|i| json!({"id": format!("d{i}"), "a": -(i as i64)}))
            .collect();
        let saved = conn
            .save_entities("ew_dyn", rows)
            .user_id("bulk")
            .comment("second")
            .await?;
        for (i, s) in saved.iter().enumerate() {
            assert_eq!(s["a"], json!(-(i as i64)));
            assert_eq!(s["b"], json!(NASTY[i % NASTY.len()]));
            assert_eq!(s["version"], json!(2));
            assert_eq!(s["updated_by"], json!("bulk"));
        }
        let h = conn.get_entity_history("ew_dyn", "d11").await?;
        assert_eq!(h.len(), 2);
        assert_eq!(h[1]["history_user_id"], json!("bulk"));
        assert_eq!(h[1]["history_comment"], json!("second"));
        assert_eq!(h[1]["b"], json!(NASTY[11]));
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn concurrent_single_saves_of_one_id_give_gapless_versions_and_complete_history() {
    each_backend("ew_conc", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "ew_conc").await?;
        conn.save_entity("ew_conc", json!({"id": "one", "hits": 0}))
            .await?;
        drop(conn);
        const TASKS: usize = 8;
        const SAVES: usize = 4;
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = db.async_connection().await?;
                for k in 0..SAVES {
                    c.save_entity("ew_conc", json!({"id": "one", "hits": t * 100 + k}))
                        .user_id(format!("task{t}"))
                        .comment(format!("{t}/{k}"))
                        .await?;
                }
                Ok::<_, Error>(())
            }));
        }
        for t in tasks {
            t.await.map_err(|e| Error::Internal(e.to_string()))??;
        }
        let mut conn = db.async_connection().await?;
        let h = conn.get_entity_history("ew_conc", "one").await?;
        let versions: Vec<i64> = h.iter().map(|r| r["version"].as_i64().unwrap()).collect();
        assert_eq!(
            versions,
            (1..=(TASKS * SAVES + 1) as i64).collect::<Vec<_>>()
        );
        // Every save is in the history once, with its own values, user and comment.
        let comments: BTreeSet<String> = h[1..]
            .iter()
            .map(|r| {
                let c = r["history_comment"].as_str().unwrap().to_owned();
                let (t, k) = c.split_once('/').unwrap();
                assert_eq!(r["history_user_id"], json!(format!("task{t}")));
                let hits = t.parse::<usize>().unwrap() * 100 + k.parse::<usize>().unwrap();
                assert_eq!(r["hits"], json!(hits));
                c
            })
            .collect();
        assert_eq!(comments.len(), TASKS * SAVES);
        let e = conn.get_entity("ew_conc", "one").await?.unwrap();
        assert_eq!(e["version"], json!(TASKS * SAVES + 1));
        assert_eq!(e, {
            let mut last = h.last().unwrap().clone();
            last.retain(|k, _| !k.starts_with("history_"));
            last
        });
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn single_saves_keep_versions_conflicts_audit_and_soft_deletes() {
    each_backend("ew_one", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "ew_one").await?;
        let a = conn
            .save_entity("ew_one", json!({"id": "a", "x": 1}))
            .user_id("u1")
            .comment("made")
            .await?;
        assert_eq!(a["version"], json!(1));
        assert_eq!(a["created_by"], json!("u1"));
        // Expected versions: a mismatch is a conflict naming the stored version, and writes
        // nothing.
        for (want, actual) in [(0, 1), (5, 1)] {
            match conn
                .save_entity("ew_one", json!({"id": "a", "x": 99}))
                .expect_version(want)
                .await
            {
                Err(Error::Conflict {
                    expected,
                    actual: got,
                    ..
                }) => {
                    assert_eq!((expected, got), (want, actual))
                }
                other => panic!("expected a conflict, got {other:?}"),
            }
        }
        match conn
            .save_entity("ew_one", json!({"id": "ghost", "x": 1}))
            .expect_version(3)
            .await
        {
            Err(Error::Conflict { actual: 0, .. }) => {}
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert!(conn.get_entity("ew_one", "ghost").await?.is_none());
        assert!(conn.get_entity_history("ew_one", "ghost").await?.is_empty());
        assert_eq!(conn.get_entity_history("ew_one", "a").await?.len(), 1);
        let b = conn
            .save_entity("ew_one", json!({"id": "a", "y": "new field"}))
            .expect_version(1)
            .user_id("u2")
            .comment("second")
            .await?;
        assert_eq!(b["version"], json!(2));
        assert_eq!(b["x"], json!(1), "a partial save keeps the other fields");
        assert_eq!(b["created_by"], json!("u1"));
        assert_eq!(b["created_at"], a["created_at"]);
        assert_eq!(b["updated_by"], json!("u2"));
        let n = conn
            .save_entity("ew_one", json!({"id": "n"}))
            .expect_version(0)
            .await?;
        assert_eq!(n["version"], json!(1));
        let h = conn.get_entity_history("ew_one", "a").await?;
        assert_eq!(h[1]["history_user_id"], json!("u2"));
        assert_eq!(h[1]["history_comment"], json!("second"));
        assert_eq!(h[1]["y"], json!("new field"));
        // A soft-deleted entity saved again: the save records what is stored.
        assert!(conn.delete_entity("ew_one", "a").await?);
        let c = conn
            .save_entity("ew_one", json!({"id": "a", "x": 3}))
            .await?;
        assert_eq!(c["version"], json!(4));
        let h = conn.get_entity_history("ew_one", "a").await?;
        assert_eq!(h.last().unwrap()["deleted_at"], c["deleted_at"]);
        assert_eq!(h.last().unwrap()["x"], json!(3));
        // Inside the caller's transaction: rolled back with it.
        conn.begin_transaction().await?;
        conn.save_entity("ew_one", json!({"id": "a", "x": 4}))
            .await?;
        conn.save_entity("ew_one", json!({"id": "t", "x": 4}))
            .await?;
        conn.rollback_transaction().await?;
        assert!(conn.get_entity("ew_one", "t").await?.is_none());
        assert_eq!(conn.get_entity_history("ew_one", "a").await?.len(), 4);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn saves_take_the_fewest_round_trips_each_backend_allows() {
    each_backend("ew_trips", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "ew_trips").await?;
        let e = conn.save_entity("ew_trips", json!({"a": 1})).await?;
        let statements = |db: &Database| db.pool_metrics().unwrap().queries;
        let before = statements(&db);
        conn.save_entity("ew_trips", json!({"a": 2})).await?;
        conn.save_entity("ew_trips", json!({"id": e["id"], "a": 3}))
            .await?;
        conn.save_entity("ew_trips", json!({"id": e["id"], "a": 4}))
            .expect_version(2)
            .await?;
        let single = statements(&db) - before;
        let rows: Vec<JsonValue> = (0..2_500).map(|i| json!({"a": i})).collect();
        let before = statements(&db);
        assert_eq!(conn.save_entities("ew_trips", rows).await?.len(), 2_500);
        let bulk = statements(&db) - before;
        let (single_max, bulk_max) = match db.backend() {
            // One statement per save; BEGIN, CREATE staging, COPY, merge, DROP, COMMIT.
            Backend::Postgres => (3, 6),
            // BEGIN, upsert RETURNING, history, COMMIT (+ the version check); a batch:
            // version lookups and history appends of 2 000 ids, upserts of 1 000 rows.
            Backend::Sqlite => (13, 9),
            // START, row lock, upsert, history (RETURNING on MariaDB, else + read back),
            // COMMIT; a batch: locks and lookups of 2 000 ids, upserts of 1 000 rows, history.
            Backend::MySql => (18, 13),
        };
        assert!(
            single <= single_max,
            "{single} statements for 3 single saves"
        );
        assert!(bulk <= bulk_max, "{bulk} statements for 2 500 rows");
        Ok(())
    })
    .await;
}
