//! What a pool knows about its server's place in a replicated topology: its role (primary,
//! the primary's read pool, a replica) and, for a replica, whether it is in rotation, how far
//! it lags, how many reads it was given, and the last write position it was seen to have
//! applied. Written by the routing code (`crate::topology`), read by metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::recover;

/// What a pool serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PoolRole {
    /// Reads and writes on the primary (the pool of `async_connection`).
    Primary,
    /// Read-only sessions on the primary: reads no replica can serve.
    PrimaryRead,
    /// Read-only sessions on a replica.
    Replica,
}

impl PoolRole {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PoolRole::Primary => "primary",
            PoolRole::PrimaryRead => "primary_read",
            PoolRole::Replica => "replica",
        }
    }
}

/// `lag_ms` when the lag is not known (not measured yet, or the replica is not replicating).
const LAG_UNKNOWN: u64 = u64::MAX;

/// A replica pool's routing state. Poisoning: each lock holds one value replaced whole, so a
/// poisoned lock is recovered.
pub(crate) struct ReplicaState {
    pub role: PoolRole,
    in_rotation: AtomicBool,
    lag_ms: AtomicU64,
    routed: AtomicU64,
    /// True while a health check runs (one at a time).
    checking: AtomicBool,
    last_check: Mutex<Option<Instant>>,
    /// Why it is out of rotation, for `topology()`.
    reason: Mutex<Option<String>>,
    /// The last write position this replica was seen to have applied.
    confirmed: Mutex<Option<String>>,
}

impl ReplicaState {
    pub(crate) fn new(role: PoolRole) -> Self {
        ReplicaState {
            role,
            in_rotation: AtomicBool::new(true),
            lag_ms: AtomicU64::new(LAG_UNKNOWN),
            routed: AtomicU64::new(0),
            checking: AtomicBool::new(false),
            last_check: Mutex::new(None),
            reason: Mutex::new(None),
            confirmed: Mutex::new(None),
        }
    }

    pub(crate) fn in_rotation(&self) -> bool {
        self.in_rotation.load(Ordering::Acquire)
    }

    /// The last measured lag (`None`: unknown).
    pub(crate) fn lag(&self) -> Option<Duration> {
        match self.lag_ms.load(Ordering::Relaxed) {
            LAG_UNKNOWN => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    pub(crate) fn routed(&self) -> u64 {
        self.routed.load(Ordering::Relaxed)
    }

    pub(crate) fn count_routed(&self) {
        self.routed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn out_reason(&self) -> Option<String> {
        recover(self.reason.lock()).clone()
    }

    /// Takes the replica out of rotation (until a health check finds it well), logging the
    /// change once.
    pub(crate) fn take_out(&self, alias: &str, why: String) {
        if self.in_rotation.swap(false, Ordering::AcqRel) {
            tracing::warn!(target: "dal::replica", alias, reason = %why, "replica taken out of rotation");
        }
        *recover(self.reason.lock()) = Some(why);
    }

    /// Records a health check's result: the measured lag (`None`: unknown) against `max`.
    pub(crate) fn record_lag(&self, alias: &str, lag: Option<Duration>, max: Duration) {
        let ms = lag.map_or(LAG_UNKNOWN, |l| {
            u64::try_from(l.as_millis()).unwrap_or(LAG_UNKNOWN - 1)
        });
        self.lag_ms.store(ms, Ordering::Relaxed);
        match lag {
            Some(l) if l <= max => self.put_back(alias),
            Some(l) => self.take_out(
                alias,
                format!("lagging {l:?} behind the primary (max {max:?})"),
            ),
            None => self.take_out(alias, "not replicating (lag unknown)".into()),
        }
    }

    fn put_back(&self, alias: &str) {
        if !self.in_rotation.swap(true, Ordering::AcqRel) {
            tracing::info!(target: "dal::replica", alias, "replica back in rotation");
        }
        *recover(self.reason.lock()) = None;
    }

    /// True (and the check marked as running) when the last health check is older than
    /// `every` and none is running: the caller runs one and then calls
    /// [`check_done`](Self::check_done).
    pub(crate) fn claim_check(&self, every: Duration) -> bool {
        let due = recover(self.last_check.lock()).is_none_or(|t| t.elapsed() >= every);
        due && !self.checking.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn check_done(&self) {
        *recover(self.last_check.lock()) = Some(Instant::now());
        self.checking.store(false, Ordering::Release);
    }

    /// True when this replica is known to have applied `pos`.
    pub(crate) fn has_applied(&self, pos: &str) -> bool {
        recover(self.confirmed.lock()).as_deref() == Some(pos)
    }

    pub(crate) fn applied(&self, pos: &str) {
        *recover(self.confirmed.lock()) = Some(pos.to_owned());
    }
}
