//! (Feature `metrics`.) The `metrics` crate facade: handles registered once per pool (install the recorder
//! before the first use of a pool), so the hot path is a call on a handle.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Label};

use crate::backend::QueryOutput;
use crate::error::{Error, Result};
use crate::pool::CloseReason;

pub(crate) struct Facade {
    labels: Vec<Label>,
    acquisitions: Counter,
    releases: Counter,
    created: Counter,
    in_use: Gauge,
    wait: Histogram,
    queries: Counter,
    query_time: Histogram,
    leaks: Counter,
}

impl Facade {
    pub(crate) fn new(alias: &str, backend: &'static str, hash: &str) -> Self {
        let labels = vec![
            Label::new("alias", alias.to_owned()),
            Label::new("backend", backend),
            Label::new("hash", hash.to_owned()),
        ];
        Facade {
            acquisitions: metrics::counter!("dal_pool_acquisitions_total", labels.clone()),
            releases: metrics::counter!("dal_pool_releases_total", labels.clone()),
            created: metrics::counter!("dal_pool_connections_created_total", labels.clone()),
            in_use: metrics::gauge!("dal_pool_in_use", labels.clone()),
            wait: metrics::histogram!("dal_pool_acquire_wait_seconds", labels.clone()),
            queries: metrics::counter!("dal_queries_total", labels.clone()),
            query_time: metrics::histogram!("dal_query_duration_seconds", labels.clone()),
            leaks: metrics::counter!("dal_pool_leaks_detected_total", labels.clone()),
            labels,
        }
    }

    fn with(&self, k: &'static str, v: impl Into<String>) -> Vec<Label> {
        let mut l = self.labels.clone();
        l.push(Label::new(k, v.into()));
        l
    }

    pub(crate) fn acquired(&self, waited: Duration) {
        self.acquisitions.increment(1);
        self.in_use.increment(1.0);
        self.wait.record(waited.as_secs_f64());
    }

    pub(crate) fn released(&self) {
        self.releases.increment(1);
        self.in_use.decrement(1.0);
    }

    /// Refreshed by the housekeeper every round.
    pub(crate) fn gauges(&self, size: usize, idle: usize, waiting: usize) {
        metrics::gauge!("dal_pool_size", self.labels.clone()).set(size as f64);
        metrics::gauge!("dal_pool_idle", self.labels.clone()).set(idle as f64);
        metrics::gauge!("dal_pool_waiting", self.labels.clone()).set(waiting as f64);
    }

    pub(crate) fn created(&self) {
        self.created.increment(1);
    }

    pub(crate) fn closed(&self, reason: CloseReason) {
        let r = match reason {
            CloseReason::Discard | CloseReason::Validation => "discarded",
            CloseReason::RuntimeMismatch => "runtime_mismatch",
            CloseReason::Idle => "idle",
            CloseReason::Lifetime => "lifetime",
        };
        metrics::counter!("dal_pool_connections_closed_total", self.with("reason", r)).increment(1);
    }

    pub(crate) fn error(&self, e: &Error) {
        if let Some(k) = e.timeout_kind() {
            metrics::counter!("dal_pool_timeouts_total", self.with("kind", k.as_str()))
                .increment(1);
        }
        metrics::counter!("dal_pool_errors_total", self.with("category", e.category()))
            .increment(1);
    }

    pub(crate) fn leak(&self) {
        self.leaks.increment(1);
    }

    pub(crate) fn breaker(&self, to: &str) {
        metrics::counter!(
            "dal_circuit_breaker_transitions_total",
            self.with("to", to.to_owned())
        )
        .increment(1);
    }

    pub(crate) fn query(
        &self,
        elapsed: Duration,
        result: &Result<QueryOutput>,
        tags: &[(String, String)],
    ) {
        self.queries.increment(1);
        self.query_time.record(elapsed.as_secs_f64());
        if let Err(e) = result {
            self.error(e);
        }
        for (k, v) in tags {
            let mut l = self.with("tag_key", k.clone());
            l.push(Label::new("tag_value", v.clone()));
            metrics::counter!("dal_tagged_queries_total", l).increment(1);
        }
    }
}
