//! [`MigrationPlan`] and its [`Change`]s: what differs between the declared schema and the
//! live database, and the exact statements that make them agree.

use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::entity::FieldType;
use crate::sql::Backend;

/// One difference between the declared schema and the live database.
///
/// Serialized with a `change` tag (`{"change": "add_column", "entity": …}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Change {
    /// The entity's three tables (`name`, `name_meta`, `name_history`) are created.
    CreateEntity {
        /// Entity name.
        entity: String,
    },
    /// A column is added (to the entity's table and its history table) and recorded in
    /// `_meta`.
    AddColumn {
        /// Entity name.
        entity: String,
        /// Field name.
        field: String,
        /// Its logical type.
        ty: FieldType,
    },
    /// An index on the field. On MySQL/MariaDB a text column created unindexed (`LONGTEXT`)
    /// first becomes `VARCHAR(255)`, as indexed text fields are (the server refuses longer
    /// values in strict mode).
    AddIndex {
        /// Entity name.
        entity: String,
        /// Field name.
        field: String,
    },
    /// dal's index on a field that no longer declares one.
    DropIndex {
        /// Entity name.
        entity: String,
        /// Field name.
        field: String,
    },
    /// A unique index on the field.
    AddUnique {
        /// Entity name.
        entity: String,
        /// Field name.
        field: String,
    },
    /// dal's unique index on a field that no longer declares one.
    DropUnique {
        /// Entity name.
        entity: String,
        /// Field name.
        field: String,
    },
    /// The column becomes `NOT NULL`. `nulls` rows hold NULL today: with a default they are
    /// set to it first (destructive: NULLs are overwritten), without one the server refuses.
    SetNotNull {
        /// Entity name.
        entity: String,
        /// Field name.
        field: String,
        /// Rows of the entity's table whose value is NULL.
        nulls: u64,
    },
    /// The column accepts NULL again.
    DropNotNull {
        /// Entity name.
        entity: String,
        /// Field name.
        field: String,
    },
    /// The column's default becomes `default`.
    SetDefault {
        /// Entity name.
        entity: String,
        /// Field name.
        field: String,
        /// The default (string, number or boolean).
        default: serde_json::Value,
    },
    /// The column's default is removed.
    DropDefault {
        /// Entity name.
        entity: String,
        /// Field name.
        field: String,
    },
    /// A `CHECK` constraint.
    AddCheck {
        /// Entity name.
        entity: String,
        /// Field name.
        field: String,
        /// The expression (portable SQL).
        check: String,
    },
    /// dal's `CHECK` constraint of a field that declares another one, or none.
    DropCheck {
        /// Entity name.
        entity: String,
        /// Field name.
        field: String,
    },
    /// A foreign key to another entity's `id`.
    AddForeignKey {
        /// Entity name.
        entity: String,
        /// Field name.
        field: String,
        /// The referenced entity.
        references: String,
    },
    /// dal's foreign key of a field that references another entity, or none.
    DropForeignKey {
        /// Entity name.
        entity: String,
        /// Field name.
        field: String,
    },
    /// The column's type grows so that every stored value still fits (int → float or
    /// decimal).
    WidenType {
        /// Entity name.
        entity: String,
        /// Field name.
        field: String,
        /// Type recorded today.
        from: FieldType,
        /// Declared type.
        to: FieldType,
    },
    /// Any other type change: stored values may not survive (destructive).
    NarrowType {
        /// Entity name.
        entity: String,
        /// Field name.
        field: String,
        /// Type recorded today.
        from: FieldType,
        /// Declared type.
        to: FieldType,
    },
    /// A column no struct declares (only with
    /// [`drop_undeclared(true)`](super::Migrator::drop_undeclared)): dropped from the entity's
    /// table and `_meta` (destructive; the history table keeps its values).
    DropColumn {
        /// Entity name.
        entity: String,
        /// Field name.
        field: String,
    },
    /// A column no struct declares, kept (reported only; nothing is executed for it).
    Undeclared {
        /// Entity name.
        entity: String,
        /// Field name.
        field: String,
    },
}

impl Change {
    /// True for a change that may lose data: dropping a column, narrowing a type, making a
    /// column holding NULLs `NOT NULL`.
    pub fn is_destructive(&self) -> bool {
        match self {
            Change::DropColumn { .. } | Change::NarrowType { .. } => true,
            Change::SetNotNull { nulls, .. } => *nulls > 0,
            _ => false,
        }
    }

