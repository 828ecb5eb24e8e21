//! Schema migrations on every backend: declared schema → plan → apply, destructive plans,
//! concurrent migrators, `SchemaMode::Migrations`, audit files, and Auto mode's indexes on
//! existing columns.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

mod common;

use common::{each_backend, each_backend_with, reset_entity};
use dal::migrate::{Change, EntitySchema, Migrator, SchemaMode};
use dal::prelude::*;
use dal::{DbErrorKind, FieldType};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Drops the entity's tables and forgets its applied migrations... (only its tables: rows
/// of `dal_migrations` are told apart by checksum).
async fn reset(db: &Database, entity: &str) -> dal::Result<()> {
    let mut conn = db.async_connection().await?;
    reset_entity(&mut conn, entity).await
}

/// Index names of `table` (one query per backend).
async fn indexes(conn: &mut Connection, table: &str) -> dal::Result<Vec<(String, bool)>> {
    let sql = match conn.backend() {
        Backend::Postgres => "SELECT CAST(indexname AS TEXT), CASE WHEN indexdef LIKE '%UNIQUE INDEX%' THEN 1 ELSE 0 END FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ?",
        Backend::MySql => "SELECT index_name, CAST(1 - MIN(non_unique) AS SIGNED) FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ? GROUP BY index_name",
        Backend::Sqlite => "SELECT [name], [unique] FROM pragma_index_list(?)",
    };
    let rows = conn.execute(sql, params![table]).await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.try_get::<String, _>(0).unwrap(),
                r.try_get::<i64, _>(1).unwrap() == 1,
            )
        })
        .collect())
}

/// (nullable, default) of a column.
async fn column(
    conn: &mut Connection,
    table: &str,
    col: &str,
) -> dal::Result<Option<(bool, Option<String>)>> {
    let sql = match conn.backend() {
        Backend::Postgres => "SELECT CAST(is_nullable AS TEXT), CAST(column_default AS TEXT) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?",
        Backend::MySql => "SELECT is_nullable, column_default FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ?",
        Backend::Sqlite => "SELECT CASE WHEN [notnull] = 0 THEN 'YES' ELSE 'NO' END, [dflt_value] FROM pragma_table_info(?) WHERE [name] = ?",
    };
    let rows = conn.execute(sql, params![table, col]).await?;
    Ok(rows.first().map(|r| {
        (
            r.try_get::<String, _>(0).unwrap() == "YES",
            r.try_get::<Option<String>, _>(1).unwrap(),
        )
    }))
}

/// Number of CHECK constraints on `table`.
async fn checks(conn: &mut Connection, table: &str) -> dal::Result<i64> {
    let sql = match conn.backend() {
        Backend::Postgres => "SELECT COUNT(*) FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid WHERE c.relname = ? AND con.contype = 'c'",
        Backend::MySql => "SELECT COUNT(*) FROM information_schema.table_constraints WHERE constraint_schema = DATABASE() AND table_name = ? AND constraint_type = 'CHECK'",
        Backend::Sqlite => "SELECT (LENGTH([sql]) - LENGTH(REPLACE([sql], 'CHECK', ''))) / 5 FROM sqlite_master WHERE [type] = 'table' AND [name] = ?",
    };
    let rows = conn.execute(sql, params![table]).await?;
    Ok(rows[0].try_get::<i64, _>(0).unwrap())
}

mod v1 {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
    #[entity(table = "mig_accept")]
    pub struct Item {
        pub id: Option<String>,
        pub name: Option<String>,
    }
}

mod v2 {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
    #[entity(table = "mig_accept")]
    pub struct Item {
        pub id: Option<String>,
        pub name: Option<String>,
        #[entity(index)]
        pub city: Option<String>,
        #[entity(unique)]
        pub code: Option<String>,
        #[entity(default = 1, check = "[qty] >= 0")]
        pub qty: i64,
    }
}

mod v3 {
    use super::*;
    /// v2 with `name` required (a default fills the NULLs).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
    #[entity(table = "mig_accept")]
    pub struct Item {
        pub id: Option<String>,
        #[entity(default = "anon")]
        pub name: String,
        #[entity(index)]
        pub city: Option<String>,
        #[entity(unique)]
        pub code: Option<String>,
        #[entity(default = 1, check = "[qty] >= 0")]
        pub qty: i64,
    }
}

