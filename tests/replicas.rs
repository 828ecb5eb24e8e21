//! Replicated clusters: a private PostgreSQL primary with a streaming standby, and a private
//! MariaDB primary with a GTID replica (`support/cluster.rs`), used through `dal` as a plain
//! client.
//!
//! Each test starts its own cluster on spare loopback ports and tears it down through the
//! cluster's Drop guard, also on failure. The shared services on 5432/3306 are never touched.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

#[path = "support/cluster.rs"]
mod cluster;

use std::time::{Duration, Instant};

use cluster::servers::{MY_PORTS, PG_PORTS};
use cluster::{MyCluster, PgCluster};
use dal::{params, Database, DatabaseConfig, RetryPolicy};

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
    assert_eq!(e.code(), Some("25006"), "{e}");

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
    assert_eq!(e.code(), Some("1290"), "{e}");

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
    assert_eq!(e.code(), Some("1792"), "{e}");
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
