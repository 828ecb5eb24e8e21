//! Backups, copies and rollback on every backend: export → import into a fresh database of
//! every backend, copy between backends, refusals (non-empty target, altered file), native
//! dumps, and rolling entities back to a date from their history.
//!
//! Every database these tests write to is their own: a fresh PostgreSQL or MariaDB database
//! (`CREATE DATABASE`, dropped at the end) or a fresh SQLite file.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use common::{config, each_backend, selected};
use dal::backup::{BackupOptions, Manifest};
use dal::migrate::SchemaMode;
use dal::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "bk_items")]
struct Item {
    id: Option<String>,
    name: String,
    price: Decimal,
    blob: Vec<u8>,
    at: DateTime<Utc>,
    day: NaiveDate,
    clock: NaiveTime,
    note: Option<String>,
    big: i64,
    ratio: f64,
    flag: bool,
    key: uuid::Uuid,
    doc: JsonValue,
    #[entity(rename = "MixedCase")]
    mixed: Option<i64>,
}

const ITEMS: usize = 2000;

/// A database of its own on `backend`, dropped by [`Fresh::drop_it`].
struct Fresh {
    db: Database,
    backend: Backend,
    name: String,
}

fn url_with_database(backend: Backend, name: &str) -> String {
    let base = match backend {
        Backend::Postgres => {
            std::env::var("DAL_TEST_POSTGRES_URL").unwrap_or_else(|_| common::PG_DEFAULT.into())
        }
        _ => std::env::var("DAL_TEST_MYSQL_URL").unwrap_or_else(|_| common::MY_DEFAULT.into()),
    };
    let (path, query) = match base.split_once('?') {
        Some((p, q)) => (p.to_owned(), format!("?{q}")),
        None => (base.clone(), String::new()),
    };
    let (server, _) = path.rsplit_once('/').expect("URL with a database");
    format!("{server}/{name}{query}")
}

fn admin(backend: Backend, tag: &str) -> Database {
    Database::new(backend, config(backend, &format!("bk-admin-{tag}")))
}

impl Fresh {
    async fn new(backend: Backend, tag: &str) -> Fresh {
        let name = format!("dal_bk_{tag}_{}", std::process::id());
        let db = match backend {
            Backend::Sqlite => Database::new(backend, config(backend, &name)),
            _ => {
                let admin = admin(backend, tag);
                let mut c = admin.async_connection().await.unwrap();
                let force = if backend == Backend::Postgres {
                    " WITH (FORCE)"
                } else {
                    ""
                };
                c.execute(&format!("DROP DATABASE IF EXISTS {name}{force}"), ())
                    .await
                    .unwrap();
                c.execute(&format!("CREATE DATABASE {name}"), ())
                    .await
                    .unwrap();
                drop(c);
                admin.close(Duration::from_secs(5)).await.unwrap();
                let cfg = DatabaseConfig::from_url(&url_with_database(backend, &name))
                    .unwrap()
                    .alias(format!("bk-{name}"));
                Database::new(backend, cfg)
            }
        };
        Fresh { db, backend, name }
    }

