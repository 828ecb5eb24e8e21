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
    let fp = schema.fingerprint();
    if plain {
        let insert = insert_values(entity, fields, &[], rows, version);
        return format!("{insert} /* dal:{fp:x} */");
    }
    let insert = insert_values(entity, fields, &kept(schema, fields), rows, version);
    let tail = upsert_tail(dialect, entity, fields, schema);
    format!("{insert}{tail} /* dal:{fp:x} */")
}

/// The required fields (NOT NULL without a default) an upsert of `fields` leaves out: its
/// insert row carries their stored values (`(SELECT … WHERE id = ?)`, NULL for a new row, which
/// the server then refuses), and its update leaves them alone. Each takes the id as one more
/// parameter per row, after the fields.
pub(super) fn kept<'a>(schema: &'a Schema, fields: &[&String]) -> Vec<&'a str> {
    schema
        .required
        .iter()
        .filter(|r| !fields.iter().any(|f| f == r))
        .map(String::as_str)
        .collect()
}

/// The `INSERT … VALUES` of `rows` rows (system columns, `fields`, then the `kept` required
/// fields, see [`kept`]), without a conflict clause; parameters as [`upsert_sql`] says.
fn insert_values(
    entity: &str,
    fields: &[&String],
    kept: &[&str],
    rows: usize,
    version: NewVersion,
) -> String {
    let t = table(entity);
    let h = history_table(entity);
    let version = match version {
        NewVersion::FromHistory => format!(
            "(SELECT COALESCE(MAX([h].[version]), 0) + 1 FROM [{h}] [h] WHERE [h].[id] = ?)"
        ),
        NewVersion::Given => "?".to_owned(),
    };
    let stored: String = kept
        .iter()
        .map(|k| format!(", (SELECT [cur].[{k}] FROM [{t}] [cur] WHERE [cur].[id] = ?)"))
        .collect();
    let one = format!(
        "(?, ?, ?, ?, ?, {version}{}{stored})",
        ", ?".repeat(fields.len())
    );
    let values = vec![one; rows].join(", ");
    format!(
        "INSERT INTO [{t}] ({}) VALUES {values}",
        column_list(&insert_columns(fields, kept))
    )
}

/// The columns an upsert writes: the system columns it sets, then `fields`, then `kept`.
fn insert_columns<'a>(fields: &[&'a String], kept: &[&'a str]) -> Vec<&'a str> {
    let mut cols: Vec<&str> = vec![
        "id",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
        "version",
    ];
    cols.extend(fields.iter().map(|f| f.as_str()));
    cols.extend(kept);
    cols
}

/// The dialect's upsert tail for `fields`: they and `updated_at`/`updated_by` take the new
/// values (created_at/created_by stay), the version grows by one under the row lock.
fn upsert_tail(dialect: &dyn Dialect, entity: &str, fields: &[&String], schema: &Schema) -> String {
    let mut updates: Vec<&str> = fields.iter().map(|f| f.as_str()).collect();
    updates.push("updated_at");
    updates.push("updated_by");
    dialect.upsert_tail(&table(entity), &updates, &column_list(&columns(schema)))
}

/// What a one-statement save requires of the stored row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// Nothing: created or updated.
    Any,
    /// It must not exist (expected version 0).
    Absent,
    /// It must exist at the version given as a parameter.
    At,
}

/// The save of one entity as ONE statement (where the dialect has data-modifying CTEs,
/// PostgreSQL): the upsert (the version one past the history's for a new row, one past the
/// row's under its row lock for an existing one) RETURNING the stored row, which feeds the
/// history append, and the stored row as the statement's result. No row comes back when the
/// expectation is not met, and then nothing was written.
///
/// Parameters: with [`Expect::Any`] and [`Expect::Absent`], those of [`upsert_sql`] for one
/// row ([`NewVersion::FromHistory`]); with [`Expect::At`], the fields, `updated_at`,
/// `updated_by`, the id and the expected version. Then, always, the history timestamp, user
/// and comment.
pub(super) fn save_one_sql(
    dialect: &dyn Dialect,
    entity: &str,
    fields: &[&String],
    schema: &Schema,
    expect: Expect,
) -> String {
    let t = table(entity);
    let returning = column_list(&columns(schema));
    let write = match expect {
        Expect::Any => format!(
            "{}{}",
            insert_values(
                entity,
                fields,
                &kept(schema, fields),
                1,
                NewVersion::FromHistory
            ),
            upsert_tail(dialect, entity, fields, schema)
        ),
        Expect::Absent => format!(
            "{} ON CONFLICT ([id]) DO NOTHING RETURNING {returning}",
            insert_values(entity, fields, &[], 1, NewVersion::FromHistory)
        ),
        Expect::At => {
            let set: Vec<String> = fields
                .iter()
                .map(|f| f.as_str())
                .chain(["updated_at", "updated_by"])
                .map(|c| format!("[{c}] = ?"))
                .collect();
            format!(
                "UPDATE [{t}] SET {}, [version] = [version] + 1 WHERE [id] = ? AND [version] = ? RETURNING {returning}",
                set.join(", ")
            )
        }
    };
    with_history(entity, schema, &write)
}

