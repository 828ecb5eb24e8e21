//! [`Dialect`]: every fact that differs between PostgreSQL, MySQL/MariaDB and SQLite, behind
//! one type per backend (implemented in `postgres.rs`, `mysql.rs`, `sqlite.rs`). Code above
//! `backend/` asks the dialect and never names a backend.
//!
//! The portable SQL translator (`sql/`) keeps its own per-backend lexical rules.

use std::borrow::Cow;

use crate::entity::FieldType;
use crate::error::DbErrorKind;
use crate::sql::Backend;

/// Column types of the system columns of entity tables.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SystemTypes {
    /// The entity id.
    pub id: &'static str,
    /// `created_at`, `updated_at`, `deleted_at`, `history_timestamp`.
    pub timestamp: &'static str,
    /// `created_by`, `updated_by`, `history_user_id`.
    pub short_text: &'static str,
    /// `history_comment`.
    pub long_text: &'static str,
}

/// What differs between backends: identifier facts, column types, DDL, upserts and locking,
/// paging, transactions, catalogs, error codes.
pub(crate) trait Dialect: Send + Sync + 'static {
    // ---- connecting and sessions -------------------------------------------------------

    /// The port used when the configuration names none (0: no network).
    fn default_port(&self) -> u16;
    /// True for an embedded database addressed by a file path (URLs carry a path, not a host).
    fn is_embedded(&self) -> bool {
        false
    }
    /// The backend's name in messages.
    fn name(&self) -> &'static str;
    /// The URL query options only this backend takes (its client's own names: libpq's on
    /// PostgreSQL, the MySQL client's on MySQL).
    fn url_options(&self) -> &'static [&'static str] {
        &[]
    }
    /// True when a libpq password file (`PGPASSFILE`) may supply the password.
    fn reads_pgpass(&self) -> bool {
        false
    }
    /// The statement that begins a transaction.
    fn begin(&self) -> &'static str {
        "BEGIN"
    }
    /// The statement that makes the next (or, with `false`, the just begun) transaction read
    /// one snapshot of the database, and whether it runs before `BEGIN`. `None`: every
    /// transaction already reads one snapshot (SQLite).
    fn snapshot_isolation(&self) -> Option<(&'static str, bool)> {
        None
    }
    /// The database namespace tracing reports (`db.namespace`, OpenTelemetry): the database
    /// name (SQLite: the file path, or `:memory:`), given the configured `database` and the
    /// run-time parameters set at connect (`session`).
    fn namespace<'a>(&self, database: &'a str, _session: &[(String, String)]) -> Cow<'a, str> {
        Cow::Borrowed(database)
    }

    // ---- types and tables ---------------------------------------------------------------

    /// Native column type for a logical field type. `indexed` text needs a bounded type on
    /// MySQL.
    fn column_type(&self, ty: FieldType, indexed: bool) -> &'static str;
    /// Column types of the system columns.
    fn system_types(&self) -> SystemTypes;
    /// Suffix of `CREATE TABLE` (engine, character set).
    fn table_options(&self) -> &'static str {
        ""
    }
    /// False where DDL commits the open transaction implicitly (MySQL).
    fn transactional_ddl(&self) -> bool {
        true
    }
    /// `SELECT COUNT(*)` of tables named `?` in the current schema.
    fn table_exists_sql(&self) -> &'static str;
    /// The names of the tables in the current schema, one per row (column 0).
    fn tables_sql(&self) -> &'static str;
    /// True when a row-value comparison `([a], [b]) > (?, ?)` seeks in an index on `(a, b)`
    /// (keyset pagination); false where it is spelt `[a] > ? OR ([a] = ? AND [b] > ?)`.
    fn row_value_seek(&self) -> bool {
        true
    }
    /// `SELECT COUNT(*)` of columns named `?` (second) of the table named `?` (first).
    fn column_exists_sql(&self) -> &'static str;
    /// `SELECT` of the names of the indexes of the table named `?` (one column).
    fn index_names_sql(&self) -> &'static str;
    /// Adds a column (if not there, where the backend can say so).
    fn add_column(&self, table: &str, column: &str, ty: &str) -> String {
        format!("ALTER TABLE [{table}] ADD COLUMN [{column}] {ty}")
    }
    /// Creates an index (if not there, where the backend can say so).
    fn create_index(&self, unique: bool, name: &str, table: &str, column: &str) -> String {
        let unique = if unique { "UNIQUE " } else { "" };
        format!("CREATE {unique}INDEX IF NOT EXISTS [{name}] ON [{table}] ([{column}])")
    }
    /// Inserts a row of `columns` unless its key exists.
    fn insert_if_absent(&self, table: &str, columns: &[&str], key: &str) -> String;
    /// Changes a column's type to double precision, or `None` where no change is needed
    /// (SQLite stores REAL values in an INTEGER column as they are).
    fn widen_to_float(&self, table: &str, column: &str) -> Option<String>;

    // ---- writing and reading rows -------------------------------------------------------

    /// The tail of a multi-row `INSERT` that turns it into an upsert on `id`: `updates` take
    /// the new values, the version grows by one; where the backend can, the stored rows come
    /// back (`returning`, a select list).
    fn upsert_tail(&self, table: &str, updates: &[&str], returning: &str) -> String;
    /// True when the upsert returns the stored rows (else they are read back).
    fn upsert_returns_rows(&self) -> bool {
        true
    }
    /// True when the upsert fires on any unique key, not only the id (MySQL): new rows are
    /// then inserted plainly, so that a clash on another unique field is an error.
    fn upsert_fires_on_any_unique_key(&self) -> bool {
        false
    }
    /// True when an `INSERT … SELECT` can return the rows it inserted (`RETURNING`) on the
    /// server product `system` (as [`RawConn::system_name`](super::RawConn::system_name) says).
    fn insert_select_returning(&self, _system: &str) -> bool {
        false
    }
    /// True when an upsert can feed other writes in one statement (data-modifying CTEs,
    /// PostgreSQL): a single entity's save and its history append are then one statement.
    fn writes_in_cte(&self) -> bool {
        false
    }
    /// From how many rows a batch save streams its rows with `COPY … FROM STDIN` into a
    /// staging table and merges them in one statement (`None`: never; PostgreSQL only).
    fn bulk_copy_rows(&self) -> Option<usize> {
        None
    }
    /// Suffix of a `SELECT` that locks the rows it reads until the transaction ends.
    fn lock_rows(&self) -> &'static str {
        " FOR UPDATE"
    }
    /// True when a batch of `rows` saves should lock the existing rows up front, in id
    /// order (so that concurrent batches queue instead of deadlocking).
    fn lock_batch_up_front(&self, rows: usize) -> bool;
    /// `LIMIT`/`OFFSET` clause (with its leading space), or empty.
    fn limit_offset(&self, limit: Option<u64>, offset: Option<u64>) -> String {
        match (limit, offset) {
            (Some(l), Some(o)) => format!(" LIMIT {l} OFFSET {o}"),
            (Some(l), None) => format!(" LIMIT {l}"),
            (None, Some(o)) => format!(" LIMIT {} OFFSET {o}", self.no_limit()),
            (None, None) => String::new(),
        }
    }
    /// What stands for "no limit" before an `OFFSET`.
    fn no_limit(&self) -> &'static str;

    // ---- errors -------------------------------------------------------------------------

    /// What a server error code means, and the constraint it names (from the driver, or from
    /// the message where only the message says, e.g. which unique key a MySQL duplicate hit).
    fn error_kind(
        &self,
        code: &str,
        message: &str,
        constraint: Option<&str>,
    ) -> (DbErrorKind, Option<String>);
    /// True for a server error code that says the session is over (the connection is gone).
    fn session_ended(&self, code: &str) -> bool;

    // Replication (read replicas and read-your-writes). Portable SQL; `None` where the backend
    // has no replication (SQLite).

    /// On the primary: its current write position as text, column `pos` (PostgreSQL's WAL
    /// LSN, MariaDB's GTID list). A replica that applied it has every commit made before.
    fn write_position_sql(&self) -> Option<&'static str> {
        None
    }
    /// On a replica, with one parameter (a position from
    /// [`write_position_sql`](Self::write_position_sql)): one row whose column `ok` is true
    /// (or 1) when the replica has applied it (waiting a short bound where the server can).
    fn replayed_sql(&self) -> Option<&'static str> {
        None
    }
    /// The server's connection limit, one row with an integer column `n`, in the backend's
    /// native SQL (run on a raw connection while the pool sets itself up). `None`: no limit.
    fn max_connections_sql(&self) -> Option<&'static str> {
        None
    }
    /// On a replica: its lag behind the primary in seconds, and the name of the column that
    /// holds it (NULL: not replicating, lag unknown; no row: not a replica).
    fn replica_lag_sql(&self) -> Option<(&'static str, &'static str)> {
        None
    }
}

