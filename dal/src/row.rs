//! [`Row`]: one result row with its column names.

use std::ops::Index;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::value::{FromValue, Value};

/// One row of a result set. Column names are shared by every row of the same result.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    pub(crate) fn new(columns: Arc<[String]>, values: Vec<Value>) -> Self {
        Row { columns, values }
    }

    /// Column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Consumes the row into its values.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of the named column (exact match first, then ASCII case-insensitive).
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.position(column).map(|i| &self.values[i])
    }

    pub(crate) fn position(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == column).or_else(|| {
            self.columns
                .iter()
                .position(|c| c.eq_ignore_ascii_case(column))
        })
    }

    /// The value at `index` (a position or a column name), converted to `T`.
    ///
    /// ```
    /// # fn f(row: &dal::Row) -> dal::Result<()> {
    /// let name: String = row.try_get("name")?;
    /// let age: Option<i64> = row.try_get(1)?;
    /// # Ok(()) }
    /// ```
    pub fn try_get<T: FromValue, I: ColumnIndex>(&self, index: I) -> Result<T> {
        let i = index.position_in(self)?;
        T::from_value(&self.values[i])
            .map_err(|e| Error::Conversion(format!("column {}: {e}", index.describe())))
    }
}

/// A way to name a column: its position (`usize`) or its name (`&str`).
pub trait ColumnIndex {
    /// The position of the column in `row`, or `ColumnNotFound`.
    fn position_in(&self, row: &Row) -> Result<usize>;
    /// For error messages.
    fn describe(&self) -> String;
}

impl ColumnIndex for usize {
    fn position_in(&self, row: &Row) -> Result<usize> {
        if *self < row.values.len() {
            Ok(*self)
        } else {
            Err(Error::ColumnNotFound(format!(
                "#{self} (row has {} columns)",
                row.values.len()
            )))
        }
    }
    fn describe(&self) -> String {
        format!("#{self}")
    }
}

impl ColumnIndex for &str {
    fn position_in(&self, row: &Row) -> Result<usize> {
        row.position(self)
            .ok_or_else(|| Error::ColumnNotFound(format!("{self:?}")))
    }
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

impl Index<usize> for Row {
    type Output = Value;
    fn index(&self, index: usize) -> &Value {
        &self.values[index]
    }
}
