//! Portable SQL and its translation to the native dialect of each backend.
//!
//! # Portable syntax
//!
//! Statements are written once and translated, in a single linear pass, for PostgreSQL, MySQL
//! (MariaDB) or SQLite:
//!
//! | portable            | PostgreSQL     | MySQL           | SQLite         |
//! |---------------------|----------------|-----------------|----------------|
//! | `[name]`            | `"name"`       | `` `name` ``    | `"name"`       |
//! | `?`                 | `$1`, `$2`, …  | `?`             | `?`            |
//! | `??`                | `?`            | `?`             | `?`            |
//! | `[[`, `]]`          | `[`, `]`       | `[`, `]`        | `[`, `]`       |
//!
//! `[name]` is only a quoted identifier when `name` starts with a (Unicode) letter or `_` and
//! continues with letters, digits, `_`, `$` or spaces; anything else in brackets (`arr[1]`,
//! `ARRAY[1,2]`, `[ a]`, `[]`, `[a-b]`) is left alone byte-for-byte. What happens to the text
//! between such brackets follows the backend:
//!
//! * PostgreSQL and MySQL: `[` and `]` are ordinary characters, so the text between them is
//!   scanned like any other (`arr[?]` gets its placeholder translated, `arr['x]']` holds a
//!   string literal, and in `[x']` the `'` starts a string literal);
//! * SQLite: `[` opens a native bracket-quoted identifier that ends at the next `]`, with no
//!   escapes and no special character inside (`[x']`, `[a-b]`, `[?]` are identifiers and are
//!   copied verbatim; the `?` in `[?]` is not a placeholder). A `[` without its `]` is an
//!   error. The `[` written for a portable `[[` is such an opening bracket too: `[[x']]` becomes
//!   the identifier `[x']` (its body copied verbatim, the closing bracket written `]]` or `]`),
//!   and `[[` without a following `]` is an error.
//!
//! On PostgreSQL the `$n` written for a `?` (numbered in order, `$1` to `$n`) never merges
//! with the text around it:
//!
//! * a space is put before it when it directly follows an unquoted word (identifier or
//!   keyword) or a `$`: `a?` becomes `a $1`, since `a$1` would be one identifier, and `$?`
//!   becomes `$ $1`, since `$$1` would open a dollar quote (`1?` stays `1$1`);
//! * a space is put after it when a letter, `_` or non-ASCII character follows (`?abc` becomes
//!   `$1 abc`; PostgreSQL 15+ rejects `$1abc` as trailing junk after a parameter);
//! * a `?` directly followed by a digit (`?9`, `a = ?1`) is an error: it reads as SQLite's
//!   numbered `?NNN`, which PostgreSQL does not have, and neither `$19` nor `$1 9` would mean
//!   what was written. Write a native `$9`, or `? 9` if a placeholder followed by a number is
//!   really meant.
//!
//! Native placeholders are accepted too: `$1`, `$2`, … on PostgreSQL (the statement then expects
//! as many parameters as the highest index; mixing them with `?` is an error), `%s` on MySQL
//! (the MySQL drivers' `format` style, written as `?` and counted like it; mixing it with `?`
//! is an error; a `%s` followed by a letter, digit, `_` or `$` is not one: `%sum` is the `%`
//! operator and the column `sum`, and so is `a % s`), and `?` / `?NNN` on SQLite (SQLite's own
//! numbering: an anonymous `?` takes the highest index so far plus one, `?NNN` takes `NNN`, the
//! count is the highest index). SQLite's `:name`, `@name` and `$name` parameters are passed
//! through untouched and not counted, and so is `%s` on PostgreSQL and SQLite (there it is
//! the `%` operator and a column `s`).
//!
//! # What is never rewritten
//!
//! Nothing inside string literals, quoted identifiers, dollar-quoted strings or comments is
//! touched, following each backend's own lexical rules:
//!
//! * all backends: `'…'` with `''` as an escaped quote, `-- …` line comments (which may end at
//!   the end of the input) and `/* … */` block comments;
//! * PostgreSQL: `E'…'` (backslash escapes; the `E`/`e` must not end a longer word), `"…"`
//!   quoted identifiers (`""` escape), dollar quotes `$$…$$` / `$tag$…$tag$`, nested block
//!   comments, line comments also ending at a carriage return;
//! * MySQL: backslash escapes in `'…'` and `"…"` (`"…"` is a string literal, `ANSI_QUOTES` is
//!   not assumed), `` `…` `` quoted identifiers, `#` line comments; `--` always starts a
//!   comment, as on the other backends (MySQL itself wants a space after it: write `1 - -1`,
//!   not `1--1`); but see executable comments below;
//! * SQLite: `"…"`, `` `…` `` and `[…]` quoted identifiers (see above for `[…]`).
//!
//! MySQL executable comments are not comments: `/*! … */`, `/*!NNNNN … */` and MariaDB's
//! `/*M! … */` / `/*M!NNNNN … */` are read as SQL, as the server runs them. Their content is
//! translated like the rest of the statement (`?` counted, `[name]` translated, `??`, `[[`
//! and `]]` unescaped; literals, quoted identifiers and comments inside are still left alone) and
//! the executable comment ends at the first `*/` outside those; the opener, version number and
//! `*/` are copied as they are. A `/*!` inside an executable comment starts another one that the
//! same `*/` ends, as in MySQL. The server skips a versioned comment whose version is newer than
//! its own (and MySQL proper treats `/*M!` as a plain comment); the translator cannot know the
//! server version, so placeholders in such a comment are counted all the same: keep them out of
//! version-dependent comments. Optimizer hints `/*+ … */` are plain comments. On PostgreSQL and
//! SQLite all of these are plain comments.
//!
//! An unterminated literal, quoted identifier, block comment or executable comment is an
//! [`Error::Sql`] naming it and giving the byte offset where it starts.
//!
//! # Statement kind
//!
//! The same pass notes the keywords it meets outside literals, quoted identifiers and comments
//! (as the backend lexes them), and tells from them what the statement does: a read, a write,
//! a session change or transaction control ([`StatementKind`], on [`Translated::kind`]).
//! Connections use it to decide what may be retried, when a transaction begins or ends, and
//! when a connection is bound to its session.

