//! `dal migrate plan|apply --schema FILE`: the declared schema (a JSON array of entity
//! schemas, as a program exports it) against the live database.

use std::path::Path;

use crate::shim::migrate::{EntitySchema, MigrationPlan, Migrator};
use anyhow::Context;
use dal::Database;

use super::describe;
use crate::cli::{ApplyArgs, SchemaArgs};
use crate::output::{Report, Text};

/// The declared schema in `path`: a JSON array of entity schemas.
pub fn read_schema(path: &Path) -> anyhow::Result<Vec<EntitySchema>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the schema file {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "the schema file {} is not a JSON array of entity schemas",
            path.display()
        )
    })
}

/// A migrator for `db` declaring every entity of the schema in `path`.
pub fn migrator<'d>(db: &'d Database, path: &Path) -> anyhow::Result<Migrator<'d>> {
    let mut m = Migrator::new(db);
    for schema in read_schema(path)? {
        m = m.schema(schema);
    }
    Ok(m)
}

pub async fn plan(db: &Database, args: SchemaArgs, json: bool) -> anyhow::Result<Report> {
    let plan = migrator(db, &args.schema)?
        .plan()
        .await
        .with_context(|| format!("cannot plan the migration of {}", describe(db)))?;
    Report::new(json, &plan, |t| write_plan(t, &plan, "would run"))
}

pub async fn apply(db: &Database, args: ApplyArgs, json: bool) -> anyhow::Result<Report> {
    let mut m = migrator(db, &args.schema.schema)?
        .allow_destructive(args.allow_destructive)
        .drop_undeclared(args.drop_undeclared);
    if let Some(dir) = &args.audit_dir {
        m = m.audit_dir(dir);
    }
    let plan = m
        .apply()
        .await
        .with_context(|| format!("cannot migrate {}", describe(db)))?;
    Report::new(json, &plan, |t| write_plan(t, &plan, "applied"))
}

/// The plan as SQL, one change after another; or that there is nothing to do.
fn write_plan(t: &mut Text, plan: &MigrationPlan, verb: &str) {
    if plan.is_empty() {
        t.line("nothing to do: the database matches the schema");
        return;
    }
    t.line(plan.to_string());
    let destructive = plan.destructive();
    let n = plan.statements().len();
    t.line(format!(
        "-- {verb}: {n} statement{}{}",
        if n == 1 { "" } else { "s" },
        if destructive.is_empty() {
            String::new()
        } else {
            format!(", {} destructive", destructive.len())
        }
    ));
}
