//! `#[derive(Entity)]`: the table name and field list it describes, for every supported type
//! and attribute. No database needed.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use dal::{Entity, FieldDef, FieldType};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Address {
    street: String,
    city: String,
}

#[derive(Entity, Serialize, Deserialize)]
#[entity(table = "everything")]
struct Everything {
    id: Option<String>,
    small: i8,
    short: i16,
    int: i32,
    long: i64,
    size: isize,
    byte: u8,
    ushort: u16,
    uint: u32,
    ulong: u64,
    usize_: usize,
    single: f32,
    double: f64,
    flag: bool,
    name: String,
    initial: char,
    created: DateTime<Utc>,
    created_full: chrono::DateTime<chrono::Utc>,
    naive: NaiveDateTime,
    birthday: NaiveDate,
    alarm: NaiveTime,
    key: uuid::Uuid,
    tags: Vec<String>,
    scores: HashMap<String, i64>,
    sorted: BTreeMap<String, String>,
    payload: serde_json::Value,
    address: Address,
    nickname: Option<String>,
    maybe_when: Option<DateTime<Utc>>,
    boxed: Box<i64>,
    #[entity(json)]
    forced: String,
    #[entity(json)]
    pair: (i32, String),
    #[entity(index)]
    indexed: i32,
    #[entity(unique)]
    unique_code: String,
    #[entity(index, unique, rename = "both_col")]
    both: String,
    #[entity(default = "x")]
    default_str: String,
    #[entity(default = "say \"hi\"\n")]
    default_escaped: String,
    #[entity(default = 5)]
    default_int: i64,
    #[entity(default = -7)]
    default_neg: i64,
    #[entity(default = 1.5)]
    default_float: f64,
    #[entity(default = true)]
    default_bool: bool,
    #[serde(rename = "serdeName")]
    serde_renamed: String,
    #[serde(rename = "wire", default)]
    #[entity(rename = "col")]
    both_renamed: Option<i32>,
    #[entity(skip)]
    #[serde(skip)]
    #[allow(dead_code)] // skipped by serde and by the entity: nothing reads it here
    cache: Option<String>,
    r#type: String,
}

