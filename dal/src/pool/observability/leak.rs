//! Leak detection: who holds which connection, since when, acquired where.
//!
//! Every lent connection has a slot in a small slab (pre-sized to the pool's maximum, so
//! checkout allocates nothing) with the instant and the caller location of its acquisition
//! (`#[track_caller]` on `Database::async_connection`). With `DAL_LEAK_BACKTRACE=1` in the
//! environment a full backtrace is captured too — costly, meant for hunting a leak.
//!
//! The housekeeper reports connections held past the leak threshold once each, at WARN
//! (target `dal::pool::leak`); [`PoolInner::leaks`] lists them on demand.

use std::backtrace::Backtrace;
use std::fmt;
use std::panic::Location;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::pool::{PoolInner, PooledRaw, State};

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
    /// The connection's reclaim mark (see [`PooledRaw::reclaimed`]).
    pub reclaimed: Arc<std::sync::atomic::AtomicU64>,
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

    /// Removes and returns the records lent at or before `cutoff`.
    pub(crate) fn take_lent_before(&mut self, cutoff: Instant) -> Vec<LendRecord> {
        let mut out = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.as_ref().is_some_and(|r| r.since <= cutoff) {
                if let Some(rec) = slot.take() {
                    self.free.push(i);
                    out.push(rec);
                }
            }
        }
        out
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
    pub(crate) fn new(
        since: Instant,
        location: &'static Location<'static>,
        reclaimed: Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        LendRecord {
            since,
            location,
            backtrace: capture_backtraces().then(|| Arc::new(Backtrace::force_capture())),
            reported: false,
            reclaimed,
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

impl PoolInner {
    /// Records who holds `conn` from now on.
    pub(in crate::pool) fn lend(
        &self,
        conn: &mut PooledRaw,
        at: Instant,
        location: &'static Location<'static>,
    ) {
        conn.reclaimed.store(0, Ordering::Release);
        let rec = LendRecord::new(at, location, conn.reclaimed.clone());
        conn.lend = self.state().lent.insert(rec);
    }

    /// Takes back the connections held for at least `threshold` ([`PoolTuning::reclaim_leaks`](crate::PoolTuning::reclaim_leaks)):
    /// marks each (its holder's next call fails), frees its lend slot, its in-use count and
    /// its permit at once, and logs it. Returns how many were reclaimed.
    pub(crate) fn reclaim(&self, threshold: Duration) -> usize {
        let now = Instant::now();
        let Some(cutoff) = now.checked_sub(threshold) else {
            return 0;
        };
        let taken = {
            let mut state = self.state();
            let taken = state.lent.take_lent_before(cutoff);
            for rec in &taken {
                let held = now.saturating_duration_since(rec.since);
                let ms = u64::try_from(held.as_millis()).unwrap_or(u64::MAX - 1);
                rec.reclaimed.store(ms.saturating_add(1), Ordering::Release);
            }
            taken
        };
        for rec in &taken {
            self.in_use.fetch_sub(1, Ordering::AcqRel);
            self.stats.reclaimed.fetch_add(1, Ordering::Relaxed);
            self.semaphore.add_permits(1);
            let report = rec.report(&self.hash, &self.alias, now);
            tracing::warn!(
                target: "dal::pool::leak",
                alias = %self.alias,
                held_ms = report.held_for.as_millis() as u64,
                location = %report.location,
                backtrace = report.backtrace.as_deref().unwrap_or(""),
                "connection held too long was reclaimed: its holder's next call fails"
            );
        }
        taken.len()
    }

    /// Forgets the lend record of `conn` (called under the state lock). Returns the record when
    /// it had been reported as a leak, to be logged by
    /// [`log_returned_leak`](Self::log_returned_leak) once the lock is released.
    pub(in crate::pool) fn unlend(state: &mut State, conn: &mut PooledRaw) -> Option<LendRecord> {
        let lend = std::mem::replace(&mut conn.lend, NOT_LENT);
        if lend == NOT_LENT {
            return None;
        }
        state.lent.remove(lend).filter(|rec| rec.reported)
    }

    /// Logs that a connection reported as leaked came back after all.
    pub(in crate::pool) fn log_returned_leak(&self, rec: &LendRecord) {
        tracing::info!(
            target: "dal::pool::leak",
            alias = %self.alias,
            held_ms = rec.since.elapsed().as_millis() as u64,
            location = %rec.location,
            "previously reported leaked connection was returned"
        );
    }

    /// Connections lent for at least `threshold`, with where they were acquired.
    pub(crate) fn leaks(&self, threshold: Duration) -> Vec<LeakReport> {
        let now = Instant::now();
        let mut out: Vec<LeakReport> = self
            .state()
            .lent
            .iter_mut()
            .filter(|r| now.saturating_duration_since(r.since) >= threshold)
            .map(|r| r.report(&self.hash, &self.alias, now))
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.held_for));
        out
    }

    /// Logs (once each) the connections held longer than `threshold`.
    pub(in crate::pool) fn report_leaks(&self, threshold: Duration) {
        let now = Instant::now();
        let reports: Vec<_> = self
            .state()
            .lent
            .iter_mut()
            .filter(|r| !r.reported && now.saturating_duration_since(r.since) >= threshold)
            .map(|r| {
                r.reported = true;
                r.report(&self.hash, &self.alias, now)
            })
            .collect();
        for r in reports {
            self.stats.leaks_detected.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "metrics")]
            self.facade.leak();
            tracing::warn!(
                target: "dal::pool::leak",
                alias = %r.alias,
                hash = %r.hash,
                held_ms = r.held_for.as_millis() as u64,
                threshold_ms = threshold.as_millis() as u64,
                location = %r.location,
                backtrace = r.backtrace.as_deref().unwrap_or("(set DAL_LEAK_BACKTRACE=1 for a backtrace)"),
                "possible connection leak: a connection of pool {} has been held for {:.1?}, acquired at {}",
                r.alias,
                r.held_for,
                r.location
            );
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
        let a = l.insert(LendRecord::new(Instant::now(), here, Arc::default()));
        let b = l.insert(LendRecord::new(Instant::now(), here, Arc::default()));
        let c = l.insert(LendRecord::new(Instant::now(), here, Arc::default()));
        assert_eq!((a, b, c), (0, 1, 2));
        assert!(l.remove(b).is_some());
        assert!(l.remove(b).is_none());
        assert_eq!(
            l.insert(LendRecord::new(Instant::now(), here, Arc::default())),
            1
        );
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
