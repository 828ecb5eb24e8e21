//! What a command prints on success: one JSON document with `--json`, text otherwise.

use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;

/// A command's result, printed once on stdout when the command succeeded.
pub struct Report {
    /// The JSON document, fields in their declared order.
    json: Option<String>,
    human: String,
}

impl Report {
    /// `value` as JSON with `--json`, else the text that `human` writes.
    pub fn new<T: Serialize>(
        json: bool,
        value: &T,
        human: impl FnOnce(&mut Text),
    ) -> anyhow::Result<Self> {
        if json {
            Ok(Report {
                json: Some(serde_json::to_string_pretty(value)?),
                human: String::new(),
            })
        } else {
            let mut text = Text(String::new());
            human(&mut text);
            Ok(Report {
                json: None,
                human: text.0,
            })
        }
    }

    /// Writes the report to stdout.
    pub fn print(&self) -> io::Result<()> {
        let mut out = io::stdout().lock();
        match &self.json {
            Some(doc) => writeln!(out, "{doc}")?,
            None => out.write_all(self.human.as_bytes())?,
        }
        out.flush()
    }
}

/// Human output being written, line by line.
pub struct Text(String);

impl Text {
    /// One line.
    pub fn line(&mut self, s: impl AsRef<str>) {
        self.0.push_str(s.as_ref());
        self.0.push('\n');
    }

    /// Text that ends its own lines.
    pub fn text(&mut self, s: &str) {
        self.0.push_str(s);
        if !s.is_empty() && !s.ends_with('\n') {
            self.0.push('\n');
        }
    }

    /// `label: value`, labels aligned.
    pub fn field(&mut self, label: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "{:<12} {value}", format!("{label}:"));
    }
}
