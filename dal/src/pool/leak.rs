//! Leak detection: who holds which connection, since when, acquired where.
//!
//! Every lent connection has a slot in a small slab (pre-sized to the pool's maximum, so
//! checkout allocates nothing) with the instant and the caller location of its acquisition
//! (`#[track_caller]` on `Database::async_connection`). With `DAL_LEAK_BACKTRACE=1` in the
//! environment a full backtrace is captured too — costly, meant for hunting a leak.

use std::backtrace::Backtrace;
use std::fmt;
use std::panic::Location;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A connection held longer than a threshold, with where it was acquired.
#[derive(Debug, Clone)]
pub struct LeakReport {
    /// Configuration hash of the pool.
    pub hash: String,
    /// Alias of the pool.
    pub alias: String,
    /// How long the connection has been held.
    pub held_for: Duration,
    /// Where it was acquired, as `file:line`.
    pub location: String,
    /// Source file of the acquiring call.
    pub file: &'static str,
    /// Line of the acquiring call.
    pub line: u32,
    /// The full backtrace of the acquisition, when `DAL_LEAK_BACKTRACE=1` was set.
    pub backtrace: Option<String>,
}

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connection of pool {} held for {:.1?}, acquired at {}",
            self.alias, self.held_for, self.location
        )
    }
}

/// True when `DAL_LEAK_BACKTRACE=1` (read once).
pub(crate) fn capture_backtraces() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var("DAL_LEAK_BACKTRACE")
            .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
    })
}

pub(crate) struct LendRecord {
    pub since: Instant,
    pub location: &'static Location<'static>,
    pub backtrace: Option<Arc<Backtrace>>,
    /// Already reported by the housekeeper (reported once, like HikariCP).
    pub reported: bool,
}

/// Slot index meaning "not lent".
pub(crate) const NOT_LENT: usize = usize::MAX;

/// Records of the connections lent out now.
pub(crate) struct Lent {
    slots: Vec<Option<LendRecord>>,
    free: Vec<usize>,
}

impl Lent {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Lent {
            slots: (0..n).map(|_| None).collect(),
            free: (0..n).rev().collect(),
        }
    }

    pub(crate) fn insert(&mut self, rec: LendRecord) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(rec);
                i
            }
            None => {
                self.slots.push(Some(rec));
                self.slots.len() - 1
            }
        }
    }

    pub(crate) fn remove(&mut self, i: usize) -> Option<LendRecord> {
        let rec = self.slots.get_mut(i)?.take();
        if rec.is_some() {
            self.free.push(i);
        }
        rec
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut LendRecord> {
        self.slots.iter_mut().flatten()
    }
}

/// `dal/../tests/pool.rs` → `tests/pool.rs`: resolves `..` segments lexically (cargo names
/// files of targets outside the package directory that way).
fn tidy_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            ".." if parts.last().is_some_and(|p| *p != ".." && !p.is_empty()) => {
                parts.pop();
            }
            "." => {}
            s => parts.push(s),
        }
    }
    parts.join("/")
}

impl LendRecord {
    pub(crate) fn new(since: Instant, location: &'static Location<'static>) -> Self {
        LendRecord {
            since,
            location,
            backtrace: capture_backtraces().then(|| Arc::new(Backtrace::force_capture())),
            reported: false,
        }
    }

    pub(crate) fn report(&self, hash: &str, alias: &str, now: Instant) -> LeakReport {
        LeakReport {
            hash: hash.to_owned(),
            alias: alias.to_owned(),
            held_for: now.saturating_duration_since(self.since),
            location: format!(
                "{}:{}",
                tidy_path(self.location.file()),
                self.location.line()
            ),
            file: self.location.file(),
            line: self.location.line(),
            backtrace: self.backtrace.as_ref().map(|b| b.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused() {
        let mut l = Lent::with_capacity(2);
        let here = Location::caller();
        let a = l.insert(LendRecord::new(Instant::now(), here));
        let b = l.insert(LendRecord::new(Instant::now(), here));
        let c = l.insert(LendRecord::new(Instant::now(), here));
        assert_eq!((a, b, c), (0, 1, 2));
        assert!(l.remove(b).is_some());
        assert!(l.remove(b).is_none());
        assert_eq!(l.insert(LendRecord::new(Instant::now(), here)), 1);
        assert_eq!(l.iter_mut().count(), 3);
    }

    #[test]
    fn paths_are_tidied() {
        assert_eq!(tidy_path("dal/../tests/pool.rs"), "tests/pool.rs");
        assert_eq!(tidy_path("src/main.rs"), "src/main.rs");
        assert_eq!(tidy_path("../x/./y.rs"), "../x/y.rs");
        assert_eq!(tidy_path("/abs/a/../b.rs"), "/abs/b.rs");
    }
}
