//! Replicated clusters: a private PostgreSQL primary with a streaming standby, and a private
//! MariaDB primary with a GTID replica (`support/cluster.rs`), used through `dal` as a plain
//! client.
//!
//! Each test starts its own cluster on spare loopback ports and tears it down through the
//! cluster's Drop guard, also on failure. The shared services on 5432/3306 are never touched.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

#[path = "support/cluster.rs"]
mod cluster;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::servers::{MY_PORTS, PG_PORTS};
use cluster::{MyCluster, PgCluster, Replicated};
use dal::prelude::json;
use dal::{params, Backend, Database, DatabaseConfig, Error, ReadYourWrites, RetryPolicy, Role};

/// A database for `url` with a pool of its own (`alias`), failing at once instead of retrying.
fn db(url: &str, alias: &str) -> Database {
    let config = DatabaseConfig::from_url(url)
        .unwrap()
        .alias(alias)
        .retry_policy(RetryPolicy::none())
        .connection_creation_timeout(Duration::from_secs(5));
    let backend = config.backend().unwrap();
    Database::new(backend, config)
}

/// The ids in the test table, in order.
async fn ids(db: &Database) -> dal::Result<Vec<i64>> {
    let mut conn = db.async_connection().await?;
    conn.execute("SELECT id FROM harness ORDER BY id", ())
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>("id"))
        .collect()
}

/// The number of rows in the test table.
async fn count(db: &Database) -> dal::Result<i64> {
    let mut conn = db.async_connection().await?;
    conn.execute("SELECT COUNT(*) AS n FROM harness", ())
        .await?[0]
        .try_get::<i64, _>("n")
}

async fn insert(db: &Database, id: i64) -> dal::Result<()> {
    let mut conn = db.async_connection().await?;
    conn.execute(
        "INSERT INTO harness (id, note) VALUES (?, ?)",
        params![id, format!("row {id}")],
    )
    .await?;
    Ok(())
}

/// The error of connecting to `url`, which must fail.
async fn connect_error(url: &str, alias: &str) -> dal::Error {
    let db = db(url, alias);
    let e = match db.async_connection().await {
        Ok(_) => panic!("{alias}: connected to {url}, but the server should be down"),
        Err(e) => e,
    };
    let _ = db.close(Duration::from_secs(1)).await;
    e
}

