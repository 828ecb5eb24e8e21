//! The `dal` binary, spawned as a user runs it, on SQLite (temp files), PostgreSQL and MariaDB
//! (`DAL_TEST_POSTGRES_URL` / `DAL_TEST_MYSQL_URL`, defaults the local services;
//! `DAL_TEST_BACKENDS=sqlite,postgres` narrows the run). Set-up and checks go through the
//! library's blocking API; every command under test runs in its own `dal` process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use assert_cmd::Command;
use dal::{Backend, Database, FindOptions, SyncConnection};
use serde_json::{json, Value as Json};

const PG_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/dal_test";
const MY_DEFAULT: &str = "mysql://root@127.0.0.1:3306/dal_test";

/// The backends this run covers (all three unless `DAL_TEST_BACKENDS` narrows it).
fn selected() -> Vec<Backend> {
    match std::env::var("DAL_TEST_BACKENDS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|s| Backend::from_name(s.trim()).expect("DAL_TEST_BACKENDS names a backend"))
            .collect(),
        _ => vec![Backend::Sqlite, Backend::Postgres, Backend::MySql],
    }
}

fn server_url(backend: Backend) -> String {
    match backend {
        Backend::Postgres => {
            std::env::var("DAL_TEST_POSTGRES_URL").unwrap_or_else(|_| PG_DEFAULT.into())
        }
        Backend::MySql => std::env::var("DAL_TEST_MYSQL_URL").unwrap_or_else(|_| MY_DEFAULT.into()),
        Backend::Sqlite => unreachable!("SQLite has no server"),
    }
}

/// `prefix_<8 hex>`: a name no other test (or run) uses.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// A database to run commands against: the shared test database of a server, or a fresh
/// database (SQLite: a new file in a temp dir) dropped when this is dropped.
struct Target {
    backend: Backend,
    url: String,
    /// Fresh server databases: (admin URL, database name) to drop at the end.
    drop: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Target {
    /// The shared `dal_test` database of `backend`; SQLite: a new temp file.
    fn shared(backend: Backend) -> Target {
        match backend {
            Backend::Sqlite => Target::fresh(backend),
            _ => Target {
                backend,
                url: server_url(backend),
                drop: None,
                _dir: None,
            },
        }
    }

    /// A new, empty database on `backend`'s server (SQLite: a new file).
    fn fresh(backend: Backend) -> Target {
        if backend == Backend::Sqlite {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
            return Target {
                backend,
                url,
                drop: None,
                _dir: Some(dir),
            };
        }
        let admin = server_url(backend);
        let name = unique("dal_cli");
        let db = Database::from_url(&admin).unwrap();
        db.sync_connection()
            .unwrap()
            .execute(&format!("CREATE DATABASE [{name}]"), ())
            .unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&name);
        Target {
            backend,
            url: url.to_string(),
            drop: Some((admin, name)),
            _dir: None,
        }
    }

    fn db(&self) -> Database {
        Database::from_url(&self.url).unwrap()
    }

    fn conn(&self) -> SyncConnection {
        self.db().sync_connection().unwrap()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.drop {
            let sql = match self.backend {
                Backend::Postgres => format!("DROP DATABASE IF EXISTS [{name}] WITH (FORCE)"),
                _ => format!("DROP DATABASE IF EXISTS [{name}]"),
            };
            if let Ok(db) = Database::from_url(admin) {
                if let Ok(mut c) = db.sync_connection() {
                    let _ = c.execute(&sql, ());
                }
            }
        }
    }
}

/// The `dal` binary with no database in its environment.
fn dal() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dal"));
    for var in [
        "DATABASE_URL",
        "DAL_PASSWORD_FILE",
        "PGPASSFILE",
        "RUST_BACKTRACE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `dal --json ARGS` against `url`, expects success, parses the one JSON document.
fn ok_json(url: &str, args: &[&str]) -> Json {
    let out = dal()
        .arg("--json")
        .arg("--url")
        .arg(url)
        .args(args)
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "dal {args:?} failed ({:?}): {stderr}",
        out.status.code()
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("dal {args:?}: not JSON ({e}): {stdout}"))
}

