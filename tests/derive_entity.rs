//! `#[derive(Entity)]`: the table name and field list it describes, for every supported type
//! and attribute. No database needed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use dal::{Entity, FieldDef, FieldType};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Address {
    street: String,
    city: String,
}

/// A type alias: the derive cannot see through it, the runtime decides from the serde output.
type Cents = i64;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Status {
    Active,
    Closed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserId(i64);

/// Stand-in for `rust_decimal::Decimal`, which `dal` does not depend on: like `chrono`'s and
/// `uuid`'s types, the derive recognizes it by its name.
mod rust_decimal {
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    pub struct Decimal(pub String);
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
    maybe_naive: Option<NaiveDateTime>,
    birthday: NaiveDate,
    alarm: NaiveTime,
    key: uuid::Uuid,
    price: rust_decimal::Decimal,
    blob: Vec<u8>,
    maybe_blob: Option<std::vec::Vec<u8>>,
    tags: Vec<String>,
    signed: Vec<i8>,
    queue: VecDeque<u8>,
    set: HashSet<String>,
    sorted_set: BTreeSet<i32>,
    object: serde_json::Map<String, serde_json::Value>,
    scores: HashMap<String, i64>,
    sorted: BTreeMap<String, String>,
    payload: serde_json::Value,
    address: Address,
    cents: Cents,
    status: Status,
    user: UserId,
    maybe_status: Option<Status>,
    nickname: Option<String>,
    maybe_when: Option<DateTime<Utc>>,
    boxed: Box<i64>,
    #[entity(json)]
    forced: String,
    #[entity(json)]
    pair: (i32, String),
    #[entity(type = "decimal")]
    exact: String,
    #[entity(type = "text")]
    status_text: Status,
    #[entity(type = "int")]
    maybe_cents: Option<Cents>,
    #[entity(type = "bytes")]
    digest: [u8; 4],
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

fn plain(column: &'static str, ty: Option<FieldType>) -> FieldDef {
    FieldDef {
        column,
        serde_name: column,
        ty,
        nullable: false,
        id: false,
        version: false,
        naive_timestamp: false,
        index: false,
        unique: false,
        default: None,
        check: None,
        references: None,
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
            "maybe_naive",
            "birthday",
            "alarm",
            "key",
            "price",
            "blob",
            "maybe_blob",
            "tags",
            "signed",
            "queue",
            "set",
            "sorted_set",
            "object",
            "scores",
            "sorted",
            "payload",
            "address",
            "cents",
            "status",
            "user",
            "maybe_status",
            "nickname",
            "maybe_when",
            "boxed",
            "forced",
            "pair",
            "exact",
            "status_text",
            "maybe_cents",
            "digest",
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
        ("birthday", Date),
        ("alarm", Time),
        ("key", Uuid),
        ("price", Decimal),
        ("blob", Bytes),
        ("tags", Json),
        ("signed", Json),
        ("queue", Json),
        ("set", Json),
        ("sorted_set", Json),
        ("object", Json),
        ("scores", Json),
        ("sorted", Json),
        ("payload", Json),
        ("boxed", Int),
        ("forced", Json),
        ("pair", Json),
    ];
    for (column, ty) in expected {
        assert_eq!(
            field::<Everything>(column),
            plain(column, Some(ty)),
            "{column}"
        );
    }
}

#[test]
fn types_the_derive_cannot_see_through_are_left_to_the_runtime() {
    // A type alias, a unit enum, a newtype, a struct: `None`, decided from the serde output at
    // the first save (a unit enum is text there, not a JSON string with quotes).
    for column in ["cents", "status", "user", "address"] {
        assert_eq!(field::<Everything>(column), plain(column, None), "{column}");
    }
    let f = field::<Everything>("maybe_status");
    assert_eq!((f.ty, f.nullable), (None, true));
}

#[test]
fn byte_vectors_are_bytes() {
    assert_eq!(field::<Everything>("blob").ty, Some(FieldType::Bytes));
    let f = field::<Everything>("maybe_blob");
    assert_eq!((f.ty, f.nullable), (Some(FieldType::Bytes), true));
    // Only `Vec<u8>`: other vectors and byte collections are JSON.
    assert_eq!(field::<Everything>("signed").ty, Some(FieldType::Json));
    assert_eq!(field::<Everything>("queue").ty, Some(FieldType::Json));
}

#[test]
fn naive_date_times_are_timestamps_flagged_naive() {
    assert_eq!(
        field::<Everything>("naive"),
        FieldDef {
            naive_timestamp: true,
            ..plain("naive", Some(FieldType::Timestamp))
        }
    );
    let f = field::<Everything>("maybe_naive");
    assert_eq!(
        (f.ty, f.nullable, f.naive_timestamp),
        (Some(FieldType::Timestamp), true, true)
    );
    assert!(!field::<Everything>("created").naive_timestamp);
    assert!(!field::<Everything>("birthday").naive_timestamp);
}

#[test]
fn type_attribute_gives_the_logical_type() {
    use FieldType::*;
    assert_eq!(field::<Everything>("exact"), plain("exact", Some(Decimal)));
    assert_eq!(
        field::<Everything>("status_text"),
        plain("status_text", Some(Text))
    );
    let f = field::<Everything>("maybe_cents");
    assert_eq!((f.ty, f.nullable), (Some(Int), true));
    // Like `json`, an explicit type admits arrays and tuples.
    assert_eq!(field::<Everything>("digest"), plain("digest", Some(Bytes)));
}

#[test]
fn option_is_nullable_with_the_inner_type() {
    let id = field::<Everything>("id");
    assert_eq!(
        (id.ty, id.nullable, id.id),
        (Some(FieldType::Text), true, true)
    );
    let nick = field::<Everything>("nickname");
    assert_eq!((nick.ty, nick.nullable), (Some(FieldType::Text), true));
    let when = field::<Everything>("maybe_when");
    assert_eq!((when.ty, when.nullable), (Some(FieldType::Timestamp), true));
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
            ..plain("both_col", Some(FieldType::Text))
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
        ("wire", Some(FieldType::Int), true)
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

#[derive(Entity, Serialize, Deserialize)]
struct Account {
    id: Option<String>,
    #[entity(version)]
    rev: Option<i64>,
    balance: i64,
    // Exactly-named system columns receive the stored values.
    created_at: Option<DateTime<Utc>>,
    updated_by: Option<String>,
}

#[derive(Entity, Serialize, Deserialize)]
struct Counter {
    #[entity(version)]
    version: u32,
    count: i64,
}

#[test]
fn version_attribute_marks_the_version_field_whose_column_is_version() {
    assert_eq!(
        field::<Account>("version"),
        FieldDef {
            serde_name: "rev",
            nullable: true,
            version: true,
            ..plain("version", Some(FieldType::Int))
        }
    );
    let versions: Vec<&str> = Account::fields()
        .iter()
        .filter(|f| f.version)
        .map(|f| f.serde_name)
        .collect();
    assert_eq!(versions, ["rev"]);
    assert_eq!(
        field::<Counter>("version"),
        FieldDef {
            version: true,
            ..plain("version", Some(FieldType::Int))
        }
    );
    assert!(!field::<Account>("balance").version);
}

#[test]
fn exactly_named_system_columns_are_allowed() {
    let columns: Vec<&str> = Account::fields().iter().map(|f| f.column).collect();
    assert_eq!(
        columns,
        ["id", "version", "balance", "created_at", "updated_by"]
    );
    assert_eq!(
        field::<Account>("created_at").ty,
        Some(FieldType::Timestamp)
    );
}

#[derive(Entity, Serialize, Deserialize)]
struct SerdeSkips {
    id: Option<String>,
    kept: String,
    #[serde(skip)]
    #[allow(dead_code)]
    skipped: Option<String>,
    #[serde(skip_serializing, default)]
    #[allow(dead_code)]
    write_only: i32,
    #[serde(skip_deserializing, alias = "other")]
    read_only: i32,
}

#[test]
fn fields_serde_does_not_serialize_are_not_stored() {
    let columns: Vec<&str> = SerdeSkips::fields().iter().map(|f| f.column).collect();
    assert_eq!(columns, ["id", "kept", "read_only"]);
}

/// The same struct under each of serde's case conventions: `very_tasty` is renamed, the field
/// with its own `#[serde(rename)]` is not, and the columns stay the Rust names.
macro_rules! renamed_all {
    ($($name:ident: $rule:literal;)*) => {$(
        #[derive(Entity, Serialize, Deserialize, Default)]
        #[serde(rename_all = $rule)]
        struct $name {
            id: Option<String>,
            very_tasty: i32,
            #[serde(rename = "kept_As_is")]
            own_name: i32,
            #[entity(rename = "kind")]
            r#type: String,
            _private_x: bool,
        }
    )*};
}

renamed_all! {
    Lower: "lowercase";
    Upper: "UPPERCASE";
    Pascal: "PascalCase";
    Camel: "camelCase";
    Snake: "snake_case";
    ScreamingSnake: "SCREAMING_SNAKE_CASE";
    Kebab: "kebab-case";
    ScreamingKebab: "SCREAMING-KEBAB-CASE";
}

#[derive(Entity, Serialize, Deserialize, Default)]
#[serde(rename_all(serialize = "camelCase", deserialize = "camelCase"))]
struct BothSides {
    id: Option<String>,
    very_tasty: i32,
    #[serde(rename(serialize = "own", deserialize = "own"))]
    own_name: i32,
    #[serde(rename(serialize = "alt", deserialize = "alt", deserialize = "other"))]
    multi: i32,
}

fn serde_names<E: Entity>() -> Vec<&'static str> {
    E::fields().iter().map(|f| f.serde_name).collect()
}

/// The keys serde really writes, sorted.
fn serialized_keys<E: Entity + Default>() -> Vec<String> {
    let json = serde_json::to_value(E::default()).unwrap();
    let mut keys: Vec<String> = json.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

/// `serde_name`s, sorted.
fn sorted_serde_names<E: Entity>() -> Vec<String> {
    let mut names: Vec<String> = serde_names::<E>().into_iter().map(String::from).collect();
    names.sort();
    names
}

#[test]
fn serde_rename_all_renames_serde_names_for_every_convention() {
    let cases: [(Vec<&str>, Vec<&str>, [&str; 5]); 8] = [
        (
            serde_names::<Lower>(),
            Lower::fields().iter().map(|f| f.column).collect(),
            ["id", "very_tasty", "kept_As_is", "type", "_private_x"],
        ),
        (
            serde_names::<Upper>(),
            Upper::fields().iter().map(|f| f.column).collect(),
            ["ID", "VERY_TASTY", "kept_As_is", "TYPE", "_PRIVATE_X"],
        ),
        (
            serde_names::<Pascal>(),
            Pascal::fields().iter().map(|f| f.column).collect(),
            ["Id", "VeryTasty", "kept_As_is", "Type", "PrivateX"],
        ),
        (
            serde_names::<Camel>(),
            Camel::fields().iter().map(|f| f.column).collect(),
            ["id", "veryTasty", "kept_As_is", "type", "privateX"],
        ),
        (
            serde_names::<Snake>(),
            Snake::fields().iter().map(|f| f.column).collect(),
            ["id", "very_tasty", "kept_As_is", "type", "_private_x"],
        ),
        (
            serde_names::<ScreamingSnake>(),
            ScreamingSnake::fields().iter().map(|f| f.column).collect(),
            ["ID", "VERY_TASTY", "kept_As_is", "TYPE", "_PRIVATE_X"],
        ),
        (
            serde_names::<Kebab>(),
            Kebab::fields().iter().map(|f| f.column).collect(),
            ["id", "very-tasty", "kept_As_is", "type", "-private-x"],
        ),
        (
            serde_names::<ScreamingKebab>(),
            ScreamingKebab::fields().iter().map(|f| f.column).collect(),
            ["ID", "VERY-TASTY", "kept_As_is", "TYPE", "-PRIVATE-X"],
        ),
    ];
    for (serde, columns, expected) in cases {
        assert_eq!(serde, expected);
        // The columns do not change: only the serde keys do.
        assert_eq!(
            columns,
            ["id", "very_tasty", "own_name", "kind", "_private_x"]
        );
    }
}

#[test]
fn serde_names_are_the_keys_serde_writes() {
    fn check<E: Entity + Default>() {
        assert_eq!(sorted_serde_names::<E>(), serialized_keys::<E>());
    }
    check::<Lower>();
    check::<Upper>();
    check::<Pascal>();
    check::<Camel>();
    check::<Snake>();
    check::<ScreamingSnake>();
    check::<Kebab>();
    check::<ScreamingKebab>();
    check::<BothSides>();
}

#[test]
fn rename_all_with_equal_sides_and_field_renames_on_both_sides() {
    assert_eq!(
        serde_names::<BothSides>(),
        ["id", "veryTasty", "own", "alt"]
    );
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
