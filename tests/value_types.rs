//! Custom value types in dynamic entities (`register_serializer`, `.field_type`) and `.raw()`
//! reads, on every backend.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

mod common;

use common::{each_backend, reset_entity};
use dal::prelude::*;

/// `{"x": 1, "y": 2}` ⇄ `"1,2"`. Registered under `name` (each test its own names: the
/// registry is process-wide and tests run in parallel).
fn register_point(name: &str) {
    dal::register_serializer(
        name,
        |v: &JsonValue| match (
            v.get("x").and_then(JsonValue::as_i64),
            v.get("y").and_then(JsonValue::as_i64),
        ) {
            (Some(x), Some(y)) => Ok(format!("{x},{y}")),
            _ => Err(format!("not a point: {v}").into()),
        },
        |s: &str| {
            let (x, y) = s.split_once(',').ok_or("no comma")?;
            Ok(json!({"x": x.parse::<i64>()?, "y": y.parse::<i64>()?}))
        },
    )
    .unwrap();
}

fn id_of(m: &Map<String, JsonValue>) -> String {
    m["id"].as_str().unwrap().to_owned()
}

async fn stored_text(conn: &mut Connection, table: &str, field: &str, id: &str) -> Option<String> {
    let rows = conn
        .execute(
            &format!("SELECT [{field}] FROM [{table}] WHERE [id] = ?"),
            params![id],
        )
        .await
        .unwrap();
    rows[0].try_get::<Option<String>, _>(0).unwrap()
}

async fn meta_type(conn: &mut Connection, entity: &str, field: &str) -> Option<String> {
    let rows = conn
        .execute(
            &format!("SELECT [type] FROM [{entity}_meta] WHERE [name] = ?"),
            params![field],
        )
        .await
        .unwrap();
    rows.first().map(|r| r.try_get::<String, _>(0).unwrap())
}

