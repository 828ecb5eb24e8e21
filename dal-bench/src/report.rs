//! Results: what a workload measured, the ratio dal/alternative, the targets, the
//! Markdown table, and combining several runs into medians.

use serde::{Deserialize, Serialize};

use crate::stats::median;

/// Which way is better for a workload's figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Throughput (q/s, rows/s): more is better.
    HigherIsBetter,
    /// Latency (ns, ms): less is better.
    LowerIsBetter,
}

/// How a ratio is compared with its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cmp {
    /// ratio ≥ value
    Ge,
    /// ratio > value
    Gt,
    /// ratio ≤ value
    Le,
}

/// A target on the ratio dal / alternative.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Comparison.
    pub cmp: Cmp,
    /// Bound on the ratio.
    pub ratio: f64,
}

impl Target {
    /// ratio ≥ `r`.
    pub fn at_least(r: f64) -> Self {
        Target {
            cmp: Cmp::Ge,
            ratio: r,
        }
    }
    /// ratio > `r`.
    pub fn above(r: f64) -> Self {
        Target {
            cmp: Cmp::Gt,
            ratio: r,
        }
    }
    /// ratio ≤ `r`.
    pub fn at_most(r: f64) -> Self {
        Target {
            cmp: Cmp::Le,
            ratio: r,
        }
    }

    /// Whether `ratio` meets the target.
    pub fn met_by(&self, ratio: f64) -> bool {
        match self.cmp {
            Cmp::Ge => ratio >= self.ratio,
            Cmp::Gt => ratio > self.ratio,
            Cmp::Le => ratio <= self.ratio,
        }
    }

    /// `≥ 1.20×`.
    pub fn label(&self) -> String {
        let op = match self.cmp {
            Cmp::Ge => "≥",
            Cmp::Gt => ">",
            Cmp::Le => "≤",
        };
        format!("{op} {:.2}×", self.ratio)
    }
}

/// One contender's figures in one workload: one sample per round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Who: `dal`, `sqlx PgPool (default)`, …
    pub contender: String,
    /// One figure per round (per run, once combined), in the workload's unit.
    pub samples: Vec<f64>,
    /// Median of `samples`; `None` when not measured.
    pub median: Option<f64>,
    /// Why it is missing, or how it was measured when that differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Client (this process's) CPU time per operation in µs, one per round.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpu_samples: Vec<f64>,
    /// Median of `cpu_samples`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_us_per_op: Option<f64>,
}

impl Series {
    /// A series from samples; the median is computed.
    pub fn new(contender: impl Into<String>, samples: Vec<f64>) -> Self {
        let median = median(&samples);
        Series {
            contender: contender.into(),
            samples,
            median,
            note: None,
            cpu_samples: Vec::new(),
            cpu_us_per_op: None,
        }
    }

    /// Adds the client CPU per operation measured in each round.
    pub fn with_cpu(mut self, cpu_samples: Vec<f64>) -> Self {
        self.cpu_us_per_op = median(&cpu_samples);
        self.cpu_samples = cpu_samples;
        self
    }

    /// A series that could not be measured, and why.
    pub fn missing(contender: impl Into<String>, why: impl Into<String>) -> Self {
        Series {
            contender: contender.into(),
            samples: Vec::new(),
            median: None,
            note: Some(why.into()),
            cpu_samples: Vec::new(),
            cpu_us_per_op: None,
        }
    }

    /// Adds a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// An alternative to dal in one workload, with the target for the ratio, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    /// Its figures.
    pub series: Series,
    /// Target on dal / this alternative.
    pub target: Option<Target>,
}

/// One workload: dal and its alternatives, measured in the same process, alternating rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// Stable id (`point_select`, `entity_get`, …).
    pub id: String,
    /// Human title.
    pub title: String,
    /// `PostgreSQL`, `MySQL`, `SQLite`.
    pub backend: String,
    /// Concurrent clients (tasks) and pool size.
    pub clients: usize,
    /// Unit of every figure (`q/s`, `rows/s`, `ns`, `ms`).
    pub unit: String,
    /// Which way is better.
    pub direction: Direction,
    /// dal's figures.
    pub dal: Series,
    /// The alternatives.
    pub alternatives: Vec<Alternative>,
}

