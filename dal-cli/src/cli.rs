//! The command line: every command, option and argument, as clap parses them.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

/// The `dal` tool: schema migrations, backups, restores, copies between backends, rollback to
/// a date, and the state of a database.
#[derive(Debug, Parser)]
#[command(name = "dal", version, about, propagate_version = true)]
pub struct Cli {
    /// Database URL (postgres://user@host:5432/db, mysql://…, mariadb://…, sqlite://file.db).
    /// Default: DATABASE_URL (its password may come from DAL_PASSWORD_FILE or PGPASSFILE).
    #[arg(long, global = true, value_name = "URL", display_order = 100)]
    pub url: Option<String>,

    /// Machine-readable output: one JSON document on stdout (no progress bars).
    #[arg(long, global = true, display_order = 101)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compare a declared schema with the database, and bring the database to it.
    #[command(subcommand)]
    Migrate(Migrate),

    /// Write every entity (rows, metadata, history) to DIR as JSON Lines with a manifest.
    Backup(BackupArgs),

    /// Restore a backup written by `dal backup` into an empty database.
    Restore(RestoreArgs),

    /// Copy entities with their history and metadata from one database to another (which must
    /// not hold them yet). Takes --from and --to instead of --url.
    Copy(CopyArgs),

    /// Restore an entity (or every entity of a kind) to its state at a past time.
    Rollback(RollbackArgs),

    /// Backend, server version, pool figures, entities, applied migrations, pending plan.
    Status(StatusArgs),
}

#[derive(Debug, Subcommand)]
pub enum Migrate {
    /// Print the changes that would bring the database to the declared schema (dry run).
    Plan(SchemaArgs),
    /// Apply those changes.
    Apply(ApplyArgs),
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// The declared schema: a JSON array of entity schemas, as a program exports it
    /// (`[{"name": "users", "fields": [{"name": "email", "type": "text", "unique": true}]}]`).
    #[arg(long, value_name = "FILE")]
    pub schema: PathBuf,

    /// Drop columns that the schema does not declare (destructive; without it they are kept
    /// and reported).
    #[arg(long)]
    pub drop_undeclared: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub schema: SchemaArgs,

    /// Run changes that may lose data (drop a column, change a type other than widening it,
    /// NOT NULL on a column holding NULLs); without it a plan with such changes is refused.
    #[arg(long)]
    pub allow_destructive: bool,

    /// Write each applied plan to this directory as a timestamped .sql file.
    #[arg(long, value_name = "DIR")]
    pub audit_dir: Option<PathBuf>,
}

/// A comma-separated entity list (`--entities users,orders`); repeating the option adds more.
#[derive(Debug, Args)]
pub struct EntityList {
    /// Only these entities (comma-separated); default: every entity.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub entities: Vec<String>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Directory to write the backup to (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    #[command(flatten)]
    pub entities: EntityList,

    /// Also write a native dump of the whole database to FILE (pg_dump, mariadb-dump, or
    /// SQLite's VACUUM INTO).
    #[arg(long, value_name = "FILE")]
    pub native: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Directory holding a backup written by `dal backup`.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    #[command(flatten)]
    pub entities: EntityList,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Database to read from.
    #[arg(long, value_name = "URL")]
    pub from: String,

    /// Database to write to.
    #[arg(long, value_name = "URL")]
    pub to: String,

    #[command(flatten)]
    pub entities: EntityList,

    /// Rows per batch (one transaction each on the target); default 1000.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: Option<u32>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The entity kind (table name), e.g. users.
    #[arg(long, value_name = "NAME")]
    pub entity: String,

    /// Only this entity; default: every entity of the kind.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,

    /// The time to go back to, RFC 3339 (2026-11-01T00:00:00Z or 2026-11-01T01:00:00+01:00).
    #[arg(long, value_name = "TIMESTAMP", value_parser = parse_timestamp)]
    pub to: DateTime<Utc>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Also show the plan that would bring the database to this declared schema.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
}

/// An RFC 3339 timestamp, in UTC.
fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}: expected an RFC 3339 timestamp such as 2026-11-01T00:00:00Z"))
}
