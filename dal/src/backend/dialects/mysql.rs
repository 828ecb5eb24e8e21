//! MySQL's and MariaDB's facts for the layers above: types, DDL, upserts, locking, error codes.

/// MySQL's and MariaDB's facts.
pub(crate) struct MySqlDialect;

/// Server error numbers dal reads (MySQL and MariaDB share them unless noted).
mod errno {
    pub const DUP_ENTRY: &str = "1062";
    pub const DUP_ENTRY_WITH_KEY_NAME: &str = "1586";
    pub const ROW_IS_REFERENCED: &str = "1451";
    pub const NO_REFERENCED_ROW: &str = "1452";
    pub const BAD_NULL: &str = "1048";
    pub const NO_DEFAULT_FOR_FIELD: &str = "1364";
    /// MySQL 8.
    pub const CHECK_CONSTRAINT_VIOLATED: &str = "3819";
    /// MariaDB.
    pub const CONSTRAINT_FAILED: &str = "4025";
    pub const LOCK_DEADLOCK: &str = "1213";
    pub const LOCK_WAIT_TIMEOUT: &str = "1205";
    pub const LOCK_NOWAIT: &str = "3572";
    pub const QUERY_INTERRUPTED: &str = "1317";
    /// MySQL `max_execution_time`.
    pub const QUERY_TIMEOUT: &str = "3024";
    /// MariaDB `max_statement_time`.
    pub const STATEMENT_TIMEOUT: &str = "1969";
    pub const TABLE_EXISTS: &str = "1050";
    pub const DUP_FIELDNAME: &str = "1060";
    pub const DUP_KEYNAME: &str = "1061";
    pub const SERVER_SHUTDOWN: &str = "1053";
    /// MariaDB: the connection was killed.
    pub const CONNECTION_KILLED: &str = "1927";
    pub const SERVER_GONE: &str = "2006";
    pub const SERVER_LOST: &str = "2013";
    /// MySQL 8: disconnected for inactivity.
    pub const CLIENT_INTERACTION_TIMEOUT: &str = "4031";
    /// `The MariaDB server is running with the --read-only option …` (also other options).
    pub const OPTION_PREVENTS_STATEMENT: &str = "1290";
    /// A write in a `READ ONLY` transaction or session.
    pub const CANT_EXECUTE_IN_READ_ONLY_TRANSACTION: &str = "1792";
}

/// The key a duplicate-entry message names: `… for key 'PRIMARY'` (MariaDB) or
/// `… for key 'table.PRIMARY'` (MySQL 8). The server gives it only in the message.
fn duplicate_key_name(message: &str) -> Option<&str> {
    let start = message.rfind("for key '")? + "for key '".len();
    let rest = &message[start..];
    rest.strip_suffix('\'').or_else(|| rest.split('\'').next())
}

