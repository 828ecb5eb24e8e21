//! Custom value types for dynamic entities: a type name registered process-wide with a pair of
//! functions, JSON value → stored text and stored text → JSON value.
//!
//! ```
//! use dal::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
//! // A point stored as "x,y".
//! dal::register_serializer(
//!     "doc_point",
//!     |v: &JsonValue| match (v["x"].as_f64(), v["y"].as_f64()) {
//!         (Some(x), Some(y)) => Ok(format!("{x},{y}")),
//!         _ => Err(format!("not a point: {v}").into()),
//!     },
//!     |s: &str| {
//!         let (x, y) = s.split_once(',').ok_or("no comma")?;
//!         Ok(json!({"x": x.parse::<f64>()?, "y": y.parse::<f64>()?}))
//!     },
//! )?;
//!
//! let db = Database::from_url("sqlite::memory:")?;
//! let mut conn = db.async_connection().await?;
//! let saved = conn
//!     .save_entity("doc_places", json!({"name": "home", "loc": {"x": 1.5, "y": 2.0}}))
//!     .field_type("loc", "doc_point")
//!     .await?;
//! assert_eq!(saved["loc"], json!({"x": 1.5, "y": 2.0}));
//! let id = saved["id"].as_str().unwrap_or_default();
//! // Later saves and reads convert "loc" without being told again.
//! let found = conn.find_entities("doc_places").await?;
//! assert_eq!(found[0]["loc"], json!({"x": 1.5, "y": 2.0}));
//! // .raw(): the stored text.
//! let raw = conn.get_entity("doc_places", id).raw().await?.unwrap_or_default();
//! assert_eq!(raw["loc"], json!("1.5,2"));
//! # Ok(()) }
//! ```
//!
//! Registration is process-wide (like the seed's `register_serializer`), not per
//! [`Database`](crate::Database): the type name lives in the entity's `_meta` table, which
//! every handle, pool and process reading that table shares, so one process should convert it
//! one way whichever handle reads it. The dynamic, typed and blocking APIs all reach the same
//! registry.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use serde_json::Value as Json;

use super::typed::FieldType;
use crate::error::{Error, Result};
use crate::value::Value;

/// The error a serializer or deserializer returns: any error, or a message
/// (`Err("not a point".into())`).
pub type ValueTypeError = Box<dyn std::error::Error + Send + Sync>;

type SerializeFn = dyn Fn(&Json) -> std::result::Result<String, ValueTypeError> + Send + Sync;
type DeserializeFn = dyn Fn(&str) -> std::result::Result<Json, ValueTypeError> + Send + Sync;

struct ValueType {
    serialize: Box<SerializeFn>,
    deserialize: Box<DeserializeFn>,
}

/// Longest type name: the `_meta` table's `type` column is `VARCHAR(32)`.
const MAX_TYPE_NAME: usize = 32;

fn registry() -> &'static RwLock<HashMap<String, Arc<ValueType>>> {
    static REGISTRY: OnceLock<RwLock<HashMap<String, Arc<ValueType>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| RwLock::new(HashMap::new()))
}

/// Checks a custom type name: 1 to 32 characters, a letter then letters, digits, `_`, `-`,
/// `.` or `:`, and not the name of a built-in type (`int`, `text`, `json`, … in any case).
pub(crate) fn validate_type_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        && name.len() <= MAX_TYPE_NAME;
    if !ok {
        return Err(Error::Entity(format!(
            "invalid value type name {name:?}: use a letter followed by letters, digits, _, -, . or : (at most {MAX_TYPE_NAME} characters)"
        )));
    }
    if FieldType::parse(&name.to_ascii_lowercase()).is_some() {
        return Err(Error::Entity(format!(
            "value type name {name:?} is the name of a built-in field type; choose another name"
        )));
    }
    Ok(())
}

/// Registers (or replaces) the custom value type `type_name` for dynamic entities, process-wide:
/// `serializer` turns a field's JSON value into the text stored in its `TEXT` column,
/// `deserializer` turns that text back into JSON on reads (`get_entity`, `find_entities`,
/// history, and the entity a save returns). A save declares which fields use the type with
/// [`SaveEntity::field_type`](crate::entity::SaveEntity::field_type); the name is then
/// recorded in the entity's `_meta` table, and later saves and reads convert that field
/// without being told again.
///
/// `null` is stored as SQL `NULL` and read back as `null` without calling either function.
/// A serializer error fails the save before anything is written; a deserializer error fails
/// the read. Both are [`Error::Entity`] naming the field and the type.
///
/// `type_name` must be 1 to 32 characters (a letter, then letters, digits, `_`, `-`, `.` or
/// `:`) and not a built-in type name (`int`, `float`, `bool`, `text`, `timestamp`, `date`,
/// `time`, `uuid`, `json`, `decimal`, `bytes`, in any case): otherwise `Err`. Registering a
/// name again replaces its functions. See the [module docs](crate::entity::value_types).
pub fn register_serializer<S, D>(type_name: &str, serializer: S, deserializer: D) -> Result<()>
where
    S: Fn(&Json) -> std::result::Result<String, ValueTypeError> + Send + Sync + 'static,
    D: Fn(&str) -> std::result::Result<Json, ValueTypeError> + Send + Sync + 'static,
{
    validate_type_name(type_name)?;
    let t = Arc::new(ValueType {
        serialize: Box::new(serializer),
        deserialize: Box::new(deserializer),
    });
    registry()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(type_name.to_owned(), t);
    Ok(())
}