pub(crate) mod cache;
pub(crate) mod commenter;
mod kind;
mod lex;

use std::fmt::{self, Write as _};

use crate::error::{Error, Result};
use kind::Classifier;
pub use kind::StatementKind;
use lex::{
    bracket_close, bracket_ident_end, executable_opener_len, is_ident_cont, is_ident_start,
    is_tag_cont, parse_digits, skip_block_comment, skip_line, skip_quoted, UNTERMINATED_BRACKET,
};

/// The database family a statement is translated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
    /// SQLite.
    Sqlite,
}

impl Backend {
    /// Every backend, in a fixed order.
    pub const ALL: [Backend; 3] = [Backend::Postgres, Backend::MySql, Backend::Sqlite];

    /// Stable lower-case name: `"postgres"`, `"mysql"` or `"sqlite"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
            Backend::Sqlite => "sqlite",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Result of a translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    /// The statement in the backend's native SQL.
    pub sql: String,
    /// How many parameters the statement expects.
    pub placeholders: usize,
    /// What the statement does (read, write, session or transaction control), told from its
    /// keywords by the same pass.
    pub kind: StatementKind,
    /// The statement's operation name: its first keyword (as the backend lexes it: comments
    /// skipped), in upper case, when that is a statement keyword (`SELECT`, `INSERT`,
    /// `UPDATE`, `DELETE`, `WITH`, `CREATE`, `BEGIN`, `SET`, `PRAGMA`, …); `None` otherwise.
    /// Tracing reports it as `db.operation.name`.
    pub operation: Option<&'static str>,
}