fn change(kind: &str, field: &str) -> (String, String) {
    (kind.to_owned(), field.to_owned())
}

/// (kind, field) of each change, as serialized.
fn kinds(changes: &[Change]) -> Vec<(String, String)> {
    changes
        .iter()
        .map(|c| {
            let v = serde_json::to_value(c).unwrap();
            (
                v["change"].as_str().unwrap().to_owned(),
                v["field"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn declared_changes_are_planned_applied_and_enforced_by_the_server() {
    each_backend("mig_accept", |db| async move {
        reset(&db, "mig_accept").await?;
        let mut conn = db.async_connection().await?;
        for name in [Some("a"), None, Some("c")] {
            conn.save(&v1::Item {
                id: None,
                name: name.map(str::to_owned),
            })
            .await?;
        }

        let migrator = Migrator::new(&db).entity::<v2::Item>();
        let plan = migrator.plan().await?;
        assert_eq!(
            kinds(plan.changes()),
            [
                change("add_column", "city"),
                change("add_index", "city"),
                change("add_column", "code"),
                change("add_unique", "code"),
                change("add_column", "qty"),
                change("set_default", "qty"),
                change("set_not_null", "qty"),
                change("add_check", "qty"),
            ],
            "{plan}"
        );
        assert!(plan.destructive().is_empty(), "{plan}");
        assert!(matches!(
            &plan.changes()[4],
            Change::AddColumn {
                ty: FieldType::Int,
                ..
            }
        ));
        let applied = migrator.apply().await?;
        assert_eq!(applied.statements(), plan.statements());

        // The catalog shows it.
        let idx = indexes(&mut conn, "mig_accept").await?;
        assert!(
            idx.contains(&("mig_accept_city_idx".to_owned(), false)),
            "{idx:?}"
        );
        assert!(
            idx.contains(&("mig_accept_code_key".to_owned(), true)),
            "{idx:?}"
        );
        let (nullable, default) = column(&mut conn, "mig_accept", "qty").await?.unwrap();
        assert!(!nullable);
        assert!(default.unwrap_or_default().contains('1'));
        assert_eq!(checks(&mut conn, "mig_accept").await?, 1);
        // History stays permissive.
        let (nullable, _) = column(&mut conn, "mig_accept_history", "qty")
            .await?
            .unwrap();
        assert!(nullable);
        // Existing rows took the default; the typed read sees it.
        let rows: Vec<v2::Item> = conn.find::<v2::Item>().await?;
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.qty == 1));
        assert!(migrator.plan().await?.is_empty());

        // The server enforces the check and NOT NULL.
        let id = rows[0].id.clone().unwrap();
        let e = conn
            .execute(
                "UPDATE [mig_accept] SET [qty] = -1 WHERE [id] = ?",
                params![id.clone()],
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), DbErrorKind::CheckViolation, "{e}");
        let e = conn
            .execute(
                "UPDATE [mig_accept] SET [qty] = NULL WHERE [id] = ?",
                params![id.clone()],
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), DbErrorKind::NotNullViolation, "{e}");
        let e = conn
            .save(&v2::Item {
                id: None,
                name: None,
                city: None,
                code: None,
                qty: -5,
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind(), DbErrorKind::CheckViolation, "{e}");

        // NOT NULL on a column holding a NULL: destructive, refused, then applied.
        let strict = Migrator::new(&db).entity::<v3::Item>();
        let plan = strict.plan().await?;
        assert_eq!(
            plan.destructive(),
            [&Change::SetNotNull {
                entity: "mig_accept".into(),
                field: "name".into(),
                nulls: 1
            }]
        );
        let e = strict.apply().await.unwrap_err();
        assert!(matches!(e, dal::Error::Entity(_)), "{e}");
        assert!(e.to_string().contains("name"), "{e}");
        assert_eq!(strict.plan().await?.checksum(), plan.checksum());
        strict.allow_destructive(true).apply().await?;
        let rows: Vec<v3::Item> = conn.find::<v3::Item>().await?;
        assert_eq!(rows.iter().filter(|r| r.name == "anon").count(), 1);

        // Dropping undeclared columns is destructive too.
        let dropping = Migrator::new(&db)
            .schema(EntitySchema::of::<v1::Item>())
            .drop_undeclared(true);
        assert_eq!(dropping.plan().await?.destructive().len(), 3);
        assert!(dropping.apply().await.is_err());
        let kept = Migrator::new(&db).entity::<v1::Item>().plan().await?;
        let undeclared = kept
            .changes()
            .iter()
            .filter(|c| matches!(c, Change::Undeclared { .. }))
            .count();
        assert_eq!(undeclared, 3, "{kept}");
        dropping.allow_destructive(true).apply().await?;
        assert!(column(&mut conn, "mig_accept", "qty").await?.is_none());
        assert_eq!(conn.find::<v1::Item>().await?.len(), 3);
        Ok(())
    })
    .await;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "mig_race")]
struct Race {
    id: Option<String>,
    #[entity(unique)]
    code: String,
    #[entity(default = 0, check = "[n] >= 0")]
    n: i64,
}

#[tokio::test]
async fn two_migrators_at_once_apply_once() {
    each_backend("mig_race", |db| async move {
        reset(&db, "mig_race").await?;
        let other = Database::new(db.backend(), db.config().clone().alias("mig_race_other"));
        let (a, b) = (
            Migrator::new(&db).entity::<Race>(),
            Migrator::new(&other).entity::<Race>(),
        );
        // Rows of earlier runs of this test have the same checksum.
        let pending = a.plan().await?;
        let same = |rows: &[dal::migrate::AppliedMigration]| {
            rows.iter()
                .filter(|r| r.checksum == pending.checksum())
                .count()
        };
        let before = same(&a.history().await?);
        let (ra, rb) = tokio::join!(a.apply(), b.apply());
        let (ra, rb) = (ra?, rb?);
        assert!(
            ra.is_empty() != rb.is_empty(),
            "exactly one applies:\n{ra}\n{rb}"
        );
        let applied = if ra.is_empty() { rb } else { ra };
        assert_eq!(applied.checksum(), pending.checksum());
        assert_eq!(same(&a.history().await?), before + 1);
        assert!(a.plan().await?.is_empty());
        let mut conn = db.async_connection().await?;
        conn.save(&Race {
            id: None,
            code: "x".into(),
            n: 1,
        })
        .await?;
        assert!(conn
            .save(&Race {
                id: None,
                code: "x".into(),
                n: 1
            })
            .await
            .unwrap_err()
            .is_unique_violation());
        let _ =
            PoolManager::close_pool(Some(other.hash()), std::time::Duration::from_secs(5)).await;
        Ok(())
    })
    .await;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "mig_mode")]
