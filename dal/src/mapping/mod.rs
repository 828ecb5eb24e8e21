//! Row mapping: rows of ad-hoc SQL decoded into any `T: Deserialize` — [`Row::decode`],
//! [`RowsExt::into_typed`], [`Connection::query_as`] and [`SyncConnection::query_as`].
//!
//! A struct takes its fields from the columns of the same name (exact, then ASCII
//! case-insensitive, so PostgreSQL's lower-cased aliases match `camelCase` fields); columns it
//! does not name are ignored; an `Option` field, or one with `#[serde(default)]`, may have no
//! column; any other field without a column is [`Error::ColumnNotFound`]. A tuple takes the
//! columns by position (as many as the row has), a `Vec` all of them, a map every column by
//! name, and a plain value (`i64`, `String`, …) the only column of a one-column row. Each
//! value converts as [`Row::try_get`] converts it (see [`FromValue`](crate::FromValue)):
//! integers are range-checked (a negative value never becomes a `u32`), `bool` reads 0/1,
//! `chrono` types read timestamps stored as text; an `Option` is `None` for `NULL`; an enum
//! reads its unit variants from text (as serde writes them, `#[serde(rename_all)]` and all);
//! nested structs, maps and other sequences read a JSON column (or JSON text, as SQLite keeps
//! it), a `serde_json::Value` parses JSON text (other text stays a string) and a `Vec<u8>`
//! reads a binary column. A value that does not convert is [`Error::Conversion`], naming the
//! column and the type.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
//! use dal::prelude::*;
//! use serde::Deserialize;
//!
//! #[derive(Debug, PartialEq, Deserialize)]
//! #[serde(rename_all = "lowercase")]
//! enum Tier { Free, Pro }
//!
//! #[derive(Debug, Deserialize)]
//! struct Account { name: String, tier: Tier, credits: u32, note: Option<String> }
//!
//! let db = Database::from_url("sqlite::memory:")?;
//! let mut conn = db.async_connection().await?;
//! let accounts: Vec<Account> =
//!     conn.query_as("SELECT 'ann' AS [name], 'pro' AS [tier], 20 AS [credits], 1 AS [ignored]", ()).await?;
//! assert_eq!(accounts[0].tier, Tier::Pro);
//! assert_eq!(accounts[0].note, None); // no such column: None
//!
//! let e = conn.query_as::<Account>("SELECT 'bob' AS [name], 'pro' AS [tier], -1 AS [credits]", ())
//!     .await.unwrap_err();
//! assert!(e.to_string().contains(r#"column "credits": -1 does not fit in u32"#));
//! # Ok(()) }
//! ```

mod de;

use std::future::IntoFuture;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::connection::{Connection, QueryOptions};
use crate::error::{Error, Result};
use crate::row::Row;
use crate::value::{IntoParams, Value};
use crate::SyncConnection;

use de::{DeError, RowDeserializer};

pub(crate) use de::from_json_fields;

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// How many column names an error lists before it stops.
const COLUMNS_IN_ERRORS: usize = 16;

/// `row` decoded into `T`; `index` is the row's position in a result, for errors.
fn decode_row<'de, T: Deserialize<'de>>(row: &'de Row, index: Option<usize>) -> Result<T> {
    T::deserialize(RowDeserializer::new(row)).map_err(|e| decode_error::<T>(e, row, index))
}

fn decode_error<T>(e: DeError, row: &Row, index: Option<usize>) -> Error {
    let target = std::any::type_name::<T>();
    let which = index
        .map(|i| format!("row {i}"))
        .unwrap_or_else(|| "a row".into());
    match e {
        DeError::Missing(field) => {
            let mut columns: Vec<String> = row
                .columns()
                .iter()
                .take(COLUMNS_IN_ERRORS)
                .map(|c| format!("{c:?}"))
                .collect();
            if row.len() > COLUMNS_IN_ERRORS {
                columns.push(format!("… ({} in all)", row.len()));
            }
            let columns = if columns.is_empty() {
                "none".to_owned()
            } else {
                columns.join(", ")
            };
            Error::ColumnNotFound(format!(
                "{field:?} (for the field `{field}` of {target}, which is not an Option; \
                 columns: {columns})"
            ))
        }
        located => Error::Conversion(format!("cannot decode {which} into {target}: {located}")),
    }
}

impl Row {
    /// Decodes the row into any `T: Deserialize`: a struct by column name, a tuple by
    /// position, a single value from a one-column row (see [the rules](crate::mapping)).
    /// A string field may borrow from the row (`&str`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
    /// use dal::prelude::*;
    /// #[derive(serde::Deserialize)]
    /// struct Sales { region: String, orders: i64, revenue: Option<f64> }
    ///
    /// let db = Database::from_url("sqlite::memory:")?;
    /// let mut conn = db.async_connection().await?;
    /// let rows = conn.execute("SELECT 'north' AS [region], 3 AS [orders], NULL AS [revenue]", ()).await?;
    /// let s: Sales = rows[0].decode()?;
    /// assert_eq!((s.region.as_str(), s.orders, s.revenue), ("north", 3, None));
    ///
    /// let (region, orders): (&str, u32) = rows[0].decode::<(&str, u32, Option<f64>)>()
    ///     .map(|(r, o, _)| (r, o))?;
    /// assert_eq!((region, orders), ("north", 3));
    /// # Ok(()) }
    /// ```
    pub fn decode<'de, T: Deserialize<'de>>(&'de self) -> Result<T> {
        decode_row(self, None)
    }
}

