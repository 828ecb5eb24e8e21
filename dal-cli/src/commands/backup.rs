//! `dal backup DIR`, `dal restore DIR`, `dal copy --from URL --to URL`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use dal::backup::{BackupOptions, Manifest, Progress};
use dal::Database;
use serde::Serialize;

use super::{close, describe, open};
use crate::cli::{BackupArgs, CopyArgs, EntityList, RestoreArgs};
use crate::output::{Report, Text};
use crate::progress::Bars;

/// Options with the entity list and progress bars on stderr (when it is a terminal).
fn options(entities: &EntityList, bars: &Arc<Bars>) -> BackupOptions {
    let mut opts = BackupOptions::new();
    if !entities.entities.is_empty() {
        opts = opts.entities(entities.entities.iter().cloned());
    }
    let bars = Arc::clone(bars);
    opts.on_progress(move |p: &Progress| bars.update(&p.entity, p.phase, p.done, p.total))
}

#[derive(Serialize)]
struct BackupOut<'a> {
    dir: PathBuf,
    manifest: &'a Manifest,
    /// The native dump's file, with `--native`.
    native: Option<PathBuf>,
}

pub async fn backup(db: &Database, args: BackupArgs, json: bool) -> anyhow::Result<Report> {
    let bars = Arc::new(Bars::new(json));
    let manifest = dal::backup::export_with(db, &args.dir, &options(&args.entities, &bars))
        .await
        .with_context(|| format!("cannot back up {} to {}", describe(db), args.dir.display()))?;
    bars.finish();
    let native = match &args.native {
        Some(file) => Some(
            dal::backup::native_dump(db, file)
                .await
                .with_context(|| format!("cannot write a native dump to {}", file.display()))?,
        ),
        None => None,
    };
    let out = BackupOut {
        dir: args.dir,
        manifest: &manifest,
        native,
    };
    Report::new(json, &out, |t| {
        t.line(format!(
            "backed up {} to {}",
            describe(db),
            out.dir.display()
        ));
        write_manifest(t, &manifest);
        if let Some(file) = &out.native {
            t.line(format!("native dump: {}", file.display()));
        }
    })
}

pub async fn restore(db: &Database, args: RestoreArgs, json: bool) -> anyhow::Result<Report> {
    let bars = Arc::new(Bars::new(json));
    let manifest = dal::backup::import_with(db, &args.dir, &options(&args.entities, &bars))
        .await
        .with_context(|| {
            format!(
                "cannot restore {} into {}",
                args.dir.display(),
                describe(db)
            )
        })?;
    bars.finish();
    Report::new(json, &manifest, |t| {
        t.line(format!(
            "restored {} into {}",
            args.dir.display(),
            describe(db)
        ));
        write_manifest(t, &manifest);
    })
}

pub async fn copy(args: CopyArgs, json: bool) -> anyhow::Result<Report> {
    let from = open(Some(&args.from), "--from")?;
    let to = open(Some(&args.to), "--to")?;
    let bars = Arc::new(Bars::new(json));
    let mut opts = options(&args.entities, &bars);
    if let Some(n) = args.batch_size {
        opts = opts.batch_size(n as usize);
    }
    let result = dal::backup::copy_with(&from, &to, &opts).await;
    bars.finish();
    close(&from).await;
    close(&to).await;
    let report =
        result.with_context(|| format!("cannot copy {} to {}", describe(&from), describe(&to)))?;
    Report::new(json, &report, |t| {
        t.line(format!(
            "copied {} to {} in {:.1} s",
            describe(&from),
            describe(&to),
            report.seconds
        ));
        let width = name_width(report.entities.iter().map(|e| e.name.as_str()));
        for e in &report.entities {
            t.line(format!(
                "  {:<width$}  {} rows, {} history rows, {} fields",
                e.name, e.rows, e.history, e.meta
            ));
        }
    })
}

/// One line per entity: rows, history rows, fields.
fn write_manifest(t: &mut Text, manifest: &Manifest) {
    let width = name_width(manifest.entities.iter().map(|e| e.name.as_str()));
    for e in &manifest.entities {
        t.line(format!(
            "  {:<width$}  {} rows, {} history rows, {} fields",
            e.name, e.rows.count, e.history.count, e.meta.count
        ));
    }
    if manifest.entities.is_empty() {
        t.line("  (no entities)");
    }
}

fn name_width<'a>(names: impl Iterator<Item = &'a str>) -> usize {
    names.map(str::len).max().unwrap_or(0)
}
