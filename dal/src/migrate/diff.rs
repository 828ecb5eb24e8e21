//! Declared schema vs live database → [`MigrationPlan`].

use super::model::EntitySchema;
use super::plan::MigrationPlan;
use crate::connection::Connection;
use crate::error::Result;

/// The plan that makes the live database match `schemas`.
pub(crate) async fn plan(
    conn: &mut Connection,
    schemas: &[EntitySchema],
    drop_undeclared: bool,
) -> Result<MigrationPlan> {
    let _ = (schemas, drop_undeclared);
    Ok(MigrationPlan::new(
        conn.backend(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    ))
}
