//! Typed entities: the [`Entity`] trait that `#[derive(Entity)]` implements.
//!
//! The derive only describes the struct (table, fields, logical types, constraints); every
//! behaviour — schema, history, soft delete, queries — is the dynamic entity layer's, reached
//! through the struct's serde representation. A row saved typed is readable dynamically and the
//! other way round.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The logical type of an entity field, recorded in the entity's metadata table and mapped to a
/// native column type per backend.
///
/// Serialized (e.g. in an [`EntitySchema`](crate::migrate::EntitySchema)) as its stored name:
/// `"int"`, `"float"`, `"text"`, …
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// 64-bit integer (`BIGINT`).
    Int,
    /// Double precision float.
    Float,
    /// Boolean.
    Bool,
    /// Text.
    Text,
    /// Point in time (UTC), exchanged as an RFC 3339 string.
    Timestamp,
    /// Calendar date, exchanged as `YYYY-MM-DD`.
    Date,
    /// Time of day, exchanged as `HH:MM:SS[.f]`.
    Time,
    /// UUID, stored as text.
    Uuid,
    /// Any JSON value (objects, arrays, and serde types the database does not know).
    Json,
    /// Exact decimal number (`NUMERIC` on PostgreSQL, `DECIMAL(65,28)` on MySQL), exchanged as
    /// a decimal string (`"19.99"`, as `rust_decimal` serializes it). SQLite has no exact
    /// decimal type: there it is stored as a number with at most 15 significant digits, and a
    /// value with more digits is refused.
    Decimal,
    /// Binary data (`BYTEA`, `LONGBLOB`, `BLOB`), exchanged as an array of byte values (as
    /// serde writes `Vec<u8>`).
    Bytes,
}

impl FieldType {
    /// Stable name stored in metadata tables.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Int => "int",
            FieldType::Float => "float",
            FieldType::Bool => "bool",
            FieldType::Text => "text",
            FieldType::Timestamp => "timestamp",
            FieldType::Date => "date",
            FieldType::Time => "time",
            FieldType::Uuid => "uuid",
            FieldType::Json => "json",
            FieldType::Decimal => "decimal",
            FieldType::Bytes => "bytes",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<FieldType> {
        Some(match s {
            "int" => FieldType::Int,
            "float" => FieldType::Float,
            "bool" => FieldType::Bool,
            "text" => FieldType::Text,
            "timestamp" => FieldType::Timestamp,
            "date" => FieldType::Date,
            "time" => FieldType::Time,
            "uuid" => FieldType::Uuid,
            "json" => FieldType::Json,
            "decimal" => FieldType::Decimal,
            "bytes" => FieldType::Bytes,
            _ => return None,
        })
    }
}

/// One stored field of a typed entity, as the derive describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    /// Column name: the Rust field name, or `#[entity(rename = "...")]`; `version` for the
    /// `#[entity(version)]` field. Serde attributes never change it. Unique within the struct,
    /// ignoring ASCII case, and never a system column in another case (the derive checks).
    pub column: &'static str,
    /// Key of the field in the struct's serde representation: the Rust field name, after the
    /// struct's `#[serde(rename_all = "...")]`, or the field's `#[serde(rename = "...")]`. The
    /// derive refuses names serde would write and read back differently.
    pub serde_name: &'static str,
    /// Logical type inferred from the Rust type, or given by `#[entity(json)]` /
    /// `#[entity(type = "…")]`. `None` for a type the derive cannot see through (a type alias,
    /// a newtype, an enum of your own): the type then comes from the field's serde output at
    /// its first non-null save, as for dynamic entities (a unit enum is text, a newtype over
    /// `i64` an integer, a struct JSON).
    pub ty: Option<FieldType>,
    /// True for `Option<T>` fields.
    pub nullable: bool,
    /// `#[entity(id)]`, or the field named `id`.
    pub id: bool,
    /// `#[entity(version)]`: the field receives the entity's version (1 after the first save,
    /// +1 per change), and a save of a value whose version is not the stored one fails with
    /// [`Error::Conflict`](crate::Error::Conflict) (optimistic locking). Its column is `version`.
    pub version: bool,
    /// The Rust type is `chrono::NaiveDateTime` (a UTC timestamp without offset), possibly in
    /// `Option` or `Box`: it is read back without the `Z`.
    pub naive_timestamp: bool,
    /// `#[entity(index)]`: an index on the column, created with the column (and, in
    /// [`SchemaMode::Auto`](crate::migrate::SchemaMode::Auto), added to an existing column at
    /// the next save; see [`crate::migrate`]).
    pub index: bool,
    /// `#[entity(unique)]`: a unique index on the column (created like `index`).
    pub unique: bool,
    /// `#[entity(default = ...)]`: JSON text of the value used when the field is absent (the
    /// column's `DEFAULT` once [`Migrator`](crate::migrate::Migrator) applied the schema).
    pub default: Option<&'static str>,
    /// `#[entity(check = "…")]`: a `CHECK` constraint on the entity's table, in portable SQL
    /// (e.g. `"[score] >= 0"`), made by [`Migrator`](crate::migrate::Migrator).
    pub check: Option<&'static str>,
    /// `#[entity(references = "entity")]`: a foreign key to that entity's `id`, made by
    /// [`Migrator`](crate::migrate::Migrator).
    pub references: Option<&'static str>,
}

/// A struct stored as an entity. Implement it with `#[derive(Entity)]`:
///
/// ```
/// use dal::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Entity, Serialize, Deserialize)]
/// #[entity(table = "doc_users")]
/// struct User { id: Option<String>, name: String, #[entity(index)] age: i32 }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
/// let db = Database::from_url("sqlite::memory:")?;
/// let mut conn = db.async_connection().await?;
/// let saved = conn.save(&User { id: None, name: "Ann".into(), age: 41 }).await?;
/// let id = saved.id.clone().unwrap_or_default();
/// let again: Option<User> = conn.get::<User>(&id).await?;
/// assert_eq!(again.map(|u| u.age), Some(41));
/// # Ok(()) }
/// ```
pub trait Entity: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Table name.
    fn table_name() -> &'static str;
    /// Stored fields, in declaration order (`#[entity(skip)]` fields, and those serde does not
    /// serialize, `#[serde(skip)]` or `#[serde(skip_serializing)]`, are not listed).
    fn fields() -> &'static [FieldDef];
}
