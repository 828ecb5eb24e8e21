//! The sliding window of call outcomes, lock-free.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Time buckets of the sliding window.
pub(super) const BUCKETS: u64 = 10;

/// Calls and failures over a sliding window, in [`BUCKETS`] time buckets. Each bucket is one
/// atomic word: the bucket's number in time (24 bits) and its calls and failures (20 bits each,
/// saturating at about a million per bucket), updated with a compare-and-swap loop. A bucket
/// whose number is not recent counts as empty and is reset by the next call that lands in it.
#[derive(Debug)]
pub(super) struct Window {
    epoch: Instant,
    bucket_nanos: u64,
    buckets: [AtomicU64; BUCKETS as usize],
}

const STAMP_BITS: u32 = 24;
const COUNT_BITS: u32 = 20;
const STAMP_MASK: u64 = (1 << STAMP_BITS) - 1;
pub(super) const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

impl Window {
    pub(super) fn new(window: Duration) -> Self {
        let nanos = u64::try_from(window.as_nanos() / u128::from(BUCKETS)).unwrap_or(u64::MAX);
        Window {
            epoch: Instant::now(),
            bucket_nanos: nanos.max(1),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// The current bucket number (from 1: a zeroed bucket is never current by accident early
    /// on, and holds no counts anyway).
    pub(super) fn now(&self) -> u64 {
        let nanos = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        nanos / self.bucket_nanos + 1
    }

    /// Counts one call, and returns the window's (calls, failures) when it failed (a success
    /// does not need them).
    pub(super) fn record(&self, failed: bool) -> (u32, u32) {
        let now = self.now();
        let stamp = now & STAMP_MASK;
        let slot = &self.buckets[(now % BUCKETS) as usize];
        let mut cur = slot.load(Ordering::Relaxed);
        loop {
            let (calls, failures) = if cur >> (2 * COUNT_BITS) == stamp {
                ((cur >> COUNT_BITS) & COUNT_MASK, cur & COUNT_MASK)
            } else {
                (0, 0)
            };
            let calls = (calls + 1).min(COUNT_MASK);
            let failures = (failures + u64::from(failed)).min(COUNT_MASK);
            let next = (stamp << (2 * COUNT_BITS)) | (calls << COUNT_BITS) | failures;
            match slot.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        if failed {
            self.totals_at(now)
        } else {
            (0, 0)
        }
    }

    pub(super) fn totals(&self) -> (u32, u32) {
        self.totals_at(self.now())
    }

    pub(super) fn totals_at(&self, now: u64) -> (u32, u32) {
        let stamp = now & STAMP_MASK;
        let (mut calls, mut failures) = (0u64, 0u64);
        for slot in &self.buckets {
            let v = slot.load(Ordering::Acquire);
            let age = stamp.wrapping_sub(v >> (2 * COUNT_BITS)) & STAMP_MASK;
            if age < BUCKETS {
                calls += (v >> COUNT_BITS) & COUNT_MASK;
                failures += v & COUNT_MASK;
            }
        }
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        (clamp(calls), clamp(failures))
    }

    pub(super) fn clear(&self) {
        for slot in &self.buckets {
            slot.store(0, Ordering::Release);
        }
    }
}
