//! What the pool tells its readers, kept apart from the pool itself: the pool calls a handful
//! of `record`/`observe` hooks; everything that counts, reads, formats or exports lives here.
//!
//! One file per concern: [`stats`] (lock-free counters, histograms, the timeout-rate window),
//! [`metrics`] (the [`PoolStatus`] and [`PoolMetrics`] snapshots and the [`ScalingAdvice`]
//! read from them), [`observe`] (the per-query hook: metrics, `tracing` span, slow-query log),
//! [`leak`] (who holds which connection, and the leak reports), [`export`] (Prometheus text)
//! and, with feature `metrics`, `facade` (the `metrics` crate facade).

mod export;
#[cfg(feature = "metrics")]
mod facade;
mod leak;
mod metrics;
mod observe;
mod stats;

pub(crate) use export::prometheus_text;
#[cfg(feature = "metrics")]
pub(crate) use facade::Facade;
pub use leak::LeakReport;
pub(crate) use leak::{Lent, NOT_LENT};
pub use metrics::{PoolMetrics, PoolStatus, ScalingAdvice};
pub(crate) use observe::QueryEvent;
pub use stats::Percentiles;
pub(crate) use stats::{StatementsSeen, Stats};
