//! Typed entities: a struct is a table, with schema, history and soft delete for free.
//!
//! `cargo run --example typed_entities` runs on embedded SQLite (in memory); set
//! `DAL_EXAMPLE_URL` to a `postgres://…` or `mysql://…` URL to run it on a server. It uses the
//! entity `example_typed_users`, whose tables are dropped at the start, so every run prints the
//! same thing. The generated id is printed as `<uuid>`, save times as `<now>`.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use dal::prelude::*;
use serde::{Deserialize, Serialize};

/// A type the database does not know: stored through serde as `"#rrggbb"` text inside JSON.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Color(u8, u8, u8);

mod color_hex {
    use super::Color;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(c: &Color, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Color, D::Error> {
        let s = String::deserialize(d)?;
        let byte = |i: usize| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| serde::de::Error::custom(format!("not a #rrggbb color: {s}")))
        };
        Ok(Color(byte(1)?, byte(3)?, byte(5)?))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Entity)]
#[entity(table = "example_typed_users")]
struct User {
    id: Option<String>,
    name: String,
    #[entity(index)]
    age: i32,
    #[entity(unique)]
    email: String,
    #[entity(default = "basic")]
    plan: Option<String>,
    signed_up: DateTime<Utc>,
    tags: Vec<String>,
    #[serde(with = "color_hex")]
    #[entity(json)]
    favourite_color: Color,
}

/// `user` as `{:?}` prints it, with the generated id replaced by a label.
fn show(user: &User) -> String {
    let labelled = User {
        id: user.id.as_ref().map(|_| "<uuid>".to_owned()),
        ..user.clone()
    };
    format!("{labelled:?}")
}

/// The dynamic view of an entity, with the generated id and the save times replaced by labels.
fn stable(entity: &Map<String, JsonValue>) -> String {
    let mut e = entity.clone();
    for (key, label) in [
        ("id", "<uuid>"),
        ("created_at", "<now>"),
        ("updated_at", "<now>"),
        ("deleted_at", "<now>"),
    ] {
        if let Some(v) = e.get_mut(key).filter(|v| !v.is_null()) {
            *v = json!(label);
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
    for table in [
        "example_typed_users",
        "example_typed_users_meta",
        "example_typed_users_history",
    ] {
        conn.execute(&format!("DROP TABLE IF EXISTS [{table}]"), ())
            .await?;
    }

    let signed_up = Utc
        .with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
        .single()
        .ok_or_else(|| Error::Internal("bad date".into()))?;
    let ann = conn
        .save(&User {
            id: None,
            name: "Ann".into(),
            age: 34,
            email: "ann@example.com".into(),
            plan: None, // the declared default applies
            signed_up,
            tags: vec!["admin".into()],
            favourite_color: Color(255, 128, 0),
        })
        .await?;
    let id = ann.id.clone().unwrap_or_default();
    println!("saved {}", show(&ann));

    // Update: save the struct again (same id) with a comment for the history.
    let older = User {
        age: 35,
        ..ann.clone()
    };
    conn.save_with(
        &older,
        SaveOptions::default().user_id("ann").comment("birthday"),
    )
    .await?;

    // A unique constraint violation is a clear error.
    let dup = User {
        id: None,
        ..ann.clone()
    };
    match conn.save(&dup).await {
        Err(e) if e.is_unique_violation() => println!("duplicate email refused: {e}"),
        other => println!("unexpected: {other:?}"),
    }

    let adults: Vec<User> = conn
        .find::<User>()
        .filter("[age] >= ?", params![18])
        .order_by("[name]")
        .await?;
    println!("{} adult(s)", adults.len());

    // Typed and dynamic are the same rows.
    if let Some(raw) = conn.get_entity("example_typed_users", &id).await? {
        println!("dynamic view: {}", stable(&raw));
    }

    for v in conn.history::<User>(&id).await? {
        println!(
            "v{} {:?} {:?}: age {}",
            v.version, v.user_id, v.comment, v.entity.age
        );
    }

    conn.delete::<User>(&id).await?;
    println!(
        "after soft delete: {:?}",
        conn.get::<User>(&id).await?.map(|u| u.name)
    );
    conn.restore::<User>(&id).await?;
    println!(
        "after restore: {:?}",
        conn.get::<User>(&id).await?.map(|u| u.name)
    );

    drop(conn);
    PoolManager::close_pool(Some(db.hash()), Duration::from_secs(5)).await?;
    Ok(())
}
