//! Backups, restores and copies of every entity, across backends.
//!
//! * [`export`] writes each entity's current rows (soft-deleted ones included), its `_meta`
//!   and its `_history` as JSON Lines files in a directory, with a `manifest.json` (format
//!   version, dal version, backend, time, and per entity its field types, the row count of
//!   each file and its SHA-256). Tables are read page by page in key order (keyset
//!   pagination) inside one snapshot transaction and written through buffered files, so memory
//!   stays bounded whatever the size of the tables. On SQLite the snapshot transaction holds
//!   the database's write lock while the export runs.
//! * [`import`] restores such a directory into a database — of any backend — that does not
//!   hold those entities yet: it checks every file against its checksum before writing
//!   anything, creates the tables through the same schema code a save uses (same column
//!   types), inserts rows and history exactly as they were (ids, `created_*`, `updated_*`,
//!   `deleted_at`, versions, history rows), in multi-row statements, one transaction per
//!   batch, and checks the counts afterwards. If anything fails, the tables it created are
//!   dropped again.
//! * [`copy`] does both at once, from one database to another, batch by batch.
//! * [`native_dump`] / [`native_restore`] use the backend's own tools (`pg_dump`,
//!   `mariadb-dump`, SQLite's `VACUUM INTO`).
//!
//! Every value keeps its exact value across backends: integers and floats, decimals (as
//! decimal text), bytes, timestamps (microseconds, UTC, years 1000 to 9999), JSON, booleans.
//! Index and unique hints of typed entities are not part of `_meta` and are not recreated;
//! run the typed save (or the migrator) against the restored tables to add them.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
//! use dal::prelude::*;
//! let dir = std::env::temp_dir().join(format!("dal-doc-backup-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let source = Database::from_url("sqlite::memory:")?;
//! let mut conn = source.async_connection().await?;
//! let saved = conn.save_entity("doc_notes", json!({"text": "hello", "price": "19.99"})).await?;
//! let id = saved["id"].as_str().unwrap().to_owned();
//! conn.save_entity("doc_notes", json!({"id": id, "text": "hello again"})).await?;
//!
//! let manifest = dal::backup::export(&source, &dir).await?;
//! assert_eq!(manifest.entities[0].history.count, 2);
//!
//! let target = Database::from_url(&format!("sqlite://{}", dir.join("restored.db").display()))?;
//! dal::backup::import(&target, &dir).await?;
//! let mut t = target.async_connection().await?;
//! assert_eq!(t.get_entity("doc_notes", &id).await?.unwrap()["text"], json!("hello again"));
//! assert_eq!(t.get_entity_history("doc_notes", &id).await?.len(), 2);
//! # drop(t); target.close(std::time::Duration::from_secs(1)).await?;
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};

use crate::connection::Connection;
use crate::database::Database;
use crate::entity::{part_columns, Layout, PageKey, Part};
use crate::error::{Error, Result};

mod native;

pub use native::{native_dump, native_restore};

/// The version of the directory layout [`export`] writes and [`import`] reads.
pub const FORMAT_VERSION: u32 = 1;

/// The name of the manifest in a backup directory.
pub const MANIFEST_FILE: &str = "manifest.json";

const DEFAULT_BATCH: usize = 1000;

type ProgressFn = dyn Fn(&Progress) + Send + Sync;

/// Options of [`export_with`], [`import_with`] and [`copy_with`]: which entities, how many
/// rows per batch, and a progress callback.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// let rows = Arc::new(AtomicU64::new(0));
/// let seen = rows.clone();
/// let opts = dal::backup::BackupOptions::new()
///     .entities(["users", "orders"])
///     .batch_size(500)
///     .on_progress(move |p| {
///         if p.phase == "rows" {
///             seen.store(p.done, Ordering::Relaxed);
///         }
///     });
/// assert_eq!(opts.get_batch_size(), 500);
/// ```
#[derive(Clone)]
pub struct BackupOptions {
    entities: Option<Vec<String>>,
    batch_size: usize,
    on_progress: Option<Arc<ProgressFn>>,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            entities: None,
            batch_size: DEFAULT_BATCH,
            on_progress: None,
        }
    }
}