struct Mode {
    id: Option<String>,
    title: String,
}

#[tokio::test]
async fn migrations_mode_runs_no_ddl_until_the_migrator_did() {
    each_backend_with(
        "mig_mode",
        |c| c.schema_mode(SchemaMode::Migrations),
        |db| async move {
            reset(&db, "mig_mode").await?;
            let mut conn = db.async_connection().await?;
            let e = conn
                .save(&Mode {
                    id: None,
                    title: "t".into(),
                })
                .await
                .unwrap_err();
            assert!(matches!(e, dal::Error::Entity(_)), "{e}");
            assert!(
                e.to_string().contains("mig_mode") && e.to_string().contains("Migrator"),
                "{e}"
            );
            let tables = conn.execute("SELECT COUNT(*) FROM [mig_mode]", ()).await;
            assert!(tables.is_err(), "no table was created");

            Migrator::new(&db).entity::<Mode>().apply().await?;
            // A required field of a new entity is NOT NULL (SQLite: by a rebuild of the new table).
            let (nullable, _) = column(&mut conn, "mig_mode", "title").await?.unwrap();
            assert!(!nullable);
            let e = conn
                .save_entity("mig_mode", json!({"title": null}))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), DbErrorKind::NotNullViolation, "{e}");
            conn.save(&Mode {
                id: None,
                title: "t".into(),
            })
            .await?;
            let e = conn
                .save_entity("mig_mode", json!({"title": "u", "extra": 5}))
                .await
                .unwrap_err();
            assert!(matches!(e, dal::Error::Entity(_)), "{e}");
            assert!(
                e.to_string().contains("extra") && e.to_string().contains("Migrator"),
                "{e}"
            );
            let n = conn.execute("SELECT COUNT(*) FROM [mig_mode]", ()).await?;
            assert_eq!(n[0].try_get::<i64, _>(0).unwrap(), 1, "nothing written");
            Ok(())
        },
    )
    .await;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "mig_audit")]
