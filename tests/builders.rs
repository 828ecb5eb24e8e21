//! Consistent builders and the seed's remaining API, on every backend: each option of each
//! entity builder has an observable effect (history rows, counts, reads), builders can be
//! stored and awaited later, `version_details()` parses the real servers' versions, and
//! `config.to_map()` shows every setting without ever showing the password.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

mod common;

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::time::Duration;

use common::{each_backend, reset_entity};
use dal::entity::{CountTyped, DeleteTyped};
use dal::prelude::*;
use dal::{BreakerConfig, RetryPolicy, SslMode, TargetSessionAttrs};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "bld_items")]
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

/// (version, user, comment) of every history row of an `Item`.
async fn audit_trail(
    conn: &mut Connection,
    id: &str,
) -> Vec<(i64, Option<String>, Option<String>)> {
    conn.history::<Item>(id)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.version, v.user_id, v.comment))
        .collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// Awaits any builder handed to it, as user code that receives an operation would.
async fn run_later<F: IntoFuture>(op: F) -> F::Output {
    op.await
}

/// A builder kept in a struct field until it is needed.
struct Pending<'c> {
    delete: DeleteTyped<'c, Item>,
}

#[tokio::test]
async fn every_builder_option_has_an_effect() {
    each_backend("builders_options", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "bld_items").await?;
        reset_entity(&mut conn, "bld_dyn").await?;
        // Odd but legal text: quotes, SQL comment markers, a tab, an emoji, 10 KB of non-ASCII.
        let odd = "it's \"odd\" */ -- ; DROP TABLE x; \t😀 ".to_owned() + &"ä".repeat(5_000);

        // save: user and comment in history (and created_by), expect_version.
        let a = conn
            .save(&item("anvil", 3))
            .user_id("ann")
            .comment("created")
            .await?;
        let a_id = a.id.clone().unwrap();
        assert_eq!(
            audit_trail(&mut conn, &a_id).await,
            [(1, s("ann"), s("created"))]
        );
        let dynamic = conn.get_entity("bld_items", &a_id).await?.unwrap();
        assert_eq!(dynamic["created_by"], json!("ann"));
        let stale = conn.save(&a).expect_version(7).await;
        assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
        // save_with takes the options struct; a chained method overrides it.
        conn.save_with(
            &a,
            SaveOptions::default().user_id("ann").comment("from struct"),
        )
        .comment(odd.as_str())
        .expect_version(1)
        .await?;
        assert_eq!(
            audit_trail(&mut conn, &a_id).await[1],
            (2, s("ann"), Some(odd.clone()))
        );

        // save_all: the batch's user and comment on every history row.
        let batch = conn
            .save_all(&[item("bolt", 10), item("crate", 20), item("drill", 30)])
            .user_id("bob")
            .comment("import #1")
            .await?;
        for it in &batch {
            let id = it.id.as_deref().unwrap();
            assert_eq!(
                audit_trail(&mut conn, id).await,
                [(1, s("bob"), s("import #1"))]
            );
        }
        // An empty comment is kept as given, not turned into "no comment".
        let e = conn.save_all(&[item("eel", 1)]).comment("").await?;
        let e_id = e[0].id.clone().unwrap();
        assert_eq!(audit_trail(&mut conn, &e_id).await, [(1, None, s(""))]);

        // count: all, filtered, with soft-deleted ones; count_with takes FindOptions.
        assert_eq!(conn.count::<Item>().await?, 5);
        assert_eq!(
            conn.count::<Item>()
                .filter("[qty] >= ?", params![10])
                .await?,
            3
        );
        assert_eq!(
            conn.count_with::<Item>(FindOptions::default().filter("[name] = ?", params!["bolt"]))
                .await?,
            1
        );
        assert_eq!(
            conn.count::<Item>()
                .filter("[name] = ?", params![odd.as_str()])
                .await?,
            0
        );

        // delete: user and comment in history, soft by default.
        let bolt = batch[0].id.clone().unwrap();
        assert!(
            conn.delete::<Item>(&bolt)
                .user_id("carol")
                .comment("discontinued")
                .await?
        );
        assert_eq!(
            audit_trail(&mut conn, &bolt).await.last().cloned(),
            Some((2, s("carol"), s("discontinued")))
        );
        assert_eq!(conn.count::<Item>().await?, 4);
        assert_eq!(conn.count::<Item>().include_deleted().await?, 5);
        assert_eq!(
            conn.count::<Item>()
                .filter("[qty] >= ?", params![10])
                .include_deleted()
                .await?,
            3
        );
        // get: include_deleted (builder and GetOptions).
        assert!(conn.get::<Item>(&bolt).await?.is_none());
        assert_eq!(
            conn.get::<Item>(&bolt)
                .include_deleted()
                .await?
                .map(|i| i.name),
            s("bolt")
        );
        assert!(conn
            .get_with::<Item>(&bolt, GetOptions::default().include_deleted())
            .await?
            .is_some());
        // get(..).for_update() needs a transaction, as get_for_update does.
        assert!(conn.get::<Item>(&a_id).for_update().await.is_err());
        conn.begin_transaction().await?;
        assert!(conn.get::<Item>(&a_id).for_update().await?.is_some());
        conn.rollback_transaction().await?;

        // restore: user and comment in history.
        assert!(
            conn.restore::<Item>(&bolt)
                .user_id("dave")
                .comment("back in stock")
                .await?
        );
        assert_eq!(
            audit_trail(&mut conn, &bolt).await.last().cloned(),
            Some((3, s("dave"), s("back in stock")))
        );
        assert!(!conn.restore::<Item>(&bolt).await?, "not deleted any more");
        assert!(conn
            .restore_with::<Item>(&bolt, RestoreOptions::default().comment("x"))
            .await
            .map(|restored| !restored)?);

        // delete_with + DeleteOptions builder methods: permanent, user and comment.
        let opts = DeleteOptions::default()
            .permanent()
            .user_id("erin")
            .comment("purged");
        assert!(conn.delete_with::<Item>(&bolt, opts).await?);
        assert_eq!(conn.count::<Item>().include_deleted().await?, 4);
        assert_eq!(
            audit_trail(&mut conn, &bolt).await.last().cloned(),
            Some((4, s("erin"), s("purged")))
        );

        // Dynamic delete_entity takes a comment too (soft and permanent); restore_entity too.
        let d = conn.save_entity("bld_dyn", json!({"n": 1})).await?;
        let d_id = d["id"].as_str().unwrap().to_owned();
        assert!(
            conn.delete_entity("bld_dyn", &d_id)
                .user_id("fay")
                .comment("soft, with a reason")
                .await?
        );
        conn.restore_entity("bld_dyn", &d_id)
            .comment("undo")
            .await?;
        assert!(
            conn.delete_entity("bld_dyn", &d_id)
                .permanent()
                .comment("gone for good")
                .await?
        );
        let h = conn.get_entity_history("bld_dyn", &d_id).await?;
        let trail: Vec<(JsonValue, JsonValue)> = h
            .iter()
            .map(|r| (r["history_user_id"].clone(), r["history_comment"].clone()))
            .collect();
        assert_eq!(
            trail,
            [
                (JsonValue::Null, JsonValue::Null),
                (json!("fay"), json!("soft, with a reason")),
                (JsonValue::Null, json!("undo")),
                (JsonValue::Null, json!("gone for good")),
            ]
        );
        assert!(conn
            .get_entity("bld_dyn", &d_id)
            .include_deleted()
            .await?
            .is_none());

        // Builders are values: stored, completed conditionally, handed on, awaited later.
        let only_large = true;
        let mut counting: CountTyped<'_, Item> = conn.count::<Item>();
        if only_large {
            counting = counting.filter("[qty] >= ?", params![20]);
        }
        assert_eq!(counting.await?, 2);
        assert_eq!(run_later(conn.count::<Item>().include_deleted()).await?, 4);
        let names: Vec<String> = tokio::time::timeout(
            Duration::from_secs(30),
            conn.find::<Item>().order_by("[name]").limit(2),
        )
        .await
        .expect("in time")?
        .into_iter()
        .map(|i| i.name)
        .collect();
        assert_eq!(names, ["anvil", "crate"]);
        let pending = Pending {
            delete: conn.delete::<Item>(&e_id).comment("stored in a struct"),
        };
        let boxed = pending.delete.into_future(); // a boxed Send future
        assert!(boxed.await?);
        assert_eq!(
            audit_trail(&mut conn, &e_id).await.last().cloned(),
            Some((2, None, s("stored in a struct")))
        );
        Ok(())
    })
    .await;
}