async fn close(dbs: &[&Database]) {
    for db in dbs {
        let _ = db.close(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_cluster_harness() {
    let started = Instant::now();
    let c = PgCluster::start();
    println!("PgCluster::start took {:?}", started.elapsed());
    assert!(PG_PORTS.contains(&c.primary_port()) && PG_PORTS.contains(&c.standby_port()));
    assert_ne!(c.primary_port(), c.standby_port());
    assert_eq!(c.psql(c.primary_port(), "SELECT pg_is_in_recovery()"), "f");
    assert_eq!(c.psql(c.standby_port(), "SELECT pg_is_in_recovery()"), "t");
    assert_eq!(
        c.psql(c.standby_port(), "SELECT current_database()"),
        "dal_test"
    );

    // A row written on the primary shows on the standby once replayed.
    let primary = db(&c.primary_url(), "pg-harness-primary");
    let standby = db(&c.standby_url(), "pg-harness-standby");
    primary
        .async_connection()
        .await
        .unwrap()
        .execute(
            "CREATE TABLE harness (id BIGINT PRIMARY KEY, note TEXT NOT NULL)",
            (),
        )
        .await
        .unwrap();
    insert(&primary, 1).await.unwrap();
    c.wait_replayed();
    assert_eq!(ids(&standby).await.unwrap(), [1]);
    assert_eq!(
        c.psql(c.standby_port(), "SELECT note FROM harness"),
        "row 1"
    );

    // The standby refuses writes: read-only transaction.
    let e = insert(&standby, 99).await.unwrap_err();
    assert!(
        matches!(e, dal::Error::ReadOnly(_)) && e.to_string().contains("[25006]"),
        "{e}"
    );

    // Replay paused: the WAL arrives, the row does not show until replay resumes.
    c.pause_replay();
    insert(&primary, 2).await.unwrap();
    c.wait_received();
    assert_eq!(count(&standby).await.unwrap(), 1);
    c.resume_replay();
    c.wait_replayed();
    assert_eq!(ids(&standby).await.unwrap(), [1, 2]);

    // Standby stopped: connecting fails (its pool's connections too); started again: it
    // works and catches up with what it missed.
    c.stop_standby();
    let e = connect_error(&c.standby_url(), "pg-harness-standby-down").await;
    assert!(e.is_infrastructure(), "{e:?}");
    assert!(count(&standby).await.is_err());
    insert(&primary, 3).await.unwrap();
    c.start_standby();
    let standby = db(&c.standby_url(), "pg-harness-standby-restarted");
    c.wait_replayed();
    assert_eq!(ids(&standby).await.unwrap(), [1, 2, 3]);

    // Failover: the primary stops cleanly, the standby is promoted, accepts writes and has
    // every row written before.
    insert(&primary, 4).await.unwrap();
    c.stop_primary();
    let e = connect_error(&c.primary_url(), "pg-harness-primary-down").await;
    assert!(e.is_infrastructure(), "{e:?}");
    c.promote_standby();
    assert_eq!(c.psql(c.standby_port(), "SELECT pg_is_in_recovery()"), "f");
    let promoted = db(&c.standby_url(), "pg-harness-promoted");
    insert(&promoted, 5).await.unwrap();
    assert_eq!(ids(&promoted).await.unwrap(), [1, 2, 3, 4, 5]);

    close(&[&primary, &standby, &promoted]).await;
    let stopping = Instant::now();
    drop(c);
    println!("PgCluster::drop took {:?}", stopping.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_cluster_harness() {
    let started = Instant::now();
    let c = MyCluster::start();
    println!("MyCluster::start took {:?}", started.elapsed());
    assert!(MY_PORTS.contains(&c.primary_port()) && MY_PORTS.contains(&c.replica_port()));
    assert_ne!(c.primary_port(), c.replica_port());
    assert_eq!(
        c.sql(c.primary_port(), "SELECT @@server_id, @@read_only"),
        "1\t0"
    );
    assert_eq!(
        c.sql(c.replica_port(), "SELECT @@server_id, @@read_only"),
        "2\t1"
    );

    // A row written on the primary shows on the replica once applied.
    let primary = db(&c.primary_url(), "my-harness-primary");
    let replica = db(&c.replica_url(), "my-harness-replica");
    primary
        .async_connection()
        .await
        .unwrap()
        .execute(
            "CREATE TABLE harness (id BIGINT PRIMARY KEY, note VARCHAR(100) NOT NULL)",
            (),
        )
        .await
        .unwrap();
    insert(&primary, 1).await.unwrap();
    c.wait_replayed();
    assert_eq!(ids(&replica).await.unwrap(), [1]);
    assert_eq!(c.sql(c.replica_port(), "SELECT note FROM harness"), "row 1");

    // read_only=1 stops the `dal` user's writes on the replica.
    let e = insert(&replica, 99).await.unwrap_err();
    assert!(
        matches!(e, dal::Error::ReadOnly(_)) && e.to_string().contains("[1290]"),
        "{e}"
    );

    // What the `dal` user (no SUPER) sees of replication through dal, whose statements are
    // server-side prepared: SHOW SLAVE STATUS prepares and answers one row by column name.
    let mut conn = replica.async_connection().await.unwrap();
    let prepared = || {
        c.sql(
            c.replica_port(),
            "SHOW GLOBAL STATUS LIKE 'Com_stmt_prepare'",
        )
    };
    let before = prepared();
    let status = conn.execute("SHOW SLAVE STATUS", ()).await.unwrap();
    assert_ne!(prepared(), before, "SHOW SLAVE STATUS was not prepared");
    assert_eq!(status.len(), 1);
    let column = |name: &str| status[0].try_get::<String, _>(name).unwrap();
    assert_eq!(column("Slave_IO_Running"), "Yes");
    assert_eq!(column("Slave_SQL_Running"), "Yes");
    assert_eq!(column("Using_Gtid"), "Slave_Pos");
    let pos = c.sql(c.primary_port(), "SELECT @@gtid_binlog_pos");
    assert_eq!(column("Gtid_IO_Pos"), pos);
    assert_eq!(
        status[0]
            .try_get::<i64, _>("Seconds_Behind_Master")
            .unwrap(),
        0
    );
    // MASTER_GTID_WAIT(pos, 0) answers at once: 0 when the replica has applied `pos`, -1 when
    // not; with a timeout it waits that long for a position it does not reach.
    let wait = "SELECT MASTER_GTID_WAIT(?, ?) AS w";
    let (domain_server, seq) = pos.rsplit_once('-').unwrap();
    let ahead = format!("{domain_server}-{}", seq.parse::<u64>().unwrap() + 1);
    for (gtid, timeout, expect) in [(&pos, 0.0, 0), (&ahead, 0.0, -1), (&ahead, 0.2, -1)] {
        let start = Instant::now();
        let rows = conn
            .execute(wait, params![gtid.clone(), timeout])
            .await
            .unwrap();
        assert_eq!(
            rows[0].try_get::<i64, _>("w").unwrap(),
            expect,
            "{gtid} {timeout}"
        );
        let took = start.elapsed().as_secs_f64();
        assert!(
            took >= timeout && took < timeout + 0.5,
            "{gtid} {timeout}: {took}"
        );
    }
    let rows = conn
        .execute("SELECT @@gtid_slave_pos AS s, @@gtid_current_pos AS c", ())
        .await
        .unwrap();
    assert_eq!(rows[0].try_get::<String, _>("s").unwrap(), pos);
    assert_eq!(rows[0].try_get::<String, _>("c").unwrap(), pos);
    drop(conn);

    // SET SESSION TRANSACTION READ ONLY makes the session's writes fail with 1792.
    let session_ro = db(&c.primary_url(), "my-harness-session-ro");
    let mut conn = session_ro.async_connection().await.unwrap();
    conn.execute("SET SESSION TRANSACTION READ ONLY", ())
        .await
        .unwrap();
    let e = conn
        .execute(
            "INSERT INTO harness (id, note) VALUES (?, ?)",
            params![98, "x"],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, dal::Error::ReadOnly(_)) && e.to_string().contains("[1792]"),
        "{e}"
    );
    assert!(e.to_string().contains("READ ONLY transaction"), "{e}");
    conn.execute("SET SESSION TRANSACTION READ WRITE", ())
        .await
        .unwrap();
    drop(conn);
    close(&[&session_ro]).await;

    // SQL thread stopped: the events arrive, the row does not show until it runs again.
    c.stop_replica_sql();
    insert(&primary, 2).await.unwrap();
    c.wait_received();
    assert_eq!(count(&replica).await.unwrap(), 1);
    c.start_replica_sql();
    c.wait_replayed();
    assert_eq!(ids(&replica).await.unwrap(), [1, 2]);

    // Replica stopped: connecting fails; started again: it works and catches up.
    c.stop_replica();
    let e = connect_error(&c.replica_url(), "my-harness-replica-down").await;
    assert!(e.is_infrastructure(), "{e:?}");
    assert!(count(&replica).await.is_err());
    insert(&primary, 3).await.unwrap();
    c.start_replica();
    let replica = db(&c.replica_url(), "my-harness-replica-restarted");
    c.wait_replayed();
    assert_eq!(ids(&replica).await.unwrap(), [1, 2, 3]);

    // Failover: the primary stops cleanly, the replica is promoted, accepts the `dal` user's
    // writes and has every row written before.
    insert(&primary, 4).await.unwrap();
    c.stop_primary();
    let e = connect_error(&c.primary_url(), "my-harness-primary-down").await;
    assert!(e.is_infrastructure(), "{e:?}");
    c.promote_replica();
    assert_eq!(c.sql(c.replica_port(), "SELECT @@read_only"), "0");
    assert!(c.replica_status().is_empty());
    let promoted = db(&c.replica_url(), "my-harness-promoted");
    insert(&promoted, 5).await.unwrap();
    assert_eq!(ids(&promoted).await.unwrap(), [1, 2, 3, 4, 5]);

    close(&[&primary, &replica, &promoted]).await;
    let stopping = Instant::now();
    drop(c);
    println!("MyCluster::drop took {:?}", stopping.elapsed());
}
// ---------------------------------------------------------------------------------------------
// Read replicas, read-your-writes and failover through dal, on both clusters (through
// `cluster::Replicated`, which the replicas benchmark uses too).

fn truthy(row: &dal::Row, col: &str) -> bool {
    match row.get(col) {
        Some(dal::Value::Bool(b)) => *b,
        Some(dal::Value::Int(i)) => *i != 0,
        other => panic!("column {col}: {other:?}"),
    }
}

async fn on_replica(conn: &mut dal::Connection, c: &dyn Replicated) -> bool {
    let rows = conn.execute(c.is_replica_sql(), ()).await.unwrap();
    truthy(&rows[0], "r")
}

/// A database with the cluster's replica, its own alias.
fn with_replica(c: &dyn Replicated, alias: &str) -> Database {
    let (host, port) = c.replica_host_port();
    let cfg = DatabaseConfig::from_url(&c.primary_url())
        .unwrap()
        .alias(alias)
        .replica(host, port);
    Database::new(c.backend(), cfg)
}

/// A typed entity read back on a read connection.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, dal::Entity)]
#[entity(table = "rep_items")]
struct Item {
    id: Option<String>,
    name: String,
    qty: i64,
}

/// A blocking cluster operation, off the runtime's threads.
async fn ctl(c: &Arc<dyn Replicated>, op: fn(&dyn Replicated)) {
    let c = c.clone();
    tokio::task::spawn_blocking(move || op(c.as_ref()))
        .await
        .unwrap();
}

/// Routing and read-only: reads on the replica, writes on the primary, a write on a read
/// connection refused by dal and by the server, entity reads on a read connection.
async fn routing_and_read_only(c: &Arc<dyn Replicated>) {
    let db = with_replica(c.as_ref(), "rep-routing");
    let mut w = db.async_connection().await.unwrap();
    assert_eq!(w.role(), Role::Primary);
    assert!(
        !on_replica(&mut w, c.as_ref()).await,
        "async_connection is not on the primary"
    );
    w.execute(
        "CREATE TABLE [kv] ([k] INTEGER PRIMARY KEY, [v] INTEGER)",
        (),
    )
    .await
    .unwrap();
    w.execute("INSERT INTO [kv] ([k], [v]) VALUES (1, 0)", ())
        .await
        .unwrap();
    w.save_entity("rep_users", json!({"id": "u1", "name": "Ada"}))
        .await
        .unwrap();
    w.save_entity("rep_users", json!({"id": "u1", "name": "Ada L."}))
        .await
        .unwrap();
    let item = w
        .save(&Item {
            id: Some("i1".into()),
            name: "bolt".into(),
            qty: 3,
        })
        .await
        .unwrap();
    drop(w);
    ctl(c, |c| c.wait_replayed()).await;

    let mut r = db.read_connection().await.unwrap();
    // Typed reads on it.
    assert_eq!(r.get::<Item>("i1").await.unwrap(), Some(item.clone()));
    assert_eq!(r.find::<Item>().await.unwrap(), vec![item.clone()]);
    assert_eq!(r.count::<Item>().await.unwrap(), 1);
    assert_eq!(r.history::<Item>("i1").await.unwrap().len(), 1);
    let e = r.save(&item).await.unwrap_err();
    assert!(matches!(e, Error::ReadOnly(_)), "{e:?}");
    assert_eq!(
        r.role(),
        Role::Replica,
        "a caught-up replica serves the read"
    );
    assert!(r.is_read_only());
    assert!(
        on_replica(&mut r, c.as_ref()).await,
        "read_connection is not on the replica"
    );
    // Refused by dal before sending.
    let e = r
        .execute("UPDATE [kv] SET [v] = 99 WHERE [k] = 1", ())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ReadOnly(_)), "{e:?}");
    // A write dal cannot see in the text: refused by the server's read-only session.
    let sneaky = match c.backend() {
        Backend::Postgres => "SELECT txid_current() AS [x]",
        _ => "SELECT GET_LOCK('dal', 0) AS [x] FROM [kv] WHERE 1 = 0",
    };
    if c.backend() == Backend::Postgres {
        let e = r.execute(sneaky, ()).await.unwrap_err();
        assert!(matches!(e, Error::ReadOnly(_)), "{e:?}");
    }
    let e = r
        .save_entity("rep_users", json!({"id": "u2", "name": "Bob"}))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ReadOnly(_)), "{e:?}");
    // Entity reads work on it.
    let got = r.get_entity("rep_users", "u1").await.unwrap().unwrap();
    assert_eq!(got["name"], "Ada L.");
    assert_eq!(r.count_entities("rep_users").await.unwrap(), 1);
    assert_eq!(r.find_entities("rep_users").await.unwrap().len(), 1);
    assert_eq!(
        r.get_entity_history("rep_users", "u1").await.unwrap().len(),
        2
    );
    drop(r);
    // Nothing changed on the primary.
    let mut w = db.async_connection().await.unwrap();
    let rows = w
        .execute("SELECT [v] FROM [kv] WHERE [k] = 1", ())
        .await
        .unwrap();
    assert_eq!(rows[0].try_get::<i64, _>("v").unwrap(), 0);
    assert!(w.get_entity("rep_users", "u2").await.unwrap().is_none());
    drop(w);

    // The blocking twin.
    let sync_db = db.clone();
    // A plain thread: the blocking API refuses to run inside a runtime.
    let role = std::thread::spawn(move || {
        let mut r = sync_db.sync_read_connection().unwrap();
        let e = r.execute("DELETE FROM [kv]", ()).unwrap_err();
        assert!(matches!(e, Error::ReadOnly(_)), "{e:?}");
        r.role()
    })
    .join()
    .unwrap();
    assert_eq!(role, Role::Replica);

    let t = db.topology();
    assert_eq!(t.replicas.len(), 1);
    assert!(t.replicas[0].routed_reads >= 1);
    let m = dal::PoolManager::all_pool_metrics();
    assert!(
        m.iter().any(|m| m.alias.starts_with("rep-routing@replica")
            && m.role == "replica"
            && m.routed_reads >= 1
            && m.in_rotation),
        "replica pool metrics: {m:?}"
    );
    let text = dal::PoolManager::prometheus_text();
    assert!(
        text.contains("dal_replica_in_rotation{alias=\"rep-routing@replica"),
        "{text}"
    );
    db.close(Duration::from_secs(5)).await.unwrap();
}