struct Audited {
    id: Option<String>,
    #[entity(index)]
    label: Option<String>,
}

#[tokio::test]
async fn the_audit_file_holds_the_statements_the_dry_run_showed() {
    each_backend("mig_audit", |db| async move {
        reset(&db, "mig_audit").await?;
        let dir = std::env::temp_dir().join(format!(
            "dal-mig-audit-{}-{}",
            db.backend().as_str(),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let migrator = Migrator::new(&db).entity::<Audited>().audit_dir(&dir);
        let dry = migrator.plan().await?;
        let applied = migrator.apply().await?;
        assert_eq!(applied.statements(), dry.statements());
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1);
        let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.ends_with(&format!("_{}.sql", &dry.checksum()[..8])),
            "{name}"
        );
        let text = std::fs::read_to_string(&files[0]).unwrap();
        for s in dry.statements() {
            assert!(text.contains(&format!("{s};")), "{s} not in {text}");
        }
        let history = migrator.history().await?;
        let row = history
            .iter()
            .find(|r| r.checksum == dry.checksum())
            .unwrap();
        assert_eq!(row.backend, db.backend().as_str());
        assert!(row.applied_by.contains('@'));
        // Nothing to do: no file, no row.
        assert!(migrator.apply().await?.is_empty());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
    .await;
}

mod plain {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
    #[entity(table = "mig_autoidx")]
    pub struct Tag {
        pub id: Option<String>,
        pub label: String,
        pub slug: String,
    }
}

mod indexed {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
    #[entity(table = "mig_autoidx")]
    pub struct Tag {
        pub id: Option<String>,
        #[entity(index)]
        pub label: String,
        #[entity(unique)]
        pub slug: String,
    }
}

#[tokio::test]
async fn auto_mode_adds_a_declared_index_to_an_existing_column() {
    each_backend("mig_autoidx", |db| async move {
        reset(&db, "mig_autoidx").await?;
        let mut conn = db.async_connection().await?;
        for slug in ["a", "a"] {
            conn.save(&plain::Tag {
                id: None,
                label: "l".into(),
                slug: slug.into(),
            })
            .await?;
        }
        // Duplicates prevent the unique index: a clear error, nothing written.
        let e = conn
            .save(&indexed::Tag {
                id: None,
                label: "m".into(),
                slug: "b".into(),
            })
            .await
            .unwrap_err();
        assert!(
            matches!(e, dal::Error::Entity(_)) && e.to_string().contains("slug"),
            "{e}"
        );
        assert_eq!(conn.find::<plain::Tag>().await?.len(), 2);
        conn.execute("DELETE FROM [mig_autoidx]", ()).await?;

        conn.save(&indexed::Tag {
            id: None,
            label: "m".into(),
            slug: "b".into(),
        })
        .await?;
        let idx = indexes(&mut conn, "mig_autoidx").await?;
        assert!(
            idx.contains(&("mig_autoidx_label_idx".to_owned(), false)),
            "{idx:?}"
        );
        assert!(
            idx.contains(&("mig_autoidx_slug_key".to_owned(), true)),
            "{idx:?}"
        );
        let e = conn
            .save(&indexed::Tag {
                id: None,
                label: "n".into(),
                slug: "b".into(),
            })
            .await
            .unwrap_err();
        assert!(e.is_unique_violation(), "{e}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_json_schema_makes_foreign_keys_and_widens_types() {
    each_backend("mig_fk", |db| async move {
        reset(&db, "mig_fk_order").await?;
        reset(&db, "mig_fk_cust").await?;
        let file = std::env::temp_dir().join(format!(
            "dal-mig-fk-{}-{}.json",
            db.backend().as_str(),
            std::process::id()
        ));
        let schema = |total: &str| {
            json!([
                {"name": "mig_fk_order", "fields": [
                    {"name": "orderTotal", "type": total},
                    {"name": "customer", "type": "text", "nullable": true, "references": "mig_fk_cust"}
                ]},
                {"name": "mig_fk_cust", "fields": [
                    {"name": "name", "type": "text", "nullable": true},
                    {"name": "Label", "type": "text", "nullable": true, "default": "O'Brien \\ \"x\""},
                    {"name": "vip", "type": "bool", "default": false},
                    {"name": "rate", "type": "float", "default": -0.5}
                ]}
            ])
        };
        std::fs::write(&file, schema("int").to_string()).unwrap();
        let plan = Migrator::new(&db).schema_file(&file).apply().await?;
        assert!(plan
            .changes()
            .iter()
            .any(|c| matches!(c, Change::AddForeignKey { references, .. } if references == "mig_fk_cust")));
        let again = Migrator::new(&db).schema_file(&file).plan().await?;
        assert!(again.is_empty(), "{again}");
        let mut conn = db.async_connection().await?;
        let cust = conn.save_entity("mig_fk_cust", json!({"name": "Ann"})).await?;
        assert_eq!(cust["Label"], json!("O'Brien \\ \"x\""));
        assert_eq!(cust["rate"], json!(-0.5));
        conn.save_entity(
            "mig_fk_order",
            json!({"orderTotal": 5, "customer": cust["id"].clone()}),
        )
        .await?;
        let e = conn
            .save_entity("mig_fk_order", json!({"orderTotal": 6, "customer": "nobody"}))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), DbErrorKind::ForeignKeyViolation, "{e}");
        // A non-null field: a save that leaves it out is refused by the server.
        let e = conn
            .save_entity("mig_fk_order", json!({"customer": null}))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), DbErrorKind::NotNullViolation, "{e}");

        std::fs::write(&file, schema("float").to_string()).unwrap();
        let widen = Migrator::new(&db).schema_file(&file);
        let plan = widen.plan().await?;
        assert_eq!(
            plan.changes(),
            [Change::WidenType {
                entity: "mig_fk_order".into(),
                field: "orderTotal".into(),
                from: FieldType::Int,
                to: FieldType::Float
            }]
        );
        assert!(plan.destructive().is_empty());
        widen.apply().await?;
        assert!(widen.plan().await?.is_empty());
        let saved = conn
            .save_entity("mig_fk_order", json!({"orderTotal": 2.5}))
            .await?;
        assert_eq!(saved["orderTotal"], json!(2.5));

        // Back to int: a narrowing, refused unless allowed; values convert (7.0 → 7).
        conn.execute("DELETE FROM [mig_fk_order]", ()).await?;
        conn.save_entity("mig_fk_order", json!({"orderTotal": 7.0}))
            .await?;
        std::fs::write(&file, schema("int").to_string()).unwrap();
        let narrow = Migrator::new(&db).schema_file(&file);
        let plan = narrow.plan().await?;
        assert!(
            matches!(plan.destructive()[..], [Change::NarrowType { from: FieldType::Float, to: FieldType::Int, .. }]),
            "{plan}"
        );
        assert!(narrow.apply().await.is_err());
        narrow.allow_destructive(true).apply().await?;
        let rows = conn.find_entities("mig_fk_order").await?;
        assert_eq!(rows[0]["orderTotal"], json!(7));
        let _ = std::fs::remove_file(&file);
        Ok(())
    })
    .await;
}

mod resume_v1 {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
    #[entity(table = "mig_resume")]
    pub struct Doc {
        pub id: Option<String>,
        pub name: Option<String>,
    }
}

mod resume_v2 {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
    #[entity(table = "mig_resume")]
    pub struct Doc {
        pub id: Option<String>,
        #[entity(unique)]
        pub name: Option<String>,
        pub extra: Option<i64>,
    }
}

#[tokio::test]
async fn a_failed_apply_is_atomic_or_resumes_where_it_stopped_on_mysql() {
    each_backend("mig_resume", |db| async move {
        reset(&db, "mig_resume").await?;
        let mut conn = db.async_connection().await?;
        let mut ids = Vec::new();
        for _ in 0..2 {
            let d = conn
                .save(&resume_v1::Doc {
                    id: None,
                    name: Some("dup".into()),
                })
                .await?;
            ids.push(d.id.unwrap());
        }
        let migrator = Migrator::new(&db).entity::<resume_v2::Doc>();
        let plan = migrator.plan().await?;
        assert_eq!(
            kinds(plan.changes()),
            [change("add_unique", "name"), change("add_column", "extra")]
        );
        let e = migrator.apply().await.unwrap_err();
        assert!(e.is_unique_violation(), "{e}");
        let after = migrator.plan().await?;
        if db.backend() == Backend::MySql {
            // DDL committed statement by statement: only the unique index is left.
            assert_eq!(kinds(after.changes()), [change("add_unique", "name")]);
        } else {
            // One transaction: nothing happened.
            assert_eq!(after.checksum(), plan.checksum());
        }
        conn.execute(
            "DELETE FROM [mig_resume] WHERE [id] = ?",
            params![ids[1].clone()],
        )
        .await?;
        assert_eq!(migrator.apply().await?.checksum(), after.checksum());
        assert!(migrator.plan().await?.is_empty());
        Ok(())
    })
    .await;
}

/// A NOT NULL column added by the migrator has no value in the history recorded before it:
/// rolling back past it keeps the column's current value (or its default for an entity
/// deleted for good), and a rollback to now changes nothing.
#[tokio::test]
async fn rollback_past_a_migration_keeps_not_null_columns_filled() {
    each_backend("mig_rollback", |db| async move {
        reset(&db, "mig_rollback").await?;
        let mut conn = db.async_connection().await?;
        let a = conn
            .save_entity("mig_rollback", json!({"name": "a1"}))
            .await?;
        let b = conn
            .save_entity("mig_rollback", json!({"name": "b1"}))
            .await?;
        let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
        let schema: Vec<EntitySchema> = serde_json::from_value(json!([
            {"name": "mig_rollback", "fields": [
                {"name": "name", "type": "text", "nullable": true},
                {"name": "Rank", "type": "int", "default": 7}
            ]}
        ]))
        .unwrap();
        let mut m = Migrator::new(&db);
        for s in schema {
            m = m.schema(s);
        }
        m.apply().await?;
        // A rollback to a moment after every change touches nothing.
        let later = chrono::Utc::now() + chrono::Duration::days(1);
        let r = conn.rollback_entities_to("mig_rollback", later).await?;
        assert_eq!((r.restored, r.unchanged), (0, 2), "{r:?}");

        let mid = chrono::Utc::now();
        poll_past(mid).await;
        conn.save_entity("mig_rollback", json!({"id": a_id, "name": "a2", "Rank": 9}))
            .await?;
        conn.execute("DELETE FROM [mig_rollback] WHERE [id] = ?", params![b_id])
            .await?;
        let r = conn.rollback_entities_to("mig_rollback", mid).await?;
        assert_eq!((r.restored, r.recreated), (1, 1), "{r:?}");
        let a = conn.get_entity("mig_rollback", a_id).await?.unwrap();
        assert_eq!(
            (a["name"].clone(), a["Rank"].clone()),
            (json!("a1"), json!(9))
        );
        let b = conn.get_entity("mig_rollback", b_id).await?.unwrap();
        assert_eq!(
            (b["name"].clone(), b["Rank"].clone()),
            (json!("b1"), json!(7))
        );
        Ok(())
    })
    .await;
}

/// Waits until the clock has moved past `t` (timestamps are kept to the microsecond).
async fn poll_past(t: chrono::DateTime<chrono::Utc>) {
    while chrono::Utc::now() <= t + chrono::Duration::milliseconds(2) {
        tokio::task::yield_now().await;
    }
}

/// After the migrator made a field NOT NULL (no default), a partial save of an existing entity
/// that leaves the field out keeps its stored value: the servers check NOT NULL on the row an
/// upsert proposes before they see the conflict. Single saves, batches and the PostgreSQL
/// COPY path (600 rows) alike; a new entity without it is still refused.
#[tokio::test]
async fn partial_saves_keep_not_null_fields_the_migrator_made() {
    each_backend("mig_partial", |db| async move {
        reset(&db, "mig_partial").await?;
        let mut conn = db.async_connection().await?;
        let rows: Vec<serde_json::Value> = (0..600)
            .map(|i| json!({"id": format!("p{i:03}"), "Name": format!("n{i}"), "n": i}))
            .collect();
        conn.save_entities("mig_partial", rows).await?;
        let schema: EntitySchema = serde_json::from_value(json!(
            {"name": "mig_partial", "fields": [
                {"name": "Name", "type": "text"},
                {"name": "n", "type": "int", "nullable": true}
            ]}
        ))
        .unwrap();
        Migrator::new(&db).schema(schema).apply().await?;
        let one = conn
            .save_entity("mig_partial", json!({"id": "p000", "n": -1}))
            .await?;
        assert_eq!(
            (one["Name"].clone(), one["n"].clone()),
            (json!("n0"), json!(-1))
        );
        for size in [2, 600] {
            let batch: Vec<serde_json::Value> = (0..size)
                .map(|i| json!({"id": format!("p{i:03}"), "n": size}))
                .collect();
            let saved = conn.save_entities("mig_partial", batch).await?;
            assert_eq!(saved[1]["Name"], json!("n1"), "batch of {size}");
            assert_eq!(saved[1]["n"], json!(size), "batch of {size}");
        }
        let e = conn
            .save_entity("mig_partial", json!({"id": "new", "n": 1}))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), DbErrorKind::NotNullViolation, "{e}");
        assert!(conn.get_entity("mig_partial", "new").await?.is_none());
        Ok(())
    })
    .await;
}

