//! Contender names: how they appear in the report, and shortened for the chart.

pub const DAL: &str = "dal";
pub const SQLX_DEFAULT: &str = "sqlx PgPool (default options)";
pub const SQLX: &str = "sqlx PgPool (test_before_acquire=false)";
pub const SQLX_CONN: &str = "sqlx PgConnection (one bare connection, no pool)";
pub const DEADPOOL: &str = "tokio-postgres + deadpool (prepare_cached)";
pub const SEAORM: &str = "SeaORM find_by_id";
pub const SEAORM_FIND: &str = "SeaORM find().filter().limit(10)";
pub const PGBENCH: &str = "pgbench -S -M prepared";
pub const SQLX_SAME: &str = "raw sqlx, dal's previous plan (BEGIN, upsert, history, COMMIT)";
pub const SQLX_CTE: &str = "raw sqlx, one CTE statement (upsert+history+RETURNING), dal's plan";
pub const SQLX_MULTIROW: &str = "raw sqlx multi-row INSERT (1 000 rows/stmt)";
pub const SQLX_SAME_BULK: &str =
    "raw sqlx, dal's previous plan (row locks + version lookup + upsert RETURNING + history)";
pub const SQLX_COPY: &str = "raw sqlx COPY FROM STDIN (no history, nothing returned)";
pub const SQLX_ROW_HISTORY: &str = "raw sqlx: INSERT row + INSERT history row, one transaction";
pub const SEAORM_MANY: &str = "SeaORM insert_many (1 000 rows/stmt)";
pub const IDEAL: &str = "ideal FIFO queueing time";
pub const ONE_MICRO: &str = "target: 1 µs";
pub const SQLX_MY: &str = "sqlx MySqlPool (test_before_acquire=false)";
pub const SQLX_LITE: &str = "sqlx SqlitePool (test_before_acquire=false)";

/// Contender names short enough for the chart.
pub fn short_name(name: &str) -> String {
    name.replace("(test_before_acquire=false)", "(no test)")
        .replace("(default options)", "(default)")
        .replace(" (prepare_cached)", "")
        .replace("(one bare connection, no pool)", "(bare)")
        .replace(" (1 000 rows/stmt)", "")
        .replace(
            " (row locks + version lookup + upsert RETURNING + history)",
            "",
        )
        .replace(
            "raw sqlx, one CTE statement (upsert+history+RETURNING), dal's plan",
            "raw sqlx, one CTE",
        )
        .replace(" (BEGIN, upsert, history, COMMIT)", "")
        .replace(" (no history, nothing returned)", "")
        .replace("tokio-postgres + deadpool", "tokio-postgres+deadpool")
}
