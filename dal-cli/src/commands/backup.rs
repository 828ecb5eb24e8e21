//! `dal backup DIR`, `dal restore DIR`, `dal copy --from URL --to URL`.

use std::sync::Arc;

use crate::shim::backup::{BackupOptions, Progress};
use anyhow::Context;
use dal::Database;
use serde::Serialize;

use super::{close, describe, open};
use crate::cli::{BackupArgs, CopyArgs, EntityList, RestoreArgs};
use crate::output::Report;
use crate::progress::Bars;

/// Options with the entity list and progress bars on stderr (when it is a terminal).
fn options(entities: &EntityList, bars: &Arc<Bars>) -> BackupOptions {
    let mut opts = BackupOptions::new();
    if !entities.entities.is_empty() {
        opts = opts.entities(entities.entities.iter().cloned());
    }
    let bars = Arc::clone(bars);
    opts.on_progress(move |p: &Progress| {
        bars.update(&p.entity, &p.phase.to_string(), p.done, p.total)
    })
}

pub async fn backup(db: &Database, args: BackupArgs, json: bool) -> anyhow::Result<Report> {
    let bars = Arc::new(Bars::new(json));
    let manifest = crate::shim::backup::export_with(db, &args.dir, options(&args.entities, &bars))
        .await
        .with_context(|| format!("cannot back up {} to {}", describe(db), args.dir.display()))?;
    bars.finish();
    let native = match &args.native {
        Some(file) => Some(
            crate::shim::backup::native_dump(db, file)
                .await
                .with_context(|| format!("cannot write a native dump to {}", file.display()))?,
        ),
        None => None,
    };

    #[derive(Serialize)]
    struct Out<'a, M, N> {
        dir: String,
        manifest: &'a M,
        native: Option<N>,
    }
    let out = Out {
        dir: args.dir.display().to_string(),
        manifest: &manifest,
        native: native.as_ref().map(|_| {
            args.native
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_default()
        }),
    };
    Report::new(json, &out, |t| {
        t.line(format!("backed up {} to {}", describe(db), out.dir));
        t.line(manifest.to_string());
        if let Some(file) = &out.native {
            t.line(format!("native dump: {file}"));
        }
    })
}

pub async fn restore(db: &Database, args: RestoreArgs, json: bool) -> anyhow::Result<Report> {
    let bars = Arc::new(Bars::new(json));
    let manifest = crate::shim::backup::import_with(db, &args.dir, options(&args.entities, &bars))
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
        t.line(manifest.to_string());
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
    let result = crate::shim::backup::copy_with(&from, &to, opts).await;
    bars.finish();
    close(&from).await;
    close(&to).await;
    let report =
        result.with_context(|| format!("cannot copy {} to {}", describe(&from), describe(&to)))?;
    Report::new(json, &report, |t| {
        t.line(format!("copied {} to {}", describe(&from), describe(&to)));
        t.line(report.to_string());
    })
}
