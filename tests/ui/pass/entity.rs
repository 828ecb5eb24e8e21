//! `#[derive(Entity)]` with attributes, through the prelude and through full paths.

use dal::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[entity(table = "users")]
struct User {
    id: Option<String>,
    #[entity(index, rename = "full_name")]
    name: String,
    #[entity(default = 18)]
    age: i32,
    #[entity(unique)]
    #[serde(rename = "mail")]
    email: Option<String>,
    #[entity(json)]
    point: (f64, f64),
    tags: Vec<String>,
    #[entity(skip)]
    #[serde(skip)]
    cached: Option<u64>,
}

#[derive(dal::Entity, Serialize, Deserialize)]
struct AuditRecord {
    #[entity(id)]
    key: uuid::Uuid,
    at: chrono::DateTime<chrono::Utc>,
}

fn main() {
    assert_eq!(User::table_name(), "users");
    assert_eq!(User::fields().len(), 6);
    assert_eq!(User::fields()[1].column, "full_name");
    assert_eq!(
        <AuditRecord as dal::entity::Entity>::table_name(),
        "audit_record"
    );
    assert!(AuditRecord::fields()[0].id);
}
