//! Export: the Prometheus text exposition of every pool, and (feature `metrics`) the same
//! figures pushed to the `metrics` crate facade as they happen.
//!
//! Labels are `alias`, `backend` and `hash` (plus `kind`, `category`, … where a family has
//! them). Nothing here ever sees the configuration's password, nor the keyed digest of it that
//! tells apart pools with the same hash: those are exported as one series set per hash,
//! summed (label sets must be unique in an exposition).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use super::metrics::{PoolMetrics, PoolStatus, ScalingAdvice};
use super::stats::{Percentiles, TagStats};
use crate::pool::PoolInner;

/// Escapes a label value per the exposition format: backslash, double quote, newline.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// One pool as seen by the exporter.
struct Snap {
    labels: String,
    m: PoolMetrics,
    s: PoolStatus,
    tags: Vec<((String, String), TagStats)>,
    healthy: Option<bool>,
}

/// One metric family: HELP and TYPE once, then a sample per pool (and per extra label).
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out, name }
    }

    fn sample(&mut self, suffix: &str, labels: &str, extra: &[(&str, &str)], v: f64) {
        let _ = write!(self.out, "{}{suffix}{{{labels}", self.name);
        for (k, val) in extra {
            let _ = write!(self.out, ",{k}=\"{}\"", escape(val));
        }
        let _ = writeln!(self.out, "}} {}", number(v));
    }

    fn summary(&mut self, labels: &str, p: &Percentiles) {
        let empty = p.count == 0;
        for (q, d) in [("0.5", p.p50), ("0.95", p.p95), ("0.99", p.p99)] {
            let v = if empty { f64::NAN } else { d.as_secs_f64() };
            self.sample("", labels, &[("quantile", q)], v);
        }
        self.sample("_sum", labels, &[], p.sum.as_secs_f64());
        self.sample("_count", labels, &[], p.count as f64);
    }
}

/// One exported series set for `group`, pools with the same hash.
fn snap(group: &[Arc<PoolInner>]) -> Option<Snap> {
    let m = PoolMetrics::of_group(group)?;
    let s = PoolStatus::of_group(group)?;
    let mut tags: HashMap<(String, String), TagStats> = HashMap::new();
    for p in group {
        for (k, v) in p.stats.tags().iter() {
            let e = tags.entry(k.clone()).or_default();
            e.queries += v.queries;
            e.errors += v.errors;
            e.seconds += v.seconds;
        }
    }
    // Unhealthy if any pool failed its last check; healthy if some passed and none failed.
    let healthy = group
        .iter()
        .filter_map(|p| p.last_health())
        .fold(None, |acc: Option<bool>, ok| {
            Some(acc.unwrap_or(true) && ok)
        });
    Some(Snap {
        labels: format!(
            "alias=\"{}\",backend=\"{}\",hash=\"{}\"",
            escape(&m.alias),
            m.backend,
            escape(&m.hash)
        ),
        m,
        s,
        tags: tags.into_iter().collect(),
        healthy,
    })
}

/// Reads a value of one snapshot for one family.
type Get<T, V> = fn(&T) -> V;

/// The exposition of every pool, given grouped by hash.
pub(crate) fn prometheus_text(groups: &[Vec<Arc<PoolInner>>]) -> String {
    let mut snaps: Vec<Snap> = groups.iter().filter_map(|g| snap(g)).collect();
    snaps.sort_by(|a, b| a.m.alias.cmp(&b.m.alias).then(a.m.hash.cmp(&b.m.hash)));
    let mut out = String::with_capacity(4096 + snaps.len() * 4096);
    counters(&mut out, &snaps);
    closed_and_labelled(&mut out, &snaps);
    gauges(&mut out, &snaps);
    advice_and_health(&mut out, &snaps);
    replicas(&mut out, &snaps);
    summaries(&mut out, &snaps);
    tagged(&mut out, &snaps);
    out
}

