//! Typed entities on every backend: round trip of every supported field type, evolution,
//! unique constraints, typed/dynamic interoperability, history, custom serde types.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

mod common;

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use common::{each_backend, reset_entity};
use dal::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Address {
    street: String,
    zip: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "typed_all")]
struct AllTypes {
    id: Option<String>,
    small: i16,
    int: i32,
    big: i64,
    unsigned: u32,
    ratio: f64,
    flag: bool,
    #[entity(index)]
    name: String,
    maybe: Option<String>,
    maybe_int: Option<i64>,
    at: DateTime<Utc>,
    day: NaiveDate,
    clock: NaiveTime,
    key: Uuid,
    tags: Vec<String>,
    attrs: HashMap<String, i64>,
    doc: serde_json::Value,
    address: Address,
    #[entity(rename = "display_name")]
    display: String,
}

fn sample() -> AllTypes {
    AllTypes {
        id: None,
        small: -7,
        int: 123_456,
        big: i64::MAX,
        unsigned: 4_000_000_000,
        ratio: 0.1,
        flag: true,
        name: "O'Brien \"the\" 😀".into(),
        maybe: None,
        maybe_int: Some(-1),
        at: Utc.with_ymd_and_hms(2024, 5, 1, 12, 30, 45).unwrap()
            + chrono::Duration::microseconds(123_456),
        day: NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
        clock: NaiveTime::from_hms_micro_opt(23, 59, 58, 500_000).unwrap(),
        key: Uuid::new_v4(),
        tags: vec!["a".into(), "b".into()],
        attrs: HashMap::from([("x".into(), 1), ("y".into(), 2)]),
        doc: json!({"nested": [1, {"k": null}]}),
        address: Address {
            street: "Main St".into(),
            zip: 12345,
        },
        display: "Shown".into(),
    }
}

#[tokio::test]
async fn every_supported_field_type_round_trips() {
    each_backend("typed_all", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "typed_all").await?;
        let original = sample();
        let saved = conn.save(&original).await?;
        let id = saved.id.clone().expect("id assigned");
        assert_eq!(
            AllTypes {
                id: None,
                ..saved.clone()
            },
            original
        );
        let got = conn.get::<AllTypes>(&id).await?.expect("found");
        assert_eq!(got, saved);
        // The rename is a real column name.
        let rows = conn
            .execute(
                "SELECT [display_name] FROM [typed_all] WHERE [id] = ?",
                params![id.as_str()],
            )
            .await?;
        assert_eq!(rows[0].try_get::<String, _>(0)?, "Shown");
        // Typed queries use the same builder as dynamic ones.
        let found = conn
            .find::<AllTypes>()
            .filter("[int] > ?", params![100])
            .order_by("[name]")
            .await?;
        assert_eq!(found, vec![saved.clone()]);
        assert_eq!(
            conn.count_with::<AllTypes>(FindOptions::default().filter("[flag] = ?", params![true]))
                .await?,
            1
        );
        Ok(())
    })
    .await;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "typed_evolve")]
struct PersonV1 {
    id: Option<String>,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "typed_evolve")]
struct PersonV2 {
    id: Option<String>,
    name: String,
    #[entity(default = 0)]
    age: i64,
    nickname: Option<String>,
}

#[tokio::test]
async fn a_struct_that_gains_a_field_evolves_the_table() {
    each_backend("typed_evolve", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "typed_evolve").await?;
        let v1 = conn
            .save(&PersonV1 {
                id: None,
                name: "Ann".into(),
            })
            .await?;
        let id = v1.id.clone().unwrap();
        // Reading an old row with the new struct: the new nullable field is None.
        let v2 = PersonV2 {
            id: Some(id.clone()),
            name: "Ann".into(),
            age: 41,
            nickname: None,
        };
        let saved = conn.save(&v2).await?;
        assert_eq!(saved, v2);
        let back: PersonV2 = conn.get(&id).await?.unwrap();
        assert_eq!(back.age, 41);
        // And the old struct still reads the row (unknown columns are ignored).
        let old: PersonV1 = conn.get(&id).await?.unwrap();
        assert_eq!(old.name, "Ann");
        Ok(())
    })
    .await;
}

/// The tests that use `typed_accounts` drop and recreate it: they take turns.
static ACCOUNTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "typed_accounts")]
struct Account {
    id: Option<String>,
    #[entity(unique)]
    email: String,
    balance: i64,
}

