//! The declared schema: what entities should look like, from typed entities
//! ([`EntitySchema::of`]) or from JSON (tools that have no Rust structs, e.g. the `dal` CLI).

use serde::{Deserialize, Serialize};

use crate::entity::schema::{validate_entity_name, validate_field_name};
use crate::entity::{Entity, FieldType};
use crate::error::{Error, Result};

/// One entity as declared: its name (the table) and its user fields. System columns (`id`,
/// `version`, `created_at`, …) are dal's and never listed.
///
/// Deserializable from JSON, e.g. for [`Migrator::schema_file`](super::Migrator::schema_file):
///
/// ```
/// use dal::migrate::EntitySchema;
/// let s: EntitySchema = serde_json::from_str(r#"{
///     "name": "shop_orders",
///     "fields": [
///         {"name": "total", "type": "decimal", "check": "[total] >= 0"},
///         {"name": "note", "type": "text", "nullable": true},
///         {"name": "customer", "type": "text", "index": true, "references": "shop_customers"}
///     ]
/// }"#)?;
/// assert_eq!(s.fields.len(), 3);
/// assert!(!s.fields[0].nullable);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntitySchema {
    /// Entity (table) name.
    pub name: String,
    /// User fields, in order.
    pub fields: Vec<FieldSpec>,
}

/// One declared field. In JSON only `name` is required; `type` is needed for a field whose
/// column does not exist yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldSpec {
    /// Column name.
    pub name: String,
    /// Logical type (`None`: whatever the column has; a missing column is then left to the
    /// first save, which infers the type from the value).
    #[serde(rename = "type", default)]
    pub ty: Option<FieldType>,
    /// False: the column is `NOT NULL` on the entity's table (history tables stay nullable:
    /// old versions predate the field). Typed entities: true for `Option<T>` fields.
    #[serde(default)]
    pub nullable: bool,
    /// An index on the column.
    #[serde(default)]
    pub index: bool,
    /// A unique index on the column.
    #[serde(default)]
    pub unique: bool,
    /// The column's default, as a JSON value (string, number or boolean).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// A `CHECK` constraint, in portable SQL (`[total] >= 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// A foreign key to the `id` of this entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<String>,
}

impl FieldSpec {
    /// A nullable field of type `ty` with no constraint.
    pub fn new(name: impl Into<String>, ty: FieldType) -> Self {
        FieldSpec {
            name: name.into(),
            ty: Some(ty),
            nullable: true,
            index: false,
            unique: false,
            default: None,
            check: None,
            references: None,
        }
    }
}

impl EntitySchema {
    /// The schema `#[derive(Entity)]` declares for `T`: every stored field but the id and
    /// version fields and those named like system columns; non-`Option` fields are
    /// `NOT NULL`.
    ///
    /// ```
    /// use dal::prelude::*;
    /// use dal::migrate::EntitySchema;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Entity, Serialize, Deserialize)]
    /// #[entity(table = "doc_items")]
    /// struct Item {
    ///     id: Option<String>,
    ///     #[entity(unique)]
    ///     sku: String,
    ///     #[entity(default = 0, check = "[stock] >= 0")]
    ///     stock: i64,
    ///     note: Option<String>,
    /// }
    ///
    /// let s = EntitySchema::of::<Item>();
    /// assert_eq!(s.name, "doc_items");
    /// let names: Vec<&str> = s.fields.iter().map(|f| f.name.as_str()).collect();
    /// assert_eq!(names, ["sku", "stock", "note"]);
    /// assert!(s.fields[0].unique && !s.fields[0].nullable);
    /// assert_eq!(s.fields[1].default, Some(serde_json::json!(0)));
    /// assert!(s.fields[2].nullable);
    /// ```
    pub fn of<T: Entity>() -> Self {
        let fields = T::fields()
            .iter()
            .filter(|f| !f.id && !f.version && !crate::entity::schema::is_reserved(f.column))
            .map(|f| FieldSpec {
                name: f.column.to_owned(),
                ty: f.ty,
                nullable: f.nullable,
                index: f.index,
                unique: f.unique,
                default: f.default.and_then(|d| serde_json::from_str(d).ok()),
                check: f.check.map(str::to_owned),
                references: f.references.map(str::to_owned),
            })
            .collect();
        EntitySchema {
            name: T::table_name().to_owned(),
            fields,
        }
    }

    /// Checks names, duplicates (field names are case-insensitive) and defaults.
    pub(crate) fn validate(&self) -> Result<()> {
        validate_entity_name(&self.name)?;
        let mut seen = std::collections::HashSet::new();
        for f in &self.fields {
            validate_field_name(&f.name)?;
            if !seen.insert(f.name.to_ascii_lowercase()) {
                return Err(Error::Entity(format!(
                    "{}: field {:?} is declared twice (field names are case-insensitive)",
                    self.name, f.name
                )));
            }
            if let Some(d) = &f.default {
                if !(d.is_string() || d.is_number() || d.is_boolean()) {
                    return Err(Error::Entity(format!(
                        "{}.{}: a default must be a string, number or boolean, got {d}",
                        self.name, f.name
                    )));
                }
            }
            if let Some(r) = &f.references {
                validate_entity_name(r)?;
            }
            if f.check.as_deref().is_some_and(|c| c.trim().is_empty()) {
                return Err(Error::Entity(format!(
                    "{}.{}: an empty check",
                    self.name, f.name
                )));
            }
        }
        Ok(())
    }
}