/// Changing a constraint of an entity other rows point to (SQLite rebuilds its table) keeps
/// those rows and their foreign keys, on every backend.
#[tokio::test]
async fn a_constraint_change_on_a_referenced_entity_keeps_the_rows_pointing_at_it() {
    each_backend("mig_fkr", |db| async move {
        reset(&db, "mig_fkr_order").await?;
        reset(&db, "mig_fkr_cust").await?;
        let schema = |check: Option<&str>| -> Vec<EntitySchema> {
            serde_json::from_value(json!([
                {"name": "mig_fkr_cust", "fields": [
                    {"name": "score", "type": "int", "nullable": true, "check": check}
                ]},
                {"name": "mig_fkr_order", "fields": [
                    {"name": "cust", "type": "text", "nullable": true, "references": "mig_fkr_cust"}
                ]}
            ]))
            .unwrap()
        };
        let mut m = Migrator::new(&db);
        for s in schema(None) {
            m = m.schema(s);
        }
        m.apply().await?;
        let mut conn = db.async_connection().await?;
        let cust = conn
            .save_entity("mig_fkr_cust", json!({"score": 5}))
            .await?;
        for _ in 0..3 {
            conn.save_entity("mig_fkr_order", json!({"cust": cust["id"].clone()}))
                .await?;
        }
        let mut m = Migrator::new(&db);
        for s in schema(Some("score >= 0")) {
            m = m.schema(s);
        }
        let plan = m.apply().await?;
        assert!(
            plan.changes()
                .iter()
                .any(|c| matches!(c, Change::AddCheck { .. })),
            "{plan}"
        );
        assert_eq!(conn.find_entities("mig_fkr_order").await?.len(), 3);
        assert_eq!(conn.find_entities("mig_fkr_cust").await?.len(), 1);
        let e = conn
            .save_entity("mig_fkr_order", json!({"cust": "nobody"}))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), DbErrorKind::ForeignKeyViolation, "{e}");
        let e = conn
            .save_entity("mig_fkr_cust", json!({"score": -1}))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), DbErrorKind::CheckViolation, "{e}");
        Ok(())
    })
    .await;
}

