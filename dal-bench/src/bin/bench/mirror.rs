//! dal's entity save on PostgreSQL done by hand with raw sqlx: the statements of [`crate::sql`]
//! run in dal's order (dal/src/entity/ops.rs `write_batch`), one round trip each. The caller
//! owns the transaction (dal's save runs BEGIN … COMMIT around these).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Utc};
use dal_bench::Result;
use sqlx::PgConnection;

use crate::sql::{
    bind_upsert_as, history_sql, leak, lock_sql, upsert_history_cte_sql, upsert_sql, Person,
    PgEntityRow, DAL_HISTORY_CHUNK, DAL_LOCK_CHUNK, DAL_UPSERT_CHUNK,
};

/// A kind of statement of the save.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Lock,
    Upsert,
    History,
    Cte,
}

/// Statements built so far, by kind, table and rows.
type Built = HashMap<(Kind, &'static str, usize), &'static str>;

/// The statement of `kind` for `n` rows of `table`, built once per process.
fn statement(kind: Kind, table: &'static str, n: usize) -> &'static str {
    static BUILT: OnceLock<Mutex<Built>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    built.entry((kind, table, n)).or_insert_with(|| {
        leak(match kind {
            Kind::Lock => lock_sql(table, n),
            Kind::Upsert => upsert_sql(table, n, true),
            Kind::History => history_sql(table, n),
            Kind::Cte => upsert_history_cte_sql(table, n),
        })
    })
}

/// Puts a batch in the order dal writes it: by id (byte order, as dal compares its ids).
pub fn in_id_order(people: &mut [Person]) {
    people.sort_unstable_by(|a, b| a.id.cmp(&b.id));
}

/// dal's row locks: the rows among `people` (in id order) that exist, locked, with their
/// versions, 2 000 ids per statement. Returns how many exist.
pub async fn lock_rows(
    c: &mut PgConnection,
    table: &'static str,
    people: &[Person],
) -> Result<usize> {
    let mut found = 0;
    for chunk in people.chunks(DAL_LOCK_CHUNK) {
        let mut q = sqlx::query_as::<_, (String, i64)>(statement(Kind::Lock, table, chunk.len()));
        for p in chunk {
            q = q.bind(&p.id);
        }
        found += q.fetch_all(&mut *c).await?.len();
    }
    Ok(found)
}

/// dal's upserts, 1 000 rows per statement, the stored rows returned and decoded. Returns how
/// many came back.
pub async fn upsert_rows(
    c: &mut PgConnection,
    table: &'static str,
    people: &[Person],
    now: DateTime<Utc>,
) -> Result<usize> {
    let mut back = 0;
    for chunk in people.chunks(DAL_UPSERT_CHUNK) {
        let sql = statement(Kind::Upsert, table, chunk.len());
        let q = bind_upsert_as(sqlx::query_as::<_, PgEntityRow>(sql), chunk, now);
        back += q.fetch_all(&mut *c).await?.len();
    }
    Ok(back)
}

/// dal's history appends, 2 000 ids per statement (history timestamp `now`, no user, no
/// comment). Returns the rows appended.
pub async fn append_history(
    c: &mut PgConnection,
    table: &'static str,
    people: &[Person],
    now: DateTime<Utc>,
) -> Result<u64> {
    let mut appended = 0;
    for chunk in people.chunks(DAL_HISTORY_CHUNK) {
        let mut q = sqlx::query(statement(Kind::History, table, chunk.len()))
            .bind(now)
            .bind(None::<String>)
            .bind(None::<String>);
        for p in chunk {
            q = q.bind(&p.id);
        }
        appended += q.execute(&mut *c).await?.rows_affected();
    }
    Ok(appended)
}

/// dal's save of `people` (new or not, in id order) inside the caller's transaction: the row
/// locks when there is more than one, the upserts, the history appends. Returns the rows the
/// upserts returned.
pub async fn save(
    c: &mut PgConnection,
    table: &'static str,
    people: &[Person],
    now: DateTime<Utc>,
) -> Result<usize> {
    if people.len() > 1 {
        lock_rows(c, table, people).await?;
    }
    let back = upsert_rows(c, table, people, now).await?;
    append_history(c, table, people, now).await?;
    Ok(back)
}

/// Not dal's plan: upsert and history append as one CTE statement per 1 000 rows, the stored
/// rows returned and decoded. Returns how many came back.
pub async fn save_cte(
    c: &mut PgConnection,
    table: &'static str,
    people: &[Person],
    now: DateTime<Utc>,
) -> Result<usize> {
    let mut back = 0;
    for chunk in people.chunks(DAL_UPSERT_CHUNK) {
        let sql = statement(Kind::Cte, table, chunk.len());
        back += bind_upsert_as(sqlx::query_as::<_, PgEntityRow>(sql), chunk, now)
            .bind(now)
            .bind(None::<String>)
            .bind(None::<String>)
            .fetch_all(&mut *c)
            .await?
            .len();
    }
    Ok(back)
}