/// Translates portable SQL to the backend's native SQL; `placeholders` is the number of
/// parameters the statement expects and `kind` what the statement does (see
/// [`StatementKind`]). One pass over the text does all three.
///
/// ```
/// # use dal::sql::{translate, Backend, StatementKind};
/// let t = translate("SELECT [a] FROM [t] WHERE [b] = ? AND [c] = ?", Backend::Postgres)?;
/// assert_eq!(t.sql, r#"SELECT "a" FROM "t" WHERE "b" = $1 AND "c" = $2"#);
/// assert_eq!(t.placeholders, 2);
/// assert_eq!(t.kind, StatementKind::Read);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn translate(sql: &str, backend: Backend) -> Result<Translated> {
    Translator::new(sql, backend).run()
}

/// Like [`translate`], returning only the SQL.
pub fn to_native(sql: &str, backend: Backend) -> Result<String> {
    translate(sql, backend).map(|t| t.sql)
}

/// Quotes an identifier for the backend: PostgreSQL and SQLite `"a""b"` (inner `"` doubled),
/// MySQL `` `a``b` `` (inner backtick doubled).
///
/// Fails for an empty name or one containing a NUL byte.
pub fn quote_ident(name: &str, backend: Backend) -> Result<String> {
    if name.is_empty() {
        return Err(Error::sql("empty identifier", 0));
    }
    if let Some(pos) = name.bytes().position(|b| b == 0) {
        return Err(Error::sql("identifier contains a NUL byte", pos));
    }
    let quote = match backend {
        Backend::Postgres | Backend::Sqlite => '"',
        Backend::MySql => '`',
    };
    let mut out = String::with_capacity(name.len() + 2);
    out.push(quote);
    for c in name.chars() {
        if c == quote {
            out.push(quote);
        }
        out.push(c);
    }
    out.push(quote);
    Ok(out)
}

/// One translation: a cursor over the input with the output built so far.
struct Translator<'a> {
    src: &'a str,
    bytes: &'a [u8],
    backend: Backend,
    out: String,
    /// Input bytes `copied..pos` still have to be copied verbatim to `out`.
    copied: usize,
    /// PostgreSQL: number of portable `?` placeholders; MySQL: number of `?`;
    /// SQLite: highest parameter index so far.
    count: usize,
    /// PostgreSQL and MySQL: position of the first portable `?`.
    first_portable: Option<usize>,
    /// PostgreSQL: position of the first native `$n`; MySQL: of the first native `%s`.
    first_native: Option<usize>,
    /// PostgreSQL: highest native `$n`.
    native_max: usize,
    /// The previous byte belongs to an unquoted identifier or keyword (so a `$` or `'` right
    /// here is part of / glued to that word).
    in_word: bool,
    /// Position of an `E`/`e` that begins a word (a possible E-string prefix).
    e_prefix: Option<usize>,
    /// MySQL: start of the executable comment (`/*!`, `/*M!`) whose content is being read as
    /// SQL; its `*/` ends it.
    executable: Option<usize>,
    /// The statement's keywords, as this pass meets them outside literals and comments.
    kind: Classifier<'a>,
}

impl<'a> Translator<'a> {
    fn new(src: &'a str, backend: Backend) -> Self {
        Translator {
            src,
            bytes: src.as_bytes(),
            backend,
            out: String::with_capacity(src.len() + src.len() / 8 + 8),
            copied: 0,
            count: 0,
            first_portable: None,
            first_native: None,
            native_max: 0,
            in_word: false,
            e_prefix: None,
            executable: None,
            kind: Classifier::new(src),
        }
    }

    /// Copies the pending verbatim input up to `pos` (a char boundary) to the output.
    fn flush(&mut self, pos: usize) {
        if let Some(s) = self.src.get(self.copied..pos) {
            self.out.push_str(s);
        }
    }

    /// Writes `text` in place of the input bytes `pos..next`.
    fn replace(&mut self, pos: usize, next: usize, text: &str) {
        self.flush(pos);
        self.out.push_str(text);
        self.copied = next;
    }

