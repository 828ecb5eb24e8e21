//! The report of the replicas benchmark (`--bin replicas`): read throughput without and with
//! a replica, read-your-writes, failover; its Markdown tables and its checks.
//!
//! The `bench` report ([`crate::report`]) compares dal with alternatives; this one compares
//! dal with itself (a workload on a `Database` without replica is the baseline of the same
//! workload with one) and adds the failover timings, so it has types of its own. Only the machine description and the number format
//! are shared.

use serde::{Deserialize, Serialize};

use crate::report::{fmt_num, Machine};
use crate::stats::median;

/// Share of the reads the replica must serve in [`ReadWorkload::Replica`] (no writes).
pub const MIN_REPLICA_SHARE: f64 = 0.99;

/// A read workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadWorkload {
    /// a. A `Database` without replica; `async_connection()` per query.
    PrimaryAlone,
    /// b. A `Database` with one replica; `read_connection()` per query, no writes.
    Replica,
    /// c0. A `Database` without replica; each iteration UPDATEs a row through
    /// `async_connection()`, then SELECTs it back through another `async_connection()`.
    WriteThenReadPrimaryAlone,
    /// c. A `Database` with one replica; each iteration UPDATEs a row through
    /// `async_connection()`, then SELECTs it back through `read_connection()`.
    ReadYourWrites,
}

impl ReadWorkload {
    /// In run order (the rounds rotate it).
    pub const ALL: [ReadWorkload; 4] = [
        ReadWorkload::PrimaryAlone,
        ReadWorkload::Replica,
        ReadWorkload::WriteThenReadPrimaryAlone,
        ReadWorkload::ReadYourWrites,
    ];

    /// Stable id.
    pub fn id(self) -> &'static str {
        match self {
            ReadWorkload::PrimaryAlone => "read_primary_alone",
            ReadWorkload::Replica => "read_primary_plus_replica",
            ReadWorkload::WriteThenReadPrimaryAlone => "write_then_read_primary_alone",
            ReadWorkload::ReadYourWrites => "read_your_writes_after_each_write",
        }
    }

    /// Its letter in the tables: `a`, `b`, `c0`, `c`.
    pub fn letter(self) -> &'static str {
        match self {
            ReadWorkload::PrimaryAlone => "a",
            ReadWorkload::Replica => "b",
            ReadWorkload::WriteThenReadPrimaryAlone => "c0",
            ReadWorkload::ReadYourWrites => "c",
        }
    }

    /// Title in the table.
    pub fn title(self) -> &'static str {
        match self {
            ReadWorkload::PrimaryAlone => "a. Read throughput, primary alone (async_connection)",
            ReadWorkload::Replica => "b. Read throughput, primary + 1 replica (read_connection)",
            ReadWorkload::WriteThenReadPrimaryAlone => {
                "c0. UPDATE then SELECT, both through async_connection, primary alone (no replica)"
            }
            ReadWorkload::ReadYourWrites => {
                "c. Primary + 1 replica, read-your-writes after each write (UPDATE via async_connection, then SELECT via read_connection)"
            }
        }
    }

    /// Whether its `Database` has the replica (b and c).
    pub fn with_replica(self) -> bool {
        matches!(self, ReadWorkload::Replica | ReadWorkload::ReadYourWrites)
    }

    /// Whether each iteration writes before it reads (c0 and c: two client statements).
    pub fn writes(self) -> bool {
        matches!(
            self,
            ReadWorkload::WriteThenReadPrimaryAlone | ReadWorkload::ReadYourWrites
        )
    }

    /// The workload its q/s is divided by: the same statements on a `Database` without
    /// replica (b ÷ a, c ÷ c0); `None` for the baselines themselves.
    pub fn baseline(self) -> Option<ReadWorkload> {
        match self {
            ReadWorkload::Replica => Some(ReadWorkload::PrimaryAlone),
            ReadWorkload::ReadYourWrites => Some(ReadWorkload::WriteThenReadPrimaryAlone),
            ReadWorkload::PrimaryAlone | ReadWorkload::WriteThenReadPrimaryAlone => None,
        }
    }

    /// The workloads whose baseline it is.
    pub fn baseline_of(self) -> Vec<ReadWorkload> {
        Self::ALL
            .into_iter()
            .filter(|w| w.baseline() == Some(self))
            .collect()
    }
}

