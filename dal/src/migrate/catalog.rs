//! Reading the live schema of an entity from the catalog (`information_schema`, `pg_catalog`,
//! SQLite pragmas) and its `_meta` table.

use std::collections::{BTreeMap, BTreeSet};

use crate::connection::Connection;
use crate::entity::schema::{history_table, meta_table, table};
use crate::error::Result;
use crate::row::Row;
use crate::sql::Backend;
use crate::value::Value;

/// One column of the entity's table, as the catalog describes it.
#[derive(Debug, Clone)]
pub(crate) struct LiveColumn {
    /// The type as the backend spells it (`bigint`, `varchar(255)`, `INTEGER`).
    pub sql_type: String,
    pub nullable: bool,
    /// The default expression as the catalog shows it.
    pub default: Option<String>,
}

/// What exists of one entity.
#[derive(Debug, Clone, Default)]
pub(crate) struct LiveEntity {
    /// The three tables exist.
    pub exists: bool,
    /// `_meta`: field → recorded type name.
    pub meta: BTreeMap<String, String>,
    /// Columns of the entity's table, in table order (system columns included).
    pub columns: Vec<(String, LiveColumn)>,
    /// Columns of the history table.
    pub history_columns: BTreeSet<String>,
    /// Index name → unique.
    pub indexes: BTreeMap<String, bool>,
    /// Names of CHECK and FOREIGN KEY constraints on the entity's table.
    pub constraints: BTreeSet<String>,
    /// SQLite: the `CREATE INDEX` statements of the entity's table, by index name.
    pub index_sql: BTreeMap<String, String>,
    /// Rows in the entity's table.
    pub rows: u64,
}

impl LiveEntity {
    /// An entity table as SQLite's `create_table_statements` makes it, with no field yet.
    pub(crate) fn sqlite_system_columns() -> Self {
        let col = |t: &str, nullable: bool, default: Option<&str>| LiveColumn {
            sql_type: t.to_owned(),
            nullable,
            default: default.map(str::to_owned),
        };
        LiveEntity {
            columns: vec![
                ("id".into(), col("TEXT", false, None)),
                ("created_at".into(), col("TEXT", false, None)),
                ("created_by".into(), col("TEXT", true, None)),
                ("updated_at".into(), col("TEXT", false, None)),
                ("updated_by".into(), col("TEXT", true, None)),
                ("deleted_at".into(), col("TEXT", true, None)),
                ("version".into(), col("BIGINT", false, Some("0"))),
            ],
            ..LiveEntity::default()
        }
    }

    pub(crate) fn column(&self, name: &str) -> Option<&LiveColumn> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }
}

fn text(r: &Row, i: usize) -> Result<String> {
    Ok(r.try_get::<Option<String>, _>(i)?.unwrap_or_default())
}

fn opt_text(r: &Row, i: usize) -> Result<Option<String>> {
    r.try_get::<Option<String>, _>(i)
}

fn int(r: &Row, i: usize) -> Result<i64> {
    Ok(r.try_get::<Option<i64>, _>(i)?.unwrap_or(0))
}