    async fn drop_it(self) {
        let _ = self.db.close(Duration::from_secs(5)).await;
        if self.backend != Backend::Sqlite {
            let admin = admin(self.backend, &self.name);
            let mut c = admin.async_connection().await.unwrap();
            let force = if self.backend == Backend::Postgres {
                " WITH (FORCE)"
            } else {
                ""
            };
            c.execute(&format!("DROP DATABASE IF EXISTS {}{force}", self.name), ())
                .await
                .unwrap();
            drop(c);
            let _ = admin.close(Duration::from_secs(5)).await;
        }
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dal-bk-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn item(i: usize, round: i64) -> Item {
    let at = match i % 4 {
        0 => Utc.with_ymd_and_hms(1000, 1, 1, 0, 0, 0).unwrap(),
        1 => {
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap()
                + chrono::Duration::microseconds(999_999)
        }
        2 => {
            Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap()
                + chrono::Duration::microseconds(1)
        }
        _ => {
            Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
                + chrono::Duration::microseconds(i as i64 * 7 + round)
        }
    };
    let prices = [
        "0.000001",
        "-12345.678901",
        "99999999999.9999",
        "19.99",
        "0",
    ];
    Item {
        id: None,
        name: format!("Zoë 😀 «{i}» O'Brien \"{round}\"\n\ttab"),
        price: prices[i % prices.len()].parse().unwrap(),
        blob: (0..(i % 7) as u8 * 9)
            .map(|b| b.wrapping_mul(37))
            .chain([0, 255])
            .collect(),
        at,
        day: NaiveDate::from_ymd_opt(1000 + (i % 9000) as i32, 2, 28).unwrap(),
        clock: NaiveTime::from_hms_micro_opt(23, 59, (i % 60) as u32, 123_456).unwrap(),
        note: if i.is_multiple_of(3) {
            None
        } else {
            Some(format!("note {round}"))
        },
        big: match i % 3 {
            0 => i64::MAX,
            1 => i64::MIN,
            _ => i as i64 * 1_000_003 + round,
        },
        ratio: [0.1, 1e-300, -2.5e300, 123.0, f64::MIN_POSITIVE][i % 5] * (round as f64 + 1.0),
        flag: (i + round as usize).is_multiple_of(2),
        key: uuid::Uuid::from_u128(i as u128 * 0x1234_5678_9abc + round as u128),
        doc: json!({"i": i, "nested": {"list": [1, "two", null, 3.5]}, "big": u64::MAX, "round": round}),
        mixed: if i.is_multiple_of(5) {
            None
        } else {
            Some(i as i64 - round)
        },
    }
}

/// `n` items with 3 versions each, every tenth soft-deleted (a 4th version), every 97th
/// permanently deleted (history only); and a small dynamic entity `bk_notes`.
async fn seed(db: &Database, n: usize) -> dal::Result<()> {
    let mut conn = db.async_connection().await?;
    let mut items: Vec<Item> = (0..n).map(|i| item(i, 0)).collect();
    let saved = conn.save_all(&items).await?;
    for (it, s) in items.iter_mut().zip(&saved) {
        it.id = s.id.clone();
    }
    for round in 1..3 {
        let next: Vec<Item> = items
            .iter()
            .enumerate()
            .map(|(i, it)| Item {
                id: it.id.clone(),
                ..item(i, round)
            })
            .collect();
        conn.save_all(&next).await?;
    }
    for (i, it) in items.iter().enumerate() {
        let id = it.id.as_deref().unwrap();
        if i % 97 == 0 {
            conn.delete::<Item>(id).permanent().await?;
        } else if i % 10 == 0 {
            conn.delete::<Item>(id).user_id("seed").await?;
        }
    }
    conn.save_entities(
        "bk_notes",
        vec![
            json!({"id": "n-1", "CamelCase": "ü", "count": 1, "when": "2026-01-01T00:00:00Z"}),
            json!({"id": "n-2", "CamelCase": null, "count": -1, "flag": true}),
        ],
    )
    .await?;
    conn.save_entity("bk_notes", json!({"id": "n-1", "CamelCase": "second"}))
        .comment("edit")
        .await?;
    Ok(())
}

/// Every entity's rows (deleted ones included) as the entity layer reads them, by id.
async fn rows_of(db: &Database) -> dal::Result<BTreeMap<String, BTreeMap<String, JsonValue>>> {
    let mut conn = db.async_connection().await?;
    let mut out = BTreeMap::new();
    for entity in dal::backup::entities(db).await? {
        for row in conn.find_entities(&entity).include_deleted().await? {
            let id = row["id"].as_str().unwrap().to_owned();
            out.insert(
                format!("{entity}/{id}"),
                row.into_iter().collect::<BTreeMap<_, _>>(),
            );
        }
    }
    Ok(out)
}

/// Every value of `to` is what `from` holds: the entity layer's view of every row, the
/// history of a sample of ids (soft- and permanently deleted ones among them), and an export
/// of each whose files are byte for byte the same (every row and history row, canonical).
async fn assert_identical(
    from: &Database,
    to: &Database,
    what: &str,
    exported: Option<&Manifest>,
) -> dal::Result<()> {
    assert_eq!(
        dal::backup::entities(from).await?,
        dal::backup::entities(to).await?,
        "{what}: entities"
    );
    let (a, b) = (rows_of(from).await?, rows_of(to).await?);
    assert_eq!(a.len(), b.len(), "{what}: row counts");
    for (k, v) in &a {
        assert_eq!(Some(v), b.get(k), "{what}: row {k}");
    }
    let (mut fc, mut tc) = (from.async_connection().await?, to.async_connection().await?);
    for i in (0..ITEMS).step_by(97).chain([1, 10, 11]) {
        let history = fc
            .find_entities("bk_items")
            .include_deleted()
            .order_by("[id]")
            .limit(1)
            .offset(i as u64)
            .await?;
        if let Some(row) = history.first() {
            let id = row["id"].as_str().unwrap();
            assert_eq!(
                fc.get_entity_history("bk_items", id).await?,
                tc.get_entity_history("bk_items", id).await?,
                "{what}: history of {id}"
            );
            assert_eq!(
                fc.get_entity("bk_items", id).include_deleted().await?,
                tc.get_entity("bk_items", id).include_deleted().await?,
                "{what}: {id}"
            );
        }
    }
    let (da, db_) = (
        temp_dir(&format!("{what}-a")),
        temp_dir(&format!("{what}-b")),
    );
    // The source's own export when there is one; the same files, byte for byte.
    let ma = match exported {
        Some(m) => m.clone(),
        None => dal::backup::export(from, &da).await?,
    };
    let mb = dal::backup::export(to, &db_).await?;
    assert_eq!(ma.entities, mb.entities, "{what}: exports differ");
    let _ = std::fs::remove_dir_all(&da);
    let _ = std::fs::remove_dir_all(&db_);
    Ok(())
}

fn counts(m: &Manifest, entity: &str) -> (u64, u64, u64) {
    let e = m.entities.iter().find(|e| e.name == entity).unwrap();
    (e.rows.count, e.history.count, e.meta.count)
}

fn expected_item_counts() -> (u64, u64) {
    let perm = (0..ITEMS).filter(|i| i % 97 == 0).count() as u64;
    let soft = (0..ITEMS).filter(|i| i % 97 != 0 && i % 10 == 0).count() as u64;
    (ITEMS as u64 - perm, ITEMS as u64 * 3 + perm + soft)
}

#[tokio::test]
async fn export_then_import_into_a_fresh_database_of_every_backend_keeps_every_value() {
    each_backend("bk_export", |db| async move {
        let source = Fresh::new(db.backend(), "exp_src").await;
        seed(&source.db, ITEMS).await?;
        let dir = temp_dir(&format!("export-{}", db.backend().as_str()));
        let rows_seen = Arc::new(AtomicU64::new(0));
        let seen = rows_seen.clone();
        let opts = BackupOptions::new().batch_size(300).on_progress(move |p| {
            if p.phase == "history" {
                seen.fetch_max(p.done, Ordering::Relaxed);
            }
        });
        let manifest = dal::backup::export_with(&source.db, &dir, &opts).await?;
        let (rows, history) = expected_item_counts();
        assert_eq!(counts(&manifest, "bk_items"), (rows, history, 13));
        assert_eq!(counts(&manifest, "bk_notes"), (2, 3, 4));
        assert_eq!(rows_seen.load(Ordering::Relaxed), history);
        assert_eq!(manifest.backend, db.backend().as_str());
        let written: Manifest =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(written, manifest);
        assert!(
            dal::backup::export(&source.db, &dir).await.is_err(),
            "a second export into the same directory is refused"
        );

        for target in selected() {
            let fresh = Fresh::new(target, &format!("exp_to_{}", target.as_str())).await;
            let imported =
                dal::backup::import_with(&fresh.db, &dir, &BackupOptions::new().batch_size(700))
                    .await?;
            assert_eq!(imported, manifest);
            let result = assert_identical(
                &source.db,
                &fresh.db,
                &format!("{}->{}", db.backend().as_str(), target.as_str()),
                Some(&manifest),
            )
            .await;
            // The restored entities take new saves and keep versions gapless.
            let mut c = fresh.db.async_connection().await?;
            let saved = c
                .save_entity("bk_notes", json!({"id": "n-1", "count": 5}))
                .await?;
            assert_eq!(saved["version"], json!(3));
            drop(c);
            fresh.drop_it().await;
            result?;
        }
        let _ = std::fs::remove_dir_all(&dir);
        source.drop_it().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn copy_moves_every_entity_to_another_backend_with_identical_values() {
    // SQLite → PostgreSQL, PostgreSQL → MariaDB, MariaDB → SQLite.
    each_backend("bk_copy", |db| async move {
        let from = db.backend();
        let all = selected();
        let to = all[(all.iter().position(|b| *b == from).unwrap() + 1) % all.len()];
        let source = Fresh::new(from, "copy_src").await;
        seed(&source.db, ITEMS).await?;
        let mut target = Fresh::new(to, "copy_dst").await;
        // A target that runs no DDL at run time still takes a copy: it creates the tables.
        target.db = Database::new(
            to,
            target
                .db
                .config()
                .clone()
                .schema_mode(SchemaMode::Migrations),
        );
        let batches = Arc::new(AtomicU64::new(0));
        let b = batches.clone();
        let opts = BackupOptions::new().batch_size(500).on_progress(move |_| {
            b.fetch_add(1, Ordering::Relaxed);
        });
        let report = dal::backup::copy_with(&source.db, &target.db, &opts).await;
        let checked = match &report {
            Ok(report) => {
                let items = report
                    .entities
                    .iter()
                    .find(|e| e.name == "bk_items")
                    .unwrap();
                assert_eq!((items.rows, items.history), expected_item_counts());
                assert!(
                    batches.load(Ordering::Relaxed) > 10,
                    "progress reported per batch"
                );
                assert_identical(
                    &source.db,
                    &target.db,
                    &format!("copy {}->{}", from.as_str(), to.as_str()),
                    None,
                )
                .await
            }
            Err(_) => Ok(()),
        };
        // A second copy into the same target is refused.
        let again = dal::backup::copy(&source.db, &target.db).await;
        target.drop_it().await;
        source.drop_it().await;
        report?;
        checked?;
        let err = again.unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn import_into_a_database_holding_an_entity_is_refused_and_writes_nothing() {
    each_backend("bk_refuse", |db| async move {
        let source = Fresh::new(db.backend(), "ref_src").await;
        seed(&source.db, 20).await?;
        let dir = temp_dir(&format!("refuse-{}", db.backend().as_str()));
        dal::backup::export(&source.db, &dir).await?;
        let target = Fresh::new(db.backend(), "ref_dst").await;
        target
            .db
            .async_connection()
            .await?
            .save_entity("bk_notes", json!({"x": 1}))
            .await?;
        let err = dal::backup::import(&target.db, &dir).await.unwrap_err();
        let entities = dal::backup::entities(&target.db).await?;
        let count = target
            .db
            .async_connection()
            .await?
            .count_entities("bk_notes")
            .await?;
        target.drop_it().await;
        source.drop_it().await;
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(err, dal::Error::Backup(_)), "{err:?}");
        assert!(err.to_string().contains("\"bk_notes\""), "{err}");
        assert_eq!(
            entities,
            vec!["bk_notes".to_owned()],
            "nothing else was created"
        );
        assert_eq!(count, 1);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn an_altered_file_fails_its_checksum_and_nothing_is_written() {
    each_backend("bk_tamper", |db| async move {
        let source = Fresh::new(db.backend(), "tam_src").await;
        seed(&source.db, 20).await?;
        let dir = temp_dir(&format!("tamper-{}", db.backend().as_str()));
        let manifest = dal::backup::export(&source.db, &dir).await?;
        source.drop_it().await;
        let file = dir.join(
            &manifest
                .entities
                .iter()
                .find(|e| e.name == "bk_items")
                .unwrap()
                .history
                .file,
        );
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, text.replacen("note 1", "note 9", 1)).unwrap();
        let target = Fresh::new(db.backend(), "tam_dst").await;
        let err = dal::backup::import(&target.db, &dir).await.unwrap_err();
        let entities = dal::backup::entities(&target.db).await?;
        target.drop_it().await;
        let _ = std::fs::remove_dir_all(&dir);
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        assert!(err.to_string().contains("bk_items.history.jsonl"), "{err}");
        assert!(entities.is_empty(), "{entities:?}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn native_dump_writes_a_restorable_dump() {
    each_backend("bk_native", |db| async move {
        let source = Fresh::new(db.backend(), "nat_src").await;
        seed(&source.db, 30).await?;
        let path = std::env::temp_dir().join(format!(
            "dal-bk-native-{}-{}.dump",
            db.backend().as_str(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let written = dal::backup::native_dump(&source.db, &path).await;
        let again = dal::backup::native_dump(&source.db, &path).await;
        let restored = match (&written, db.backend()) {
            (Err(_), _) => None,
            (Ok(p), Backend::Sqlite) => {
                let copy = Database::from_url(&format!("sqlite://{}", p.display()))?;
                let n = rows_of(&copy).await;
                copy.close(Duration::from_secs(5)).await?;
                Some(n)
            }
            (Ok(p), backend) => {
                let target = Fresh::new(backend, "nat_dst").await;
                let r = dal::backup::native_restore(&target.db, p).await;
                let n = match r {
                    Ok(()) => rows_of(&target.db).await,
                    Err(e) => Err(e),
                };
                target.drop_it().await;
                Some(n)
            }
        };
        let expected = rows_of(&source.db).await?;
        source.drop_it().await;
        let _ = std::fs::remove_file(&path);
        written?;
        assert!(again.unwrap_err().to_string().contains("exists already"));
        assert_eq!(restored.unwrap()?, expected);
        Ok(())
    })
    .await;
}

/// Waits until the clock has passed `t` by a millisecond, so that later writes are recorded
/// strictly after it.
async fn clock_past(t: DateTime<Utc>) {
    while Utc::now() <= t + chrono::Duration::milliseconds(1) {
        tokio::task::yield_now().await;
    }
}

/// The user-visible state of each entity: fields and whether it is deleted.
fn state(row: &Map<String, JsonValue>) -> (BTreeMap<String, JsonValue>, bool) {
    let system = [
        "id",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
        "deleted_at",
        "version",
    ];
    let fields = row
        .iter()
        .filter(|(k, _)| !system.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (fields, !row["deleted_at"].is_null())
}

#[tokio::test]
async fn rollback_entities_to_a_time_between_two_batches_restores_the_earlier_state() {
    each_backend("bk_rollback", |db| async move {
        let entity = "bk_rollback_all";
        let mut conn = db.async_connection().await?;
        common::reset_entity(&mut conn, entity).await?;
        // Batch 1: 12 entities, 2 of them deleted.
        let ids: Vec<String> = (0..12).map(|i| format!("e{i:02}")).collect();
        let first: Vec<JsonValue> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| json!({"id": id, "n": i, "Label": format!("v1 {i}"), "opt": if i % 2 == 0 { json!(null) } else { json!(i) }}))
            .collect();
        conn.save_entities(entity, first).await?;
        conn.delete_entity(entity, "e10").await?;
        conn.delete_entity(entity, "e11").await?;
        let before: BTreeMap<String, _> = conn
            .find_entities(entity)
            .include_deleted()
            .await?
            .iter()
            .map(|r| (r["id"].as_str().unwrap().to_owned(), state(r)))
            .collect();
        let at = Utc::now();
        clock_past(at).await;
        // Batch 2: changes of every kind.
        for (i, id) in ids.iter().enumerate().take(4) {
            conn.save_entity(entity, json!({"id": id, "n": 100 + i, "Label": null, "extra": "new field"})).await?;
        }
        conn.save_entity(entity, json!({"id": "e00", "opt": 5})).await?; // twice changed
        conn.delete_entity(entity, "e04").await?; // deleted since → back
        conn.delete_entity(entity, "e05").permanent().await?; // gone since → back
        conn.restore_entity(entity, "e10").await?; // deleted then → deleted again
        conn.save_entity(entity, json!({"id": "e11", "n": 0})).await?; // changed while deleted
        conn.save_entities(entity, vec![json!({"id": "n1", "n": 1}), json!({"id": "n2", "n": 2})]).await?; // created after
        conn.save_entity(entity, json!({"id": "n3", "n": 3})).await?;
        conn.delete_entity(entity, "n3").await?; // created and deleted after: stays deleted
        conn.save_entity(entity, json!({"id": "n4", "n": 4})).await?;
        conn.delete_entity(entity, "n4").permanent().await?; // created and gone after: stays gone
        let versions_before: BTreeMap<String, i64> = conn
            .find_entities(entity)
            .include_deleted()
            .await?
            .iter()
            .map(|r| (r["id"].as_str().unwrap().to_owned(), r["version"].as_i64().unwrap()))
            .collect();

        let report = conn.rollback_entities_to(entity, at).user_id("ops").comment("bad batch").await?;
        assert_eq!(
            (report.restored, report.recreated, report.deleted, report.unchanged),
            // restored: e00-e03 (e10 restored-then-deleted counts as deleted; e11 deleted in both
            // but changed: restored); recreated: e04, e05; deleted: n1, n2, e10;
            // unchanged: e06-e09, n3, n4.
            (5, 2, 3, 6),
            "{report:?}"
        );
        let after: BTreeMap<String, _> = conn
            .find_entities(entity)
            .include_deleted()
            .await?
            .iter()
            .map(|r| (r["id"].as_str().unwrap().to_owned(), r.clone()))
            .collect();
        for (id, (fields, deleted)) in &before {
            let now = state(&after[id]);
            let mut want = fields.clone();
            want.insert("extra".into(), json!(null));
            assert_eq!(&now.0, &want, "{id}");
            assert_eq!(now.1, *deleted, "{id} deleted");
        }
        for id in ["n1", "n2", "n3"] {
            assert!(state(&after[id]).1, "{id} created after the date is deleted");
        }
        assert!(!after.contains_key("n4"));
        // One new version per change, recorded with the comment and user; others untouched.
        for (id, row) in &after {
            let history = conn.get_entity_history(entity, id).await?;
            let versions: Vec<i64> = history.iter().map(|h| h["version"].as_i64().unwrap()).collect();
            assert_eq!(versions, (1..=versions.len() as i64).collect::<Vec<_>>(), "{id}: gapless");
            let last = history.last().unwrap();
            assert_eq!(last["version"], row["version"], "{id}");
            let changed = !["e06", "e07", "e08", "e09", "n3"].contains(&id.as_str());
            let old = versions_before.get(id).copied().unwrap_or(0);
            if changed {
                let comment = last["history_comment"].as_str().unwrap();
                assert!(comment.starts_with("rollback to ") && comment.ends_with(": bad batch"), "{comment}");
                assert_eq!(last["history_user_id"], json!("ops"));
                let old = if id == "e05" { old_version_of_gone(&mut conn, entity, id).await? } else { old };
                assert_eq!(row["version"].as_i64().unwrap(), old + 1, "{id}");
            } else {
                assert_eq!(row["version"].as_i64().unwrap(), old, "{id} untouched");
            }
        }
        // Rolling back to the same date again changes nothing.
        let again = conn.rollback_entities_to(entity, at).await?;
        assert_eq!((again.restored, again.recreated, again.deleted), (0, 0, 0), "{again:?}");
        // An unknown entity is an error.
        assert!(conn.rollback_entities_to("bk_no_such_entity", at).await.is_err());
        Ok(())
    })
    .await;
}

/// The highest history version of an entity that has no row.
async fn old_version_of_gone(conn: &mut Connection, entity: &str, id: &str) -> dal::Result<i64> {
    let h = conn.get_entity_history(entity, id).await?;
    // The last version before the rollback's.
    Ok(h[h.len() - 2]["version"].as_i64().unwrap())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "bk_rollback_typed")]
struct Account {
    id: Option<String>,
    owner: String,
    balance: Decimal,
}

#[tokio::test]
async fn rollback_of_one_entity_and_the_typed_and_blocking_twins() {
    each_backend("bk_rollback_one", |db| async move {
        let mut conn = db.async_connection().await?;
        common::reset_entity(&mut conn, "bk_rollback_typed").await?;
        let a = conn
            .save(&Account {
                id: None,
                owner: "Ann".into(),
                balance: "10.50".parse().unwrap(),
            })
            .await?;
        let b = conn
            .save(&Account {
                id: None,
                owner: "Bob".into(),
                balance: "1".parse().unwrap(),
            })
            .await?;
        let (ida, idb) = (a.id.clone().unwrap(), b.id.clone().unwrap());
        let at = Utc::now();
        clock_past(at).await;
        conn.save(&Account {
            balance: "999".parse().unwrap(),
            ..a.clone()
        })
        .await?;
        conn.save(&Account {
            balance: "0".parse().unwrap(),
            ..b.clone()
        })
        .await?;

        // Only one entity is rolled back.
        let report = conn
            .rollback_entity_to("bk_rollback_typed", &idb, at)
            .await?;
        assert_eq!((report.restored, report.unchanged), (1, 0));
        assert_eq!(conn.get::<Account>(&idb).await?.unwrap(), b);
        assert_eq!(
            conn.get::<Account>(&ida).await?.unwrap().balance,
            "999".parse().unwrap()
        );
        let history = conn.get_entity_history("bk_rollback_typed", &idb).await?;
        let comment = history[2]["history_comment"].as_str().unwrap().to_owned();
        assert_eq!(
            comment,
            format!(
                "rollback to {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            )
        );

        // Typed twin: the entity as it is after the rollback.
        let back: Option<Account> = conn.rollback_to::<Account>(&ida, at).await?;
        assert_eq!(back.unwrap(), a);
        // Before it existed: soft-deleted, so None.
        let gone = conn
            .rollback_to::<Account>(&ida, at - chrono::Duration::days(1))
            .await?;
        assert!(gone.is_none());
        assert!(conn.get::<Account>(&ida).await?.is_none());
        // rollback_all_to brings it back (deleted since `at`), Bob unchanged.
        let all = conn.rollback_all_to::<Account>(at).await?;
        assert_eq!((all.recreated, all.unchanged), (1, 1), "{all:?}");
        assert_eq!(conn.get::<Account>(&ida).await?.unwrap(), a);
        drop(conn);

        // Blocking twins, from a thread outside the runtime.
        let db2 = db.clone();
        let blocking = std::thread::spawn(move || -> dal::Result<_> {
            let mut s = db2.sync_connection()?;
            let r = s.rollback_entities_to("bk_rollback_typed", at)?;
            let one = s.rollback_to_with::<Account>(
                &idb,
                at,
                dal::RollbackOptions::default().user_id("sync"),
            )?;
            Ok((r, one))
        })
        .join()
        .unwrap()?;
        assert_eq!(blocking.0.unchanged, 2);
        assert_eq!(blocking.1.unwrap(), b);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_rollback_holds_its_rows_until_its_transaction_ends() {
    each_backend("bk_rollback_lock", |db| async move {
        let entity = "bk_rollback_lock";
        let mut a = db.async_connection().await?;
        common::reset_entity(&mut a, entity).await?;
        a.save_entity(entity, json!({"id": "x", "n": 1})).await?;
        let at = Utc::now();
        clock_past(at).await;
        a.save_entity(entity, json!({"id": "x", "n": 2})).await?;

        a.begin_transaction().await?;
        let report = a.rollback_entities_to(entity, at).await?;
        assert_eq!(report.restored, 1);
        // Another writer waits for the rollback's lock (here: until its own deadline).
        let mut b = db.async_connection().await?;
        let blocked = b
            .save_entity(entity, json!({"id": "x", "n": 3}))
            .timeout(Duration::from_millis(300))
            .await;
        let err = blocked.expect_err("a concurrent save went through");
        // Its own deadline (PostgreSQL, MariaDB), or SQLite's busy write lock.
        assert!(err.is_timeout() || err.kind().is_conflict(), "{err:?}");
        a.commit_transaction().await?;
        let saved = b.save_entity(entity, json!({"id": "x", "n": 3})).await?;
        assert_eq!(saved["version"], json!(4), "rollback was version 3");
        let versions: Vec<i64> = b
            .get_entity_history(entity, "x")
            .await?
            .iter()
            .map(|h| h["version"].as_i64().unwrap())
            .collect();
        assert_eq!(versions, vec![1, 2, 3, 4]);
        Ok(())
    })
    .await;
}
