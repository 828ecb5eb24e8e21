//! `dal migrate plan|apply --schema FILE`: the declared schema (a JSON array of entity
//! schemas, as a program exports it) against the live database.

use std::path::Path;

use anyhow::{bail, Context};
use dal::migrate::{Change, MigrationPlan, Migrator};
use dal::Database;

use super::describe;
use crate::cli::{ApplyArgs, SchemaArgs};
use crate::output::{Report, Text};

/// A migrator for `db` declaring every entity of the schema file `path` (a JSON array of
/// entity schemas; the library reads and checks it before connecting).
pub fn migrator<'d>(db: &'d Database, path: &Path) -> Migrator<'d> {
    Migrator::new(db).schema_file(path)
}

fn declared<'d>(db: &'d Database, args: &SchemaArgs) -> Migrator<'d> {
    migrator(db, &args.schema).drop_undeclared(args.drop_undeclared)
}

pub async fn plan(db: &Database, args: SchemaArgs, json: bool) -> anyhow::Result<Report> {
    let plan = declared(db, &args)
        .plan()
        .await
        .with_context(|| format!("cannot plan the migration of {}", describe(db)))?;
    Report::new(json, &plan, |t| write_plan(t, &plan, "would run"))
}

pub async fn apply(db: &Database, args: ApplyArgs, json: bool) -> anyhow::Result<Report> {
    let mut m = declared(db, &args.schema).allow_destructive(args.allow_destructive);
    if !args.allow_destructive {
        // The library refuses too (under its lock); this says it in the tool's terms.
        let plan = m
            .plan()
            .await
            .with_context(|| format!("cannot plan the migration of {}", describe(db)))?;
        let destructive = plan.destructive();
        if !destructive.is_empty() {
            let list: Vec<String> = destructive.iter().map(ToString::to_string).collect();
            bail!(
                "the plan has {} destructive change(s), refused without --allow-destructive \
                 (nothing was applied): {}",
                list.len(),
                list.join("; ")
            );
        }
    }
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
    // The changes, one a line, then the SQL that makes them (or "schema is up to date").
    t.text(&plan.to_string());
    if plan
        .changes()
        .iter()
        .any(|c| matches!(c, Change::Undeclared { .. }))
    {
        t.line("-- columns the schema does not declare are kept; --drop-undeclared drops them");
    }
    if plan.is_empty() {
        return;
    }
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