/// One measured round of one read workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadRound {
    /// 1-based.
    pub round: usize,
    /// Client statements per second (c0 and c: the UPDATE and the SELECT both count).
    pub qps: f64,
    /// Iterations per second (c0 and c: UPDATE + SELECT pairs; otherwise = `qps`).
    pub iterations_per_s: f64,
    /// Share of the SELECTs served by a replica (`Connection::role()`).
    pub replica_share: f64,
    /// SELECTs served by the replica.
    pub reads_on_replica: u64,
    /// SELECTs served by the primary.
    pub reads_on_primary: u64,
    /// c0 and c: SELECTs that did not return the value the same client had just written.
    pub stale_reads: u64,
    /// Mean time to obtain the SELECT's connection (`async_connection()` for a and c0,
    /// `read_connection()` for b and c, read-your-writes checks included), µs.
    pub read_acquire_us: f64,
    /// This process's CPU time (all threads) per client statement, µs.
    pub client_cpu_us_per_query: f64,
}

/// One read workload on one backend: its rounds and medians.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadResult {
    /// Which workload.
    pub workload: ReadWorkload,
    /// Its title.
    pub title: String,
    /// `PostgreSQL`, `MariaDB`.
    pub backend: String,
    /// Client tasks.
    pub clients: usize,
    /// Every pool's maximum size.
    pub pool_max: usize,
    /// The rounds, in order.
    pub rounds: Vec<ReadRound>,
    /// Median of the rounds' q/s.
    pub median_qps: Option<f64>,
    /// Median of the rounds' iterations/s.
    pub median_iterations_per_s: Option<f64>,
    /// Median of the rounds' replica shares.
    pub median_replica_share: Option<f64>,
    /// Median of the rounds' mean read acquisition times, µs.
    pub median_read_acquire_us: Option<f64>,
    /// Median of the rounds' client CPU per statement, µs.
    pub median_client_cpu_us_per_query: Option<f64>,
    /// The workload whose median q/s this one's is divided by ([`ReadWorkload::baseline`]:
    /// a for b, c0 for c); `None` for a and c0.
    pub baseline: Option<ReadWorkload>,
    /// Median q/s ÷ median q/s of [`baseline`](Self::baseline) on the same backend.
    pub ratio_to_baseline: Option<f64>,
    /// Stale reads over all rounds.
    pub stale_reads: u64,
}

fn median_of<T>(xs: &[T], f: impl Fn(&T) -> f64) -> Option<f64> {
    median(&xs.iter().map(f).collect::<Vec<_>>())
}

impl ReadResult {
    /// The result of `rounds`; `baseline_qps` is the median q/s of `workload.baseline()` on
    /// the same backend (ignored for a baseline).
    pub fn new(
        workload: ReadWorkload,
        backend: &str,
        clients: usize,
        rounds: Vec<ReadRound>,
        baseline_qps: Option<f64>,
    ) -> Self {
        let median_qps = median_of(&rounds, |r| r.qps);
        ReadResult {
            workload,
            title: workload.title().to_owned(),
            backend: backend.to_owned(),
            clients,
            pool_max: clients,
            median_qps,
            median_iterations_per_s: median_of(&rounds, |r| r.iterations_per_s),
            median_replica_share: median_of(&rounds, |r| r.replica_share),
            median_read_acquire_us: median_of(&rounds, |r| r.read_acquire_us),
            median_client_cpu_us_per_query: median_of(&rounds, |r| r.client_cpu_us_per_query),
            baseline: workload.baseline(),
            ratio_to_baseline: match (workload.baseline(), median_qps, baseline_qps) {
                (Some(_), Some(m), Some(b)) if b > 0.0 => Some(m / b),
                _ => None,
            },
            stale_reads: rounds.iter().map(|r| r.stale_reads).sum(),
            rounds,
        }
    }
}

