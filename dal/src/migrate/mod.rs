//! Schema migrations: the schema declared by typed entities (or JSON), compared with the live
//! database, as a [`MigrationPlan`] that [`Migrator::apply`] runs.
//!
//! Two ways to own the schema of entity tables ([`SchemaMode`]):
//!
//! * [`SchemaMode::Auto`] (default, good for development): saves create tables, add columns
//!   (with their `#[entity(index)]`/`#[entity(unique)]` index, also added later to an
//!   existing column) and widen int fields to float. Columns are always nullable: `NOT NULL`,
//!   defaults, checks and foreign keys are never made by saves — only by the [`Migrator`] — so
//!   dynamic saves that leave fields out keep working until the schema says otherwise.
//! * [`SchemaMode::Migrations`] (production): saves never run DDL. A save that needs a table
//!   or a column fails with [`Error::Entity`] naming it; the
//!   [`Migrator`] makes the schema, typically at deploy time.
//!
//! The [`Migrator`] compares the declared schema with the catalog (`information_schema` /
//! `pg_catalog` / SQLite pragmas) and each entity's `_meta` table, and plans: new entities,
//! columns, indexes, unique indexes, `NOT NULL`, defaults, checks, foreign keys, type
//! widening, and — refused unless [`Migrator::allow_destructive`] — changes that may lose data.
//! Constraints apply to the entity's table; its history table stays permissive (old versions
//! predate new fields). `apply` runs in one transaction on PostgreSQL and SQLite; MySQL commits
//! each DDL statement, so there it runs statement by statement and a failed apply is resumed
//! by applying again (the plan is recomputed from the catalog). Concurrent migrators (several
//! app servers deploying at once) serialize on a lock (`pg_advisory_xact_lock`, `GET_LOCK`,
//! SQLite's write lock) and re-plan under it: one applies, the others find nothing to do.
//! Every applied plan is recorded in the `dal_migrations` table ([`Migrator::history`]).
//!
//! Names dal gives to what it makes: indexes `<entity>_<field>_idx` / `_key` (as saves do),
//! checks `dal_ck_<hash>_<hash>`, foreign keys `dal_fk_<hash>_<hash>`. Indexes and
//! constraints with other names are yours, and never touched.

mod apply;
pub(crate) mod catalog;
mod ddl;
mod diff;
mod model;
mod plan;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

pub use model::{EntitySchema, FieldSpec};
pub use plan::{Change, MigrationPlan};

use crate::database::Database;
use crate::entity::Entity;
use crate::error::{Error, Result};

/// Who changes the schema of entity tables: see the [module docs](self) and
/// [`DatabaseConfig::schema_mode`](crate::DatabaseConfig::schema_mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum SchemaMode {
    /// Saves create tables, columns and their indexes as needed (default).
    #[default]
    Auto,
    /// Saves never run DDL; the [`Migrator`] does.
    Migrations,
}

impl SchemaMode {
    /// `"auto"` or `"migrations"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaMode::Auto => "auto",
            SchemaMode::Migrations => "migrations",
        }
    }
}

impl FromStr for SchemaMode {
    type Err = Error;
    /// `auto` or `migrations` (any case).
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(SchemaMode::Auto),
            "migrations" => Ok(SchemaMode::Migrations),
            _ => Err(Error::Config(format!(
                "option schema_mode: {s:?} is not a schema mode (use auto or migrations)"
            ))),
        }
    }
}

/// One row of `dal_migrations`: a plan that was applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppliedMigration {
    /// 1, 2, … in the order applied.
    pub id: i64,
    /// The plan's [`checksum`](MigrationPlan::checksum).
    pub checksum: String,
    /// The statements run, one per line group, each ending in `;`.
    pub statements: String,
    /// Database user and host name of the process that applied it (`user@host`).
    pub applied_by: String,
    /// When (RFC 3339, UTC).
    pub applied_at: String,
    /// Backend name (`postgres`, `mysql`, `sqlite`).
    pub backend: String,
}

/// Plans and applies the declared schema.
///
/// ```
/// use dal::prelude::*;
/// use dal::migrate::Migrator;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Entity, Serialize, Deserialize)]
/// #[entity(table = "doc_products")]
/// struct Product {
///     id: Option<String>,
///     #[entity(unique)]
///     sku: String,
///     #[entity(default = 0, check = "[stock] >= 0")]
///     stock: i64,
///     note: Option<String>,
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
/// let db = Database::from_url("sqlite::memory:")?;
/// let migrator = Migrator::new(&db).entity::<Product>();
/// let plan = migrator.plan().await?;            // a dry run: nothing is executed
/// assert!(!plan.is_empty());
/// for sql in plan.statements() {
///     assert!(!sql.is_empty());                  // e.g. print them for review
/// }
/// let applied = migrator.apply().await?;       // the same statements, recorded
/// assert_eq!(applied.checksum(), plan.checksum());
/// assert!(migrator.plan().await?.is_empty());  // nothing left to do
/// assert_eq!(migrator.history().await?.len(), 1);
///
/// let mut conn = db.async_connection().await?;
/// let err = conn
///     .execute("INSERT INTO [doc_products] ([id], [created_at], [updated_at], [sku], [stock]) VALUES ('x', '', '', 'a', -1)", ())
///     .await
///     .unwrap_err();
/// assert_eq!(err.kind(), dal::DbErrorKind::CheckViolation);
/// # Ok(()) }
/// ```
pub struct Migrator<'a> {
    db: &'a Database,
    schemas: Vec<EntitySchema>,
    files: Vec<PathBuf>,
    allow_destructive: bool,
    drop_undeclared: bool,
    audit_dir: Option<PathBuf>,
}