impl super::super::Dialect for MySqlDialect {
    fn default_port(&self) -> u16 {
        3306
    }
    fn name(&self) -> &'static str {
        "MySQL/MariaDB"
    }
    fn url_options(&self) -> &'static [&'static str] {
        &[
            "charset",
            "timezone",
            "ssl-mode",
            "ssl-ca",
            "ssl-cert",
            "ssl-key",
            "target_session_attrs",
            "replicas",
            "read_your_writes",
            "max_replica_lag",
        ]
    }
    fn begin(&self) -> &'static str {
        "START TRANSACTION"
    }
    fn column_type(&self, ty: crate::entity::FieldType, indexed: bool) -> &'static str {
        use crate::entity::FieldType as F;
        match ty {
            F::Int => "BIGINT",
            F::Float => "DOUBLE",
            F::Bool => "BOOLEAN",
            F::Text if indexed => "VARCHAR(255)",
            F::Text => "LONGTEXT",
            F::Timestamp => "DATETIME(6)",
            F::Date => "DATE",
            F::Time => "TIME(6)",
            F::Uuid => "CHAR(36)",
            F::Json => "JSON",
            F::Decimal => "DECIMAL(65,28)",
            F::Bytes => "LONGBLOB",
        }
    }
    fn system_types(&self) -> super::super::SystemTypes {
        super::super::SystemTypes {
            id: "VARCHAR(255)",
            timestamp: "DATETIME(6)",
            short_text: "VARCHAR(255)",
            long_text: "LONGTEXT",
        }
    }
    fn table_options(&self) -> &'static str {
        " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    }
    fn transactional_ddl(&self) -> bool {
        false
    }
    fn snapshot_isolation(&self) -> Option<(&'static str, bool)> {
        Some(("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", true))
    }
    fn tables_sql(&self) -> &'static str {
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY 1"
    }
    fn row_value_seek(&self) -> bool {
        // MariaDB's range optimizer does not seek with a row-value comparison.
        false
    }
    fn table_exists_sql(&self) -> &'static str {
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
    }
    fn index_names_sql(&self) -> &'static str {
        "SELECT DISTINCT index_name FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ?"
    }
    fn column_exists_sql(&self) -> &'static str {
        "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ?"
    }
    fn create_index(&self, unique: bool, name: &str, table: &str, column: &str) -> String {
        // No IF NOT EXISTS for indexes on MySQL: "duplicate key name" means it is there.
        let unique = if unique { "UNIQUE " } else { "" };
        format!("CREATE {unique}INDEX [{name}] ON [{table}] ([{column}])")
    }
    fn insert_if_absent(&self, table: &str, columns: &[&str], _key: &str) -> String {
        format!(
            "INSERT IGNORE INTO [{table}] ({}) VALUES ({})",
            super::super::dialect::column_list(columns),
            super::super::dialect::placeholders(columns.len())
        )
    }
    fn widen_to_float(&self, table: &str, column: &str) -> Option<String> {
        Some(format!(
            "ALTER TABLE [{table}] MODIFY COLUMN [{column}] DOUBLE"
        ))
    }
    fn upsert_tail(&self, _table: &str, updates: &[&str], _returning: &str) -> String {
        let set = updates
            .iter()
            .map(|c| format!("[{c}] = VALUES([{c}])"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(" ON DUPLICATE KEY UPDATE {set}, [version] = [version] + 1")
    }
    fn upsert_returns_rows(&self) -> bool {
        false
    }
    fn upsert_fires_on_any_unique_key(&self) -> bool {
        true
    }
    fn insert_select_returning(&self, system: &str) -> bool {
        // MariaDB 10.5+ (the oldest MariaDB still maintained); MySQL has no RETURNING.
        system == "mariadb"
    }
    fn lock_batch_up_front(&self, _rows: usize) -> bool {
        // Also needed to split inserts from updates (see `upsert_fires_on_any_unique_key`).
        true
    }
    fn no_limit(&self) -> &'static str {
        "18446744073709551615"
    }
    fn error_kind(
        &self,
        code: &str,
        message: &str,
        constraint: Option<&str>,
    ) -> (crate::error::DbErrorKind, Option<String>) {
        use crate::error::DbErrorKind as K;
        use errno::*;
        match code {
            DUP_ENTRY | DUP_ENTRY_WITH_KEY_NAME => {
                let key = constraint.or_else(|| duplicate_key_name(message));
                let primary = key.is_some_and(|k| k == "PRIMARY" || k.ends_with(".PRIMARY"));
                let kind = if primary {
                    K::PrimaryKeyViolation
                } else {
                    K::UniqueViolation
                };
                (kind, key.map(str::to_owned))
            }
            other => {
                let kind = match other {
                    ROW_IS_REFERENCED | NO_REFERENCED_ROW => K::ForeignKeyViolation,
                    BAD_NULL | NO_DEFAULT_FOR_FIELD => K::NotNullViolation,
                    CHECK_CONSTRAINT_VIOLATED | CONSTRAINT_FAILED => K::CheckViolation,
                    LOCK_DEADLOCK => K::Deadlock,
                    LOCK_WAIT_TIMEOUT | LOCK_NOWAIT => K::LockTimeout,
                    QUERY_INTERRUPTED | QUERY_TIMEOUT | STATEMENT_TIMEOUT => K::QueryCanceled,
                    TABLE_EXISTS | DUP_FIELDNAME | DUP_KEYNAME => K::AlreadyExists,
                    CANT_EXECUTE_IN_READ_ONLY_TRANSACTION => K::ReadOnly,
                    OPTION_PREVENTS_STATEMENT if message.contains("read-only") => K::ReadOnly,
                    _ => K::Other,
                };
                (kind, constraint.map(str::to_owned))
            }
        }
    }
    fn max_connections_sql(&self) -> Option<&'static str> {
        Some("SELECT CAST(@@max_connections AS SIGNED) AS n")
    }
    fn write_position_sql(&self) -> Option<&'static str> {
        Some("SELECT @@gtid_binlog_pos AS [pos]")
    }
    fn replayed_sql(&self) -> Option<&'static str> {
        // Waits up to 10 ms for the replica to apply it (0: reached, -1: timed out); longer
        // waits cost the read more than the primary would.
        Some("SELECT MASTER_GTID_WAIT(?, 0.01) = 0 AS [ok]")
    }
    fn replica_lag_sql(&self) -> Option<(&'static str, &'static str)> {
        Some(("SHOW SLAVE STATUS", "Seconds_Behind_Master"))
    }
    fn session_ended(&self, code: &str) -> bool {
        use errno::*;
        matches!(
            code,
            SERVER_GONE
                | SERVER_LOST
                | SERVER_SHUTDOWN
                | CONNECTION_KILLED
                | CLIENT_INTERACTION_TIMEOUT
        )
    }
}

#[cfg(test)]
mod dialect_tests {
    use super::*;

    #[test]
    fn duplicate_entries_name_their_key() {
        assert_eq!(
            duplicate_key_name("Duplicate entry 'a' for key 'PRIMARY'"),
            Some("PRIMARY")
        );
        assert_eq!(
            duplicate_key_name("Duplicate entry 'x' for key 't.t_email_key'"),
            Some("t.t_email_key")
        );
        assert_eq!(duplicate_key_name("something else"), None);
    }
}