/// Plain counters (and the window gauge) read from [`PoolMetrics`].
fn counters(o: &mut String, snaps: &[Snap]) {
    let counters: [(&'static str, &str, Get<PoolMetrics, u64>); 11] = [
        (
            "dal_pool_acquisitions_total",
            "Connections lent by the pool.",
            |m| m.acquisitions,
        ),
        (
            "dal_pool_releases_total",
            "Connections given back to the pool.",
            |m| m.releases,
        ),
        (
            "dal_pool_connections_created_total",
            "Physical connections opened.",
            |m| m.connections_created,
        ),
        ("dal_queries_total", "Statements run.", |m| m.queries),
        (
            "dal_slow_queries_total",
            "Statements slower than the slow-query threshold.",
            |m| m.slow_queries,
        ),
        (
            "dal_statement_cache_hits_total",
            "Prepared statements already run on their connection (approximate driver cache hits).",
            |m| m.statement_cache_hits,
        ),
        (
            "dal_statement_cache_misses_total",
            "Prepared statements new to their connection.",
            |m| m.statement_cache_misses,
        ),
        (
            "dal_pool_leaks_detected_total",
            "Connections reported as possibly leaked by the housekeeper.",
            |m| m.leaks_detected,
        ),
        (
            "dal_pool_connections_reclaimed_total",
            "Connections taken back from holders who kept them past reclaim_leaks.",
            |m| m.connections_reclaimed,
        ),
        (
            "dal_pool_validation_failures_total",
            "Idle connections that failed their validation ping at checkout.",
            |m| m.validation_failures,
        ),
        (
            "dal_pool_window_acquisitions",
            "Acquisition attempts in the timeout-rate window (60 s).",
            |m| m.window_acquisitions,
        ),
    ];
    for (name, help, get) in counters {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        let mut f = Family::new(o, name, kind, help);
        for s in snaps {
            f.sample("", &s.labels, &[], get(&s.m) as f64);
        }
    }
}

/// Counters with a label of their own: closes by reason, timeouts by kind, errors by category, breaker transitions by state entered.
fn closed_and_labelled(o: &mut String, snaps: &[Snap]) {
    let mut f = Family::new(
        o,
        "dal_pool_connections_closed_total",
        "counter",
        "Physical connections closed, by reason (discarded: broken, dirty, failed validation or pool closing; runtime_mismatch: opened on one runtime, needed by blocking code or another runtime; idle: reaped after idle_timeout; lifetime: past max_lifetime).",
    );
    for s in snaps {
        for (reason, v) in [
            ("discarded", s.m.connections_discarded),
            (
                "runtime_mismatch",
                s.m.connections_discarded_runtime_mismatch,
            ),
            ("idle", s.m.connections_reaped),
            ("lifetime", s.m.connections_retired),
        ] {
            f.sample("", &s.labels, &[("reason", reason)], v as f64);
        }
    }

    let mut f = Family::new(
        o,
        "dal_pool_timeouts_total",
        "counter",
        "Timeouts, by kind.",
    );
    for s in snaps {
        let mut kinds: Vec<_> = s.m.timeouts.iter().collect();
        kinds.sort_by_key(|(k, _)| k.as_str());
        for (k, v) in kinds {
            f.sample("", &s.labels, &[("kind", k.as_str())], *v as f64);
        }
    }

    let mut f = Family::new(
        o,
        "dal_pool_errors_total",
        "counter",
        "Errors, by category.",
    );
    for s in snaps {
        let mut cats: Vec<_> = s.m.errors.iter().collect();
        cats.sort();
        for (c, v) in cats {
            f.sample("", &s.labels, &[("category", c)], *v as f64);
        }
    }

    let mut f = Family::new(
        o,
        "dal_circuit_breaker_transitions_total",
        "counter",
        "Circuit-breaker state changes, by the state entered.",
    );
    for s in snaps {
        let mut t: Vec<_> = s.m.breaker_transitions.iter().collect();
        t.sort();
        for (to, v) in t {
            f.sample("", &s.labels, &[("to", to)], *v as f64);
        }
    }
}

/// Sizes, bounds and the timeout rate.
fn gauges(o: &mut String, snaps: &[Snap]) {
    let gauges: [(&'static str, &str, Get<Snap, f64>); 8] = [
        (
            "dal_pool_size",
            "Connections open (idle, in use, or being opened).",
            |s| s.s.size as f64,
        ),
        ("dal_pool_in_use", "Connections lent out.", |s| {
            s.s.in_use as f64
        }),
        ("dal_pool_idle", "Connections idle in the pool.", |s| {
            s.s.idle as f64
        }),
        (
            "dal_pool_waiting",
            "Callers waiting for a connection.",
            |s| s.s.waiting as f64,
        ),
        (
            "dal_pool_peak_in_use",
            "Most connections lent out at once.",
            |s| s.m.peak_in_use as f64,
        ),
        ("dal_pool_min_size", "Configured minimum pool size.", |s| {
            s.s.min_size as f64
        }),
        ("dal_pool_max_size", "Configured maximum pool size.", |s| {
            s.s.max_size as f64
        }),
        (
            "dal_pool_timeout_rate",
            "Share of acquisition attempts in the last 60 s that timed out (0..1).",
            |s| s.m.timeout_rate(),
        ),
    ];
    for (name, help, get) in gauges {
        let mut f = Family::new(o, name, "gauge", help);
        for s in snaps {
            f.sample("", &s.labels, &[], get(s));
        }
    }
}

/// The scaling advice (one-hot) and the last health check.
fn advice_and_health(o: &mut String, snaps: &[Snap]) {
    let mut f = Family::new(
        o,
        "dal_pool_scaling_advice",
        "gauge",
        "The seed's reading of the timeout rate: 1 for the current advice, 0 for the others.",
    );
    for s in snaps {
        let now = s.m.scaling_advice();
        for a in ScalingAdvice::ALL {
            f.sample(
                "",
                &s.labels,
                &[("advice", a.as_str())],
                f64::from(u8::from(a == now)),
            );
        }
    }

    let mut f = Family::new(
        o,
        "dal_pool_healthy",
        "gauge",
        "Result of the last health check (1 healthy, 0 not); absent before the first check.",
    );
    for s in snaps {
        if let Some(h) = s.healthy {
            f.sample("", &s.labels, &[], f64::from(u8::from(h)));
        }
    }
}

/// Role, rotation, lag and routed reads of the pools of a replicated topology.
fn replicas(o: &mut String, snaps: &[Snap]) {
    let mut f = Family::new(
        o,
        "dal_pool_role",
        "gauge",
        "What the pool serves: 1 for its role (primary, primary_read, replica).",
    );
    for s in snaps {
        f.sample("", &s.labels, &[("role", s.m.role)], 1.0);
    }
    let mut f = Family::new(
        o,
        "dal_replica_in_rotation",
        "gauge",
        "1 when reads are routed to the replica, 0 when it is out of rotation.",
    );
    for s in snaps.iter().filter(|s| s.m.role == "replica") {
        f.sample("", &s.labels, &[], f64::from(u8::from(s.m.in_rotation)));
    }
    let mut f = Family::new(
        o,
        "dal_replica_lag_seconds",
        "gauge",
        "The replica's last measured lag behind the primary; absent while unknown.",
    );
    for s in snaps.iter().filter(|s| s.m.role == "replica") {
        if let Some(lag) = s.m.replica_lag {
            f.sample("", &s.labels, &[], lag.as_secs_f64());
        }
    }
    let mut f = Family::new(
        o,
        "dal_reads_routed_total",
        "counter",
        "Read connections lent from the pool by read_connection.",
    );
    for s in snaps.iter().filter(|s| s.m.role != "primary") {
        f.sample("", &s.labels, &[], s.m.routed_reads as f64);
    }
}

/// Wait-time and query-duration summaries.
fn summaries(o: &mut String, snaps: &[Snap]) {
    let mut f = Family::new(
        o,
        "dal_pool_acquire_wait_seconds",
        "summary",
        "Time callers waited for a connection.",
    );
    for s in snaps {
        f.summary(&s.labels, &s.m.wait_time);
    }
    let mut f = Family::new(
        o,
        "dal_query_duration_seconds",
        "summary",
        "Statement durations.",
    );
    for s in snaps {
        f.summary(&s.labels, &s.m.query_duration);
    }
}

/// Per-tag statement counts, errors and time.
fn tagged(o: &mut String, snaps: &[Snap]) {
    let tagged: [(&'static str, &str, Get<TagStats, f64>); 3] = [
        (
            "dal_tagged_queries_total",
            "Statements by tag (key and value given with .tag()).",
            |t| t.queries as f64,
        ),
        (
            "dal_tagged_query_errors_total",
            "Failed statements by tag.",
            |t| t.errors as f64,
        ),
        (
            "dal_tagged_query_seconds_total",
            "Time spent in statements, by tag.",
            |t| t.seconds,
        ),
    ];
    for (name, help, get) in tagged {
        let mut f = Family::new(o, name, "counter", help);
        for s in snaps {
            let mut tags: Vec<_> = s.tags.iter().collect();
            tags.sort_by(|a, b| a.0.cmp(&b.0));
            for ((k, v), t) in tags {
                f.sample("", &s.labels, &[("tag_key", k), ("tag_value", v)], get(t));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(0.000_001), "0.000001");
        assert_eq!(number(3.0), "3");
    }
}