/// Every backend's dialect.
pub(crate) fn all_dialects() -> [&'static dyn Dialect; 3] {
    [
        &super::dialects::PgDialect,
        &super::dialects::MySqlDialect,
        &super::dialects::SqliteDialect,
    ]
}

/// The dialect of `backend`.
pub(crate) fn dialect(backend: Backend) -> &'static dyn Dialect {
    match backend {
        Backend::Postgres => &super::dialects::PgDialect,
        Backend::MySql => &super::dialects::MySqlDialect,
        Backend::Sqlite => &super::dialects::SqliteDialect,
    }
}

/// `[a], [b], …`
pub(crate) fn column_list<S: AsRef<str>>(columns: &[S]) -> String {
    columns
        .iter()
        .map(|c| format!("[{}]", c.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `?, ?, …` (`n` of them).
pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `ON CONFLICT (id) DO UPDATE … RETURNING …`, shared by PostgreSQL and SQLite.
pub(crate) fn on_conflict_upsert(table: &str, updates: &[&str], returning: &str) -> String {
    let set = updates
        .iter()
        .map(|c| format!("[{c}] = excluded.[{c}]"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        " ON CONFLICT ([id]) DO UPDATE SET {set}, [version] = [{table}].[version] + 1 RETURNING {returning}"
    )
}