/// `into_typed` on the rows that [`execute`](Connection::execute) returns. In
/// [`prelude`](crate::prelude).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
/// use dal::prelude::*;
/// #[derive(serde::Deserialize)]
/// struct Point { x: i32, y: i32 }
///
/// let db = Database::from_url("sqlite::memory:")?;
/// let mut conn = db.async_connection().await?;
/// let rows = conn.execute("SELECT 1 AS [x], 2 AS [y] UNION ALL SELECT 3, 4", ()).await?;
/// let points: Vec<Point> = rows.into_typed()?;
/// assert_eq!(points.iter().map(|p| p.x + p.y).sum::<i32>(), 10);
/// # Ok(()) }
/// ```
pub trait RowsExt {
    /// Decodes every row into `T` (see [`Row::decode`]); the first row that does not decode
    /// is an error naming its position.
    fn into_typed<T: DeserializeOwned>(self) -> Result<Vec<T>>;
}

impl RowsExt for Vec<Row> {
    fn into_typed<T: DeserializeOwned>(self) -> Result<Vec<T>> {
        self.iter()
            .enumerate()
            .map(|(i, row)| decode_row(row, Some(i)))
            .collect()
    }
}

/// A query whose rows decode into `T`: set `.timeout()` / `.tag()`, then `.await` it. Made by
/// [`Connection::query_as`].
#[must_use = "a statement does nothing until awaited"]
pub struct QueryAs<'c, T> {
    conn: &'c mut Connection,
    sql: String,
    params: Vec<Value>,
    opts: QueryOptions,
    target: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for QueryAs<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Parameters may be secrets: only their number is shown.
        f.debug_struct("QueryAs")
            .field("sql", &self.sql)
            .field("params", &self.params.len())
            .field("target", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

impl<T> QueryAs<'_, T> {
    /// Overrides `query_execution_timeout` for this statement.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.opts.timeout = Some(t);
        self
    }

    /// Adds a tag (for tracing spans, metrics and the slow-query log).
    pub fn tag(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.opts.tags.push((key.into(), value.to_string()));
        self
    }
}

impl<'c, T: DeserializeOwned + 'c> IntoFuture for QueryAs<'c, T> {
    type Output = Result<Vec<T>>;
    type IntoFuture = BoxFuture<'c, Result<Vec<T>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let out = self.conn.run(&self.sql, &self.params, &self.opts).await?;
            out.rows.into_typed()
        })
    }
}

impl Connection {
    /// Runs a statement like [`execute`](Connection::execute) and decodes its rows into `T`
    /// (any `T: Deserialize`; see [`Row::decode`]): a report query needs no `try_get` per
    /// column. Takes `.timeout()` and `.tag()` like `execute`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
    /// use dal::prelude::*;
    /// use std::time::Duration;
    /// #[derive(serde::Deserialize)]
    /// struct Total { name: String, total: i64 }
    ///
    /// let db = Database::from_url("sqlite::memory:")?;
    /// let mut conn = db.async_connection().await?;
    /// conn.execute("CREATE TABLE [orders] ([name] TEXT, [qty] INTEGER)", ()).await?;
    /// conn.executemany("INSERT INTO [orders] VALUES (?, ?)",
    ///     vec![params!["ann", 2], params!["bob", 1], params!["ann", 5]]).await?;
    /// let totals = conn.query_as::<Total>(
    ///         "SELECT [name], SUM([qty]) AS [total] FROM [orders] WHERE [qty] > ? GROUP BY [name] ORDER BY [name]",
    ///         params![0])
    ///     .timeout(Duration::from_secs(5))
    ///     .await?;
    /// assert_eq!((totals[0].name.as_str(), totals[0].total), ("ann", 7));
    ///
    /// let n: Vec<i64> = conn.query_as("SELECT COUNT(*) FROM [orders]", ()).await?;
    /// assert_eq!(n, [3]);
    /// # Ok(()) }
    /// ```
    pub fn query_as<T: DeserializeOwned>(
        &mut self,
        sql: &str,
        params: impl IntoParams,
    ) -> QueryAs<'_, T> {
        QueryAs {
            conn: self,
            sql: sql.to_owned(),
            params: params.into_params(),
            opts: QueryOptions::default(),
            target: PhantomData,
        }
    }
}

impl SyncConnection {
    /// Runs a statement and decodes its rows into `T`, as [`Connection::query_as`] does.
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// struct Item { id: i64, label: Option<String> }
    ///
    /// let db = dal::Database::from_url("sqlite::memory:")?;
    /// let mut conn = db.sync_connection()?;
    /// let items: Vec<Item> = conn.query_as("SELECT 7 AS [id], NULL AS [label]", ())?;
    /// assert_eq!((items[0].id, items[0].label.as_deref()), (7, None));
    /// # Ok::<(), dal::Error>(())
    /// ```
    pub fn query_as<T: DeserializeOwned>(
        &mut self,
        sql: &str,
        params: impl IntoParams,
    ) -> Result<Vec<T>> {
        self.query_as_with(sql, params, QueryOptions::default())
    }

    /// [`query_as`](SyncConnection::query_as) with options (timeout, tags).
    pub fn query_as_with<T: DeserializeOwned>(
        &mut self,
        sql: &str,
        params: impl IntoParams,
        opts: QueryOptions,
    ) -> Result<Vec<T>> {
        self.execute_with(sql, params, opts)?.into_typed()
    }
}