impl fmt::Debug for BackupOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupOptions")
            .field("entities", &self.entities)
            .field("batch_size", &self.batch_size)
            .field(
                "on_progress",
                &self.on_progress.as_ref().map(|_| "Fn(&Progress)"),
            )
            .finish()
    }
}

impl BackupOptions {
    /// Every entity, 1 000 rows per batch, no progress callback.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only these entities (default: every entity; see [`entities`]). A name that is not an
    /// entity of the source is an error.
    pub fn entities<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entities = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Rows per page read and per batch written (one transaction each); default 1 000, at
    /// least 1. Memory grows with it.
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// Called after each batch (and at each phase's start and end) with what is done.
    pub fn on_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.on_progress = Some(Arc::new(f));
        self
    }

    /// The rows per batch.
    pub fn get_batch_size(&self) -> usize {
        self.batch_size
    }

    fn report(&self, entity: &str, phase: &'static str, done: u64, total: Option<u64>) {
        if let Some(f) = &self.on_progress {
            f(&Progress {
                entity: entity.to_owned(),
                phase,
                done,
                total,
            });
        }
    }
}

/// Where an export, import or copy is: the entity, the phase (`"checksum"`, `"meta"`,
/// `"rows"`, `"history"`, `"verify"`), and rows (for `"checksum"`: files) done out of
/// `total` when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// The entity being worked on.
    pub entity: String,
    /// `"checksum"`, `"meta"`, `"rows"`, `"history"` or `"verify"`.
    pub phase: &'static str,
    /// Rows (or files) done in this phase.
    pub done: u64,
    /// Rows (or files) the phase has in all, when known.
    pub total: Option<u64>,
}

/// The description of a backup directory (`manifest.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// The dal version that wrote it.
    pub dal_version: String,
    /// The source's backend (`"postgres"`, `"mysql"`, `"sqlite"`).
    pub backend: String,
    /// When the export began.
    pub created_at: DateTime<Utc>,
    /// Every exported entity.
    pub entities: Vec<EntityManifest>,
}

/// One entity of a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityManifest {
    /// The entity's name.
    pub name: String,
    /// Field → recorded type (`"int"`, `"decimal"`, …, or a custom value type's name).
    pub fields: BTreeMap<String, String>,
    /// The current rows, soft-deleted ones included.
    pub rows: FileManifest,
    /// Every history row.
    pub history: FileManifest,
    /// The `_meta` rows.
    pub meta: FileManifest,
}

/// One file of a backup: its name in the directory, its line count, size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileManifest {
    /// File name, relative to the backup directory.
    pub file: String,
    /// Lines (rows) in it.
    pub count: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
}

/// What [`copy`] moved: per entity, the rows, history rows and `_meta` rows (the same in
/// source and target once it returns).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CopyReport {
    /// Every copied entity, in name order.
    pub entities: Vec<EntityCounts>,
    /// Wall time of the copy, in seconds.
    pub seconds: f64,
}

/// The counts of one entity's tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntityCounts {
    /// The entity's name.
    pub name: String,
    /// Current rows (soft-deleted ones included).
    pub rows: u64,
    /// History rows.
    pub history: u64,
    /// `_meta` rows (fields).
    pub meta: u64,
}

/// Every entity in the database: each table that has an `_meta` and an `_history` sibling,
/// in name order.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
/// use dal::prelude::*;
/// let db = Database::from_url("sqlite::memory:")?;
/// db.async_connection().await?.save_entity("doc_cats", json!({"name": "Tom"})).await?;
/// assert_eq!(dal::backup::entities(&db).await?, vec!["doc_cats".to_owned()]);
/// # Ok(()) }
/// ```
pub async fn entities(db: &Database) -> Result<Vec<String>> {
    db.async_connection().await?.entity_names().await
}

