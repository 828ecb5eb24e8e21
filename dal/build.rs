//! Records the version of sqlx, the driver dal is built with, for
//! `VersionDetails::driver_version`: read from the `Cargo.lock` that resolved this build (the
//! workspace's of dal itself, else the one above the target directory, which is the
//! depending project's), or the version requirement dal declares when no lock file is found.

use std::path::{Path, PathBuf};

/// The requirement in the workspace `Cargo.toml`, used when no lock file names sqlx.
const FALLBACK: &str = "0.9";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let mut starts: Vec<PathBuf> = Vec::new();
    for var in ["CARGO_MANIFEST_DIR", "OUT_DIR"] {
        if let Some(dir) = std::env::var_os(var) {
            starts.push(PathBuf::from(dir));
        }
    }
    let found = starts.iter().find_map(|start| {
        start.ancestors().find_map(|dir| {
            let lock = dir.join("Cargo.lock");
            sqlx_version(&lock).map(|v| (lock, v))
        })
    });
    let version = match found {
        Some((lock, v)) => {
            println!("cargo:rerun-if-changed={}", lock.display());
            v
        }
        None => FALLBACK.to_owned(),
    };
    println!("cargo:rustc-env=DAL_SQLX_VERSION={version}");
}

/// The version of the `sqlx` package in a lock file (the one matching [`FALLBACK`] if several).
fn sqlx_version(lock: &Path) -> Option<String> {
    let text = std::fs::read_to_string(lock).ok()?;
    let mut versions = Vec::new();
    let mut in_sqlx = false;
    for line in text.lines() {
        let line = line.trim();
        if line == "[[package]]" {
            in_sqlx = false;
        } else if line == "name = \"sqlx\"" {
            in_sqlx = true;
        } else if in_sqlx {
            if let Some(v) = line.strip_prefix("version = \"") {
                versions.push(v.trim_end_matches('"').to_owned());
                in_sqlx = false;
            }
        }
    }
    let prefix = format!("{FALLBACK}.");
    versions
        .iter()
        .find(|v| v.starts_with(&prefix))
        .or_else(|| versions.first())
        .cloned()
}
