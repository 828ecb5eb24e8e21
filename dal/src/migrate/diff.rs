//! Declared schema vs live database → [`MigrationPlan`]. Reading the database is
//! [`catalog`](super::catalog)'s; deciding is [`plan_entity`], a pure function.

use std::collections::HashMap;

use super::catalog::{self, LiveEntity};
use super::ddl::{
    check_name, check_prefix, column_def, default_matches, fk_name, fk_prefix, keyed, literal,
    meta_delete, meta_insert, meta_update, sqlite_rebuild,
};
use super::model::EntitySchema;
use super::plan::{Change, MigrationPlan};
use crate::backend::dialect;
use crate::connection::Connection;
use crate::entity::schema::{
    create_table_statements, history_table, index_name, meta_table, table, SYSTEM_FIELDS,
};
use crate::entity::FieldType;
use crate::error::Result;
use crate::sql::Backend;

/// The plan that makes the live database match `schemas`.
pub(crate) async fn plan(
    conn: &mut Connection,
    schemas: &[EntitySchema],
    drop_undeclared: bool,
) -> Result<MigrationPlan> {
    let backend = conn.backend();
    let mut changes = Vec::new();
    let mut portable = Vec::new();
    let mut deferred = Vec::new();
    for decl in referenced_first(schemas) {
        let live = catalog::load(conn, &decl.name).await?;
        let mut nulls = HashMap::new();
        for f in decl.fields.iter().filter(|f| !f.nullable) {
            if live.column(&f.name).is_some_and(|c| c.nullable) {
                let n = conn
                    .query_count(
                        &format!(
                            "SELECT COUNT(*) FROM [{}] WHERE [{}] IS NULL",
                            table(&decl.name),
                            f.name
                        ),
                        vec![],
                    )
                    .await?;
                nulls.insert(f.name.clone(), n.max(0) as u64);
            }
        }
        let p = plan_entity(backend, decl, &live, &nulls, drop_undeclared)?;
        changes.extend(p.changes);
        portable.extend(p.statements);
        deferred.extend(p.deferred);
    }
    portable.extend(deferred);
    let native = portable
        .iter()
        .map(|s| crate::sql::to_native(s, backend))
        .collect::<Result<Vec<_>>>()?;
    Ok(MigrationPlan::new(backend, changes, portable, native))
}

/// The declarations, each entity after those it references (SQLite checks a foreign key's
/// table when the column is added); a cycle keeps the given order.
fn referenced_first(schemas: &[EntitySchema]) -> Vec<&EntitySchema> {
    let mut out: Vec<&EntitySchema> = Vec::with_capacity(schemas.len());
    let mut pending: Vec<&EntitySchema> = schemas.iter().collect();
    while !pending.is_empty() {
        let ready = pending.iter().position(|s| {
            s.fields
                .iter()
                .filter_map(|f| f.references.as_deref())
                .all(|r| r == s.name || !pending.iter().any(|p| p.name == r))
        });
        // A cycle: take the first one as it comes.
        out.push(pending.remove(ready.unwrap_or(0)));
    }
    out
}

/// One entity's part of a plan.
#[derive(Debug, Default)]
pub(crate) struct EntityPlan {
    pub changes: Vec<Change>,
    pub statements: Vec<String>,
    /// Foreign keys: run after every entity's tables exist.
    pub deferred: Vec<String>,
}

/// Where a statement goes within an entity's part, in this order.
#[derive(Default)]
struct Buckets {
    /// Tables, columns, `_meta`.
    early: Vec<String>,
    /// Types, defaults, NULL fills, NOT NULL, checks, dropped indexes and foreign keys.
    alter: Vec<String>,
    /// New indexes, dropped columns.
    late: Vec<String>,
}