/// [`export_with`] with default options: every entity.
pub async fn export(db: &Database, dir: impl AsRef<Path>) -> Result<Manifest> {
    export_with(db, dir, &BackupOptions::default()).await
}

/// [`import_with`] with default options: every entity of the backup.
pub async fn import(db: &Database, dir: impl AsRef<Path>) -> Result<Manifest> {
    import_with(db, dir, &BackupOptions::default()).await
}

/// [`copy_with`] with default options: every entity.
pub async fn copy(from: &Database, to: &Database) -> Result<CopyReport> {
    copy_with(from, to, &BackupOptions::default()).await
}

/// Writes the entities of `db` into `dir` (created if needed; it must not hold a
/// `manifest.json` already): per entity `<name>.rows.jsonl`, `<name>.history.jsonl`,
/// `<name>.meta.jsonl`, then `manifest.json`. See the [module docs](self).
pub async fn export_with(
    db: &Database,
    dir: impl AsRef<Path>,
    opts: &BackupOptions,
) -> Result<Manifest> {
    let dir = dir.as_ref();
    let manifest_path = dir.join(MANIFEST_FILE);
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| io_error("create", dir, &e))?;
    if tokio::fs::try_exists(&manifest_path)
        .await
        .map_err(|e| io_error("read", &manifest_path, &e))?
    {
        return Err(Error::Backup(format!(
            "{} already holds a backup ({MANIFEST_FILE}); export into an empty directory",
            dir.display()
        )));
    }
    let created_at = Utc::now();
    let mut conn = db.async_connection().await?;
    begin_snapshot(&mut conn).await?;
    let result = export_entities(&mut conn, dir, opts).await;
    // Read only: ending the snapshot either way changes nothing.
    let _ = conn.rollback_transaction().await;
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        dal_version: env!("CARGO_PKG_VERSION").to_owned(),
        backend: db.backend().as_str().to_owned(),
        created_at,
        entities: result?,
    };
    let text = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::Internal(format!("manifest: {e}")))?;
    // Written last, through a rename: a directory with a manifest is a complete backup.
    let partial = dir.join(format!("{MANIFEST_FILE}.partial"));
    tokio::fs::write(&partial, text)
        .await
        .map_err(|e| io_error("write", &partial, &e))?;
    tokio::fs::rename(&partial, &manifest_path)
        .await
        .map_err(|e| io_error("write", &manifest_path, &e))?;
    Ok(manifest)
}

async fn export_entities(
    conn: &mut Connection,
    dir: &Path,
    opts: &BackupOptions,
) -> Result<Vec<EntityManifest>> {
    let mut out = Vec::new();
    for name in selected(conn, opts).await? {
        let fields = conn.entity_layout(&name).await?;
        let meta = {
            let mut w = JsonlWriter::create(dir, format!("{name}.meta.jsonl")).await?;
            for (field, ty) in &fields {
                let mut m = Map::new();
                m.insert("name".into(), Json::from(field.as_str()));
                m.insert("type".into(), Json::from(ty.as_str()));
                w.write(&m).await?;
            }
            opts.report(&name, "meta", w.count, Some(w.count));
            w.finish().await?
        };
        let rows = export_part(conn, dir, &name, &fields, Part::Rows, opts).await?;
        let history = export_part(conn, dir, &name, &fields, Part::History, opts).await?;
        out.push(EntityManifest {
            name,
            fields,
            rows,
            history,
            meta,
        });
    }
    Ok(out)
}

async fn export_part(
    conn: &mut Connection,
    dir: &Path,
    name: &str,
    fields: &Layout,
    part: Part,
    opts: &BackupOptions,
) -> Result<FileManifest> {
    let (suffix, phase) = part_names(part);
    let total = conn.count_table(name, suffix.0).await?;
    let cols = part_columns(fields, part);
    let mut w = JsonlWriter::create(dir, format!("{name}.{}.jsonl", suffix.1)).await?;
    opts.report(name, phase, 0, Some(total));
    let mut after: Option<PageKey> = None;
    loop {
        let page = conn
            .read_page(name, &cols, part, after.as_ref(), opts.batch_size)
            .await?;
        for row in &page {
            w.write(row).await?;
        }
        opts.report(name, phase, w.count, Some(total));
        match page.last() {
            Some(last) if page.len() == opts.batch_size => after = Some(page_key(last)?),
            _ => break,
        }
    }
    w.finish().await
}

