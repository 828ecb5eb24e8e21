//! The bench's data and SQL: sizes, the entity (`Person`), dal's statements mirrored for raw
//! sqlx, and the row types raw contenders decode.

use std::collections::HashMap;

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
/// dal's own chunking (dal/src/entity/ops/mod.rs `CHUNK_ROWS` = 1 000, `CHUNK_PARAMS` =
/// 30 000): upserts of min(1 000, 30 000 / 10 parameters per row) = 1 000 rows; row locks,
/// version lookups and history appends of 2 000 ids.
pub const DAL_UPSERT_CHUNK: usize = 1_000;
pub const DAL_LOCK_CHUNK: usize = 2_000;
pub const DAL_VERSION_CHUNK: usize = 2_000;
pub const DAL_HISTORY_CHUNK: usize = 2_000;

/// Statements dal's save runs on PostgreSQL for `n` new entities of the bench's shape (one
/// round trip each): BEGIN, then for a batch of more than one the row locks and the lookups
/// of the new rows' versions, the upserts (RETURNING the stored rows), the history appends,
/// COMMIT. The length of `dal_plan` (a test helper).
pub fn dal_plan_statements(n: usize) -> u64 {
    if n == 1 {
        return 1;
    }
    let (locks, lookups) = if n > 1 {
        (n.div_ceil(DAL_LOCK_CHUNK), n.div_ceil(DAL_VERSION_CHUNK))
    } else {
        (0, 0)
    };
    (2 + locks + lookups + n.div_ceil(DAL_UPSERT_CHUNK) + n.div_ceil(DAL_HISTORY_CHUNK)) as u64
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
pub const COLS: &str = "\"id\", \"created_at\", \"created_by\", \"updated_at\", \"updated_by\", \"deleted_at\", \"version\", \"active\", \"age\", \"email\", \"name\"";
pub const COLS_MY: &str = "`id`, `created_at`, `created_by`, `updated_at`, `updated_by`, `deleted_at`, `version`, `active`, `age`, `email`, `name`";

pub type PgEntityRow = (
    String,
    DateTime<Utc>,
    Option<String>,
    DateTime<Utc>,
    Option<String>,
    Option<DateTime<Utc>>,
    i64,
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
    i64,
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
    i64,
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

/// Parameters per row of dal's upsert: id, created_at, created_by, updated_at, updated_by, the
/// id again (for the version's subquery) or the version, then the four fields.
pub const UPSERT_PARAMS: usize = 10;

/// How dal's upsert learns a new row's version (dal/src/entity/ops/sql.rs `NewVersion`): one
/// past the highest in its history.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum NewVersion {
    /// A subquery per row on the history, from the row's id (dal's save of one entity).
    FromHistory,
    /// A parameter, looked up beforehand for the whole batch ([`next_versions_sql`]; dal's
    /// save of more than one).
    Given,
}

/// The versions bound to dal's upsert, of the statement's [`NewVersion`] form.
#[derive(Clone, Copy, Debug)]
pub enum Versions<'a> {
    /// Each row's id, for its subquery.
    FromHistory,
    /// The highest history version of each id that has history (what [`next_versions_sql`]
    /// found): a row's version is that + 1, or 1.
    Given(&'a HashMap<String, i64>),
}

impl Versions<'_> {
    pub fn form(&self) -> NewVersion {
        match self {
            Versions::FromHistory => NewVersion::FromHistory,
            Versions::Given(_) => NewVersion::Given,
        }
    }
}

/// The columns dal's upsert writes, in its order (system fields but `deleted_at`, then the
/// fields).
const UPSERT_COLS: &str = "\"id\", \"created_at\", \"created_by\", \"updated_at\", \"updated_by\", \"version\", \"active\", \"age\", \"email\", \"name\"";

/// The columns of the plain INSERT (what a raw bulk load writes; `version` keeps its default).
pub const INSERT_COLS: &str = "\"id\", \"created_at\", \"created_by\", \"updated_at\", \"updated_by\", \"active\", \"age\", \"email\", \"name\"";

/// dal's row locks (dal/src/entity/ops.rs `lock_rows`) for `n` ids given in id order: the rows
/// that exist, with their versions.
pub fn lock_sql(table: &str, n: usize) -> String {
    format!(
        "SELECT \"id\", \"version\" FROM \"{table}\" WHERE \"id\" IN ({}) ORDER BY \"id\" FOR UPDATE",
        placeholders_pg(1, n)
    )
}

