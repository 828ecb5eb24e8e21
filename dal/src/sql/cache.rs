//! Translations already made, shared by every connection of the process.
//!
//! Translation is a pure function of the text and the backend, so the result of translating
//! a statement once is valid for every later use of the same text on the same backend: the
//! hot path (a point read run again and again) looks its translation up instead of lexing the
//! text each time. Nothing invalidates an entry; the map is bounded (at most
//! [`CAPACITY`] texts per backend, each at most [`MAX_TEXT`] bytes long: longer texts, often
//! generated with inlined values, are translated every time and not kept) and is emptied when
//! full, so texts that are never repeated cannot make it grow without bound. Failed
//! translations are not kept (they are reported again, with the same error).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use super::{translate, Backend, Translated};
use crate::error::Result;

/// Texts kept per backend before the map is emptied.
pub(crate) const CAPACITY: usize = 1024;
/// Longer texts are translated every time. With [`CAPACITY`], at most about 8 MiB per backend
/// (the text and its translation), far less in practice.
pub(crate) const MAX_TEXT: usize = 4096;

/// A translated statement and the hash of its native text (the per-connection statistics of
/// the driver's prepared-statement cache key on it).
#[derive(Debug)]
pub(crate) struct Statement {
    pub translated: Translated,
    /// [`text_hash`] of `translated.sql`.
    pub hash: u64,
}

impl Statement {
    pub(crate) fn new(translated: Translated) -> Self {
        let hash = text_hash(&translated.sql);
        Statement { translated, hash }
    }
}

type Map = RwLock<HashMap<Box<str>, Arc<Statement>>>;

fn maps() -> &'static [Map; 3] {
    static MAPS: OnceLock<[Map; 3]> = OnceLock::new();
    MAPS.get_or_init(Default::default)
}

fn map(backend: Backend) -> &'static Map {
    let i = match backend {
        Backend::Postgres => 0,
        Backend::MySql => 1,
        Backend::Sqlite => 2,
    };
    &maps()[i]
}

/// [`translate`], looked up first among the texts already translated for `backend`.
pub(crate) fn translate_cached(sql: &str, backend: Backend) -> Result<Arc<Statement>> {
    if sql.len() > MAX_TEXT {
        return Ok(Arc::new(Statement::new(translate(sql, backend)?)));
    }
    let map = map(backend);
    if let Some(s) = map
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(sql)
        .cloned()
    {
        return Ok(s);
    }
    let statement = Arc::new(Statement::new(translate(sql, backend)?));
    let mut m = map.write().unwrap_or_else(|p| p.into_inner());
    if m.len() >= CAPACITY {
        m.clear();
    }
    m.insert(sql.into(), statement.clone());
    Ok(statement)
}

/// FNV-1a: a cheap, stable 64-bit hash of a statement's text.
pub(crate) fn text_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_text_is_translated_once_and_per_backend() {
        let sql = "SELECT [a] FROM [cache_test_t] WHERE [b] = ?";
        let pg = translate_cached(sql, Backend::Postgres).unwrap();
        assert_eq!(pg.translated, translate(sql, Backend::Postgres).unwrap());
        assert_eq!(pg.hash, text_hash(&pg.translated.sql));
        assert!(Arc::ptr_eq(
            &pg,
            &translate_cached(sql, Backend::Postgres).unwrap()
        ));
        let my = translate_cached(sql, Backend::MySql).unwrap();
        assert_eq!(
            my.translated.sql,
            "SELECT `a` FROM `cache_test_t` WHERE `b` = ?"
        );
        // Errors are reported every time, and not kept.
        assert!(translate_cached("SELECT 'x", Backend::Postgres).is_err());
        assert!(translate_cached("SELECT 'x", Backend::Postgres).is_err());
        // Long texts are translated but not kept.
        let long = format!("SELECT 1 /* {} */", "x".repeat(MAX_TEXT));
        let a = translate_cached(&long, Backend::Sqlite).unwrap();
        let b = translate_cached(&long, Backend::Sqlite).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(a.translated, b.translated);
    }

    #[test]
    fn the_map_stays_bounded() {
        for i in 0..CAPACITY + 10 {
            translate_cached(&format!("SELECT {i} AS [bounded_test]"), Backend::MySql).unwrap();
        }
        let len = map(Backend::MySql)
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        assert!(len <= CAPACITY, "{len}");
    }
}
