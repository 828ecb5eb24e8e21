//! `dal rollback --entity NAME [--id ID] --to TIMESTAMP`: entities back to their state at a
//! past time, from their history.

use anyhow::{bail, Context};
use dal::Database;

use super::describe;
use crate::cli::RollbackArgs;
use crate::output::Report;

pub async fn rollback(db: &Database, args: RollbackArgs, json: bool) -> anyhow::Result<Report> {
    let at = args.to;
    let mut conn = db
        .async_connection()
        .await
        .with_context(|| format!("cannot reach {}", describe(db)))?;
    let report = match &args.id {
        Some(id) => conn.rollback_entity_to(&args.entity, id, at).await,
        None => conn.rollback_entities_to(&args.entity, at).await,
    }
    .with_context(|| {
        let what = match &args.id {
            Some(id) => format!("{} {id}", args.entity),
            None => args.entity.clone(),
        };
        format!("cannot roll {what} back to {}", at.to_rfc3339())
    })?;
    if let Some(id) = &args.id {
        // The library reports an id it does not know as nothing done.
        let touched = report.restored + report.recreated + report.deleted + report.unchanged;
        if touched == 0 {
            bail!(
                "no {} entity with id {id:?}, now or at {}: nothing rolled back",
                args.entity,
                at.to_rfc3339()
            );
        }
    }
    Report::new(json, &report, |t| {
        t.line(format!(
            "rolled {} back to {}: {} restored, {} recreated, {} deleted, {} unchanged",
            args.entity,
            at.to_rfc3339(),
            report.restored,
            report.recreated,
            report.deleted,
            report.unchanged
        ))
    })
}
