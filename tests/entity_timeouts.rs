//! `.timeout()` on entity operations bounds the whole operation: a save blocked on a row lock
//! ends with `TimeoutKind::Operation` near its deadline, writes nothing, and leaves the
//! connection usable; slow entity operations are logged. Every backend.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::time::{Duration, Instant};

use common::logs::Captured;
use common::{each_backend, each_backend_with, reset_entity};
use dal::prelude::*;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, dal::Entity)]
#[entity(table = "timed_typed")]
struct Timed {
    id: Option<String>,
    n: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_blocked_on_a_lock_times_out_as_a_whole_and_writes_nothing() {
    each_backend("entity_timeout", |db| async move {
        let mut setup = db.async_connection().await?;
        reset_entity(&mut setup, "timed").await?;
        reset_entity(&mut setup, "timed_typed").await?;
        setup
            .save_entity("timed", json!({"id": "a", "n": 1}))
            .await?;
        setup
            .save(&Timed {
                id: Some("t".into()),
                n: 1,
            })
            .await?;
        drop(setup);

        // Another transaction holds the row (SQLite: the database's write lock).
        let mut holder = db.async_connection().await?;
        holder.begin_transaction().await?;
        holder.get_entity("timed", "a").for_update().await?;
        holder.get::<Timed>("t").for_update().await?;

        let mut conn = db.async_connection().await?;
        let limit = Duration::from_millis(500);
        let start = Instant::now();
        let e = conn
            .save_entity("timed", json!({"id": "a", "n": 2}))
            .timeout(limit)
            .await
            .expect_err("the save must not get through the lock");
        let took = start.elapsed();
        assert_eq!(e.timeout_kind(), Some(TimeoutKind::Operation), "{e:?}");
        assert!(
            took >= Duration::from_millis(450) && took < limit + Duration::from_millis(2500),
            "took {took:?}"
        );
        // The typed API too.
        let start = Instant::now();
        let e = conn
            .save(&Timed {
                id: Some("t".into()),
                n: 2,
            })
            .timeout(limit)
            .await
            .expect_err("the typed save must not get through the lock");
        assert_eq!(e.timeout_kind(), Some(TimeoutKind::Operation), "{e:?}");
        assert!(start.elapsed() < limit + Duration::from_millis(2500));
        holder.commit_transaction().await?;
        drop(holder);

        // Nothing was written, and the connection (or its replacement) works.
        let got = conn.get_entity("timed", "a").await?.unwrap();
        assert_eq!(got["n"], 1, "{got:?}");
        assert_eq!(conn.get_entity_history("timed", "a").await?.len(), 1);
        assert_eq!(conn.get::<Timed>("t").await?.unwrap().n, 1);
        // A generous bound changes nothing for a fast operation.
        let saved = conn
            .save_entity("timed", json!({"id": "a", "n": 3}))
            .timeout(Duration::from_secs(30))
            .await?;
        assert_eq!(saved["n"], 3);
        assert_eq!(
            conn.count::<Timed>()
                .timeout(Duration::from_secs(30))
                .await?,
            1
        );
        // The bound ends with the operation: a plain statement afterwards has its own limit.
        conn.execute("SELECT 1 AS [one]", ()).await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn slow_entity_operations_are_logged() {
    let logs = Captured::default();
    let _guard = logs.install(tracing::Level::WARN);
    each_backend_with(
        "entity_slow_log",
        |c| c.slow_query_threshold(Duration::ZERO),
        |db| {
            let logs = logs.clone();
            async move {
                let mut conn = db.async_connection().await?;
                reset_entity(&mut conn, "slow_logged").await?;
                conn.save_entity("slow_logged", json!({"id": "x"})).await?;
                let lines: Vec<String> = logs
                    .lines_with("slow entity operation")
                    .into_iter()
                    .filter(|l| l.contains("slow_logged") && l.contains(db.config().get_alias()))
                    .collect();
                assert!(
                    lines.iter().any(|l| l.contains("operation=\"save_entity\"")
                        || l.contains("operation=save_entity")),
                    "{lines:#?}"
                );
                Ok(())
            }
        },
    )
    .await;
}