/// dal's lookup of the new rows' versions (ops/save.rs `next_versions`, ops/sql.rs
/// `next_versions_sql`) for `n` ids: the highest history version of each id that has history.
pub fn next_versions_sql(table: &str, n: usize) -> String {
    format!(
        "SELECT \"id\", MAX(\"version\") FROM \"{table}_history\" WHERE \"id\" IN ({}) GROUP BY \"id\"",
        placeholders_pg(1, n)
    )
}

/// dal's upsert for `rows` rows of the bench's entity (ops/sql.rs `upsert_sql`), as translated
/// for PostgreSQL: a new row's version is one past the highest in its history (as `version`
/// says: a subquery per row, or a parameter), an existing row's goes up by one; with
/// `returning`, it returns the stored rows as dal's does.
pub fn upsert_sql(table: &str, rows: usize, version: NewVersion, returning: bool) -> String {
    let values = (0..rows)
        .map(|r| {
            let p = r * UPSERT_PARAMS;
            let v = match version {
                NewVersion::FromHistory => format!(
                    "(SELECT COALESCE(MAX(\"h\".\"version\"), 0) + 1 FROM \"{table}_history\" \"h\" WHERE \"h\".\"id\" = ${})",
                    p + 6
                ),
                NewVersion::Given => format!("${}", p + 6),
            };
            format!(
                "({}, {v}, {})",
                placeholders_pg(p + 1, 5),
                placeholders_pg(p + 7, 4)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
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
        "INSERT INTO \"{table}\" ({UPSERT_COLS}) VALUES {values} ON CONFLICT (\"id\") DO UPDATE SET {set}, \"version\" = \"{table}\".\"version\" + 1{ret}"
    )
}

/// dal's history append (ops.rs `append_history`) for `n` ids in id order: a copy of each row
/// as stored, its version included.
pub fn history_sql(table: &str, n: usize) -> String {
    let src = COLS
        .split(", ")
        .map(|c| format!("\"src\".{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO \"{table}_history\" ({COLS}, \"history_timestamp\", \"history_user_id\", \"history_comment\") \
         SELECT {src}, $1, $2, $3 FROM \"{table}\" \"src\" WHERE \"src\".\"id\" IN ({}) ORDER BY \"src\".\"id\"",
        placeholders_pg(4, n)
    )
}

/// Not what dal runs: its upsert and history append as ONE statement (a PostgreSQL
/// data-modifying CTE: dal's upsert, versions included in `version`'s form, RETURNING the
/// stored rows feeds the history INSERT, which copies them, and the final SELECT).
/// Parameters: 10 per row, then history timestamp, user, comment.
pub fn upsert_history_cte_sql(table: &str, rows: usize, version: NewVersion) -> String {
    let upsert = upsert_sql(table, rows, version, false);
    let n = rows * UPSERT_PARAMS;
    let from_up = COLS
        .split(", ")
        .map(|c| format!("\"up\".{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH \"up\" AS ({upsert} RETURNING {COLS}), \
         \"hist\" AS (INSERT INTO \"{table}_history\" ({COLS}, \"history_timestamp\", \"history_user_id\", \"history_comment\") \
         SELECT {from_up}, ${}, ${}, ${} FROM \"up\") \
         SELECT {COLS} FROM \"up\"",
        n + 1,
        n + 2,
        n + 3
    )
}

/// Every statement of dal's save of `n` new entities into `table`, in order, as the raw mirror
/// sends them (the tests' reference; at run time the bench compares what each really sends).
#[cfg(test)]
pub fn dal_plan(table: &str, n: usize) -> Vec<String> {
    let chunks = |size: usize| {
        (0..n)
            .step_by(size)
            .map(move |from| size.min(n - from))
            .collect::<Vec<_>>()
    };
    if n == 1 {
        // One entity: one statement, no transaction of its own.
        return vec![upsert_history_cte_sql(table, 1, NewVersion::FromHistory)];
    }
    let mut plan = vec!["BEGIN".to_owned()];
    let version = if n > 1 {
        plan.extend(
            chunks(DAL_LOCK_CHUNK)
                .into_iter()
                .map(|k| lock_sql(table, k)),
        );
        plan.extend(
            chunks(DAL_VERSION_CHUNK)
                .into_iter()
                .map(|k| next_versions_sql(table, k)),
        );
        NewVersion::Given
    } else {
        NewVersion::FromHistory
    };
    plan.extend(
        chunks(DAL_UPSERT_CHUNK)
            .into_iter()
            .map(|k| upsert_sql(table, k, version, true)),
    );
    plan.extend(
        chunks(DAL_HISTORY_CHUNK)
            .into_iter()
            .map(|k| history_sql(table, k)),
    );
    plan.push("COMMIT".to_owned());
    plan
}

/// A plain multi-row INSERT of `rows` rows (what a raw sqlx user writes for a bulk load).
pub fn insert_rows_sql(table: &str, rows: usize) -> String {
    format!(
        "INSERT INTO \"{table}\" ({INSERT_COLS}) VALUES {}",
        (0..rows)
            .map(|r| format!("({})", placeholders_pg(r * 9 + 1, 9)))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;
pub type PgQueryAs<'q, O> = sqlx::query::QueryAs<'q, Postgres, O, PgArguments>;

/// Binds the 9 plain INSERT parameters of each person (created and updated `now`, by nobody).
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

/// Binds the 10 upsert parameters of each person, as dal does (the id a second time, for the
/// version's subquery, or the version given), for a statement whose rows are decoded.
pub fn bind_upsert_as<'q, O>(
    mut q: PgQueryAs<'q, O>,
    rows: &'q [Person],
    versions: Versions<'_>,
    now: DateTime<Utc>,
) -> PgQueryAs<'q, O> {
    for p in rows {
        q = q
            .bind(&p.id)
            .bind(now)
            .bind(None::<String>)
            .bind(now)
            .bind(None::<String>);
        q = match versions {
            Versions::FromHistory => q.bind(&p.id),
            Versions::Given(found) => q.bind(found.get(&p.id).copied().unwrap_or(0) + 1),
        };
        q = q.bind(p.active).bind(p.age).bind(&p.email).bind(&p.name);
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

    /// The upsert dal sends for `save_entity("dal_bench_saves", …)` of a new entity on
    /// PostgreSQL, inside its one CTE statement (fingerprint comment left out): the version by
    /// a subquery on the history.
    const DAL_UPSERT_1: &str = r#"INSERT INTO "dal_bench_saves" ("id", "created_at", "created_by", "updated_at", "updated_by", "version", "active", "age", "email", "name") VALUES ($1, $2, $3, $4, $5, (SELECT COALESCE(MAX("h"."version"), 0) + 1 FROM "dal_bench_saves_history" "h" WHERE "h"."id" = $6), $7, $8, $9, $10) ON CONFLICT ("id") DO UPDATE SET "active" = excluded."active", "age" = excluded."age", "email" = excluded."email", "name" = excluded."name", "updated_at" = excluded."updated_at", "updated_by" = excluded."updated_by", "version" = "dal_bench_saves"."version" + 1 RETURNING "id", "created_at", "created_by", "updated_at", "updated_by", "deleted_at", "version", "active", "age", "email", "name""#;
    /// …and for `save_entities` of two: the row locks, the lookup of the new rows' versions,
    /// then the upsert with the versions given.
    const DAL_LOCK_2: &str = r#"SELECT "id", "version" FROM "dal_bench_saves" WHERE "id" IN ($1, $2) ORDER BY "id" FOR UPDATE"#;
    const DAL_LOOKUP_2: &str = r#"SELECT "id", MAX("version") FROM "dal_bench_saves_history" WHERE "id" IN ($1, $2) GROUP BY "id""#;
    const DAL_UPSERT_2: &str = r#"INSERT INTO "dal_bench_saves" ("id", "created_at", "created_by", "updated_at", "updated_by", "version", "active", "age", "email", "name") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10), ($11, $12, $13, $14, $15, $16, $17, $18, $19, $20) ON CONFLICT ("id") DO UPDATE SET "active" = excluded."active", "age" = excluded."age", "email" = excluded."email", "name" = excluded."name", "updated_at" = excluded."updated_at", "updated_by" = excluded."updated_by", "version" = "dal_bench_saves"."version" + 1 RETURNING "id", "created_at", "created_by", "updated_at", "updated_by", "deleted_at", "version", "active", "age", "email", "name""#;
    const DAL_HISTORY_2: &str = r#"INSERT INTO "dal_bench_saves_history" ("id", "created_at", "created_by", "updated_at", "updated_by", "deleted_at", "version", "active", "age", "email", "name", "history_timestamp", "history_user_id", "history_comment") SELECT "src"."id", "src"."created_at", "src"."created_by", "src"."updated_at", "src"."updated_by", "src"."deleted_at", "src"."version", "src"."active", "src"."age", "src"."email", "src"."name", $1, $2, $3 FROM "dal_bench_saves" "src" WHERE "src"."id" IN ($4, $5) ORDER BY "src"."id""#;

    #[test]
    fn dal_statements_are_mirrored() {
        let t = "dal_bench_saves";
        assert_eq!(
            dal_plan(t, 1),
            [upsert_history_cte_sql(t, 1, NewVersion::FromHistory)]
        );
        assert_eq!(
            dal_plan(t, 2),
            [
                "BEGIN",
                DAL_LOCK_2,
                DAL_LOOKUP_2,
                DAL_UPSERT_2,
                DAL_HISTORY_2,
                "COMMIT"
            ]
        );
        // The one-CTE alternative: dal's upsert, RETURNING the stored rows, feeds the history
        // INSERT; a single entity's with the subquery, a batch's with the versions given.
        let cte = upsert_history_cte_sql(t, 1, NewVersion::FromHistory);
        assert!(cte.starts_with(&format!("WITH \"up\" AS ({DAL_UPSERT_1}), \"hist\" AS (")));
        assert!(cte.ends_with(&format!(
            "\"up\".\"name\", $11, $12, $13 FROM \"up\") SELECT {COLS} FROM \"up\""
        )));
        let cte = upsert_history_cte_sql(t, 2, NewVersion::Given);
        assert!(cte.starts_with(&format!("WITH \"up\" AS ({DAL_UPSERT_2}), \"hist\" AS (")));
        assert!(cte.ends_with(&format!(
            "\"up\".\"name\", $21, $22, $23 FROM \"up\") SELECT {COLS} FROM \"up\""
        )));
        assert_eq!(insert_rows_sql(t, 1000).matches('(').count(), 1001);
    }

    #[test]
    fn plan_sizes() {
        assert_eq!(dal_plan_statements(1), 1);
        assert_eq!(dal_plan_statements(2), 6);
        // BEGIN, 5 locks of 2 000, 5 version lookups of 2 000, 10 upserts of 1 000, 5 history
        // appends of 2 000, COMMIT.
        assert_eq!(dal_plan_statements(10_000), 27);
        for n in [2, 999, 1000, 1001, 2000, 2001, 4000, 10_000] {
            let plan = dal_plan("t", n);
            assert_eq!(plan.len() as u64, dal_plan_statements(n), "{n}");
            let ids = |p: &str| {
                plan.iter()
                    .filter(|s| s.starts_with(p))
                    .map(|s| s[s.rfind("IN (").unwrap()..].matches('$').count())
                    .sum::<usize>()
            };
            let batch = n;
            assert_eq!(ids("SELECT \"id\", \"version\" FROM \"t\""), batch, "{n}");
            assert_eq!(
                ids("SELECT \"id\", MAX(\"version\") FROM \"t_history\""),
                batch,
                "{n}"
            );
            assert_eq!(ids("INSERT INTO \"t_history\""), n, "{n}");
            // Rows upserted (each `($k, …)` in VALUES), and of those, versions by subquery.
            let upserts: Vec<&str> = plan
                .iter()
                .filter(|s| s.starts_with("INSERT INTO \"t\" "))
                .map(|s| &s[s.find(" VALUES ").unwrap()..s.find(" ON CONFLICT").unwrap()])
                .collect();
            let rows: usize = upserts.iter().map(|v| v.matches("($").count()).sum();
            assert_eq!(rows, n, "{n}");
            let params: usize = upserts.iter().map(|v| v.matches('$').count()).sum();
            assert_eq!(params, n * UPSERT_PARAMS, "{n}");
            let subqueries: usize = upserts
                .iter()
                .map(|v| v.matches("(SELECT COALESCE(MAX").count())
                .sum();
            assert_eq!(subqueries, 0, "{n}");
        }
    }

    #[test]
    fn keys_cover_the_table() {
        assert_eq!(key(0), 1);
        assert_eq!(key(KV_ROWS as u64 - 1), KV_ROWS);
        assert_eq!(key(KV_ROWS as u64), 1);
    }
}
