//! The entity operations, written once for every backend and for typed and dynamic entities:
//! `save` (inputs checked and converted, then one batch written with its history), `read`
//! (get, find, count, history), `delete` (soft and permanent delete, restore). `input` turns
//! what callers give into rows and schema changes; `sql` builds the statements (pure
//! functions). Backend differences come from the connection's [`Dialect`].

use chrono::{DateTime, Timelike, Utc};
use serde_json::{Map, Value as Json};

use super::codec::from_column;
use super::schema::{Schema, SYSTEM_FIELDS};
use super::typed::FieldType;
use super::value_types;
use crate::backend::{column_list, placeholders, Dialect};
use crate::connection::Connection;
use crate::error::{DbErrorKind, Error, Result};
use crate::row::Row;
use crate::value::Value;

/// At most this many rows per multi-row statement…
const CHUNK_ROWS: usize = 1000;
/// …and at most this many parameters (every backend accepts 32 766).
const CHUNK_PARAMS: usize = 30_000;

pub(crate) type EntityMap = Map<String, Json>;

/// Evaluates `$body` in the caller's transaction, or in one of its own that is retried as a
/// whole, after a jittered backoff from the pool's [`RetryPolicy`](crate::RetryPolicy), when
/// `$retry(&error)` says the server undid it (deadlock, serialization failure, key race).
macro_rules! in_own_tx {
    ($conn:ident, $retry:expr, $body:expr) => {{
        $conn.refuse_writes_if_read_only()?;
        let mut backoff = $conn.retry_policy().backoff();
        loop {
            let own = !$conn.in_transaction();
            if own {
                $conn.begin_transaction().await?;
            }
            let r = $body;
            match $conn.end_own_tx(own, r).await {
                Err(e) if own && $retry(&e) => match backoff.next_delay() {
                    Some(delay) => {
                        // No time left for another try within the operation's deadline.
                        if let Err(timeout) = $conn.check_op_sleep(delay) {
                            break Err(timeout);
                        }
                        tracing::debug!(target: "dal::entity", error = %e, retry = backoff.retries(), "retrying entity write");
                        tokio::time::sleep(delay).await;
                    }
                    None => break Err(e),
                },
                other => break other,
            }
        }
    }};
}

mod copy;
mod delete;
mod input;
mod read;
mod rollback;
mod save;
mod sql;
mod transfer;

pub(crate) use rollback::rollback_comment;
pub use rollback::RollbackReport;
pub(crate) use save::SaveRequest;
pub(crate) use transfer::{part_columns, Layout, PageKey, Part};

/// Who and why, recorded in history.
#[derive(Debug, Clone, Default)]
pub(crate) struct Audit {
    pub user_id: Option<String>,
    pub comment: Option<String>,
}

/// A `find_entities`/`count_entities` query.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    pub filter: Option<(String, Vec<Value>)>,
    pub order_by: Option<String>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub include_deleted: bool,
    /// Values as stored, without conversion back.
    pub raw: bool,
}

fn now_micros() -> DateTime<Utc> {
    let t = Utc::now();
    t.with_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// A primary key violation (the entity id, or a history version) means a concurrent writer
/// created the same row first: the save is retried. A violation of a user's unique field is
/// the user's error and is not.
fn is_key_race(e: &Error) -> bool {
    e.kind() == DbErrorKind::PrimaryKeyViolation
}

/// A conflict the server resolved by undoing the work (deadlock, serialization failure, lock
/// timeout, SQLite busy): the whole own transaction is run again.
fn is_retryable_tx_error(e: &Error) -> bool {
    e.kind().is_conflict()
}

impl Connection {
    /// This connection's backend facts.
    pub(crate) fn dialect(&self) -> &'static dyn Dialect {
        crate::backend::dialect(self.backend())
    }
}

/// Columns of an entity row, in order: system fields then user fields.
fn columns(schema: &Schema) -> Vec<String> {
    SYSTEM_FIELDS
        .iter()
        .map(|s| (*s).to_owned())
        .chain(schema.fields.keys().cloned())
        .collect()
}

fn system_type(col: &str) -> FieldType {
    match col {
        "created_at" | "updated_at" | "deleted_at" | "history_timestamp" => FieldType::Timestamp,
        "version" => FieldType::Int,
        _ => FieldType::Text,
    }
}

/// How stored values come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decode {
    /// Converted to each field's logical type (and through a custom value type's
    /// deserializer).
    Converted,
    /// As stored, with no conversion: each value as the driver decodes it
    /// ([`Value::to_json`]), except booleans where the backend stores integers (MySQL,
    /// SQLite): `1` / `0`.
    Raw { native_bool: bool },
}

impl Connection {
    fn decode(&self, raw: bool) -> Decode {
        if raw {
            Decode::Raw {
                native_bool: self.backend() == crate::sql::Backend::Postgres,
            }
        } else {
            Decode::Converted
        }
    }
}

fn row_to_map(row: Row, entity: &str, schema: &Schema, how: Decode) -> Result<EntityMap> {
    let names: Vec<String> = row.columns().to_vec();
    let mut map = Map::new();
    for (name, v) in names.into_iter().zip(row.into_values()) {
        let json = match (how, v) {
            (Decode::Converted, v) => field_json(entity, schema, &name, v)?,
            (Decode::Raw { native_bool: false }, Value::Bool(b)) => Json::from(i64::from(b)),
            (Decode::Raw { .. }, v) => v.to_json(),
        };
        map.insert(name, json);
    }
    Ok(map)
}

/// A stored value of column `name` converted back for callers.
fn field_json(entity: &str, schema: &Schema, name: &str, v: Value) -> Result<Json> {
    if let Some(type_name) = schema.custom.get(name) {
        return value_types::from_stored(entity, name, type_name, v);
    }
    let ty = schema
        .fields
        .get(name)
        .copied()
        .unwrap_or_else(|| system_type(name));
    from_column(ty, v)
}

impl Connection {
    /// Commits or rolls back a transaction this operation opened itself.
    async fn end_own_tx<T>(&mut self, own: bool, r: Result<T>) -> Result<T> {
        if !own {
            return r;
        }
        match r {
            Ok(v) => {
                self.commit_transaction().await?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.rollback_transaction().await;
                Err(e)
            }
        }
    }
}
