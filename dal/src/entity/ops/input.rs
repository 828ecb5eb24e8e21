//! From what callers give to rows and schema changes: ids assigned, system keys stripped,
//! names checked (case-insensitively unique), new fields and widenings planned for the batch.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value as Json;

use super::super::codec::{infer, infer_declared, needs_widening};
use super::super::schema::{
    is_reserved, reserved_ignoring_case, validate_field_name, FieldSpec, Schema,
};
use super::super::typed::FieldType;
use super::EntityMap;
use crate::error::{Error, Result};

const MAX_ID_LEN: usize = 255;

/// Validates and normalises the inputs: strips system and history keys spelt exactly (so a
/// version read from history can be saved back), refuses them in any other spelling and
/// field names that differ only in case, assigns ids.
pub(super) fn prepare_inputs(inputs: Vec<EntityMap>) -> Result<(Vec<String>, Vec<EntityMap>)> {
    let mut ids = Vec::with_capacity(inputs.len());
    let mut rows = Vec::with_capacity(inputs.len());
    let mut seen = HashSet::new();
    for mut m in inputs {
        let id = match m.remove("id") {
            None | Some(Json::Null) => uuid::Uuid::new_v4().to_string(),
            Some(Json::String(s)) if !s.is_empty() && s.len() <= MAX_ID_LEN => s,
            // Integer ids are accepted and stored as their decimal text.
            Some(Json::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            Some(Json::String(s)) if s.is_empty() => {
                return Err(Error::Entity("entity id must not be empty".into()))
            }
            Some(other) => {
                return Err(Error::Entity(format!(
                    "entity id must be a string of at most {MAX_ID_LEN} characters (or an integer), got {other}"
                )))
            }
        };
        if !seen.insert(id.clone()) {
            return Err(Error::Entity(format!(
                "the batch contains id {id:?} more than once"
            )));
        }
        m.retain(|k, _| !is_reserved(k));
        let mut lower: HashMap<String, &str> = HashMap::with_capacity(m.len());
        for k in m.keys() {
            validate_field_name(k)?;
            if let Some(other) = lower.insert(k.to_ascii_lowercase(), k) {
                return Err(Error::Entity(format!(
                    "fields {other:?} and {k:?} differ only in case: field names are case-insensitive"
                )));
            }
        }
        ids.push(id);
        rows.push(m);
    }
    Ok((ids, rows))
}

/// Decides the new fields (with their types) and the Int→Float widenings a batch needs.
/// A new field whose name differs only in case from an existing or another new one is refused.
pub(super) fn plan_fields(
    entity: &str,
    schema: &Schema,
    rows: &[EntityMap],
    declared: &[FieldSpec],
) -> Result<(Vec<FieldSpec>, Vec<String>)> {
    let mut names = NewNames::new(entity, schema);
    let declared_by_name: HashMap<&str, &FieldSpec> =
        declared.iter().map(|d| (d.name.as_str(), d)).collect();
    let mut new: BTreeMap<String, FieldSpec> = BTreeMap::new();
    let mut widen = Vec::new();
    for d in declared {
        names.check(&d.name)?;
        if d.ty.is_some() && !schema.fields.contains_key(&d.name) {
            new.insert(d.name.clone(), d.clone());
        }
    }
    for row in rows {
        for (k, v) in row {
            if let Some(ty) = schema.fields.get(k) {
                if needs_widening(*ty, v) && !widen.contains(k) {
                    widen.push(k.clone());
                }
                continue;
            }
            names.check(k)?;
            let decl = declared_by_name.get(k.as_str());
            let inferred = match decl {
                // A declared type the derive could not see through: from its serde output.
                Some(_) => infer_declared(v),
                None => infer(v),
            };
            let Some(ty) = inferred else { continue };
            match new.get_mut(k) {
                None => {
                    new.insert(
                        k.clone(),
                        FieldSpec {
                            name: k.clone(),
                            ty: Some(ty),
                            index: decl.is_some_and(|d| d.index),
                            unique: decl.is_some_and(|d| d.unique),
                            value_type: None,
                        },
                    );
                }
                // Within one batch, integers and floats in a new field make it a float field.
                Some(spec) if spec.ty == Some(FieldType::Int) && ty == FieldType::Float => {
                    spec.ty = Some(FieldType::Float)
                }
                Some(_) => {}
            }
        }
    }
    Ok((new.into_values().collect(), widen))
}

/// The names a batch brings, checked against the entity's fields and each other: field names
/// are case-insensitive, and system names are reserved in every spelling.
struct NewNames<'a> {
    entity: &'a str,
    schema: &'a Schema,
    /// Existing fields by lower-case name.
    existing: HashMap<String, &'a String>,
    /// New names seen so far, by lower-case name.
    spelled: HashMap<String, String>,
}

impl<'a> NewNames<'a> {
    fn new(entity: &'a str, schema: &'a Schema) -> Self {
        NewNames {
            entity,
            schema,
            existing: schema
                .fields
                .keys()
                .map(|k| (k.to_ascii_lowercase(), k))
                .collect(),
            spelled: HashMap::new(),
        }
    }

    fn check(&mut self, name: &str) -> Result<()> {
        let entity = self.entity;
        if self.schema.fields.contains_key(name) {
            return Ok(());
        }
        let key = name.to_ascii_lowercase();
        if let Some(other) = self.existing.get(&key) {
            return Err(Error::Entity(format!(
                "field {name:?} of {entity} differs only in case from its existing field {other:?}: field names are case-insensitive"
            )));
        }
        if let Some(reserved) = reserved_ignoring_case(name) {
            return Err(Error::Entity(format!(
                "field name {name:?} is reserved: it is the system field {reserved:?} (field names are case-insensitive)"
            )));
        }
        match self.spelled.get(&key) {
            Some(other) if other != name => Err(Error::Entity(format!(
                "fields {other:?} and {name:?} of {entity} differ only in case: field names are case-insensitive"
            ))),
            Some(_) => Ok(()),
            None => {
                self.spelled.insert(key, name.to_owned());
                Ok(())
            }
        }
    }
}