/// Decides the changes and statements for one entity. `nulls`: NULL counts of existing
/// nullable columns that are declared NOT NULL.
pub(crate) fn plan_entity(
    backend: Backend,
    decl: &EntitySchema,
    live: &LiveEntity,
    nulls: &HashMap<String, u64>,
    drop_undeclared: bool,
) -> Result<EntityPlan> {
    let d = dialect(backend);
    let e = decl.name.as_str();
    let (t, h, m) = (table(e), history_table(e), meta_table(e));
    let sqlite = backend == Backend::Sqlite;
    let mut out = EntityPlan::default();
    let mut b = Buckets::default();
    let mut rebuild = false;
    let mut dropped_indexes: Vec<String> = Vec::new();
    let mut dropped_columns: Vec<String> = Vec::new();

    if !live.exists {
        out.changes.push(Change::CreateEntity {
            entity: e.to_owned(),
        });
        b.early.extend(create_table_statements(d, e));
    }

    for f in &decl.fields {
        let field = f.name.clone();
        let entity = e.to_owned();
        let col = live.column(&f.name);
        let recorded = live.meta.get(&f.name).and_then(|s| FieldType::parse(s));
        let Some(ty) = f.ty.or(recorded) else {
            // Neither declared nor recorded: the first save decides the type.
            continue;
        };
        let mut modify = false; // MySQL: one MODIFY with the full definition
        let mut constraints_in_add = false; // SQLite: checks and FKs written in ADD COLUMN
        match col {
            None => {
                out.changes.push(Change::AddColumn {
                    entity: entity.clone(),
                    field: field.clone(),
                    ty,
                });
                let col_ty = d.column_type(ty, keyed(f));
                let mut def = col_ty.to_owned();
                if let Some(v) = &f.default {
                    def.push_str(&format!(" DEFAULT {}", literal(backend, ty, v)?));
                }
                match backend {
                    Backend::MySql if !f.nullable => def.push_str(" NOT NULL"),
                    Backend::Sqlite => {
                        if !f.nullable && f.default.is_some() {
                            def.push_str(" NOT NULL");
                        } else if !f.nullable {
                            rebuild = true;
                        }
                        if let Some(c) = &f.check {
                            def.push_str(&format!(
                                " CONSTRAINT [{}] CHECK ({c})",
                                check_name(e, &f.name, c)
                            ));
                        }
                        if let Some(r) = &f.references {
                            def.push_str(&format!(
                                " CONSTRAINT [{}] REFERENCES [{r}] ([id])",
                                fk_name(e, &f.name, r)
                            ));
                        }
                        constraints_in_add = true;
                    }
                    _ => {}
                }
                b.early.push(d.add_column(&t, &f.name, &def));
                if !live.history_columns.contains(&f.name) {
                    b.early.push(d.add_column(&h, &f.name, col_ty));
                }
                b.early.push(meta_insert(d, backend, &m, &f.name, ty));
                if let Some(v) = &f.default {
                    out.changes.push(Change::SetDefault {
                        entity: entity.clone(),
                        field: field.clone(),
                        default: v.clone(),
                    });
                }
                if !f.nullable {
                    let n = if f.default.is_some() { 0 } else { live.rows };
                    out.changes.push(Change::SetNotNull {
                        entity: entity.clone(),
                        field: field.clone(),
                        nulls: n,
                    });
                    if backend == Backend::Postgres {
                        b.alter.push(format!(
                            "ALTER TABLE [{t}] ALTER COLUMN [{field}] SET NOT NULL"
                        ));
                    }
                }
            }
            Some(col) => {
                if !live.meta.contains_key(&f.name) {
                    // A column without its metadata row (an interrupted MySQL migration).
                    out.changes.push(Change::AddColumn {
                        entity: entity.clone(),
                        field: field.clone(),
                        ty,
                    });
                    if !live.history_columns.contains(&f.name) {
                        b.early
                            .push(d.add_column(&h, &f.name, d.column_type(ty, keyed(f))));
                    }
                    b.early.push(meta_insert(d, backend, &m, &f.name, ty));
                }
                // Type.
                if let (Some(want), Some(have)) = (f.ty, recorded) {
                    if want != have {
                        let widen = have == FieldType::Int
                            && matches!(want, FieldType::Float | FieldType::Decimal);
                        out.changes.push(if widen {
                            Change::WidenType {
                                entity: entity.clone(),
                                field: field.clone(),
                                from: have,
                                to: want,
                            }
                        } else {
                            Change::NarrowType {
                                entity: entity.clone(),
                                field: field.clone(),
                                from: have,
                                to: want,
                            }
                        });
                        let nt = d.column_type(want, keyed(f));
                        match backend {
                            Backend::Postgres => {
                                for tab in [&t, &h] {
                                    b.alter.push(format!(
                                        "ALTER TABLE [{tab}] ALTER COLUMN [{field}] TYPE {nt} USING CAST([{field}] AS {nt})"
                                    ));
                                }
                            }
                            Backend::MySql => {
                                modify = true;
                                b.alter.push(format!(
                                    "ALTER TABLE [{h}] MODIFY COLUMN [{field}] {nt}"
                                ));
                            }
                            Backend::Sqlite => {
                                // SQLite keeps REAL values in an INTEGER column as they are.
                                if !(have == FieldType::Int && want == FieldType::Float) {
                                    rebuild = true;
                                }
                            }
                        }
                        b.alter.push(meta_update(backend, &m, &f.name, want));
                    }
                }
                // Default.
                match &f.default {
                    Some(v) if !default_matches(backend, ty, v, col.default.as_deref()) => {
                        out.changes.push(Change::SetDefault {
                            entity: entity.clone(),
                            field: field.clone(),
                            default: v.clone(),
                        });
                        match backend {
                            Backend::Postgres => b.alter.push(format!(
                                "ALTER TABLE [{t}] ALTER COLUMN [{field}] SET DEFAULT {}",
                                literal(backend, ty, v)?
                            )),
                            Backend::MySql => modify = true,
                            Backend::Sqlite => rebuild = true,
                        }
                    }
                    None if col.default.is_some() => {
                        out.changes.push(Change::DropDefault {
                            entity: entity.clone(),
                            field: field.clone(),
                        });
                        match backend {
                            Backend::Postgres => b.alter.push(format!(
                                "ALTER TABLE [{t}] ALTER COLUMN [{field}] DROP DEFAULT"
                            )),
                            Backend::MySql => modify = true,
                            Backend::Sqlite => rebuild = true,
                        }
                    }
                    _ => {}
                }
                // NOT NULL.
                if !f.nullable && col.nullable {
                    let n = nulls.get(&f.name).copied().unwrap_or(0);
                    out.changes.push(Change::SetNotNull {
                        entity: entity.clone(),
                        field: field.clone(),
                        nulls: n,
                    });
                    if n > 0 {
                        if let Some(v) = &f.default {
                            b.alter.push(format!(
                                "UPDATE [{t}] SET [{field}] = {} WHERE [{field}] IS NULL",
                                literal(backend, ty, v)?
                            ));
                        }
                    }
                    match backend {
                        Backend::Postgres => b.alter.push(format!(
                            "ALTER TABLE [{t}] ALTER COLUMN [{field}] SET NOT NULL"
                        )),
                        Backend::MySql => modify = true,
                        Backend::Sqlite => rebuild = true,
                    }
                } else if f.nullable && !col.nullable {
                    out.changes.push(Change::DropNotNull {
                        entity: entity.clone(),
                        field: field.clone(),
                    });
                    match backend {
                        Backend::Postgres => b.alter.push(format!(
                            "ALTER TABLE [{t}] ALTER COLUMN [{field}] DROP NOT NULL"
                        )),
                        Backend::MySql => modify = true,
                        Backend::Sqlite => rebuild = true,
                    }
                }
                // MySQL cannot index LONGTEXT: an indexed text field needs a bounded type.
                let missing_key = (f.index
                    && !live.indexes.contains_key(&index_name(e, &f.name, false)))
                    || (f.unique && !live.indexes.contains_key(&index_name(e, &f.name, true)))
                    || f.references
                        .as_ref()
                        .is_some_and(|r| !live.constraints.contains(&fk_name(e, &f.name, r)));
                let bound_text = backend == Backend::MySql
                    && missing_key
                    && ty == FieldType::Text
                    && col.sql_type.eq_ignore_ascii_case("longtext");
                if modify || bound_text {
                    let keep = if bound_text {
                        Some(d.column_type(FieldType::Text, true))
                    } else if f.ty.is_some_and(|w| Some(w) != recorded) {
                        None
                    } else {
                        Some(col.sql_type.as_str())
                    };
                    b.alter.push(format!(
                        "ALTER TABLE [{t}] MODIFY COLUMN {}",
                        column_def(d, backend, f, keep)?
                    ));
                }
            }
        }

        // Check.
        let prefix = check_prefix(e, &f.name);
        let have: Vec<&String> = live
            .constraints
            .iter()
            .filter(|c| c.starts_with(&prefix))
            .collect();
        let want = f.check.as_ref().map(|c| (check_name(e, &f.name, c), c));
        for old in &have {
            if want.as_ref().is_some_and(|(n, _)| n == *old) {
                continue;
            }
            out.changes.push(Change::DropCheck {
                entity: entity.clone(),
                field: field.clone(),
            });
            match backend {
                Backend::Postgres | Backend::MySql => b
                    .alter
                    .push(format!("ALTER TABLE [{t}] DROP CONSTRAINT [{old}]")),
                Backend::Sqlite => rebuild = true,
            }
        }
        if let Some((name, expr)) = &want {
            if !have.contains(&name) {
                out.changes.push(Change::AddCheck {
                    entity: entity.clone(),
                    field: field.clone(),
                    check: (*expr).clone(),
                });
                match backend {
                    Backend::Postgres | Backend::MySql => b.alter.push(format!(
                        "ALTER TABLE [{t}] ADD CONSTRAINT [{name}] CHECK ({expr})"
                    )),
                    Backend::Sqlite if constraints_in_add => {}
                    Backend::Sqlite => rebuild = true,
                }
            }
        }
        // Foreign key.
        let prefix = fk_prefix(e, &f.name);
        let have: Vec<&String> = live
            .constraints
            .iter()
            .filter(|c| c.starts_with(&prefix))
            .collect();
        let want = f.references.as_ref().map(|r| (fk_name(e, &f.name, r), r));
        for old in &have {
            if want.as_ref().is_some_and(|(n, _)| n == *old) {
                continue;
            }
            out.changes.push(Change::DropForeignKey {
                entity: entity.clone(),
                field: field.clone(),
            });
            match backend {
                Backend::Postgres => b
                    .alter
                    .push(format!("ALTER TABLE [{t}] DROP CONSTRAINT [{old}]")),
                Backend::MySql => b
                    .alter
                    .push(format!("ALTER TABLE [{t}] DROP FOREIGN KEY [{old}]")),
                Backend::Sqlite => rebuild = true,
            }
        }
        if let Some((name, target)) = &want {
            if !have.contains(&name) {
                out.changes.push(Change::AddForeignKey {
                    entity: entity.clone(),
                    field: field.clone(),
                    references: (*target).clone(),
                });
                match backend {
                    Backend::Postgres | Backend::MySql => out.deferred.push(format!(
                        "ALTER TABLE [{t}] ADD CONSTRAINT [{name}] FOREIGN KEY ([{field}]) REFERENCES [{target}] ([id])"
                    )),
                    Backend::Sqlite if constraints_in_add => {}
                    Backend::Sqlite => rebuild = true,
                }
            }
        }
        // Indexes.
        for unique in [false, true] {
            let name = index_name(e, &f.name, unique);
            let wanted = if unique { f.unique } else { f.index };
            let exists = live.indexes.contains_key(&name);
            if wanted && !exists {
                out.changes.push(if unique {
                    Change::AddUnique {
                        entity: entity.clone(),
                        field: field.clone(),
                    }
                } else {
                    Change::AddIndex {
                        entity: entity.clone(),
                        field: field.clone(),
                    }
                });
                b.late.push(d.create_index(unique, &name, &t, &f.name));
            } else if !wanted && exists {
                out.changes.push(if unique {
                    Change::DropUnique {
                        entity: entity.clone(),
                        field: field.clone(),
                    }
                } else {
                    Change::DropIndex {
                        entity: entity.clone(),
                        field: field.clone(),
                    }
                });
                b.alter.push(match backend {
                    Backend::MySql => format!("DROP INDEX [{name}] ON [{t}]"),
                    _ => format!("DROP INDEX IF EXISTS [{name}]"),
                });
                dropped_indexes.push(name);
            }
        }
    }

    // Columns no declaration lists.
    if live.exists {
        for (name, _) in &live.columns {
            if SYSTEM_FIELDS.contains(&name.as_str()) || decl.fields.iter().any(|f| &f.name == name)
            {
                continue;
            }
            let (entity, field) = (e.to_owned(), name.clone());
            if drop_undeclared {
                out.changes.push(Change::DropColumn { entity, field });
                if sqlite {
                    rebuild = true;
                } else {
                    // dal's checks and foreign keys on the column go first (MySQL refuses to
                    // drop a column a table-level check names).
                    for c in live.constraints.iter().filter(|c| {
                        c.starts_with(&check_prefix(e, name)) || c.starts_with(&fk_prefix(e, name))
                    }) {
                        b.late
                            .push(if backend == Backend::MySql && c.starts_with("dal_fk_") {
                                format!("ALTER TABLE [{t}] DROP FOREIGN KEY [{c}]")
                            } else {
                                format!("ALTER TABLE [{t}] DROP CONSTRAINT [{c}]")
                            });
                    }
                    b.late
                        .push(format!("ALTER TABLE [{t}] DROP COLUMN [{name}]"));
                }
                b.late.push(meta_delete(backend, &m, name));
                dropped_columns.push(name.clone());
            } else {
                out.changes.push(Change::Undeclared { entity, field });
            }
        }
    }

    out.statements.extend(b.early);
    out.statements.extend(b.alter);
    if sqlite && rebuild {
        // A table created by this plan is rebuilt from its system columns.
        let created;
        let base = if live.exists {
            live
        } else {
            created = LiveEntity::sqlite_system_columns();
            &created
        };
        out.statements.extend(sqlite_rebuild(
            d,
            decl,
            base,
            &dropped_columns,
            &dropped_indexes,
        )?);
    }
    out.statements.extend(b.late);
    Ok(out)
}