/// The sqlx version in the workspace's lock file.
fn locked_sqlx_version() -> String {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
        .expect("Cargo.lock");
    let at = lock
        .find("name = \"sqlx\"\nversion = \"")
        .expect("sqlx in Cargo.lock");
    let rest = &lock[at + "name = \"sqlx\"\nversion = \"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn version_details_parse_the_real_servers() {
    let driver = locked_sqlx_version();
    // The local servers (PostgreSQL 15, MariaDB 10.11) unless the run points elsewhere.
    let is_default = |var: &str, default: &str| std::env::var(var).map_or(true, |u| u == default);
    let default_urls = is_default("DAL_TEST_POSTGRES_URL", common::PG_DEFAULT)
        && is_default("DAL_TEST_MYSQL_URL", common::MY_DEFAULT);
    each_backend("builders_version", |db| {
        let driver = driver.clone();
        async move {
            let v = db.version_details().await?;
            let mut conn = db.async_connection().await?;
            assert_eq!(conn.version_details().await?, v);
            assert_eq!(v.backend, db.backend());
            assert_eq!((v.driver, v.driver_version), ("sqlx", driver.as_str()));
            assert_eq!(
                v.to_string(),
                format!("{} {} (sqlx {driver})", v.product, v.server_version)
            );
            // The numbers, worked out independently of dal's parser.
            match db.backend() {
                Backend::Postgres => {
                    let rows = conn
                        .execute(
                            "SELECT CAST(current_setting('server_version_num') AS INTEGER)",
                            (),
                        )
                        .await?;
                    let num: i64 = rows[0].try_get(0)?;
                    assert_eq!(v.product, "PostgreSQL");
                    assert_eq!(
                        (i64::from(v.version.0), i64::from(v.version.1)),
                        (num / 10_000, num % 10_000),
                        "{v:?}"
                    );
                    assert!(v
                        .server_version
                        .starts_with(&format!("{}.{}", v.version.0, v.version.1)));
                    if default_urls {
                        assert_eq!(v.version.0, 15, "{v:?}");
                    }
                }
                Backend::MySql => {
                    let rows = conn.execute("SELECT @@version", ()).await?;
                    let stated: String = rows[0].try_get(0)?;
                    assert_eq!(v.server_version, stated);
                    let nums: Vec<u32> = stated
                        .split(['.', '-'])
                        .take(3)
                        .map(|p| p.parse().unwrap())
                        .collect();
                    assert_eq!(v.version, (nums[0], nums[1], nums[2]));
                    let maria = stated.contains("MariaDB");
                    assert_eq!(v.product, if maria { "MariaDB" } else { "MySQL" });
                    if default_urls {
                        assert_eq!((v.product, v.version.0, v.version.1), ("MariaDB", 10, 11));
                    }
                }
                Backend::Sqlite => {
                    let rows = conn.execute("SELECT sqlite_version()", ()).await?;
                    let stated: String = rows[0].try_get(0)?;
                    assert_eq!(v.server_version, stated);
                    let nums: Vec<u32> = stated.split('.').map(|p| p.parse().unwrap()).collect();
                    assert_eq!(v.version, (nums[0], nums[1], nums[2]));
                    assert_eq!((v.product, v.version.0), ("SQLite", 3));
                }
            }
            Ok(())
        }
    })
    .await;
}

const PASSWORD: &str = "Pw-🔑-s3cr3t'\"*/ %40";
const REPLICA_PASSWORD: &str = "replica-only-p4ss";

/// Every setting changed from its default.
fn everything_set() -> DatabaseConfig {
    DatabaseConfig::new("shop")
        .host("db0")
        .user("app")
        .password(PASSWORD)
        .alias("main")
        .env("staging")
        .connection_acquisition_timeout(Duration::from_millis(1500))
        .pool_creation_timeout(Duration::from_secs(2))
        .query_execution_timeout(Duration::from_millis(250))
        .connection_creation_timeout(Duration::from_secs(3))
        .pool_size(2, 7)
        .expected_app_servers(3)
        .ssl_mode(SslMode::VerifyFull)
        .ssl_root_cert("/etc/ssl/ca.pem")
        .ssl_client_cert("client.pem", "client.key")
        .slow_query_threshold(Duration::from_millis(100))
        .log_parameter_values(true)
        .sql_comments(true)
        .schema_mode(dal::migrate::SchemaMode::Migrations)
        .retry_policy(
            RetryPolicy::default()
                .max_retries(5)
                .base_delay(Duration::from_millis(20))
                .max_delay(Duration::from_secs(4))
                .budget(Duration::from_secs(9)),
        )
        .circuit_breaker(
            BreakerConfig::default()
                .failure_rate(0.25)
                .minimum_calls(7)
                .failure_threshold(3)
                .failure_window(Duration::from_secs(5))
                .open_duration(Duration::from_millis(500))
                .max_open_duration(Duration::from_secs(8))
                .success_threshold(2)
                .half_open_calls(4),
        )
        .application_name("api")
        .pg_option("search_path", "my schema")
        .pg_option("statement_timeout", "5s")
        .charset("latin1")
        .hosts([("h1", Some(5433)), ("h2", None)])
        .target_session_attrs(TargetSessionAttrs::ReadWrite)
        .replica("r1", 5444)
        .replica_config(
            DatabaseConfig::new("shop")
                .host("r2")
                .port(5445)
                .password(REPLICA_PASSWORD),
        )
        .read_your_writes(ReadYourWrites::Window(Duration::from_millis(2500)))
        .max_replica_lag(Duration::from_secs(7))
}

fn assert_no_password(map: &BTreeMap<String, String>, secrets: &[&str]) {
    let debug = format!("{map:?}");
    for secret in secrets {
        assert!(!debug.contains(secret), "{secret:?} in {debug}");
        for (k, v) in map {
            assert!(!v.contains(secret) && !k.contains(secret), "{k} = {v}");
        }
    }
}

#[tokio::test]
async fn to_map_covers_every_setting_and_masks_the_password() {
    each_backend("builders_to_map", |db| async move {
        let backend = db.backend();
        // Every setting, each changed from its default, each shown.
        let full = Database::new(backend, everything_set());
        let map = full.config().to_map();
        let default_port = match backend {
            Backend::Postgres => "5432",
            Backend::MySql => "3306",
            Backend::Sqlite => "",
        };
        let hosts = if default_port.is_empty() {
            "h1:5433,h2".to_owned()
        } else {
            format!("h1:5433,h2:{default_port}")
        };
        let expected: BTreeMap<String, String> = [
            ("backend", backend.as_str()),
            ("database", "shop"),
            ("host", "h1"),
            ("port", "5433"),
            ("user", "app"),
            ("password", "***"),
            ("alias", "main"),
            ("env", "staging"),
            ("connection_acquisition_timeout", "1.5"),
            ("pool_creation_timeout", "2"),
            ("query_execution_timeout", "0.25"),
            ("connection_creation_timeout", "3"),
            ("pool_min", "2"),
            ("pool_max", "7"),
            ("expected_app_servers", "3"),
            ("ssl_mode", "verify-full"),
            ("ssl_root_cert", "/etc/ssl/ca.pem"),
            ("ssl_client_cert", "client.pem"),
            ("ssl_client_key", "client.key"),
            ("slow_query_threshold", "0.1"),
            ("log_parameter_values", "true"),
            ("sql_comments", "true"),
            ("schema_mode", "migrations"),
            ("retry_policy.max_retries", "5"),
            ("retry_policy.base_delay", "0.02"),
            ("retry_policy.max_delay", "4"),
            ("retry_policy.budget", "9"),
            ("circuit_breaker.enabled", "true"),
            ("circuit_breaker.failure_rate", "0.25"),
            ("circuit_breaker.minimum_calls", "7"),
            ("circuit_breaker.failure_threshold", "3"),
            ("circuit_breaker.failure_window", "5"),
            ("circuit_breaker.open_duration", "0.5"),
            ("circuit_breaker.max_open_duration", "8"),
            ("circuit_breaker.success_threshold", "2"),
            ("circuit_breaker.half_open_calls", "4"),
            ("application_name", "api"),
            (
                "pg_options",
                r"-c search_path=my\ schema -c statement_timeout=5s",
            ),
            ("charset", "latin1"),
            ("hosts", hosts.as_str()),
            ("target_session_attrs", "read-write"),
            ("replicas", "r1:5444,r2:5445"),
            ("read_your_writes", "2.5"),
            ("max_replica_lag", "7"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(map, expected);
        assert_no_password(&map, &[PASSWORD, REPLICA_PASSWORD, "s3cr3t"]);

        // Defaults in effect, for this backend.
        let bare = Database::new(backend, DatabaseConfig::new("plain"))
            .config()
            .to_map();
        assert_eq!(
            bare.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>()
        );
        let default_user = match backend {
            Backend::Postgres => "postgres",
            Backend::MySql => "root",
            Backend::Sqlite => "",
        };
        for (k, v) in [
            ("port", default_port),
            ("user", default_user),
            ("password", ""),
            ("alias", "plain"),
            ("host", "localhost"),
            ("env", "prod"),
            ("connection_acquisition_timeout", "10"),
            ("pool_creation_timeout", "30"),
            ("query_execution_timeout", "60"),
            ("connection_creation_timeout", "15"),
            ("pool_min", "1"),
            ("pool_max", "20"),
            ("expected_app_servers", ""),
            ("ssl_mode", "prefer"),
            ("ssl_root_cert", ""),
            ("slow_query_threshold", "2"),
            ("log_parameter_values", "false"),
            ("sql_comments", "false"),
            ("schema_mode", "auto"),
            ("application_name", "dal"),
            ("pg_options", ""),
            ("charset", "utf8mb4"),
            ("hosts", ""),
            ("replicas", ""),
            ("target_session_attrs", "any"),
            ("read_your_writes", "session"),
        ] {
            assert_eq!(bare[k], v, "{k}");
        }

        // An empty password is still a password: masked, and told apart from none.
        let empty = DatabaseConfig::new("x").password("").to_map();
        assert_eq!(empty["password"], "***");
        // A password given in a URL (percent-encoded) is masked in both spellings.
        let url = match backend {
            Backend::Postgres => "postgres://u:Url%40Secret%2F9@127.0.0.1:1/app",
            Backend::MySql => "mysql://u:Url%40Secret%2F9@127.0.0.1:1/app",
            Backend::Sqlite => "sqlite::memory:",
        };
        let from_url = DatabaseConfig::from_url(url)?.to_map();
        assert_no_password(&from_url, &["Url@Secret/9", "Url%40Secret%2F9", "Secret"]);
        if backend != Backend::Sqlite {
            assert_eq!(from_url["password"], "***");
        }

        // The live test configuration: what it connects with, as the getters say.
        let live = db.config().to_map();
        assert_eq!(live["backend"], backend.as_str());
        assert_eq!(live["database"], db.config().database());
        assert_eq!(live["alias"], db.config().get_alias());
        assert_eq!(live["host"], db.config().get_host());
        // Using the database does not change what the map shows.
        db.async_connection().await?.ping().await?;
        assert_eq!(db.config().to_map(), live);
        Ok(())
    })
    .await;
}