/// Runs `dal ARGS` (human output) against `url`, expects success, returns stdout.
fn ok_text(url: &str, args: &[&str]) -> String {
    let out = dal().arg("--url").arg(url).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "dal {args:?} failed ({:?}): {}",
        out.status.code(),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Expects `out` to have failed with `code` and a one-line-or-more `error: …` (or clap's usage
/// text) on stderr, no panic, no backtrace, nothing on stdout; returns stderr.
fn failed(out: &Output, code: i32) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(stderr.starts_with("error: "), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(!stderr.contains("backtrace"), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    stderr
}

/// Saves `n` entities `{"name": "item i", "n": i}` under `entity`; returns their ids.
fn seed(conn: &mut SyncConnection, entity: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let saved = conn
                .save_entity(entity, json!({"name": format!("item {i}"), "n": i}))
                .unwrap();
            saved["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn count(conn: &mut SyncConnection, entity: &str, deleted: bool) -> i64 {
    let opts = if deleted {
        FindOptions::default().include_deleted()
    } else {
        FindOptions::default()
    };
    conn.count_entities(entity, opts).unwrap()
}

/// Drops an entity's three tables when dropped, also when the test fails.
struct DropEntity(String, String);

impl DropEntity {
    fn new(target: &Target, entity: &str) -> Self {
        DropEntity(target.url.clone(), entity.to_owned())
    }
}

impl Drop for DropEntity {
    fn drop(&mut self) {
        let Ok(db) = Database::from_url(&self.0) else {
            return;
        };
        let Ok(mut conn) = db.sync_connection() else {
            return;
        };
        let entity = &self.1;
        for t in [
            entity.to_owned(),
            format!("{entity}_history"),
            format!("{entity}_meta"),
        ] {
            let _ = conn.execute(&format!("DROP TABLE IF EXISTS [{t}]"), ());
        }
    }
}

/// Runs `body` on every selected backend, failing with the names of those where it failed.
fn each_backend(test: &str, body: impl Fn(Backend) + std::panic::RefUnwindSafe) {
    let failures: Vec<String> = selected()
        .into_iter()
        .filter_map(|b| {
            std::panic::catch_unwind(|| body(b)).err().map(|e| {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                format!("{}: {msg}", b.as_str())
            })
        })
        .collect();
    assert!(failures.is_empty(), "{test} failed on: {failures:#?}");
}

fn entity_in<'a>(status: &'a Json, name: &str) -> &'a Json {
    status["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {status:#}"))
}

#[test]
fn status_shows_backend_server_pool_and_entity_counts() {
    each_backend("status", |backend| {
        let target = Target::shared(backend);
        let entity = unique("cli_status");
        let _drop = DropEntity::new(&target, &entity);
        let mut conn = target.conn();
        let ids = seed(&mut conn, &entity, 3);
        assert!(conn.delete_entity(&entity, &ids[0]).unwrap());

        let status = ok_json(&target.url, &["status"]);
        assert_eq!(status["backend"], backend.as_str(), "{status:#}");
        let product = status["server"]["product"].as_str().unwrap();
        let expected = match backend {
            Backend::Postgres => "PostgreSQL",
            Backend::MySql => "MariaDB",
            Backend::Sqlite => "SQLite",
        };
        assert_eq!(product, expected, "{status:#}");
        assert!(!status["server"]["version"].as_str().unwrap().is_empty());
        assert!(
            status["pool"]["max_size"].as_u64().unwrap() >= 1,
            "{status:#}"
        );
        assert!(
            status["pool"]["acquisitions"].as_u64().unwrap() >= 1,
            "{status:#}"
        );
        let e = entity_in(&status, &entity);
        assert_eq!(
            (e["rows"].as_i64(), e["deleted"].as_i64()),
            (Some(2), Some(1))
        );
        assert!(status["migrations"].is_array(), "{status:#}");
        assert!(status["pending"].is_null(), "{status:#}");

        let human = ok_text(&target.url, &["status"]);
        assert!(human.contains(expected), "{human}");
        let line = human
            .lines()
            .find(|l| l.contains(&entity))
            .unwrap_or_default();
        assert!(line.ends_with(" 2 rows, 1 deleted"), "{human}");
    });
}

/// A declared schema adds an index, a unique field and a NOT NULL field with a default and a
/// check to an entity that dynamic saves made: `plan` lists them, `apply` runs them (audit file
/// written), a second `plan` is empty and `status --schema` agrees. Dropping an undeclared
/// column is refused without `--allow-destructive`.
#[test]
fn migrate_plans_applies_and_then_has_nothing_to_do() {
    each_backend("migrate", |backend| {
        let target = Target::shared(backend);
        let entity = unique("cli_migrate");
        let _drop = DropEntity::new(&target, &entity);
        let mut conn = target.conn();
        let ids = seed(&mut conn, &entity, 2);

        let dir = tempfile::tempdir().unwrap();
        let schema = dir.path().join("schema.json");
        std::fs::write(
            &schema,
            json!([{
                "name": entity,
                "fields": [
                    {"name": "name", "type": "text", "index": true},
                    {"name": "n", "type": "int", "nullable": true},
                    {"name": "sku", "type": "text", "nullable": true, "unique": true},
                    {"name": "stock", "type": "int", "default": 0, "check": "[stock] >= 0"}
                ]
            }])
            .to_string(),
        )
        .unwrap();
        let schema_s = schema.to_str().unwrap();

        let plan = ok_json(&target.url, &["migrate", "plan", "--schema", schema_s]);
        assert_eq!(plan["backend"], backend.as_str(), "{plan:#}");
        let statements = plan["statements"].as_array().unwrap();
        assert!(!statements.is_empty(), "{plan:#}");
        let sql = statements
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(sql.contains("sku") && sql.contains("stock"), "{sql}");
        let human = ok_text(&target.url, &["migrate", "plan", "--schema", schema_s]);
        assert!(human.contains("sku"), "{human}");

        let audit = dir.path().join("audit");
        let applied = ok_json(
            &target.url,
            &[
                "migrate",
                "apply",
                "--schema",
                schema_s,
                "--audit-dir",
                audit.to_str().unwrap(),
            ],
        );
        assert_eq!(applied["checksum"], plan["checksum"], "{applied:#}");
        let audit_files = std::fs::read_dir(&audit).unwrap().count();
        assert_eq!(audit_files, 1);

        let again = ok_json(&target.url, &["migrate", "plan", "--schema", schema_s]);
        assert_eq!(again["statements"], json!([]), "{again:#}");
        let human = ok_text(&target.url, &["migrate", "apply", "--schema", schema_s]);
        assert!(human.contains("up to date"), "{human}");

        let status = ok_json(&target.url, &["status", "--schema", schema_s]);
        assert_eq!(status["pending"]["statements"], json!([]), "{status:#}");
        let applied_checksums: Vec<&Json> = status["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["checksum"])
            .collect();
        assert!(applied_checksums.contains(&&plan["checksum"]), "{status:#}");

        // Declaring the entity without `n` and asking to drop what is undeclared: destructive.
        std::fs::write(
            &schema,
            json!([{
                "name": entity,
                "fields": [
                    {"name": "name", "type": "text", "index": true},
                    {"name": "sku", "type": "text", "nullable": true, "unique": true},
                    {"name": "stock", "type": "int", "default": 0, "check": "[stock] >= 0"}
                ]
            }])
            .to_string(),
        )
        .unwrap();
        let out = dal()
            .args([
                "--url",
                &target.url,
                "migrate",
                "apply",
                "--schema",
                schema_s,
                "--drop-undeclared",
            ])
            .output()
            .unwrap();
        let stderr = failed(&out, 1);
        assert!(stderr.to_lowercase().contains("destructive"), "{stderr}");
        assert!(
            stderr.contains("--allow-destructive") || stderr.contains("allow_destructive"),
            "{stderr}"
        );
        let kept = conn.get_entity(&entity, &ids[1]).unwrap().unwrap();
        assert_eq!(kept["n"], 1, "nothing dropped: {kept:?}");
        ok_json(
            &target.url,
            &[
                "migrate",
                "apply",
                "--schema",
                schema_s,
                "--drop-undeclared",
                "--allow-destructive",
            ],
        );
        let plan = ok_json(
            &target.url,
            &["migrate", "plan", "--schema", schema_s, "--drop-undeclared"],
        );
        assert_eq!(plan["statements"], json!([]), "{plan:#}");
    });
}

/// The backup of one entity with history (an update and a soft delete), restored into a fresh
/// database of the same backend and into SQLite: same counts, same history. A second restore
/// into the now non-empty database is refused.
#[test]
fn backup_restores_into_a_fresh_database_and_refuses_a_non_empty_one() {
    each_backend("backup", |backend| {
        let source = Target::shared(backend);
        let entity = unique("cli_backup");
        let _drop = DropEntity::new(&source, &entity);
        let mut conn = source.conn();
        let ids = seed(&mut conn, &entity, 5);
        conn.save_entity(
            &entity,
            json!({"id": ids[1], "name": "renamed", "note": null}),
        )
        .unwrap();
        conn.delete_entity(&entity, &ids[2]).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let out_dir = dir.path().join("backup");
        let out_dir_s = out_dir.to_str().unwrap();
        // A native dump too on SQLite (VACUUM INTO, no tool needed; the servers' dumps would
        // copy the whole shared test database).
        let native = dir.path().join("native.db");
        let mut args = vec!["backup", out_dir_s, "--entities", &entity];
        if backend == Backend::Sqlite {
            args.extend(["--native", native.to_str().unwrap()]);
        }
        let backed = ok_json(&source.url, &args);
        assert!(out_dir.join("manifest.json").is_file(), "{backed:#}");
        let listed = &backed["manifest"]["entities"][0];
        assert_eq!(listed["name"], entity.as_str(), "{backed:#}");
        assert_eq!(listed["rows"]["count"], 5, "{backed:#}");
        assert_eq!(listed["history"]["count"], 7, "{backed:#}");
        if backend == Backend::Sqlite {
            assert_eq!(backed["native"], native.to_str().unwrap(), "{backed:#}");
            let dump = Database::from_url(&format!("sqlite://{}", native.display())).unwrap();
            let mut dump = dump.sync_connection().unwrap();
            assert_eq!(count(&mut dump, &entity, true), 5);
        }

        let target = Target::fresh(backend);
        ok_json(&target.url, &["restore", out_dir_s]);
        let mut restored = target.conn();
        assert_eq!(count(&mut restored, &entity, false), 4);
        assert_eq!(count(&mut restored, &entity, true), 5);
        let history = restored.get_entity_history(&entity, &ids[1]).unwrap();
        assert_eq!(history.len(), 2, "{history:?}");
        let got = restored.get_entity(&entity, &ids[1]).unwrap().unwrap();
        assert_eq!(got["name"], "renamed");

        // Into a database that already holds the entity: refused, nothing changed.
        let out = dal()
            .args(["--url", &target.url, "restore", out_dir_s])
            .output()
            .unwrap();
        let stderr = failed(&out, 1);
        assert!(stderr.contains("restore"), "{stderr}");
        assert_eq!(count(&mut restored, &entity, true), 5);
        drop(restored);

        // The same backup into SQLite: a backup is portable.
        if backend != Backend::Sqlite {
            let file = Target::fresh(Backend::Sqlite);
            ok_json(&file.url, &["restore", out_dir_s]);
            let mut restored = file.conn();
            assert_eq!(count(&mut restored, &entity, true), 5);
            let history = restored.get_entity_history(&entity, &ids[1]).unwrap();
            assert_eq!(history.len(), 2, "{history:?}");
        }
    });
}

#[test]
fn copy_moves_sqlite_entities_with_history_to_postgres() {
    if !selected().contains(&Backend::Postgres) {
        return;
    }
    let from = Target::fresh(Backend::Sqlite);
    let entity = unique("cli_copy");
    let (odd, left_out) = (format!("{entity}_odd"), format!("{entity}_left_out"));
    let mut src = from.conn();
    let ids = seed(&mut src, &entity, 30);
    src.save_entity(&entity, json!({"id": ids[0], "name": "v2"}))
        .unwrap();
    src.save_entity(&entity, json!({"id": ids[0], "name": "v3"}))
        .unwrap();
    let odd_value = json!({
        "Label": "Ünïcödé ☃ 'quoted' \"twice\"",
        "big": i64::MAX,
        "nothing": null,
        "ratio": -0.000_125,
    });
    let odd_id = src.save_entity(&odd, odd_value.clone()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    seed(&mut src, &left_out, 1);

    let to = Target::fresh(Backend::Postgres);
    let entities = format!("{entity},{odd}");
    let report = dal()
        .args(["--json", "copy", "--from", &from.url, "--to", &to.url])
        .args(["--entities", &entities, "--batch-size", "7"])
        .output()
        .unwrap();
    assert!(report.status.success(), "{}", text(&report.stderr));
    let report: Json = serde_json::from_slice(&report.stdout).unwrap();
    let copied: Vec<&Json> = report["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["name"])
        .collect();
    assert_eq!(copied.len(), 2, "{report:#}");

    let mut dst = to.conn();
    assert_eq!(count(&mut dst, &entity, true), 30);
    let history = dst.get_entity_history(&entity, &ids[0]).unwrap();
    let names: Vec<&Json> = history.iter().map(|h| &h["name"]).collect();
    assert_eq!(names, [&json!("item 0"), &json!("v2"), &json!("v3")]);
    assert_eq!(dst.get_entity(&entity, &ids[29]).unwrap().unwrap()["n"], 29);
    let got = dst.get_entity(&odd, &odd_id).unwrap().unwrap();
    for (k, v) in odd_value.as_object().unwrap() {
        assert_eq!(got.get(k).unwrap_or(&Json::Null), v, "{k} in {got:?}");
    }
    let status = ok_json(&to.url, &["status"]);
    let there: Vec<&str> = status["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(there, [entity.as_str(), odd.as_str()], "{status:#}");
    assert!(!there.contains(&left_out.as_str()));
}

/// Two entities changed after a point in time: `--id` rolls one back, then the whole kind
/// goes back (a row created after the point is soft-deleted).
#[test]
fn rollback_restores_the_state_at_a_timestamp() {
    each_backend("rollback", |backend| {
        let target = Target::shared(backend);
        let entity = unique("cli_rollback");
        let _drop = DropEntity::new(&target, &entity);
        let mut conn = target.conn();
        let ids = seed(&mut conn, &entity, 2);
        let at = chrono::Utc::now();
        // History timestamps have microseconds: make sure the next change is later than `at`.
        while chrono::Utc::now() <= at + chrono::Duration::milliseconds(2) {
            std::hint::spin_loop();
        }
        for id in &ids {
            conn.save_entity(&entity, json!({"id": id, "name": "changed"}))
                .unwrap();
        }
        let late = seed(&mut conn, &entity, 1).remove(0);
        let at_s = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);

        ok_json(
            &target.url,
            &[
                "rollback", "--entity", &entity, "--id", &ids[0], "--to", &at_s,
            ],
        );
        let name = |c: &mut SyncConnection, id: &str| {
            c.get_entity(&entity, id)
                .unwrap()
                .map(|e| e["name"].clone())
        };
        assert_eq!(name(&mut conn, &ids[0]), Some(json!("item 0")));
        assert_eq!(name(&mut conn, &ids[1]), Some(json!("changed")));

        // An id the entity never had: a failure, not "nothing to do".
        let out = dal()
            .args(["--url", &target.url, "rollback", "--entity", &entity])
            .args(["--id", "no-such-id", "--to", &at_s])
            .output()
            .unwrap();
        let stderr = failed(&out, 1);
        assert!(stderr.contains("no-such-id"), "{stderr}");

        // The same instant, written with an offset.
        let at_plus1 = at
            .with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap())
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
        let human = ok_text(
            &target.url,
            &["rollback", "--entity", &entity, "--to", &at_plus1],
        );
        assert!(!human.trim().is_empty());
        assert_eq!(name(&mut conn, &ids[1]), Some(json!("item 1")));
        assert_eq!(
            name(&mut conn, &late),
            None,
            "created after the timestamp: deleted"
        );
        let history = conn.get_entity_history(&entity, &ids[1]).unwrap();
        assert_eq!(
            history.len(),
            3,
            "the rollback is a new version: {history:?}"
        );
    });
}

#[test]
fn failures_exit_non_zero_with_a_clear_message() {
    // No URL anywhere.
    let out = dal().arg("status").output().unwrap();
    let stderr = failed(&out, 1);
    assert!(
        stderr.contains("DATABASE_URL") && stderr.contains("--url"),
        "{stderr}"
    );

    // A URL that is not one, and a backend nobody knows.
    let out = dal()
        .args(["status", "--url", "not a url"])
        .output()
        .unwrap();
    let stderr = failed(&out, 1);
    assert!(stderr.contains("not a database URL"), "{stderr}");
    let out = dal()
        .args(["status", "--url", "oracle://u@h/db"])
        .output()
        .unwrap();
    let stderr = failed(&out, 1);
    assert!(stderr.contains("oracle"), "{stderr}");

    // DATABASE_URL is read when --url is absent, and its password never shown.
    let port = refused_port();
    for scheme in ["postgres", "mysql"] {
        let url = format!("{scheme}://cli_user:Sup3rS3cretPw@127.0.0.1:{port}/nowhere");
        let out = dal()
            .env("DATABASE_URL", &url)
            .args(["--json", "status"])
            .output()
            .unwrap();
        let stderr = failed(&out, 1);
        assert!(!stderr.contains("Sup3rS3cretPw"), "{stderr}");
        assert!(
            stderr.contains("127.0.0.1") && stderr.contains("refused"),
            "{stderr}"
        );
        let out = dal()
            .args([
                "migrate",
                "plan",
                "--schema",
                "/nonexistent.json",
                "--url",
                &url,
            ])
            .output()
            .unwrap();
        let stderr = failed(&out, 1);
        assert!(!stderr.contains("Sup3rS3cretPw"), "{stderr}");
        assert!(stderr.contains("nonexistent.json"), "{stderr}");
    }

    // A server that refuses the password: its message, not the password.
    if selected().contains(&Backend::MySql) {
        let mut url = url::Url::parse(&server_url(Backend::MySql)).unwrap();
        url.set_password(Some("Wr0ngPassw0rd")).unwrap();
        let out = dal()
            .args(["status", "--url", url.as_str()])
            .output()
            .unwrap();
        let stderr = failed(&out, 1);
        assert!(!stderr.contains("Wr0ngPassw0rd"), "{stderr}");
        assert!(stderr.contains("Access denied"), "{stderr}");
    }

    // A bad --to is a usage error (exit 2) that says what is expected.
    let out = dal()
        .args([
            "--url",
            "sqlite::memory:",
            "rollback",
            "--entity",
            "users",
            "--to",
            "2026-11-01",
        ])
        .output()
        .unwrap();
    let stderr = failed(&out, 2);
    assert!(
        stderr.contains("--to") && stderr.contains("RFC 3339"),
        "{stderr}"
    );
    // As is --url on copy, which reads --from and writes --to.
    let out = dal()
        .args([
            "copy",
            "--url",
            "sqlite::memory:",
            "--from",
            "sqlite::memory:",
            "--to",
            "sqlite::memory:",
        ])
        .output()
        .unwrap();
    let stderr = failed(&out, 2);
    assert!(stderr.contains("--from"), "{stderr}");
    // As is an unknown command.
    failed(&dal().arg("frobnicate").output().unwrap(), 2);

    // A schema file that is not a schema.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("schema.json");
    std::fs::write(&bad, "{\"not\": \"an array\"}").unwrap();
    let out = dal()
        .args(["--url", "sqlite::memory:", "migrate", "plan", "--schema"])
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = failed(&out, 1);
    assert!(stderr.contains("schema.json"), "{stderr}");

    // Restoring from a directory that holds no backup.
    let out = dal()
        .args(["--url", "sqlite::memory:", "restore"])
        .arg(dir.path().join("missing"))
        .output()
        .unwrap();
    failed(&out, 1);
}

/// A loopback port with nothing listening on it.
fn refused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
