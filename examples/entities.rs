//! The entity walkthrough (the seed's "Entity Usage Examples"): save, get, find, partial
//! updates with history, optimistic locking, a locking read, restore, soft delete and batches.
//!
//! `cargo run --example entities` runs on embedded SQLite (in memory); set `DAL_EXAMPLE_URL` to
//! a `postgres://…` or `mysql://…` URL to run it on a server. It uses the entity
//! `example_users` (tables `example_users`, `example_users_meta`, `example_users_history`),
//! dropped at the start, so every run prints the same thing. Values that differ from run to run
//! (the generated id, the time of a save) are printed as `<uuid>` and `<now>`.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use dal::prelude::*;

const ENTITY: &str = "example_users";

/// The entity as JSON, with the generated id and the save times replaced by labels.
fn stable(entity: &Map<String, JsonValue>) -> String {
    let mut e = entity.clone();
    let label = |v: &mut JsonValue, text: &str| {
        if !v.is_null() {
            *v = json!(text);
        }
    };
    if let Some(v) = e.get_mut("id") {
        label(v, "<uuid>");
    }
    for key in ["created_at", "updated_at", "deleted_at"] {
        if let Some(v) = e.get_mut(key) {
            label(v, "<now>");
        }
    }
    JsonValue::Object(e).to_string()
}

#[tokio::main]
async fn main() -> dal::Result<()> {
    let url = std::env::var("DAL_EXAMPLE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    let db = Database::from_url(&url)?;
    let mut conn = db.async_connection().await?;

    // Start from nothing, so that every run is the same.
    for table in [ENTITY, "example_users_meta", "example_users_history"] {
        conn.execute(&format!("DROP TABLE IF EXISTS [{table}]"), ())
            .await?;
    }

    // Save an entity (creates the tables automatically).
    let user = conn
        .save_entity(
            ENTITY,
            json!({
                "name": "John Doe",
                "email": "john@example.com",
                "preferences": {"theme": "dark", "language": "en"},  // objects are stored as JSON
                "created_date": "2024-05-01T14:00:00.123456+02:00",  // RFC 3339: a timestamp (UTC)
                "status": "active",
            }),
        )
        .await?;
    let id = user["id"].as_str().unwrap_or_default().to_owned();
    println!("saved:     {}", stable(&user));

    // Get it back by id: values come back typed (numbers as numbers, objects as objects).
    if let Some(retrieved) = conn.get_entity(ENTITY, &id).await? {
        println!("retrieved: {}", stable(&retrieved));
    }

    // Query with a filter (portable SQL), order and limit.
    let since = Utc
        .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .ok_or_else(|| Error::Internal("bad date".into()))?;
    let active_users = conn
        .find_entities(ENTITY)
        .filter(
            "[status] = ? AND [created_date] > ?",
            params!["active", since],
        )
        .order_by("[created_date] DESC")
        .limit(50)
        .await?;
    println!("active users since 2024: {}", active_users.len());

    // Update with history tracking: partial update, and a new field becomes a new column.
    let updated = conn
        .save_entity(
            ENTITY,
            json!({"id": id, "name": "John Smith", "status": "premium", "tier": 2}),
        )
        .user_id("admin")
        .comment("Upgraded to premium")
        .await?;
    println!("updated:   {}", stable(&updated));

    // Optimistic locking: a save that expects a version the entity is no longer at writes
    // nothing and fails with Error::Conflict; read again, reapply, save with the new version.
    match conn
        .save_entity(ENTITY, json!({"id": id, "tier": 3}))
        .expect_version(1)
        .await
    {
        Err(Error::Conflict {
            expected, actual, ..
        }) => println!("stale save refused: expected version {expected}, stored {actual}"),
        other => println!("unexpected: {other:?}"),
    }
    let current = conn
        .get_entity(ENTITY, &id)
        .await?
        .and_then(|e| e["version"].as_i64())
        .unwrap_or(0);
    conn.save_entity(ENTITY, json!({"id": id, "tier": 3}))
        .expect_version(current)
        .comment("tier 3")
        .await?;

    // A locking read: the row stays locked until the transaction ends, so the read-check-write
    // below cannot lose a concurrent update. Outside a transaction it is an error.
    match conn.get_entity(ENTITY, &id).for_update().await {
        Err(Error::Transaction(_)) => println!("for_update outside a transaction: refused"),
        other => println!("unexpected: {other:?}"),
    }
    conn.begin_transaction().await?;
    if let Some(locked) = conn.get_entity(ENTITY, &id).for_update().await? {
        let tier = locked["tier"].as_i64().unwrap_or(0);
        conn.save_entity(ENTITY, json!({"id": id, "tier": tier + 1}))
            .comment("tier +1")
            .await?;
    }
    conn.commit_transaction().await?;

    // View the complete history.
    for version in conn.get_entity_history(ENTITY, &id).await? {
        println!(
            "v{} by {} ({}): name={} status={} tier={}",
            version["version"],
            version["history_user_id"],
            version["history_comment"],
            version["name"],
            version["status"],
            version["tier"]
        );
    }

    // Restore a previous version by saving it back.
    if let Some(old_version) = conn.get_entity_by_version(ENTITY, &id, 1).await? {
        conn.save_entity(ENTITY, old_version)
            .comment("restored v1")
            .await?;
    }
    if let Some(restored) = conn.get_entity(ENTITY, &id).await? {
        println!("after restore: {}", stable(&restored));
    }

    // Soft delete hides it; restore brings it back; history keeps everything.
    conn.delete_entity(ENTITY, &id).user_id("admin").await?;
    println!(
        "visible after delete: {}",
        conn.get_entity(ENTITY, &id).await?.is_some()
    );
    conn.restore_entity(ENTITY, &id).await?;
    println!(
        "visible after restore: {}",
        conn.get_entity(ENTITY, &id).await?.is_some()
    );

    // Batches: multi-row statements, not one statement per row. All or nothing.
    let batch: Vec<JsonValue> = (0..1000)
        .map(|i| json!({"name": format!("user {i}"), "age": 18 + i % 60}))
        .collect();
    conn.save_entities(ENTITY, batch).await?;
    let adults = conn
        .count_entities(ENTITY)
        .filter("[age] >= ?", params![21])
        .await?;
    println!("users aged 21+: {adults}");
    println!(
        "versions of John: {}",
        conn.get_entity_history(ENTITY, &id).await?.len()
    );

    drop(conn);
    PoolManager::close_pool(Some(db.hash()), Duration::from_secs(5)).await?;
    Ok(())
}
