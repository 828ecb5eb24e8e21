//! Each backend's [`Dialect`](super::Dialect): pure facts, no driver, so they exist whichever
//! backend features are compiled (the portable SQL and its tests need every one).

mod mysql;
mod postgres;
mod sqlite;

pub(crate) use mysql::MySqlDialect;
pub(crate) use postgres::PgDialect;
pub(crate) use sqlite::SqliteDialect;
