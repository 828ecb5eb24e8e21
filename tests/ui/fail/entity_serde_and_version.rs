use std::collections::HashMap;

use dal::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
struct Versioned {
    id: Option<String>,
    #[entity(version, index, default = 1)]
    rev: i64,
    #[entity(version)]
    label: String,
}

#[derive(Entity, Serialize, Deserialize)]
struct Reserved {
    id: Option<String>,
    version: i64,
}

#[derive(Entity, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all(serialize = "camelCase"))]
struct Tagged {
    id: Option<String>,
    #[serde(rename(serialize = "a", deserialize = "b"))]
    split: String,
    #[serde(flatten)]
    extra: HashMap<String, String>,
    #[serde(skip)]
    #[entity(index)]
    cache: Option<String>,
}

#[derive(Entity, Serialize, Deserialize)]
#[serde(transparent)]
struct Wrapper {
    inner: String,
}

fn main() {}