    /// The single pass: token by token, rewriting what needs rewriting, counting parameters
    /// and noting the keywords that tell the statement's kind.
    fn run(mut self) -> Result<Translated> {
        let n = self.bytes.len();
        let mut i = 0;
        while i < n {
            i = self.step(i)?;
        }
        if let Some(start) = self.executable {
            return Err(Error::sql("unterminated executable comment", start));
        }
        self.flush(n);

        let placeholders = if self.backend == Backend::Postgres && self.first_portable.is_none() {
            self.native_max
        } else {
            self.count
        };
        let (kind, operation) = self.kind.finish();
        Ok(Translated {
            sql: self.out,
            placeholders,
            kind,
            operation,
        })
    }

    /// Reads the token starting at `i` (`i` < input length); returns the index after it.
    fn step(&mut self, i: usize) -> Result<usize> {
        let bytes = self.bytes;
        let pg = self.backend == Backend::Postgres;
        let mysql = self.backend == Backend::MySql;
        let next = match bytes[i] {
            quote @ (b'\'' | b'"') => self.quoted(i, quote)?,
            b'`' if !pg => self.quoted(i, b'`')?,
            b'-' if bytes.get(i + 1) == Some(&b'-') => skip_line(bytes, i + 2, pg),
            b'#' if mysql => skip_line(bytes, i + 1, false),
            b'/' if bytes.get(i + 1) == Some(&b'*') => self.block_comment(i)?,
            b'*' if self.executable.is_some() && bytes.get(i + 1) == Some(&b'/') => {
                self.executable = None;
                i + 2
            }
            b'$' if pg && !self.in_word => self.dollar(i)?,
            b'%' if mysql && self.is_percent_s(i) => self.percent_s(i)?,
            b'?' => self.question(i, self.in_word)?,
            b'[' => self.open_bracket(i)?,
            b']' => self.close_bracket(i),
            b => return Ok(self.plain(i, b)),
        };
        self.in_word = false;
        Ok(next)
    }

    /// Any other byte at `i`: part of a word (identifier, keyword, number) or punctuation.
    fn plain(&mut self, i: usize, b: u8) -> usize {
        if !self.in_word && (b == b'E' || b == b'e') {
            self.e_prefix = Some(i);
        }
        self.in_word = if self.in_word {
            is_ident_cont(b)
        } else {
            is_ident_start(b)
        };
        if is_ident_cont(b) {
            self.kind.word_byte(i);
        }
        i + 1
    }

    /// A string literal or quoted identifier opened by `quote` at `i`, skipped following the
    /// backend's rules; returns the index after it.
    fn quoted(&self, i: usize, quote: u8) -> Result<usize> {
        let mysql = self.backend == Backend::MySql;
        match quote {
            b'\'' => {
                let e_string =
                    self.backend == Backend::Postgres && i > 0 && self.e_prefix == Some(i - 1);
                let start = if e_string { i - 1 } else { i };
                skip_quoted(self.bytes, i, b'\'', mysql || e_string).ok_or_else(|| {
                    let what = if e_string {
                        "unterminated E'...' string literal"
                    } else {
                        "unterminated string literal"
                    };
                    Error::sql(what, start)
                })
            }
            b'"' => skip_quoted(self.bytes, i, b'"', mysql).ok_or_else(|| {
                let what = if mysql {
                    "unterminated string literal"
                } else {
                    "unterminated quoted identifier"
                };
                Error::sql(what, i)
            }),
            _ => skip_quoted(self.bytes, i, quote, false)
                .ok_or_else(|| Error::sql("unterminated quoted identifier", i)),
        }
    }