    /// The entity the change is about.
    pub fn entity(&self) -> &str {
        use Change as C;
        match self {
            C::CreateEntity { entity }
            | C::AddColumn { entity, .. }
            | C::AddIndex { entity, .. }
            | C::DropIndex { entity, .. }
            | C::AddUnique { entity, .. }
            | C::DropUnique { entity, .. }
            | C::SetNotNull { entity, .. }
            | C::DropNotNull { entity, .. }
            | C::SetDefault { entity, .. }
            | C::DropDefault { entity, .. }
            | C::AddCheck { entity, .. }
            | C::DropCheck { entity, .. }
            | C::AddForeignKey { entity, .. }
            | C::DropForeignKey { entity, .. }
            | C::WidenType { entity, .. }
            | C::NarrowType { entity, .. }
            | C::DropColumn { entity, .. }
            | C::Undeclared { entity, .. } => entity,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Change as C;
        match self {
            C::CreateEntity { entity } => write!(f, "create entity {entity}"),
            C::AddColumn { entity, field, ty } => {
                write!(f, "add column {entity}.{field} ({})", ty.as_str())
            }
            C::AddIndex { entity, field } => write!(f, "add index on {entity}.{field}"),
            C::DropIndex { entity, field } => write!(f, "drop index on {entity}.{field}"),
            C::AddUnique { entity, field } => write!(f, "add unique on {entity}.{field}"),
            C::DropUnique { entity, field } => write!(f, "drop unique on {entity}.{field}"),
            C::SetNotNull {
                entity,
                field,
                nulls,
            } => {
                write!(f, "set NOT NULL on {entity}.{field}")?;
                if *nulls > 0 {
                    write!(f, " (DESTRUCTIVE: {nulls} row(s) hold NULL)")?;
                }
                Ok(())
            }
            C::DropNotNull { entity, field } => write!(f, "drop NOT NULL on {entity}.{field}"),
            C::SetDefault {
                entity,
                field,
                default,
            } => write!(f, "set default {default} on {entity}.{field}"),
            C::DropDefault { entity, field } => write!(f, "drop default on {entity}.{field}"),
            C::AddCheck {
                entity,
                field,
                check,
            } => write!(f, "add check ({check}) on {entity}.{field}"),
            C::DropCheck { entity, field } => write!(f, "drop check on {entity}.{field}"),
            C::AddForeignKey {
                entity,
                field,
                references,
            } => write!(f, "add foreign key {entity}.{field} -> {references}.id"),
            C::DropForeignKey { entity, field } => {
                write!(f, "drop foreign key on {entity}.{field}")
            }
            C::WidenType {
                entity,
                field,
                from,
                to,
            } => write!(
                f,
                "widen {entity}.{field} from {} to {}",
                from.as_str(),
                to.as_str()
            ),
            C::NarrowType {
                entity,
                field,
                from,
                to,
            } => write!(
                f,
                "change {entity}.{field} from {} to {} (DESTRUCTIVE: values may not convert)",
                from.as_str(),
                to.as_str()
            ),
            C::DropColumn { entity, field } => {
                write!(f, "drop column {entity}.{field} (DESTRUCTIVE)")
            }
            C::Undeclared { entity, field } => write!(
                f,
                "column {entity}.{field} is not declared (kept; drop_undeclared(true) drops it)"
            ),
        }
    }
}

/// What [`Migrator::plan`](super::Migrator::plan) found, and the statements that apply it.
///
/// [`statements`](Self::statements) are exactly what [`Migrator::apply`](super::Migrator::apply)
/// runs, in the backend's native SQL: printing them is a dry run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationPlan {
    #[serde(serialize_with = "backend_name")]
    backend: Backend,
    changes: Vec<Change>,
    statements: Vec<String>,
    /// The same statements in portable SQL (what is executed; translates to `statements`).
    #[serde(skip)]
    portable: Vec<String>,
    checksum: String,
}

fn backend_name<S: serde::Serializer>(b: &Backend, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(b.as_str())
}

impl MigrationPlan {
    pub(crate) fn new(
        backend: Backend,
        changes: Vec<Change>,
        portable: Vec<String>,
        statements: Vec<String>,
    ) -> Self {
        let mut h = Sha256::new();
        h.update(backend.as_str().as_bytes());
        for s in &statements {
            h.update(b"\n");
            h.update(s.as_bytes());
        }
        let checksum = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        MigrationPlan {
            backend,
            changes,
            statements,
            portable,
            checksum,
        }
    }

    /// True when there is nothing to run (reported [`Change::Undeclared`] columns aside).
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// The statements, in the backend's native SQL, in the order they run.
    pub fn statements(&self) -> Vec<String> {
        self.statements.clone()
    }

    /// Every change found, in order (including [`Change::Undeclared`] reports).
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// The changes that may lose data ([`Change::is_destructive`]).
    pub fn destructive(&self) -> Vec<&Change> {
        self.changes.iter().filter(|c| c.is_destructive()).collect()
    }

    /// SHA-256 (hex) of the backend and the statements: the same plan has the same checksum.
    pub fn checksum(&self) -> &str {
        &self.checksum
    }

    /// The backend the statements are for.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn portable(&self) -> &[String] {
        &self.portable
    }
}

impl fmt::Display for MigrationPlan {
    /// The changes, one a line, then the statements.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return writeln!(f, "schema is up to date ({})", self.backend.as_str());
        }
        writeln!(
            f,
            "{} change(s) for {} (checksum {}):",
            self.changes.len(),
            self.backend.as_str(),
            &self.checksum[..8.min(self.checksum.len())]
        )?;
        for c in &self.changes {
            writeln!(f, "  - {c}")?;
        }
        if !self.statements.is_empty() {
            writeln!(f, "statements:")?;
            for s in &self.statements {
                writeln!(f, "{s};")?;
            }
        }
        Ok(())
    }
}
