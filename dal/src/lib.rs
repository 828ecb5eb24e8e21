//! # dal — one database API over PostgreSQL, MySQL/MariaDB and SQLite
//!
//! Pooling, timeouts (that stop the query on the server), transactions that never leak, portable
//! SQL, and an entity layer — behind one small API.
//!
//! ```
//! use dal::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
//! let db = Database::from_url("sqlite::memory:")?;
//! let mut conn = db.async_connection().await?;
//! conn.execute("CREATE TABLE [users] ([id] INTEGER PRIMARY KEY, [name] TEXT)", ()).await?;
//!
//! conn.begin_transaction().await?;
//! conn.execute("INSERT INTO [users] ([name]) VALUES (?)", params!["Phil"]).await?;
//! conn.commit_transaction().await?;
//!
//! let rows = conn.execute("SELECT [name] FROM [users] WHERE [id] = ?", params![1]).await?;
//! let name: String = rows[0].try_get("name")?;
//! assert_eq!(name, "Phil");
//! # Ok(()) }
//! ```
//!
//! Portable SQL: `[name]` quotes an identifier and `?` is a parameter on every backend; see
//! [`sql`] for the exact rules.
//!
//! Cargo features: `postgres`, `mysql`, `sqlite` (one per backend's driver) and `tls` (rustls),
//! all on by default; `metrics` (report through the `metrics` crate facade) is off.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
pub mod backup;
mod blocking;
mod config;
mod connection;
mod database;
pub mod entity;
mod error;
pub mod mapping;
pub mod migrate;
mod pool;
pub mod resilience;
mod row;
pub mod sql;
mod topology;
mod value;
mod version;

pub use blocking::{RowIter, SyncConnection};
pub use config::{DatabaseConfig, ReadYourWrites, SslMode, TargetSessionAttrs};
pub use connection::{Connection, Execute, ExecuteMany, QueryOptions, RowStream, TxScope};
pub use dal_macros::{auto_transaction, Entity};
pub use database::{Database, DatabaseFactory};
pub use entity::{
    is_serializer_registered, register_serializer, unregister_serializer, DeleteOptions, Entity,
    FieldDef, FieldType, FindOptions, GetOptions, HistoryOptions, IntoEntity, RestoreOptions,
    RollbackOptions, RollbackReport, SaveOptions, ValueTypeError, Versioned,
};
pub use error::{ConnectionError, DbErrorKind, Error, Result, TimeoutKind};
pub use mapping::{QueryAs, RowsExt};
pub use pool::{
    LeakReport, Percentiles, PoolManager, PoolMetrics, PoolStatus, PoolTuning, ScalingAdvice,
};
pub use resilience::{BreakerConfig, BreakerState, CircuitStatus, RetryPolicy};
pub use row::{ColumnIndex, Row};
pub use rust_decimal::Decimal;
pub use sql::Backend;
pub use topology::{NodeStatus, Role, Topology};
pub use value::{FromValue, IntoParams, Value};
pub use version::VersionDetails;

/// Everything a typical user needs: `use dal::prelude::*;`.
pub mod prelude {
    pub use crate::params;
    pub use crate::{
        auto_transaction, Backend, Connection, Database, DatabaseConfig, DatabaseFactory,
        DbErrorKind, Entity, Error, FromValue, IntoParams, PoolManager, PoolMetrics, PoolStatus,
        QueryOptions, ReadYourWrites, Result, Role, Row, RowStream, RowsExt, ScalingAdvice,
        SyncConnection, TimeoutKind, Value,
    };
    pub use crate::{
        Decimal, DeleteOptions, FindOptions, GetOptions, HistoryOptions, IntoEntity,
        RestoreOptions, SaveOptions, Versioned,
    };
    pub use serde_json::{json, Map, Value as JsonValue};
}
