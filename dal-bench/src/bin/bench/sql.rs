//! The bench's data and SQL: sizes, the entity (`Person`), dal's statements mirrored for raw
//! sqlx, and the row types raw contenders decode.

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::json;
use sqlx::postgres::{PgArguments, Postgres};

/// Rows of the point-SELECT table (like `pgbench -i -s 1`'s accounts).
pub const KV_ROWS: i64 = 100_000;
/// Entities read by entity get / find.
pub const PEOPLE: usize = 1_000;
/// Rows per bulk save.
pub const BULK_ROWS: usize = 10_000;
/// Rows per statement for the raw multi-row INSERT and SeaORM's insert_many (PostgreSQL allows
/// 65 535 parameters; 1 000 rows × 9 columns fits).
pub const BULK_CHUNK: usize = 1_000;
/// dal's own chunking (dal/src/entity/ops.rs `CHUNK_ROWS` = 1 000, `CHUNK_PARAMS` = 30 000):
/// upserts of min(1 000, 30 000 / 9 columns) = 1 000 rows, history appends of 2 000 ids.
pub const DAL_UPSERT_CHUNK: usize = 1_000;
pub const DAL_HISTORY_CHUNK: usize = 2_000;

/// Statements dal's save runs on PostgreSQL for `n` new entities of the bench's shape:
/// BEGIN, the upserts (RETURNING the stored rows), the history appends, COMMIT.
pub fn dal_plan_statements(n: usize) -> u64 {
    (2 + n.div_ceil(DAL_UPSERT_CHUNK) + n.div_ceil(DAL_HISTORY_CHUNK)) as u64
}

/// The key of point SELECT number `r` (1..=KV_ROWS).
pub fn key(r: u64) -> i64 {
    (r % KV_ROWS as u64) as i64 + 1
}

pub const PS_DAL: &str = "SELECT [balance] FROM [dal_bench_kv] WHERE [id] = ?";
pub const PS_PG: &str = "SELECT balance FROM dal_bench_kv WHERE id = $1";
pub const PS_MY: &str = "SELECT balance FROM dal_bench_kv WHERE id = ?";
pub const INS_DAL: &str = "INSERT INTO [dal_bench_ins] ([k], [v]) VALUES (?, ?)";
pub const INS_PG: &str = "INSERT INTO dal_bench_ins (k, v) VALUES ($1, $2)";

/// The columns dal stores for the bench's entities, in dal's order (system fields, then user
/// fields sorted by name).
pub const COLS: &str = "\"id\", \"created_at\", \"created_by\", \"updated_at\", \"updated_by\", \"deleted_at\", \"active\", \"age\", \"email\", \"name\"";
pub const COLS_MY: &str = "`id`, `created_at`, `created_by`, `updated_at`, `updated_by`, `deleted_at`, `active`, `age`, `email`, `name`";

pub type PgEntityRow = (
    String,
    DateTime<Utc>,
    Option<String>,
    DateTime<Utc>,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<bool>,
    Option<i64>,
    Option<String>,
    Option<String>,
);
pub type MyEntityRow = (
    String,
    chrono::NaiveDateTime,
    Option<String>,
    chrono::NaiveDateTime,
    Option<String>,
    Option<chrono::NaiveDateTime>,
    Option<bool>,
    Option<i64>,
    Option<String>,
    Option<String>,
);
pub type LiteEntityRow = (
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<bool>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

/// A statement built once for the whole run.
pub fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn placeholders_pg(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `VALUES` rows of an upsert or INSERT of `rows` entities (9 parameters each).
fn values_pg(rows: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders_pg(r * 9 + 1, 9)))
        .collect::<Vec<_>>()
        .join(", ")
}

const INSERT_COLS: &str = "\"id\", \"created_at\", \"created_by\", \"updated_at\", \"updated_by\", \"active\", \"age\", \"email\", \"name\"";

