//! `dal`: the command-line tool of the dal library.
//!
//! ```text
//! dal status                                   # backend, server, pool, entities, migrations
//! dal migrate plan  --schema schema.json       # the SQL that would run (dry run)
//! dal migrate apply --schema schema.json       # run it
//! dal backup ./backup                          # every entity as JSON Lines + manifest
//! dal restore ./backup --url sqlite://new.db   # into an empty database
//! dal copy --from sqlite://app.db --to postgres://u@host/app
//! dal rollback --entity users --to 2026-11-01T00:00:00Z
//! ```
//!
//! The database comes from `--url` or `DATABASE_URL`. `--json` prints one JSON document on
//! stdout instead of the human output. Exit codes: 0 success, 1 any failure (with
//! `error: <message>` on stderr), 2 a usage error.

mod cli;
mod commands;
mod output;
mod progress;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::Cli;

fn main() -> ExitCode {
    // Usage errors (and --help, --version) end here, with clap's exit code 2 (0 for help).
    let cli = Cli::parse();
    if matches!(cli.command, cli::Command::Copy(_)) && cli.url.is_some() {
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "copy takes --from URL and --to URL, not --url",
            )
            .exit();
    }
    // A panic is a bug, but still a failure like any other: one `error:` line, exit code 1.
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("panic");
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let _ = writeln!(
            std::io::stderr(),
            "error: internal error (a bug){at}: {what}"
        );
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(commands::run(cli))
    }));
    let Ok(result) = outcome else {
        // The hook has said what happened.
        return ExitCode::FAILURE;
    };
    match result {
        Ok(report) => match report.print() {
            Ok(()) => ExitCode::SUCCESS,
            // A closed pipe (`dal status | head -1`) is not a failure of the command.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => fail(&anyhow::anyhow!("cannot write the output: {e}")),
        },
        Err(e) => fail(&e),
    }
}

/// `error: <message>` (with its causes) on stderr, exit code 1.
fn fail(e: &anyhow::Error) -> ExitCode {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {}", message(e));
    ExitCode::FAILURE
}

/// The error and its causes, `: `-separated; a cause whose text the message already holds
/// (dal's errors show their source) is not repeated.
fn message(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg
}