#[tokio::test]
async fn unique_constraint_violation_is_a_clear_error_and_writes_nothing() {
    let _turn = ACCOUNTS.lock().await;
    each_backend("typed_unique", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "typed_accounts").await?;
        conn.save(&Account {
            id: None,
            email: "a@x.io".into(),
            balance: 1,
        })
        .await?;
        let e = conn
            .save(&Account {
                id: None,
                email: "a@x.io".into(),
                balance: 2,
            })
            .await
            .unwrap_err();
        assert!(e.is_unique_violation(), "{e:?}");
        assert_eq!(conn.count::<Account>().await?, 1);
        let only = conn.find::<Account>().await?;
        assert_eq!(only[0].balance, 1, "the other account was not overwritten");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn typed_and_dynamic_share_rows_and_history() {
    let _turn = ACCOUNTS.lock().await;
    each_backend("typed_interop", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "typed_accounts").await?;
        let typed = conn
            .save(&Account {
                id: None,
                email: "t@x.io".into(),
                balance: 10,
            })
            .await?;
        let id = typed.id.clone().unwrap();
        // Read typed → dynamic.
        let dynamic = conn.get_entity("typed_accounts", &id).await?.unwrap();
        assert_eq!(dynamic["balance"], json!(10));
        // Write dynamic → read typed.
        conn.save_entity("typed_accounts", json!({"id": id, "balance": 25}))
            .user_id("ops")
            .comment("manual fix")
            .await?;
        let back: Account = conn.get(&id).await?.unwrap();
        assert_eq!(back.balance, 25);
        assert_eq!(back.email, "t@x.io");
        // One history for both.
        let history = conn.history::<Account>(&id).await?;
        assert_eq!(
            history.iter().map(|v| v.version).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(history[0].entity.balance, 10);
        assert_eq!(history[1].user_id.as_deref(), Some("ops"));
        assert_eq!(history[1].comment.as_deref(), Some("manual fix"));
        let v1 = conn.get_version::<Account>(&id, 1).await?.unwrap();
        assert_eq!(v1.entity.balance, 10);
        // Typed delete/restore.
        assert!(conn.delete::<Account>(&id).await?);
        assert!(conn.get::<Account>(&id).await?.is_none());
        assert!(conn.restore::<Account>(&id).await?);
        assert_eq!(conn.history::<Account>(&id).await?.len(), 4);
        Ok(())
    })
    .await;
}

/// A type the database does not know, stored through serde (`#[serde(with = ...)]`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rgb(u8, u8, u8);

mod hex_color {
    use super::Rgb;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(c: &Rgb, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Rgb, D::Error> {
        let s = String::deserialize(d)?;
        let p = |i: usize| u8::from_str_radix(&s[i..i + 2], 16).map_err(serde::de::Error::custom);
        if s.len() != 7 || !s.starts_with('#') {
            return Err(serde::de::Error::custom("expected #rrggbb"));
        }
        Ok(Rgb(p(1)?, p(3)?, p(5)?))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(table = "typed_themes")]
struct Theme {
    id: Option<String>,
    #[serde(with = "hex_color")]
    #[entity(json)]
    color: Rgb,
    #[entity(skip)]
    #[serde(skip)]
    cached: Option<u64>,
}

#[tokio::test]
async fn custom_types_go_through_serde_and_skipped_fields_are_not_stored() {
    each_backend("typed_custom", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "typed_themes").await?;
        let saved = conn
            .save(&Theme {
                id: None,
                color: Rgb(255, 0, 128),
                cached: Some(9),
            })
            .await?;
        let id = saved.id.clone().unwrap();
        let got: Theme = conn.get(&id).await?.unwrap();
        assert_eq!(got.color, Rgb(255, 0, 128));
        assert_eq!(got.cached, None);
        let raw = conn.get_entity("typed_themes", &id).await?.unwrap();
        assert_eq!(raw["color"], json!("#ff0080"));
        assert!(raw.get("cached").is_none());
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn save_all_writes_a_batch_with_history() {
    let _turn = ACCOUNTS.lock().await;
    each_backend("typed_batch", |db| async move {
        let mut conn = db.async_connection().await?;
        reset_entity(&mut conn, "typed_accounts").await?;
        let accounts: Vec<Account> = (0..50)
            .map(|i| Account {
                id: None,
                email: format!("u{i}@x.io"),
                balance: i,
            })
            .collect();
        let saved = conn.save_all(&accounts).await?;
        assert_eq!(saved.len(), 50);
        assert!(saved.iter().all(|a| a.id.is_some()));
        assert_eq!(
            conn.count_with::<Account>(
                FindOptions::default().filter("[balance] >= ?", params![25])
            )
            .await?,
            25
        );
        assert_eq!(
            conn.history::<Account>(saved[3].id.as_ref().unwrap())
                .await?
                .len(),
            1
        );
        Ok(())
    })
    .await;
}