/// Reads what exists of `entity`.
pub(crate) async fn load(conn: &mut Connection, entity: &str) -> Result<LiveEntity> {
    let mut live = LiveEntity::default();
    let main = table(entity);
    if !conn.table_exists(&main).await? {
        return Ok(live);
    }
    live.exists = conn.table_exists(&meta_table(entity)).await?
        && conn.table_exists(&history_table(entity)).await?;
    if live.exists {
        for r in conn
            .query_rows(
                &format!("SELECT [name], [type] FROM [{}]", meta_table(entity)),
                vec![],
            )
            .await?
        {
            live.meta.insert(text(&r, 0)?, text(&r, 1)?);
        }
        live.history_columns = columns(conn, &history_table(entity))
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
    }
    live.columns = columns(conn, &main).await?;
    let backend = conn.backend();
    let t = Value::from(main.as_str());
    match backend {
        Backend::Postgres => {
            for r in conn
                .query_rows(
                    "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ?",
                    vec![t.clone()],
                )
                .await?
            {
                live.indexes
                    .insert(text(&r, 0)?, text(&r, 1)?.contains("UNIQUE INDEX"));
            }
            for r in conn
                .query_rows(
                    "SELECT con.conname::text FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relname = ? AND con.contype IN ('c', 'f')",
                    vec![t.clone()],
                )
                .await?
            {
                live.constraints.insert(text(&r, 0)?);
            }
        }
        Backend::MySql => {
            for r in conn
                .query_rows(
                    "SELECT index_name, MIN(non_unique) FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ? GROUP BY index_name",
                    vec![t.clone()],
                )
                .await?
            {
                live.indexes.insert(text(&r, 0)?, int(&r, 1)? == 0);
            }
            for r in conn
                .query_rows(
                    "SELECT constraint_name FROM information_schema.table_constraints WHERE constraint_schema = DATABASE() AND table_name = ? AND constraint_type IN ('CHECK', 'FOREIGN KEY')",
                    vec![t.clone()],
                )
                .await?
            {
                live.constraints.insert(text(&r, 0)?);
            }
        }
        Backend::Sqlite => {
            for r in conn
                .query_rows(
                    "SELECT [name], [unique] FROM pragma_index_list(?)",
                    vec![t.clone()],
                )
                .await?
            {
                live.indexes.insert(text(&r, 0)?, int(&r, 1)? != 0);
            }
            for r in conn
                .query_rows(
                    "SELECT [name], [sql] FROM sqlite_master WHERE [type] = 'index' AND [tbl_name] = ? AND [sql] IS NOT NULL",
                    vec![t.clone()],
                )
                .await?
            {
                live.index_sql.insert(text(&r, 0)?, text(&r, 1)?);
            }
            for r in conn
                .query_rows(
                    "SELECT [sql] FROM sqlite_master WHERE [type] = 'table' AND [name] = ?",
                    vec![t.clone()],
                )
                .await?
            {
                let sql = text(&r, 0)?;
                for prefix in ["dal_ck_", "dal_fk_"] {
                    live.constraints.extend(names_with_prefix(&sql, prefix));
                }
            }
        }
    }
    live.rows = conn
        .query_count(&format!("SELECT COUNT(*) FROM [{main}]"), vec![])
        .await?
        .max(0) as u64;
    Ok(live)
}

/// The columns of `table`, in order.
pub(crate) async fn columns(
    conn: &mut Connection,
    table: &str,
) -> Result<Vec<(String, LiveColumn)>> {
    let sql = match conn.backend() {
        Backend::Postgres => "SELECT column_name::text, data_type::text, is_nullable::text, column_default::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
        Backend::MySql => "SELECT column_name, column_type, is_nullable, column_default FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
        Backend::Sqlite => "SELECT [name], [type], CASE WHEN [notnull] = 0 THEN 'YES' ELSE 'NO' END, [dflt_value] FROM pragma_table_info(?) ORDER BY [cid]",
    };
    let mut out = Vec::new();
    for r in conn.query_rows(sql, vec![Value::from(table)]).await? {
        let default = opt_text(&r, 3)?.filter(|d| !d.eq_ignore_ascii_case("NULL"));
        out.push((
            text(&r, 0)?,
            LiveColumn {
                sql_type: text(&r, 1)?,
                nullable: text(&r, 2)?.eq_ignore_ascii_case("YES"),
                default,
            },
        ));
    }
    Ok(out)
}

/// Identifiers in `sql` that start with `prefix` (letters, digits and `_`).
pub(crate) fn names_with_prefix(sql: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = sql;
    while let Some(i) = rest.find(prefix) {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_names_are_found_in_table_sql() {
        let sql = r#"CREATE TABLE "t" ("a" INTEGER, CONSTRAINT "dal_ck_1a_2b" CHECK ("a" > 0), CONSTRAINT "dal_fk_3c_4d" FOREIGN KEY ("a") REFERENCES "u" ("id"))"#;
        assert_eq!(names_with_prefix(sql, "dal_ck_"), ["dal_ck_1a_2b"]);
        assert_eq!(names_with_prefix(sql, "dal_fk_"), ["dal_fk_3c_4d"]);
        assert!(names_with_prefix("CREATE TABLE t (a)", "dal_ck_").is_empty());
    }
}
