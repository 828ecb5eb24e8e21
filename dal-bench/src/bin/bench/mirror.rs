//! dal's entity save on PostgreSQL done by hand with raw sqlx: the statements of [`crate::sql`]
//! run in dal's order (dal/src/entity/ops/save.rs `write_batch`), one round trip each. The
//! caller owns the transaction (dal's save runs BEGIN … COMMIT around these).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Utc};
use dal_bench::Result;
use sqlx::PgConnection;

use crate::sql::{
    bind_upsert_as, history_sql, leak, lock_sql, next_versions_sql, upsert_history_cte_sql,
    upsert_sql, NewVersion, Person, PgEntityRow, Versions, DAL_HISTORY_CHUNK, DAL_LOCK_CHUNK,
    DAL_UPSERT_CHUNK, DAL_VERSION_CHUNK,
};

/// A kind of statement of the save.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Lock,
    Lookup,
    Upsert(NewVersion),
    History,
    Cte(NewVersion),
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
            Kind::Lookup => next_versions_sql(table, n),
            Kind::Upsert(v) => upsert_sql(table, n, v, true),
            Kind::History => history_sql(table, n),
            Kind::Cte(v) => upsert_history_cte_sql(table, n, v),
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

/// dal's lookup of the new rows' versions (a batch of more than one): the highest history
/// version of each id among `people` that has history, 2 000 ids per statement. (dal looks
/// its ids up in the order they were given; the mirror's are in id order, the same ids.)
pub async fn next_versions(
    c: &mut PgConnection,
    table: &'static str,
    people: &[Person],
) -> Result<HashMap<String, i64>> {
    let mut found = HashMap::new();
    for chunk in people.chunks(DAL_VERSION_CHUNK) {
        let mut q = sqlx::query_as::<_, (String, i64)>(statement(Kind::Lookup, table, chunk.len()));
        for p in chunk {
            q = q.bind(&p.id);
        }
        found.extend(q.fetch_all(&mut *c).await?);
    }
    Ok(found)
}

/// dal's upserts, 1 000 rows per statement, each new row's version in `versions`' form (a
/// subquery per row for one entity, given for a batch), the stored rows returned and decoded.
/// Returns how many came back.
pub async fn upsert_rows(
    c: &mut PgConnection,
    table: &'static str,
    people: &[Person],
    versions: Versions<'_>,
    now: DateTime<Utc>,
) -> Result<usize> {
    let mut back = 0;
    for chunk in people.chunks(DAL_UPSERT_CHUNK) {
        let sql = statement(Kind::Upsert(versions.form()), table, chunk.len());
        let q = bind_upsert_as(sqlx::query_as::<_, PgEntityRow>(sql), chunk, versions, now);
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

/// dal's save of `people` (new or not, in id order) inside the caller's transaction: when
/// there is more than one, the row locks and the lookup of the new rows' versions, then the
/// upserts (versions given; for one entity, its subquery), the history appends. Returns the
/// rows the upserts returned.
pub async fn save(
    c: &mut PgConnection,
    table: &'static str,
    people: &[Person],
    now: DateTime<Utc>,
) -> Result<usize> {
    let back = if people.len() > 1 {
        lock_rows(c, table, people).await?;
        let found = next_versions(c, table, people).await?;
        upsert_rows(c, table, people, Versions::Given(&found), now).await?
    } else {
        upsert_rows(c, table, people, Versions::FromHistory, now).await?
    };
    append_history(c, table, people, now).await?;
    Ok(back)
}

/// Not dal's plan: upsert and history append as one CTE statement per 1 000 rows, the stored
/// rows returned and decoded; its upsert is dal's (for more than one entity, the versions
/// looked up first as dal does, 2 000 ids per statement, and given; for one, its subquery).
/// Returns how many came back.
pub async fn save_cte(
    c: &mut PgConnection,
    table: &'static str,
    people: &[Person],
    now: DateTime<Utc>,
) -> Result<usize> {
    let found;
    let versions = if people.len() > 1 {
        found = next_versions(c, table, people).await?;
        Versions::Given(&found)
    } else {
        Versions::FromHistory
    };
    let mut back = 0;
    for chunk in people.chunks(DAL_UPSERT_CHUNK) {
        let sql = statement(Kind::Cte(versions.form()), table, chunk.len());
        back += bind_upsert_as(sqlx::query_as::<_, PgEntityRow>(sql), chunk, versions, now)
            .bind(now)
            .bind(None::<String>)
            .bind(None::<String>)
            .fetch_all(&mut *c)
            .await?
            .len();
    }
    Ok(back)
}