/// Restores the backup in `dir` into `db`, which must not hold any of its entities yet. See
/// the [module docs](self).
pub async fn import_with(
    db: &Database,
    dir: impl AsRef<Path>,
    opts: &BackupOptions,
) -> Result<Manifest> {
    let dir = dir.as_ref();
    let manifest = read_manifest(dir).await?;
    let wanted: Vec<&EntityManifest> = match &opts.entities {
        None => manifest.entities.iter().collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                manifest
                    .entities
                    .iter()
                    .find(|e| &e.name == n)
                    .ok_or_else(|| {
                        Error::Backup(format!(
                            "the backup in {} has no entity {n:?}",
                            dir.display()
                        ))
                    })
            })
            .collect::<Result<_>>()?,
    };
    // Every file checked before anything is written.
    for e in &wanted {
        crate::entity::validate_name(&e.name)?;
        let files = [&e.meta, &e.rows, &e.history];
        for (i, f) in files.iter().enumerate() {
            verify_file(dir, f).await?;
            opts.report(
                &e.name,
                "checksum",
                (i + 1) as u64,
                Some(files.len() as u64),
            );
        }
        let meta = read_meta(dir, &e.meta).await?;
        if meta != e.fields {
            return Err(Error::Backup(format!(
                "{}: its fields differ from the manifest's",
                e.meta.file
            )));
        }
    }
    let mut conn = db.async_connection().await?;
    refuse_existing(&mut conn, wanted.iter().map(|e| e.name.as_str())).await?;
    let mut created = Vec::new();
    let result = async {
        for e in &wanted {
            created.push(e.name.clone());
            conn.create_entity_like(&e.name, &e.fields).await?;
            opts.report(&e.name, "meta", e.meta.count, Some(e.meta.count));
            import_part(&mut conn, dir, e, Part::Rows, opts).await?;
            import_part(&mut conn, dir, e, Part::History, opts).await?;
            verify_counts(
                &mut conn,
                &e.name,
                (e.rows.count, e.history.count, e.meta.count),
                opts,
            )
            .await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        undo_created(&mut conn, &created).await;
        return Err(e);
    }
    Ok(manifest)
}

async fn import_part(
    conn: &mut Connection,
    dir: &Path,
    e: &EntityManifest,
    part: Part,
    opts: &BackupOptions,
) -> Result<()> {
    let (_, phase) = part_names(part);
    let file = match part {
        Part::Rows => &e.rows,
        Part::History => &e.history,
    };
    let cols = part_columns(&e.fields, part);
    let path = dir.join(&file.file);
    let f = tokio::fs::File::open(&path)
        .await
        .map_err(|err| io_error("open", &path, &err))?;
    let mut lines = BufReader::with_capacity(1 << 16, f).lines();
    let mut hasher = Sha256::new();
    let mut batch: Vec<Map<String, Json>> = Vec::with_capacity(opts.batch_size);
    let mut done = 0u64;
    let mut line_no = 0u64;
    opts.report(&e.name, phase, 0, Some(file.count));
    loop {
        let line = lines
            .next_line()
            .await
            .map_err(|err| io_error("read", &path, &err))?;
        if let Some(line) = &line {
            line_no += 1;
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
            let row: Map<String, Json> = serde_json::from_str(line).map_err(|err| {
                Error::Backup(format!("{}:{line_no}: not a JSON object: {err}", file.file))
            })?;
            batch.push(row);
        }
        if !batch.is_empty() && (batch.len() >= opts.batch_size || line.is_none()) {
            insert_batch(conn, &e.name, &cols, part, &batch).await?;
            done += batch.len() as u64;
            batch.clear();
            opts.report(&e.name, phase, done, Some(file.count));
        }
        if line.is_none() {
            break;
        }
    }
    // The file was checked before the import began; it must not have changed since.
    if hex(&hasher.finalize()) != file.sha256 || done != file.count {
        return Err(Error::Backup(format!(
            "{}: the file changed while it was being imported",
            file.file
        )));
    }
    Ok(())
}

