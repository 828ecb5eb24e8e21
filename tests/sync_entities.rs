//! The blocking twin's entity API, typed and dynamic, on every backend, from plain threads with
//! no runtime: the acceptance cases of the async typed API (tests/typed_entities.rs,
//! tests/builders.rs, tests/correctness.rs, tests/entity_timeouts.rs) through
//! `SyncConnection` — save/get/find/count/delete/restore/history/get_version with every
//! option, user ids and comments in history, version conflicts, row locks under concurrent
//! orders, and `timeout` in the options structs bounding a whole operation blocked on a row
//! lock (`TimeoutKind::Operation`, nothing written). Also the connection-level methods the
//! twin shares with `Connection` (alias, backend, role, version_details, rows affected, ping).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use dal::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "sync_items")]
struct Item {
    id: Option<String>,
    name: String,
    qty: i64,
}

fn item(name: &str, qty: i64) -> Item {
    Item {
        id: None,
        name: name.into(),
        qty,
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// Runs `body` on every selected backend, from this plain thread (no runtime), on a database
/// with its own pool (closed afterwards), and fails naming every backend where it failed.
fn each_backend_blocking(
    test: &str,
    adjust: impl Fn(DatabaseConfig) -> DatabaseConfig,
    body: impl Fn(Backend, &Database) -> dal::Result<()>,
) {
    let mut failures = Vec::new();
    for backend in common::selected() {
        let db = common::database(backend, adjust(common::config(backend, test)));
        if let Err(e) = body(backend, &db) {
            failures.push(format!("{}: {e}", backend.as_str()));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = rt.block_on(db.close(Duration::from_secs(10)));
    }
    assert!(failures.is_empty(), "{test} failed on: {failures:#?}");
}

/// Drops an entity's three tables.
fn reset_entity(conn: &mut SyncConnection, entity: &str) -> dal::Result<()> {
    for t in [
        entity.to_owned(),
        format!("{entity}_history"),
        format!("{entity}_meta"),
    ] {
        conn.execute(&format!("DROP TABLE IF EXISTS [{t}]"), ())?;
    }
    Ok(())
}

/// (version, user, comment) of every history row of an `Item`.
fn audit_trail(conn: &mut SyncConnection, id: &str) -> Vec<(i64, Option<String>, Option<String>)> {
    conn.history::<Item>(id)
        .unwrap()
        .into_iter()
        .map(|v| (v.version, v.user_id, v.comment))
        .collect()
}

#[test]
fn the_typed_api_and_every_option_work_through_the_blocking_twin() {
    each_backend_blocking(
        "sync_typed",
        |c| c,
        |backend, db| {
            let mut conn = db.sync_connection()?;
            reset_entity(&mut conn, "sync_items")?;
            reset_entity(&mut conn, "sync_dyn")?;
            // Odd but legal text: quotes, SQL comment markers, a tab, an emoji, 10 KB of non-ASCII.
            let odd = "it's \"odd\" */ -- ; DROP TABLE x; \t😀 ".to_owned() + &"ä".repeat(5_000);

            // The connection-level twins.
            assert_eq!(conn.backend(), backend);
            assert_eq!(conn.alias(), db.config().get_alias());
            assert_eq!(conn.role(), Role::Primary);
            assert!(!conn.is_read_only());
            conn.ping()?;
            let v = conn.version_details()?;
            assert_eq!(v.backend, backend);
            assert!(!v.server_version.is_empty(), "{v:?}");

            // save / save_with: user and comment in history (and created_by), expect_version.
            let a = conn.save_with(
                &item("anvil", 3),
                SaveOptions::default().user_id("ann").comment("created"),
            )?;
            let a_id = a.id.clone().expect("an id was assigned");
            assert_eq!(audit_trail(&mut conn, &a_id), [(1, s("ann"), s("created"))]);
            assert_eq!(
                conn.get_entity("sync_items", &a_id)?.unwrap()["created_by"],
                json!("ann")
            );
            assert_eq!(conn.get::<Item>(&a_id)?, Some(a.clone()));
            assert_eq!(conn.get::<Item>("no such id")?, None);
            assert_eq!(
                conn.get::<Item>(odd.as_str())?,
                None,
                "an odd id is just not found"
            );
            let stale = conn.save_with(&a, SaveOptions::default().expect_version(7));
            assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
            assert_eq!(
                conn.history::<Item>(&a_id)?.len(),
                1,
                "the conflict wrote nothing"
            );
            conn.save_with(
                &Item {
                    qty: 4,
                    ..a.clone()
                },
                SaveOptions::default()
                    .user_id("ann")
                    .comment(odd.as_str())
                    .expect_version(1),
            )?;
            assert_eq!(
                audit_trail(&mut conn, &a_id)[1],
                (2, s("ann"), Some(odd.clone()))
            );

            // save_all / save_all_with: the batch's user and comment on every history row.
            let batch = conn.save_all_with(
                &[item("bolt", 10), item("crate", 20), item("drill", 30)],
                SaveOptions::default().user_id("bob").comment("import #1"),
            )?;
            assert_eq!(batch.len(), 3);
            for it in &batch {
                assert_eq!(
                    audit_trail(&mut conn, it.id.as_deref().unwrap()),
                    [(1, s("bob"), s("import #1"))]
                );
            }
            // An empty comment is kept as given.
            let e = conn.save_all_with(&[item("eel", 1)], SaveOptions::default().comment(""))?;
            let e_id = e[0].id.clone().unwrap();
            assert_eq!(audit_trail(&mut conn, &e_id), [(1, None, s(""))]);
            // A batch cannot expect one version.
            let err = conn
                .save_all_with(&batch, SaveOptions::default().expect_version(1))
                .unwrap_err();
            assert!(matches!(err, Error::Entity(_)), "{err:?}");
            let plain = conn.save_all(&[item("fan", 2)])?;
            assert_eq!(plain[0].qty, 2);

            // count / count_with.
            assert_eq!(conn.count::<Item>()?, 6);
            assert_eq!(
                conn.count_with::<Item>(FindOptions::default().filter("[qty] >= ?", params![10]))?,
                3
            );
            assert_eq!(
                conn.count_with::<Item>(
                    FindOptions::default().filter("[name] = ?", params![odd.as_str()])
                )?,
                0
            );

            // find / find_with: filter, order, limit, offset.
            assert_eq!(conn.find::<Item>()?.len(), 6);
            let names = |items: Vec<Item>| items.into_iter().map(|i| i.name).collect::<Vec<_>>();
            assert_eq!(
                names(conn.find_with::<Item>(FindOptions::default().order_by("[name]").limit(2))?),
                ["anvil", "bolt"]
            );
            assert_eq!(
                names(
                    conn.find_with::<Item>(
                        FindOptions::default()
                            .filter("[qty] >= ?", params![10])
                            .order_by("[qty] DESC")
                            .limit(2)
                            .offset(1)
                    )?
                ),
                ["crate", "bolt"]
            );

            // delete / delete_with: soft by default, user and comment in history.
            let bolt = batch[0].id.clone().unwrap();
            assert!(conn.delete_with::<Item>(
                &bolt,
                DeleteOptions::default()
                    .user_id("carol")
                    .comment("discontinued")
            )?);
            assert_eq!(
                audit_trail(&mut conn, &bolt).last().cloned(),
                Some((2, s("carol"), s("discontinued")))
            );
            assert!(!conn.delete::<Item>(&bolt)?, "already deleted");
            assert_eq!(conn.count::<Item>()?, 5);
            assert_eq!(
                conn.count_with::<Item>(FindOptions::default().include_deleted())?,
                6
            );
            assert_eq!(
                conn.find_with::<Item>(FindOptions::default().include_deleted())?
                    .len(),
                6
            );
            // get / get_with: include_deleted.
            assert!(conn.get::<Item>(&bolt)?.is_none());
            assert_eq!(
                conn.get_with::<Item>(&bolt, GetOptions::default().include_deleted())?
                    .map(|i| i.name),
                s("bolt")
            );
            // get_for_update needs a transaction, and works inside one.
            assert!(conn.get_for_update::<Item>(&a_id).is_err());
            conn.begin_transaction()?;
            assert_eq!(conn.get_for_update::<Item>(&a_id)?.map(|i| i.qty), Some(4));
            conn.rollback_transaction()?;

            // restore / restore_with: user and comment in history.
            assert!(conn.restore_with::<Item>(
                &bolt,
                RestoreOptions::default()
                    .user_id("dave")
                    .comment("back in stock")
            )?);
            assert_eq!(
                audit_trail(&mut conn, &bolt).last().cloned(),
                Some((3, s("dave"), s("back in stock")))
            );
            assert!(!conn.restore::<Item>(&bolt)?, "not deleted any more");

            // Permanent delete: the row goes, history stays and records it.
            assert!(conn.delete_with::<Item>(
                &bolt,
                DeleteOptions::default()
                    .permanent()
                    .user_id("erin")
                    .comment("purged")
            )?);
            assert!(conn
                .get_with::<Item>(&bolt, GetOptions::default().include_deleted())?
                .is_none());
            assert_eq!(
                conn.count_with::<Item>(FindOptions::default().include_deleted())?,
                5
            );
            assert_eq!(
                audit_trail(&mut conn, &bolt).last().cloned(),
                Some((4, s("erin"), s("purged")))
            );
            assert!(conn.delete::<Item>(&e_id)?);

            // history / get_version.
            let h = conn.history::<Item>(&a_id)?;
            assert_eq!(
                h.iter()
                    .map(|v| (v.version, v.entity.qty))
                    .collect::<Vec<_>>(),
                [(1, 3), (2, 4)]
            );
            assert!(!h[0].timestamp.is_empty() && h[0].deleted_at.is_none());
            let v1 = conn.get_version::<Item>(&a_id, 1)?.expect("version 1");
            assert_eq!(
                (v1.version, v1.entity.qty, v1.entity.name.as_str()),
                (1, 3, "anvil")
            );
            assert_eq!(v1.user_id.as_deref(), Some("ann"));
            assert!(conn.get_version::<Item>(&a_id, 99)?.is_none());
            assert!(
                conn.get_version::<Item>(&bolt, 4)?.is_some(),
                "purged rows keep history"
            );

            // Typed and dynamic share rows and history.
            conn.save_entity_with(
                "sync_items",
                json!({"id": a_id, "qty": 25}),
                SaveOptions::default().user_id("ops").comment("manual fix"),
            )?;
            let back = conn.get::<Item>(&a_id)?.unwrap();
            assert_eq!((back.name.as_str(), back.qty), ("anvil", 25));
            assert_eq!(
                audit_trail(&mut conn, &a_id).last().cloned(),
                Some((3, s("ops"), s("manual fix")))
            );
            assert_eq!(conn.get_entity_history("sync_items", &a_id)?.len(), 3);
            assert_eq!(
                conn.get_entity_by_version("sync_items", &a_id, 3)?.unwrap()["qty"],
                json!(25)
            );

            // The dynamic options structs: get_entity_with, delete_entity_with (comment, soft and
            // permanent), restore_entity_with.
            let d = conn.save_entity("sync_dyn", json!({"n": 1}))?;
            let d_id = d["id"].as_str().unwrap().to_owned();
            assert!(conn.delete_entity_with(
                "sync_dyn",
                &d_id,
                DeleteOptions::default()
                    .user_id("fay")
                    .comment("soft, with a reason")
            )?);
            assert!(conn.get_entity("sync_dyn", &d_id)?.is_none());
            assert!(conn
                .get_entity_with("sync_dyn", &d_id, GetOptions::default().include_deleted())?
                .is_some());
            assert!(conn.restore_entity_with(
                "sync_dyn",
                &d_id,
                RestoreOptions::default().user_id("gus").comment("undo")
            )?);
            assert!(conn.delete_entity_with(
                "sync_dyn",
                &d_id,
                DeleteOptions::default()
                    .permanent()
                    .comment("gone for good")
            )?);
            let trail: Vec<(JsonValue, JsonValue)> = conn
                .get_entity_history("sync_dyn", &d_id)?
                .iter()
                .map(|r| (r["history_user_id"].clone(), r["history_comment"].clone()))
                .collect();
            assert_eq!(
                trail,
                [
                    (JsonValue::Null, JsonValue::Null),
                    (json!("fay"), json!("soft, with a reason")),
                    (json!("gus"), json!("undo")),
                    (JsonValue::Null, json!("gone for good")),
                ]
            );

            // Typed operations join the caller's transaction.
            let before = conn.count::<Item>()?;
            conn.begin_transaction()?;
            conn.save(&item("ghost", 0))?;
            assert_eq!(
                conn.count::<Item>()?,
                before + 1,
                "visible inside the transaction"
            );
            conn.rollback_transaction()?;
            assert_eq!(conn.count::<Item>()?, before, "rolled back");
            conn.begin_transaction()?;
            conn.save(&item("kept", 0))?;
            conn.commit_transaction()?;
            let mut other = db.sync_connection()?;
            assert_eq!(other.count::<Item>()?, before + 1, "committed");

            // Rows affected.
            let (rows, affected) = conn.execute_with_count(
                "UPDATE [sync_items] SET [qty] = [qty] + 1 WHERE [qty] >= ?",
                params![10],
                &QueryOptions::default(),
            )?;
            assert!(rows.is_empty());
            assert_eq!(affected, 3, "crate, drill and anvil (25)");
            Ok(())
        },
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "sync_stock")]
struct Stock {
    id: Option<String>,
    quantity: i64,
    #[entity(version)]
    version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "sync_orders")]
struct Order {
    id: Option<String>,
    stock_id: String,
}

/// Pessimistic, in blocking code: lock the stock row, check, write, in one transaction.
#[auto_transaction]
fn order_with_row_lock(conn: &mut SyncConnection, stock_id: &str) -> dal::Result<bool> {
    let mut stock: Stock = conn
        .get_for_update(stock_id)?
        .ok_or_else(|| Error::Entity("no stock".into()))?;
    if stock.quantity == 0 {
        return Ok(false);
    }
    stock.quantity -= 1;
    conn.save(&stock)?;
    conn.save(&Order {
        id: None,
        stock_id: stock_id.to_owned(),
    })?;
    Ok(true)
}

const THREADS: usize = 8;
const IN_STOCK: i64 = 5;

#[test]
fn stale_versions_conflict_and_row_locks_never_oversell_from_threads() {
    each_backend_blocking(
        "sync_versions",
        |c| {
            c.pool_size(1, THREADS + 1)
                .connection_acquisition_timeout(Duration::from_secs(30))
        },
        |_backend, db| {
            let mut conn = db.sync_connection()?;
            reset_entity(&mut conn, "sync_stock")?;
            reset_entity(&mut conn, "sync_orders")?;

            // A stale typed save: Error::Conflict, nothing written.
            let a = conn.save(&Stock {
                id: None,
                quantity: 5,
                version: 0,
            })?;
            assert_eq!(a.version, 1);
            let b = conn.save(&Stock {
                quantity: 4,
                ..a.clone()
            })?;
            assert_eq!(b.version, 2);
            let e = conn
                .save(&Stock {
                    quantity: 1,
                    ..a.clone()
                })
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
            let a_id = a.id.clone().unwrap();
            assert_eq!(conn.get::<Stock>(&a_id)?, Some(b.clone()));
            assert_eq!(conn.history::<Stock>(&a_id)?.len(), 2);
            // Dynamic: expect_version in SaveOptions.
            let e = conn
                .save_entity_with(
                    "sync_stock",
                    json!({"id": a_id, "quantity": 0}),
                    SaveOptions::default().expect_version(1),
                )
                .unwrap_err();
            assert!(matches!(e, Error::Conflict { actual: 2, .. }), "{e}");
            assert_eq!(conn.get::<Stock>(&a_id)?.unwrap().quantity, 4);

            // The orders table exists before the rush (on MySQL, creating a table inside a
            // transaction commits it).
            let setup = conn.save(&Order {
                id: None,
                stock_id: "setup".into(),
            })?;
            conn.delete_with::<Order>(setup.id.unwrap(), DeleteOptions::default().permanent())?;
            conn.save(&Stock {
                id: Some("widget".into()),
                quantity: IN_STOCK,
                version: 0,
            })?;
            drop(conn);

            // THREADS plain threads order at once, each on its own blocking connection.
            let barrier = Arc::new(Barrier::new(THREADS));
            let threads: Vec<_> = (0..THREADS)
                .map(|_| {
                    let db = db.clone();
                    let barrier = barrier.clone();
                    std::thread::spawn(move || -> dal::Result<bool> {
                        let mut conn = db.sync_connection()?;
                        barrier.wait();
                        order_with_row_lock(&mut conn, "widget")
                    })
                })
                .collect();
            let mut sold = 0;
            for t in threads {
                if t.join().expect("an order thread panicked")? {
                    sold += 1;
                }
            }
            let mut conn = db.sync_connection()?;
            let stock = conn.get::<Stock>("widget")?.unwrap();
            assert_eq!(sold, IN_STOCK as usize, "orders that reported success");
            assert_eq!(stock.quantity, 0, "stock left");
            assert_eq!(conn.count::<Order>()?, IN_STOCK, "orders stored");
            assert_eq!(stock.version, 1 + IN_STOCK, "one version per sale");
            Ok(())
        },
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "sync_timed_typed")]
struct Timed {
    id: Option<String>,
    n: i64,
}

/// Asserts that `r` is an operation timeout that took about `limit`.
fn assert_op_timeout<T: std::fmt::Debug>(
    what: &str,
    r: dal::Result<T>,
    started: Instant,
    limit: Duration,
) {
    let took = started.elapsed();
    let e = r.expect_err(what);
    assert_eq!(
        e.timeout_kind(),
        Some(TimeoutKind::Operation),
        "{what}: {e:?}"
    );
    assert!(
        took >= limit - Duration::from_millis(50) && took < limit + Duration::from_millis(2500),
        "{what} took {took:?}"
    );
}

#[test]
fn options_timeout_bounds_a_whole_blocked_operation_and_writes_nothing() {
    each_backend_blocking(
        "sync_timeouts",
        |c| c,
        |backend, db| {
            let mut setup = db.sync_connection()?;
            reset_entity(&mut setup, "sync_timed")?;
            reset_entity(&mut setup, "sync_timed_typed")?;
            setup.save_entity("sync_timed", json!({"id": "a", "n": 1}))?;
            setup.save(&Timed {
                id: Some("t".into()),
                n: 1,
            })?;
            setup.save(&Timed {
                id: Some("d".into()),
                n: 1,
            })?;
            assert!(setup.delete::<Timed>("d")?);
            drop(setup);

            // Another transaction holds the rows (SQLite: the database's write lock).
            let mut holder = db.sync_connection()?;
            holder.begin_transaction()?;
            holder.get_entity_for_update("sync_timed", "a")?.unwrap();
            holder.get_for_update::<Timed>("t")?.unwrap();
            holder
                .get_with::<Timed>("d", GetOptions::default().include_deleted().for_update())?
                .unwrap();

            let mut conn = db.sync_connection()?;
            let limit = Duration::from_millis(500);
            let at = Instant::now();
            let r = conn.save_entity_with(
                "sync_timed",
                json!({"id": "a", "n": 2}),
                SaveOptions::default().timeout(limit),
            );
            assert_op_timeout("save_entity_with", r, at, limit);
            let at = Instant::now();
            let r =
                conn.delete_entity_with("sync_timed", "a", DeleteOptions::default().timeout(limit));
            assert_op_timeout("delete_entity_with", r, at, limit);
            let at = Instant::now();
            let r = conn.save_with(
                &Timed {
                    id: Some("t".into()),
                    n: 2,
                },
                SaveOptions::default().timeout(limit).user_id("late"),
            );
            assert_op_timeout("save_with", r, at, limit);
            let at = Instant::now();
            let r = conn.save_all_with(
                &[Timed {
                    id: Some("t".into()),
                    n: 3,
                }],
                SaveOptions::default().timeout(limit),
            );
            assert_op_timeout("save_all_with", r, at, limit);
            let at = Instant::now();
            let r =
                conn.delete_with::<Timed>("t", DeleteOptions::default().permanent().timeout(limit));
            assert_op_timeout("delete_with", r, at, limit);
            let at = Instant::now();
            let r = conn.restore_with::<Timed>("d", RestoreOptions::default().timeout(limit));
            assert_op_timeout("restore_with", r, at, limit);
            if backend != Backend::Sqlite {
                // A locking read inside the caller's own transaction (on SQLite, beginning it
                // would already wait for the holder): the timeout ends the read, the transaction
                // stays the caller's to roll back.
                conn.begin_transaction()?;
                let at = Instant::now();
                let r =
                    conn.get_with::<Timed>("t", GetOptions::default().for_update().timeout(limit));
                assert_op_timeout("get_with(for_update)", r, at, limit);
                conn.rollback_transaction()?;
            }
            holder.commit_transaction()?;
            drop(holder);

            // Nothing was written, and the connection (or its replacement) works.
            assert_eq!(conn.get_entity("sync_timed", "a")?.unwrap()["n"], json!(1));
            assert_eq!(conn.get_entity_history("sync_timed", "a")?.len(), 1);
            assert_eq!(conn.get::<Timed>("t")?.unwrap().n, 1);
            assert_eq!(conn.history::<Timed>("t")?.len(), 1);
            assert!(conn.get::<Timed>("d")?.is_none(), "still deleted");
            assert_eq!(conn.history::<Timed>("d")?.len(), 2);

            // A generous bound changes nothing for a fast operation, on every options struct.
            let ample = Duration::from_secs(30);
            let saved = conn.save_entity_with(
                "sync_timed",
                json!({"id": "a", "n": 3}),
                SaveOptions::default().timeout(ample),
            )?;
            assert_eq!(saved["n"], json!(3));
            assert_eq!(
                conn.get_entity_with("sync_timed", "a", GetOptions::default().timeout(ample))?
                    .unwrap()["n"],
                json!(3)
            );
            assert_eq!(
                conn.find_entities("sync_timed", FindOptions::default().timeout(ample))?
                    .len(),
                1
            );
            assert_eq!(
                conn.count_entities("sync_timed", FindOptions::default().timeout(ample))?,
                1
            );
            assert_eq!(
                conn.count_with::<Timed>(FindOptions::default().timeout(ample))?,
                1
            );
            assert_eq!(
                conn.find_with::<Timed>(FindOptions::default().timeout(ample))?
                    .len(),
                1
            );
            assert!(conn.restore_with::<Timed>("d", RestoreOptions::default().timeout(ample))?);
            assert!(conn.delete_with::<Timed>("d", DeleteOptions::default().timeout(ample))?);
            assert!(conn
                .get_with::<Timed>("d", GetOptions::default().include_deleted().timeout(ample))?
                .is_some());
            // The bound ends with the operation: a plain statement afterwards has its own limit.
            let rows = conn.execute(&common::slow_sql(backend, 1), ())?;
            assert_eq!(rows.len(), 1);
            Ok(())
        },
    );
}