/// One line of the table: dal against one alternative.
#[derive(Debug, Clone, PartialEq)]
pub struct Row<'a> {
    /// The workload.
    pub workload: &'a Workload,
    /// The alternative.
    pub alternative: &'a Alternative,
    /// dal / alternative, when both were measured.
    pub ratio: Option<f64>,
    /// Whether the target was met (`None` without target or ratio).
    pub met: Option<bool>,
}

impl<'a> Row<'a> {
    /// The ratio turned into "how many times better dal is" (> 1: dal better), for charts.
    pub fn speed_factor(&self) -> Option<f64> {
        speed_factor(self.ratio?, self.workload.direction)
    }
}

/// dal / alternative, when both are measured and the alternative is not zero.
pub fn ratio(dal: Option<f64>, alt: Option<f64>) -> Option<f64> {
    match (dal, alt) {
        (Some(d), Some(a)) if a != 0.0 && d.is_finite() && a.is_finite() => Some(d / a),
        _ => None,
    }
}

/// A ratio dal/alternative as "times better" (> 1: dal better) given the direction.
pub fn speed_factor(ratio: f64, direction: Direction) -> Option<f64> {
    match direction {
        Direction::HigherIsBetter => Some(ratio),
        Direction::LowerIsBetter if ratio > 0.0 => Some(1.0 / ratio),
        Direction::LowerIsBetter => None,
    }
}

impl Workload {
    /// The table rows of this workload, one per alternative.
    pub fn rows(&self) -> Vec<Row<'_>> {
        self.alternatives
            .iter()
            .map(|alt| {
                let r = ratio(self.dal.median, alt.series.median);
                Row {
                    workload: self,
                    alternative: alt,
                    ratio: r,
                    met: match (alt.target, r) {
                        (Some(t), Some(r)) => Some(t.met_by(r)),
                        _ => None,
                    },
                }
            })
            .collect()
    }
}

/// The machine a run came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// CPU model name.
    pub cpu_model: String,
    /// Total memory, e.g. `23.4 GiB`.
    pub memory: String,
    /// Operating system.
    pub os: String,
    /// `SELECT version()` of the PostgreSQL server.
    pub postgres: Option<String>,
    /// `SELECT VERSION()` of the MySQL/MariaDB server.
    pub mysql: Option<String>,
    /// `sqlite_version()`.
    pub sqlite: Option<String>,
}

/// How a run was made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Rounds per workload (contenders alternate within each round).
    pub rounds: usize,
    /// Measured seconds per contender per round (throughput workloads).
    pub seconds_per_round: f64,
    /// Warm-up seconds before each measurement.
    pub warmup_seconds: f64,
    /// `--quick`.
    pub quick: bool,
    /// Runs combined into this report (1 for a single run).
    pub runs: usize,
}

/// A whole benchmark run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// When (RFC 3339).
    pub started: String,
    /// Where.
    pub machine: Machine,
    /// How.
    pub settings: Settings,
    /// What was measured.
    pub workloads: Vec<Workload>,
    /// Remarks printed under the table.
    pub notes: Vec<String>,
}

/// `12345.6` → `12 346`; small values keep a few decimals.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    if a >= 999.5 {
        let n = v.round() as i64;
        let digits = n.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(' ');
            }
            out.push(c);
        }
        if n < 0 {
            out.insert(0, '-');
        }
        out
    } else if a >= 99.95 {
        format!("{v:.0}")
    } else if a >= 9.995 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn cell(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(v) => format!("{} {unit}", fmt_num(v)),
        None => "n/a".into(),
    }
}