fn field<E: Entity>(name: &str) -> FieldDef {
    *E::fields()
        .iter()
        .find(|f| f.column == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

fn plain(column: &'static str, ty: FieldType) -> FieldDef {
    FieldDef {
        column,
        serde_name: column,
        ty,
        nullable: false,
        id: false,
        index: false,
        unique: false,
        default: None,
    }
}

#[test]
fn table_attribute_names_the_table() {
    assert_eq!(Everything::table_name(), "everything");
}

#[test]
fn fields_are_listed_in_declaration_order_without_skipped_ones() {
    let columns: Vec<&str> = Everything::fields().iter().map(|f| f.column).collect();
    assert_eq!(
        columns,
        [
            "id",
            "small",
            "short",
            "int",
            "long",
            "size",
            "byte",
            "ushort",
            "uint",
            "ulong",
            "usize_",
            "single",
            "double",
            "flag",
            "name",
            "initial",
            "created",
            "created_full",
            "naive",
            "birthday",
            "alarm",
            "key",
            "tags",
            "scores",
            "sorted",
            "payload",
            "address",
            "nickname",
            "maybe_when",
            "boxed",
            "forced",
            "pair",
            "indexed",
            "unique_code",
            "both_col",
            "default_str",
            "default_escaped",
            "default_int",
            "default_neg",
            "default_float",
            "default_bool",
            "serde_renamed",
            "col",
            "type",
        ]
    );
}

#[test]
fn rust_types_map_to_logical_types() {
    use FieldType::*;
    let expected = [
        ("small", Int),
        ("short", Int),
        ("int", Int),
        ("long", Int),
        ("size", Int),
        ("byte", Int),
        ("ushort", Int),
        ("uint", Int),
        ("ulong", Int),
        ("usize_", Int),
        ("single", Float),
        ("double", Float),
        ("flag", Bool),
        ("name", Text),
        ("initial", Text),
        ("created", Timestamp),
        ("created_full", Timestamp),
        ("naive", Timestamp),
        ("birthday", Date),
        ("alarm", Time),
        ("key", Uuid),
        ("tags", Json),
        ("scores", Json),
        ("sorted", Json),
        ("payload", Json),
        ("address", Json),
        ("boxed", Int),
        ("forced", Json),
        ("pair", Json),
    ];
    for (column, ty) in expected {
        assert_eq!(field::<Everything>(column), plain(column, ty), "{column}");
    }
}

#[test]
fn option_is_nullable_with_the_inner_type() {
    let id = field::<Everything>("id");
    assert_eq!((id.ty, id.nullable, id.id), (FieldType::Text, true, true));
    let nick = field::<Everything>("nickname");
    assert_eq!((nick.ty, nick.nullable), (FieldType::Text, true));
    let when = field::<Everything>("maybe_when");
    assert_eq!((when.ty, when.nullable), (FieldType::Timestamp, true));
    assert!(!field::<Everything>("name").nullable);
}

#[test]
fn field_named_id_is_the_id_by_default_and_only_it() {
    let ids: Vec<&str> = Everything::fields()
        .iter()
        .filter(|f| f.id)
        .map(|f| f.column)
        .collect();
    assert_eq!(ids, ["id"]);
}

#[test]
fn index_unique_and_rename_combine() {
    let f = field::<Everything>("indexed");
    assert!(f.index && !f.unique);
    let f = field::<Everything>("unique_code");
    assert!(f.unique && !f.index);
    assert_eq!(
        field::<Everything>("both_col"),
        FieldDef {
            serde_name: "both",
            index: true,
            unique: true,
            ..plain("both_col", FieldType::Text)
        }
    );
}

#[test]
fn defaults_are_stored_as_json_text() {
    let default = |c: &str| field::<Everything>(c).default;
    assert_eq!(default("default_str"), Some(r#""x""#));
    assert_eq!(default("default_escaped"), Some(r#""say \"hi\"\n""#));
    assert_eq!(default("default_int"), Some("5"));
    assert_eq!(default("default_neg"), Some("-7"));
    assert_eq!(default("default_float"), Some("1.5"));
    assert_eq!(default("default_bool"), Some("true"));
    assert_eq!(default("name"), None);
    for c in [
        "default_str",
        "default_escaped",
        "default_int",
        "default_float",
    ] {
        let text = default(c).unwrap();
        serde_json::from_str::<serde_json::Value>(text).expect("valid JSON");
    }
}

#[test]
fn serde_rename_sets_the_serde_name_and_entity_rename_the_column() {
    let f = field::<Everything>("serde_renamed");
    assert_eq!(f.serde_name, "serdeName");
    let f = field::<Everything>("col");
    assert_eq!(
        (f.serde_name, f.ty, f.nullable),
        ("wire", FieldType::Int, true)
    );
    // Raw identifiers lose their `r#`.
    assert_eq!(field::<Everything>("type").serde_name, "type");
}

#[derive(Entity, Serialize, Deserialize)]
struct UserProfile {
    #[entity(id)]
    handle: String,
    id: i64,
}

#[test]
fn table_defaults_to_snake_case_and_entity_id_overrides_the_id_field() {
    assert_eq!(UserProfile::table_name(), "user_profile");
    let ids: Vec<&str> = UserProfile::fields()
        .iter()
        .filter(|f| f.id)
        .map(|f| f.column)
        .collect();
    assert_eq!(ids, ["handle"]);
}

/// The derive and the trait share the name `Entity`, like serde's `Serialize`, and the prelude
/// brings both.
mod through_prelude {
    use dal::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Entity, Serialize, Deserialize)]
    pub struct Note {
        pub id: Option<i64>,
        pub body: String,
    }

    #[test]
    fn prelude_brings_the_derive_and_the_trait() {
        assert_eq!(Note::table_name(), "note");
        assert_eq!(Note::fields().len(), 2);
    }
}