/// One failover round, on a fresh cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailoverRound {
    /// 1-based.
    pub round: usize,
    /// (i) From the start of the primary's stop to the end of the promotion, s.
    pub stop_to_promoted_s: f64,
    /// Of which: the primary's clean stop, s.
    pub stop_s: f64,
    /// Of which: the promotion, s.
    pub promote_s: f64,
    /// (ii) From the end of the promotion (as the harness saw it) to the first acknowledged
    /// write of the slowest writer, s; `None` when a writer did not write again.
    pub all_writers_resumed_s: Option<f64>,
    /// The same, for the median writer.
    pub median_writer_resumed_s: Option<f64>,
    /// Writers that wrote again after the promotion.
    pub writers_resumed: usize,
    /// Writers in all.
    pub writers: usize,
    /// The writers' outage: the longest time between two acknowledged writes of one writer
    /// (the slowest writer), s.
    pub longest_write_gap_s: f64,
    /// When the last writer's longest gap ended, relative to the end of the promotion, s
    /// (negative: it was writing again before the harness saw the promotion done).
    pub last_gap_end_vs_promoted_s: f64,
    /// (iii) Inserts acknowledged to the writers over the round.
    pub acknowledged: usize,
    /// Of which present on the new primary.
    pub acknowledged_present: usize,
    /// Rows on the new primary (more than acknowledged when a commit's answer was lost).
    pub rows_on_new_primary: usize,
    /// Inserts that failed (retried with a new id).
    pub failed_attempts: u64,
    /// Inserts acknowledged before the primary's stop began.
    pub acknowledged_before_stop: u64,
}

/// The failover rounds of one backend and their medians.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailoverResult {
    /// `PostgreSQL`, `MariaDB`.
    pub backend: String,
    /// Writer tasks.
    pub writers: usize,
    /// The rounds, in order.
    pub rounds: Vec<FailoverRound>,
    /// Median of (i).
    pub median_stop_to_promoted_s: Option<f64>,
    /// Median of the stops.
    pub median_stop_s: Option<f64>,
    /// Median of the promotions.
    pub median_promote_s: Option<f64>,
    /// Median of (ii); `None` when a writer did not resume in some round.
    pub median_all_writers_resumed_s: Option<f64>,
    /// Median of the median writers' (ii).
    pub median_median_writer_resumed_s: Option<f64>,
    /// Median of the longest write gaps.
    pub median_longest_write_gap_s: Option<f64>,
    /// Median of the last gap ends relative to the promotion.
    pub median_last_gap_end_vs_promoted_s: Option<f64>,
    /// Median of the acknowledged writes.
    pub median_acknowledged: Option<f64>,
    /// Every acknowledged write was on the new primary, in every round.
    pub all_acknowledged_present: bool,
}

impl FailoverResult {
    /// The result of `rounds`.
    pub fn new(backend: &str, writers: usize, rounds: Vec<FailoverRound>) -> Self {
        let med = |f: fn(&FailoverRound) -> Option<f64>| {
            rounds
                .iter()
                .map(f)
                .collect::<Option<Vec<f64>>>()
                .and_then(|v| median(&v))
        };
        FailoverResult {
            backend: backend.to_owned(),
            writers,
            median_stop_to_promoted_s: med(|r| Some(r.stop_to_promoted_s)),
            median_stop_s: med(|r| Some(r.stop_s)),
            median_promote_s: med(|r| Some(r.promote_s)),
            median_all_writers_resumed_s: med(|r| r.all_writers_resumed_s),
            median_median_writer_resumed_s: med(|r| r.median_writer_resumed_s),
            median_longest_write_gap_s: med(|r| Some(r.longest_write_gap_s)),
            median_last_gap_end_vs_promoted_s: med(|r| Some(r.last_gap_end_vs_promoted_s)),
            median_acknowledged: med(|r| Some(r.acknowledged as f64)),
            all_acknowledged_present: rounds
                .iter()
                .all(|r| r.acknowledged == r.acknowledged_present),
            rounds,
        }
    }
}