    /// `/*` at `i`: a block comment, skipped, or on MySQL an executable comment, whose opener
    /// is copied and whose content is read as SQL (a second opener inside does the same; MySQL
    /// ends both at the first `*/`). Returns the index to continue from.
    fn block_comment(&mut self, i: usize) -> Result<usize> {
        let mysql = self.backend == Backend::MySql;
        match executable_opener_len(self.bytes, i).filter(|_| mysql) {
            Some(len) => {
                self.executable = Some(i);
                // The version number (`/*!50100`) is part of the opener, not a word of the SQL.
                let mut next = i + len;
                while self.bytes.get(next).is_some_and(u8::is_ascii_digit) {
                    next += 1;
                }
                Ok(next)
            }
            None => skip_block_comment(self.bytes, i, self.backend == Backend::Postgres)
                .ok_or_else(|| Error::sql("unterminated block comment", i)),
        }
    }

    /// `[` at `i`: the portable escape `[[`, a portable quoted identifier `[name]`, a SQLite
    /// bracket-quoted identifier, or a plain `[`. Returns the index to continue from.
    fn open_bracket(&mut self, i: usize) -> Result<usize> {
        let sqlite = self.backend == Backend::Sqlite;
        if self.bytes.get(i + 1) == Some(&b'[') {
            self.replace(i, i + 2, "[");
            return if sqlite {
                // SQLite reads the `[` written here as the start of a bracket-quoted
                // identifier, so its body must not be scanned.
                self.sqlite_escaped_bracket(i)
            } else {
                Ok(i + 2)
            };
        }
        if let Some(close) = bracket_ident_end(self.src, i) {
            let quote = if self.backend == Backend::MySql {
                "`"
            } else {
                "\""
            };
            self.flush(i);
            self.out.push_str(quote);
            self.out.push_str(&self.src[i + 1..close]);
            self.out.push_str(quote);
            self.copied = close + 1;
            return Ok(close + 1);
        }
        if sqlite {
            // A native SQLite bracket-quoted identifier: copied verbatim.
            return bracket_close(self.bytes, i + 1)
                .map(|close| close + 1)
                .ok_or_else(|| Error::sql(UNTERMINATED_BRACKET, i));
        }
        Ok(i + 1)
    }

    /// `]` at `i`: the portable escape `]]`, or a plain `]`. Returns the index after it.
    fn close_bracket(&mut self, i: usize) -> usize {
        if self.bytes.get(i + 1) == Some(&b']') {
            self.replace(i, i + 2, "]");
            i + 2
        } else {
            i + 1
        }
    }

    /// SQLite: the portable `[[` at `open` has just been written as `[`, which SQLite takes as the
    /// start of a bracket-quoted identifier running to the next `]`. Copies that identifier's
    /// body verbatim; its closing bracket may be written `]]` (the portable escape) or `]`.
    /// Returns the index after the closing bracket.
    fn sqlite_escaped_bracket(&mut self, open: usize) -> Result<usize> {
        let close = bracket_close(self.bytes, open + 2)
            .ok_or_else(|| Error::sql(UNTERMINATED_BRACKET, open))?;
        if self.bytes.get(close + 1) == Some(&b']') {
            self.replace(close, close + 2, "]");
            Ok(close + 2)
        } else {
            Ok(close + 1)
        }
    }

    /// PostgreSQL `$` not inside a word, at `i`: a native placeholder `$n`, a dollar-quoted
    /// string, or a plain `$`. Returns the index to continue from.
    fn dollar(&mut self, i: usize) -> Result<usize> {
        let bytes = self.bytes;
        match bytes.get(i + 1) {
            Some(d) if d.is_ascii_digit() => {
                if self.first_portable.is_some() {
                    return Err(Error::sql(
                        "cannot mix native $n placeholders with portable ? placeholders",
                        i,
                    ));
                }
                self.first_native.get_or_insert(i);
                let (index, end) = parse_digits(bytes, i + 1)?;
                self.native_max = self.native_max.max(index);
                Ok(end)
            }
            Some(&c) if c == b'$' || is_ident_start(c) => {
                let mut j = i + 1;
                while j < bytes.len() && is_tag_cont(bytes[j]) {
                    j += 1;
                }
                if bytes.get(j) != Some(&b'$') {
                    // `$abc` without a closing `$`: not a dollar quote.
                    return Ok(i + 1);
                }
                let tag = &self.src[i..=j];
                let body = j + 1;
                match self.src[body..].find(tag) {
                    Some(k) => Ok(body + k + tag.len()),
                    None => Err(Error::sql(
                        format!("unterminated dollar-quoted string {tag}"),
                        i,
                    )),
                }
            }
            _ => Ok(i + 1),
        }
    }