/// dal's upsert for `rows` rows of the bench's entity (dal/src/entity/ops.rs `upsert_sql`),
/// as translated for PostgreSQL; with `returning`, it returns the stored rows as dal's does.
pub fn upsert_sql(table: &str, rows: usize, returning: bool) -> String {
    let set = ["active", "age", "email", "name", "updated_at", "updated_by"]
        .iter()
        .map(|c| format!("\"{c}\" = excluded.\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let ret = if returning {
        format!(" RETURNING {COLS}")
    } else {
        String::new()
    };
    format!(
        "INSERT INTO \"{table}\" ({INSERT_COLS}) VALUES {} ON CONFLICT (\"id\") DO UPDATE SET {set}{ret}",
        values_pg(rows)
    )
}

/// dal's history append (ops.rs `append_history`) for `n` ids.
pub fn history_sql(table: &str, n: usize) -> String {
    let src = COLS
        .split(", ")
        .map(|c| format!("\"src\".{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO \"{table}_history\" ({COLS}, \"version\", \"history_timestamp\", \"history_user_id\", \"history_comment\") \
         SELECT {src}, COALESCE((SELECT MAX(\"prev\".\"version\") FROM \"{table}_history\" \"prev\" WHERE \"prev\".\"id\" = \"src\".\"id\"), 0) + 1, $1, $2, $3 \
         FROM \"{table}\" \"src\" WHERE \"src\".\"id\" IN ({})",
        placeholders_pg(4, n)
    )
}

/// Not what dal runs: its upsert and history append as ONE statement (a PostgreSQL
/// data-modifying CTE: the upsert RETURNING the stored rows feeds the history INSERT and the
/// final SELECT). Parameters: 9 per row, then history timestamp, user, comment.
pub fn upsert_history_cte_sql(table: &str, rows: usize) -> String {
    let upsert = upsert_sql(table, rows, false);
    let n = rows * 9;
    format!(
        "WITH \"up\" AS ({upsert} RETURNING {COLS}), \
         \"h\" AS (INSERT INTO \"{table}_history\" ({COLS}, \"version\", \"history_timestamp\", \"history_user_id\", \"history_comment\") \
         SELECT \"up\".*, COALESCE((SELECT MAX(\"prev\".\"version\") FROM \"{table}_history\" \"prev\" WHERE \"prev\".\"id\" = \"up\".\"id\"), 0) + 1, ${}, ${}, ${} FROM \"up\") \
         SELECT * FROM \"up\"",
        n + 1,
        n + 2,
        n + 3
    )
}

/// A plain multi-row INSERT of `rows` rows (what a raw sqlx user writes for a bulk load).
pub fn insert_rows_sql(table: &str, rows: usize) -> String {
    format!(
        "INSERT INTO \"{table}\" ({INSERT_COLS}) VALUES {}",
        values_pg(rows)
    )
}

pub type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;
pub type PgQueryAs<'q, O> = sqlx::query::QueryAs<'q, Postgres, O, PgArguments>;

/// Binds the 9 upsert/INSERT parameters of each person (created and updated `now`, by nobody).
pub fn bind_rows<'q>(mut q: PgQuery<'q>, rows: &'q [Person], now: DateTime<Utc>) -> PgQuery<'q> {
    for p in rows {
        q = q
            .bind(&p.id)
            .bind(now)
            .bind(None::<String>)
            .bind(now)
            .bind(None::<String>)
            .bind(p.active)
            .bind(p.age)
            .bind(&p.email)
            .bind(&p.name);
    }
    q
}

/// [`bind_rows`] for a statement whose rows are decoded.
pub fn bind_rows_as<'q, O>(
    mut q: PgQueryAs<'q, O>,
    rows: &'q [Person],
    now: DateTime<Utc>,
) -> PgQueryAs<'q, O> {
    for p in rows {
        q = q
            .bind(&p.id)
            .bind(now)
            .bind(None::<String>)
            .bind(now)
            .bind(None::<String>)
            .bind(p.active)
            .bind(p.age)
            .bind(&p.email)
            .bind(&p.name);
    }
    q
}

/// An entity of the bench: the same four fields everywhere.
#[derive(Clone)]
pub struct Person {
    pub id: String,
    pub name: String,
    pub email: String,
    pub age: i64,
    pub active: bool,
}

impl Person {
    pub fn new(n: u64) -> Self {
        Person {
            id: uuid::Uuid::new_v4().to_string(),
            name: format!("user {n}"),
            email: format!("user{n}@example.com"),
            age: 18 + (n % 63) as i64,
            active: !n.is_multiple_of(3),
        }
    }
    pub fn json(&self) -> serde_json::Value {
        json!({"name": self.name, "email": self.email, "age": self.age, "active": self.active})
    }
}

pub fn now_micros() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dal_statements_are_mirrored() {
        assert!(upsert_sql("t", 1, true).ends_with("RETURNING \"id\", \"created_at\", \"created_by\", \"updated_at\", \"updated_by\", \"deleted_at\", \"active\", \"age\", \"email\", \"name\""));
        assert_eq!(dal_plan_statements(1), 4);
        assert_eq!(dal_plan_statements(10_000), 17);
        let u = upsert_sql("t", 2, false);
        assert!(u.starts_with("INSERT INTO \"t\" (\"id\", \"created_at\""));
        assert!(u.contains("($10, $11, $12, $13, $14, $15, $16, $17, $18)"));
        assert!(u.ends_with("\"updated_by\" = excluded.\"updated_by\""));
        let h = history_sql("t", 3);
        assert!(h.contains("INSERT INTO \"t_history\""));
        assert!(h.ends_with("IN ($4, $5, $6)"));
        assert_eq!(insert_rows_sql("t", 1000).matches('(').count(), 1001);
    }

    #[test]
    fn keys_cover_the_table() {
        assert_eq!(key(0), 1);
        assert_eq!(key(KV_ROWS as u64 - 1), KV_ROWS);
        assert_eq!(key(KV_ROWS as u64), 1);
    }
}