/// How the run was made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Rounds per read workload, and failover rounds per backend.
    pub rounds: usize,
    /// Measured seconds per read workload and round.
    pub seconds_per_round: f64,
    /// Warm-up seconds before each measurement.
    pub warmup_seconds: f64,
    /// Client tasks of the read workloads.
    pub clients: usize,
    /// Every pool's maximum size.
    pub pool_max: usize,
    /// Rows in the table read.
    pub rows: i64,
    /// Writer tasks of the failover.
    pub failover_writers: usize,
}

/// A whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicasReport {
    /// When (RFC 3339).
    pub started: String,
    /// Where (`postgres` and `mysql` hold the clusters' server versions).
    pub machine: Machine,
    /// `/proc/loadavg` when the run started (other work on the machine shows there).
    pub loadavg_start: String,
    /// `/proc/loadavg` when it ended.
    pub loadavg_end: String,
    /// How.
    pub settings: Settings,
    /// a, b, c0 and c per backend.
    pub reads: Vec<ReadResult>,
    /// d per backend.
    pub failover: Vec<FailoverResult>,
    /// Remarks printed under the tables.
    pub notes: Vec<String>,
    /// Checks that did not hold.
    pub failed_checks: Vec<String>,
}

fn pct(v: f64) -> String {
    format!("{:.1} %", 100.0 * v)
}

/// Seconds as `850 ms` or `1.25 s`; `n/a` for `None`.
pub fn secs(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| {
        if v.abs() < 1.0 {
            format!("{:.0} ms", v * 1e3)
        } else {
            format!("{v:.2} s")
        }
    })
}

/// A count: `12 345`, `20`.
fn count(v: f64) -> String {
    if v.abs() >= 999.5 {
        fmt_num(v)
    } else {
        format!("{v:.0}")
    }
}

fn num(v: Option<f64>, unit: &str) -> String {
    v.map_or("n/a".into(), |v| {
        format!("{} {unit}", fmt_num(v)).trim().to_owned()
    })
}

/// `| a | b |` from cells.
fn row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

/// The header: `first` columns, one per round, the median, then `last`.
fn header(first: &[&str], rounds: usize, last: &[&str]) -> String {
    let mut names: Vec<String> = first.iter().map(|s| s.to_string()).collect();
    names.extend((1..=rounds).map(|r| format!("Round {r}")));
    names.push("Median".into());
    names.extend(last.iter().map(|s| s.to_string()));
    let align: Vec<String> = (0..names.len())
        .map(|i| if i < first.len() { "---" } else { "---:" }.to_owned())
        .collect();
    row(&names) + &row(&align)
}

/// A line of `label` with one cell per round and the median in bold, then `last`.
fn line<R>(
    label: &str,
    backend: &str,
    rounds: &[R],
    each: impl Fn(&R) -> String,
    median: String,
    last: &[String],
) -> String {
    let mut cells = vec![label.to_owned(), backend.to_owned()];
    cells.extend(rounds.iter().map(each));
    cells.push(if median.is_empty() {
        median
    } else {
        format!("**{median}**")
    });
    cells.extend(last.iter().cloned());
    row(&cells)
}