/// `write` (an upsert RETURNING every column) as the first CTE of one statement that appends
/// each row it returns to the history (timestamp, user and comment: the last three
/// parameters) and returns them.
fn with_history(entity: &str, schema: &Schema, write: &str) -> String {
    let h = history_table(entity);
    let cols = columns(schema);
    let list = column_list(&cols);
    let from_up: Vec<String> = cols.iter().map(|c| format!("[up].[{c}]")).collect();
    format!(
        "WITH [up] AS ({write}), [hist] AS (INSERT INTO [{h}] ({list}, [history_timestamp], [history_user_id], [history_comment]) \
         SELECT {}, ?, ?, ? FROM [up]) SELECT {list} FROM [up] /* dal:{:x} */",
        from_up.join(", "),
        schema.fingerprint()
    )
}

/// The staging table of a bulk save (PostgreSQL, in the session's temporary schema; created
/// and dropped inside the save's transaction).
pub(super) const STAGE: &str = "dal_save_stage";

/// Creates the staging table: the id and `fields`, of the entity table's column types.
pub(super) fn create_stage_sql(entity: &str, fields: &[&String]) -> String {
    let mut cols = vec!["id"];
    cols.extend(fields.iter().map(|f| f.as_str()));
    format!(
        "CREATE TABLE pg_temp.[{STAGE}] AS SELECT {} FROM [{}] WITH NO DATA",
        column_list(&cols),
        table(entity)
    )
}

/// `COPY` of the id and `fields` into the staging table, text format.
pub(super) fn copy_stage_sql(fields: &[&String]) -> String {
    let mut cols = vec!["id"];
    cols.extend(fields.iter().map(|f| f.as_str()));
    format!("COPY pg_temp.[{STAGE}] ({}) FROM STDIN", column_list(&cols))
}

/// Merges the staging table into the entity table and its history in ONE statement: rows in
/// id order (byte order, as the batch path locks them), each new row's version one past its
/// history's, an existing row's one past its own under its row lock; every stored row appended
/// to the history and returned. Parameters: created_at, created_by, updated_at, updated_by,
/// then the history timestamp, user and comment.
pub(super) fn merge_stage_sql(
    dialect: &dyn Dialect,
    entity: &str,
    fields: &[&String],
    schema: &Schema,
) -> String {
    let h = history_table(entity);
    let from_stage: Vec<String> = fields.iter().map(|f| format!("[s].[{f}]")).collect();
    let mut select = format!(
        "SELECT [s].[id], ?, ?, ?, ?, COALESCE((SELECT MAX([h].[version]) FROM [{h}] [h] WHERE [h].[id] = [s].[id]), 0) + 1"
    );
    for f in &from_stage {
        select.push_str(", ");
        select.push_str(f);
    }
    let kept = kept(schema, fields);
    let t = table(entity);
    for k in &kept {
        select.push_str(&format!(
            ", (SELECT [cur].[{k}] FROM [{t}] [cur] WHERE [cur].[id] = [s].[id])"
        ));
    }
    let write = format!(
        "INSERT INTO [{}] ({}) {select} FROM pg_temp.[{STAGE}] [s] ORDER BY [s].[id] COLLATE \"C\"{}",
        table(entity),
        column_list(&insert_columns(fields, &kept)),
        upsert_tail(dialect, entity, fields, schema)
    );
    with_history(entity, schema, &write)
}

/// Drops the staging table.
pub(super) fn drop_stage_sql() -> String {
    format!("DROP TABLE pg_temp.[{STAGE}]")
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