/// The Markdown table: one row per (workload, alternative).
pub fn markdown_table(workloads: &[Workload]) -> String {
    let mut s = String::new();
    s.push_str("| Workload | Backend | Clients | dal | Alternative | Alternative's figure | dal / alt. | Target | Met |\n");
    s.push_str("|---|---|---:|---:|---|---:|---:|---|---|\n");
    for w in workloads {
        let better = match w.direction {
            Direction::HigherIsBetter => "",
            Direction::LowerIsBetter => " (lower is better)",
        };
        for row in w.rows() {
            let alt = &row.alternative.series;
            let alt_name = match &alt.note {
                Some(n) if alt.median.is_none() => format!("{} ({n})", alt.contender),
                _ => alt.contender.clone(),
            };
            s.push_str(&format!(
                "| {}{better} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                w.title,
                w.backend,
                w.clients,
                cell(w.dal.median, &w.unit),
                alt_name,
                cell(alt.median, &w.unit),
                row.ratio.map_or("n/a".into(), |r| format!("{r:.2}×")),
                row.alternative.target.map_or(String::new(), |t| t.label()),
                match row.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "",
                },
            ));
        }
    }
    s
}

/// The client-CPU table: this process's CPU time per operation (all threads: runtime, driver,
/// library), for the workloads where it was measured. Empty when none was.
pub fn markdown_cpu_table(workloads: &[Workload]) -> String {
    let mut s = String::new();
    for w in workloads {
        let Some(dal) = w.dal.cpu_us_per_op else {
            continue;
        };
        for alt in &w.alternatives {
            let Some(a) = alt.series.cpu_us_per_op else {
                continue;
            };
            if s.is_empty() {
                s.push_str("| Workload | Backend | Clients | dal CPU µs/op | Alternative | Alternative's CPU µs/op | dal / alt. |\n");
                s.push_str("|---|---|---:|---:|---|---:|---:|\n");
            }
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {:.2}× |\n",
                w.title,
                w.backend,
                w.clients,
                fmt_num(dal),
                alt.series.contender,
                fmt_num(a),
                dal / a
            ));
        }
    }
    s
}

/// The whole Markdown report: machine, settings, table, notes.
pub fn markdown_report(r: &Report) -> String {
    let m = &r.machine;
    let mut s = String::new();
    s.push_str(&format!(
        "Machine: {} CPUs ({}), {} RAM, {}; PostgreSQL: {}; MySQL: {}; SQLite: {}.\n\n",
        m.cpus,
        m.cpu_model,
        m.memory,
        m.os,
        m.postgres.as_deref().unwrap_or("n/a"),
        m.mysql.as_deref().unwrap_or("n/a"),
        m.sqlite.as_deref().unwrap_or("n/a"),
    ));
    let st = &r.settings;
    let runs = if st.runs > 1 {
        format!("median of {} runs, each the median of", st.runs)
    } else {
        "median of".to_owned()
    };
    s.push_str(&format!(
        "Figures: {runs} {} alternating rounds ({} s measured after {} s warm-up per contender and round{}); run started {}.\n\n",
        st.rounds,
        st.seconds_per_round,
        st.warmup_seconds,
        if st.quick { ", --quick" } else { "" },
        r.started
    ));
    s.push_str(&markdown_table(&r.workloads));
    let cpu = markdown_cpu_table(&r.workloads);
    if !cpu.is_empty() {
        s.push_str("\nClient CPU per operation (this process, all threads; lower is better; median of rounds):\n\n");
        s.push_str(&cpu);
    }
    if !r.notes.is_empty() {
        s.push('\n');
        for n in &r.notes {
            s.push_str(&format!("- {n}\n"));
        }
    }
    s
}