/// The read table: a, b, c0, c per backend, a round per column, the median, the ratio to the
/// baseline (b ÷ a, c ÷ c0); c0's and c's pairs/s.
pub fn reads_table(r: &ReplicasReport) -> String {
    let mut s = header(
        &["Workload", "Backend"],
        r.settings.rounds,
        &[
            "÷ baseline without replica (b ÷ a, c ÷ c0)",
            "Served by replica / primary",
            "Stale reads",
            "Read conn. acquire, mean µs",
            "Client CPU µs/q",
        ],
    );
    for w in &r.reads {
        let ratio = match (w.baseline, w.ratio_to_baseline) {
            (None, _) => {
                let of: Vec<&str> = w
                    .workload
                    .baseline_of()
                    .iter()
                    .map(|b| b.letter())
                    .collect();
                format!("1.00× (baseline of {})", of.join(", "))
            }
            (Some(b), Some(x)) => format!("{x:.2}× (÷ {})", b.letter()),
            (Some(_), None) => "n/a".into(),
        };
        let share = w
            .median_replica_share
            .map_or("n/a".into(), |v| format!("{} / {}", pct(v), pct(1.0 - v)));
        s.push_str(&line(
            &w.title,
            &w.backend,
            &w.rounds,
            |x| num(Some(x.qps), "q/s"),
            num(w.median_qps, "q/s"),
            &[
                ratio,
                share,
                w.stale_reads.to_string(),
                num(w.median_read_acquire_us, ""),
                num(w.median_client_cpu_us_per_query, ""),
            ],
        ));
        if w.workload.writes() {
            s.push_str(&line(
                &format!(
                    "{}. the same in UPDATE + SELECT pairs per second",
                    w.workload.letter()
                ),
                &w.backend,
                &w.rounds,
                |x| num(Some(x.iterations_per_s), "pairs/s"),
                num(w.median_iterations_per_s, "pairs/s"),
                &vec![String::new(); 5],
            ));
        }
    }
    s
}

/// The failover table: (i), (ii), (iii) per backend, a round per column, the median, a check.
pub fn failover_table(r: &ReplicasReport) -> String {
    let mut s = header(
        &[
            "Failover (host list, target_session_attrs=read-write)",
            "Backend",
        ],
        r.settings.rounds,
        &["Check"],
    );
    let none = || vec![String::new()];
    for f in &r.failover {
        let (b, rounds) = (f.backend.as_str(), f.rounds.as_slice());
        s.push_str(&line(
            "(i) primary stop → promotion done",
            b,
            rounds,
            |x| secs(Some(x.stop_to_promoted_s)),
            secs(f.median_stop_to_promoted_s),
            &none(),
        ));
        s.push_str(&line(
            "  of which: clean stop of the primary",
            b,
            rounds,
            |x| secs(Some(x.stop_s)),
            secs(f.median_stop_s),
            &none(),
        ));
        s.push_str(&line(
            "  of which: promotion of the replica",
            b,
            rounds,
            |x| secs(Some(x.promote_s)),
            secs(f.median_promote_s),
            &none(),
        ));
        let resumed = rounds.iter().all(|x| x.writers_resumed == x.writers);
        s.push_str(&line(
            &format!(
                "(ii) promotion done → first acknowledged write of every writer (slowest of {})",
                f.writers
            ),
            b,
            rounds,
            |x| secs(x.all_writers_resumed_s),
            secs(f.median_all_writers_resumed_s),
            &[if resumed {
                "all writers resumed in every round".into()
            } else {
                "**a writer did not resume**".into()
            }],
        ));
        s.push_str(&line(
            "  writers' outage: longest time between two acknowledged writes (slowest writer)",
            b,
            rounds,
            |x| secs(Some(x.longest_write_gap_s)),
            secs(f.median_longest_write_gap_s),
            &none(),
        ));
        s.push_str(&line(
            "  end of that outage − promotion done (negative: writing before the harness saw the promotion)",
            b,
            rounds,
            |x| secs(Some(x.last_gap_end_vs_promoted_s)),
            secs(f.median_last_gap_end_vs_promoted_s),
            &none(),
        ));
        s.push_str(&line(
            "(iii) writes acknowledged / of which on the new primary",
            b,
            rounds,
            |x| {
                format!(
                    "{} / {}",
                    count(x.acknowledged as f64),
                    count(x.acknowledged_present as f64)
                )
            },
            f.median_acknowledged
                .map_or("n/a".into(), |v| format!("{} acknowledged", count(v))),
            &[if f.all_acknowledged_present {
                "equal in every round".into()
            } else {
                "**acknowledged writes missing**".into()
            }],
        ));
        s.push_str(&line(
            "  rows on the new primary / failed insert attempts",
            b,
            rounds,
            |x| {
                format!(
                    "{} / {}",
                    count(x.rows_on_new_primary as f64),
                    x.failed_attempts
                )
            },
            String::new(),
            &none(),
        ));
    }
    s
}

