//! PostgreSQL's facts for the layers above: types, DDL, upserts, locking, error codes.

/// PostgreSQL's facts.
pub(crate) struct PgDialect;

/// SQLSTATE codes dal reads (PostgreSQL Appendix A).
mod sqlstate {
    pub const UNIQUE_VIOLATION: &str = "23505";
    pub const FOREIGN_KEY_VIOLATION: &str = "23503";
    pub const NOT_NULL_VIOLATION: &str = "23502";
    pub const CHECK_VIOLATION: &str = "23514";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const DEADLOCK_DETECTED: &str = "40P01";
    pub const LOCK_NOT_AVAILABLE: &str = "55P03";
    pub const QUERY_CANCELED: &str = "57014";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    pub const CRASH_SHUTDOWN: &str = "57P02";
    pub const CANNOT_CONNECT_NOW: &str = "57P03";
    /// Class 08: connection exception.
    pub const CONNECTION_EXCEPTION_CLASS: &str = "08";
    pub const DUPLICATE_TABLE: &str = "42P07";
    pub const DUPLICATE_COLUMN: &str = "42701";
    pub const DUPLICATE_OBJECT: &str = "42710";
    pub const DUPLICATE_SCHEMA: &str = "42P06";
    /// A write in a read-only transaction (a standby, `default_transaction_read_only`).
    pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";
}

