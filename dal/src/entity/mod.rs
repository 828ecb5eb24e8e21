//! The entity layer: dictionaries (or typed structs) stored with automatic schema, evolution,
//! history and soft delete.

pub mod typed;

pub use typed::{Entity, FieldDef, FieldType};