/// The whole Markdown report: machine, settings, both tables, notes, failed checks.
pub fn markdown(r: &ReplicasReport) -> String {
    let (m, st) = (&r.machine, &r.settings);
    let mut s = String::from("# dal: read replicas and failover\n\n");
    s.push_str(&format!(
        "Machine: {} CPUs ({}), {} RAM, {}; load average {} at the start, {} at the end. \
         PostgreSQL: {}; MariaDB: {}.\n\n",
        m.cpus,
        m.cpu_model,
        m.memory,
        m.os,
        r.loadavg_start,
        r.loadavg_end,
        m.postgres.as_deref().unwrap_or("n/a"),
        m.mysql.as_deref().unwrap_or("n/a"),
    ));
    s.push_str(&format!(
        "Reads: {} alternating rounds (order rotated each round) of {} s measured after {} s \
         warm-up per workload, {} client tasks, every pool at most {} connections, point SELECT \
         by primary key on {} rows. Failover: {} rounds per backend, each on a fresh cluster, {} \
         writer tasks. Figures per round, then the median. Run started {}.\n\n",
        st.rounds,
        st.seconds_per_round,
        st.warmup_seconds,
        st.clients,
        st.pool_max,
        fmt_num(st.rows as f64),
        st.rounds,
        st.failover_writers,
        r.started
    ));
    if !r.reads.is_empty() {
        s.push_str(&reads_table(r));
        s.push('\n');
    }
    if !r.failover.is_empty() {
        s.push_str(&failover_table(r));
        s.push('\n');
    }
    for n in &r.notes {
        s.push_str(&format!("- {n}\n"));
    }
    for f in &r.failed_checks {
        s.push_str(&format!("- **CHECK FAILED**: {f}\n"));
    }
    s
}

/// The checks of a run, as one message per check that did not hold: b served at least
/// [`MIN_REPLICA_SHARE`] of its reads from the replica in every round, no stale read, every
/// writer wrote again after the promotion, every acknowledged write is on the new primary.
pub fn failed_checks(reads: &[ReadResult], failover: &[FailoverResult]) -> Vec<String> {
    let mut out = Vec::new();
    for w in reads {
        for r in &w.rounds {
            if w.workload == ReadWorkload::Replica && r.replica_share < MIN_REPLICA_SHARE {
                out.push(format!(
                    "{} {}: round {} served only {} of its reads from the replica",
                    w.backend,
                    w.workload.id(),
                    r.round,
                    pct(r.replica_share)
                ));
            }
            if r.stale_reads > 0 {
                out.push(format!(
                    "{} {}: round {} read {} stale values",
                    w.backend,
                    w.workload.id(),
                    r.round,
                    r.stale_reads
                ));
            }
        }
    }
    for f in failover {
        for r in &f.rounds {
            if r.writers_resumed < r.writers {
                out.push(format!(
                    "{} failover round {}: only {} of {} writers wrote again after the promotion",
                    f.backend, r.round, r.writers_resumed, r.writers
                ));
            }
            if r.acknowledged != r.acknowledged_present {
                out.push(format!(
                    "{} failover round {}: {} writes acknowledged, {} of them on the new primary",
                    f.backend, r.round, r.acknowledged, r.acknowledged_present
                ));
            }
        }
    }
    out
}