/// Combines several runs: every figure becomes the median of the runs' medians (each run's
/// median is kept as one sample). Workloads and contenders are matched by id, backend, clients
/// and name; the first report gives the order.
pub fn combine(reports: &[Report]) -> Option<Report> {
    let first = reports.first()?;
    let mut out = first.clone();
    out.settings.runs = reports.iter().map(|r| r.settings.runs.max(1)).sum();
    let find = |r: &Report, w: &Workload, contender: &str| -> Option<f64> {
        let other = r
            .workloads
            .iter()
            .find(|o| o.id == w.id && o.backend == w.backend && o.clients == w.clients)?;
        if other.dal.contender == contender {
            return other.dal.median;
        }
        other
            .alternatives
            .iter()
            .find(|a| a.series.contender == contender)
            .and_then(|a| a.series.median)
    };
    let find_cpu = |r: &Report, w: &Workload, contender: &str| -> Option<f64> {
        let other = r
            .workloads
            .iter()
            .find(|o| o.id == w.id && o.backend == w.backend && o.clients == w.clients)?;
        std::iter::once(&other.dal)
            .chain(other.alternatives.iter().map(|a| &a.series))
            .find(|s| s.contender == contender)
            .and_then(|s| s.cpu_us_per_op)
    };
    let merge = |w: &Workload, s: &mut Series| {
        let samples: Vec<f64> = reports
            .iter()
            .filter_map(|r| find(r, w, &s.contender))
            .collect();
        s.median = median(&samples);
        s.samples = samples;
        let cpu: Vec<f64> = reports
            .iter()
            .filter_map(|r| find_cpu(r, w, &s.contender))
            .collect();
        s.cpu_us_per_op = median(&cpu);
        s.cpu_samples = cpu;
    };
    for w in out.workloads.iter_mut() {
        let snapshot = w.clone();
        merge(&snapshot, &mut w.dal);
        for a in w.alternatives.iter_mut() {
            merge(&snapshot, &mut a.series);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(
        dal: f64,
        alts: &[(&str, Option<f64>, Option<Target>)],
        direction: Direction,
    ) -> Workload {
        Workload {
            id: "point_select".into(),
            title: "Point SELECT by PK".into(),
            backend: "PostgreSQL".into(),
            clients: 20,
            unit: if direction == Direction::HigherIsBetter {
                "q/s".into()
            } else {
                "ns".into()
            },
            direction,
            dal: Series::new("dal", vec![dal - 1.0, dal, dal + 1.0]),
            alternatives: alts
                .iter()
                .map(|(n, v, t)| Alternative {
                    series: match v {
                        Some(v) => Series::new(*n, vec![*v]),
                        None => Series::missing(*n, "pgbench not on PATH"),
                    },
                    target: *t,
                })
                .collect(),
        }
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(fmt_num(43200.4), "43 200");
        assert_eq!(fmt_num(1234567.0), "1 234 567");
        assert_eq!(fmt_num(999.6), "1 000");
        assert_eq!(fmt_num(512.3), "512");
        assert_eq!(fmt_num(12.34), "12.3");
        assert_eq!(fmt_num(1.234), "1.23");
        assert_eq!(fmt_num(-4321.0), "-4 321");
        assert_eq!(fmt_num(f64::NAN), "n/a");
    }

    #[test]
    fn targets_and_ratios() {
        assert!(Target::at_least(1.2).met_by(1.2));
        assert!(!Target::at_least(1.2).met_by(1.19));
        assert!(!Target::above(1.0).met_by(1.0));
        assert!(Target::at_most(2.0).met_by(2.0));
        assert_eq!(Target::at_least(0.9).label(), "≥ 0.90×");
        assert_eq!(ratio(Some(2.0), Some(4.0)), Some(0.5));
        assert_eq!(ratio(Some(2.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
        assert_eq!(speed_factor(0.5, Direction::LowerIsBetter), Some(2.0));
        assert_eq!(speed_factor(0.5, Direction::HigherIsBetter), Some(0.5));
    }

    #[test]
    fn table_rows_ratios_and_verdicts() {
        let w = workload(
            24000.0,
            &[
                (
                    "sqlx PgPool (default)",
                    Some(20000.0),
                    Some(Target::at_least(1.2)),
                ),
                (
                    "sqlx PgPool (test_before_acquire=false)",
                    Some(30000.0),
                    Some(Target::at_least(1.0)),
                ),
                ("pgbench -S -M prepared", None, Some(Target::at_least(0.7))),
            ],
            Direction::HigherIsBetter,
        );
        let rows = w.rows();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].ratio, Some(1.2));
        assert_eq!(rows[0].met, Some(true));
        assert_eq!(rows[1].ratio, Some(0.8));
        assert_eq!(rows[1].met, Some(false));
        assert_eq!(rows[2].ratio, None);
        assert_eq!(rows[2].met, None);

        let table = markdown_table(&[w]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(lines[0].starts_with("| Workload | Backend | Clients | dal |"));
        assert_eq!(
            lines[2],
            "| Point SELECT by PK | PostgreSQL | 20 | 24 000 q/s | sqlx PgPool (default) | 20 000 q/s | 1.20× | ≥ 1.20× | yes |"
        );
        assert!(
            lines[3].contains("| 0.80× | ≥ 1.00× | **no** |"),
            "{}",
            lines[3]
        );
        assert!(
            lines[4].contains(
                "pgbench -S -M prepared (pgbench not on PATH) | n/a | n/a | ≥ 0.70× |  |"
            ),
            "{}",
            lines[4]
        );
        // Every line has the same number of cells.
        for l in &lines {
            assert_eq!(l.matches('|').count(), 10, "{l}");
        }
    }

    #[test]
    fn lower_is_better_rows_say_so() {
        let w = workload(
            800.0,
            &[("1 µs target", Some(1000.0), Some(Target::at_most(1.0)))],
            Direction::LowerIsBetter,
        );
        let rows = w.rows();
        assert_eq!(rows[0].ratio, Some(0.8));
        assert_eq!(rows[0].met, Some(true));
        assert_eq!(rows[0].speed_factor(), Some(1.25));
        assert!(markdown_table(&[w]).contains("(lower is better)"));
    }

    #[test]
    fn combining_runs_takes_medians_of_medians() {
        let mk = |dal: f64, alt: f64| Report {
            settings: Settings {
                runs: 1,
                rounds: 5,
                ..Default::default()
            },
            workloads: vec![workload(
                dal,
                &[("sqlx", Some(alt), Some(Target::at_least(1.0)))],
                Direction::HigherIsBetter,
            )],
            ..Default::default()
        };
        let combined = combine(&[mk(100.0, 50.0), mk(300.0, 70.0), mk(200.0, 60.0)]).unwrap();
        assert_eq!(combined.settings.runs, 3);
        let w = &combined.workloads[0];
        assert_eq!(w.dal.samples, vec![100.0, 300.0, 200.0]);
        assert_eq!(w.dal.median, Some(200.0));
        assert_eq!(w.alternatives[0].series.median, Some(60.0));
        assert!(combine(&[]).is_none());
        let md = markdown_report(&combined);
        assert!(md.contains("median of 3 runs"), "{md}");
    }

    #[test]
    fn cpu_table_lists_measured_pairs_only() {
        let mut w = workload(
            100.0,
            &[("sqlx", Some(50.0), None), ("pgbench", None, None)],
            Direction::HigherIsBetter,
        );
        assert_eq!(markdown_cpu_table(std::slice::from_ref(&w)), "");
        w.dal = w.dal.clone().with_cpu(vec![30.0, 20.0, 25.0]);
        w.alternatives[0].series = w.alternatives[0].series.clone().with_cpu(vec![50.0]);
        assert_eq!(w.dal.cpu_us_per_op, Some(25.0));
        let t = markdown_cpu_table(&[w]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert_eq!(
            lines[2],
            "| Point SELECT by PK | PostgreSQL | 20 | 25.0 | sqlx | 50.0 | 0.50× |"
        );
    }

    #[test]
    fn report_round_trips_through_json() {
        let r = Report {
            started: "2026-01-01T00:00:00Z".into(),
            workloads: vec![workload(
                10.0,
                &[("x", None, None)],
                Direction::HigherIsBetter,
            )],
            ..Default::default()
        };
        let json = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
