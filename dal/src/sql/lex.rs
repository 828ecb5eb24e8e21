//! Lexical helpers of the translator's single pass: what starts and continues a word, and
//! where a literal, quoted identifier or comment ends, per backend.

use crate::error::{Error, Result};

/// First byte of an unquoted identifier (keyword) per PostgreSQL/MySQL/SQLite: an ASCII letter,
/// `_`, or any byte of a non-ASCII character.
pub(super) fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

/// A byte that continues an unquoted identifier.
pub(super) fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// A byte of a dollar-quote tag after its first byte (identifier bytes without `$`).
pub(super) fn is_tag_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit()
}

/// If a portable quoted identifier `[name]` starts at `open` (the `[`), the index of its `]`.
pub(super) fn bracket_ident_end(src: &str, open: usize) -> Option<usize> {
    let rest = src.get(open + 1..)?;
    let mut chars = rest.char_indices();
    let (_, first) = chars.next()?;
    if !(first.is_alphabetic() || first == '_') {
        return None;
    }
    for (k, c) in chars {
        if c == ']' {
            return Some(open + 1 + k);
        }
        if !(c.is_alphanumeric() || c == '_' || c == '$' || c == ' ') {
            return None;
        }
    }
    None
}

/// Message for a SQLite `[…` without its `]`.
pub(super) const UNTERMINATED_BRACKET: &str = "unterminated [...] quoted identifier";

/// Index of the first `]` at or after `from` (the end of a SQLite bracket-quoted identifier,
/// in which no character is special).
pub(super) fn bracket_close(bytes: &[u8], from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .iter()
        .position(|&b| b == b']')
        .map(|k| from + k)
}

/// Parses the ASCII digits starting at `start`; returns (value, end index).
pub(super) fn parse_digits(bytes: &[u8], start: usize) -> Result<(usize, usize)> {
    let mut end = start;
    let mut value: usize = 0;
    while let Some(&b) = bytes.get(end) {
        if !b.is_ascii_digit() {
            break;
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(usize::from(b - b'0')))
            .ok_or_else(|| Error::sql("placeholder number too large", start.saturating_sub(1)))?;
        end += 1;
    }
    Ok((value, end))
}

/// Skips a quoted token opened by `quote` at `open` (doubling the quote escapes it; with
/// `backslash`, `\` escapes the next byte). Returns the index after the closing quote.
pub(super) fn skip_quoted(bytes: &[u8], open: usize, quote: u8, backslash: bool) -> Option<usize> {
    let mut j = open + 1;
    while j < bytes.len() {
        let b = bytes[j];
        if b == quote {
            if bytes.get(j + 1) == Some(&quote) {
                j += 2;
            } else {
                return Some(j + 1);
            }
        } else if backslash && b == b'\\' {
            j += 2;
        } else {
            j += 1;
        }
    }
    None
}

/// Skips a line comment whose text starts at `from`; returns the index of the line end (or the
/// end of input). PostgreSQL also ends it at a carriage return.
pub(super) fn skip_line(bytes: &[u8], from: usize, cr_ends: bool) -> usize {
    let mut j = from;
    while j < bytes.len() {
        let b = bytes[j];
        if b == b'\n' || (cr_ends && b == b'\r') {
            return j;
        }
        j += 1;
    }
    bytes.len()
}

/// If a MySQL executable comment starts at `open` (`/*!`, or MariaDB's `/*M!`), the length of
/// its opener. A version number after it (`/*!50100`) is left to be read as a number.
pub(super) fn executable_opener_len(bytes: &[u8], open: usize) -> Option<usize> {
    let rest = bytes.get(open..)?;
    if rest.starts_with(b"/*!") {
        Some(3)
    } else if rest.starts_with(b"/*M!") {
        Some(4)
    } else {
        None
    }
}

/// Skips a block comment opened at `open` (nested if `nested`); returns the index after it.
pub(super) fn skip_block_comment(bytes: &[u8], open: usize, nested: bool) -> Option<usize> {
    let mut depth = 1usize;
    let mut j = open + 2;
    while j + 1 < bytes.len() {
        match (bytes[j], bytes[j + 1]) {
            (b'*', b'/') => {
                depth -= 1;
                j += 2;
                if depth == 0 {
                    return Some(j);
                }
            }
            (b'/', b'*') if nested => {
                depth += 1;
                j += 2;
            }
            _ => j += 1,
        }
    }
    None
}
