//! SQLite's facts for the layers above: types, DDL, upserts, locking, error codes.

/// SQLite's facts.
pub(crate) struct SqliteDialect;

/// Result codes dal reads (extended codes keep the primary code in their low byte).
mod rc {
    pub const ERROR: u32 = 1;
    pub const BUSY: u32 = 5;
    pub const LOCKED: u32 = 6;
    pub const INTERRUPT: u32 = 9;
    pub const CONSTRAINT_CHECK: u32 = 275;
    pub const CONSTRAINT_FOREIGNKEY: u32 = 787;
    pub const CONSTRAINT_NOTNULL: u32 = 1299;
    pub const CONSTRAINT_PRIMARYKEY: u32 = 1555;
    pub const CONSTRAINT_UNIQUE: u32 = 2067;
}

impl super::super::Dialect for SqliteDialect {
    fn default_port(&self) -> u16 {
        0
    }
    fn name(&self) -> &'static str {
        "SQLite"
    }
    fn is_embedded(&self) -> bool {
        true
    }
    fn begin(&self) -> &'static str {
        // IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout
        // instead of deadlocking when both upgrade from a read lock.
        "BEGIN IMMEDIATE"
    }
    fn column_type(&self, ty: crate::entity::FieldType, _indexed: bool) -> &'static str {
        use crate::entity::FieldType as F;
        match ty {
            F::Int => "INTEGER",
            F::Float => "REAL",
            F::Bool => "BOOLEAN",
            // NUMERIC affinity: numbers compare as numbers (at most 15 significant digits are
            // kept, so more are refused when binding).
            F::Decimal => "NUMERIC",
            F::Bytes => "BLOB",
            F::Text | F::Timestamp | F::Date | F::Time | F::Uuid | F::Json => "TEXT",
        }
    }
    fn system_types(&self) -> super::super::SystemTypes {
        super::super::SystemTypes {
            id: "TEXT",
            timestamp: "TEXT",
            short_text: "TEXT",
            long_text: "TEXT",
        }
    }
    fn tables_sql(&self) -> &'static str {
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    }
    fn table_exists_sql(&self) -> &'static str {
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
    }
    fn index_names_sql(&self) -> &'static str {
        "SELECT [name] FROM pragma_index_list(?)"
    }
    fn column_exists_sql(&self) -> &'static str {
        "SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?"
    }
    fn insert_if_absent(&self, table: &str, columns: &[&str], _key: &str) -> String {
        format!(
            "INSERT OR IGNORE INTO [{table}] ({}) VALUES ({})",
            super::super::dialect::column_list(columns),
            super::super::dialect::placeholders(columns.len())
        )
    }
    fn widen_to_float(&self, _table: &str, _column: &str) -> Option<String> {
        // SQLite stores REAL values in an INTEGER column as they are.
        None
    }
    fn upsert_tail(&self, table: &str, updates: &[&str], returning: &str) -> String {
        super::super::dialect::on_conflict_upsert(table, updates, returning)
    }
    fn lock_rows(&self) -> &'static str {
        // A transaction holds the database's write lock from its start (BEGIN IMMEDIATE).
        ""
    }
    fn lock_batch_up_front(&self, _rows: usize) -> bool {
        false
    }
    fn no_limit(&self) -> &'static str {
        "-1"
    }
    fn error_kind(
        &self,
        code: &str,
        message: &str,
        constraint: Option<&str>,
    ) -> (crate::error::DbErrorKind, Option<String>) {
        use crate::error::DbErrorKind as K;
        let kind = match code.parse::<u32>() {
            Ok(rc::CONSTRAINT_PRIMARYKEY) => K::PrimaryKeyViolation,
            Ok(rc::CONSTRAINT_UNIQUE) => K::UniqueViolation,
            Ok(rc::CONSTRAINT_FOREIGNKEY) => K::ForeignKeyViolation,
            Ok(rc::CONSTRAINT_NOTNULL) => K::NotNullViolation,
            Ok(rc::CONSTRAINT_CHECK) => K::CheckViolation,
            Ok(n) if matches!(n & 0xFF, rc::BUSY | rc::LOCKED) => K::Busy,
            Ok(n) if n & 0xFF == rc::INTERRUPT => K::QueryCanceled,
            // SQLite reports an existing table or column only as a generic error: its
            // message is all there is to go by.
            Ok(rc::ERROR)
                if message.contains("already exists")
                    || message.contains("duplicate column name") =>
            {
                K::AlreadyExists
            }
            _ => K::Other,
        };
        (kind, constraint.map(str::to_owned))
    }
    fn session_ended(&self, _code: &str) -> bool {
        false
    }
}