/// 1 000 times: write through the handle, read it back through a read connection, while the
/// replica lags: never stale, and served by the primary meanwhile.
async fn read_your_writes_under_lag(c: &Arc<dyn Replicated>) {
    let db = with_replica(c.as_ref(), "rep-ryw");
    ctl(c, |c| c.lag_on()).await;
    let mut w = db.async_connection().await.unwrap();
    let mut from_primary = 0;
    for i in 1..=1000_i64 {
        w.execute("UPDATE [kv] SET [v] = ? WHERE [k] = 1", dal::params![i])
            .await
            .unwrap();
        let mut r = db.read_connection().await.unwrap();
        let rows = r
            .execute("SELECT [v] FROM [kv] WHERE [k] = 1", ())
            .await
            .unwrap();
        assert_eq!(
            rows[0].try_get::<i64, _>("v").unwrap(),
            i,
            "stale read at iteration {i} (role {:?})",
            r.role()
        );
        if r.role() == Role::Primary {
            from_primary += 1;
        }
    }
    assert_eq!(
        from_primary, 1000,
        "the lagging replica served a read after a write"
    );
    drop(w);
    // The other modes, replica still lagging: a window sends reads after a write to the
    // primary; off lets the replica serve them, stale.
    for (mode, alias) in [
        (
            ReadYourWrites::Window(Duration::from_secs(60)),
            "rep-window",
        ),
        (ReadYourWrites::Off, "rep-off"),
    ] {
        let (host, port) = c.replica_host_port();
        let cfg = DatabaseConfig::from_url(&c.primary_url())
            .unwrap()
            .alias(alias)
            .replica(host, port)
            .read_your_writes(mode);
        let db = Database::new(c.backend(), cfg);
        let mut w = db.async_connection().await.unwrap();
        w.execute("UPDATE [kv] SET [v] = [v] + 1 WHERE [k] = 1", ())
            .await
            .unwrap();
        drop(w);
        let mut r = db.read_connection().await.unwrap();
        let v: i64 = r
            .execute("SELECT [v] FROM [kv] WHERE [k] = 1", ())
            .await
            .unwrap()[0]
            .try_get("v")
            .unwrap();
        if mode == ReadYourWrites::Off {
            assert_eq!(r.role(), Role::Replica, "{mode:?}");
            assert!(v < 1001, "{mode:?}: the lagging replica cannot have {v}");
        } else {
            assert_eq!(r.role(), Role::Primary, "{mode:?}");
            assert_eq!(v, 1001, "{mode:?}");
        }
        drop(r);
        // Put it back for the cases that follow.
        let mut w = db.async_connection().await.unwrap();
        w.execute("UPDATE [kv] SET [v] = 1000 WHERE [k] = 1", ())
            .await
            .unwrap();
        drop(w);
        db.close(Duration::from_secs(5)).await.unwrap();
    }
    ctl(c, |c| c.lag_off()).await;
    ctl(c, |c| c.wait_replayed()).await;
    // Caught up: the replica serves again, and sees the last write.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut r = db.read_connection().await.unwrap();
        let rows = r
            .execute("SELECT [v] FROM [kv] WHERE [k] = 1", ())
            .await
            .unwrap();
        assert_eq!(rows[0].try_get::<i64, _>("v").unwrap(), 1000);
        if r.role() == Role::Replica {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never came back after catching up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    db.close(Duration::from_secs(5)).await.unwrap();
}

/// The replica stops: reads go on from the primary; it starts again: back in rotation.
async fn replica_down_and_back(c: &Arc<dyn Replicated>) {
    let db = with_replica(c.as_ref(), "rep-down");
    // Warm the replica pool.
    let mut r = db.read_connection().await.unwrap();
    r.execute("SELECT [v] FROM [kv] WHERE [k] = 1", ())
        .await
        .unwrap();
    assert_eq!(r.role(), Role::Replica);
    drop(r);
    ctl(c, |c| c.stop_replica()).await;
    for i in 0..50 {
        let mut r = db
            .read_connection()
            .await
            .unwrap_or_else(|e| panic!("read connection {i} with the replica down: {e}"));
        let rows = r
            .execute("SELECT [v] FROM [kv] WHERE [k] = 1", ())
            .await
            .unwrap_or_else(|e| panic!("read {i} with the replica down: {e}"));
        assert_eq!(rows[0].try_get::<i64, _>("v").unwrap(), 1000);
        assert_eq!(r.role(), Role::Primary, "read {i}");
    }
    let t = db.topology();
    assert!(!t.replicas[0].in_rotation, "{t:?}");
    ctl(c, |c| c.start_replica()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut r = db.read_connection().await.unwrap();
        r.execute("SELECT [v] FROM [kv] WHERE [k] = 1", ())
            .await
            .unwrap();
        if r.role() == Role::Replica {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica did not return to rotation: {:?}",
            db.topology()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(db.topology().replicas[0].in_rotation);
    db.close(Duration::from_secs(5)).await.unwrap();
}

/// Stop the primary and promote the replica while 8 tasks write through a host list: writes
/// resume within 10 s of the promotion, and every acknowledged write is on the new primary.
async fn failover_under_writes(c: &Arc<dyn Replicated>) {
    let url = c.url_with_hosts("target_session_attrs=read-write&alias=rep-failover");
    let db = Database::from_url(&url).unwrap();
    {
        let mut w = db.async_connection().await.unwrap();
        assert!(!on_replica(&mut w, c.as_ref()).await);
        w.execute(
            "CREATE TABLE [acked] ([id] INTEGER PRIMARY KEY, [task] INTEGER)",
            (),
        )
        .await
        .unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let promoted_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let resumed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for task in 0..8_i64 {
        let db = db.clone();
        let stop = stop.clone();
        let promoted_at = promoted_at.clone();
        let resumed = resumed.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut first_after: Option<Duration> = None;
            let mut n = 0_i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let id = task * 1_000_000 + n;
                let ok = async {
                    let mut conn = db.async_connection().await?;
                    conn.execute(
                        "INSERT INTO [acked] ([id], [task]) VALUES (?, ?)",
                        dal::params![id, task],
                    )
                    .await
                }
                .await
                .is_ok();
                if ok {
                    acked.push(id);
                    let p = *promoted_at.lock().unwrap();
                    if let (Some(p), None) = (p, first_after) {
                        first_after = Some(p.elapsed());
                        resumed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            (acked, first_after)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopping = Instant::now();
    ctl(c, |c| c.stop_primary()).await;
    ctl(c, |c| c.promote()).await;
    let outage = stopping.elapsed();
    *promoted_at.lock().unwrap() = Some(Instant::now());
    // Every task writes again within 10 s of the promotion.
    let promoted = Instant::now();
    while resumed.load(std::sync::atomic::Ordering::Relaxed) < 8
        && promoted.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut all = Vec::new();
    let mut slowest = Duration::ZERO;
    for t in tasks {
        let (acked, first_after) = t.await.unwrap();
        let resumed = first_after.expect("a writer never wrote again after the promotion");
        assert!(
            resumed < Duration::from_secs(10),
            "a writer resumed {resumed:?} after the promotion"
        );
        slowest = slowest.max(resumed);
        all.extend(acked);
    }
    eprintln!(
        "{}: primary stopped and replica promoted in {outage:?}; every writer resumed \
         within {slowest:?} of the promotion",
        c.backend().as_str()
    );
    assert!(
        all.len() > 100,
        "too few writes acknowledged: {}",
        all.len()
    );
    // Every acknowledged write is on the new primary (the old replica).
    let (host, port) = c.replica_host_port();
    let cfg = DatabaseConfig::from_url(&c.primary_url())
        .unwrap()
        .host(host)
        .port(port)
        .alias("rep-check");
    let check = Database::new(c.backend(), cfg);
    let mut conn = check.async_connection().await.unwrap();
    assert!(
        !on_replica(&mut conn, c.as_ref()).await,
        "the promoted node is still read-only"
    );
    let rows = conn.execute("SELECT [id] FROM [acked]", ()).await.unwrap();
    let stored: std::collections::HashSet<i64> = rows
        .iter()
        .map(|r| r.try_get::<i64, _>("id").unwrap())
        .collect();
    let missing: Vec<&i64> = all.iter().filter(|id| !stored.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged writes lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    eprintln!(
        "{}: {} writes acknowledged, all on the new primary",
        c.backend().as_str(),
        all.len()
    );
}

/// A replica lagging more than `max_replica_lag` (or not replicating) leaves rotation, with
/// its lag shown, and comes back once it has caught up.
async fn lagging_replica_leaves_rotation(c: &Arc<dyn Replicated>) {
    let (host, port) = c.replica_host_port();
    let cfg = DatabaseConfig::from_url(&c.primary_url())
        .unwrap()
        .alias("rep-lag")
        .replica(host, port)
        .read_your_writes(ReadYourWrites::Off)
        .max_replica_lag(Duration::from_secs(1));
    let db = Database::new(c.backend(), cfg);
    // In rotation, lag measured and small.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = db.read_connection().await.unwrap();
        drop(r);
        let t = db.topology();
        if let Some(lag) = t.replicas[0].lag {
            assert!(lag < Duration::from_secs(1), "{t:?}");
            assert!(t.replicas[0].in_rotation, "{t:?}");
            break;
        }
        assert!(Instant::now() < deadline, "lag never measured: {t:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = dal::PoolManager::prometheus_text();
    assert!(
        text.contains("dal_replica_lag_seconds{alias=\"rep-lag@replica"),
        "{text}"
    );
    ctl(c, |c| c.lag_on()).await;
    // Keep writing so the replica falls behind; it leaves rotation.
    let mut w = db.async_connection().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        w.execute("UPDATE [kv] SET [v] = [v] WHERE [k] = 1", ())
            .await
            .unwrap();
        let r = db.read_connection().await.unwrap();
        let role = r.role();
        drop(r);
        let t = db.topology();
        if !t.replicas[0].in_rotation {
            let why = t.replicas[0].out_reason.clone().unwrap_or_default();
            assert!(
                why.contains("lagging") || why.contains("not replicating"),
                "{t:?}"
            );
            // Out of rotation: reads go to the primary even without read-your-writes.
            let r = db.read_connection().await.unwrap();
            assert_eq!(r.role(), Role::Primary);
            break;
        }
        assert_eq!(role, Role::Replica);
        assert!(
            Instant::now() < deadline,
            "the lagging replica stayed in rotation: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(w);
    let m = dal::PoolManager::all_pool_metrics();
    assert!(
        m.iter()
            .any(|m| m.alias.starts_with("rep-lag@replica") && !m.in_rotation),
        "{m:?}"
    );
    ctl(c, |c| c.lag_off()).await;
    ctl(c, |c| c.wait_replayed()).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = db.read_connection().await.unwrap();
        if r.role() == Role::Replica {
            break;
        }
        drop(r);
        assert!(
            Instant::now() < deadline,
            "the replica did not return after catching up: {:?}",
            db.topology()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    db.close(Duration::from_secs(5)).await.unwrap();
}

/// A primary made read-only while connections to it are pooled (a demotion): the next write is
/// `Error::ReadOnly` (nothing written), the pool drops its connections to it and, finding no
/// writable server, says so; once a server accepts writes again, writes go through without
/// a restart.
async fn demoted_primary_is_left(c: &Arc<dyn Replicated>) {
    let url = c.url_with_hosts("target_session_attrs=read-write&alias=rep-demote");
    let db = Database::from_url(&url).unwrap();
    let mut w = db.async_connection().await.unwrap();
    w.execute("CREATE TABLE [demo] ([id] INTEGER PRIMARY KEY)", ())
        .await
        .unwrap();
    w.execute("INSERT INTO [demo] ([id]) VALUES (1)", ())
        .await
        .unwrap();
    drop(w);
    ctl(c, |c| c.set_primary_read_only(true)).await;
    // The server applies the change at its next command: poll with a deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut id = 1;
    let refused = loop {
        id += 1;
        let mut w = db.async_connection().await.unwrap();
        match w
            .execute("INSERT INTO [demo] ([id]) VALUES (?)", dal::params![id])
            .await
        {
            Ok(_) => {}
            Err(e) => break e,
        }
        assert!(
            Instant::now() < deadline,
            "the primary never became read-only"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(matches!(refused, Error::ReadOnly(_)), "{refused:?}");
    assert!(refused.to_string().contains("demoted"), "{refused}");
    // No writable server now: the pool does not lend its old connection, it looks again.
    let e = db.async_connection().await.unwrap_err();
    assert!(
        e.to_string()
            .contains("no server accepts read-write sessions"),
        "{e}"
    );
    ctl(c, |c| c.set_primary_read_only(false)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = async {
            let mut w = db.async_connection().await?;
            w.execute("INSERT INTO [demo] ([id]) VALUES (?)", dal::params![1000])
                .await
        }
        .await;
        if ok.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "writes did not resume: {ok:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The refused insert left nothing.
    let mut w = db.async_connection().await.unwrap();
    let rows = w
        .execute("SELECT [id] FROM [demo] WHERE [id] = ?", dal::params![id])
        .await
        .unwrap();
    assert!(rows.is_empty(), "a write refused as read-only was stored");
    drop(w);
    db.close(Duration::from_secs(5)).await.unwrap();
}

async fn replica_cases(c: Arc<dyn Replicated>) {
    routing_and_read_only(&c).await;
    read_your_writes_under_lag(&c).await;
    lagging_replica_leaves_rotation(&c).await;
    replica_down_and_back(&c).await;
    demoted_primary_is_left(&c).await;
    failover_under_writes(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_replicas_read_your_writes_and_failover() {
    let c = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    replica_cases(Arc::new(c)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_replicas_read_your_writes_and_failover() {
    let c = tokio::task::spawn_blocking(MyCluster::start).await.unwrap();
    replica_cases(Arc::new(c)).await;
}