impl super::super::Dialect for PgDialect {
    fn default_port(&self) -> u16 {
        5432
    }
    fn name(&self) -> &'static str {
        "PostgreSQL"
    }
    fn url_options(&self) -> &'static [&'static str] {
        &[
            "application_name",
            "connect_timeout",
            "options",
            "user",
            "password",
            "host",
            "port",
            "dbname",
            "target_session_attrs",
            "replicas",
            "read_your_writes",
            "max_replica_lag",
            "sslmode",
            "sslrootcert",
            "sslcert",
            "sslkey",
        ]
    }
    fn reads_pgpass(&self) -> bool {
        true
    }
    /// `{database}|{schema}` as the PostgreSQL conventions say, the schema being the first of
    /// a `search_path` set at connect ([`pg_option`](crate::DatabaseConfig::pg_option));
    /// without one (the server's default search path, not known without a query), the
    /// database alone.
    fn namespace<'a>(
        &self,
        database: &'a str,
        session: &[(String, String)],
    ) -> std::borrow::Cow<'a, str> {
        let schema = session
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case("search_path"))
            .and_then(|(_, v)| v.split(',').next())
            .map(|s| s.trim().trim_matches('"'))
            .filter(|s| !s.is_empty() && !s.starts_with('$'));
        match schema {
            Some(schema) => format!("{database}|{schema}").into(),
            None => database.into(),
        }
    }
    fn column_type(&self, ty: crate::entity::FieldType, _indexed: bool) -> &'static str {
        use crate::entity::FieldType as F;
        match ty {
            F::Int => "BIGINT",
            F::Float => "DOUBLE PRECISION",
            F::Bool => "BOOLEAN",
            F::Text => "TEXT",
            F::Timestamp => "TIMESTAMPTZ",
            F::Date => "DATE",
            F::Time => "TIME",
            F::Uuid => "UUID",
            F::Json => "JSONB",
            F::Decimal => "NUMERIC",
            F::Bytes => "BYTEA",
        }
    }
    fn system_types(&self) -> super::super::SystemTypes {
        super::super::SystemTypes {
            id: "TEXT",
            timestamp: "TIMESTAMPTZ",
            short_text: "TEXT",
            long_text: "TEXT",
        }
    }
    fn snapshot_isolation(&self) -> Option<(&'static str, bool)> {
        Some(("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", false))
    }
    fn tables_sql(&self) -> &'static str {
        "SELECT tablename::text FROM pg_catalog.pg_tables WHERE schemaname = current_schema() ORDER BY 1"
    }
    fn table_exists_sql(&self) -> &'static str {
        "SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = ?"
    }
    fn index_names_sql(&self) -> &'static str {
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ?"
    }
    fn column_exists_sql(&self) -> &'static str {
        "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?"
    }
    fn add_column(&self, table: &str, column: &str, ty: &str) -> String {
        format!("ALTER TABLE [{table}] ADD COLUMN IF NOT EXISTS [{column}] {ty}")
    }
    fn insert_if_absent(&self, table: &str, columns: &[&str], key: &str) -> String {
        format!(
            "INSERT INTO [{table}] ({}) VALUES ({}) ON CONFLICT ([{key}]) DO NOTHING",
            super::super::dialect::column_list(columns),
            super::super::dialect::placeholders(columns.len())
        )
    }
    fn widen_to_float(&self, table: &str, column: &str) -> Option<String> {
        Some(format!(
            "ALTER TABLE [{table}] ALTER COLUMN [{column}] TYPE DOUBLE PRECISION"
        ))
    }
    fn upsert_tail(&self, table: &str, updates: &[&str], returning: &str) -> String {
        super::super::dialect::on_conflict_upsert(table, updates, returning)
    }
    fn lock_batch_up_front(&self, rows: usize) -> bool {
        rows > 1
    }
    fn writes_in_cte(&self) -> bool {
        true
    }
    fn bulk_copy_rows(&self) -> Option<usize> {
        // Below this, the multi-row statements' fixed costs are lower than the staging table's
        // (create, copy, merge, drop).
        Some(500)
    }
    fn limit_offset(&self, limit: Option<u64>, offset: Option<u64>) -> String {
        match (limit, offset) {
            (Some(l), Some(o)) => format!(" LIMIT {l} OFFSET {o}"),
            (Some(l), None) => format!(" LIMIT {l}"),
            (None, Some(o)) => format!(" OFFSET {o}"),
            (None, None) => String::new(),
        }
    }
    fn no_limit(&self) -> &'static str {
        "ALL"
    }
    fn error_kind(
        &self,
        code: &str,
        _message: &str,
        constraint: Option<&str>,
    ) -> (crate::error::DbErrorKind, Option<String>) {
        use crate::error::DbErrorKind as K;
        use sqlstate::*;
        let kind = match code {
            // Primary keys are named `<table>_pkey` (PostgreSQL's default for an unnamed
            // PRIMARY KEY, which is how dal creates them).
            UNIQUE_VIOLATION if constraint.is_some_and(|c| c.ends_with("_pkey")) => {
                K::PrimaryKeyViolation
            }
            // Two sessions creating the same table or type at once collide in the system
            // catalogs' unique indexes (`pg_type_typname_nsp_index`, …): it exists.
            UNIQUE_VIOLATION if constraint.is_some_and(|c| c.starts_with("pg_")) => {
                K::AlreadyExists
            }
            UNIQUE_VIOLATION => K::UniqueViolation,
            FOREIGN_KEY_VIOLATION => K::ForeignKeyViolation,
            NOT_NULL_VIOLATION => K::NotNullViolation,
            CHECK_VIOLATION => K::CheckViolation,
            SERIALIZATION_FAILURE => K::SerializationFailure,
            DEADLOCK_DETECTED => K::Deadlock,
            LOCK_NOT_AVAILABLE => K::LockTimeout,
            QUERY_CANCELED => K::QueryCanceled,
            READ_ONLY_SQL_TRANSACTION => K::ReadOnly,
            DUPLICATE_TABLE | DUPLICATE_COLUMN | DUPLICATE_OBJECT | DUPLICATE_SCHEMA => {
                K::AlreadyExists
            }
            _ => K::Other,
        };
        (kind, constraint.map(str::to_owned))
    }
    fn max_connections_sql(&self) -> Option<&'static str> {
        Some("SELECT CAST(current_setting('max_connections') AS INT8) AS n")
    }
    fn write_position_sql(&self) -> Option<&'static str> {
        Some("SELECT CAST(pg_current_wal_lsn() AS TEXT) AS [pos]")
    }
    fn replayed_sql(&self) -> Option<&'static str> {
        // A promoted standby keeps its last replayed position: still comparable.
        Some("SELECT COALESCE(pg_last_wal_replay_lsn() >= CAST(CAST(? AS TEXT) AS pg_lsn), FALSE) AS [ok]")
    }
    fn replica_lag_sql(&self) -> Option<(&'static str, &'static str)> {
        // Nothing received but not replayed: no lag, however long ago the last commit was
        // (an idle primary). Otherwise: how old the last replayed commit is.
        Some((
            "SELECT CAST(CASE WHEN NOT pg_is_in_recovery() THEN 0 \
             WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
             ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END AS FLOAT8) AS [lag]",
            "lag",
        ))
    }
    fn session_ended(&self, code: &str) -> bool {
        use sqlstate::*;
        matches!(code, ADMIN_SHUTDOWN | CRASH_SHUTDOWN | CANNOT_CONNECT_NOW)
            || (code.len() == 5 && code.starts_with(CONNECTION_EXCEPTION_CLASS))
    }
}