/// Writes `replicas.json` and `replicas.md` into `dir` (created if needed); returns the
/// Markdown.
pub fn write(report: &ReplicasReport, dir: &std::path::Path) -> crate::Result<String> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("replicas.json"),
        serde_json::to_string_pretty(report)?,
    )?;
    let md = markdown(report);
    std::fs::write(dir.join("replicas.md"), &md)?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_round(round: usize, qps: f64, share: f64, stale: u64) -> ReadRound {
        ReadRound {
            round,
            qps,
            iterations_per_s: qps,
            replica_share: share,
            reads_on_replica: (share * 1000.0) as u64,
            reads_on_primary: 1000 - (share * 1000.0) as u64,
            stale_reads: stale,
            read_acquire_us: 5.0,
            client_cpu_us_per_query: 10.0,
        }
    }

    fn failover_round(round: usize, acked: usize, present: usize, resumed: usize) -> FailoverRound {
        FailoverRound {
            round,
            // Exact in binary, so that the JSON round trip is exact.
            stop_to_promoted_s: 0.125 + 0.25 * round as f64,
            stop_s: 0.125,
            promote_s: 0.25 * round as f64,
            all_writers_resumed_s: (resumed == 8).then_some(0.01),
            median_writer_resumed_s: Some(0.005),
            writers_resumed: resumed,
            writers: 8,
            longest_write_gap_s: 0.4,
            last_gap_end_vs_promoted_s: -0.02,
            acknowledged: acked,
            acknowledged_present: present,
            rows_on_new_primary: acked + 1,
            failed_attempts: 30,
            acknowledged_before_stop: 100,
        }
    }

    fn report() -> ReplicasReport {
        let a = ReadResult::new(
            ReadWorkload::PrimaryAlone,
            "PostgreSQL",
            20,
            vec![
                read_round(1, 100.0, 0.0, 0),
                read_round(2, 300.0, 0.0, 0),
                read_round(3, 200.0, 0.0, 0),
            ],
            None,
        );
        let b = ReadResult::new(
            ReadWorkload::Replica,
            "PostgreSQL",
            20,
            vec![
                read_round(1, 100.0, 1.0, 0),
                read_round(2, 100.0, 0.5, 0),
                read_round(3, 100.0, 1.0, 0),
            ],
            a.median_qps,
        );
        let c0 = ReadResult::new(
            ReadWorkload::WriteThenReadPrimaryAlone,
            "PostgreSQL",
            20,
            vec![
                read_round(1, 800.0, 0.0, 0),
                read_round(2, 400.0, 0.0, 0),
                read_round(3, 600.0, 0.0, 0),
            ],
            // A baseline has no ratio, whatever it is given.
            a.median_qps,
        );
        let c = ReadResult::new(
            ReadWorkload::ReadYourWrites,
            "PostgreSQL",
            20,
            vec![
                read_round(1, 500.0, 0.8, 0),
                read_round(2, 450.0, 0.9, 2),
                read_round(3, 300.0, 0.7, 0),
            ],
            c0.median_qps,
        );
        let d = FailoverResult::new(
            "MariaDB",
            8,
            vec![
                failover_round(1, 10, 10, 8),
                failover_round(2, 20, 19, 8),
                failover_round(3, 30, 30, 7),
            ],
        );
        let failover = vec![d];
        let reads = vec![a, b, c0, c];
        ReplicasReport {
            settings: Settings {
                rounds: 3,
                ..Settings::default()
            },
            failed_checks: failed_checks(&reads, &failover),
            reads,
            failover,
            ..ReplicasReport::default()
        }
    }

    #[test]
    fn medians_ratios_and_checks() {
        let r = report();
        assert_eq!(r.reads[0].median_qps, Some(200.0));
        // b ÷ a, c ÷ c0; a and c0 are baselines, without a ratio.
        assert_eq!(r.reads[0].baseline, None);
        assert_eq!(r.reads[0].ratio_to_baseline, None);
        assert_eq!(r.reads[1].baseline, Some(ReadWorkload::PrimaryAlone));
        assert_eq!(r.reads[1].ratio_to_baseline, Some(0.5));
        assert_eq!(r.reads[2].median_qps, Some(600.0));
        assert_eq!(r.reads[2].baseline, None);
        assert_eq!(r.reads[2].ratio_to_baseline, None);
        assert_eq!(
            r.reads[3].baseline,
            Some(ReadWorkload::WriteThenReadPrimaryAlone)
        );
        assert_eq!(r.reads[3].ratio_to_baseline, Some(0.75));
        assert_eq!(r.reads[1].median_replica_share, Some(1.0));
        assert_eq!(r.reads[3].stale_reads, 2);
        let f = &r.failover[0];
        assert_eq!(f.median_stop_to_promoted_s, Some(0.625));
        // A round where a writer did not resume has no (ii): no median either.
        assert_eq!(f.median_all_writers_resumed_s, None);
        assert!(!f.all_acknowledged_present);
        assert_eq!(
            r.failed_checks,
            [
                "PostgreSQL read_primary_plus_replica: round 2 served only 50.0 % of its reads from the replica",
                "PostgreSQL read_your_writes_after_each_write: round 2 read 2 stale values",
                "MariaDB failover round 2: 20 writes acknowledged, 19 of them on the new primary",
                "MariaDB failover round 3: only 7 of 8 writers wrote again after the promotion",
            ]
        );
    }

    #[test]
    fn tables_have_a_column_per_round() {
        let md = markdown(&report());
        let reads = reads_table(&report());
        let lines: Vec<&str> = reads.lines().collect();
        // Header, alignment, a, b, c0 and its pairs/s, c and its pairs/s.
        assert_eq!(lines.len(), 8, "{reads}");
        let columns = |l: &str| l.matches('|').count() - 1;
        assert!(lines.iter().all(|l| columns(l) == 2 + 3 + 1 + 5), "{reads}");
        assert!(lines[0].contains("| ÷ baseline without replica (b ÷ a, c ÷ c0) |"));
        assert!(
            lines[2].contains("| **200 q/s** | 1.00× (baseline of b) |"),
            "{reads}"
        );
        assert!(
            lines[3].contains("| 0.50× (÷ a) | 100.0 % / 0.0 % |"),
            "{reads}"
        );
        assert!(lines[4].starts_with("| c0. UPDATE then SELECT"), "{reads}");
        assert!(
            lines[4].contains("| **600 q/s** | 1.00× (baseline of c) | 0.0 % / 100.0 % |"),
            "{reads}"
        );
        assert!(
            lines[5].starts_with("| c0. the same in UPDATE + SELECT pairs per second |"),
            "{reads}"
        );
        assert!(lines[6].starts_with("| c. Primary + 1 replica"), "{reads}");
        assert!(
            lines[6].contains("| **450 q/s** | 0.75× (÷ c0) | 80.0 % / 20.0 % | 2 |"),
            "{reads}"
        );
        assert!(
            lines[7].starts_with("| c. the same in UPDATE + SELECT pairs per second |"),
            "{reads}"
        );
        let failover = failover_table(&report());
        assert!(
            failover.lines().all(|l| columns(l) == 2 + 3 + 1 + 1),
            "{failover}"
        );
        assert!(
            failover.contains("| 375 ms | 625 ms | 875 ms | **625 ms** |"),
            "{failover}"
        );
        assert!(failover.contains("| 10 / 10 | 20 / 19 | 30 / 30 | **20 acknowledged** | **acknowledged writes missing** |"), "{failover}");
        assert!(
            md.contains("**CHECK FAILED**: MariaDB failover round 3"),
            "{md}"
        );
        assert_eq!(secs(Some(-0.02)), "-20 ms");
        assert_eq!(secs(Some(1.234)), "1.23 s");
    }

    #[test]
    fn report_round_trips_through_json() {
        let r = report();
        let back: ReplicasReport =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