fn entity_err(r: dal::Result<impl std::fmt::Debug>, needle: &str) {
    match r {
        Err(Error::Entity(msg)) => assert!(msg.contains(needle), "{msg:?} lacks {needle:?}"),
        other => panic!("expected Error::Entity containing {needle:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn custom_type_round_trips_through_save_get_find_and_history() {
    register_point("vt_point");
    each_backend("vt_round_trip", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "vt_places").await?;

        let saved = conn
            .save_entity(
                "vt_places",
                json!({"name": "home", "loc": {"x": 1, "y": 2}}),
            )
            .field_type("loc", "vt_point")
            .await?;
        assert_eq!(saved["loc"], json!({"x": 1, "y": 2}));
        let id = id_of(&saved);
        // The column holds the serializer's text; `_meta` records the type's name.
        assert_eq!(
            stored_text(&mut conn, "vt_places", "loc", &id)
                .await
                .as_deref(),
            Some("1,2")
        );
        assert_eq!(
            meta_type(&mut conn, "vt_places", "loc").await.as_deref(),
            Some("vt_point")
        );
        assert_eq!(
            meta_type(&mut conn, "vt_places", "name").await.as_deref(),
            Some("text")
        );

        // Later saves convert the field without declaring it again; declaring it again is fine.
        conn.save_entity("vt_places", json!({"id": id, "loc": {"x": -3, "y": 40}}))
            .await?;
        assert_eq!(
            stored_text(&mut conn, "vt_places", "loc", &id)
                .await
                .as_deref(),
            Some("-3,40")
        );
        let batch = conn
            .save_entities(
                "vt_places",
                vec![
                    json!({"name": "office", "loc": {"x": 7, "y": 8}}),
                    json!({"name": "nowhere", "loc": null}),
                ],
            )
            .field_type("loc", "vt_point")
            .await?;
        assert_eq!(batch[0]["loc"], json!({"x": 7, "y": 8}));
        assert_eq!(batch[1]["loc"], JsonValue::Null);
        assert_eq!(
            stored_text(&mut conn, "vt_places", "loc", &id_of(&batch[1])).await,
            None
        );

        // Reads convert back.
        let got = conn.get_entity("vt_places", &id).await?.unwrap();
        assert_eq!(got["loc"], json!({"x": -3, "y": 40}));
        assert_eq!(got["name"], json!("home"));
        let found = conn
            .find_entities("vt_places")
            .filter("[loc] = ?", params!["7,8"])
            .await?;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["loc"], json!({"x": 7, "y": 8}));
        let history = conn.get_entity_history("vt_places", &id).await?;
        let locs: Vec<&JsonValue> = history.iter().map(|h| &h["loc"]).collect();
        assert_eq!(locs, [&json!({"x": 1, "y": 2}), &json!({"x": -3, "y": 40})]);
        let v1 = conn
            .get_entity_by_version("vt_places", &id, 1)
            .await?
            .unwrap();
        assert_eq!(v1["loc"], json!({"x": 1, "y": 2}));

        // .raw(): the stored text, everywhere.
        let raw = conn.get_entity("vt_places", &id).raw().await?.unwrap();
        assert_eq!(raw["loc"], json!("-3,40"));
        let raw_found = conn
            .find_entities("vt_places")
            .order_by("[name]")
            .raw()
            .await?;
        let raw_locs: Vec<&JsonValue> = raw_found.iter().map(|m| &m["loc"]).collect();
        assert_eq!(raw_locs, [&json!("-3,40"), &JsonValue::Null, &json!("7,8")]);
        let raw_history = conn.get_entity_history("vt_places", &id).raw().await?;
        assert_eq!(raw_history[0]["loc"], json!("1,2"));
        assert_eq!(raw_history[1]["loc"], json!("-3,40"));
        let raw_v1 = conn
            .get_entity_by_version("vt_places", &id, 1)
            .raw()
            .await?
            .unwrap();
        assert_eq!(raw_v1["loc"], json!("1,2"));

        // A declaration that disagrees with what is recorded is refused, naming both.
        entity_err(
            conn.save_entity("vt_places", json!({"id": id, "name": {"x": 1, "y": 1}}))
                .field_type("name", "vt_point")
                .await,
            "stored as \"text\"",
        );
        // A value of the wrong shape for an existing custom field: the serializer's error.
        entity_err(
            conn.save_entity("vt_places", json!({"id": id, "loc": "1,2"}))
                .await,
            "not a point",
        );
        // The blocking twin takes the declaration through SaveOptions, and raw finds through
        // FindOptions.
        let db2 = db.clone();
        // (From a plain thread: the blocking API refuses to run inside a runtime.)
        let sync_id = std::thread::spawn(move || -> dal::Result<String> {
            let mut s = db2.sync_connection()?;
            let e = s.save_entity_with(
                "vt_places",
                json!({"name": "sync", "loc": {"x": 5, "y": 6}, "spot": {"x": 0, "y": 0}}),
                SaveOptions::default().field_type("spot", "vt_point"),
            )?;
            assert_eq!(e["loc"], json!({"x": 5, "y": 6}));
            assert_eq!(e["spot"], json!({"x": 0, "y": 0}));
            let raw = s.find_entities(
                "vt_places",
                FindOptions::default()
                    .filter("[name] = ?", params!["sync"])
                    .raw(),
            )?;
            assert_eq!(raw[0]["spot"], json!("0,0"));
            let sid = id_of(&e);
            let got = s.get_entity_with("vt_places", &sid, GetOptions::default().raw())?;
            assert_eq!(got.unwrap()["loc"], json!("5,6"));
            let h =
                s.get_entity_history_with("vt_places", &sid, HistoryOptions::default().raw())?;
            assert_eq!(h[0]["spot"], json!("0,0"));
            let v1 =
                s.get_entity_by_version_with("vt_places", &sid, 1, HistoryOptions::default())?;
            assert_eq!(v1.unwrap()["spot"], json!({"x": 0, "y": 0}));
            Ok(sid)
        })
        .join()
        .unwrap()?;
        assert_eq!(
            meta_type(&mut conn, "vt_places", "spot").await.as_deref(),
            Some("vt_point")
        );
        assert_eq!(
            stored_text(&mut conn, "vt_places", "loc", &sync_id)
                .await
                .as_deref(),
            Some("5,6")
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn unregistered_and_failing_types_are_errors_and_write_nothing() {
    // A serializer that refuses points with negative coordinates.
    dal::register_serializer(
        "vt_positive",
        |v: &JsonValue| {
            let x = v["x"].as_i64().ok_or("x missing")?;
            if x < 0 {
                return Err(format!("negative x {x}").into());
            }
            Ok(x.to_string())
        },
        |s: &str| Ok(json!({"x": s.parse::<i64>()?})),
    )
    .unwrap();
    register_point("vt_fleeting");
    each_backend("vt_errors", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "vt_errs").await?;

        // Unregistered on save: refused before the entity's tables exist.
        entity_err(
            conn.save_entity("vt_errs", json!({"p": {"x": 1}}))
                .field_type("p", "vt_never_registered")
                .await,
            "\"vt_never_registered\"",
        );
        let exists = conn
            .execute("SELECT COUNT(*) FROM [vt_errs_meta]", ())
            .await;
        assert!(exists.is_err(), "tables were created by a refused save");
        // Built-in names and odd names are not custom types.
        entity_err(
            conn.save_entity("vt_errs", json!({"p": 1}))
                .field_type("p", "int")
                .await,
            "built-in",
        );
        entity_err(
            conn.save_entity("vt_errs", json!({"p": 1}))
                .field_type("p", "x'); DROP TABLE t; --")
                .await,
            "invalid value type name",
        );
        entity_err(
            conn.save_entity("vt_errs", json!({"p": 1}))
                .field_type("id", "vt_positive")
                .await,
            "reserved",
        );
        assert!(
            dal::register_serializer("Json", |_| Ok(String::new()), |_| Ok(JsonValue::Null))
                .is_err()
        );

        // A failing serializer: nothing written, not even the new field's column.
        let good = conn
            .save_entity("vt_errs", json!({"name": "a", "p": {"x": 1}}))
            .field_type("p", "vt_positive")
            .await?;
        let id = id_of(&good);
        entity_err(
            conn.save_entities(
                "vt_errs",
                vec![
                    json!({"id": id, "name": "changed", "p": {"x": 2}}),
                    json!({"name": "b", "p": {"x": -5}}),
                ],
            )
            .await,
            "negative x -5",
        );
        entity_err(
            conn.save_entity("vt_errs", json!({"id": id, "name": "c", "q": {"x": -1}}))
                .field_type("q", "vt_positive")
                .await,
            "negative x -1",
        );
        assert_eq!(conn.count_entities("vt_errs").await?, 1);
        assert_eq!(conn.get_entity_history("vt_errs", &id).await?.len(), 1);
        let got = conn.get_entity("vt_errs", &id).await?.unwrap();
        assert_eq!(got["name"], json!("a"));
        assert_eq!(got["p"], json!({"x": 1}));
        assert_eq!(meta_type(&mut conn, "vt_errs", "q").await, None);

        // Unregistered on read: a type recorded in _meta (here by SQL, as another process
        // would) that this process does not know.
        conn.execute(
            "INSERT INTO [vt_errs_meta] ([name], [type]) VALUES (?, ?)",
            params!["p2", "vt_sql_only"],
        )
        .await?;
        for t in ["vt_errs", "vt_errs_history"] {
            conn.execute(&format!("ALTER TABLE [{t}] ADD [p2] TEXT"), ())
                .await?;
        }
        conn.execute("UPDATE [vt_errs] SET [p2] = ?", params!["9,9"])
            .await?;
        // A second pool (fresh schema cache) sees the new metadata at once.
        let other_db = Database::new(
            db.backend(),
            db.config()
                .clone()
                .alias(format!("vt_errors_2-{}", db.backend().as_str())),
        );
        let mut other = other_db.async_connection().await?;
        entity_err(other.get_entity("vt_errs", &id).await, "\"vt_sql_only\"");
        entity_err(other.find_entities("vt_errs").await, "\"vt_sql_only\"");
        entity_err(
            other
                .save_entity("vt_errs", json!({"id": id, "p2": {"x": 1, "y": 1}}))
                .await,
            "\"vt_sql_only\"",
        );
        let raw = other.get_entity("vt_errs", &id).raw().await?.unwrap();
        assert_eq!(raw["p2"], json!("9,9"));
        assert_eq!(raw["p"], json!("1"));

        // Registered, then unregistered: the values saved stay readable raw only, until the
        // type is registered again.
        register_point("vt_fleeting");
        let e = other
            .save_entity("vt_errs", json!({"name": "f", "f": {"x": 3, "y": 4}}))
            .field_type("f", "vt_fleeting")
            .await?;
        let fid = id_of(&e);
        assert!(dal::unregister_serializer("vt_fleeting"));
        assert!(!dal::is_serializer_registered("vt_fleeting"));
        entity_err(other.get_entity("vt_errs", &fid).await, "\"vt_fleeting\"");
        entity_err(
            other.get_entity_history("vt_errs", &fid).await,
            "\"vt_fleeting\"",
        );
        entity_err(
            other
                .save_entity("vt_errs", json!({"id": fid, "f": {"x": 1, "y": 1}}))
                .await,
            "\"vt_fleeting\"",
        );
        let raw = other.get_entity_history("vt_errs", &fid).raw().await?;
        assert_eq!(raw.len(), 1);
        assert_eq!(raw[0]["f"], json!("3,4"));
        register_point("vt_fleeting");
        // p2's type is still unknown: reading a row that holds a p2 value still fails
        // (rows where it is null need no conversion).
        entity_err(other.get_entity("vt_errs", &id).await, "\"vt_sql_only\"");
        register_point("vt_sql_only");
        let back = other.get_entity("vt_errs", &fid).await?.unwrap();
        assert_eq!(back["f"], json!({"x": 3, "y": 4}));
        let first = other.get_entity("vt_errs", &id).await?.unwrap();
        assert_eq!(first["p2"], json!({"x": 9, "y": 9}));
        assert!(dal::unregister_serializer("vt_sql_only"));
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn raw_reads_return_stored_forms() {
    each_backend("vt_raw", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "vt_raw").await?;
        let saved = conn
            .save_entity(
                "vt_raw",
                json!({"flag": true, "off": false, "at": "2024-05-01T12:30:45.5+02:00",
                       "doc": {"a": [1, 2]}, "n": 5, "ratio": 0.25, "name": "x"}),
            )
            .await?;
        let id = id_of(&saved);
        let backend = db.backend();
        let conv = conn.get_entity("vt_raw", &id).await?.unwrap();
        let raw = conn.get_entity("vt_raw", &id).raw().await?.unwrap();
        let found = conn.find_entities("vt_raw").raw().await?;
        let history = conn.get_entity_history("vt_raw", &id).raw().await?;
        for (what, m) in [("get", &raw), ("find", &found[0]), ("history", &history[0])] {
            // Timestamps: the stored instant, fixed-width UTC with microseconds (converted
            // reads trim the fraction).
            assert_eq!(m["at"], json!("2024-05-01T10:30:45.500000Z"), "{what}");
            // Booleans: PostgreSQL stores booleans, MySQL and SQLite integers.
            let (t, f) = match backend {
                Backend::Postgres => (json!(true), json!(false)),
                _ => (json!(1), json!(0)),
            };
            assert_eq!((&m["flag"], &m["off"]), (&t, &f), "{what}");
            // JSON: a JSONB value on PostgreSQL, the stored text elsewhere.
            let doc = match backend {
                Backend::Postgres => json!({"a": [1, 2]}),
                _ => json!("{\"a\":[1,2]}"),
            };
            assert_eq!(m["doc"], doc, "{what}");
            assert_eq!(
                (&m["n"], &m["ratio"], &m["name"]),
                (&json!(5), &json!(0.25), &json!("x"))
            );
            assert_eq!(m["version"], json!(1));
        }
        // Without .raw(), the same row is converted on every backend alike.
        assert_eq!(conv["at"], json!("2024-05-01T10:30:45.500Z"));
        assert_eq!((&conv["flag"], &conv["off"]), (&json!(true), &json!(false)));
        assert_eq!(conv["doc"], json!({"a": [1, 2]}));
        Ok(())
    })
    .await;
}