    /// MySQL: a `%s` at `i` that is a native placeholder (the `s` not followed by a byte that
    /// continues a word: `%sum` is `%` and the column `sum`).
    fn is_percent_s(&self, i: usize) -> bool {
        self.bytes.get(i + 1) == Some(&b's')
            && !self.bytes.get(i + 2).is_some_and(|&b| is_ident_cont(b))
    }

    /// MySQL: the native placeholder `%s` at `i` (the MySQL drivers' `format` style), written
    /// as `?`. Returns the index after it.
    fn percent_s(&mut self, i: usize) -> Result<usize> {
        if self.first_portable.is_some() {
            return Err(Error::sql(
                "cannot mix native %s placeholders with portable ? placeholders",
                i,
            ));
        }
        self.first_native.get_or_insert(i);
        self.count += 1;
        self.replace(i, i + 2, "?");
        Ok(i + 2)
    }

    /// `?` at `i`; `in_word` tells whether the byte before it continues an unquoted word.
    /// Returns the index to continue from.
    fn question(&mut self, i: usize, in_word: bool) -> Result<usize> {
        let bytes = self.bytes;
        let doubled = bytes.get(i + 1) == Some(&b'?');
        match self.backend {
            Backend::Postgres => {
                if doubled {
                    self.replace(i, i + 2, "?");
                    return Ok(i + 2);
                }
                if self.first_native.is_some() {
                    return Err(Error::sql(
                        "cannot mix portable ? placeholders with native $n placeholders",
                        i,
                    ));
                }
                let next = bytes.get(i + 1).copied();
                if next.is_some_and(|b| b.is_ascii_digit()) {
                    // `$1` + `9` would read as `$19`; `?9` is SQLite's numbered placeholder.
                    return Err(Error::sql(
                        "? followed by a digit: PostgreSQL has no ?NNN placeholders \
                         (write $NNN, or put a space after the ?)",
                        i,
                    ));
                }
                self.first_portable.get_or_insert(i);
                self.count += 1;
                self.flush(i);
                // A word before `$n` would take it in (`a$1` is one identifier) and a `$`
                // before it would make a dollar quote (`$$1`); a word right after it is
                // trailing junk (PostgreSQL 15+ rejects `$1abc`).
                let space_before =
                    in_word || i.checked_sub(1).and_then(|k| bytes.get(k)) == Some(&b'$');
                let space_after = next.is_some_and(is_ident_start);
                // Writing to a String cannot fail.
                let _ = write!(
                    self.out,
                    "{}${}{}",
                    if space_before { " " } else { "" },
                    self.count,
                    if space_after { " " } else { "" }
                );
                self.copied = i + 1;
                Ok(i + 1)
            }
            Backend::MySql => {
                // `??` is output as a single `?`, which MySQL sees as a placeholder.
                if doubled {
                    self.replace(i, i + 2, "?");
                } else {
                    if self.first_native.is_some() {
                        return Err(Error::sql(
                            "cannot mix portable ? placeholders with native %s placeholders",
                            i,
                        ));
                    }
                    self.first_portable.get_or_insert(i);
                }
                self.count += 1;
                Ok(i + if doubled { 2 } else { 1 })
            }
            Backend::Sqlite => {
                let next = if doubled {
                    self.replace(i, i + 2, "?");
                    i + 2
                } else {
                    i + 1
                };
                if bytes.get(next).is_some_and(u8::is_ascii_digit) {
                    // `?NNN`: numbered parameter.
                    let (index, end) = parse_digits(bytes, next)?;
                    self.count = self.count.max(index);
                    Ok(end)
                } else {
                    self.count = self.count.saturating_add(1);
                    Ok(next)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
