//! The seed's "Entity Usage Examples", on embedded SQLite (or `DAL_EXAMPLE_URL`):
//! `cargo run --example entities`.

use std::time::Duration;

use chrono::{Duration as Days, Utc};
use dal::prelude::*;

#[tokio::main]
async fn main() -> dal::Result<()> {
    let url = std::env::var("DAL_EXAMPLE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    let db = Database::from_url(&url)?;
    let mut conn = db.async_connection().await?;

    // Save an entity (creates the tables automatically).
    let user = conn
        .save_entity(
            "users",
            json!({
                "name": "John Doe",
                "email": "john@example.com",
                "preferences": {"theme": "dark", "language": "en"},  // objects are stored as JSON
                "created_date": Utc::now(),                            // timestamps as timestamps
                "status": "active",
            }),
        )
        .await?;
    let id = user["id"].as_str().unwrap_or_default().to_owned();
    println!("saved:     {}", json!(user));

    // Get it back by id: values come back typed (numbers as numbers, objects as objects).
    let retrieved = conn.get_entity("users", &id).await?;
    println!("retrieved: {}", json!(retrieved));

    // Query with a filter (portable SQL), order and limit.
    let active_users = conn
        .find_entities("users")
        .filter(
            "[status] = ? AND [created_date] > ?",
            params!["active", Utc::now() - Days::days(30)],
        )
        .order_by("[created_date] DESC")
        .limit(50)
        .await?;
    println!("active users this month: {}", active_users.len());

    // Update with history tracking: partial update, and a new field becomes a new column.
    conn.save_entity(
        "users",
        json!({"id": id, "name": "John Smith", "status": "premium", "tier": 2}),
    )
    .user_id("admin")
    .comment("Upgraded to premium")
    .await?;

    // View the complete history.
    for version in conn.get_entity_history("users", &id).await? {
        println!(
            "v{} by {} ({}): name={} status={}",
            version["version"],
            version["history_user_id"],
            version["history_comment"],
            version["name"],
            version["status"]
        );
    }

    // Restore a previous version by saving it back.
    if let Some(old_version) = conn.get_entity_by_version("users", &id, 1).await? {
        conn.save_entity("users", old_version)
            .comment("restored v1")
            .await?;
    }
    println!(
        "after restore: {}",
        json!(conn.get_entity("users", &id).await?)
    );

    // Soft delete hides it; restore brings it back; history keeps everything.
    conn.delete_entity("users", &id).user_id("admin").await?;
    println!(
        "visible after delete: {}",
        conn.get_entity("users", &id).await?.is_some()
    );
    conn.restore_entity("users", &id).await?;
    println!(
        "visible after restore: {}",
        conn.get_entity("users", &id).await?.is_some()
    );

    // Batches: one multi-row statement per batch, not one per row.
    let batch: Vec<JsonValue> = (0..1000)
        .map(|i| json!({"name": format!("user {i}"), "age": 18 + i % 60}))
        .collect();
    conn.save_entities("users", batch).await?;
    let adults = conn
        .count_entities("users")
        .filter("[age] >= ?", params![21])
        .await?;
    println!("users aged 21+: {adults}");
    println!(
        "versions of {id}: {}",
        conn.get_entity_history("users", &id).await?.len()
    );

    drop(conn);
    PoolManager::close_pool(Some(db.hash()), Duration::from_secs(5)).await?;
    Ok(())
}