mod roll_v1 {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
    #[entity(table = "mig_rolltyped")]
    pub struct Doc {
        pub id: Option<String>,
        pub title: String,
    }
}
mod roll_v2 {
    use super::*;
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
    #[entity(table = "mig_rolltyped")]
    pub struct Doc {
        pub id: Option<String>,
        pub title: String,
        pub pages: i64,
    }
}

/// A typed rollback to a state the struct cannot hold (a required field added since) is an
/// Err with nothing changed: the state is read as `T` before the commit.
#[tokio::test]
async fn a_typed_rollback_the_struct_cannot_hold_changes_nothing() {
    each_backend("mig_rolltyped", |db| async move {
        reset(&db, "mig_rolltyped").await?;
        let mut conn = db.async_connection().await?;
        let d = conn
            .save(&roll_v1::Doc {
                id: None,
                title: "old".into(),
            })
            .await?;
        let id = d.id.clone().unwrap();
        let before = chrono::Utc::now();
        poll_past(before).await;
        conn.save(&roll_v2::Doc {
            id: Some(id.clone()),
            title: "new".into(),
            pages: 3,
        })
        .await?;
        let r = conn.rollback_to::<roll_v2::Doc>(&id, before).await;
        assert!(r.is_err(), "{r:?}");
        let now = conn.get_entity("mig_rolltyped", &id).await?.unwrap();
        assert_eq!(
            (now["title"].clone(), now["version"].clone()),
            (json!("new"), json!(2))
        );
        assert_eq!(
            conn.get_entity_history("mig_rolltyped", &id).await?.len(),
            2
        );
        Ok(())
    })
    .await;
}