/// One batch in its own transaction.
async fn insert_batch(
    conn: &mut Connection,
    entity: &str,
    cols: &[(String, crate::entity::FieldType)],
    part: Part,
    rows: &[Map<String, Json>],
) -> Result<()> {
    conn.begin_transaction().await?;
    match conn.insert_page(entity, cols, part, rows).await {
        Ok(_) => conn.commit_transaction().await,
        Err(e) => {
            let _ = conn.rollback_transaction().await;
            Err(e)
        }
    }
}

/// Copies the entities of `from` into `to`, which must not hold any of them yet: tables
/// created through the schema code, rows and history inserted batch by batch (one
/// transaction each) as they were read from one snapshot of `from`, counts checked at the
/// end. If anything fails, the tables created in `to` are dropped again.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
/// use dal::prelude::*;
/// let from = Database::from_url("sqlite::memory:")?;
/// # let path = std::env::temp_dir().join(format!("dal-doc-copy-{}.db", std::process::id()));
/// # let _ = std::fs::remove_file(&path);
/// let to = Database::from_url(&format!("sqlite://{}", path.display()))?;
/// from.async_connection().await?.save_entity("doc_items", json!({"n": 1})).await?;
/// let report = dal::backup::copy(&from, &to).await?;
/// assert_eq!(report.entities[0].rows, 1);
/// assert_eq!(to.async_connection().await?.count_entities("doc_items").await?, 1);
/// # to.close(std::time::Duration::from_secs(1)).await?; let _ = std::fs::remove_file(&path);
/// # Ok(()) }
/// ```
pub async fn copy_with(from: &Database, to: &Database, opts: &BackupOptions) -> Result<CopyReport> {
    let started = Instant::now();
    let mut src = from.async_connection().await?;
    let mut dst = to.async_connection().await?;
    begin_snapshot(&mut src).await?;
    let result = async {
        let names = selected(&mut src, opts).await?;
        refuse_existing(&mut dst, names.iter().map(String::as_str)).await?;
        let mut counts = Vec::new();
        let mut created = Vec::new();
        let copied = async {
            for name in &names {
                let fields = src.entity_layout(name).await?;
                created.push(name.clone());
                dst.create_entity_like(name, &fields).await?;
                let meta = fields.len() as u64;
                opts.report(name, "meta", meta, Some(meta));
                let rows = copy_part(&mut src, &mut dst, name, &fields, Part::Rows, opts).await?;
                let history =
                    copy_part(&mut src, &mut dst, name, &fields, Part::History, opts).await?;
                verify_counts(&mut dst, name, (rows, history, meta), opts).await?;
                counts.push(EntityCounts {
                    name: name.clone(),
                    rows,
                    history,
                    meta,
                });
            }
            Ok(())
        }
        .await;
        if let Err(e) = copied {
            undo_created(&mut dst, &created).await;
            return Err(e);
        }
        Ok(counts)
    }
    .await;
    let _ = src.rollback_transaction().await;
    Ok(CopyReport {
        entities: result?,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn copy_part(
    src: &mut Connection,
    dst: &mut Connection,
    name: &str,
    fields: &Layout,
    part: Part,
    opts: &BackupOptions,
) -> Result<u64> {
    let (suffix, phase) = part_names(part);
    let total = src.count_table(name, suffix.0).await?;
    let cols = part_columns(fields, part);
    let mut done = 0u64;
    opts.report(name, phase, 0, Some(total));
    let mut page = src
        .read_page(name, &cols, part, None, opts.batch_size)
        .await?;
    // Each page is written while the next one is read (two connections, two servers).
    while !page.is_empty() {
        let after = match page.last() {
            Some(last) if page.len() == opts.batch_size => Some(page_key(last)?),
            _ => None,
        };
        let read_next = async {
            match &after {
                Some(key) => {
                    src.read_page(name, &cols, part, Some(key), opts.batch_size)
                        .await
                }
                None => Ok(Vec::new()),
            }
        };
        let (written, next) = tokio::join!(insert_batch(dst, name, &cols, part, &page), read_next);
        written?;
        done += page.len() as u64;
        opts.report(name, phase, done, Some(total));
        page = next?;
    }
    Ok(done)
}

/// The entities to work on: the selected ones (each must exist), else all.
async fn selected(conn: &mut Connection, opts: &BackupOptions) -> Result<Vec<String>> {
    let all = conn.entity_names().await?;
    match &opts.entities {
        None => Ok(all),
        Some(names) => {
            for n in names {
                if !all.contains(n) {
                    return Err(Error::Backup(format!(
                        "no entity {n:?} in the source database (entities: {})",
                        all.join(", ")
                    )));
                }
            }
            Ok(names.clone())
        }
    }
}

/// Refuses a target that holds any table of these entities; nothing is written.
async fn refuse_existing<'a>(
    conn: &mut Connection,
    names: impl Iterator<Item = &'a str>,
) -> Result<()> {
    for name in names {
        if conn.entity_tables_exist(name).await? {
            return Err(Error::Backup(format!(
                "entity {name:?} already exists in the target database; restore only into a database without it (nothing was written)"
            )));
        }
    }
    Ok(())
}

/// After a failure: drops the tables this operation created (best effort; each was absent
/// before).
async fn undo_created(conn: &mut Connection, created: &[String]) {
    if conn.in_transaction() {
        let _ = conn.rollback_transaction().await;
    }
    for name in created {
        if let Err(e) = conn.drop_entity_tables(name).await {
            tracing::warn!(target: "dal::backup", entity = %name, error = %e, "could not drop the tables of a failed restore");
        }
    }
}

async fn verify_counts(
    conn: &mut Connection,
    name: &str,
    (rows, history, meta): (u64, u64, u64),
    opts: &BackupOptions,
) -> Result<()> {
    let found = (
        conn.count_table(name, "").await?,
        conn.count_table(name, "_history").await?,
        conn.count_table(name, "_meta").await?,
    );
    if found != (rows, history, meta) {
        return Err(Error::Backup(format!(
            "entity {name:?}: after the restore the target holds {} rows, {} history rows and {} fields; expected {rows}, {history} and {meta}",
            found.0, found.1, found.2
        )));
    }
    opts.report(name, "verify", rows + history, Some(rows + history));
    Ok(())
}

/// Begins a transaction that reads one snapshot of the database.
async fn begin_snapshot(conn: &mut Connection) -> Result<()> {
    let isolation = conn.dialect().snapshot_isolation();
    if let Some((sql, true)) = isolation {
        conn.execute(sql, ()).await?;
    }
    conn.begin_transaction().await?;
    if let Some((sql, false)) = isolation {
        if let Err(e) = conn.execute(sql, ()).await {
            let _ = conn.rollback_transaction().await;
            return Err(e);
        }
    }
    Ok(())
}

/// (table suffix, file part), progress phase.
fn part_names(part: Part) -> ((&'static str, &'static str), &'static str) {
    match part {
        Part::Rows => (("", "rows"), "rows"),
        Part::History => (("_history", "history"), "history"),
    }
}

fn page_key(row: &Map<String, Json>) -> Result<PageKey> {
    let id = row.get("id").and_then(Json::as_str);
    let version = row.get("version").and_then(Json::as_i64).unwrap_or(0);
    match id {
        Some(id) => Ok((id.to_owned(), version)),
        None => Err(Error::Internal("a row without id".into())),
    }
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> Error {
    Error::Backup(format!("cannot {what} {}: {e}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST_FILE);
    let text = tokio::fs::read(&path)
        .await
        .map_err(|e| io_error("read", &path, &e))?;
    let m: Manifest = serde_json::from_slice(&text).map_err(|e| {
        Error::Backup(format!(
            "{} is not a dal backup manifest: {e}",
            path.display()
        ))
    })?;
    if m.format_version > FORMAT_VERSION {
        return Err(Error::Backup(format!(
            "{} has format version {}; this dal reads up to {FORMAT_VERSION}",
            path.display(),
            m.format_version
        )));
    }
    Ok(m)
}

/// Checks a file's size and SHA-256 against the manifest, reading it in chunks.
async fn verify_file(dir: &Path, f: &FileManifest) -> Result<()> {
    if f.file.contains(['/', '\\']) || f.file.starts_with('.') {
        return Err(Error::Backup(format!(
            "the manifest names a file outside the backup directory: {:?}",
            f.file
        )));
    }
    let path = dir.join(&f.file);
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| io_error("open", &path, &e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| io_error("read", &path, &e))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        hasher.update(&buf[..n]);
    }
    let sum = hex(&hasher.finalize());
    if sum != f.sha256 || bytes != f.bytes {
        return Err(Error::Backup(format!(
            "{}: checksum mismatch (manifest: sha256 {}, {} bytes; file: sha256 {sum}, {bytes} bytes): the file was altered or truncated; nothing was written",
            f.file, f.sha256, f.bytes
        )));
    }
    Ok(())
}

async fn read_meta(dir: &Path, f: &FileManifest) -> Result<BTreeMap<String, String>> {
    let path = dir.join(&f.file);
    let text = tokio::fs::read_to_string(&path)
        .await
        .map_err(|e| io_error("read", &path, &e))?;
    text.lines()
        .map(|line| {
            let m: Map<String, Json> = serde_json::from_str(line)
                .map_err(|e| Error::Backup(format!("{}: {e}", f.file)))?;
            match (m.get("name"), m.get("type")) {
                (Some(Json::String(n)), Some(Json::String(t))) => Ok((n.clone(), t.clone())),
                _ => Err(Error::Backup(format!(
                    "{}: a line lacks name or type",
                    f.file
                ))),
            }
        })
        .collect()
}

/// A JSON Lines file being written: buffered, hashed as it goes.
struct JsonlWriter {
    out: BufWriter<tokio::fs::File>,
    path: PathBuf,
    file: String,
    hasher: Sha256,
    bytes: u64,
    count: u64,
    line: Vec<u8>,
}

impl JsonlWriter {
    async fn create(dir: &Path, file: String) -> Result<Self> {
        let path = dir.join(&file);
        let f = tokio::fs::File::create(&path)
            .await
            .map_err(|e| io_error("create", &path, &e))?;
        Ok(JsonlWriter {
            out: BufWriter::with_capacity(1 << 16, f),
            path,
            file,
            hasher: Sha256::new(),
            bytes: 0,
            count: 0,
            line: Vec::with_capacity(1024),
        })
    }

    async fn write(&mut self, row: &Map<String, Json>) -> Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, row)
            .map_err(|e| Error::Internal(format!("encoding a row: {e}")))?;
        self.line.push(b'\n');
        self.hasher.update(&self.line);
        self.bytes += self.line.len() as u64;
        self.count += 1;
        self.out
            .write_all(&self.line)
            .await
            .map_err(|e| io_error("write", &self.path, &e))
    }

    async fn finish(mut self) -> Result<FileManifest> {
        self.out
            .flush()
            .await
            .map_err(|e| io_error("write", &self.path, &e))?;
        self.out
            .get_mut()
            .sync_all()
            .await
            .map_err(|e| io_error("write", &self.path, &e))?;
        Ok(FileManifest {
            file: self.file,
            count: self.count,
            bytes: self.bytes,
            sha256: hex(&self.hasher.finalize()),
        })
    }
}
