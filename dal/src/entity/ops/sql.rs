//! The statements of the save path, as pure functions of the schema and the dialect.

use super::super::schema::{history_table, table, Schema};
use super::columns;
use crate::backend::{column_list, Dialect};

/// How the upsert learns a new row's version: one past the highest in its history (1 for a
/// new id; more for an id whose entity was permanently deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NewVersion {
    /// Looked up by the statement itself, from the row's id (a subquery per row: right for
    /// one row; for many, the server plans one subquery per row).
    FromHistory,
    /// Given as a parameter, looked up beforehand for the whole batch
    /// ([`next_versions_sql`]).
    Given,
}

/// The multi-row upsert of `rows` rows with `fields` (after the system columns). An existing
/// row's version grows by one under its row lock; a new row's comes as `version` says. Per
/// row, the parameters are: id, created_at, created_by, updated_at, updated_by, then the id
/// again ([`NewVersion::FromHistory`]) or the version ([`NewVersion::Given`]), then the fields.
pub(super) fn upsert_sql(
    dialect: &dyn Dialect,
    entity: &str,
    fields: &[&String],
    rows: usize,
    schema: &Schema,
    plain: bool,
    version: NewVersion,
) -> String {
    let t = table(entity);
    let h = history_table(entity);
    let fp = schema.fingerprint();
    let version = match version {
        NewVersion::FromHistory => format!(
            "(SELECT COALESCE(MAX([h].[version]), 0) + 1 FROM [{h}] [h] WHERE [h].[id] = ?)"
        ),
        NewVersion::Given => "?".to_owned(),
    };
    let one = format!("(?, ?, ?, ?, ?, {version}{})", ", ?".repeat(fields.len()));
    let values = vec![one; rows].join(", ");
    let mut cols: Vec<&str> = vec![
        "id",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
        "version",
    ];
    cols.extend(fields.iter().map(|f| f.as_str()));
    let insert = format!("INSERT INTO [{t}] ({}) VALUES {values}", column_list(&cols));
    if plain {
        return format!("{insert} /* dal:{fp:x} */");
    }
    let mut updates: Vec<&str> = fields.iter().map(|f| f.as_str()).collect();
    updates.push("updated_at");
    updates.push("updated_by");
    let tail = dialect.upsert_tail(&t, &updates, &column_list(&columns(schema)));
    format!("{insert}{tail} /* dal:{fp:x} */")
}

/// The highest history version of each of `n` ids (`?` each) that has history.
pub(super) fn next_versions_sql(entity: &str, n: usize) -> String {
    format!(
        "SELECT [id], MAX([version]) FROM [{}] WHERE [id] IN ({}) GROUP BY [id]",
        history_table(entity),
        crate::backend::placeholders(n)
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::entity::FieldType;
    use crate::sql::translate;

    fn schema() -> Schema {
        Schema::with_fields(BTreeMap::from([
            ("age".to_owned(), FieldType::Int),
            ("name".to_owned(), FieldType::Text),
        ]))
    }

    #[test]
    fn upserts_bump_the_version_and_return_rows_where_the_backend_can() {
        let name = "name".to_owned();
        let fields = [&name];
        for backend in crate::sql::Backend::ALL {
            let d = crate::backend::dialect(backend);
            let sql = upsert_sql(
                d,
                "users",
                &fields,
                2,
                &schema(),
                false,
                NewVersion::FromHistory,
            );
            // Two rows of 6 system parameters and one field each.
            assert_eq!(translate(&sql, backend).unwrap().placeholders, 14, "{sql}");
            assert!(sql.contains("COALESCE(MAX([h].[version]), 0) + 1 FROM [users_history]"));
            match d.upsert_returns_rows() {
                false => {
                    assert!(sql.contains("ON DUPLICATE KEY UPDATE [name] = VALUES([name])"));
                    assert!(sql.contains("[version] = [version] + 1"));
                    assert!(!sql.contains("RETURNING"));
                }
                _ => {
                    assert!(
                        sql.contains("ON CONFLICT ([id]) DO UPDATE SET [name] = excluded.[name]")
                    );
                    assert!(sql.contains("[version] = [users].[version] + 1"));
                    assert!(sql.contains("RETURNING [id], "));
                }
            }
            let plain = upsert_sql(d, "users", &fields, 1, &schema(), true, NewVersion::Given);
            assert!(plain.contains("(?, ?, ?, ?, ?, ?, ?)"), "{plain}");
            assert!(!plain.contains("MAX("));
            assert!(
                plain.starts_with("INSERT INTO [users] ([id], [created_at]"),
                "{plain}"
            );
            assert!(!plain.contains("ON CONFLICT") && !plain.contains("ON DUPLICATE"));
        }
    }
}
