//! The dynamic entity layer on every backend: automatic schema, evolution, history, soft delete.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

mod common;

use common::{each_backend, reset_entity};
use dal::prelude::*;

fn id_of(m: &Map<String, JsonValue>) -> String {
    m["id"].as_str().expect("id is a string").to_owned()
}

#[tokio::test]
async fn save_creates_tables_and_get_returns_typed_values() {
    each_backend("ent_basic", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "ent_users").await?;
        let saved = conn
            .save_entity(
                "ent_users",
                json!({"name": "John Doe", "age": 30, "score": 1.5, "active": true,
                       "preferences": {"theme": "dark", "tags": ["a", "b"]},
                       "created_date": "2024-05-01T12:00:00Z"}),
            )
            .await?;
        let id = id_of(&saved);
        assert_eq!(id.len(), 36, "uuid text id");
        for f in ["created_at", "updated_at"] {
            assert!(saved[f].is_string(), "{f}: {saved:?}");
        }
        assert!(saved["deleted_at"].is_null());
        let got = conn.get_entity("ent_users", &id).await?.expect("found");
        assert_eq!(got["name"], json!("John Doe"));
        assert_eq!(got["age"], json!(30));
        assert_eq!(got["score"], json!(1.5));
        assert_eq!(got["active"], json!(true));
        assert_eq!(
            got["preferences"],
            json!({"theme": "dark", "tags": ["a", "b"]})
        );
        assert_eq!(got["created_date"], json!("2024-05-01T12:00:00Z"));
        assert_eq!(got, saved);
        assert!(conn.get_entity("ent_users", "no-such-id").await?.is_none());
        assert!(conn.get_entity("ent_never_saved", "x").await?.is_none());
        assert_eq!(conn.count_entities("ent_never_saved").await?, 0);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn numeric_filter_compares_numbers_as_numbers() {
    each_backend("ent_numeric", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "ent_products").await?;
        for p in [5, 15, 100, 150] {
            conn.save_entity("ent_products", json!({"name": format!("p{p}"), "price": p}))
                .await?;
        }
        let cheap = conn
            .find_entities("ent_products")
            .filter("[price] < ?", params![20])
            .await?;
        assert_eq!(cheap.len(), 2);
        assert_eq!(
            conn.count_entities("ent_products")
                .filter("[price] < ?", params![20])
                .await?,
            2
        );
        let page = conn
            .find_entities("ent_products")
            .order_by("[price] DESC")
            .limit(2)
            .offset(1)
            .await?;
        let prices: Vec<i64> = page.iter().map(|m| m["price"].as_i64().unwrap()).collect();
        assert_eq!(prices, vec![100, 15]);
        let skipped = conn
            .find_entities("ent_products")
            .order_by("[price]")
            .offset(3)
            .await?;
        assert_eq!(skipped.len(), 1);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn partial_update_keeps_fields_and_creation_data_and_adds_columns() {
    each_backend("ent_partial", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "ent_people").await?;
        let first = conn
            .save_entity("ent_people", json!({"name": "Phil", "age": 30}))
            .user_id("alice")
            .await?;
        let id = id_of(&first);
        let second = conn
            .save_entity(
                "ent_people",
                json!({"id": id, "name": "Bob", "department": "Engineering"}),
            )
            .user_id("admin")
            .comment("renamed")
            .await?;
        assert_eq!(second["age"], json!(30), "unmentioned field kept");
        assert_eq!(second["name"], json!("Bob"));
        assert_eq!(
            second["department"],
            json!("Engineering"),
            "new field became a column"
        );
        assert_eq!(second["created_at"], first["created_at"]);
        assert_eq!(second["created_by"], json!("alice"));
        assert_eq!(second["updated_by"], json!("admin"));
        let n = conn
            .count_entities("ent_people")
            .filter("[department] = ?", params!["Engineering"])
            .await?;
        assert_eq!(n, 1);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn history_records_every_version_with_user_and_comment() {
    each_backend("ent_history", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "ent_hist").await?;
        let v1 = conn
            .save_entity("ent_hist", json!({"name": "A", "n": 1}))
            .await?;
        let id = id_of(&v1);
        conn.save_entity("ent_hist", json!({"id": id, "name": "B"}))
            .user_id("admin")
            .comment("Upgraded to premium")
            .await?;
        let history = conn.get_entity_history("ent_hist", &id).await?;
        assert_eq!(history.len(), 2);
        assert_eq!(history[0]["version"], json!(1));
        assert_eq!(history[0]["name"], json!("A"));
        assert_eq!(history[1]["version"], json!(2));
        assert_eq!(history[1]["name"], json!("B"));
        assert_eq!(history[1]["n"], json!(1));
        assert_eq!(history[1]["history_user_id"], json!("admin"));
        assert_eq!(history[1]["history_comment"], json!("Upgraded to premium"));
        assert!(history[1]["history_timestamp"].is_string());

        // Restoring an old version by saving it back.
        let old = conn
            .get_entity_by_version("ent_hist", &id, 1)
            .await?
            .expect("v1");
        conn.save_entity("ent_hist", old).await?;
        let now = conn.get_entity("ent_hist", &id).await?.expect("entity");
        assert_eq!(now["name"], json!("A"));
        assert!(conn
            .get_entity_by_version("ent_hist", &id, 9)
            .await?
            .is_none());
        assert_eq!(conn.get_entity_history("ent_hist", &id).await?.len(), 3);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn soft_delete_hides_and_restore_brings_back() {
    each_backend("ent_soft", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "ent_soft").await?;
        let e = conn.save_entity("ent_soft", json!({"name": "x"})).await?;
        let id = id_of(&e);
        assert!(conn.delete_entity("ent_soft", &id).user_id("admin").await?);
        assert!(
            !conn.delete_entity("ent_soft", &id).await?,
            "already deleted"
        );
        assert!(conn.get_entity("ent_soft", &id).await?.is_none());
        assert!(conn.find_entities("ent_soft").await?.is_empty());
        assert_eq!(conn.count_entities("ent_soft").await?, 0);
        let hidden = conn
            .get_entity("ent_soft", &id)
            .include_deleted()
            .await?
            .expect("still there");
        assert!(hidden["deleted_at"].is_string());
        assert_eq!(conn.count_entities("ent_soft").include_deleted().await?, 1);
        assert_eq!(
            conn.find_entities("ent_soft")
                .include_deleted()
                .await?
                .len(),
            1
        );

        assert!(conn.restore_entity("ent_soft", &id).await?);
        assert!(
            !conn.restore_entity("ent_soft", &id).await?,
            "not deleted any more"
        );
        assert!(conn.get_entity("ent_soft", &id).await?.is_some());

        assert!(conn.delete_entity("ent_soft", &id).permanent().await?);
        assert!(conn
            .get_entity("ent_soft", &id)
            .include_deleted()
            .await?
            .is_none());
        let history = conn.get_entity_history("ent_soft", &id).await?;
        let versions: Vec<i64> = history
            .iter()
            .map(|h| h["version"].as_i64().unwrap())
            .collect();
        assert_eq!(
            versions,
            vec![1, 2, 3, 4],
            "save, delete, restore, permanent delete"
        );
        assert!(history[3]["deleted_at"].is_string());
        assert!(!conn.delete_entity("ent_soft", "missing").await?);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn values_round_trip_exactly() {
    each_backend("ent_values", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "ent_vals").await?;
        let big = "x'\"\\é😀 ".repeat(100 * 1024 / 10);
        let input = json!({
            "quotes": "it's \"quoted\" \\ back`tick`",
            "unicode": "héllo wörld 😀 日本語",
            "big": big,
            "max": i64::MAX,
            "min": i64::MIN,
            "tenth": 0.1,
            "yes": true,
            "no": false,
            "nested": {"a": [1, 2, {"b": null, "c": "d"}], "e": {"f": 1.25}},
            "list": [1, "two", 3.5, false],
        });
        let saved = conn.save_entity("ent_vals", input.clone()).await?;
        let got = conn
            .get_entity("ent_vals", id_of(&saved))
            .await?
            .expect("found");
        for (k, v) in input.as_object().unwrap() {
            assert_eq!(&got[k], v, "field {k}");
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn type_changes_widen_when_lossless_else_fail_clearly() {
    each_backend("ent_types", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "ent_types").await?;
        let a = conn
            .save_entity("ent_types", json!({"price": 5, "name": "a"}))
            .await?;
        // Int field receiving a float: widened to float, old values kept.
        let b = conn
            .save_entity("ent_types", json!({"price": 7.5, "name": "b"}))
            .await?;
        assert_eq!(b["price"], json!(7.5));
        let a = conn.get_entity("ent_types", id_of(&a)).await?.unwrap();
        assert_eq!(a["price"].as_f64(), Some(5.0));
        // Text field receiving a number: rejected, nothing written.
        let before = conn.count_entities("ent_types").await?;
        let e = conn
            .save_entity("ent_types", json!({"name": 42}))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Entity(_)), "{e}");
        assert!(e.to_string().contains("name"), "{e}");
        assert_eq!(conn.count_entities("ent_types").await?, before);
        // A batch with one bad row writes nothing.
        let e = conn
            .save_entities(
                "ent_types",
                vec![json!({"name": "ok"}), json!({"name": true})],
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Entity(_)), "{e}");
        assert_eq!(conn.count_entities("ent_types").await?, before);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn hostile_names_are_rejected_and_never_executed() {
    each_backend("ent_hostile", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "ent_victim").await?;
        conn.save_entity("ent_victim", json!({"name": "safe"}))
            .await?;
        let hostile_tables = [
            "ent_victim; DROP TABLE ent_victim; --",
            "x\"; DROP TABLE ent_victim; --",
            "x`; DROP TABLE ent_victim; --",
            "x]; DROP TABLE [ent_victim",
            "",
            "1abc",
            "a b",
        ];
        for t in hostile_tables {
            let e = conn.save_entity(t, json!({"a": 1})).await.unwrap_err();
            assert!(matches!(e, Error::Entity(_)), "{t:?}: {e}");
            assert!(conn.get_entity(t, "x").await.is_err());
            assert!(conn.find_entities(t).await.is_err());
        }
        let hostile_fields = [
            "a; DROP TABLE ent_victim; --",
            "x\" TEXT); DROP TABLE ent_victim; --",
            "x`",
            "a]",
            "a-b",
            "1a",
        ];
        for f in hostile_fields {
            let mut m = Map::new();
            m.insert(f.to_owned(), json!(1));
            let e = conn.save_entity("ent_victim", m).await.unwrap_err();
            assert!(matches!(e, Error::Entity(_)), "{f:?}: {e}");
        }
        // Hostile values are just values.
        let v = "'); DROP TABLE ent_victim; --";
        let saved = conn.save_entity("ent_victim", json!({"name": v})).await?;
        assert_eq!(
            conn.get_entity("ent_victim", id_of(&saved)).await?.unwrap()["name"],
            json!(v)
        );
        assert_eq!(conn.count_entities("ent_victim").await?, 2, "table intact");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn batch_save_creates_and_updates_with_history_for_each_row() {
    each_backend("ent_batch", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "ent_batch").await?;
        let rows: Vec<JsonValue> = (0..450)
            .map(|i| json!({"n": i, "label": format!("row {i}")}))
            .collect();
        let saved = conn
            .save_entities("ent_batch", rows)
            .user_id("loader")
            .await?;
        assert_eq!(saved.len(), 450);
        assert_eq!(saved[7]["n"], json!(7));
        assert_eq!(conn.count_entities("ent_batch").await?, 450);
        // Update some, create some, in one batch.
        let mut mixed: Vec<JsonValue> = saved[..3]
            .iter()
            .map(|m| json!({"id": m["id"], "label": "changed"}))
            .collect();
        mixed.push(json!({"n": 1000, "extra": true}));
        let out = conn.save_entities("ent_batch", mixed).await?;
        assert_eq!(out[0]["label"], json!("changed"));
        assert_eq!(out[0]["n"], json!(0), "partial update in a batch");
        assert_eq!(out[3]["extra"], json!(true));
        let h = conn
            .get_entity_history("ent_batch", id_of(&saved[0]))
            .await?;
        assert_eq!(h.len(), 2);
        assert_eq!(h[0]["history_user_id"], json!("loader"));
        assert_eq!(conn.count_entities("ent_batch").await?, 451);
        // Duplicate ids in one batch are refused.
        let dup = vec![json!({"id": "same"}), json!({"id": "same"})];
        assert!(conn.save_entities("ent_batch", dup).await.is_err());
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn entity_methods_join_the_callers_transaction() {
    each_backend("ent_tx", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "ent_tx").await?;
        conn.save_entity("ent_tx", json!({"name": "before"}))
            .await?;
        conn.begin_transaction().await?;
        let e = conn
            .save_entity("ent_tx", json!({"name": "inside", "n": 1}))
            .await?;
        conn.save_entity("ent_tx", json!({"id": e["id"], "n": 2}))
            .await?;
        assert!(conn.in_transaction());
        conn.rollback_transaction().await?;
        assert_eq!(conn.count_entities("ent_tx").await?, 1);
        assert!(conn.get_entity("ent_tx", id_of(&e)).await?.is_none());
        // The schema is still consistent after the rollback: saving the same new field works.
        let again = conn
            .save_entity("ent_tx", json!({"name": "after", "n": 3}))
            .await?;
        assert_eq!(again["n"], json!(3));
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn concurrent_updates_of_one_entity_give_gapless_versions() {
    each_backend("ent_concurrent", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "ent_counter").await?;
        let e = conn.save_entity("ent_counter", json!({"hits": 0})).await?;
        let id = id_of(&e);
        drop(conn);
        let mut tasks = Vec::new();
        for i in 1..=10 {
            let db = db.clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = db.async_connection().await?;
                c.save_entity("ent_counter", json!({"id": id, "hits": i}))
                    .await
                    .map(|_| ())
            }));
        }
        for t in tasks {
            t.await.map_err(|e| Error::Internal(e.to_string()))??;
        }
        let mut conn = db.async_connection().await?;
        let versions: Vec<i64> = conn
            .get_entity_history("ent_counter", &id)
            .await?
            .iter()
            .map(|h| h["version"].as_i64().unwrap())
            .collect();
        assert_eq!(versions, (1..=11).collect::<Vec<_>>());
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn concurrent_saves_adding_different_fields_all_succeed() {
    each_backend("ent_fields", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "ent_wide").await?;
        conn.save_entity("ent_wide", json!({"base": 1})).await?;
        drop(conn);
        let mut tasks = Vec::new();
        for i in 0..8 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = db.async_connection().await?;
                let mut m = Map::new();
                m.insert(format!("field_{i}"), json!(i));
                c.save_entity("ent_wide", m).await.map(|_| ())
            }));
        }
        for t in tasks {
            t.await.map_err(|e| Error::Internal(e.to_string()))??;
        }
        let mut conn = db.async_connection().await?;
        let all = conn.find_entities("ent_wide").await?;
        assert_eq!(all.len(), 9);
        for i in 0..8 {
            let f = format!("field_{i}");
            let n = conn
                .count_entities("ent_wide")
                .filter(format!("[{f}] = ?"), params![i])
                .await?;
            assert_eq!(n, 1, "{f}");
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn metadata_caches_are_per_database() {
    // Same entity name, two SQLite databases: the second must create its own tables.
    let a = Database::from_url("sqlite::memory:").unwrap();
    let b = Database::new(
        Backend::Sqlite,
        DatabaseConfig::new(":memory:").alias("other"),
    );
    let mut ca = a.async_connection().await.unwrap();
    let mut cb = b.async_connection().await.unwrap();
    ca.save_entity("cache_t", json!({"x": 1})).await.unwrap();
    let saved = cb
        .save_entity("cache_t", json!({"y": "text"}))
        .await
        .unwrap();
    assert!(saved.get("x").is_none(), "{saved:?}");
    assert_eq!(cb.count_entities("cache_t").await.unwrap(), 1);
}

#[test]
fn blocking_entity_api_works_without_a_runtime() {
    let db = Database::from_url("sqlite::memory:").unwrap();
    let mut conn = db.sync_connection().unwrap();
    let e = conn
        .save_entity("sync_ent", json!({"name": "x", "n": 1}))
        .unwrap();
    let id = id_of(&e);
    conn.save_entity_with(
        "sync_ent",
        json!({"id": id, "n": 2}),
        SaveOptions::default().user_id("u"),
    )
    .unwrap();
    assert_eq!(
        conn.get_entity("sync_ent", &id).unwrap().unwrap()["n"],
        json!(2)
    );
    let found = conn
        .find_entities(
            "sync_ent",
            FindOptions::default().filter("[n] > ?", params![1]),
        )
        .unwrap();
    assert_eq!(found.len(), 1);
    assert!(conn.delete_entity("sync_ent", &id).unwrap());
    assert_eq!(
        conn.count_entities("sync_ent", FindOptions::default())
            .unwrap(),
        0
    );
    assert!(conn.restore_entity("sync_ent", &id).unwrap());
    assert_eq!(conn.get_entity_history("sync_ent", &id).unwrap().len(), 4);
}