impl<'a> Migrator<'a> {
    /// A migrator for `db`, with no entity declared yet.
    pub fn new(db: &'a Database) -> Self {
        Migrator {
            db,
            schemas: Vec::new(),
            files: Vec::new(),
            allow_destructive: false,
            drop_undeclared: false,
            audit_dir: None,
        }
    }

    /// Declares the typed entity `T` ([`EntitySchema::of`]).
    pub fn entity<T: Entity>(self) -> Self {
        self.schema(EntitySchema::of::<T>())
    }

    /// Declares an entity's schema (e.g. read from JSON). A later declaration of the same
    /// entity replaces an earlier one.
    pub fn schema(mut self, schema: EntitySchema) -> Self {
        self.schemas.retain(|s| s.name != schema.name);
        self.schemas.push(schema);
        self
    }

    /// Declares the entities of a JSON file holding an array of [`EntitySchema`] (read when
    /// planning; a missing or malformed file is an [`Error::Config`]).
    pub fn schema_file(mut self, path: impl AsRef<Path>) -> Self {
        self.files.push(path.as_ref().to_owned());
        self
    }

    /// Whether [`apply`](Self::apply) runs destructive changes (default `false`: a plan with
    /// any is refused, nothing executed).
    pub fn allow_destructive(mut self, allow: bool) -> Self {
        self.allow_destructive = allow;
        self
    }

    /// Whether live columns no declaration lists are dropped (default `false`: they are kept
    /// and reported as [`Change::Undeclared`]). Dropping is destructive.
    pub fn drop_undeclared(mut self, drop: bool) -> Self {
        self.drop_undeclared = drop;
        self
    }

    /// A directory where each applied plan is written as `<UTC timestamp>_<checksum8>.sql`
    /// (created if missing). The file is written after the plan is committed: if it cannot be
    /// written, `apply` still returns the applied plan and logs a WARN (`dal::migrate`); the
    /// statements are recorded in `dal_migrations` either way.
    pub fn audit_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.audit_dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Compares the declared schema with the database and returns what would change. Runs no
    /// DDL.
    pub async fn plan(&self) -> Result<MigrationPlan> {
        let schemas = self.declared().await?;
        let mut conn = self.db.async_connection().await?;
        diff::plan(&mut conn, &schemas, self.drop_undeclared).await
    }

    /// Plans again under the migration lock and runs the plan; returns what was applied
    /// (empty when the schema was already up to date: nothing is recorded then). A plan with
    /// destructive changes is refused unless [`allow_destructive`](Self::allow_destructive).
    pub async fn apply(&self) -> Result<MigrationPlan> {
        let schemas = self.declared().await?;
        let mut conn = self.db.async_connection().await?;
        let plan = apply::apply(
            &mut conn,
            &schemas,
            self.drop_undeclared,
            self.allow_destructive,
            self.db.config().get_user(),
        )
        .await?;
        if let (Some(dir), false) = (&self.audit_dir, plan.is_empty()) {
            // The plan is applied and recorded in `dal_migrations` (its statements included):
            // a file that cannot be written is no reason to report the migration as failed.
            if let Err(e) = apply::write_audit(dir, &plan).await {
                tracing::warn!(
                    target: "dal::migrate",
                    dir = %dir.display(), error = %e, checksum = plan.checksum(),
                    "the migration was applied, but its audit file could not be written (the statements are in dal_migrations)"
                );
            }
        }
        Ok(plan)
    }

    /// The plans applied so far (rows of `dal_migrations`), oldest first; empty when none.
    pub async fn history(&self) -> Result<Vec<AppliedMigration>> {
        let mut conn = self.db.async_connection().await?;
        apply::history(&mut conn).await
    }

    /// Every declaration: the ones given, then those of the files, validated.
    async fn declared(&self) -> Result<Vec<EntitySchema>> {
        let mut all = self.schemas.clone();
        for path in &self.files {
            for s in read_schema_file(path.clone()).await? {
                all.retain(|x| x.name != s.name);
                all.push(s);
            }
        }
        for s in &all {
            s.validate()?;
        }
        Ok(all)
    }
}

async fn read_schema_file(path: PathBuf) -> Result<Vec<EntitySchema>> {
    let shown = path.display().to_string();
    let text = tokio::task::spawn_blocking(move || std::fs::read_to_string(path))
        .await
        .map_err(|e| Error::Internal(format!("reading {shown}: {e}")))?
        .map_err(|e| Error::Config(format!("schema file {shown}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::Config(format!(
            "schema file {shown}: not a JSON array of entity schemas: {e}"
        ))
    })
}