/// Removes the custom value type `type_name`; returns whether it was registered. Fields
/// recorded with it then fail to save and to read (except with `.raw()`) until it is
/// registered again.
///
/// ```
/// dal::register_serializer("doc_gone", |v| Ok(v.to_string()), |s| Ok(s.into()))?;
/// assert!(dal::unregister_serializer("doc_gone"));
/// assert!(!dal::unregister_serializer("doc_gone"));
/// # Ok::<(), dal::Error>(())
/// ```
pub fn unregister_serializer(type_name: &str) -> bool {
    registry()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(type_name)
        .is_some()
}

/// Whether `type_name` is registered as a custom value type in this process.
pub fn is_serializer_registered(type_name: &str) -> bool {
    lookup(type_name).is_some()
}

fn lookup(type_name: &str) -> Option<Arc<ValueType>> {
    registry()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(type_name)
        .cloned()
}

fn unregistered(entity: &str, field: &str, type_name: &str, hint: &str) -> Error {
    Error::Entity(format!(
        "field {field:?} of {entity} has value type {type_name:?}, which is not registered in this process (dal::register_serializer){hint}"
    ))
}

/// Fails unless `type_name` is registered (a save declaring it).
pub(crate) fn require_registered(entity: &str, field: &str, type_name: &str) -> Result<()> {
    match lookup(type_name) {
        Some(_) => Ok(()),
        None => Err(unregistered(entity, field, type_name, "")),
    }
}

/// A field's JSON value → the stored text, through the registered serializer.
pub(crate) fn to_stored(entity: &str, field: &str, type_name: &str, v: &Json) -> Result<Value> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let t = lookup(type_name).ok_or_else(|| unregistered(entity, field, type_name, ""))?;
    (t.serialize)(v).map(Value::Text).map_err(|e| {
        Error::Entity(format!(
            "field {field:?} of {entity}: the serializer of value type {type_name:?} failed: {e}; nothing was written"
        ))
    })
}

/// The stored text → the field's JSON value, through the registered deserializer.
pub(crate) fn from_stored(entity: &str, field: &str, type_name: &str, v: Value) -> Result<Json> {
    let text = match v {
        Value::Null => return Ok(Json::Null),
        Value::Text(s) => s,
        Value::Bytes(b) => String::from_utf8(b).map_err(|_| {
            Error::Entity(format!(
                "field {field:?} of {entity} (value type {type_name:?}) holds bytes that are not UTF-8 text"
            ))
        })?,
        other => match other.to_json() {
            Json::String(s) => s,
            j => j.to_string(),
        },
    };
    let t = lookup(type_name)
        .ok_or_else(|| unregistered(entity, field, type_name, ", or read with .raw()"))?;
    (t.deserialize)(&text).map_err(|e| {
        Error::Entity(format!(
            "field {field:?} of {entity}: the deserializer of value type {type_name:?} failed: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_checked() {
        assert!(validate_type_name("point").is_ok());
        assert!(validate_type_name("geo:point.v2").is_ok());
        for bad in ["", "1x", "a b", "Text", "json", "x;drop", &"a".repeat(33)] {
            let e = validate_type_name(bad).err();
            assert!(matches!(e, Some(Error::Entity(_))), "{bad:?}");
        }
    }

    #[test]
    fn conversions_and_errors_name_the_type() {
        register_serializer(
            "unit_upper",
            |v| {
                v.as_str()
                    .map(str::to_uppercase)
                    .ok_or_else(|| "not a string".into())
            },
            |s| Ok(Json::String(s.to_lowercase())),
        )
        .unwrap();
        assert!(matches!(
            to_stored("e", "f", "unit_upper", &json!("ab")).unwrap(),
            Value::Text(s) if s == "AB"
        ));
        assert!(matches!(
            to_stored("e", "f", "unit_upper", &json!(null)).unwrap(),
            Value::Null
        ));
        let e = to_stored("e", "f", "unit_upper", &json!(1)).unwrap_err();
        assert!(e.to_string().contains("not a string"), "{e}");
        assert_eq!(
            from_stored("e", "f", "unit_upper", Value::Text("AB".into())).unwrap(),
            json!("ab")
        );
        assert!(unregister_serializer("unit_upper"));
        let e = from_stored("e", "f", "unit_upper", Value::Text("AB".into())).unwrap_err();
        assert!(e.to_string().contains("\"unit_upper\""), "{e}");
        assert!(e.to_string().contains(".raw()"), "{e}");
    }
}
